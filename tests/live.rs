//! Live sessions over the raw socket (issue 3): gapless follows while another client appends
//! 10,000 messages (from the start and attaching mid-burst), a consumer that stalls and then
//! drains (daemon buffers stay bounded), `sessions.send` with `streamProgress` on an exec jsonl
//! agent (and live, not at exit), all-sessions subscriptions, unsubscribe, delete, several
//! subscriptions on one connection, and shutdown. The CLI side is in tests/live_cli.rs.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Daemon, FifoGate, JSONL_SCRIPT, steps};
use openclaw::Client;
use serde_json::{Value, json};

/// Per-frame safety net on raw connections: a missing notification or reply fails the test.
const READ_SECS: u64 = 20;

// ------------------------------------------------------------------ a raw connection that
// tells replies from notifications

/// A blocking NDJSON connection that sends requests with increasing ids and keeps the
/// notifications it reads while waiting for a reply, so none is lost.
struct EventConn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: i64,
    /// Notifications read while waiting for a reply, not yet handed out.
    pending: VecDeque<Value>,
    what: String,
}

impl EventConn {
    fn connect(d: &Daemon, what: &str) -> EventConn {
        let stream = UnixStream::connect(d.socket())
            .unwrap_or_else(|e| panic!("{what}: connect {}: {e}", d.socket().display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(READ_SECS)))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(READ_SECS)))
            .expect("write timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        EventConn {
            stream,
            reader,
            next_id: 1,
            pending: VecDeque::new(),
            what: what.to_string(),
        }
    }

    fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("read timeout");
    }

    /// The next frame from the socket itself: `Ok(None)` at end of stream, `Err` when nothing
    /// arrives within the read timeout.
    fn read_frame(&mut self) -> Result<Option<Value>, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => serde_json::from_str(line.trim_end())
                .map(Some)
                .map_err(|e| format!("{}: daemon sent bad JSON ({e}): {line}", self.what)),
            Err(e) => Err(format!("{}: nothing from the daemon: {e}", self.what)),
        }
    }

    /// Writes a request; returns its id.
    fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut bytes = req.to_string().into_bytes();
        bytes.push(b'\n');
        self.stream
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("{}: write {method}: {e}", self.what));
        id
    }

    /// Reads until the response with this id (notifications on the way are kept for
    /// `next_event`); panics at end of stream or timeout.
    fn reply(&mut self, id: i64, what: &str) -> Value {
        loop {
            match self.read_frame() {
                Ok(Some(v)) if is_notification(&v) => self.pending.push_back(v),
                Ok(Some(v)) => {
                    assert_eq!(
                        v["id"], id,
                        "{}: reply to {what} carries another id: {v}",
                        self.what
                    );
                    return v;
                }
                Ok(None) => panic!(
                    "{}: the daemon closed the connection before answering {what}",
                    self.what
                ),
                Err(e) => panic!("{e} (waiting for the reply to {what})"),
            }
        }
    }

    /// Calls a method and asserts success; returns `result`.
    fn ok(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params.clone());
        let resp = self.reply(id, method);
        assert!(
            resp.get("error").is_none() && resp.get("result").is_some(),
            "{}: {method} {params} failed: {resp}",
            self.what
        );
        resp["result"].clone()
    }

    /// The next notification (kept ones first); panics at end of stream, on timeout, or when a
    /// reply arrives instead (no call is outstanding when this is used).
    fn next_event(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        match self.read_frame() {
            Ok(Some(v)) if is_notification(&v) => v,
            Ok(Some(v)) => panic!(
                "{}: unexpected reply while waiting for notifications: {v}",
                self.what
            ),
            Ok(None) => panic!(
                "{}: the daemon closed the connection while a notification was expected",
                self.what
            ),
            Err(e) => panic!("{e} (waiting for a notification)"),
        }
    }

    /// A `hello` round trip; returns every notification that arrived before its reply (the
    /// kept ones included). Everything the daemon queued for this connection before it
    /// answered the hello has then been read.
    fn barrier(&mut self) -> Vec<Value> {
        self.ok("hello", json!({}));
        self.pending.drain(..).collect()
    }
}

fn is_notification(v: &Value) -> bool {
    v.get("method").is_some() && v.get("id").is_none()
}

fn method(n: &Value) -> &str {
    n["method"].as_str().unwrap_or("")
}

