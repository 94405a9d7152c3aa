//! The connection every command talks to the daemon through (SPEC §8, contract "CLI").
//!
//! For the daemon's owner it is the plain client: no extra call, no key file touched. Another
//! user's client is refused with `pairing_required` carrying this connection's nonce; then,
//! and only then, it loads (or creates) this user's device key, signs the proof, calls
//! `pairing.authenticate` on the same connection, and retries the refused call once. The
//! outcome is remembered for the connection, so a long-lived command (follow, subscribe)
//! proves itself once and a refusal is reported the same way by every later call. A proof
//! accepted by another user's daemon records that daemon's uid for this socket, so that only
//! it is trusted there from then on (see `openclaw::client::trust`).
//!
//! With `-v`, every call is logged with its method and how long the daemon took.

use std::path::{Path, PathBuf};
use std::time::Instant;

use openclaw::ClientError;
use openclaw::client::blocking::{Client, Incoming, Wait};
use openclaw::client::trust::PeerCredentials;
use openclaw::device::{Device, PairedDaemon, PairedDaemons, Proof};
use openclaw::paths::Paths;
use openclaw::protocol::{
    AuthenticateParams, AuthenticateResult, ErrorKind, Notification, RpcError, methods,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::failure::{Exit, Failure};

/// A connection to the daemon that proves this device when the daemon asks for it.
pub struct Connection {
    client: Client,
    /// The socket path as this process connected to it: the device signs it, so a proof
    /// made for one daemon is worth nothing at another.
    socket: String,
    /// Where this user's device key lives: the directory of the config file.
    key_dir: PathBuf,
    /// Who listens at the socket (checked before anything was sent).
    peer: Option<PeerCredentials>,
    proof: ProofState,
}

/// How far this connection got in proving its device.
#[derive(Debug)]
enum ProofState {
    /// The daemon has not asked (the owner's connections always stay here).
    NotAsked,
    /// The daemon accepted the device; this connection holds its scopes.
    Proven,
    /// The device could not be proven; every call the daemon refuses reports this.
    Refused(Refusal),
}

#[derive(Debug, Clone)]
enum Refusal {
    /// The daemon's answer to `pairing.authenticate` (a new pairing request, a bad signature).
    Rpc(RpcError),
    /// The device key could not be used; the message says how to fix it.
    Device(String),
}

/// Why a call did not return a result.
#[derive(Debug)]
pub enum CallError {
    /// The daemon answered with an error, or the connection failed, or the wait ended.
    Client(ClientError),
    /// The daemon asked this device to prove itself and its key cannot be used.
    Device(String),
}

impl CallError {
    /// The daemon's error object, when it answered with one.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            CallError::Client(ClientError::Rpc(err)) => Some(err),
            _ => None,
        }
    }

    /// Which wake descriptor ended the wait, if one did.
    pub fn woken(&self) -> Option<usize> {
        match self {
            CallError::Client(ClientError::Woken(i)) => Some(*i),
            _ => None,
        }
    }
}

impl From<ClientError> for CallError {
    fn from(err: ClientError) -> CallError {
        CallError::Client(err)
    }
}

impl From<Refusal> for CallError {
    fn from(refusal: Refusal) -> CallError {
        match refusal {
            Refusal::Rpc(err) => CallError::Client(ClientError::Rpc(err)),
            Refusal::Device(message) => CallError::Device(message),
        }
    }
}

impl From<CallError> for Failure {
    fn from(err: CallError) -> Failure {
        match err {
            CallError::Client(err) => err.into(),
            CallError::Device(message) => {
                Failure::new(Exit::NotPermitted, message).with_kind("device_key")
            }
        }
    }
}

/// How a streamed call ended without its result.
#[derive(Debug)]
pub enum StreamEnd {
    Call(CallError),
    /// Handling a notification failed (stdout closed under us).
    Output(Failure),
}

impl From<CallError> for StreamEnd {
    fn from(err: CallError) -> StreamEnd {
        StreamEnd::Call(err)
    }
}

/// What the daemon sends when it wants this device proven on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub nonce: String,
    pub daemon_id: String,
    /// The socket path the daemon expects in the proof (it may differ from the path this
    /// process used, e.g. through a symlink); absent from older daemons.
    pub socket: Option<String>,
}

