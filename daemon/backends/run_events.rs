//! What a running turn reports as it goes, as every backend reports it: lifecycle,
//! assistant text, thoughts, plans, tool calls and usage, numbered per run and published on
//! the event bus; tool calls and results also go into the transcript.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::daemon::events::{Event, EventBus};

/// What a running turn reports as it goes: its lifecycle, assistant text, thoughts, plans,
/// tool calls and usage, numbered per run so a consumer can tell when some were skipped.
/// Tool calls and results also go into the transcript.
#[derive(Clone)]
pub struct RunEvents {
    bus: EventBus,
    store: crate::daemon::store::Store,
    sid: i64,
    session_key: Arc<str>,
    run_id: Arc<str>,
    seq: Arc<AtomicU64>,
    /// The parent session's row id, when this run's progress is relayed to its subscribers.
    relay: Option<i64>,
}

/// A tool call's progress, as every backend reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolPhase<'a> {
    Start { name: &'a str, input: &'a Value },
    Update { output: &'a Value },
    End { output: &'a Value, status: &'a str },
}

impl RunEvents {
    pub fn new(
        bus: EventBus,
        store: crate::daemon::store::Store,
        sid: i64,
        session_key: &str,
        run_id: &str,
        seq: Arc<AtomicU64>,
    ) -> RunEvents {
        RunEvents {
            bus,
            store,
            sid,
            session_key: session_key.into(),
            run_id: run_id.into(),
            seq,
            relay: None,
        }
    }

    /// Also delivers this run's progress (text, thoughts, plans, tools) to the subscribers of
    /// the session `parent_sid`, tagged with this session's key.
    pub fn relay_to(mut self, parent_sid: i64) -> RunEvents {
        self.relay = Some(parent_sid);
        self
    }

    /// Publishes one event of `stream`; `data` is only built when someone listens.
    pub fn emit(&self, stream: &'static str, data: impl FnOnce() -> Value) {
        // The seq advances even unheard, so numbering stays per run, not per listener.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.bus.has_listeners() {
            return;
        }
        let data = Arc::new(data());
        if let Some(parent) = self.relay
            && stream != "lifecycle"
            && stream != "usage"
        {
            self.bus.publish_to_session(
                parent,
                Event::Run {
                    sid: parent,
                    session_key: self.session_key.clone(),
                    run_id: self.run_id.clone(),
                    stream,
                    seq,
                    data: data.clone(),
                },
            );
        }
        self.bus.publish(Event::Run {
            sid: self.sid,
            session_key: self.session_key.clone(),
            run_id: self.run_id.clone(),
            stream,
            seq,
            data,
        });
    }

    pub fn lifecycle(&self, data: impl FnOnce() -> Value) {
        self.emit("lifecycle", data);
    }

    pub fn assistant_delta(&self, text: &str) {
        if !text.is_empty() {
            self.emit("assistant", || json!({ "delta": text }));
        }
    }

    /// Reasoning the agent shows as it goes; not part of the reply.
    pub fn thought_delta(&self, text: &str) {
        if !text.is_empty() {
            self.emit("thought", || json!({ "delta": text }));
        }
    }

    /// The agent's plan, whole, each time it changes.
    pub fn plan(&self, entries: &Value) {
        self.emit("plan", || json!({ "entries": entries }));
    }

    pub fn tool(&self, id: &str, phase: ToolPhase<'_>) {
        self.emit("tool", || match phase {
            ToolPhase::Start { name, input } => {
                json!({ "phase": "start", "id": id, "name": name, "input": input })
            }
            ToolPhase::Update { output } => {
                json!({ "phase": "update", "id": id, "output": output })
            }
            ToolPhase::End { output, status } => {
                json!({ "phase": "end", "id": id, "output": output, "status": status })
            }
        });
    }

    /// A tool event whose data a backend already built (e.g. from an agent's own shape).
    pub fn tool_data(&self, data: Value) {
        self.emit("tool", || data);
    }

    pub fn usage(&self, usage: &Usage) {
        self.emit("usage", || usage.to_json());
    }

    /// Appends a message of this run to the transcript (tool calls and results, notes).
    pub fn transcript(&self, role: crate::protocol::Role, content: Value) {
        self.store.append(
            self.sid,
            crate::daemon::store::NewMessage {
                ts: crate::timefmt::now_ms(),
                role,
                content,
                run_id: Some(self.run_id.to_string()),
                provenance: crate::protocol::ProvenanceKind::Agent,
                from: None,
                usage: None,
            },
        );
    }
}

/// Tokens a run used, as far as its backend knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: Option<i64>,
    pub completion: Option<i64>,
    pub total: Option<i64>,
}

impl Usage {
    pub fn total(tokens: i64) -> Usage {
        Usage {
            total: Some(tokens),
            ..Usage::default()
        }
    }

    /// The total, or the parts added up.
    pub fn tokens(&self) -> Option<i64> {
        self.total.or(match (self.prompt, self.completion) {
            (None, None) => None,
            (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
        })
    }

    /// The wire shape: `tokens` always (when known), the parts when the backend gave them.
    pub fn to_json(&self) -> Value {
        let mut v = json!({});
        if let Some(t) = self.tokens() {
            v["tokens"] = t.into();
        }
        if let Some(p) = self.prompt {
            v["promptTokens"] = p.into();
        }
        if let Some(c) = self.completion {
            v["completionTokens"] = c.into();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_its_parts() {
        let u = Usage {
            prompt: Some(10),
            completion: Some(5),
            total: None,
        };
        assert_eq!(u.tokens(), Some(15));
        assert_eq!(
            u.to_json(),
            json!({"tokens": 15, "promptTokens": 10, "completionTokens": 5})
        );
        assert_eq!(Usage::default().to_json(), json!({}));
    }
}
