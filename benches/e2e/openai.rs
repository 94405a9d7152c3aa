//! The `openai` section: the backend against a local instant server (the in-test
//! OpenAI-compatible server of tests/common, answering every chat request at once with a
//! short streamed reply). What the backend adds to a turn beyond the HTTP exchange, turns/s
//! across sessions, how soon a follower sees the first streamed text after the server sent
//! it, and the daemon's memory per idle openai session.
//!
//! The server keeps connections open between requests (as real servers do, and the
//! daemon's client pools them) and does no more work per request than a real instant
//! server would (no request kept or parsed beyond the last): it shares the 2 CPUs with the
//! daemon, so its own costs would be counted as the backend's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::openai_server::{OpenAiServer, Reply};
use super::common::{Daemon, RawConn, proc_status_kb};
use super::{Opts, Row, Table, lat, ms, per_s, rate, ratio_lat, ratio_rate, stats, verdict};

const CONNECTIONS: usize = 8;

fn openai_config(server: &OpenAiServer, lanes: usize) -> String {
    format!(
        "[lanes]\nmain = {lanes}\nsubagent = {lanes}\n[agents.main]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"bench-model\"\n",
        server.base_url()
    )
}

fn echo_config(lanes: usize) -> String {
    format!("[lanes]\nmain = {lanes}\nsubagent = {lanes}\n[agents.main]\nbackend = \"echo\"\n")
}

fn instant_server() -> OpenAiServer {
    let server = OpenAiServer::start_instant();
    server.set_fallback(Reply::text(&["bench ", "reply"]));
    server
}

/// A session of the daemon's default agent, its first turn done: its key.
fn session(c: &mut RawConn) -> String {
    let r = c.call_ok(
        "sessions.spawn",
        json!({"task": "bench", "mode": "session"}),
    );
    let key = r["sessionKey"].as_str().expect("key").to_string();
    c.call_ok(
        "runs.wait",
        json!({"runId": r["runId"], "timeoutSeconds": 60}),
    );
    key
}

/// One session's turns one after another, each waited for.
struct SequentialTurns {
    conn: RawConn,
    key: String,
    sent: usize,
}

impl SequentialTurns {
    fn start(socket: &Path) -> SequentialTurns {
        let mut conn = RawConn::connect(socket);
        let key = session(&mut conn);
        SequentialTurns { conn, key, sent: 0 }
    }

    /// One more turn: its round trip.
    fn turn(&mut self) -> Duration {
        self.sent += 1;
        let t0 = Instant::now();
        let r = self.conn.call_ok(
            "sessions.send",
            json!({"sessionKey": self.key, "message": format!("turn {}", self.sent), "timeoutSeconds": 60}),
        );
        let took = t0.elapsed();
        assert_eq!(r["runStatus"], "ok", "{r}");
        took
    }
}

/// A bare HTTP client of the server, as the daemon's is: one kept connection.
struct BareClient {
    conn: TcpStream,
}

impl BareClient {
    fn connect(server: &OpenAiServer) -> BareClient {
        let conn = TcpStream::connect(server.addr()).expect("connect to the server");
        conn.set_nodelay(true).expect("nodelay");
        BareClient { conn }
    }

    /// One chat request made directly, as the daemon makes it (a JSON body, the whole
    /// streamed answer read, the connection kept): the HTTP exchange alone, and how long
    /// after the server began its reply this client had the first chunk.
    fn exchange(&mut self, server: &OpenAiServer, body: &[u8]) -> (Duration, Duration) {
        let before = server.replies_started().len();
        let t0 = Instant::now();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: {}\r\n\r\n",
            server.addr(),
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.conn.write_all(&request).expect("write the request");
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let mut first_chunk = None;
        // The reply is chunked: it ends with the last (empty) chunk.
        while !answer.ends_with(b"\r\n0\r\n\r\n") {
            let got = self.conn.read(&mut buf).expect("read the answer");
            assert!(got > 0, "the server closed a kept connection");
            answer.extend_from_slice(&buf[..got]);
            if first_chunk.is_none() && answer.windows(5).any(|w| w == b"data:") {
                first_chunk = Some(Instant::now());
            }
        }
        let took = t0.elapsed();
        assert!(
            answer.windows(12).any(|w| w == b"data: [DONE]"),
            "a whole stream"
        );
        let sent = server.replies_started()[before];
        let first = first_chunk
            .expect("a chunk")
            .saturating_duration_since(sent);
        (took, first)
    }
}

