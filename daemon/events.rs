//! The event bus: everything that happens, pushed to whoever listens. One broadcast channel
//! of bounded size: a listener that falls behind learns how many events it missed, and
//! transcript followers then re-read what they missed from the store, so no message is ever
//! lost while memory stays bounded whatever the listeners do.

use std::sync::Arc;

use crate::protocol::{Message, SessionRow};
use serde_json::Value;
use tokio::sync::broadcast;

/// Events kept for slow listeners before they start to lag.
const CAPACITY: usize = 8192;

#[derive(Debug, Clone)]
pub enum Event {
    /// A committed transcript message.
    Message {
        sid: i64,
        session_key: Arc<str>,
        message: Arc<Message>,
    },
    /// A committed change to a session (create, start, message, end, patch, archive, delete).
    Changed {
        sid: i64,
        session_key: Arc<str>,
        phase: &'static str,
        row: Option<Arc<SessionRow>>,
    },
    /// Progress of a run: lifecycle, assistant text, tool calls, usage.
    Run {
        sid: i64,
        session_key: Arc<str>,
        run_id: Arc<str>,
        stream: &'static str,
        seq: u64,
        data: Arc<Value>,
    },
}

impl Event {
    pub fn sid(&self) -> i64 {
        match self {
            Event::Message { sid, .. } | Event::Changed { sid, .. } | Event::Run { sid, .. } => {
                *sid
            }
        }
    }
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// True when someone listens: events are only built then.
    pub fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event); // no listener is fine
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// What a running turn reports as it goes: its lifecycle, assistant text, tool calls and
/// usage, numbered per run so a consumer can tell when some were skipped. Tool calls and
/// results also go into the transcript.
#[derive(Clone)]
pub struct RunEvents {
    bus: EventBus,
    store: crate::daemon::store::Store,
    sid: i64,
    session_key: Arc<str>,
    run_id: Arc<str>,
    seq: Arc<std::sync::atomic::AtomicU64>,
}

impl RunEvents {
    pub fn new(
        bus: EventBus,
        store: crate::daemon::store::Store,
        sid: i64,
        session_key: &str,
        run_id: &str,
        seq: Arc<std::sync::atomic::AtomicU64>,
    ) -> RunEvents {
        RunEvents {
            bus,
            store,
            sid,
            session_key: session_key.into(),
            run_id: run_id.into(),
            seq,
        }
    }

    /// Publishes one event of `stream`; `data` is only built when someone listens.
    pub fn emit(&self, stream: &'static str, data: impl FnOnce() -> Value) {
        // The seq advances even unheard, so numbering stays per run, not per listener.
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if !self.bus.has_listeners() {
            return;
        }
        self.bus.publish(Event::Run {
            sid: self.sid,
            session_key: self.session_key.clone(),
            run_id: self.run_id.clone(),
            stream,
            seq,
            data: Arc::new(data()),
        });
    }

    pub fn lifecycle(&self, data: impl FnOnce() -> Value) {
        self.emit("lifecycle", data);
    }

    pub fn assistant_delta(&self, text: &str) {
        if !text.is_empty() {
            self.emit("assistant", || serde_json::json!({ "delta": text }));
        }
    }

    pub fn tool(&self, data: Value) {
        self.emit("tool", || data);
    }

    pub fn usage(&self, tokens: i64) {
        self.emit("usage", || serde_json::json!({ "tokens": tokens }));
    }

    /// Appends a message of this run to the transcript (tool calls and results).
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
