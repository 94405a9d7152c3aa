//! The connection every command talks to the daemon through (SPEC §8, contract "CLI").
//!
//! For the daemon's owner it is the plain client: no extra call, no key file touched. Another
//! user's client is refused with `pairing_required` carrying this connection's nonce; then,
//! and only then, it loads (or creates) this user's device key, signs the proof, calls
//! `pairing.authenticate` on the same connection, and retries the refused call once. The
//! outcome is remembered for the connection, so a long-lived command (follow, subscribe)
//! proves itself once and a refusal is reported the same way by every later call.

use std::path::{Path, PathBuf};

use openclaw::device::{Device, Proof};
use openclaw::paths::Paths;
use openclaw::protocol::{
    AuthenticateParams, AuthenticateResult, ErrorKind, Notification, RpcError, methods,
};
use openclaw::{Client, ClientError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::failure::{Exit, Failure};

/// A connection to the daemon that proves this device when the daemon asks for it.
pub struct Connection {
    client: Client,
    /// The socket path as this process connected to it: the device signs it, so a proof
    /// made for one daemon is worth nothing at another.
    socket: String,
    /// Where this user's device key lives: the directory of the config file.
    key_dir: PathBuf,
    proof: Mutex<ProofState>,
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
    /// The daemon answered with an error, or the connection failed.
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
            CallError::Device(message) => Failure::new(Exit::NotPermitted, message),
        }
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
            client,
            socket: socket.display().to_string(),
            key_dir,
            proof: Mutex::new(ProofState::NotAsked),
        }
    }

    /// Calls `method`; the result as raw JSON. A `pairing_required` challenge is answered
    /// with this device's proof and the call made once more.
    pub async fn call_value<P: Serialize>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<Value, CallError> {
        let err = match self.client.call_value(method, params).await {
            Err(ClientError::Rpc(err)) => err,
            other => return Ok(other?),
        };
        let Some(challenge) = Challenge::from_error(&err) else {
            return Err(ClientError::Rpc(err).into());
        };
        if !self.prove(&challenge).await? {
            // Proven already, and still refused: nothing a retry would change.
            return Err(ClientError::Rpc(err).into());
        }
        tracing::debug!(method, "device proven; calling again");
        Ok(self.client.call_value(method, params).await?)
    }

    /// Calls `method` with a typed result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, CallError> {
        let value = self.call_value(method, params).await?;
        serde_json::from_value(value).map_err(|e| ClientError::Decode(e).into())
    }

    /// The next notification the daemon pushed; `None` once the connection is closed.
    pub async fn next_notification(&self) -> Option<Notification> {
        self.client.next_notification().await
    }

    /// Whether this connection proved a paired device (never true for the owner).
    pub fn device_proven(&self) -> bool {
        matches!(self.proof.try_lock().as_deref(), Ok(ProofState::Proven))
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

    /// Proves this device on this connection, once. `Ok(true)`: just proven, the refused
    /// call may be retried; `Ok(false)`: it was proven before.
    async fn prove(&self, challenge: &Challenge) -> Result<bool, CallError> {
        // Held across the round trip: concurrent calls on this connection wait for one proof.
        let mut state = self.proof.lock().await;
        match &*state {
            ProofState::Proven => return Ok(false),
            ProofState::Refused(refusal) => return Err(refusal.clone().into()),
            ProofState::NotAsked => {}
        }
        match self.authenticate(challenge).await {
            Ok(result) => {
                tracing::debug!(fingerprint = %result.fingerprint, scopes = ?result.scopes, "device proven");
                *state = ProofState::Proven;
                Ok(true)
            }
            Err(Attempt::Refused(refusal)) => {
                *state = ProofState::Refused(refusal.clone());
                Err(refusal.into())
            }
            // The connection failed under us: reported as any call's failure would be, and
            // not remembered (the connection is gone anyway).
            Err(Attempt::Failed(err)) => Err(err.into()),
        }
    }

    async fn authenticate(&self, challenge: &Challenge) -> Result<AuthenticateResult, Attempt> {
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
        tracing::debug!(fingerprint = %device.fingerprint(), socket = %self.socket, uid, "proving this device to the daemon");
        match self
            .client
            .call(methods::PAIRING_AUTHENTICATE, &params)
            .await
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

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openclaw::device::KEY_FILE;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixListener;

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

    /// A daemon on `socket` that speaks just enough of the protocol for one connection.
    async fn fake_daemon(socket: PathBuf, policy: Policy, calls: Arc<Calls>) {
        let listener = UnixListener::bind(&socket).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut proven = policy == Policy::Owner;
        while let Ok(Some(line)) = lines.next_line().await {
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
            write.write_all(&bytes).await.unwrap();
        }
    }

    struct Setup {
        conn: Connection,
        calls: Arc<Calls>,
        key_dir: PathBuf,
        _dir: tempfile::TempDir,
    }

    async fn setup(policy: Policy, prepare_key: impl FnOnce(&Path)) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("openclaw.sock");
        let key_dir = dir.path().join("config");
        prepare_key(&key_dir);
        let calls = Arc::new(Calls::default());
        let server = tokio::spawn(fake_daemon(socket.clone(), policy, calls.clone()));
        // The listener binds in the spawned task; yield until it has.
        while !socket.exists() {
            assert!(!server.is_finished());
            tokio::task::yield_now().await;
        }
        let client = Client::connect(&socket).await.unwrap();
        Setup {
            conn: Connection::with_key_dir(client, &socket, key_dir.clone()),
            calls,
            key_dir,
            _dir: dir,
        }
    }

    async fn list(conn: &Connection) -> Result<Value, CallError> {
        conn.call_value(methods::SESSIONS_LIST, &json!({})).await
    }

    #[tokio::test]
    async fn the_owner_pays_nothing() {
        let s = setup(Policy::Owner, |_| {}).await;
        assert_eq!(list(&s.conn).await.unwrap(), json!({"sessions": []}));
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 1);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
        assert!(!s.key_dir.exists(), "no device key is made for the owner");
        assert!(!s.conn.lost_reason().contains("revoked"));
    }

    #[tokio::test]
    async fn a_paired_device_proves_itself_once_and_the_call_is_retried() {
        let s = setup(Policy::Paired, |_| {}).await;
        assert_eq!(list(&s.conn).await.unwrap(), json!({"sessions": []}));
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 2);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
        let mode = std::fs::metadata(s.key_dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(s.conn.lost_reason().contains("revoked"));
        // Later calls on the same connection go straight through.
        list(&s.conn).await.unwrap();
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 3);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unknown_device_reports_the_request_and_exits_5() {
        let s = setup(Policy::Unknown, |_| {}).await;
        let failure = Failure::from(list(&s.conn).await.unwrap_err());
        assert_eq!(failure.exit, Exit::NotPermitted);
        let message = failure.message.unwrap();
        assert!(
            message.contains("Ask the owner to run: openclaw pairing approve 7f3a1b2c"),
            "{message}"
        );
        // The refusal is remembered: a second call says the same without asking again.
        let again = Failure::from(list(&s.conn).await.unwrap_err());
        assert_eq!(again.message.unwrap(), message);
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
        assert_eq!(s.calls.list.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_key_readable_by_others_is_refused_before_anything_is_sent() {
        let s = setup(Policy::Paired, |dir| {
            Device::load_or_create(dir).unwrap();
            let key = dir.join(KEY_FILE);
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        })
        .await;
        let failure = Failure::from(list(&s.conn).await.unwrap_err());
        assert_eq!(failure.exit, Exit::NotPermitted);
        let message = failure.message.unwrap();
        assert!(message.contains("chmod 600"), "{message}");
        assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_refusal_without_a_nonce_is_passed_on_as_it_is() {
        let s = setup(Policy::NoNonce, |_| {}).await;
        let err = list(&s.conn).await.unwrap_err();
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
        };
        assert_eq!(key_dir(&paths), PathBuf::from("/home/u/.config/openclaw"));
    }
}
