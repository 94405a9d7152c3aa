//! The service's event streams as Server-Sent Events: `event:` is the notification's method,
//! `data:` its params (the very JSON the socket's notifications carry), and on a follow
//! `id:` is the message's seq, so `Last-Event-ID` resumes after the last message received.
//! Run events carry no `id:` (their seq is per run: resuming from one would skip messages).
//!
//! The body is pulled: the next event is taken from the stream only once hyper has room to
//! write it, so a client that reads slowly holds one event here and the socket's buffers, no
//! more; the stream itself catches a follow up from the store (SPEC §5).

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::daemon::service::{EventStream, StreamItem};
use crate::daemon::shared_encoding::SharedEncoding;
use crate::protocol::Role;

/// A comment line this often when nothing else was sent, so proxies and clients can tell a
/// quiet stream from a dead one.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The `subscription` field of every event's params (SSE has one stream per response).
const SUBSCRIPTION: &str = "sse";

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `id:` lines with message seqs (a follow of one session).
    pub ids: bool,
    /// Tool results too (history's `includeTools`).
    pub include_tools: bool,
}

/// The response that streams `stream` until it ends (deleted, shutdown) or the client goes.
pub fn respond(stream: EventStream, options: Options) -> Response {
    let events = futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        loop {
            let (item, shared) = stream.next_shared().await?;
            let Some(event) = encode_shared(&item, shared.as_ref(), options) else {
                continue;
            };
            let last = matches!(item, StreamItem::Ended { .. });
            return Some((Ok(event), (!last).then_some(stream)));
        }
    });
    sse_response(events)
}

/// An SSE response: a comment first (so the client sees the stream open at once), then the
/// events, with a heartbeat comment whenever [`HEARTBEAT`] passes without one.
fn sse_response<S>(events: S) -> Response
where
    S: futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    use futures_util::StreamExt;
    let opened = futures_util::stream::once(std::future::ready(Ok::<Event, Infallible>(
        Event::default().comment("openclaw"),
    )));
    let mut response = Sse::new(opened.chain(events))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-style proxies not to hold events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One stream item as an event; `None` for what this stream leaves out.
#[cfg(test)]
fn encode(item: &StreamItem, options: Options) -> Option<Event> {
    encode_shared(item, None, options)
}

/// The same, its data encoded once per event however many streams send it (`shared`).
fn encode_shared(
    item: &StreamItem,
    shared: Option<&SharedEncoding>,
    options: Options,
) -> Option<Event> {
    if let StreamItem::Message { message, .. } = item
        && !options.include_tools
        && message.role == Role::ToolResult
    {
        return None;
    }
    let (method, params) = crate::daemon::notify::params_shared(SUBSCRIPTION, item, shared);
    // Our own JSON encoding: UTF-8, and without raw newlines (they are escaped in strings).
    let data = String::from_utf8(params).ok()?;
    let event = Event::default().event(method).data(data);
    Some(match item {
        StreamItem::Message { message, .. } if options.ids => event.id(message.seq.to_string()),
        _ => event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;
    use std::sync::Arc;

    fn message(seq: u64, role: Role) -> StreamItem {
        StreamItem::Message {
            session_key: "agent:main:main".into(),
            message: Arc::new(Message {
                ts: "2026-01-01T00:00:00.000Z".into(),
                ..crate::daemon::test_support::text_message(seq, role, "line one\nline two")
            }),
        }
    }

    /// An event as it goes on the wire.
    async fn wire(event: Event) -> String {
        let body = Sse::new(futures_util::stream::iter([Ok::<_, Infallible>(event)]))
            .into_response()
            .into_body();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn messages_carry_their_seq_and_run_events_none() {
        let both = Options {
            ids: true,
            include_tools: true,
        };
        let text = wire(encode(&message(7, Role::User), both).unwrap()).await;
        assert!(text.starts_with("event: session.message\n"), "{text}");
        assert!(text.contains("\nid: 7\n"), "{text}");
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("a data line");
        assert_eq!(text.matches("data: ").count(), 1, "one data line: {text}");
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["message"]["seq"], 7);
        let run = StreamItem::Run {
            session_key: "k".into(),
            run_id: "r".into(),
            stream: "assistant",
            seq: 3,
            data: Arc::new(serde_json::json!({"delta": "x"})),
        };
        let text = wire(encode(&run, both).unwrap()).await;
        assert!(
            text.starts_with("event: run.event\n") && !text.contains("id:"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_a_heartbeat_every_15_seconds() {
        use futures_util::StreamExt;
        let mut body = sse_response(futures_util::stream::pending())
            .into_body()
            .into_data_stream();
        let start = tokio::time::Instant::now();
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b": openclaw\n\n");
        for n in 1..=3u32 {
            let beat = body.next().await.unwrap().unwrap();
            assert!(beat.starts_with(b":"), "a comment: {beat:?}");
            assert_eq!(start.elapsed(), HEARTBEAT * n);
        }
    }

    #[tokio::test]
    async fn tool_results_only_when_asked_and_no_ids_off_a_follow() {
        let neither = Options {
            ids: false,
            include_tools: false,
        };
        assert!(encode(&message(1, Role::ToolResult), neither).is_none());
        let text = wire(encode(&message(1, Role::Assistant), neither).unwrap()).await;
        assert!(!text.contains("id:"), "{text}");
    }
}
