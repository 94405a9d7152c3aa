//! What one change will announce: its events are collected while it is applied and
//! published only if it is kept and committed.

use std::sync::Arc;

use rusqlite::Connection;

use super::StoreError;
use super::queries;
use crate::daemon::events::Event;
use crate::protocol::{Message, Provenance};
use crate::timefmt::rfc3339_ms;

/// Collects the events of one change; they are published only if the change is kept.
pub struct Emit {
    on: bool,
    pub(super) events: Vec<Event>,
}

impl Emit {
    /// Collects events when `on` (someone listens), else nothing.
    pub(super) fn collecting(on: bool) -> Emit {
        Emit {
            on,
            events: Vec::new(),
        }
    }

    /// Collects nothing (offline loading, tests).
    pub fn disabled() -> Emit {
        Emit::collecting(false)
    }

    pub fn session_changed(
        &mut self,
        c: &Connection,
        sid: i64,
        phase: &'static str,
    ) -> Result<(), StoreError> {
        if !self.on {
            return Ok(());
        }
        if let Some(rec) = queries::session_row(c, sid)? {
            self.events.push(Event::Changed {
                sid,
                session_key: rec.key.as_str().into(),
                phase,
                row: Some(Arc::new(rec.to_row())),
                shared: Default::default(),
            });
        }
        Ok(())
    }

    pub fn deleted(&mut self, sid: i64, key: &str) {
        if self.on {
            self.events.push(Event::Changed {
                sid,
                session_key: key.into(),
                phase: "delete",
                row: None,
                shared: Default::default(),
            });
        }
    }

    pub fn message(
        &mut self,
        c: &Connection,
        sid: i64,
        seq: u64,
        m: &super::NewMessage,
    ) -> Result<(), StoreError> {
        if !self.on {
            return Ok(());
        }
        let Some(rec) = queries::session_row(c, sid)? else {
            return Ok(());
        };
        let key: Arc<str> = rec.key.as_str().into();
        let message = Message {
            seq,
            ts: rfc3339_ms(m.ts),
            role: m.role,
            content: m.content.clone(),
            run_id: m.run_id.clone(),
            provenance: Provenance {
                kind: m.provenance,
                from: m.from.clone(),
            },
            usage: m.usage.clone(),
            truncated: None,
            bytes: None,
        };
        self.events.push(Event::Message {
            sid,
            session_key: key.clone(),
            message: Arc::new(message),
            shared: Default::default(),
        });
        self.events.push(Event::Changed {
            sid,
            session_key: key,
            phase: "message",
            row: Some(Arc::new(rec.to_row())),
            shared: Default::default(),
        });
        Ok(())
    }
}
