//! The wire shape of what a stream yields: the params of `session.message`,
//! `sessions.changed`, `run.event`, `subscription.lagged` and `subscription.ended`, as the
//! protocol's types define them (`crate::protocol::events`), encoded without copying the
//! message. JSON-RPC wraps them in a notification; SSE sends them as an event's data.

use serde::Serialize;
use serde_json::Value;

use crate::daemon::service::StreamItem;
use crate::protocol::{Message, SessionRow, notifications};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageParams<'a> {
    subscription: &'a str,
    session_key: &'a str,
    message: &'a Message,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangedParams<'a> {
    subscription: &'a str,
    phase: &'a str,
    session_key: &'a str,
    session: Option<&'a SessionRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunParams<'a> {
    subscription: &'a str,
    session_key: &'a str,
    run_id: &'a str,
    stream: &'a str,
    seq: u64,
    data: &'a Value,
}

#[derive(Serialize)]
struct LaggedParams<'a> {
    subscription: &'a str,
    skipped: u64,
}

#[derive(Serialize)]
struct EndedParams<'a> {
    subscription: &'a str,
    reason: &'a str,
}

/// The notification method and its params (JSON) for one stream item.
pub fn params(subscription: &str, item: &StreamItem) -> (&'static str, Vec<u8>) {
    let encoded = match item {
        StreamItem::Message {
            session_key,
            message,
        } => (
            notifications::SESSION_MESSAGE,
            serde_json::to_vec(&MessageParams {
                subscription,
                session_key,
                message,
            }),
        ),
        StreamItem::Changed {
            phase,
            session_key,
            session,
        } => (
            notifications::SESSIONS_CHANGED,
            serde_json::to_vec(&ChangedParams {
                subscription,
                phase,
                session_key,
                session: session.as_deref(),
            }),
        ),
        StreamItem::Run {
            session_key,
            run_id,
            stream,
            seq,
            data,
        } => (
            notifications::RUN_EVENT,
            serde_json::to_vec(&RunParams {
                subscription,
                session_key,
                run_id,
                stream,
                seq: *seq,
                data,
            }),
        ),
        StreamItem::Lagged { skipped } => (
            notifications::SUBSCRIPTION_LAGGED,
            serde_json::to_vec(&LaggedParams {
                subscription,
                skipped: *skipped,
            }),
        ),
        StreamItem::Ended { reason } => (
            notifications::SUBSCRIPTION_ENDED,
            serde_json::to_vec(&EndedParams {
                subscription,
                reason,
            }),
        ),
    };
    // Encoding our own types into memory cannot fail; an empty object keeps the frame valid.
    (encoded.0, encoded.1.unwrap_or_else(|_| b"{}".to_vec()))
}

/// A JSON-RPC notification frame around encoded params.
pub fn frame(method: &str, params: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(params.len() + method.len() + 40);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"");
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b"\",\"params\":");
    out.extend_from_slice(params);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        Notification, Provenance, ProvenanceKind, Role, RunEventParams, SessionMessageParams,
        SubscriptionEndedParams, SubscriptionLaggedParams,
    };
    use std::sync::Arc;

    fn decode(frame: &[u8]) -> Notification {
        serde_json::from_slice(frame).unwrap()
    }

    #[test]
    fn every_item_reads_back_as_the_protocols_own_type() {
        let message = Message {
            seq: 3,
            ts: "2026-01-01T00:00:00.000Z".into(),
            role: Role::User,
            content: Value::String("hi \"there\"".into()),
            run_id: Some("r".into()),
            provenance: Provenance {
                kind: ProvenanceKind::Operator,
                from: None,
            },
            usage: None,
            truncated: None,
            bytes: None,
        };
        let item = StreamItem::Message {
            session_key: "agent:main:main".into(),
            message: Arc::new(message.clone()),
        };
        let (method, p) = params("sub-1", &item);
        let n = decode(&frame(method, &p));
        assert_eq!(n.method, "session.message");
        let back: SessionMessageParams = serde_json::from_value(n.params).unwrap();
        assert_eq!(back.subscription, "sub-1");
        assert_eq!(back.session_key, "agent:main:main");
        assert_eq!(back.message, message);

        let item = StreamItem::Run {
            session_key: "k".into(),
            run_id: "r".into(),
            stream: "assistant",
            seq: 7,
            data: Arc::new(serde_json::json!({"delta": "x"})),
        };
        let (method, p) = params("run:r", &item);
        let back: RunEventParams = serde_json::from_slice(&p).unwrap();
        assert_eq!(
            (method, back.seq, back.stream.as_str()),
            ("run.event", 7, "assistant")
        );

        let (_, p) = params("s", &StreamItem::Lagged { skipped: 4 });
        let back: SubscriptionLaggedParams = serde_json::from_slice(&p).unwrap();
        assert_eq!(back.skipped, 4);
        let (_, p) = params("s", &StreamItem::Ended { reason: "deleted" });
        let back: SubscriptionEndedParams = serde_json::from_slice(&p).unwrap();
        assert_eq!(back.reason, "deleted");
    }
}
