//! The session tools of a run, executed in-process: a native agent's tool call goes straight
//! into the service as [`Caller::Run`], with the same attribution, visibility, send policy
//! and idempotency as a run token gives a child process — no socket, no handshake. Results
//! and errors are JSON the model can read.

use std::sync::{Arc, Weak};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Caller, SendOutcome, ServiceError, SessionService};
use crate::daemon::backends::{BoxFuture, RunTools};
use crate::daemon::engine::{Acting, ToolHost};

impl ToolHost for SessionService {
    fn tools_for(&self, run: &Acting) -> Arc<dyn RunTools> {
        Arc::new(SessionTools {
            service: self.this.clone(),
            caller: Caller::Run(run.clone()),
        })
    }
}

/// The session tools bound to one run.
pub struct SessionTools {
    service: Weak<SessionService>,
    caller: Caller,
}

impl RunTools for SessionTools {
    fn call<'a>(&'a self, tool: &'a str, args: Value) -> BoxFuture<'a, Value> {
        Box::pin(async move {
            let Some(service) = self.service.upgrade() else {
                return error_value("shutting_down", "the daemon is shutting down");
            };
            service.call_tool(&self.caller, tool, args).await
        })
    }
}

impl SessionService {
    /// Runs one session tool as `caller`; the answer, or the error, as JSON.
    pub async fn call_tool(&self, caller: &Caller, tool: &str, args: Value) -> Value {
        let outcome = match tool {
            "sessions_list" => match parse(args) {
                Ok(p) => encode(self.list(caller, p).await),
                Err(e) => Err(e),
            },
            "sessions_history" => match parse(args) {
                Ok(p) => encode(self.history(caller, p).await),
                Err(e) => Err(e),
            },
            "sessions_spawn" => match parse(args) {
                Ok(p) => encode(self.spawn(caller, p).await),
                Err(e) => Err(e),
            },
            "sessions_wait" => match parse(args) {
                Ok(p) => encode(self.wait(caller, p).await),
                Err(e) => Err(e),
            },
            "sessions_send" => match parse(args) {
                Ok(p) => match self.send(caller, p).await {
                    Ok(SendOutcome::Done(r)) => encode(Ok(r)),
                    // A tool call has nobody to stream to: wait for the result.
                    Ok(SendOutcome::Streaming(mut progress)) => loop {
                        match progress.next().await {
                            Some(super::ProgressItem::Done(r)) => break encode(r),
                            Some(super::ProgressItem::Event(_)) => continue,
                            None => {
                                break Err(ServiceError::Internal(
                                    "the send ended without a result".into(),
                                ));
                            }
                        }
                    },
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            other => Err(ServiceError::NotFound(format!(
                "no tool \"{other}\"; the session tools are sessions_list, sessions_history, sessions_send, sessions_spawn and sessions_wait"
            ))),
        };
        outcome.unwrap_or_else(|e| error_of(&e))
    }
}

fn parse<P: DeserializeOwned>(args: Value) -> Result<P, ServiceError> {
    let args = if args.is_null() { json!({}) } else { args };
    serde_path_to_error::deserialize(args)
        .map_err(|e| ServiceError::InvalidParams(format!("invalid arguments: {e}")))
}

fn encode<T: Serialize>(r: Result<T, ServiceError>) -> Result<Value, ServiceError> {
    let v = r?;
    serde_json::to_value(v).map_err(|e| ServiceError::Internal(format!("encoding: {e}")))
}

/// A service error as a tool result: `{"error": {"kind", "message"}}`.
pub fn error_of(e: &ServiceError) -> Value {
    let kind = e.kind().map_or(
        match e {
            ServiceError::InvalidParams(_) => "invalid_params",
            _ => "internal",
        },
        |k| k.as_str(),
    );
    error_value(kind, &e.to_string())
}

fn error_value(kind: &str, message: &str) -> Value {
    json!({ "error": { "kind": kind, "message": message } })
}