impl Challenge {
    /// The challenge in a `pairing_required` error, if it carries one. The error that answers
    /// `pairing.authenticate` itself (a new pairing request) carries none, so it cannot
    /// start another round.
    pub fn from_error(err: &RpcError) -> Option<Challenge> {
        if err.kind() != Some(ErrorKind::PairingRequired) {
            return None;
        }
        let data = err.data.as_ref()?;
        let text = |key: &str| {
            data.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Some(Challenge {
            nonce: text("nonce")?,
            daemon_id: text("daemonId")?,
            socket: text("socket"),
        })
    }
}

impl Connection {
    /// Wraps a connected client; `paths` says which socket it reached and where the device
    /// key lives.
    pub fn new(client: Client, paths: &Paths) -> Connection {
        Connection::with_key_dir(client, &paths.socket, key_dir(paths))
    }

    fn with_key_dir(client: Client, socket: &Path, key_dir: PathBuf) -> Connection {
        Connection {
            peer: client.peer_credentials().ok(),
            client,
            socket: socket.display().to_string(),
            key_dir,
            proof: ProofState::NotAsked,
        }
    }

    /// Calls `method` and waits as long as it takes; the result as raw JSON.
    pub fn call_value<P: Serialize>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<Value, CallError> {
        self.call_value_with(method, params, &Wait::FOREVER)
    }

    /// Calls `method`, the wait bounded by `wait`. A `pairing_required` challenge is answered
    /// with this device's proof and the call made once more.
    pub fn call_value_with<P: Serialize>(
        &mut self,
        method: &str,
        params: &P,
        wait: &Wait<'_>,
    ) -> Result<Value, CallError> {
        let err = match self.timed_call(method, params, wait) {
            Err(ClientError::Rpc(err)) => err,
            other => return Ok(other?),
        };
        let Some(challenge) = Challenge::from_error(&err) else {
            return Err(ClientError::Rpc(err).into());
        };
        if !self.prove(&challenge)? {
            // Proven already, and still refused: nothing a retry would change.
            return Err(ClientError::Rpc(err).into());
        }
        tracing::debug!(method, "device proven; calling again");
        Ok(self.timed_call(method, params, wait)?)
    }

    /// Calls `method` with a typed result.
    pub fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<R, CallError> {
        let value = self.call_value(method, params)?;
        serde_json::from_value(value).map_err(|e| ClientError::Decode(e).into())
    }

    /// Calls `method` and hands every notification that arrives before its reply to `each`
    /// (a streamed send shows its run's progress this way). A `pairing_required` challenge is
    /// answered as for any call.
    pub fn call_streaming<P: Serialize>(
        &mut self,
        method: &str,
        params: &P,
        wait: &Wait<'_>,
        mut each: impl FnMut(Notification) -> Result<(), Failure>,
    ) -> Result<Value, StreamEnd> {
        let mut proved = false;
        loop {
            tracing::info!("{method} (streaming)");
            let id = self
                .client
                .send_request(method, params)
                .map_err(CallError::from)?;
            let reply = loop {
                match self
                    .client
                    .next_incoming(id, wait)
                    .map_err(CallError::from)?
                {
                    Incoming::Notification(n) => each(n).map_err(StreamEnd::Output)?,
                    Incoming::Reply(reply) => break reply,
                }
            };
            let err = match reply {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            match Challenge::from_error(&err) {
                Some(challenge) if !proved && self.prove(&challenge)? => proved = true,
                _ => return Err(CallError::from(ClientError::Rpc(err)).into()),
            }
        }
    }

    /// The next notification the daemon pushed; `None` once the connection is closed.
    pub fn next_notification(
        &mut self,
        wait: &Wait<'_>,
    ) -> Result<Option<Notification>, CallError> {
        Ok(self.client.next_notification(wait)?)
    }

    /// Whether this connection proved a paired device (never true for the owner).
    pub fn device_proven(&self) -> bool {
        matches!(self.proof, ProofState::Proven)
    }

    /// What to say when the connection closed without the daemon saying why. A proven
    /// device's connection is also closed when the owner revokes the device.
    pub fn lost_reason(&self) -> &'static str {
        if self.device_proven() {
            "lost the connection to the daemon (it stopped or restarted, or the daemon's owner revoked this device)"
        } else {
            "lost the connection to the daemon (it stopped or restarted)"
        }
    }

