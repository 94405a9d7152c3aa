//! A long call's progress as MCP progress notifications: what the run it waits for is doing
//! (its assistant text and its tool calls), so the client sees work happening.

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use serde_json::Value;

use crate::protocol::{Notification, notifications};

/// Where one call's progress goes: the client's token, and a count that only grows.
pub struct ProgressSink {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    sent: u64,
}

impl ProgressSink {
    pub fn new(peer: Peer<RoleServer>, token: ProgressToken) -> ProgressSink {
        ProgressSink {
            peer,
            token,
            sent: 0,
        }
    }

    /// Reports a daemon notification, if it says something about the run's work.
    pub async fn report(&mut self, notification: &Notification) {
        let Some(message) = describe(notification) else {
            return;
        };
        self.sent += 1;
        let mut param = ProgressNotificationParam::new(self.token.clone(), self.sent as f64);
        param.message = Some(message);
        // A client that went away is noticed by the server loop; nothing to do here.
        let _ = self.peer.notify_progress(param).await;
    }
}

/// The progress message for a daemon notification: assistant text as it streams, a tool
/// call's start and end, events skipped for a slow reader.
pub fn describe(notification: &Notification) -> Option<String> {
    let params = &notification.params;
    match notification.method.as_str() {
        notifications::RUN_EVENT => {
            let data = params.get("data")?;
            let text = |k: &str| data.get(k).and_then(Value::as_str);
            match params.get("stream").and_then(Value::as_str)? {
                "assistant" => text("delta").filter(|d| !d.is_empty()).map(str::to_string),
                "tool" => {
                    let name = text("name").unwrap_or("a tool");
                    match text("phase")? {
                        "start" => Some(format!("calling {name}")),
                        "end" => Some(match text("status") {
                            Some(status) => format!("{name} ended: {status}"),
                            None => format!("{name} ended"),
                        }),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        notifications::SUBSCRIPTION_LAGGED => {
            let skipped = params.get("skipped").and_then(Value::as_u64)?;
            Some(format!("({skipped} progress events skipped)"))
        }
        _ => None,
    }
}
