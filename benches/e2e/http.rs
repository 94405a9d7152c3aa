//! Section `http` (issue 13): the HTTP surface against the JSON-RPC socket, in one daemon and
//! one run, so each figure has its baseline beside it:
//! - spawn, send (202) and a 20-message history page over HTTP keep-alive (TCP with the token,
//!   and the Unix socket) against the same call over JSON-RPC, one request at a time;
//! - spawns from 8 keep-alive connections at once against 8 JSON-RPC connections, and the
//!   same 8 connections driven by the C load generator (`benches/floor/http.c`);
//! - a one-shot `curl` spawn against `openclaw sessions spawn`;
//! - append → receipt with N SSE followers (`sse_follow.rs`), over TCP and over the Unix
//!   socket, against N JSON-RPC followers (`follow_run`), all tasks on one tokio runtime, all
//!   asking for messages only.
//!
//! Counts: OPENCLAW_BENCH_HTTP_N (sequential requests per kind), OPENCLAW_BENCH_HTTP_CONC_N
//! (spawns over 8 connections), OPENCLAW_BENCH_HTTP_CURL_N (one-shot processes per side),
//! OPENCLAW_BENCH_HTTP_FOLLOWERS, OPENCLAW_BENCH_HTTP_FOLLOW_N (appends they see).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::RawConn;
use super::follow::{follow_run, runtime};
use super::http_client::{Conn, Target, daemon_with_http, token};
use super::sse_follow::sse_run;
use super::{
    CONNECTIONS, Opts, Row, Table, cli_env, env_count, errors_text, lat, ms, on_connections, per_s,
    rate, ratio_lat, ratio_rate, sequential_lines, stats, time_cmd, verdict,
};

struct Counts {
    seq: usize,
    conc: usize,
    curl: usize,
    followers: usize,
    follow: usize,
}

fn counts(o: &Opts) -> Counts {
    let q = |full: usize, small: usize| if o.quick { small } else { full };
    Counts {
        seq: env_count("OPENCLAW_BENCH_HTTP_N", q(2_000, 200)),
        conc: env_count("OPENCLAW_BENCH_HTTP_CONC_N", q(20_000, 2_000)),
        curl: env_count("OPENCLAW_BENCH_HTTP_CURL_N", q(100, 10)),
        followers: env_count("OPENCLAW_BENCH_HTTP_FOLLOWERS", 100),
        follow: env_count("OPENCLAW_BENCH_HTTP_FOLLOW_N", q(200, 30)),
    }
}