fn sub_of(n: &Value) -> &str {
    n["params"]["subscription"].as_str().unwrap_or("")
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A config whose default agent `main` runs `sh -c SCRIPT` with this stdout format.
fn exec_config(script: &str, format: &str) -> String {
    format!(
        "default_agent = \"main\"\n\n[agents.main]\nbackend = \"exec\"\nformat = \"{format}\"\ncommand = [\"sh\", \"-c\", {}]\n",
        toml_str(script)
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("openclaw-live-")
        .tempdir()
        .expect("tempdir")
}

// ------------------------------------------------------------------ bursts of sends

/// Sends of one burst: each adds a user message and, when its run ends, the echo reply, so the
/// burst appends 10,000 messages.
const BURST_SENDS: usize = 5_000;
/// So a 5,000-run backlog on one session is not refused as `busy`.
const BURST_CONFIG: &str = "[limits]\nmax_queued_per_session = 100000\nmax_queued_runs = 100000\n";
/// How long a follower may take to see everything (a safety net, not a synchronisation).
const FOLLOW_SECS: u64 = 90;

/// Pipelines `sends` fire-and-forget `sessions.send` (timeoutSeconds 0, messages `burst N`) to
/// `key` over `conns` connections with `callers` requests in flight on each. `acked` counts the
/// accepted ones, and `progress` is told each new count.
async fn burst(
    socket: PathBuf,
    key: &str,
    sends: usize,
    conns: usize,
    callers: usize,
    progress: Arc<tokio::sync::watch::Sender<usize>>,
) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let client = Arc::new(
            Client::connect(&socket)
                .await
                .expect("connect a burst writer"),
        );
        for _ in 0..callers {
            let (client, next, acked, progress, key) = (
                client.clone(),
                next.clone(),
                acked.clone(),
                progress.clone(),
                key.to_string(),
            );
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= sends {
                        return Ok(());
                    }
                    let params = json!({"sessionKey": key, "message": format!("burst {i}"), "timeoutSeconds": 0});
                    match client.call_value("sessions.send", &params).await {
                        Ok(r) if r["status"] == "accepted" && r["runId"].is_string() => {
                            let n = acked.fetch_add(1, Ordering::SeqCst) + 1;
                            progress.send_modify(|v| *v = (*v).max(n));
                        }
                        Ok(r) => return Err(format!("sessions.send {params} (timeoutSeconds 0) answered {r}, expected status accepted with a runId")),
                        Err(e) => return Err(format!("sessions.send {params} failed during the burst: {e}")),
                    }
                }
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| format!("burst caller panicked: {e}"))??;
    }
    Ok(())
}

/// After a burst: one more send (`last`), waited for with `runs.wait`; runs of a session run in
/// order, so every earlier run has ended too. Returns the newest seq of the session.
async fn finish_burst(client: &Client, key: &str) -> u64 {
    let r = client
        .call_value(
            "sessions.send",
            &json!({"sessionKey": key, "message": "last", "timeoutSeconds": 0}),
        )
        .await
        .expect("send `last` after the burst");
    let run_id = r["runId"].as_str().expect("runId").to_string();
    let w = client
        .call_value(
            "runs.wait",
            &json!({"runId": run_id, "timeoutSeconds": 120}),
        )
        .await
        .expect("runs.wait for the last run of the burst");
    assert_eq!(
        w["status"], "ok",
        "the last run of the burst did not end ok within 120 s: {w}"
    );
    newest_seq(client, key).await
}

async fn newest_seq(client: &Client, key: &str) -> u64 {
    let h = client
        .call_value("sessions.history", &json!({"sessionKey": key, "limit": 1}))
        .await
        .expect("sessions.history limit 1");
    h["messages"][0]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("history has no newest message: {h}"))
}

/// Every message of a session as (seq, role, content), oldest first, paging through history.
async fn full_history(client: &Client, key: &str) -> Vec<(u64, String, Value)> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut p = json!({"sessionKey": key, "limit": 1000});
        if let Some(c) = &cursor {
            p["cursor"] = json!(c);
        }
        let h = client
            .call_value("sessions.history", &p)
            .await
            .expect("sessions.history page");
        for m in h["messages"].as_array().expect("messages") {
            all.push((
                m["seq"].as_u64().expect("seq"),
                m["role"].as_str().unwrap_or("").to_string(),
                m["content"].clone(),
            ));
        }
        match h["nextCursor"].as_str() {
            Some(c) if h["hasMore"] == true => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    all.sort_by_key(|m| m.0);
    all
}

/// What a follower saw, in arrival order.
#[derive(Default)]
struct Followed {
    messages: Vec<(u64, String, Value)>,
    lagged: u64,
}

/// Reads the follow `sub` (events: message) on `client`: `session.message` notifications
/// must come exactly in seq order from `first`, each once; stops after the assistant reply
/// whose content is `stop`. `subscription.lagged` is allowed; anything else is an error.
async fn collect_follow(
    client: &Client,
    sub: &str,
    first: u64,
    stop: &str,
    who: &str,
) -> Result<Followed, String> {
    let mut got = Followed::default();
    let mut expected = first;
    let work = async {
        loop {
            let Some(n) = client.next_notification().await else {
                return Err(format!(
                    "{who}: the connection closed after seq {} (expected seq {expected} next)",
                    expected - 1
                ));
            };
            let p = &n.params;
            match n.method.as_str() {
                "session.message" => {
                    if p["subscription"] != sub {
                        return Err(format!(
                            "{who}: session.message for another subscription (mine is {sub}): {p}"
                        ));
                    }
                    let seq = p["message"]["seq"].as_u64().unwrap_or(0);
                    if seq != expected {
                        return Err(format!(
                            "{who}: expected seq {expected} next (each seq exactly once, in order, no gap), got seq {seq} after {} messages: {p}",
                            got.messages.len()
                        ));
                    }
                    expected += 1;
                    let role = p["message"]["role"].as_str().unwrap_or("").to_string();
                    let content = p["message"]["content"].clone();
                    let done = role == "assistant" && content == stop;
                    got.messages.push((seq, role, content));
                    if done {
                        return Ok(());
                    }
                }
                "subscription.lagged" => got.lagged += p["skipped"].as_u64().unwrap_or(0),
                other => {
                    return Err(format!(
                        "{who}: unexpected {other} on a follow subscribed with events [message]: {p}"
                    ));
                }
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(FOLLOW_SECS), work).await {
        Ok(Ok(())) => Ok(got),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "{who}: did not reach the reply {stop:?} within {FOLLOW_SECS} s; last seq seen {}",
            expected - 1
        )),
    }
}

