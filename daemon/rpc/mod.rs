//! The JSON-RPC transport: one handler per method, each a few lines — parse the params, call
//! the session service as the connection's caller, encode the result. `connection.rs` reads,
//! dispatches and writes; `errors.rs` turns service errors into JSON-RPC errors.

mod conn;
pub mod connection;
mod daemon;
mod errors;
mod pairing;
mod sessions;
mod subscriptions;
mod tools;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::daemon::service::{Caller, ServiceError, SessionService};
use crate::protocol::{RpcError, methods, scopes};
use conn::Conn;

/// What a handler may use: the service, and its connection (who calls, where to push).
pub struct Ctx {
    pub service: Arc<SessionService>,
    pub conn: Arc<Conn>,
}

impl Ctx {
    /// The caller this connection speaks for now.
    pub fn caller(&self) -> Caller {
        self.conn.caller()
    }

    /// A service error as this connection's JSON-RPC error.
    pub fn error(&self, e: ServiceError) -> RpcError {
        errors::rpc_error(self, e)
    }

    pub fn encode<T: Serialize>(&self, r: Result<T, ServiceError>) -> Result<Value, RpcError> {
        to_value(&r.map_err(|e| self.error(e))?)
    }
}

/// Work that starts once a reply is queued (a subscription sends nothing before the reply
/// that names it).
pub type AfterReply = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A handler's answer, and what to start once it is queued.
pub struct Answer {
    pub result: Result<Value, RpcError>,
    pub then: Option<AfterReply>,
}

impl From<Result<Value, RpcError>> for Answer {
    fn from(result: Result<Value, RpcError>) -> Self {
        Answer { result, then: None }
    }
}

pub async fn dispatch(ctx: &Arc<Ctx>, method: &str, params: Option<Value>) -> Answer {
    let answer = match method {
        methods::HELLO => daemon::hello(ctx, params),
        methods::SESSIONS_SPAWN => sessions::spawn(ctx, params).await,
        methods::SESSIONS_SEND => sessions::send(ctx, params).await,
        methods::SESSIONS_HISTORY => sessions::history(ctx, params).await,
        methods::SESSIONS_MESSAGE => sessions::message(ctx, params).await,
        methods::SESSIONS_LIST => sessions::list(ctx, params).await,
        methods::SESSIONS_GET => sessions::get(ctx, params).await,
        methods::SESSIONS_KILL => sessions::kill(ctx, params).await,
        methods::SESSIONS_PATCH => sessions::patch(ctx, params).await,
        methods::SESSIONS_DELETE => sessions::delete(ctx, params).await,
        methods::SESSIONS_SUBSCRIBE => return subscriptions::subscribe(ctx, params).await,
        methods::SESSIONS_UNSUBSCRIBE => subscriptions::unsubscribe(ctx, params).await,
        methods::RUNS_WAIT => sessions::wait(ctx, params).await,
        methods::TOOLS_LIST => tools::list(ctx, params),
        methods::PAIRING_AUTHENTICATE => pairing::authenticate(ctx, params).await,
        methods::PAIRING_LIST => pairing::list(ctx, params).await,
        methods::PAIRING_APPROVE => pairing::approve(ctx, params).await,
        methods::PAIRING_REJECT => pairing::reject(ctx, params).await,
        methods::PAIRING_REVOKE => pairing::revoke(ctx, params).await,
        methods::AGENTS_LIST => daemon::agents(ctx, params),
        methods::DAEMON_STATUS => daemon::status(ctx, params),
        methods::DAEMON_SHUTDOWN => daemon::shutdown(ctx, params),
        methods::DAEMON_RELOAD => daemon::reload(ctx, params),
        methods::HTTP_TOKEN => daemon::http_token(ctx, params),
        _ => unknown(ctx, method),
    };
    answer.into()
}

/// An unknown method: "unknown method" to whoever may read, the usual refusal to others.
fn unknown(ctx: &Ctx, method: &str) -> Result<Value, RpcError> {
    ctx.service
        .authorize(&ctx.caller(), method, scopes::SESSIONS_READ)
        .map_err(|e| ctx.error(e))?;
    Err(RpcError::method_not_found(method))
}

/// Params by name only; absent params are `{}`, so a missing required field is named too.
pub fn parse<P: DeserializeOwned>(params: Option<Value>) -> Result<P, RpcError> {
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

fn to_value<T: Serialize>(v: &T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::internal(format!("encoding the result: {e}")))
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
}