/// One HTTP request at a time on one keep-alive connection: latencies and non-2xx answers.
fn http_sequential(
    conn: &mut Conn,
    n: usize,
    request: impl Fn(usize) -> (&'static str, String, Option<String>),
) -> (Vec<Duration>, usize) {
    let mut col = Column::default();
    for i in 0..n {
        let (method, path, body) = request(i);
        col.add(http_once(conn, method, &path, body.as_deref()));
    }
    (col.samples, col.errors)
}

/// One JSON-RPC call at a time on one connection: latencies and error replies.
fn rpc_sequential(
    socket: &Path,
    n: usize,
    call: impl Fn(usize) -> Value,
) -> (Vec<Duration>, usize) {
    let (samples, errors, _) = sequential_lines(socket, n, |i| format!("{}\n", call(i)));
    (samples, errors)
}

/// One request's latency, and the error answer if it was one.
type Outcome = (Duration, Option<String>);

/// One HTTP request on a kept connection; a non-2xx answer is an error.
fn http_once(conn: &mut Conn, method: &str, path: &str, body: Option<&str>) -> Outcome {
    let t = Instant::now();
    let r = conn.request(method, path, body);
    let took = t.elapsed();
    let error = (!(200..300).contains(&r.status)).then(|| format!("{} {}", r.status, r.text()));
    (took, error)
}

/// One JSON-RPC call on a kept connection, framed as a line before it is timed.
fn rpc_once(conn: &mut RawConn, call: &Value) -> Outcome {
    let line = format!("{call}\n");
    let t = Instant::now();
    conn.send_raw(line.as_bytes());
    let v = conn.read_json();
    let took = t.elapsed();
    (took, v.get("error").map(|e| e.to_string()))
}

/// One kind of request's latencies and error count.
#[derive(Default)]
struct Column {
    samples: Vec<Duration>,
    errors: usize,
}

impl Column {
    fn add(&mut self, (took, error): Outcome) {
        self.samples.push(took);
        if let Some(e) = error {
            if self.errors == 0 {
                eprintln!("  first error answer: {e}");
            }
            self.errors += 1;
        }
    }
}

/// `n` rounds of one request of each kind, the kind that goes first turning each round, so
/// what changes over the rounds (a daemon warming up, a WAL growing, a busy neighbour) and
/// the run the previous request started weigh on every kind alike. Run one kind after
/// another, the first kind paid alone for the daemon's first thousands of requests.
fn interleaved<const K: usize>(
    n: usize,
    kinds: [&mut dyn FnMut(usize) -> Outcome; K],
) -> [Column; K] {
    let mut cols: [Column; K] = std::array::from_fn(|_| Column::default());
    for i in 0..n {
        for k in 0..K {
            let kind = (i + k) % K;
            cols[kind].add(kinds[kind](i));
        }
    }
    cols
}

fn rpc(id: usize, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn enc(key: &str) -> String {
    key.replace(':', "%3A")
}

/// `total` spawns spread over `CONNECTIONS` threads, each one request at a time on its own
/// connection: (elapsed, errors).
fn concurrent(total: usize, one: impl Fn(usize, usize) -> usize + Sync) -> (Duration, usize) {
    let per = total / CONNECTIONS;
    let (errors, elapsed) = on_connections(|c| one(c, per));
    (elapsed, errors.into_iter().sum())
}

pub fn section(o: &Opts, t: &mut Table) {
    t.section("http: the HTTP surface beside JSON-RPC (same daemon, same run)");
    let n = counts(o);
    let caps = n.followers * 2 + 64;
    let (d, addr) = daemon_with_http(
        &format!("[limits]\nmax_connections = {caps}\nmax_connections_per_uid = {caps}\n"),
        "",
        &[],
    );
    let socket = d.socket();
    let tok = token(&d);
    let tcp = || Conn::connect(&Target::Tcp(addr)).with_token(Some(&tok));
    let unix = || Conn::connect(&Target::Unix(socket.clone()));

    // Spawns, one at a time, the three ways in turn.
    let spawn_body = |i: usize| json!({"task": format!("http bench {i}")}).to_string();
    let (mut tcp_conn, mut unix_conn) = (tcp(), unix());
    let mut rpc_conn = RawConn::connect(&socket);
    let [http_spawn, unix_spawn, rpc_spawn] = interleaved(
        n.seq,
        [
            &mut |i| {
                http_once(
                    &mut tcp_conn,
                    "POST",
                    "/api/sessions/spawn",
                    Some(&spawn_body(i)),
                )
            },
            &mut |i| {
                http_once(
                    &mut unix_conn,
                    "POST",
                    "/api/sessions/spawn",
                    Some(&spawn_body(i)),
                )
            },
            &mut |i| {
                let call = rpc(
                    i,
                    "sessions.spawn",
                    json!({"task": format!("rpc bench {i}")}),
                );
                rpc_once(&mut rpc_conn, &call)
            },
        ],
    );
    let (e1, e2, e3) = (http_spawn.errors, unix_spawn.errors, rpc_spawn.errors);
    let (hs, us, rs) = (
        stats(&http_spawn.samples),
        stats(&unix_spawn.samples),
        stats(&rpc_spawn.samples),
    );
    t.push(
        Row::latency(
            "`POST /api/sessions/spawn` (202, durable), keep-alive TCP, one at a time",
            &hs,
            "JSON-RPC `sessions.spawn`",
            &rs,
        )
        .target(verdict(
            "< 1 ms median",
            hs.median < Duration::from_millis(1),
        )),
    );
    t.push(Row::latency(
        "the same over the Unix socket (peer credentials, no token)",
        &us,
        "JSON-RPC",
        &rs,
    ));
    if e1 + e2 + e3 > 0 {
        t.note(format!("sequential spawns: {}", errors_text(e1 + e2 + e3)));
    }

    // Send (202 at once) and a history page, on one session with a few messages.
    let r = tcp_conn.post("/api/sessions/spawn", r#"{"task":"send bench"}"#);
    let key = r.json()["sessionKey"].as_str().expect("key").to_string();
    let run = r.json()["runId"].as_str().expect("run").to_string();
    tcp_conn.get(&format!("/api/runs/{run}?wait=30"));
    let send_path = format!("/api/sessions/{}/send", enc(&key));
    let [http_send, rpc_send] = interleaved(
        n.seq,
        [
            &mut |i| {
                let body = json!({"message": format!("s {i}")}).to_string();
                http_once(&mut tcp_conn, "POST", &send_path, Some(&body))
            },
            &mut |i| {
                let params =
                    json!({"sessionKey": key, "message": format!("r {i}"), "timeoutSeconds": 0});
                rpc_once(&mut rpc_conn, &rpc(i, "sessions.send", params))
            },
        ],
    );
    let (e1, e2) = (http_send.errors, rpc_send.errors);
    let (hs, rs) = (stats(&http_send.samples), stats(&rpc_send.samples));
    t.push(Row {
        metric: "`POST /api/sessions/KEY/send` (202 `{runId}`), keep-alive TCP".into(),
        value: lat(&hs),
        baseline: format!(
            "JSON-RPC `sessions.send` timeoutSeconds 0 {}",
            ms(rs.median)
        ),
        ratio: ratio_lat(hs.median, rs.median),
        target: String::new(),
    });
    let history_path = format!("/api/sessions/{}/history?limit=20", enc(&key));
    let [http_hist, rpc_hist] = interleaved(
        n.seq,
        [
            &mut |_| http_once(&mut tcp_conn, "GET", &history_path, None),
            &mut |i| {
                let params = json!({"sessionKey": key, "limit": 20});
                rpc_once(&mut rpc_conn, &rpc(i, "sessions.history", params))
            },
        ],
    );
    let (e3, e4) = (http_hist.errors, rpc_hist.errors);
    let (hh, rh) = (stats(&http_hist.samples), stats(&rpc_hist.samples));
    t.push(Row::latency(
        "`GET /api/sessions/KEY/history?limit=20`, keep-alive TCP",
        &hh,
        "JSON-RPC `sessions.history`",
        &rh,
    ));
    if e1 + e2 + e3 + e4 > 0 {
        t.note(format!("send/history: {}", errors_text(e1 + e2 + e3 + e4)));
    }

    // Throughput from 8 connections, one request at a time on each. Each of the three rows
    // begins once the runs queued before it have ended.
    let mut drained = super::wait_runs_drained(&mut RawConn::connect(&socket));
    let (http_el, e1) = concurrent(n.conc, |c, per| {
        let mut conn = tcp();
        http_sequential(&mut conn, per, |i| {
            (
                "POST",
                "/api/sessions/spawn".into(),
                Some(spawn_body(c * per + i)),
            )
        })
        .1
    });
    drained += super::wait_runs_drained(&mut RawConn::connect(&socket));
    let (rpc_el, e2) = concurrent(n.conc, |c, per| {
        rpc_sequential(&socket, per, |i| {
            rpc(
                i,
                "sessions.spawn",
                json!({"task": format!("rpc conc {c} {i}")}),
            )
        })
        .1
    });
    let total = n.conc / CONNECTIONS * CONNECTIONS;
    let (hr, rr) = (rate(total, http_el), rate(total, rpc_el));
    t.push(Row {
        metric: format!("durable spawns/s, {CONNECTIONS} keep-alive HTTP connections ({total})"),
        value: per_s(hr),
        baseline: format!("{CONNECTIONS} JSON-RPC connections {}", per_s(rr)),
        ratio: ratio_rate(hr, rr),
        target: verdict("≥ 5,000/s", hr >= 5_000.0),
    });
    if e1 + e2 > 0 {
        t.note(format!("concurrent spawns: {}", errors_text(e1 + e2)));
    }

    // The same load from the C load generator (issue 16: the client floor as load
    // generator), so the figure is the daemon's and not its 8 client threads'.
    drained += super::wait_runs_drained(&mut RawConn::connect(&socket));
    let generated = super::floors::build_floor("http").and_then(|generator| {
        let mut cmd = Command::new(generator);
        cmd.arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(&tok)
            .arg(total.to_string())
            .arg(CONNECTIONS.to_string())
            .arg("c");
        super::floors::run_generator(&mut cmd, "floor-http")
    });
    match generated {
        Ok((elapsed, errors)) => {
            let r = rate(total, elapsed);
            t.push(Row {
                metric: format!(
                    "durable spawns/s, {CONNECTIONS} keep-alive HTTP connections, C load generator ({total})"
                ),
                value: per_s(r),
                baseline: format!("the same from {CONNECTIONS} client threads {}", per_s(hr)),
                ratio: ratio_rate(r, hr),
                target: verdict("≥ 5,000/s", r >= 5_000.0),
            });
            if errors > 0 {
                t.note(format!("C load generator: {}", errors_text(errors)));
            }
        }
        Err(e) => t.note(format!("no C load generator row: {e}")),
    }
    t.note(format!(
        "http: each throughput row began once the runs queued before it had ended ({} of waiting in all)",
        ms(drained)
    ));

    // One-shot processes: curl against the CLI.
    if let Some(curl) = super::common::system_tool("curl") {
        let env = cli_env(&d);
        let auth = format!("Authorization: Bearer {tok}");
        let url = format!("http://{addr}/api/sessions/spawn");
        let curl_samples: Vec<Duration> = (0..n.curl)
            .map(|i| {
                let mut cmd = Command::new(&curl);
                cmd.args(["-sf", "-o", "/dev/null", "-X", "POST", "-H", &auth, "-d"])
                    .arg(json!({"task": format!("curl {i}")}).to_string())
                    .arg(&url);
                time_cmd(&mut cmd, "curl spawn").0
            })
            .collect();
        let cli_samples: Vec<Duration> = (0..n.curl)
            .map(|i| {
                let mut cmd = Command::new(super::common::OPENCLAW);
                cmd.env_clear()
                    .envs(env.iter().map(|(k, v)| (*k, *v)))
                    .args(["sessions", "spawn", "--task", &format!("cli {i}")]);
                time_cmd(&mut cmd, "openclaw sessions spawn").0
            })
            .collect();
        let (cs, ls) = (stats(&curl_samples), stats(&cli_samples));
        t.push(Row::latency(
            "one-shot `curl -X POST …/api/sessions/spawn` (a process each)",
            &cs,
            "`openclaw sessions spawn`",
            &ls,
        ));
    } else {
        t.note("no curl on this machine: the one-shot row is left out");
    }

    // SSE followers against JSON-RPC followers, and SSE over the Unix socket to tell the
    // TCP stack's share (the JSON-RPC followers are on the socket) from HTTP's.
    let rt = runtime();
    let history = |key: &str| format!("/api/sessions/{}/history", enc(key));
    let counts = (n.followers, n.follow);
    eprintln!("{} SSE followers x{} appends ...", n.followers, n.follow);
    let sse = sse_run(&rt, &Target::Tcp(addr), &tok, &socket, history, counts);
    eprintln!(
        "{} SSE followers on the socket x{} appends ...",
        n.followers, n.follow
    );
    let sse_unix = sse_run(
        &rt,
        &Target::Unix(socket.clone()),
        &tok,
        &socket,
        history,
        counts,
    );
    eprintln!(
        "{} JSON-RPC followers x{} appends ...",
        n.followers, n.follow
    );
    let rpc_follow = follow_run(&rt, &socket, n.followers, n.follow);
    rt.shutdown_timeout(Duration::from_secs(5));
    let (sl, ul, rl) = (
        stats(&sse.latency),
        stats(&sse_unix.latency),
        stats(&rpc_follow.latency),
    );
    t.push(Row {
        metric: format!(
            "append → SSE receipt, {} SSE followers of one session (`events=message`)",
            n.followers
        ),
        value: lat(&sl),
        baseline: format!("{} JSON-RPC followers {}", n.followers, ms(rl.median)),
        ratio: ratio_lat(sl.median, rl.median),
        target: verdict("< 1 ms median", sl.median < Duration::from_millis(1)),
    });
    t.push(Row::latency(
        "the same over the Unix socket (as the JSON-RPC followers are)",
        &ul,
        "JSON-RPC followers",
        &rl,
    ));
    t.push(Row {
        metric: format!("messages lost with {} SSE followers", n.followers),
        value: format!("TCP: {}; socket: {}", sse.losses(), sse_unix.losses()),
        target: verdict("none lost", sse.is_complete() && sse_unix.is_complete()),
        ..Row::default()
    });
}
