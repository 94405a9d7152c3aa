//! Property tests (issue 6, part 5) for the two places the daemon parses what a peer sends:
//! the NDJSON frame decoder (`openclaw::frame::FrameReader`) and the params of every method.
//!
//! Run: `cargo test --test properties` (256 cases per property, 1024 for arbitrary JSON; about
//! 15 s). For a longer search of the others: `PROPTEST_CASES=20000 cargo test --test
//! properties`. A failure prints the minimal input proptest shrank it to (no regression file
//! is written into the tree).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use openclaw::frame::{Frame, FrameError, FrameReader};
use openclaw::protocol::{
    ApproveParams, Attachment, AuthenticateParams, Cleanup, DeleteParams, EventKind, GetParams,
    HelloParams, HistoryParams, HttpTokenParams, KillParams, ListParams, MessageParams, NoParams,
    PatchParams, RejectParams, RevokeParams, Runtime, SendParams, ShutdownParams, SpawnMode,
    SpawnParams, SubscribeParams, UnsubscribeParams, WaitParams,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

// ------------------------------------------------------------------ the frame decoder

/// A byte stream that arrives in the given chunks: each `fill_buf` offers (the rest of) one
/// chunk, and every `pending_every`-th call (when 2 or more) answers `Pending` after waking
/// itself, as a socket with nothing to read yet would.
struct Chunked {
    chunks: Vec<Vec<u8>>,
    index: usize,
    pos: usize,
    calls: usize,
    pending_every: usize,
}

impl Chunked {
    fn new(input: &[u8], cuts: &[usize], pending_every: usize) -> Chunked {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.push(0);
        points.push(input.len());
        points.sort_unstable();
        points.dedup();
        let chunks = points
            .windows(2)
            .map(|w| input[w[0]..w[1]].to_vec())
            .collect();
        Chunked {
            chunks,
            index: 0,
            pos: 0,
            calls: 0,
            pending_every,
        }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = match self.as_mut().poll_fill_buf(cx) {
            Poll::Ready(Ok(a)) => a,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for Chunked {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.calls += 1;
        if this.pending_every > 1 && this.calls.is_multiple_of(this.pending_every) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        while this.index < this.chunks.len() && this.pos >= this.chunks[this.index].len() {
            this.index += 1;
            this.pos = 0;
        }
        if this.index == this.chunks.len() {
            return Poll::Ready(Ok(&[]));
        }
        Poll::Ready(Ok(&this.chunks[this.index][this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().pos += amt;
    }
}

/// What the decoder produced, in order, until the end of the stream or an error.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Line(Vec<u8>),
    TooLarge,
    /// Clean end of stream between frames.
    End,
    /// The stream ended inside a frame of this many bytes.
    Truncated(usize),
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// Decodes the whole input. Fails (instead of looping) if the decoder does not make progress:
/// there can be no more frames than bytes.
fn decode(
    input: &[u8],
    limit: usize,
    cuts: &[usize],
    pending_every: usize,
) -> Result<Vec<Out>, TestCaseError> {
    let mut reader = FrameReader::new(Chunked::new(input, cuts, pending_every), limit);
    let mut out = Vec::new();
    block_on(async {
        loop {
            if out.len() > input.len() + 1 {
                return Err(TestCaseError::fail(format!(
                    "the decoder returned {} frames from {} bytes: it does not make progress; so far: {out:?}",
                    out.len(),
                    input.len()
                )));
            }
            match reader.next_frame().await {
                Ok(Some(Frame::Line(l))) => out.push(Out::Line(l)),
                Ok(Some(Frame::TooLarge { limit: l })) => {
                    if l != limit {
                        return Err(TestCaseError::fail(format!(
                            "TooLarge reports limit {l}, the reader's is {limit}"
                        )));
                    }
                    out.push(Out::TooLarge)
                }
                Ok(None) => {
                    out.push(Out::End);
                    return Ok(out);
                }
                Err(FrameError::TruncatedFrame(n)) => {
                    out.push(Out::Truncated(n));
                    return Ok(out);
                }
                Err(FrameError::Io(e)) => {
                    return Err(TestCaseError::fail(format!(
                        "I/O error from an in-memory stream: {e}"
                    )));
                }
            }
        }
    })
}

/// Bytes rich in the characters the decoder cares about.
fn frame_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => Just(b'\n'),
        2 => Just(b'\r'),
        2 => Just(b' '),
        2 => Just(b'{'),
        11 => any::<u8>(),
    ]
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=16, 1usize..=300, Just(1024)]
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..40)
}

/// A line the decoder must return as is: no newline, not blank, no trailing '\r'.
fn good_line(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
        1..=max.max(1),
    )
    .prop_filter("not blank, no trailing CR", |l| {
        !l.iter().all(u8::is_ascii_whitespace) && l.last() != Some(&b'\r')
    })
}

/// A line over the limit: any bytes but a newline, and no trailing '\r' (which an LF ending
/// would strip, bringing a line of limit + 1 back within the limit).
fn oversize_line(limit: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
        limit + 1..limit + 300,
    )
    .prop_filter("no trailing CR", |l| l.last() != Some(&b'\r'))
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the bytes, the decoder ends, never panics, and never returns a line longer
    /// than the limit (or one holding a newline, or a blank one).
    #[test]
    fn frame_decoder_never_returns_a_line_over_the_limit(
        input in prop::collection::vec(frame_byte(), 0..3000),
        limit in limit(),
        cuts in cuts(),
        pending_every in 0usize..6,
    ) {
        let out = decode(&input, limit, &cuts, pending_every)?;
        for o in &out {
            if let Out::Line(l) = o {
                prop_assert!(l.len() <= limit, "a line of {} bytes over the limit {limit}", l.len());
                prop_assert!(!l.contains(&b'\n'), "a line holding a newline: {l:?}");
                prop_assert!(!l.iter().all(u8::is_ascii_whitespace), "a blank line returned: {l:?}");
            }
        }
        prop_assert!(
            matches!(out.last(), Some(Out::End | Out::Truncated(_))),
            "the decoder must end with the end of the stream: {out:?}"
        );
        if let Some(Out::Truncated(n)) = out.last() {
            prop_assert!(*n > 0 && *n <= limit + 1, "a truncated frame of {n} bytes (limit {limit})");
        }
    }

    /// However the same bytes are chunked (down to one byte at a time, with reads that are not
    /// ready yet in between), the decoder returns the same frames.
    #[test]
    fn frame_decoder_is_independent_of_chunking(
        input in prop::collection::vec(frame_byte(), 0..3000),
        limit in limit(),
        cuts in cuts(),
        pending_every in 0usize..6,
    ) {
        let whole = decode(&input, limit, &[], 0)?;
        let chunked = decode(&input, limit, &cuts, pending_every)?;
        prop_assert_eq!(&chunked, &whole, "chunked at {:?} vs whole", cuts);
        let bytewise: Vec<usize> = (1..input.len()).collect();
        let single = decode(&input, limit, &bytewise, 0)?;
        prop_assert_eq!(&single, &whole, "one byte at a time vs whole");
    }

    /// Valid input (lines within the limit, LF or CRLF, blank lines between, oversize lines
    /// mixed in) comes back exactly: each line, a TooLarge for each oversize one, then the end
    /// — for every chunking.
    #[test]
    fn frame_decoder_reassembles_valid_input_exactly(
        (limit, lines) in (1usize..=200).prop_flat_map(|limit| (Just(limit), prop::collection::vec(
            (
                prop_oneof![
                    8 => good_line(limit).prop_map(|l| (false, l)),
                    1 => oversize_line(limit).prop_map(|l| (true, l)),
                ],
                any::<bool>(),
                0usize..3,
            ),
            0..30,
        ))),
        cuts in cuts(),
        pending_every in 0usize..6,
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for ((oversize, line), crlf, blanks) in &lines {
            for _ in 0..*blanks {
                input.extend_from_slice(if *crlf { b" \r\n" } else { b"\n" });
            }
            input.extend_from_slice(line);
            input.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            expected.push(if *oversize { Out::TooLarge } else { Out::Line(line.clone()) });
        }
        expected.push(Out::End);
        let got = decode(&input, limit, &cuts, pending_every)?;
        prop_assert_eq!(got, expected);
    }
}

