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

    fn remember_daemon(&self, challenge: &Challenge) {
        remember_daemon(&self.key_dir, &self.socket, self.peer, challenge);
    }

    fn authenticate(&mut self, challenge: &Challenge) -> Result<AuthenticateResult, Attempt> {
        let params = proof_params(&self.key_dir, &self.socket, challenge)
            .map_err(|e| Attempt::Refused(Refusal::Device(e)))?;
        match self
            .client
            .call_value(methods::PAIRING_AUTHENTICATE, &params, &Wait::FOREVER)
            .and_then(|v| Ok(serde_json::from_value(v)?))
        {
            Ok(result) => Ok(result),
            Err(ClientError::Rpc(err)) => Err(Attempt::Refused(Refusal::Rpc(explain_refusal(
                err,
                &self.socket,
            )))),
            Err(other) => Err(Attempt::Failed(other)),
        }
    }
}

/// This device's answer to `challenge` (the params of `pairing.authenticate`), signed with
/// the key in `key_dir` (made on first use); `Err` says why the key cannot be used.
pub fn proof_params(
    key_dir: &Path,
    socket: &str,
    challenge: &Challenge,
) -> Result<AuthenticateParams, String> {
    let device = Device::load_or_create(key_dir).map_err(|e| e.to_string())?;
    let uid = current_uid();
    let proof = Proof {
        nonce: &challenge.nonce,
        uid,
        // The path the daemon expects, when it says (a symlink may differ from ours).
        socket: challenge.socket.as_deref().unwrap_or(socket),
        daemon_id: &challenge.daemon_id,
    };
    tracing::info!(fingerprint = %device.fingerprint(), socket, uid, "proving this device to the daemon");
    Ok(AuthenticateParams {
        public_key: device.public_key_hex(),
        signature: device.sign_proof(&proof),
    })
}

/// After another user's daemon admitted this device: only that uid is trusted at this
/// socket from now on. A failure to record it costs only that protection, so it is reported
/// and the command goes on.
pub fn remember_daemon(
    key_dir: &Path,
    socket: &str,
    peer: Option<PeerCredentials>,
    challenge: &Challenge,
) {
    let Some(peer) = peer else { return };
    if peer.uid == current_uid() || peer.uid == 0 {
        return;
    }
    let record = PairedDaemon {
        socket: socket.to_string(),
        uid: peer.uid,
        daemon_id: challenge.daemon_id.clone(),
    };
    if let Err(e) = PairedDaemons::record(key_dir, record) {
        crate::output::diagnostic("warning", &format!("cannot record the paired daemon: {e}"));
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
pub fn explain_refusal(mut err: RpcError, socket: &str) -> RpcError {
    let uid = current_uid();
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
mod tests;