/// `sessions.send` waiting for the reply; asserts ok.
async fn send_wait(client: &Client, key: &str, msg: &str) -> Value {
    let r = client
        .call_value(
            "sessions.send",
            &json!({"sessionKey": key, "message": msg, "timeoutSeconds": 30}),
        )
        .await
        .unwrap_or_else(|e| panic!("sessions.send {msg:?} to {key}: {e}"));
    assert_eq!(r["status"], "ok", "sessions.send {msg:?} to {key}: {r}");
    r
}

async fn subscribe(client: &Client, params: Value) -> Value {
    client
        .call_value("sessions.subscribe", &params)
        .await
        .unwrap_or_else(|e| panic!("sessions.subscribe {params}: {e}"))
}

// ------------------------------------------------------------------ follow under a burst

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_from_start_sees_every_seq_once_in_order_while_10000_messages_are_appended() {
    let d = Daemon::start_with_config(BURST_CONFIG);
    let writer = d.client().await;
    let seed = send_wait(&writer, "main", "seed").await;
    let key = seed["sessionKey"].as_str().expect("sessionKey").to_string();

    let follower = Arc::new(d.client().await);
    let sub = subscribe(
        &follower,
        json!({"sessionKey": key, "afterSeq": 0, "events": ["message"]}),
    )
    .await;
    assert_eq!(
        sub["sessionKey"],
        key.as_str(),
        "subscribe resolves the session key: {sub}"
    );
    assert_eq!(
        sub["lastSeq"], 2,
        "lastSeq is the newest seq at subscribe time (seed + reply): {sub}"
    );
    let sub_id = sub["subscription"]
        .as_str()
        .expect("subscription id")
        .to_string();
    let collecting = {
        let (follower, sub_id) = (follower.clone(), sub_id.clone());
        tokio::spawn(async move {
            collect_follow(&follower, &sub_id, 1, "tail", "follower from seq 0").await
        })
    };

    let (progress, _) = tokio::sync::watch::channel(0usize);
    burst(d.socket(), &key, BURST_SENDS, 4, 16, Arc::new(progress))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let n = finish_burst(&writer, &key).await;
    let expected_n = 2 + 2 * BURST_SENDS as u64 + 2;
    assert_eq!(
        n, expected_n,
        "seed (2) + {BURST_SENDS} sends (2 each) + last (2) messages in the store"
    );
    // One more exchange after the burst: a duplicate of an earlier seq arriving late would
    // break the order check before the reply `tail` arrives.
    send_wait(&writer, &key, "tail").await;

    let got = collecting
        .await
        .expect("follower task")
        .unwrap_or_else(|e| panic!("{e}"));
    let seqs: Vec<u64> = got.messages.iter().map(|m| m.0).collect();
    assert_eq!(seqs.first(), Some(&1));
    assert_eq!(
        seqs.last(),
        Some(&(n + 2)),
        "the follower ends with the reply to `tail`"
    );
    // What the follower saw is the transcript, message for message.
    let history = full_history(&writer, &key).await;
    assert_eq!(
        history.len() as u64,
        n + 2,
        "history holds seq 1..={}",
        n + 2
    );
    for (live, stored) in got.messages.iter().zip(&history) {
        assert_eq!(
            live, stored,
            "a followed message differs from the stored one"
        );
    }
    eprintln!(
        "follower saw {} messages ({} lagged events reported)",
        got.messages.len(),
        got.lagged
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_attaching_mid_burst_get_everything_from_their_start_without_gap() {
    let d = Daemon::start_with_config(BURST_CONFIG);
    let writer = d.client().await;
    let key = send_wait(&writer, "main", "seed").await["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();

    let (progress, mut watch) = tokio::sync::watch::channel(0usize);
    let bursting = {
        let (socket, key, progress) = (d.socket(), key.clone(), Arc::new(progress));
        tokio::spawn(async move { burst(socket, &key, BURST_SENDS, 4, 16, progress).await })
    };
    // Mid-burst: half of the sends accepted, the other half still to come.
    tokio::time::timeout(
        Duration::from_secs(FOLLOW_SECS),
        watch.wait_for(|n| *n >= BURST_SENDS / 2),
    )
    .await
    .expect("half of the burst was not accepted in time")
    .expect("progress channel");

    let from_zero = Arc::new(d.client().await);
    let from_now = Arc::new(d.client().await);
    let sub_a = subscribe(
        &from_zero,
        json!({"sessionKey": key, "afterSeq": 0, "events": ["message"]}),
    )
    .await;
    let sub_b = subscribe(&from_now, json!({"sessionKey": key, "events": ["message"]})).await;
    let last_a = sub_a["lastSeq"]
        .as_u64()
        .unwrap_or_else(|| panic!("subscribe result without lastSeq: {sub_a}"));
    let last_b = sub_b["lastSeq"]
        .as_u64()
        .unwrap_or_else(|| panic!("subscribe result without lastSeq: {sub_b}"));
    assert!(
        last_a >= 2 + BURST_SENDS as u64 / 2,
        "lastSeq {last_a} at mid-burst: at least the accepted sends' user messages are stored"
    );
    assert!(
        last_b >= last_a,
        "lastSeq went backwards: {last_a} then {last_b}"
    );
    let a = {
        let (c, s) = (
            from_zero.clone(),
            sub_a["subscription"].as_str().expect("id").to_string(),
        );
        tokio::spawn(async move {
            collect_follow(&c, &s, 1, "tail", "mid-burst follower with afterSeq 0").await
        })
    };
    let b = {
        let (c, s) = (
            from_now.clone(),
            sub_b["subscription"].as_str().expect("id").to_string(),
        );
        tokio::spawn(async move {
            collect_follow(
                &c,
                &s,
                last_b + 1,
                "tail",
                "mid-burst follower without afterSeq",
            )
            .await
        })
    };

    bursting
        .await
        .expect("burst task")
        .unwrap_or_else(|e| panic!("{e}"));
    let n = finish_burst(&writer, &key).await;
    assert_eq!(
        n,
        2 + 2 * BURST_SENDS as u64 + 2,
        "messages in the store after the burst"
    );
    assert!(
        last_b < n,
        "the second follower attached after the burst had ended (lastSeq {last_b} = {n}): the test did not exercise a mid-burst attach"
    );
    send_wait(&writer, &key, "tail").await;

    let got_a = a
        .await
        .expect("follower task")
        .unwrap_or_else(|e| panic!("{e}"));
    let got_b = b
        .await
        .expect("follower task")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got_a.messages.first().map(|m| m.0), Some(1));
    assert_eq!(got_a.messages.last().map(|m| m.0), Some(n + 2));
    assert_eq!(
        got_b.messages.first().map(|m| m.0),
        Some(last_b + 1),
        "no afterSeq: the follow starts right after lastSeq"
    );
    assert_eq!(got_b.messages.last().map(|m| m.0), Some(n + 2));
    let history = full_history(&writer, &key).await;
    for (live, stored) in got_a.messages.iter().zip(&history) {
        assert_eq!(
            live, stored,
            "a followed message differs from the stored one"
        );
    }
    eprintln!(
        "attached at lastSeq {last_a} / {last_b} of {n}; followers saw {} and {} messages",
        got_a.messages.len(),
        got_b.messages.len()
    );
}

// ------------------------------------------------------------------ a consumer that stalls

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_follower_keeps_daemon_buffers_bounded_then_drains_every_message_in_order() {
    /// The contract: at most 256 frames queued per connection.
    const PER_CONNECTION: u64 = 256;
    const WRITER_CONNS: usize = 2;
    const CALLERS: usize = 16;
    /// Replies to the writers' requests in flight (and to status calls) may be queued too.
    const SLACK: u64 = (WRITER_CONNS * CALLERS) as u64 + 32;
    const SAMPLE_EVERY: usize = 250;

    let d = Daemon::start_with_config(BURST_CONFIG);
    let writer = d.client().await;
    let key = send_wait(&writer, "main", "seed").await["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();

    // A plain blocking socket that follows from seq 0 (all events) and then reads nothing.
    let mut stalled = EventConn::connect(&d, "stalled follower");
    let sub = stalled.ok(
        "sessions.subscribe",
        json!({"sessionKey": key, "afterSeq": 0}),
    );
    let sub_id = sub["subscription"]
        .as_str()
        .expect("subscription id")
        .to_string();

    // daemon.status every SAMPLE_EVERY accepted sends, on its own connection.
    let status_client = Arc::new(d.client().await);
    let (progress, mut watch) = tokio::sync::watch::channel(0usize);
    let sampler = {
        let status_client = status_client.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut next = SAMPLE_EVERY;
            while watch.wait_for(|n| *n >= next).await.is_ok() {
                let s = tokio::time::timeout(
                    Duration::from_secs(READ_SECS),
                    status_client.call_value("daemon.status", &json!({})),
                )
                .await;
                match s {
                    Ok(Ok(s)) => samples.push(s),
                    Ok(Err(e)) => {
                        return Err(format!("daemon.status failed during the stall: {e}"));
                    }
                    Err(_) => {
                        return Err(format!(
                            "daemon.status did not answer within {READ_SECS} s while a subscriber was stalled"
                        ));
                    }
                }
                next += SAMPLE_EVERY;
            }
            Ok(samples)
        })
    };

    burst(
        d.socket(),
        &key,
        BURST_SENDS,
        WRITER_CONNS,
        CALLERS,
        Arc::new(progress),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let n = finish_burst(&writer, &key).await;
    assert_eq!(
        n,
        2 + 2 * BURST_SENDS as u64 + 2,
        "messages in the store after the burst"
    );
    let mut samples = sampler
        .await
        .expect("sampler task")
        .unwrap_or_else(|e| panic!("{e}"));
    // The stall is at its largest now: every message appended, nothing read.
    samples.push(
        status_client
            .call_value("daemon.status", &json!({}))
            .await
            .expect("daemon.status after the burst"),
    );
    // The daemon still answers a newcomer.
    let hello = tokio::time::timeout(Duration::from_secs(READ_SECS), async {
        d.client().await.call_value("hello", &json!({})).await
    })
    .await;
    assert!(
        matches!(hello, Ok(Ok(_))),
        "hello on a new connection while a subscriber is stalled: {hello:?}"
    );

    let mut buffered = Vec::new();
    for s in &samples {
        let b = s["bufferedNotifications"]
            .as_u64()
            .unwrap_or_else(|| panic!("daemon.status has no bufferedNotifications count: {s}"));
        assert!(
            s["subscriptions"].as_u64().is_some_and(|c| c >= 1),
            "daemon.status should count the stalled subscription: {s}"
        );
        buffered.push(b);
    }
    let max = buffered.iter().copied().max().unwrap_or(0);
    assert!(
        max <= PER_CONNECTION + SLACK,
        "bufferedNotifications must stay bounded (<= {PER_CONNECTION} per stalled connection + {SLACK} slack) while a subscriber reads nothing; samples every {SAMPLE_EVERY} sends: {buffered:?}"
    );
    // After the burst the writers are idle: what is queued now is the stalled connection's
    // backlog, and it cannot be empty (megabytes of notifications wait; at least the frame
    // being written is not yet written).
    let at_rest = *buffered.last().expect("a sample after the burst");
    assert!(
        at_rest > 0,
        "with every message appended and the subscriber reading nothing, daemon.status reports bufferedNotifications {at_rest}: the count does not reflect what the daemon queues for the stalled connection; samples every {SAMPLE_EVERY} sends, the last after the burst: {buffered:?}"
    );

    // Drain: every message exactly once, in seq order; lag notices allowed.
    let drained = tokio::task::spawn_blocking(move || {
        let mut expected = 1u64;
        let (mut lagged, mut other) = (0u64, 0u64);
        while expected <= n {
            let ev = stalled.next_event();
            assert_eq!(sub_of(&ev), sub_id, "notification for another subscription: {ev}");
            match method(&ev) {
                "session.message" => {
                    let seq = ev["params"]["message"]["seq"].as_u64().unwrap_or(0);
                    assert_eq!(
                        seq, expected,
                        "stalled follower, draining: expected seq {expected} next (each seq exactly once, in order), got {ev}"
                    );
                    expected += 1;
                }
                "subscription.lagged" => lagged += ev["params"]["skipped"].as_u64().unwrap_or(0),
                "run.event" | "sessions.changed" => other += 1,
                m => panic!("stalled follower: unexpected {m} while draining: {ev}"),
            }
        }
        let late: Vec<Value> = stalled
            .barrier()
            .into_iter()
            .filter(|ev| method(ev) == "session.message")
            .collect();
        assert!(late.is_empty(), "messages after seq {n} (all were seen): {late:?}");
        (lagged, other)
    })
    .await
    .expect("drain");
    eprintln!(
        "bufferedNotifications samples (max {max}): {buffered:?}; drained {n} messages, {} other events, {} skipped per lag notices",
        drained.1, drained.0
    );
}

// ------------------------------------------------------------------ send with streamProgress

const JSONL_STEPS: [&str; 6] = [
    "lifecycle:started",
    "assistant:hel",
    "tool:start:t1:grep:{}",
    "tool:end:t1:x:ok",
    "assistant:lo",
    "lifecycle:ended:ok",
];

#[test]
fn send_with_stream_progress_pushes_the_runs_events_in_order_before_the_result() {
    let d = Daemon::start_with_config(&exec_config(JSONL_SCRIPT, "jsonl"));
    let mut c = EventConn::connect(&d, "streaming sender");
    let params = json!({"sessionKey": "main", "message": "go", "streamProgress": true, "timeoutSeconds": 20});
    let id = c.send("sessions.send", params.clone());
    let resp = c.reply(id, "sessions.send with streamProgress");
    let result = &resp["result"];
    assert_eq!(result["status"], "ok", "sessions.send {params}: {resp}");
    assert_eq!(
        result["reply"], "hello",
        "the reply is the jsonl text lines joined: {resp}"
    );
    let run_id = result["runId"].as_str().expect("runId");
    let events: Vec<Value> = c.pending.drain(..).collect();
    assert!(
        !events.is_empty(),
        "no run.event arrived before the result of sessions.send {params}"
    );

    let mut params_seen = Vec::new();
    for ev in &events {
        let p = &ev["params"];
        assert_eq!(
            method(ev),
            "run.event",
            "only run.event is pushed for a streamed send: {ev}"
        );
        assert_eq!(
            p["subscription"],
            format!("run:{run_id}"),
            "subscription id of a streamed send is run:<runId>: {ev}"
        );
        assert_eq!(p["runId"], run_id, "{ev}");
        assert_eq!(p["sessionKey"], result["sessionKey"], "{ev}");
        params_seen.push(p.clone());
    }
    let seqs: Vec<u64> = params_seen
        .iter()
        .map(|p| p["seq"].as_u64().unwrap_or(0))
        .collect();
    let contiguous: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(
        seqs, contiguous,
        "per-run seq counts from 1 with no gap (the sender is not lagging): {events:#?}"
    );
    assert_eq!(
        steps(&params_seen),
        JSONL_STEPS,
        "events of the run, in order, before the result: {events:#?}"
    );

    // Nothing more for that run after its result.
    let late = c.barrier();
    assert!(
        late.is_empty(),
        "notifications after the streamed send's result: {late:?}"
    );
}

#[test]
fn stream_progress_is_live_the_first_delta_arrives_while_the_agent_still_runs() {
    let dir = tempdir();
    let mut gate = FifoGate::new(dir.path(), "go");
    let script = format!(
        "cat >/dev/null; echo first; read x < '{}'; echo second",
        gate.path.display()
    );
    let d = Daemon::start_with_config(&exec_config(&script, "text"));
    let mut c = EventConn::connect(&d, "streaming sender");
    c.set_read_timeout(Duration::from_secs(10));
    let id = c.send(
        "sessions.send",
        json!({"sessionKey": "main", "message": "go", "streamProgress": true, "timeoutSeconds": 30}),
    );
    // The agent has printed `first` and is blocked on the FIFO until we write it.
    let mut events = Vec::new();
    let first_delta = loop {
        match c.read_frame() {
            Ok(Some(v)) if is_notification(&v) => {
                let delta = (v["params"]["stream"] == "assistant").then(|| {
                    v["params"]["data"]["delta"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                });
                events.push(v);
                if let Some(delta) = delta {
                    break delta;
                }
            }
            Ok(Some(v)) => panic!(
                "the reply arrived before any assistant delta although the agent is blocked: {v}; events: {events:?}"
            ),
            Ok(None) => panic!("the daemon closed the connection; events: {events:?}"),
            Err(e) => panic!(
                "no assistant delta within 10 s while the agent, having printed `first`, is blocked: stdout is not streamed as it arrives ({e}); events so far: {events:?}"
            ),
        }
    };
    assert!(
        first_delta.contains("first") && !first_delta.contains("second"),
        "first delta {first_delta:?}: expected the text printed before the agent blocked"
    );
    gate.release();
    c.set_read_timeout(Duration::from_secs(READ_SECS));
    let resp = c.reply(id, "sessions.send with streamProgress");
    assert_eq!(resp["result"]["status"], "ok", "{resp}");
    assert_eq!(resp["result"]["reply"], "first\nsecond", "{resp}");
    events.extend(c.pending.drain(..));
    let text: String = events
        .iter()
        .filter(|v| v["params"]["stream"] == "assistant")
        .map(|v| v["params"]["data"]["delta"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        text.trim_end(),
        "first\nsecond",
        "the deltas together are the whole stdout: {events:?}"
    );
}

// ------------------------------------------------------------------ subscriptions

/// Spawns a session running `task` on the default (echo) agent and waits for its run.
fn spawn_done(c: &mut EventConn, task: &str) -> String {
    let r = c.ok("sessions.spawn", json!({"task": task}));
    let key = r["sessionKey"].as_str().expect("sessionKey").to_string();
    let w = c.ok(
        "runs.wait",
        json!({"runId": r["runId"], "timeoutSeconds": 20}),
    );
    assert_eq!(w["status"], "ok", "spawned run of {task:?}: {w}");
    key
}

#[test]
fn subscribing_to_all_sessions_sees_create_start_message_end_and_the_messages() {
    let d = Daemon::start();
    let mut watcher = EventConn::connect(&d, "all-sessions subscriber");
    let sub = watcher.ok("sessions.subscribe", json!({}));
    let sub_id = sub["subscription"]
        .as_str()
        .expect("subscription id")
        .to_string();

    let mut actor = EventConn::connect(&d, "spawner");
    let spawned = actor.ok("sessions.spawn", json!({"task": "watch me"}));
    let key = spawned["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();
    let run_id = spawned["runId"].as_str().expect("runId").to_string();

    let mut phases: Vec<String> = Vec::new();
    let mut end_row = Value::Null;
    let mut messages: Vec<(u64, String, Value)> = Vec::new();
    let (mut reply_at, mut ended_at) = (None, None);
    let mut log = Vec::new();
    while !(phases.iter().any(|p| p == "end") && reply_at.is_some() && ended_at.is_some()) {
        let ev = watcher.next_event();
        log.push(ev.clone());
        let p = &ev["params"];
        assert_eq!(
            sub_of(&ev),
            sub_id,
            "notification for another subscription: {ev}"
        );
        assert_eq!(
            p["sessionKey"],
            key.as_str(),
            "only one session exists: {ev}"
        );
        match method(&ev) {
            "sessions.changed" => {
                let phase = p["phase"].as_str().unwrap_or("").to_string();
                if phase == "end" {
                    end_row = p["session"].clone();
                }
                phases.push(phase);
            }
            "session.message" => {
                let m = &p["message"];
                messages.push((
                    m["seq"].as_u64().unwrap_or(0),
                    m["role"].as_str().unwrap_or("").to_string(),
                    m["content"].clone(),
                ));
                if m["seq"] == 2 {
                    reply_at = Some(log.len());
                }
            }
            "run.event" => {
                assert_eq!(p["runId"], run_id.as_str(), "{ev}");
                if p["stream"] == "lifecycle" && p["data"]["phase"] == "ended" {
                    ended_at = Some(log.len());
                }
            }
            m => panic!("unexpected {m} on an all-sessions subscription of a quiet daemon: {ev}"),
        }
    }
    let pos = |name: &str| phases.iter().position(|p| p == name);
    assert_eq!(
        phases.first().map(String::as_str),
        Some("create"),
        "create comes first: {phases:?}"
    );
    assert!(
        pos("start") > pos("create") && pos("end") > pos("start"),
        "create, start, end in that order: {phases:?}"
    );
    assert!(
        phases.iter().any(|p| p == "message"),
        "a message phase for the appended messages: {phases:?}"
    );
    assert_eq!(
        end_row["status"], "ok",
        "the row after `end` shows the run's outcome: {end_row}"
    );
    assert_eq!(
        messages,
        vec![
            (1, "user".to_string(), json!("watch me")),
            (2, "assistant".to_string(), json!("watch me")),
        ],
        "session.message for the task and the reply; events: {log:#?}"
    );
    assert!(
        reply_at < ended_at,
        "the reply's session.message must arrive before the run's lifecycle ended event: {log:#?}"
    );
}

#[test]
fn unsubscribe_stops_that_subscriptions_notifications() {
    let d = Daemon::start();
    let mut actor = EventConn::connect(&d, "sender");
    let key = actor.ok(
        "sessions.send",
        json!({"sessionKey": "main", "message": "one", "timeoutSeconds": 20}),
    )["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();

    let mut c = EventConn::connect(&d, "subscriber");
    let gone = c.ok(
        "sessions.subscribe",
        json!({"sessionKey": key, "afterSeq": 0, "events": ["message"]}),
    )["subscription"]
        .as_str()
        .expect("id")
        .to_string();
    let kept = c.ok(
        "sessions.subscribe",
        json!({"sessionKey": key, "events": ["message"]}),
    )["subscription"]
        .as_str()
        .expect("id")
        .to_string();
    assert_ne!(gone, kept, "two subscriptions get two ids");
    for seq in [1, 2] {
        let ev = c.next_event();
        assert_eq!(
            (method(&ev), sub_of(&ev)),
            ("session.message", gone.as_str()),
            "catch-up of seq {seq}: {ev}"
        );
        assert_eq!(ev["params"]["message"]["seq"], seq, "{ev}");
    }
    let r = c.ok("sessions.unsubscribe", json!({"subscription": gone}));
    assert_eq!(r["unsubscribed"], true, "{r}");
    // Notifications read before the unsubscribe's reply are fine; from here on, only a final
    // subscription.ended (reason unsubscribed) may name it.
    c.pending.clear();

    actor.ok(
        "sessions.send",
        json!({"sessionKey": key, "message": "two", "timeoutSeconds": 20}),
    );
    let mut after = Vec::new();
    let mut kept_seqs = Vec::new();
    while kept_seqs.len() < 2 {
        let ev = c.next_event();
        if sub_of(&ev) == kept {
            kept_seqs.push(ev["params"]["message"]["seq"].as_u64().unwrap_or(0));
        }
        after.push(ev);
    }
    after.extend(c.barrier());
    assert_eq!(
        kept_seqs,
        [3, 4],
        "the other subscription still gets the new messages"
    );
    let leaked: Vec<&Value> = after
        .iter()
        .filter(|ev| {
            sub_of(ev) == gone
                && !(method(ev) == "subscription.ended" && ev["params"]["reason"] == "unsubscribed")
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "notifications for subscription {gone} after it was unsubscribed: {leaked:?}"
    );
}

#[test]
fn deleting_a_followed_session_ends_the_subscription_with_reason_deleted() {
    let d = Daemon::start();
    let mut actor = EventConn::connect(&d, "actor");
    let key = spawn_done(&mut actor, "soon gone");
    let mut c = EventConn::connect(&d, "follower");
    let sub = c.ok(
        "sessions.subscribe",
        json!({"sessionKey": key, "afterSeq": 0}),
    )["subscription"]
        .as_str()
        .expect("id")
        .to_string();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|ev: &Value| method(ev) == "session.message" && ev["params"]["message"]["seq"] == 2)
    {
        seen.push(c.next_event());
    }
    let r = actor.ok("sessions.delete", json!({"sessionKey": key}));
    assert_eq!(r["deleted"], true, "{r}");

    let mut after = Vec::new();
    loop {
        let ev = c.next_event();
        assert_eq!(sub_of(&ev), sub, "{ev}");
        let done = method(&ev) == "subscription.ended";
        after.push(ev);
        if done {
            break;
        }
    }
    let ended = after.last().expect("ended");
    assert_eq!(ended["params"]["reason"], "deleted", "{ended}");
    assert!(
        after
            .iter()
            .any(|ev| method(ev) == "sessions.changed" && ev["params"]["phase"] == "delete"),
        "a sessions.changed phase delete precedes subscription.ended (lifecycle is subscribed): {after:#?}"
    );
    let late: Vec<Value> = c
        .barrier()
        .into_iter()
        .filter(|ev| sub_of(ev) == sub)
        .collect();
    assert!(
        late.is_empty(),
        "notifications after subscription.ended: {late:?}"
    );
}

#[test]
fn several_subscriptions_on_one_connection_each_get_their_own_events() {
    let d = Daemon::start();
    let mut actor = EventConn::connect(&d, "actor");
    let one = spawn_done(&mut actor, "task one");
    let two = spawn_done(&mut actor, "task two");

    let mut c = EventConn::connect(&d, "subscriber");
    let mut subscribe = |key: &str, after: u64| {
        c.ok(
            "sessions.subscribe",
            json!({"sessionKey": key, "afterSeq": after, "events": ["message"]}),
        )["subscription"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let a = subscribe(&one, 0);
    let b = subscribe(&two, 0);
    let a2 = subscribe(&one, 1);
    assert!(
        a != b && a != a2 && b != a2,
        "distinct subscription ids: {a} {b} {a2}"
    );

    actor.ok(
        "sessions.send",
        json!({"sessionKey": one, "message": "more one", "timeoutSeconds": 20}),
    );
    actor.ok(
        "sessions.send",
        json!({"sessionKey": two, "message": "more two", "timeoutSeconds": 20}),
    );

    let wanted = |sub: &str| -> (&str, Vec<u64>) {
        if sub == a {
            (one.as_str(), vec![1, 2, 3, 4])
        } else if sub == b {
            (two.as_str(), vec![1, 2, 3, 4])
        } else {
            (one.as_str(), vec![2, 3, 4])
        }
    };
    let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let total = 4 + 4 + 3;
    let mut log = Vec::new();
    while got.values().map(Vec::len).sum::<usize>() < total {
        let ev = c.next_event();
        log.push(ev.clone());
        assert_eq!(method(&ev), "session.message", "{ev}");
        let sub = sub_of(&ev).to_string();
        assert!(
            sub == a || sub == b || sub == a2,
            "unknown subscription {sub}: {ev}"
        );
        assert_eq!(
            ev["params"]["sessionKey"],
            wanted(&sub).0,
            "event of another session under subscription {sub}: {ev}"
        );
        got.entry(sub)
            .or_default()
            .push(ev["params"]["message"]["seq"].as_u64().unwrap_or(0));
    }
    log.extend(c.barrier());
    assert_eq!(log.len(), total, "no extra notifications: {log:#?}");
    for sub in [&a, &b, &a2] {
        assert_eq!(
            got.get(sub.as_str()).cloned().unwrap_or_default(),
            wanted(sub).1,
            "seqs of subscription {sub} (a={a} follows {one} from 0, b={b} follows {two} from 0, a2={a2} follows {one} after 1)"
        );
    }
}

#[test]
fn daemon_shutdown_ends_subscriptions_then_closes_the_connection() {
    let mut d = Daemon::start();
    let mut actor = EventConn::connect(&d, "actor");
    actor.ok(
        "sessions.send",
        json!({"sessionKey": "main", "message": "hi", "timeoutSeconds": 20}),
    );
    let mut c = EventConn::connect(&d, "follower");
    let follow = c.ok(
        "sessions.subscribe",
        json!({"sessionKey": "main", "afterSeq": 0, "events": ["message"]}),
    )["subscription"]
        .as_str()
        .expect("id")
        .to_string();
    let all = c.ok("sessions.subscribe", json!({}))["subscription"]
        .as_str()
        .expect("id")
        .to_string();
    for _ in 0..2 {
        assert_eq!(method(&c.next_event()), "session.message");
    }
    let status = d.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "openclawd did not exit cleanly on SIGTERM: {status:?}"
    );

    let mut ended = Vec::new();
    let mut rest = Vec::new();
    loop {
        match c.read_frame() {
            Ok(Some(ev)) if method(&ev) == "subscription.ended" => ended.push(ev),
            Ok(Some(ev)) => rest.push(ev),
            Ok(None) => break,
            Err(e) => panic!("{e}: the connection was not closed at shutdown"),
        }
    }
    let mut reasons: Vec<(String, String)> = ended
        .iter()
        .map(|ev| {
            (
                sub_of(ev).to_string(),
                ev["params"]["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    reasons.sort();
    let mut expected = vec![
        (follow, "shutdown".to_string()),
        (all, "shutdown".to_string()),
    ];
    expected.sort();
    assert_eq!(
        reasons, expected,
        "each subscription ends with reason shutdown, then EOF; other frames: {rest:?}"
    );
}