// ------------------------------------------------------------------ params

/// Text of any kind: NUL, controls, quotes, backslashes, astral characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z:0-9-]{0,24}", Just(String::new())]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

/// Seconds that print and parse back exactly (no last-bit loss in the float round trip).
fn seconds() -> impl Strategy<Value = f64> {
    (-10_000_000_000i64..10_000_000_000).prop_map(|n| n as f64 / 1000.0)
}

/// JSON values whose numbers survive a text round trip exactly.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        seconds().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn attachment() -> impl Strategy<Value = Attachment> {
    (text(), text(), opt_text()).prop_map(|(name, content, encoding)| Attachment {
        name,
        content,
        encoding,
    })
}

fn spawn_params() -> impl Strategy<Value = SpawnParams> {
    (
        (
            text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            prop::option::of(seconds()),
        ),
        (
            prop::option::of(prop_oneof![Just(SpawnMode::Run), Just(SpawnMode::Session)]),
            prop::option::of(prop_oneof![Just(Cleanup::Keep), Just(Cleanup::Delete)]),
            prop::option::of(prop_oneof![Just(Runtime::Subagent), Just(Runtime::Acp)]),
            prop::collection::vec(attachment(), 0..3),
            opt_text(),
            prop::option::of(json_value()),
            prop::option::of(json_value()),
            opt_text(),
        ),
    )
        .prop_map(
            |(
                (task, agent_id, label, model, thinking, run_timeout_seconds),
                (
                    mode,
                    cleanup,
                    runtime,
                    attachments,
                    parent_key,
                    stream_to,
                    resume_session_id,
                    idempotency_key,
                ),
            )| SpawnParams {
                key: idempotency_key.clone().map(|k| format!("cron:{k}")),
                task,
                agent_id,
                label,
                model,
                thinking,
                run_timeout_seconds,
                mode,
                cleanup,
                runtime,
                attachments,
                parent_key,
                // `null` means absent for an optional JSON value: it cannot round-trip as
                // Some(Null), and a client cannot tell them apart either.
                stream_to: stream_to.filter(|v| !v.is_null()),
                resume_session_id: resume_session_id.filter(|v| !v.is_null()),
                idempotency_key,
            },
        )
}