/// `n` turns spread over `sessions` sessions, sent without waiting over 8 connections, then
/// waited for: (elapsed from the first send to the last end, errors).
fn turns_across_sessions(socket: &Path, sessions: usize, n: usize) -> (Duration, usize) {
    let mut c = RawConn::connect(socket);
    let keys: Vec<String> = (0..sessions).map(|_| session(&mut c)).collect();
    let t0 = Instant::now();
    let per_conn = n.div_ceil(CONNECTIONS);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|w| {
            let keys = keys.clone();
            let socket = socket.to_path_buf();
            std::thread::spawn(move || {
                let lines: Vec<String> = (0..per_conn)
                    .map(|i| {
                        let k = &keys[(w * per_conn + i) % keys.len()];
                        let mut l = json!({"jsonrpc": "2.0", "id": i, "method": "sessions.send",
                            "params": {"sessionKey": k, "message": format!("t {w} {i}"), "timeoutSeconds": 0}})
                        .to_string();
                        l.push('\n');
                        l
                    })
                    .collect();
                let mut conn = RawConn::connect(&socket);
                conn.send_raw(lines.concat().as_bytes());
                let mut runs = Vec::with_capacity(per_conn);
                let mut errors = 0;
                for _ in 0..per_conn {
                    let v = conn.read_json();
                    match v["result"]["runId"].as_str() {
                        Some(r) => runs.push(r.to_string()),
                        None => errors += 1,
                    }
                }
                // Then wait for every run: each answer comes when its run has ended.
                let waits: Vec<String> = runs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let mut l = json!({"jsonrpc": "2.0", "id": i, "method": "runs.wait",
                            "params": {"runId": r, "timeoutSeconds": 120}})
                        .to_string();
                        l.push('\n');
                        l
                    })
                    .collect();
                conn.send_raw(waits.concat().as_bytes());
                for _ in 0..runs.len() {
                    let v = conn.read_json();
                    if v["result"]["runStatus"] != "ok" {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    let errors = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    (t0.elapsed(), errors)
}

/// Time from the server starting to send a reply to the first assistant event reaching a
/// subscriber of the session, over `n` turns.
fn first_event_latency(server: &OpenAiServer, socket: &Path, n: usize) -> Vec<Duration> {
    let mut c = RawConn::connect(socket);
    let key = session(&mut c);
    let mut follower = RawConn::connect(socket);
    follower.call_ok(
        "sessions.subscribe",
        json!({"sessionKey": key, "events": ["assistant", "lifecycle"]}),
    );
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let before = server.replies_started().len();
        c.call_ok(
            "sessions.send",
            json!({"sessionKey": key, "message": format!("f {i}"), "timeoutSeconds": 0}),
        );
        let mut first = None;
        loop {
            let v: Value = follower.read_json();
            if v["method"] != "run.event" {
                continue;
            }
            let p = &v["params"];
            if p["stream"] == "assistant" && first.is_none() {
                first = Some(Instant::now());
            }
            if p["stream"] == "lifecycle" && p["data"]["phase"] == "ended" {
                break;
            }
        }
        let sent = server.replies_started()[before];
        samples.push(
            first
                .expect("an assistant event")
                .saturating_duration_since(sent),
        );
    }
    samples
}

/// The daemon's RSS in KiB once `n` sessions with one ended turn each exist and it is idle.
fn idle_rss(config: &str, n: usize) -> (u64, u64) {
    let d = Daemon::start_with_config(config);
    let socket = d.socket();
    let mut c = RawConn::connect(&socket);
    session(&mut c);
    settle(&mut c);
    let before = proc_status_kb(d.pid(), "VmRSS").unwrap_or(0);
    let (_, errors, _) = super::pipelined(&socket, n, "idle", super::spawn_line);
    assert_eq!(errors, 0);
    settle(&mut c);
    let after = proc_status_kb(d.pid(), "VmRSS").unwrap_or(0);
    (before, after)
}

/// Lets the daemon become idle: its runs end, then (the daemon hands freed memory back at
/// most every 5 s, when a run ends with nothing else running) one more turn after 5 s.
fn settle(c: &mut RawConn) {
    super::clients::wait_runs_drained(c);
    std::thread::sleep(Duration::from_millis(5_100));
    session(c);
}

pub fn section_openai(o: &Opts, t: &mut Table) {
    t.section("openai: the backend against a local instant server");
    let server = instant_server();
    let d = Daemon::start_with_config(&openai_config(&server, 64));
    let socket = d.socket();
    let n = o.openai_turns;

    eprintln!("openai: {n} sequential turns ...");
    let echo = Daemon::start_with_config(&echo_config(64));
    let mut openai_session = SequentialTurns::start(&socket);
    let mut echo_session = SequentialTurns::start(&echo.socket());
    // Warm-up: connections, the first request's allocations.
    for _ in 0..20 {
        openai_session.turn();
        echo_session.turn();
    }
    // The same body the daemon sent last: the exchange alone, from here.
    let body = server
        .chat_requests()
        .last()
        .map(|r| r.body.clone())
        .expect("a chat request");
    let mut bare = BareClient::connect(&server);
    for _ in 0..20 {
        bare.exchange(&server, &body);
    }
    // The three interleaved, one of each per round, so that all three see the same load:
    // on 2 CPUs shared with other builds, a burst of load during one of them alone moves
    // every woken thread's wait for a CPU onto that one (in steps of the kernel's 4 ms
    // tick), which the difference of medians would count as the backend's cost.
    let (mut openai_samples, mut echo_samples) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut http_samples, mut first_samples) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        openai_samples.push(openai_session.turn());
        echo_samples.push(echo_session.turn());
        let (took, first) = bare.exchange(&server, &body);
        http_samples.push(took);
        first_samples.push(first);
    }
    let (turns, echo_turns) = (stats(&openai_samples), stats(&echo_samples));
    let (http, http_first) = (stats(&http_samples), stats(&first_samples));
    let added = turns
        .median
        .saturating_sub(echo_turns.median)
        .saturating_sub(http.median);
    t.push(Row {
        metric: "`sessions.send` turn, openai agent, waited for (RPC round trip)".into(),
        value: lat(&turns),
        baseline: format!("echo agent {}", ms(echo_turns.median)),
        ratio: ratio_lat(turns.median, echo_turns.median),
        target: String::new(),
    });
    t.push(Row {
        metric: "the HTTP exchange alone (kept connection, POST, whole stream read)".into(),
        value: lat(&http),
        ..Row::default()
    });
    t.push(Row {
        metric: "added by the backend per turn (openai − echo − HTTP exchange, medians)".into(),
        value: ms(added),
        baseline: format!("HTTP exchange {}", ms(http.median)),
        target: verdict("< 1 ms median", added < Duration::from_millis(1)),
        ..Row::default()
    });

    let sessions = 64;
    let many = o.openai_turns * 4;
    eprintln!("openai: {many} turns across {sessions} sessions ...");
    let (took, errors) = turns_across_sessions(&socket, sessions, many);
    let per_sec = rate(many, took);
    let (echo_took, echo_errors) = turns_across_sessions(&echo.socket(), sessions, many);
    let echo_per_sec = rate(many, echo_took);
    drop(echo);
    t.push(Row {
        metric: format!("turns/s across {sessions} sessions (8 connections, lanes at 64)"),
        value: format!(
            "{} ({many} turns in {:.2} s{})",
            per_s(per_sec),
            took.as_secs_f64(),
            super::errors_text(errors)
        ),
        baseline: format!(
            "echo agent {}{}",
            per_s(echo_per_sec),
            super::errors_text(echo_errors)
        ),
        ratio: ratio_rate(per_sec, echo_per_sec),
        target: verdict("≥ 1,000/s", per_sec >= 1000.0 && errors == 0),
    });

    eprintln!("openai: first assistant event x{} ...", n.min(500));
    let first = stats(&first_event_latency(&server, &socket, n.min(500)));
    t.push(Row {
        metric: "server sends the first chunk → a subscriber has the first assistant event".into(),
        value: lat(&first),
        baseline: format!("a bare HTTP client's first chunk {}", ms(http_first.median)),
        ratio: ratio_lat(first.median, http_first.median),
        target: verdict(
            "within 1 ms (median)",
            first.median < Duration::from_millis(1),
        ),
    });
    drop(d);

    let idle = o.openai_idle;
    eprintln!("openai: RSS with {idle} idle sessions ...");
    let (o0, o1) = idle_rss(&openai_config(&server, 64), idle);
    let (e0, e1) = idle_rss(&echo_config(64), idle);
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 * 1024.0 / idle as f64;
    let (openai_per, echo_per) = (per(o0, o1), per(e0, e1));
    t.push(Row {
        metric: format!("daemon RSS per idle openai session ({idle} sessions, one turn each)"),
        value: format!(
            "{:.1} KB ({} → {} MiB)",
            openai_per / 1000.0,
            o0 / 1024,
            o1 / 1024
        ),
        baseline: format!("echo sessions {:.1} KB", echo_per / 1000.0),
        ratio: format!("{:.2}×", openai_per / echo_per.max(1.0)),
        target: verdict("< 10 KB", openai_per < 10_000.0),
    });
}