    fn timed_call<P: Serialize>(
        &mut self,
        method: &str,
        params: &P,
        wait: &Wait<'_>,
    ) -> Result<Value, ClientError> {
        let started = Instant::now();
        if tracing::enabled!(tracing::Level::DEBUG) {
            let params = serde_json::to_string(params).unwrap_or_default();
            tracing::debug!("{method} {}", clip_log(&params));
        }
        let result = self.client.call_value(method, params, wait);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(value) => {
                tracing::info!("{method}: answered in {ms:.1} ms");
                if tracing::enabled!(tracing::Level::DEBUG) {
                    tracing::debug!("{method} -> {}", clip_log(&value.to_string()));
                }
            }
            Err(err) => tracing::info!("{method}: {err} after {ms:.1} ms"),
        }
        result
    }

    /// Proves this device on this connection, once. `Ok(true)`: just proven, the refused
    /// call may be retried; `Ok(false)`: it was proven before.
    fn prove(&mut self, challenge: &Challenge) -> Result<bool, CallError> {
        match &self.proof {
            ProofState::Proven => return Ok(false),
            ProofState::Refused(refusal) => return Err(refusal.clone().into()),
            ProofState::NotAsked => {}
        }
        match self.authenticate(challenge) {
            Ok(result) => {
                tracing::info!(fingerprint = %result.fingerprint, scopes = ?result.scopes, "device proven");
                self.proof = ProofState::Proven;
                self.remember_daemon(challenge);
                Ok(true)
            }
            Err(Attempt::Refused(refusal)) => {
                self.proof = ProofState::Refused(refusal.clone());
                Err(refusal.into())
            }
            // The connection failed under us: reported as any call's failure would be, and
            // not remembered (the connection is gone anyway).
            Err(Attempt::Failed(err)) => Err(err.into()),
        }
    }

    /// After another user's daemon admitted this device: only that uid is trusted at this
    /// socket from now on. A failure to record it costs only that protection, so it is
    /// reported and the command goes on.
    fn remember_daemon(&self, challenge: &Challenge) {
        let Some(peer) = self.peer else { return };
        if peer.uid == current_uid() || peer.uid == 0 {
            return;
        }
        let record = PairedDaemon {
            socket: self.socket.clone(),
            uid: peer.uid,
            daemon_id: challenge.daemon_id.clone(),
        };
        if let Err(e) = PairedDaemons::record(&self.key_dir, record) {
            crate::output::diagnostic("warning", &format!("cannot record the paired daemon: {e}"));
        }
    }

    fn authenticate(&mut self, challenge: &Challenge) -> Result<AuthenticateResult, Attempt> {
        let device = Device::load_or_create(&self.key_dir)
            .map_err(|e| Attempt::Refused(Refusal::Device(e.to_string())))?;
        let uid = current_uid();
        let socket = challenge.socket.as_deref().unwrap_or(&self.socket);
        let proof = Proof {
            nonce: &challenge.nonce,
            uid,
            socket,
            daemon_id: &challenge.daemon_id,
        };
        let params = AuthenticateParams {
            public_key: device.public_key_hex(),
            signature: device.sign_proof(&proof),
        };
        tracing::info!(fingerprint = %device.fingerprint(), socket = %self.socket, uid, "proving this device to the daemon");
        match self
            .client
            .call_value(methods::PAIRING_AUTHENTICATE, &params, &Wait::FOREVER)
            .and_then(|v| Ok(serde_json::from_value(v)?))
        {
            Ok(result) => Ok(result),
            Err(ClientError::Rpc(err)) => Err(Attempt::Refused(Refusal::Rpc(explain_refusal(
                err,
                &self.socket,
                uid,
            )))),
            Err(other) => Err(Attempt::Failed(other)),
        }
    }
}

/// Long params and results are cut in the log (a task can be megabytes).
fn clip_log(text: &str) -> String {
    crate::output::clip(text, 2000)
}

/// How a proof attempt can fail.
enum Attempt {
    /// The device is not admitted (or its key is unusable): final for this connection.
    Refused(Refusal),
    /// The connection failed.
    Failed(ClientError),
}

/// A refused signature is almost always a different socket path (a symlink, a relative
/// path): the daemon checks the proof against the path in its own configuration.
fn explain_refusal(mut err: RpcError, socket: &str, uid: u32) -> RpcError {
    if err.kind() == Some(ErrorKind::Forbidden) {
        err.message.push_str(&format!(
            " (this openclaw signed for uid {uid} and the socket {socket}; the daemon checks the socket path of its own configuration, so connect through exactly that path, e.g. with OPENCLAW_SOCKET)"
        ));
    }
    err
}