fn event_kinds() -> impl Strategy<Value = Option<Vec<EventKind>>> {
    prop::option::of(prop::collection::vec(
        prop::sample::select(EventKind::ALL.to_vec()),
        0..6,
    ))
}

fn scopes() -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::of(prop::collection::vec(text(), 0..4))
}

/// Serialized, parsed back (from text, and from a `Value` the way the daemon parses params:
/// serde_path_to_error over the value), serialized again: the same JSON every time.
fn round_trips<T: Serialize + DeserializeOwned>(p: &T) -> Result<(), TestCaseError> {
    let value =
        serde_json::to_value(p).map_err(|e| TestCaseError::fail(format!("to_value: {e}")))?;
    let text =
        serde_json::to_string(p).map_err(|e| TestCaseError::fail(format!("to_string: {e}")))?;
    let from_text: T = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("parsing back {text}: {e}")))?;
    prop_assert_eq!(
        serde_json::to_value(&from_text).expect("serialize"),
        value.clone(),
        "text round trip of {}",
        text
    );
    let from_value: T = serde_path_to_error::deserialize(value.clone())
        .map_err(|e| TestCaseError::fail(format!("parsing back the value {value}: {e}")))?;
    prop_assert_eq!(
        serde_json::to_value(&from_value).expect("serialize"),
        value,
        "value round trip"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hello_params_round_trip(client in opt_text(), run_token in opt_text()) {
        round_trips(&HelloParams { client, run_token })?;
    }

    #[test]
    fn spawn_params_round_trip(p in spawn_params()) {
        round_trips(&p)?;
    }

    #[test]
    fn send_and_wait_params_round_trip(
        session_key in text(), message in text(), timeout in prop::option::of(seconds()),
        stream in prop::option::of(any::<bool>()), idem in opt_text(),
        run_id in opt_text(), wait_key in opt_text(), wait_timeout in prop::option::of(seconds()),
    ) {
        round_trips(&SendParams {
            session_key, message, timeout_seconds: timeout, stream_progress: stream, idempotency_key: idem,
        })?;
        round_trips(&WaitParams { run_id, session_key: wait_key, timeout_seconds: wait_timeout })?;
    }

    #[test]
    fn history_list_and_subscribe_params_round_trip(
        key in text(), limit in prop::option::of(any::<u32>()), cursor in opt_text(),
        tools in prop::option::of(any::<bool>()),
        kinds in prop::option::of(prop::collection::vec(text(), 0..4)),
        active in prop::option::of(any::<u64>()), message_limit in prop::option::of(any::<u32>()),
        parent in opt_text(), archived in prop::option::of(any::<bool>()),
        sub_key in opt_text(), after in prop::option::of(any::<u64>()), run in opt_text(),
        events in event_kinds(),
    ) {
        round_trips(&HistoryParams { session_key: key, limit, cursor: cursor.clone(), include_tools: tools })?;
        round_trips(&ListParams {
            kinds, limit, cursor, active_minutes: active, message_limit, parent_key: parent,
            include_archived: archived,
        })?;
        round_trips(&SubscribeParams { session_key: sub_key, after_seq: after, run_id: run, events })?;
    }

    #[test]
    fn session_admin_params_round_trip(
        key in text(), clear in prop::option::of(any::<bool>()), label in opt_text(),
        policy in opt_text(), archived in prop::option::of(any::<bool>()), sub in text(),
    ) {
        round_trips(&KillParams { session_key: key.clone(), clear_queued: clear })?;
        round_trips(&PatchParams { session_key: key.clone(), label, send_policy: policy, archived, model: None })?;
        round_trips(&DeleteParams { session_key: key })?;
        round_trips(&UnsubscribeParams { subscription: sub })?;
        round_trips(&NoParams {})?;
    }

    #[test]
    fn pairing_params_round_trip(
        public_key in text(), signature in text(), request_id in text(), scopes in scopes(),
        device in text(),
    ) {
        round_trips(&AuthenticateParams { public_key, signature })?;
        round_trips(&ApproveParams { request_id: request_id.clone(), scopes })?;
        round_trips(&RejectParams { request_id })?;
        round_trips(&RevokeParams { device })?;
    }
}

