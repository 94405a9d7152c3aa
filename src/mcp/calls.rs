//! One session tool call carried out with the daemon's JSON-RPC methods, on the
//! connection that was opened for it. A call that waits for a run (`sessions_wait`,
//! `sessions_send` with a wait) relays that run's events as progress when the client asked.

use std::pin::pin;

use serde::Serialize;
use serde_json::Value;

use super::progress::ProgressSink;
use super::{DaemonConnection, LinkError};
use crate::protocol::{EventKind, SendParams, SubscribeParams, WaitParams, methods};
use crate::tools::{SessionToolCall, ToolError};

/// Runs `call` as the connection's caller.
pub async fn run(
    conn: &dyn DaemonConnection,
    call: SessionToolCall,
    progress: Option<ProgressSink>,
) -> Result<Value, ToolError> {
    let result = match call {
        SessionToolCall::List(p) => call_with(conn, methods::SESSIONS_LIST, &p).await,
        SessionToolCall::History(p) => call_with(conn, methods::SESSIONS_HISTORY, &p).await,
        SessionToolCall::Spawn(p) => call_with(conn, methods::SESSIONS_SPAWN, &*p).await,
        SessionToolCall::Wait(p) => match progress {
            Some(sink) => wait_with_progress(conn, p, sink).await,
            None => call_with(conn, methods::RUNS_WAIT, &p).await,
        },
        SessionToolCall::Send(p) => send(conn, p, progress).await,
    };
    result.map_err(|e| tool_error(&e))
}

/// A link failure as the caller reads it.
pub fn tool_error(e: &LinkError) -> ToolError {
    match e {
        LinkError::Rpc(e) => ToolError::from_rpc(e),
        LinkError::Unavailable(why) => ToolError::new("unavailable", why.clone()),
    }
}

async fn call_with<P: Serialize>(
    conn: &dyn DaemonConnection,
    method: &str,
    params: &P,
) -> Result<Value, LinkError> {
    let params = serde_json::to_value(params)
        .map_err(|e| LinkError::Unavailable(format!("cannot encode the call: {e}")))?;
    conn.call(method, params).await
}

/// With a wait and a progress token, the daemon streams the run's events on this
/// connection until the reply.
async fn send(
    conn: &dyn DaemonConnection,
    mut p: SendParams,
    progress: Option<ProgressSink>,
) -> Result<Value, LinkError> {
    let waits = p.timeout_seconds != Some(0.0);
    match progress {
        Some(sink) if waits => {
            p.stream_progress = Some(true);
            relay(conn, call_with(conn, methods::SESSIONS_SEND, &p), sink).await
        }
        _ => call_with(conn, methods::SESSIONS_SEND, &p).await,
    }
}

/// Follows the run's assistant text and tools while waiting for it. Should the follow be
/// refused, the wait alone answers (it says why, or waits all the same).
async fn wait_with_progress(
    conn: &dyn DaemonConnection,
    p: WaitParams,
    sink: ProgressSink,
) -> Result<Value, LinkError> {
    let follow = SubscribeParams {
        session_key: if p.run_id.is_some() {
            None
        } else {
            p.session_key.clone()
        },
        after_seq: None,
        run_id: p.run_id.clone(),
        events: Some(vec![EventKind::Assistant, EventKind::Tool]),
    };
    if let Err(e) = call_with(conn, methods::SESSIONS_SUBSCRIBE, &follow).await {
        tracing::debug!("no progress for this wait: {e}");
        return call_with(conn, methods::RUNS_WAIT, &p).await;
    }
    relay(conn, call_with(conn, methods::RUNS_WAIT, &p), sink).await
}

/// Awaits `call`, reporting every notification that arrives on the connection meanwhile.
/// Notifications come first: those the daemon pushed before its reply are all reported
/// before the result is returned.
async fn relay(
    conn: &dyn DaemonConnection,
    call: impl Future<Output = Result<Value, LinkError>>,
    mut sink: ProgressSink,
) -> Result<Value, LinkError> {
    let mut call = pin!(call);
    loop {
        tokio::select! {
            biased;
            pushed = conn.next_notification() => match pushed {
                Some(n) => sink.report(&n).await,
                None => return call.await,
            },
            result = &mut call => return result,
        }
    }
}
