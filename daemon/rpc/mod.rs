//! JSON-RPC dispatch: one handler per method, grouped by the method's namespace.

mod agents;
mod daemon;
mod pairing;
mod runs;
mod sessions;
mod subscriptions;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use crate::paths::Paths;
use crate::protocol::{RpcError, methods};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::daemon::auth::Peer;
use crate::daemon::connection::ConnShared;
use crate::daemon::connection::DeviceAuth;
use crate::daemon::engine::Engine;
use crate::daemon::engine::{Acting, internal};
use crate::daemon::store::{Scope, SessionRecord};
use crate::config::Visibility;
use crate::protocol::ErrorKind;
use crate::protocol::scopes;
use std::collections::HashMap;

/// What the daemon knows about itself, for `hello` and `daemon.status`.
pub struct DaemonInfo {
    pub daemon_id: String,
    pub started_at_ms: i64,
    pub started: Instant,
    pub paths: Paths,
    pub connections: AtomicU32,
    pub interrupted_at_startup: u64,
    /// Cancelled to stop the daemon (`daemon.shutdown`, SIGTERM).
    pub shutdown: CancellationToken,
    /// Frames queued for clients and not yet written, over all connections.
    pub buffered: Arc<std::sync::atomic::AtomicI64>,
    /// Live subscriptions, over all connections.
    pub subscriptions: std::sync::atomic::AtomicU64,
    pub next_connection: std::sync::atomic::AtomicU64,
    /// Connections of paired devices, so revoking a device drops them at once:
    /// connection id → (fingerprint, the connection's kill token).
    pub device_connections: std::sync::Mutex<HashMap<u64, (String, CancellationToken)>>,
}

/// Everything a handler may use: the engine, the daemon, and who is calling.
pub struct Ctx {
    pub engine: Arc<Engine>,
    pub daemon: Arc<DaemonInfo>,
    pub peer: Peer,
    pub conn: Arc<ConnShared>,
}

pub async fn dispatch(
    ctx: &Arc<Ctx>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    match method {
        methods::HELLO => daemon::hello(ctx, parse(params)?),
        methods::SESSIONS_SPAWN => sessions::spawn(ctx, parse(params)?).await,
        methods::SESSIONS_SEND => sessions::send(ctx, parse(params)?).await,
        methods::SESSIONS_HISTORY => sessions::history(ctx, parse(params)?).await,
        methods::SESSIONS_LIST => sessions::list(ctx, parse(params)?).await,
        methods::SESSIONS_KILL => sessions::kill(ctx, parse(params)?).await,
        methods::SESSIONS_PATCH => sessions::patch(ctx, parse(params)?).await,
        methods::SESSIONS_DELETE => sessions::delete(ctx, parse(params)?).await,
        methods::SESSIONS_SUBSCRIBE => subscriptions::subscribe(ctx, parse(params)?).await,
        methods::SESSIONS_UNSUBSCRIBE => subscriptions::unsubscribe(ctx, parse(params)?).await,
        methods::PAIRING_AUTHENTICATE => pairing::authenticate(ctx, parse(params)?).await,
        methods::PAIRING_LIST => pairing::list(ctx, parse(params)?).await,
        methods::PAIRING_APPROVE => pairing::approve(ctx, parse(params)?).await,
        methods::PAIRING_REJECT => pairing::reject(ctx, parse(params)?).await,
        methods::PAIRING_REVOKE => pairing::revoke(ctx, parse(params)?).await,
        methods::RUNS_WAIT => runs::wait(ctx, parse(params)?).await,
        methods::AGENTS_LIST => agents::list(ctx, parse(params)?),
        methods::DAEMON_STATUS => daemon::status(ctx, parse(params)?),
        methods::DAEMON_SHUTDOWN => daemon::shutdown(ctx, parse(params)?),
        _ => Err(RpcError::method_not_found(method)),
    }
}

/// The answer for a session that does not exist, or that the caller may not see.
pub fn no_session(key: &str) -> RpcError {
    RpcError::not_found(format!(
        "no session \"{key}\"; `openclaw sessions list` shows the sessions there are"
    ))
}