// ------------------------------------------------------------------ arbitrary JSON into params

/// Every field name of every params type, so that arbitrary objects often hit real fields.
const FIELDS: &[&str] = &[
    "client",
    "key",
    "seq",
    "offset",
    "length",
    "drain",
    "rotate",
    "runToken",
    "task",
    "agentId",
    "label",
    "model",
    "thinking",
    "runTimeoutSeconds",
    "mode",
    "cleanup",
    "runtime",
    "attachments",
    "name",
    "content",
    "encoding",
    "parentKey",
    "streamTo",
    "resumeSessionId",
    "idempotencyKey",
    "sessionKey",
    "message",
    "timeoutSeconds",
    "streamProgress",
    "runId",
    "limit",
    "cursor",
    "includeTools",
    "kinds",
    "activeMinutes",
    "messageLimit",
    "includeArchived",
    "clearQueued",
    "sendPolicy",
    "archived",
    "afterSeq",
    "events",
    "subscription",
    "publicKey",
    "signature",
    "requestId",
    "scopes",
    "device",
];

/// Any JSON at all, floats included, with object keys mostly real field names and values
/// mostly of plausible shapes.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
        prop::sample::select(vec![
            "run",
            "session",
            "keep",
            "delete",
            "subagent",
            "acp",
            "message",
            "lifecycle",
            "assistant",
            "tool",
            "usage",
            "admin",
            "sessions.read",
            "utf8",
            "base64"
        ])
        .prop_map(Value::from),
    ];
    let key = prop_oneof![4 => prop::sample::select(FIELDS).prop_map(str::to_string), 1 => text()];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// An arbitrary value into `T`, parsed as the daemon's JSON-RPC transport parses params
