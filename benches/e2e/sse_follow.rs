//! The `http` section's SSE followers: N follows of one session over TCP while an appender
//! sends messages over JSON-RPC, counted as `follow_run` counts its JSON-RPC followers.
//!
//! Each follower is a task on the harness's tokio runtime reading its stream with tokio, as
//! each JSON-RPC follower is: the two rows then differ only in the daemon's transport. (With a
//! blocking thread per follower, 100 followers cost the harness 100 thread wake-ups per append
//! on the same 2 CPUs as the daemon, and the row measured the harness as much as the daemon.)

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::common::RawConn;
use super::follow::{FollowRun, FollowerTally};
use super::http_client::{Event, Target};

/// How long a follower waits for the next bytes before it fails the run.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A follower's connection: TCP, or the daemon's Unix socket.
trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// One SSE answer's body, read as it comes: HTTP/1.1 chunks, then SSE events.
struct SseStream {
    conn: Box<dyn Duplex>,
    /// Bytes read and not yet taken out of their chunk framing.
    raw: Vec<u8>,
    /// Event-stream text not yet parsed into events.
    text: Vec<u8>,
}

impl SseStream {
    /// Sends the request and reads the answer's head: once this returns, the daemon has the
    /// subscription in place (its head is written after it), so nothing appended later is
    /// missed.
    /// Over TCP with the token, or over the socket with none (peer credentials).
    async fn open(target: &Target, token: &str, path: &str) -> SseStream {
        let (mut conn, auth): (Box<dyn Duplex>, String) = match target {
            Target::Tcp(addr) => (
                Box::new(
                    TcpStream::connect(addr)
                        .await
                        .expect("connect SSE follower"),
                ),
                format!("Authorization: Bearer {token}\r\n"),
            ),
            Target::Unix(socket) => (
                Box::new(
                    UnixStream::connect(socket)
                        .await
                        .expect("connect SSE follower"),
                ),
                String::new(),
            ),
        };
        let host = target.host();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: text/event-stream\r\n\r\n"
        );
        conn.write_all(request.as_bytes())
            .await
            .expect("send SSE request");
        let mut s = SseStream {
            conn,
            raw: Vec::new(),
            text: Vec::new(),
        };
        let end = loop {
            if let Some(i) = find(&s.raw, b"\r\n\r\n") {
                break i;
            }
            assert!(
                s.fill().await,
                "the daemon closed before the SSE answer's head"
            );
        };
        let head = String::from_utf8_lossy(&s.raw[..end]).to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 200") && head.contains("transfer-encoding: chunked"),
            "not a chunked 200 event stream: {head}"
        );
        s.raw.drain(..end + 4);
        s
    }

    /// Reads more bytes; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let n = tokio::time::timeout(READ_TIMEOUT, self.conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("an SSE follower heard nothing for {READ_TIMEOUT:?}"))
            .expect("read SSE stream");
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Moves every whole chunk from `raw` to `text`; false once the last chunk has come.
    fn unchunk(&mut self) -> bool {
        while let Some(eol) = find(&self.raw, b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("not a chunk size: {size_text:?}"));
            if size == 0 {
                return false;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                break;
            }
            self.text
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
        true
    }

    /// The next event (comments skipped); `None` when the stream ends.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = find(&self.text, b"\n\n") {
                let block: Vec<u8> = self.text.drain(..end + 2).collect();
                if let Some(e) = parse_event(&String::from_utf8_lossy(&block)) {
                    return Some(e);
                }
            }
            // Events that came with the last chunk are read before the end is reported.
            let open = self.unchunk();
            if find(&self.text, b"\n\n").is_some() {
                continue;
            }
            if !open || !self.fill().await {
                return None;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One event block; `None` for a block of comments only (a heartbeat).
fn parse_event(block: &str) -> Option<Event> {
    let mut e = Event::default();
    let mut any = false;
    for line in block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(':'))
    {
        any = true;
        e.add_field(line);
    }
    any.then_some(e)
}

/// Replies seen by the followers, summed, shared with the appender.
type Replies = Arc<(Mutex<usize>, Condvar)>;

/// `followers` SSE follows of one session at `target`; the appender sends `appends` messages
/// over JSON-RPC one at a time (202 at once), each after every follower has seen the previous
/// reply. `history_path` makes the follow path of a session key (`/api/sessions/KEY/history`
/// with the key encoded), to which the same filter as the JSON-RPC followers' is added:
/// messages only.
pub fn sse_run(
    rt: &tokio::runtime::Runtime,
    target: &Target,
    token: &str,
    socket: &Path,
    history_path: impl Fn(&str) -> String,
    (followers, appends): (usize, usize),
) -> FollowRun {
    let mut rpc_conn = RawConn::connect(socket);
    let spawned = rpc_conn.call_ok("sessions.spawn", json!({"task": "sse follow bench"}));
    let key = spawned["sessionKey"].as_str().expect("key").to_string();
    rpc_conn.call_ok(
        "runs.wait",
        json!({"runId": spawned["runId"], "timeoutSeconds": 30}),
    );
    let path = format!("{}?follow=1&events=message", history_path(&key));
    let streams: Vec<SseStream> = rt.block_on(async {
        let mut streams = Vec::with_capacity(followers);
        for _ in 0..followers {
            streams.push(SseStream::open(target, token, &path).await);
        }
        streams
    });
    let start_seq =
        rpc_conn.call_ok("sessions.history", json!({"sessionKey": key, "limit": 1}))["messages"][0]
            ["seq"]
            .as_u64()
            .unwrap_or(0);
    let seen: Replies = Arc::default();
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut sse| {
            let seen = seen.clone();
            rt.spawn(async move {
                let mut tally = FollowerTally::new(start_seq, appends);
                while !tally.done() {
                    let Some(e) = sse.next_event().await else {
                        break;
                    };
                    if e.event != "session.message" {
                        continue;
                    }
                    let now = Instant::now();
                    if tally.message(&e.json()["message"], now) {
                        let (count, changed) = &*seen;
                        *count.lock().expect("seen") += 1;
                        changed.notify_all();
                    }
                }
                tally
            })
        })
        .collect();
    let mut sent = Vec::with_capacity(appends);
    for i in 0..appends {
        sent.push(Instant::now());
        let r = rpc_conn.call_ok(
            "sessions.send",
            json!({"sessionKey": key, "message": format!("lat {i}"), "timeoutSeconds": 0}),
        );
        assert_eq!(r["status"], "accepted", "{r}");
        let want = followers * (i + 1);
        let (count, changed) = &*seen;
        let (count, waited) = changed
            .wait_timeout_while(count.lock().expect("seen"), READ_TIMEOUT, |n| *n < want)
            .expect("seen");
        assert!(
            !waited.timed_out(),
            "SSE followers stalled: {} of {want} replies seen after {READ_TIMEOUT:?}",
            *count
        );
    }
    let tallies: Vec<FollowerTally> = rt.block_on(async {
        let mut all = Vec::with_capacity(tasks.len());
        for t in tasks {
            all.push(t.await.expect("follower"));
        }
        all
    });
    FollowRun::collect(tallies, &sent, Vec::new())
}