impl Ctx {
    /// The paired device this connection proved, if any.
    pub fn device(&self) -> Option<DeviceAuth> {
        self.conn
            .device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What an unauthenticated peer is told: how to prove its device (the CLI does it
    /// itself) with this connection's nonce.
    pub fn pairing_required(&self) -> RpcError {
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        let who = self
            .peer
            .uid
            .map(|u| format!("uid {u}"))
            .unwrap_or_else(|| "an unknown user".into());
        RpcError::app(
            ErrorKind::PairingRequired,
            format!(
                "this client ({who}) is not paired with the openclaw daemon owned by uid {euid}; the openclaw CLI proves its device key and asks for pairing by itself — run it to get a request the owner can approve"
            ),
        )
        .with_data("nonce", self.conn.nonce.clone().into())
        .with_data("daemonId", self.daemon.daemon_id.clone().into())
        // The path the proof must name (the client may have reached it another way).
        .with_data("socket", self.daemon.paths.socket.display().to_string().into())
    }

    /// Sessions created by a paired device belong to it; a device without `admin` sees
    /// only its own.
    pub fn owner_filter(&self) -> Option<String> {
        self.device()
            .filter(|d| !d.scopes.iter().any(|s| s == scopes::ADMIN))
            .map(|d| d.fingerprint)
    }

    /// The session this connection acts as (a run's child), or `None` for the operator.
    pub fn acting(&self) -> Option<Acting> {
        self.conn
            .acting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A connection bound to a run may only be used while that run is active.
    pub fn check_acting(&self) -> Result<(), RpcError> {
        match self.acting() {
            Some(a) if !self.engine.token_alive(&a.run_id) => Err(RpcError::app(
                ErrorKind::Forbidden,
                format!(
                    "run {} of session {} has ended, and its token with it; this connection can no longer act for it",
                    a.run_id, a.session_key
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A session by key or id, if this caller may see it. One the caller may not see is
    /// `not_found`, the same answer as for one that does not exist, so existence never leaks.
    pub async fn session(&self, key_or_id: &str) -> Result<SessionRecord, RpcError> {
        let missing = || no_session(key_or_id);
        let session = self
            .engine
            .find_session(key_or_id)
            .await?
            .ok_or_else(missing)?;
        if self.can_see(&session).await? {
            Ok(session)
        } else {
            Err(missing())
        }
    }

    pub async fn can_see(&self, session: &SessionRecord) -> Result<bool, RpcError> {
        if let Some(fp) = self.owner_filter() {
            return Ok(session.owner.as_deref() == Some(fp.as_str()));
        }
        let Some(me) = self.acting() else {
            return Ok(true);
        };
        Ok(match self.engine.config.session.visibility {
            Visibility::All => true,
            Visibility::Own => session.key == me.session_key,
            Visibility::Agent => session.agent_id == me.agent_id,
            Visibility::Tree => {
                session.key == me.session_key
                    || self
                        .engine
                        .store
                        .in_tree(me.session_key.clone(), session.key.clone())
                        .await
                        .map_err(internal)?
            }
        })
    }

    /// Who is calling, for scoping idempotency keys: a paired device, a run's session, or
    /// the operator. One caller's key never returns another caller's result.
    pub fn caller_id(&self) -> String {
        if let Some(d) = self.device() {
            return format!("device:{}", d.fingerprint);
        }
        match self.acting() {
            Some(a) => format!("session:{}", a.session_key),
            None => "operator".to_string(),
        }
    }

    /// Idempotency key as stored: scoped to the caller.
    pub fn idempotency_key(&self, key: Option<String>) -> Option<String> {
        key.map(|k| format!("{}:{k}", self.caller_id()))
    }

    /// The sessions this caller may list.
    pub fn scope(&self) -> Scope {
        if let Some(fp) = self.owner_filter() {
            return Scope::Owner(fp);
        }
        match (self.acting(), self.engine.config.session.visibility) {
            (None, _) | (Some(_), Visibility::All) => Scope::All,
            (Some(me), Visibility::Own) => Scope::Only(me.session_key),
            (Some(me), Visibility::Tree) => Scope::Tree(me.session_key),
            (Some(me), Visibility::Agent) => Scope::Agent(me.agent_id),
        }
    }
}

/// Params by name only; absent params are `{}`, so a missing required field is named too.
fn parse<P: DeserializeOwned>(params: Option<Value>) -> Result<P, RpcError> {
    let params = match params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::Array(_)) => {
            return Err(RpcError::invalid_params(
                "params must be an object of named fields, not an array",
            ));
        }
        Some(v) => v,
    };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // The path names the field for type errors; serde's own message already names
        // unknown and missing fields.
        if path == "." || path.is_empty() {
            RpcError::invalid_params(format!("invalid params: {inner}"))
        } else {
            RpcError::invalid_params(format!("invalid params: {path}: {inner}"))
        }
    })
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::internal(format!("encoding the result: {e}")))
}

/// A wait given in seconds by a caller, checked and capped (a day) so it can't overflow.
fn wait_duration(seconds: Option<f64>, default: f64) -> Result<std::time::Duration, RpcError> {
    let s = seconds.unwrap_or(default);
    if !s.is_finite() || s < 0.0 {
        return Err(RpcError::invalid_params(
            "timeoutSeconds must be a number of seconds, 0 or more",
        ));
    }
    Ok(std::time::Duration::from_secs_f64(s.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{SendParams, codes};

    #[test]
    fn absent_params_name_the_missing_field() {
        let err = parse::<SendParams>(None).unwrap_err();
        assert_eq!(err.code, codes::INVALID_PARAMS);
        assert!(err.message.contains("sessionKey"), "{}", err.message);
    }

    #[test]
    fn positional_params_are_refused() {
        let err = parse::<SendParams>(Some(serde_json::json!(["k", "m"]))).unwrap_err();
        assert!(err.message.contains("named"), "{}", err.message);
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse::<SendParams>(Some(serde_json::json!({"sessionKey": 1, "message": "m"})))
            .unwrap_err();
        assert!(
            err.message.contains("sessionKey: invalid type"),
            "{}",
            err.message
        );
    }

    #[test]
    fn waits_are_checked() {
        assert!(wait_duration(Some(-1.0), 30.0).is_err());
        assert!(wait_duration(Some(f64::NAN), 30.0).is_err());
        assert_eq!(wait_duration(None, 30.0).unwrap().as_secs(), 30);
        assert_eq!(wait_duration(Some(1e300), 30.0).unwrap().as_secs(), 86_400);
    }
}