/// (`openclaw::daemon::rpc::parse`), must not panic. When it is accepted, what it means
/// (serialized again) is accepted again and means the same: parsing is a fixpoint after one
/// step.
fn parse_is_total<T: Serialize + DeserializeOwned>(v: &Value) -> Result<(), TestCaseError> {
    if let Ok(p) = openclaw::daemon::rpc::parse::<T>(Some(v.clone())) {
        let once = serde_json::to_value(&p).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let again: T = serde_json::from_value(once.clone()).map_err(|e| {
            TestCaseError::fail(format!(
                "{v} was accepted as {once}, which is then refused: {e}"
            ))
        })?;
        prop_assert_eq!(
            serde_json::to_value(&again).expect("serialize"),
            once,
            "from {}",
            v
        );
    }
    Ok(())
}

fn all_params_parse_total(v: &Value) -> Result<(), TestCaseError> {
    parse_is_total::<HelloParams>(v)?;
    parse_is_total::<SpawnParams>(v)?;
    parse_is_total::<Attachment>(v)?;
    parse_is_total::<SendParams>(v)?;
    parse_is_total::<WaitParams>(v)?;
    parse_is_total::<HistoryParams>(v)?;
    parse_is_total::<ListParams>(v)?;
    parse_is_total::<KillParams>(v)?;
    parse_is_total::<PatchParams>(v)?;
    parse_is_total::<DeleteParams>(v)?;
    parse_is_total::<NoParams>(v)?;
    parse_is_total::<SubscribeParams>(v)?;
    parse_is_total::<UnsubscribeParams>(v)?;
    parse_is_total::<AuthenticateParams>(v)?;
    parse_is_total::<ApproveParams>(v)?;
    parse_is_total::<RejectParams>(v)?;
    parse_is_total::<RevokeParams>(v)?;
    parse_is_total::<GetParams>(v)?;
    parse_is_total::<MessageParams>(v)?;
    parse_is_total::<ShutdownParams>(v)?;
    parse_is_total::<HttpTokenParams>(v)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary JSON (top-level objects with real field names, mostly) into every params
    /// type: errors are fine, panics are not, and what is accepted is stable.
    #[test]
    fn arbitrary_json_into_every_params_type_never_panics(
        fields in prop::collection::vec(
            (prop::sample::select(FIELDS).prop_map(str::to_string), any_json()), 0..10),
        other in any_json(),
    ) {
        let object = Value::Object(fields.into_iter().collect());
        all_params_parse_total(&object)?;
        all_params_parse_total(&other)?;
    }

    /// Arbitrary bytes, parsed as the daemon parses a frame, into every params type.
    #[test]
    fn arbitrary_bytes_into_every_params_type_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            all_params_parse_total(&v)?;
        }
        let _ = serde_json::from_slice::<SpawnParams>(&bytes);
        let _ = serde_json::from_slice::<ListParams>(&bytes);
    }
}
