//! The wire shape of what a stream yields: the params of `session.message`,
//! `sessions.changed`, `run.event`, `subscription.lagged` and `subscription.ended`, as the
//! protocol's types define them (`crate::protocol::events`), encoded without copying the
//! message. JSON-RPC wraps them in a notification; SSE sends them as an event's data.

use serde::Serialize;
use serde_json::Value;

use crate::daemon::service::StreamItem;
use crate::daemon::shared_encoding::SharedEncoding;
use crate::protocol::{Message, SessionRow, notifications};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<&'a str>,
    session_key: &'a str,
    message: &'a Message,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangedParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<&'a str>,
    phase: &'a str,
    session_key: &'a str,
    session: Option<&'a SessionRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<&'a str>,
    session_key: &'a str,
    run_id: &'a str,
    stream: &'a str,
    seq: u64,
    data: &'a Value,
}

#[derive(Serialize)]
struct LaggedParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<&'a str>,
    skipped: u64,
}

#[derive(Serialize)]
struct EndedParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<&'a str>,
    reason: &'a str,
}

/// The notification method and its params (JSON) for one stream item.
pub fn params(subscription: &str, item: &StreamItem) -> (&'static str, Vec<u8>) {
    encode(Some(subscription), item)
}

/// The same as [`params`], byte for byte, with everything but the `subscription` id encoded
/// once per published event (`shared`) however many subscribers forward it.
pub fn params_shared(
    subscription: &str,
    item: &StreamItem,
    shared: Option<&SharedEncoding>,
) -> (&'static str, Vec<u8>) {
    let Some(shared) = shared else {
        return params(subscription, item);
    };
    let rest = shared.params(|| encode(None, item).1);
    (method_of(item), splice(subscription, rest))
}

/// `{"subscription":"<id>",` then the rest of the params after their opening brace: the
/// subscription is every params' first field.
fn splice(subscription: &str, rest: &[u8]) -> Vec<u8> {
    let id = serde_json::to_vec(subscription).unwrap_or_else(|_| b"\"\"".to_vec());
    let mut out = Vec::with_capacity(rest.len() + id.len() + 20);
    out.extend_from_slice(b"{\"subscription\":");
    out.extend_from_slice(&id);
    match rest.get(1..) {
        Some(b"}") | None => out.push(b'}'),
        Some(after_brace) => {
            out.push(b',');
            out.extend_from_slice(after_brace);
        }
    }
    out
}

fn method_of(item: &StreamItem) -> &'static str {
    match item {
        StreamItem::Message { .. } => notifications::SESSION_MESSAGE,
        StreamItem::Changed { .. } => notifications::SESSIONS_CHANGED,
        StreamItem::Run { .. } => notifications::RUN_EVENT,
        StreamItem::Lagged { .. } => notifications::SUBSCRIPTION_LAGGED,
        StreamItem::Ended { .. } => notifications::SUBSCRIPTION_ENDED,
    }
}

/// The params of `item`, with `subscription` first when given.
fn encode(subscription: Option<&str>, item: &StreamItem) -> (&'static str, Vec<u8>) {
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

    #[test]
    fn shared_params_are_the_same_bytes_encoded_once() {
        let items = [
            StreamItem::Message {
                session_key: "agent:main:main".into(),
                message: Arc::new(Message {
                    seq: 9,
                    ts: "2026-01-01T00:00:00.000Z".into(),
                    role: Role::Assistant,
                    content: Value::String("a \"quoted\" reply".into()),
                    run_id: None,
                    provenance: Provenance {
                        kind: ProvenanceKind::Operator,
                        from: None,
                    },
                    usage: None,
                    truncated: Some(true),
                    bytes: Some(4),
                }),
            },
            StreamItem::Changed {
                phase: "delete",
                session_key: "k".into(),
                session: None,
            },
            StreamItem::Run {
                session_key: "k".into(),
                run_id: "r".into(),
                stream: "tool",
                seq: 2,
                data: Arc::new(serde_json::json!({"name": "x"})),
            },
            StreamItem::Lagged { skipped: 3 },
            StreamItem::Ended { reason: "shutdown" },
        ];
        for item in &items {
            let shared = SharedEncoding::default();
            for sub in ["sub-1", "sub-22", "a \"tricky\" id"] {
                assert_eq!(
                    params_shared(sub, item, Some(&shared)),
                    params(sub, item),
                    "{item:?} for {sub}"
                );
            }
        }
    }
}