/// The directory of the config file: `$XDG_CONFIG_HOME/openclaw/` or `$OPENCLAW_HOME/`.
pub fn key_dir(paths: &Paths) -> PathBuf {
    paths
        .config_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn current_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openclaw::device::KEY_FILE;
    use serde_json::json;

    const NONCE: &str = "6e6f6e6365";
    const DAEMON_ID: &str = "daemon-1";

    /// How the fake daemon treats `pairing.authenticate`.
    #[derive(Clone, Copy, PartialEq)]
    enum Policy {
        /// The owner: never asks for a proof.
        Owner,
        /// Asks, and admits a correctly signed device.
        Paired,
        /// Asks, and answers every proof with a new pairing request.
        Unknown,
        /// Asks without a nonce (an older or confused daemon).
        NoNonce,
    }

    #[derive(Default)]
    struct Calls {
        list: AtomicUsize,
        authenticate: AtomicUsize,
    }

    /// A daemon on one connection that speaks just enough of the protocol.
    fn fake_daemon(stream: UnixStream, socket: PathBuf, policy: Policy, calls: Arc<Calls>) {
        let mut write = stream.try_clone().unwrap();
        let mut proven = policy == Policy::Owner;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let request: Value = serde_json::from_str(&line).unwrap();
            let id = request["id"].clone();
            let refuse = |e: RpcError| json!({"jsonrpc": "2.0", "id": id, "error": e});
            let reply = match request["method"].as_str().unwrap() {
                "pairing.authenticate" => {
                    calls.authenticate.fetch_add(1, Ordering::SeqCst);
                    let p = &request["params"];
                    let proof = Proof {
                        nonce: NONCE,
                        uid: current_uid(),
                        socket: &socket.display().to_string(),
                        daemon_id: DAEMON_ID,
                    };
                    let signed = proof.verify(
                        p["publicKey"].as_str().unwrap(),
                        p["signature"].as_str().unwrap(),
                    );
                    if !signed {
                        refuse(RpcError::app(ErrorKind::Forbidden, "bad signature"))
                    } else if policy == Policy::Unknown {
                        refuse(
                            RpcError::app(
                                ErrorKind::PairingRequired,
                                "this device is not paired (request 7f3a1b2c…). Ask the owner to run: openclaw pairing approve 7f3a1b2c",
                            )
                            .with_data("requestId", "7f3a1b2c00".into()),
                        )
                    } else {
                        proven = true;
                        json!({"jsonrpc": "2.0", "id": id,
                               "result": {"fingerprint": "fp", "scopes": ["sessions.read"]}})
                    }
                }
                _ => {
                    calls.list.fetch_add(1, Ordering::SeqCst);
                    if proven {
                        json!({"jsonrpc": "2.0", "id": id, "result": {"sessions": []}})
                    } else {
                        let mut err = RpcError::app(ErrorKind::PairingRequired, "not paired");
                        if policy != Policy::NoNonce {
                            err = err
                                .with_data("nonce", NONCE.into())
                                .with_data("daemonId", DAEMON_ID.into());
                        }
                        refuse(err)
                    }
                }
            };
            let mut bytes = serde_json::to_vec(&reply).unwrap();
            bytes.push(b'\n');
            write.write_all(&bytes).unwrap();
        }
    }

    struct Setup {
        conn: Connection,
        calls: Arc<Calls>,
        key_dir: PathBuf,
        _dir: tempfile::TempDir,
    }

    fn setup(policy: Policy, prepare_key: impl FnOnce(&Path)) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("openclaw.sock");
        let key_dir = dir.path().join("config");
        prepare_key(&key_dir);
        let calls = Arc::new(Calls::default());
        let listener = UnixListener::bind(&socket).unwrap();
        let (for_daemon, for_socket) = (calls.clone(), socket.clone());
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            fake_daemon(stream, for_socket, policy, for_daemon);
        });
        let client = Client::connect(&socket).unwrap();
        Setup {
            conn: Connection::with_key_dir(client, &socket, key_dir.clone()),
            calls,
            key_dir,
            _dir: dir,
        }
    }

    fn list(conn: &mut Connection) -> Result<Value, CallError> {
        conn.call_value(methods::SESSIONS_LIST, &json!({}))
    }

    #[test]
    fn the_owner_pays_nothing() {
        let mut s = setup(Policy::Owner, |_| {});
        assert_eq!(list(&mut s.conn).unwrap(), json!({"sessions": []}));
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 1);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
        assert!(!s.key_dir.exists(), "no device key is made for the owner");
        assert!(!s.conn.lost_reason().contains("revoked"));
    }

    #[test]
    fn a_paired_device_proves_itself_once_and_the_call_is_retried() {
        let mut s = setup(Policy::Paired, |_| {});
        assert_eq!(list(&mut s.conn).unwrap(), json!({"sessions": []}));
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 2);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
        let mode = std::fs::metadata(s.key_dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(s.conn.lost_reason().contains("revoked"));
        // Later calls on the same connection go straight through.
        list(&mut s.conn).unwrap();
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 3);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_unknown_device_reports_the_request_and_exits_5() {
        let mut s = setup(Policy::Unknown, |_| {});
        let failure = Failure::from(list(&mut s.conn).unwrap_err());
        assert_eq!(failure.exit, Exit::NotPermitted);
        let message = failure.message.unwrap();
        assert!(
            message.contains("Ask the owner to run: openclaw pairing approve 7f3a1b2c"),
            "{message}"
        );
        // The refusal is remembered: a second call says the same without asking again.
        let again = Failure::from(list(&mut s.conn).unwrap_err());
        assert_eq!(again.message.unwrap(), message);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_key_readable_by_others_is_refused_before_anything_is_sent() {
        let mut s = setup(Policy::Paired, |dir| {
            Device::load_or_create(dir).unwrap();
            let key = dir.join(KEY_FILE);
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        });
        let failure = Failure::from(list(&mut s.conn).unwrap_err());
        assert_eq!(failure.exit, Exit::NotPermitted);
        let message = failure.message.unwrap();
        assert!(message.contains("chmod 600"), "{message}");
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_refusal_without_a_nonce_is_passed_on_as_it_is() {
        let mut s = setup(Policy::NoNonce, |_| {});
        let err = list(&mut s.conn).unwrap_err();
        assert_eq!(err.rpc().unwrap().message, "not paired");
        assert_eq!(Failure::from(err).exit, Exit::NotPermitted);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
        assert!(!s.key_dir.exists());
    }

    #[test]
    fn a_challenge_needs_a_pairing_required_kind_a_nonce_and_a_daemon_id() {
        let challenge = RpcError::app(ErrorKind::PairingRequired, "x")
            .with_data("nonce", "ab".into())
            .with_data("daemonId", "d".into());
        assert_eq!(
            Challenge::from_error(&challenge),
            Some(Challenge {
                nonce: "ab".into(),
                daemon_id: "d".into(),
                socket: None,
            })
        );
        let forbidden = RpcError::app(ErrorKind::Forbidden, "x")
            .with_data("nonce", "ab".into())
            .with_data("daemonId", "d".into());
        assert_eq!(Challenge::from_error(&forbidden), None);
        let no_id = RpcError::app(ErrorKind::PairingRequired, "x").with_data("nonce", "ab".into());
        assert_eq!(Challenge::from_error(&no_id), None);
        let empty = RpcError::app(ErrorKind::PairingRequired, "x")
            .with_data("nonce", "".into())
            .with_data("daemonId", "d".into());
        assert_eq!(Challenge::from_error(&empty), None);
    }

    #[test]
    fn a_refused_signature_names_what_was_signed() {
        let err = explain_refusal(
            RpcError::app(ErrorKind::Forbidden, "bad signature"),
            "/run/x.sock",
            1001,
        );
        assert!(
            err.message.starts_with("bad signature ("),
            "{}",
            err.message
        );
        assert!(err.message.contains("/run/x.sock"), "{}", err.message);
        let other = explain_refusal(RpcError::not_found("gone"), "/run/x.sock", 1001);
        assert_eq!(other.message, "gone");
    }

    #[test]
    fn the_key_lives_beside_the_config_file() {
        let paths = Paths {
            config_file: "/home/u/.config/openclaw/config.toml".into(),
            data_dir: "/home/u/.local/share/openclaw".into(),
            socket: "/run/user/1/openclaw/openclaw.sock".into(),
            socket_named: false,
        };
        assert_eq!(key_dir(&paths), PathBuf::from("/home/u/.config/openclaw"));
    }
}
