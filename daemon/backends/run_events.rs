//! What a running turn reports as it goes, as every backend reports it: lifecycle,
//! assistant text, thoughts, plans, tool calls and usage, numbered per run and published on
//! the event bus; tool calls and results also go into the transcript.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    progress: Arc<RunProgress>,
    /// The parent session's row id, when this run's progress is relayed to its subscribers.
    relay: Option<i64>,
}

/// Assistant text kept for a follower that joins mid-run, at most this many bytes (the tail).
const JOIN_TEXT_MAX: usize = 1 << 20;

/// What one run has reported so far, shared by every `RunEvents` of the run: the numbering
/// of its events, and the assistant text streamed since its last stored assistant message,
/// so a follower that joins mid-run is given that text once instead of half a reply.
#[derive(Debug, Default)]
pub struct RunProgress {
    seq: AtomicU64,
    /// Held while an assistant delta is numbered and published, so that a snapshot and
    /// the seq it covers agree.
    text: Mutex<StreamedText>,
}

#[derive(Debug, Default)]
struct StreamedText {
    text: String,
    /// The start of the text was dropped to stay within `JOIN_TEXT_MAX`.
    cut: bool,
}

/// The assistant text a run has streamed so far, for a follower that joins now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedSoFar {
    pub text: String,
    /// Only the tail of the text is here.
    pub cut: bool,
    /// Every assistant event numbered up to here is part of `text`; later ones are not.
    pub seq: u64,
}

impl RunProgress {
    /// The text streamed since the run's last stored assistant message, and the event seq
    /// it covers.
    pub fn streamed_so_far(&self) -> StreamedSoFar {
        let st = self.text.lock().unwrap_or_else(|p| p.into_inner());
        StreamedSoFar {
            text: st.text.clone(),
            cut: st.cut,
            seq: self.seq.load(Ordering::Relaxed),
        }
    }
}

impl StreamedText {
    fn push(&mut self, delta: &str) {
        self.text.push_str(delta);
        if self.text.len() > JOIN_TEXT_MAX {
            // Drop down to half the bound, so trimming is rare and linear overall.
            let mut from = self.text.len() - JOIN_TEXT_MAX / 2;
            while !self.text.is_char_boundary(from) {
                from += 1;
            }
            self.text.drain(..from);
            self.cut = true;
        }
    }
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
        progress: Arc<RunProgress>,
    ) -> RunEvents {
        RunEvents {
            bus,
            store,
            sid,
            session_key: session_key.into(),
            run_id: run_id.into(),
            progress,
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
        let seq = self.progress.seq.fetch_add(1, Ordering::Relaxed) + 1;
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
                    shared: Default::default(),
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
            shared: Default::default(),
        });
    }

    pub fn lifecycle(&self, data: impl FnOnce() -> Value) {
        self.emit("lifecycle", data);
    }

    pub fn assistant_delta(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut so_far = self.progress.text.lock().unwrap_or_else(|p| p.into_inner());
        so_far.push(text);
        self.emit("assistant", || json!({ "delta": text }));
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
        if role == crate::protocol::Role::Assistant {
            // The text streamed so far is in the transcript from now on; a follower that
            // joins later reads it there.
            let mut so_far = self.progress.text.lock().unwrap_or_else(|p| p.into_inner());
            *so_far = StreamedText::default();
        }
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
    fn streamed_text_keeps_a_bounded_tail_on_char_boundaries() {
        let mut t = StreamedText::default();
        t.push("é");
        t.push(&"x".repeat(JOIN_TEXT_MAX));
        assert!(t.cut && t.text.len() <= JOIN_TEXT_MAX);
        assert!(t.text.chars().all(|c| c == 'x'));
        t.push("end");
        assert!(t.text.ends_with("xend"));
    }

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
