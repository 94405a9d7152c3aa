//! Live events as the commands that stream them see them (`sessions follow`, `subscribe`,
//! `send --stream`, `spawn --follow`): what kind each notification is and how it looks as a
//! JSON line ([`events`]), which transcript messages a follow has already printed
//! ([`cursor`]), what a run's end means for the exit status ([`outcome`]), and how it all
//! looks as text for people ([`message`], [`render`], [`reply`]). Everything here is pure; the commands
//! do the I/O.

pub mod cursor;
pub mod events;
pub mod message;
pub mod outcome;
pub mod render;
pub mod reply;

#[cfg(test)]
pub mod test_support {
    use openclaw::protocol::{
        Message, Provenance, ProvenanceKind, Role, RunEventParams, SessionMessageParams,
    };
    use serde_json::{Value, json};

    use super::events::LiveEvent;

    pub fn message(seq: u64, role: Role, content: &str, run: Option<&str>) -> Message {
        Message {
            seq,
            ts: "2026-11-21T23:19:23.123Z".into(),
            role,
            content: json!(content),
            run_id: run.map(str::to_string),
            provenance: Provenance {
                kind: ProvenanceKind::Operator,
                from: None,
            },
            usage: None,
            truncated: None,
            bytes: None,
        }
    }
    pub fn msg_event(seq: u64, role: Role, content: &str, run: Option<&str>) -> LiveEvent {
        LiveEvent::Message(SessionMessageParams {
            subscription: "s1".into(),
            session_key: "agent:main:main".into(),
            message: message(seq, role, content, run),
        })
    }
    pub fn run_event(run: &str, stream: &str, seq: u64, data: Value) -> RunEventParams {
        RunEventParams {
            subscription: "s1".into(),
            session_key: "agent:main:main".into(),
            run_id: run.into(),
            stream: stream.into(),
            seq,
            data,
        }
    }
}
