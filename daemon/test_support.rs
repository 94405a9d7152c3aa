//! Fixtures for the daemon's unit tests.

use serde_json::Value;

use crate::protocol::{Message, Provenance, ProvenanceKind, Role};

/// A text message from the operator, with no run, timestamp or usage; change the fields a
/// test needs with struct update syntax.
pub fn text_message(seq: u64, role: Role, text: &str) -> Message {
    Message {
        seq,
        ts: String::new(),
        role,
        content: Value::String(text.into()),
        run_id: None,
        provenance: Provenance {
            kind: ProvenanceKind::Operator,
            from: None,
        },
        usage: None,
        truncated: None,
        bytes: None,
    }
}
