//! End-to-end benchmark: real `openclawd` daemons (release build) in temp `OPENCLAW_HOME`s,
//! driven by the real `openclaw` CLI, by raw NDJSON on the socket and by the async client.
//! Prints one Markdown table per section; BENCHMARKS.md holds the latest one.
//!
//!     cargo bench --bench e2e                     # everything but the peers (1–2 minutes)
//!     cargo bench --bench e2e -- --peers          # also pueue, side by side (builds it once)
//!     OPENCLAW_BENCH_QUICK=1 cargo bench --bench e2e   # small counts, well under a minute
//!     OPENCLAW_BENCH_UPDATE=1 cargo bench --bench e2e -- --peers   # and rewrite the table
//!                                                  # part of BENCHMARKS.md with the result
//!
//! Sections (`OPENCLAW_BENCH_ONLY=core,follow` runs some of them):
//! - `floors`: the client floor (a static C client), the commit floor (one `fdatasync`) and
//!   the rows they bound, as ratios (benches/e2e/floors.rs);
//! - `cold`: daemon cold start in a fresh home, to "ready" and to the first answered request;
//! - `core`: idle RSS, CLI spawn and send round trips, spawn RPCs (sequential, pipelined, 8
//!   connections), group commit, RSS under load;
//! - `follow`: append-to-receipt latency with 1 and with 1,000 followers of one session;
//! - `history`: a pre-built 1,000,000-message transcript: history pages, follow catch-up;
//! - `scale`: pre-built stores of 1,000 and 100,000 sessions: start-up and `sessions list`;
//! - `openai`: the `openai` backend against a local instant server: what it adds to a turn
//!   beyond the HTTP exchange, turns/s across sessions, server's first chunk → a
//!   follower's first assistant event, RSS per idle openai session;
//! - `acp` (`acp.rs`): the acp backend with the SDK test agent (Node): warm turn overhead
//!   around the agent's own work, first turns with process start, N sessions with live agents
//!   and the daemon's RSS for them;
//! - `mcp`: `openclaw mcp` start → `initialize` answered, and `tools/call sessions_spawn`
//!   through it against `sessions.spawn` on the socket (OPENCLAW_BENCH_MCP_START_N,
//!   OPENCLAW_BENCH_MCP_CALL_N);
//! - `subscriptions` (`subscriptions.rs`): the owner's send rate with 10,240 idle
//!   subscriptions on another session against none;
//! - `peers` (only with `--peers` or `OPENCLAW_BENCH_PEERS=1`): pueue, the closest Rust peer,
//!   installed with `cargo install pueue --locked` into `target/bench-peers/pueue` (once;
//!   later runs reuse it), its daemon in a temp dir: `pueue add -- true` against `openclaw
//!   sessions spawn` on an `exec` agent running `true`, and `pueue wait` against `openclaw
//!   sessions wait`.
//!
//! The 1M-message transcript and the session stores are not built through the socket (that
//! would take minutes): a daemon creates and migrates the store, stops, the store's own
//! offline loader (`openclaw::daemon::store::Loader`: the same changes a running daemon makes,
//! in one transaction) fills it, and the daemon is started on it. Start-up figures on those stores are with a warm page cache.
//!
//! On a shared machine, `OPENCLAW_BENCH_QUIET=15` makes each section first wait (up to 10
//! minutes) until the CPUs have been at most 15% busy for 3 seconds in a row (from
//! /proc/stat), and notes how long it waited.
//!
//! Counts, one by one: OPENCLAW_BENCH_CLI_N (CLI spawns), OPENCLAW_BENCH_CLI_SEND_N,
//! OPENCLAW_BENCH_RPC_N (sequential spawns on one connection), OPENCLAW_BENCH_PIPELINE_N,
//! OPENCLAW_BENCH_CONC_N (total over 8 connections), OPENCLAW_BENCH_SEND_N,
//! OPENCLAW_BENCH_COLD_N, OPENCLAW_BENCH_FOLLOW_N (appends seen by one follower),
//! OPENCLAW_BENCH_FOLLOWERS (the many-followers case), OPENCLAW_BENCH_FOLLOW_MANY_N (appends
//! seen by them), OPENCLAW_BENCH_TRANSCRIPT_N (messages), OPENCLAW_BENCH_HISTORY_N (history
//! calls), OPENCLAW_BENCH_SESSIONS_N (the large store), OPENCLAW_BENCH_LIST_N (list calls),
//! OPENCLAW_BENCH_STARTS_N (restarts per store), OPENCLAW_BENCH_PEER_N (round trips per side),
//! OPENCLAW_BENCH_PEER_WAIT_N (waits per side), OPENCLAW_BENCH_OPENAI_N (sequential openai
//! turns; 4× that across sessions), OPENCLAW_BENCH_OPENAI_IDLE_N (idle openai sessions).
//! OPENCLAW_BENCH_PEER_WAIT_N (waits per side), OPENCLAW_BENCH_ACP_N (warm ACP turns),
//! OPENCLAW_BENCH_ACP_FIRST_N (first turns), OPENCLAW_BENCH_ACP_SESSIONS (sessions held).
//!
//! Cargo builds the binary targets for benchmarks and sets CARGO_BIN_EXE_*, so the shared test
//! harness (which locates the binaries that way) is used as is.

#[path = "e2e/acp.rs"]
mod acp;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "e2e/floors.rs"]
mod floors;
#[path = "e2e/http.rs"]
mod http;
#[path = "e2e/mcp.rs"]
mod mcp;
#[path = "e2e/openai.rs"]
mod openai;
#[path = "e2e/subscriptions.rs"]
mod subscriptions;
#[path = "e2e/unpaired.rs"]
mod unpaired;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, RawConn, proc_status_kb};
use openclaw::daemon::store::{LoadSession, Loader};
use serde_json::{Value, json};

const CONNECTIONS: usize = 8;
/// An `exec` agent whose turn is `true`: the counterpart of `pueue add -- true`.
const EXEC_AGENT: &str = "[agents.t]\nbackend = \"exec\"\ncommand = [\"true\"]\n";

const ENV_VARS: &[&str] = &[
    "OPENCLAW_BENCH_QUICK",
    "OPENCLAW_BENCH_ONLY",
    "OPENCLAW_BENCH_PEERS",
    "OPENCLAW_BENCH_CLI_N",
    "OPENCLAW_BENCH_CLI_SEND_N",
    "OPENCLAW_BENCH_RPC_N",
    "OPENCLAW_BENCH_PIPELINE_N",
    "OPENCLAW_BENCH_CONC_N",
    "OPENCLAW_BENCH_SEND_N",
    "OPENCLAW_BENCH_COLD_N",
    "OPENCLAW_BENCH_FOLLOW_N",
    "OPENCLAW_BENCH_FOLLOWERS",
    "OPENCLAW_BENCH_FOLLOW_MANY_N",
    "OPENCLAW_BENCH_TRANSCRIPT_N",
    "OPENCLAW_BENCH_HISTORY_N",
    "OPENCLAW_BENCH_SESSIONS_N",
    "OPENCLAW_BENCH_LIST_N",
    "OPENCLAW_BENCH_STARTS_N",
    "OPENCLAW_BENCH_PEER_N",
    "OPENCLAW_BENCH_PEER_WAIT_N",
    "OPENCLAW_BENCH_QUIET",
    "OPENCLAW_BENCH_OPENAI_N",
    "OPENCLAW_BENCH_OPENAI_IDLE_N",
    "OPENCLAW_BENCH_ACP_N",
    "OPENCLAW_BENCH_ACP_FIRST_N",
    "OPENCLAW_BENCH_ACP_SESSIONS",
    "OPENCLAW_BENCH_MCP_START_N",
    "OPENCLAW_BENCH_MCP_CALL_N",
];

struct Opts {
    quick: bool,
    peers: bool,
    only: Option<HashSet<String>>,
    cli: usize,
    cli_send: usize,
    rpc: usize,
    pipeline: usize,
    conc: usize,
    send: usize,
    cold: usize,
    follow_one: usize,
    followers: usize,
    follow_many: usize,
    transcript: usize,
    history: usize,
    sessions_small: usize,
    sessions_large: usize,
    list: usize,
    starts: usize,
    peer: usize,
    peer_wait: usize,
    openai_turns: usize,
    openai_idle: usize,
    acp_turns: usize,
    acp_first: usize,
    acp_sessions: usize,
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

impl Opts {
    fn from_env_and_args() -> Opts {
        let mut peers = env_flag("OPENCLAW_BENCH_PEERS");
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--peers" => peers = true,
                "--bench" => {} // cargo bench passes it to every harness = false target
                other if other.starts_with('-') => {
                    eprintln!("e2e: ignoring unknown option {other} (known: --peers)")
                }
                _ => {} // a name filter from `cargo bench NAME`: there is only one benchmark
            }
        }
        let quick = env_flag("OPENCLAW_BENCH_QUICK");
        let q = |full: usize, small: usize| if quick { small } else { full };
        let only = std::env::var("OPENCLAW_BENCH_ONLY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
        Opts {
            quick,
            peers,
            only,
            cli: env_count("OPENCLAW_BENCH_CLI_N", q(300, 30)),
            cli_send: env_count("OPENCLAW_BENCH_CLI_SEND_N", q(100, 10)),
            rpc: env_count("OPENCLAW_BENCH_RPC_N", q(2_000, 200)),
            pipeline: env_count("OPENCLAW_BENCH_PIPELINE_N", q(20_000, 2_000)),
            conc: env_count("OPENCLAW_BENCH_CONC_N", q(20_000, 2_000)),
            send: env_count("OPENCLAW_BENCH_SEND_N", q(1_000, 100)),
            cold: env_count("OPENCLAW_BENCH_COLD_N", q(20, 3)),
            follow_one: env_count("OPENCLAW_BENCH_FOLLOW_N", q(1_000, 100)),
            followers: env_count("OPENCLAW_BENCH_FOLLOWERS", q(1_000, 100)),
            follow_many: env_count("OPENCLAW_BENCH_FOLLOW_MANY_N", q(100, 20)),
            transcript: env_count("OPENCLAW_BENCH_TRANSCRIPT_N", q(1_000_000, 100_000)),
            history: env_count("OPENCLAW_BENCH_HISTORY_N", q(1_000, 100)),
            sessions_small: 1_000,
            sessions_large: env_count("OPENCLAW_BENCH_SESSIONS_N", q(100_000, 10_000)),
            list: env_count("OPENCLAW_BENCH_LIST_N", q(500, 50)),
            starts: env_count("OPENCLAW_BENCH_STARTS_N", q(5, 2)),
            peer: env_count("OPENCLAW_BENCH_PEER_N", q(200, 20)),
            peer_wait: env_count("OPENCLAW_BENCH_PEER_WAIT_N", q(10, 3)),
            openai_turns: env_count("OPENCLAW_BENCH_OPENAI_N", q(1_000, 100)),
            openai_idle: env_count("OPENCLAW_BENCH_OPENAI_IDLE_N", q(10_000, 1_000)),
            acp_turns: env_count("OPENCLAW_BENCH_ACP_N", q(500, 50)),
            acp_first: env_count("OPENCLAW_BENCH_ACP_FIRST_N", q(20, 5)),
            acp_sessions: env_count("OPENCLAW_BENCH_ACP_SESSIONS", q(100, 20)),
        }
    }

    fn runs(&self, section: &str) -> bool {
        if section == "peers" && !self.peers {
            return false;
        }
        self.only.as_ref().is_none_or(|o| o.contains(section))
    }
}

// ------------------------------------------------------------------ statistics and output

struct Stats {
    n: usize,
    median: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut samples = samples.to_vec();
    samples.sort();
    let n = samples.len();
    let p99_idx = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
    Stats {
        n,
        median: samples[n / 2],
        p99: samples[p99_idx],
        max: samples[n - 1],
    }
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 1.0 {
        format!("{:.0} µs", v * 1000.0)
    } else if v < 100.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn lat(s: &Stats) -> String {
    format!(
        "median {}, p99 {} (n={}, max {})",
        ms(s.median),
        ms(s.p99),
        s.n,
        ms(s.max)
    )
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn per_s(v: f64) -> String {
    if v >= 100.0 {
        // thousands separated, as in the issue's targets
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{out}/s")
    } else {
        format!("{v:.1}/s")
    }
}

/// value ÷ baseline for latencies, saying "N× faster" when below 1.
fn ratio_lat(value: Duration, base: Duration) -> String {
    let r = value.as_secs_f64() / base.as_secs_f64().max(1e-9);
    if r < 1.0 {
        format!("{r:.2}× ({:.1}× faster)", 1.0 / r)
    } else {
        format!("{r:.2}×")
    }
}

/// value ÷ baseline for rates.
fn ratio_rate(value: f64, base: f64) -> String {
    format!("{:.2}×", value / base.max(1e-9))
}

fn verdict(target: &str, met: bool) -> String {
    format!("{target}: {}", if met { "met" } else { "**missed**" })
}

#[derive(Default)]
struct Row {
    metric: String,
    value: String,
    baseline: String,
    ratio: String,
    target: String,
}

#[derive(Default)]
struct Table {
    sections: Vec<(String, Vec<Row>)>,
    notes: Vec<String>,
}

impl Table {
    fn section(&mut self, name: &str) {
        eprintln!("== {name}");
        self.sections.push((name.to_string(), Vec::new()));
    }

    fn push(&mut self, row: Row) {
        eprintln!(
            "  {}: {}{}{}{}",
            row.metric,
            row.value,
            if row.baseline.is_empty() {
                String::new()
            } else {
                format!(" | baseline {}", row.baseline)
            },
            if row.ratio.is_empty() {
                String::new()
            } else {
                format!(" | {}", row.ratio)
            },
            if row.target.is_empty() {
                String::new()
            } else {
                format!(" | {}", row.target)
            }
        );
        self.sections
            .last_mut()
            .expect("a section first")
            .1
            .push(row);
    }

    fn add(&mut self, metric: impl Into<String>, value: impl Into<String>) {
        self.push(Row {
            metric: metric.into(),
            value: value.into(),
            ..Row::default()
        });
    }

    fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, rows) in &self.sections {
            if rows.is_empty() {
                continue;
            }
            out.push_str(&format!("### {name}\n\n"));
            out.push_str("| metric | value | baseline (same run) | value ÷ baseline | target |\n");
            out.push_str("|---|---|---|---|---|\n");
            for r in rows {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    r.metric, r.value, r.baseline, r.ratio, r.target
                ));
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            out.push_str("Notes:\n\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    let fs = Command::new("df")
        .arg("--output=fstype")
        .arg(std::env::temp_dir())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{nproc} CPUs ({model}), {mem} MiB RAM, Linux {}, temp dir on {fs}; load average at start {load}",
        kernel.trim()
    )
}

fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    Some((
        proc_status_kb(pid, "VmRSS")? as f64 / 1024.0,
        proc_status_kb(pid, "VmHWM")? as f64 / 1024.0,
    ))
}

fn rss_text(pid: u32) -> String {
    match rss_mib(pid) {
        Some((rss, hwm)) => format!("{rss:.1} MiB (peak {hwm:.1} MiB)"),
        None => "n/a".into(),
    }
}

// ------------------------------------------------------------------ processes

/// Runs a command to completion; its wall time. Panics with its stderr when it fails.
fn time_cmd(cmd: &mut Command, what: &str) -> (Duration, String) {
    let t0 = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let elapsed = t0.elapsed();
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `/bin/true` with the same clean environment: the floor of any command a shell runs.
fn process_floor(n: usize) -> Stats {
    let samples: Vec<Duration> = (0..n)
        .map(|_| {
            time_cmd(
                Command::new("/bin/true")
                    .env_clear()
                    .env("PATH", "/usr/bin:/bin")
                    .stdin(Stdio::null()),
                "/bin/true",
            )
            .0
        })
        .collect();
    stats(&samples)
}

/// A shell loop running `BIN ARGS...` `n` times, as a script would; its wall time.
fn shell_loop(n: usize, bin: &Path, args: &[&str], env: &[(&str, &Path)]) -> Duration {
    let script =
        r#"i=0; while [ "$i" -lt "$N" ]; do "$BIN" "$@" >/dev/null || exit 1; i=$((i+1)); done"#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("N", n.to_string())
        .env("BIN", bin)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    time_cmd(&mut cmd, "shell loop").0
}

/// The environment `Daemon::cli` gives the CLI, for shell loops.
fn cli_env(d: &Daemon) -> Vec<(&'static str, &Path)> {
    vec![
        ("HOME", d.home_path()),
        ("OPENCLAW_HOME", d.home_path()),
        ("OPENCLAW_NO_AUTOSTART", Path::new("1")),
    ]
}

// ------------------------------------------------------------------ socket measurements

fn spawn_line(id: usize, tag: &str) -> String {
    let mut s = json!({"jsonrpc": "2.0", "id": id, "method": "sessions.spawn",
                       "params": {"task": format!("bench {tag} {id}")}})
    .to_string();
    s.push('\n');
    s
}

fn hello_line(id: usize, _tag: &str) -> String {
    let mut s = json!({"jsonrpc": "2.0", "id": id, "method": "hello"}).to_string();
    s.push('\n');
    s
}

/// Writes `n` requests on one connection without waiting (a writer thread), reads every
/// reply; returns (elapsed, errors, last run id).
fn pipelined(
    socket: &Path,
    n: usize,
    tag: &str,
    line: fn(usize, &str) -> String,
) -> (Duration, usize, Option<String>) {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let write_half = stream.try_clone().expect("clone");
    let payload: Vec<String> = (0..n).map(|i| line(i, tag)).collect();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut w = BufWriter::with_capacity(64 * 1024, write_half);
        for line in payload {
            w.write_all(line.as_bytes()).expect("write request");
        }
        w.flush().expect("flush");
    });
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut errors = 0;
    let mut last_run = None;
    let mut line = String::new();
    for _ in 0..n {
        line.clear();
        let got = reader.read_line(&mut line).expect("read reply");
        assert!(
            got > 0,
            "the daemon closed the connection during the pipelined burst"
        );
        let v: Value = serde_json::from_str(&line).expect("reply JSON");
        if v.get("error").is_some() {
            if errors == 0 {
                eprintln!("  first error reply: {}", line.trim_end());
            }
            errors += 1;
        } else if let Some(run) = v["result"]["runId"].as_str() {
            last_run = Some(run.to_string());
        }
    }
    let elapsed = start.elapsed();
    writer.join().expect("writer thread");
    (elapsed, errors, last_run)
}

/// One request at a time on one connection; per-call latencies, errors, the last run id.
fn sequential(
    socket: &Path,
    n: usize,
    tag: &str,
    line: fn(usize, &str) -> String,
) -> (Vec<Duration>, usize, Option<String>) {
    let mut c = RawConn::connect(socket);
    let mut samples = Vec::with_capacity(n);
    let mut errors = 0;
    let mut last = None;
    for i in 0..n {
        let line = line(i, tag);
        let t = Instant::now();
        c.send_raw(line.as_bytes());
        let v = c.read_json();
        samples.push(t.elapsed());
        if v.get("error").is_some() {
            errors += 1;
        } else if let Some(r) = v["result"]["runId"].as_str() {
            last = Some(r.to_string());
        }
    }
    (samples, errors, last)
}

fn wait_run(socket: &Path, run_id: &str) {
    let mut c = RawConn::connect(socket);
    let r = c.call_ok("runs.wait", json!({"runId": run_id, "timeoutSeconds": 120}));
    if r["status"] == "timeout" {
        eprintln!("  warning: run {run_id} still not finished after 120 s");
    }
}

fn status(socket: &Path) -> Value {
    RawConn::connect(socket).call_ok("daemon.status", json!({}))
}

/// Stops and starts a daemon `k` times on its store: (to ready, to first reply) samples.
fn restarts(d: &mut Daemon, k: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut ready, mut first) = (Vec::new(), Vec::new());
    for _ in 0..k.max(1) {
        d.stop().expect("the daemon stops on SIGTERM");
        let t0 = Instant::now();
        d.spawn_daemon().expect("daemon restart");
        ready.push(t0.elapsed());
        RawConn::connect(&d.socket()).call_ok("hello", json!({}));
        first.push(t0.elapsed());
    }
    (ready, first)
}

// ------------------------------------------------------------------ pre-built stores

/// A daemon whose store was filled by `build` while it was stopped (see the module docs).
/// Returns it running, and how long `build` took.
fn prebuilt(config: &str, build: impl FnOnce(&mut Loader)) -> (Daemon, Duration) {
    let mut d = Daemon::start_with_config(config);
    d.stop().expect("the daemon stops on SIGTERM");
    let t0 = Instant::now();
    let data_dir = d.db_path().parent().expect("the data dir").to_path_buf();
    let mut loader = Loader::open(&data_dir).expect("open the store offline");
    build(&mut loader);
    loader.finish().expect("commit the pre-built store");
    let took = t0.elapsed();
    d.spawn_daemon()
        .expect("daemon start on the pre-built store");
    (d, took)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One session with `n` messages (user and assistant turns in pairs, each pair one `ok`
/// run), stored through the store's own changes; returns its key.
fn insert_transcript(loader: &mut Loader, n: usize, label: &str) -> String {
    let key = format!("agent:main:subagent:{}", uuid::Uuid::new_v4());
    let text = |seq: usize| {
        format!(
            "message {seq} of a long transcript: some words of a turn, as an agent session has them"
        )
    };
    let turns = (0..n / 2).map(|i| (text(2 * i + 1), text(2 * i + 2)));
    let session = LoadSession {
        key: &key,
        agent_id: "main",
        label: Some(label),
    };
    loader
        .session(&session, now_ms() - n as i64, turns)
        .expect("load a transcript");
    key
}

/// `n` spawned sessions, each with its task, its reply and one `ok` run, as a spawn leaves
/// them; updated one millisecond apart.
fn insert_sessions(loader: &mut Loader, n: usize) {
    let now = now_ms();
    for i in 0..n {
        let key = format!("agent:main:subagent:{}", uuid::Uuid::new_v4());
        let task = format!("nightly report {i}: summarise what changed since yesterday");
        let session = LoadSession {
            key: &key,
            agent_id: "main",
            label: None,
        };
        loader
            .session(&session, now - (n - i) as i64, [(task.clone(), task)])
            .expect("load a session");
    }
}

fn store_size(d: &Daemon) -> String {
    let db = d.db_path();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = db.with_extension("db-wal");
    format!(
        "{:.1} MiB (+ WAL {:.1} MiB)",
        size(&db) as f64 / (1024.0 * 1024.0),
        size(&wal) as f64 / (1024.0 * 1024.0)
    )
}

// ------------------------------------------------------------------ sections

/// Busy share of all CPUs over the next second, from /proc/stat.
fn cpu_busy_over_a_second() -> f64 {
    fn sample() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (v.iter().sum(), idle)
    }
    let (t0, i0) = sample();
    std::thread::sleep(Duration::from_secs(1));
    let (t1, i1) = sample();
    let total = t1.saturating_sub(t0).max(1);
    1.0 - i1.saturating_sub(i0) as f64 / total as f64
}

/// With OPENCLAW_BENCH_QUIET=PERCENT: waits until the machine has been at most that busy for
/// 3 seconds in a row (at most 10 minutes), and notes the wait.
fn wait_quiet(t: &mut Table, section: &str) {
    let Some(max) = std::env::var("OPENCLAW_BENCH_QUIET")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    else {
        return;
    };
    let t0 = Instant::now();
    let mut quiet = 0;
    let mut last = 0.0;
    while quiet < 3 && t0.elapsed() < Duration::from_secs(600) {
        last = cpu_busy_over_a_second() * 100.0;
        quiet = if last <= max { quiet + 1 } else { 0 };
    }
    let waited = t0.elapsed().as_secs_f64() - 3.0;
    if quiet < 3 {
        t.note(format!(
            "{section}: the machine was still {last:.0}% busy after 10 minutes; measured anyway"
        ));
    } else if waited > 1.0 {
        t.note(format!(
            "{section}: waited {waited:.0} s for the CPUs to be at most {max}% busy"
        ));
    }
}

/// One section of the table: it measures and adds its rows.
type Section = fn(&Opts, &mut Table);

fn section_cold(o: &Opts, t: &mut Table) {
    t.section("cold start");
    let floor = &process_floor(o.cli.clamp(20, 100));
    eprintln!("cold start x{} ...", o.cold);
    let mut to_ready = Vec::new();
    let mut to_first = Vec::new();
    for _ in 0..o.cold.max(1) {
        let t0 = Instant::now();
        let d = Daemon::start();
        to_ready.push(t0.elapsed());
        RawConn::connect(&d.socket()).call_ok("hello", json!({}));
        to_first.push(t0.elapsed());
    }
    let ready = stats(&to_ready);
    let first = stats(&to_first);
    t.push(Row {
        metric: "daemon cold start → ready (fresh home: creates and migrates the store)".into(),
        value: lat(&ready),
        baseline: format!("`/bin/true` {}", ms(floor.median)),
        ratio: ratio_lat(ready.median, floor.median),
        target: String::new(),
    });
    t.push(Row {
        metric: "daemon cold start → first reply (`hello`)".into(),
        value: lat(&first),
        baseline: format!("`/bin/true` {}", ms(floor.median)),
        ratio: ratio_lat(first.median, floor.median),
        target: verdict("< 20 ms", first.median < Duration::from_millis(20)),
    });
}

fn section_core(o: &Opts, t: &mut Table) {
    t.section("core: spawn, send, throughput, memory");
    let floor = &process_floor(o.cli.max(20));
    t.note(format!(
        "core: process floor, `/bin/true` from this harness: median {}, p99 {}",
        ms(floor.median),
        ms(floor.p99)
    ));
    let d = Daemon::start_with_config(EXEC_AGENT);
    let socket = d.socket();
    let pid = d.pid();
    RawConn::connect(&socket).call_ok("hello", json!({}));
    let idle = rss_mib(pid).map(|r| r.0).unwrap_or(f64::NAN);
    t.push(Row {
        metric: "idle RSS (after one `hello`)".into(),
        value: rss_text(pid),
        target: verdict("< 10 MB", idle < 10.0),
        ..Row::default()
    });

    let cli_samples = |args: &[&str], n: usize, check: &dyn Fn(&str)| -> Stats {
        let samples: Vec<Duration> = (0..n)
            .map(|_| {
                let (el, out) = time_cmd(d.cli().args(args), "openclaw");
                check(&out);
                el
            })
            .collect();
        stats(&samples)
    };

    eprintln!("CLI --version x{} ...", o.cli);
    let version = cli_samples(&["--version"], o.cli, &|_| {});
    t.push(Row {
        metric: "`openclaw --version` (process start, no socket)".into(),
        value: lat(&version),
        baseline: format!("`/bin/true` {}", ms(floor.median)),
        ratio: ratio_lat(version.median, floor.median),
        target: String::new(),
    });

    eprintln!("CLI spawn x{} ...", o.cli);
    let check_key = |out: &str| assert!(out.starts_with("agent:"), "spawn printed {out:?}");
    let spawn_echo = cli_samples(&["sessions", "spawn", "--task", "x"], o.cli, &check_key);
    t.push(Row {
        metric: "`openclaw sessions spawn --task x` (echo agent)".into(),
        value: lat(&spawn_echo),
        baseline: format!("`/bin/true` {}", ms(floor.median)),
        ratio: ratio_lat(spawn_echo.median, floor.median),
        target: verdict(
            "< 3 ms median",
            spawn_echo.median < Duration::from_millis(3),
        ),
    });
    let spawn_t = cli_samples(
        &["sessions", "spawn", "--agent", "t", "--task", "x"],
        o.cli,
        &check_key,
    );
    t.push(Row {
        metric: "`openclaw sessions spawn --agent t --task x` (exec `true`)".into(),
        value: lat(&spawn_t),
        baseline: format!("`/bin/true` {}", ms(floor.median)),
        ratio: ratio_lat(spawn_t.median, floor.median),
        target: verdict("< 3 ms median", spawn_t.median < Duration::from_millis(3)),
    });

    eprintln!("shell loops x{} ...", o.cli);
    let loop_true = shell_loop(o.cli, Path::new("/bin/true"), &[], &[]);
    let loop_spawn = shell_loop(
        o.cli,
        Path::new(common::OPENCLAW),
        &["sessions", "spawn", "--agent", "t", "--task", "x"],
        &cli_env(&d),
    );
    let (r_spawn, r_true) = (rate(o.cli, loop_spawn), rate(o.cli, loop_true));
    t.push(Row {
        metric: "spawns/s from a shell loop (`--agent t`)".into(),
        value: per_s(r_spawn),
        baseline: format!("loop of `/bin/true` {}", per_s(r_true)),
        ratio: ratio_rate(r_spawn, r_true),
        target: String::new(),
    });

    eprintln!("sessions.send + wait x{} ...", o.send);
    let socket_send = {
        let mut c = RawConn::connect(&socket);
        let mut samples = Vec::with_capacity(o.send);
        for i in 0..o.send {
            let t0 = Instant::now();
            let r = c.call(
                i as i64,
                "sessions.send",
                json!({"sessionKey": "main", "message": format!("ping {i}"), "timeoutSeconds": 30}),
            );
            samples.push(t0.elapsed());
            assert_eq!(r["result"]["status"], "ok", "send + wait: {r}");
        }
        stats(&samples)
    };
    t.push(Row {
        metric: "`sessions.send` + wait for the reply, echo (socket)".into(),
        value: lat(&socket_send),
        ..Row::default()
    });

    eprintln!("CLI send x{} ...", o.cli_send);
    let cli_send = {
        let samples: Vec<Duration> = (0..o.cli_send)
            .map(|i| {
                let msg = format!("cli ping {i}");
                let (el, out) = time_cmd(
                    d.cli().args(["sessions", "send", "main", &msg]),
                    "openclaw sessions send",
                );
                assert_eq!(out.trim_end(), msg);
                el
            })
            .collect();
        stats(&samples)
    };
    t.push(Row {
        metric: "`openclaw sessions send main MSG` (echo, waits for the reply)".into(),
        value: lat(&cli_send),
        baseline: format!("socket send + wait {}", ms(socket_send.median)),
        ratio: ratio_lat(cli_send.median, socket_send.median),
        target: String::new(),
    });

    eprintln!("CLI wait x{} ...", o.cli_send);
    {
        let mut c = RawConn::connect(&socket);
        let mut rpc = Vec::new();
        let mut cli = Vec::new();
        for i in 0..o.cli_send {
            let spawn = |c: &mut RawConn| {
                c.call_ok(
                    "sessions.spawn",
                    json!({"task": format!("w{i}"), "agentId": "t"}),
                )["runId"]
                    .as_str()
                    .expect("runId")
                    .to_string()
            };
            let run = spawn(&mut c);
            let t0 = Instant::now();
            let r = c.call_ok("runs.wait", json!({"runId": run, "timeoutSeconds": 30}));
            rpc.push(t0.elapsed());
            assert_eq!(r["status"], "ok", "{r}");
            let run = spawn(&mut c);
            let (el, _) = time_cmd(
                d.cli().args(["sessions", "wait", &run, "--timeout", "30"]),
                "openclaw sessions wait",
            );
            cli.push(el);
        }
        let (rpc, cli) = (stats(&rpc), stats(&cli));
        t.push(Row {
            metric: "`openclaw sessions wait RUN` right after a spawn on `t` (until it ends)"
                .into(),
            value: lat(&cli),
            baseline: format!("`runs.wait` on the socket {}", ms(rpc.median)),
            ratio: ratio_lat(cli.median, rpc.median),
            target: String::new(),
        });
    }

    eprintln!("sequential RPCs x{} ...", o.rpc);
    let (hello_samples, _, _) = sequential(&socket, o.rpc, "hello", hello_line);
    let hello = stats(&hello_samples);
    let (samples, errors, last_seq) = sequential(&socket, o.rpc, "seq", spawn_line);
    let s = stats(&samples);
    t.push(Row {
        metric: "`sessions.spawn` RPC round trip, 1 connection, 1 in flight (durable)".into(),
        value: format!("{}{}", lat(&s), errors_text(errors)),
        baseline: format!("`hello` round trip {}", ms(hello.median)),
        ratio: ratio_lat(s.median, hello.median),
        target: String::new(),
    });

    eprintln!("pipelined x{} ...", o.pipeline);
    let (hello_el, _, _) = pipelined(&socket, o.pipeline, "hello", hello_line);
    let before = status(&socket);
    let (elapsed, errors, last_pipe) = pipelined(&socket, o.pipeline, "pipe", spawn_line);
    let after = status(&socket);
    let r = rate(o.pipeline, elapsed);
    let r_hello = rate(o.pipeline, hello_el);
    t.push(Row {
        metric: "durable spawns/s, 1 connection pipelined".into(),
        value: format!("{}{}", per_s(r), errors_text(errors)),
        baseline: format!("pipelined `hello` {}", per_s(r_hello)),
        ratio: ratio_rate(r, r_hello),
        target: verdict("≥ 10,000/s", r >= 10_000.0),
    });
    let commits =
        after["storeCommits"].as_u64().unwrap_or(0) - before["storeCommits"].as_u64().unwrap_or(0);
    let changes =
        after["storeChanges"].as_u64().unwrap_or(0) - before["storeChanges"].as_u64().unwrap_or(0);
    t.push(Row {
        metric: "group commit during that burst".into(),
        value: format!(
            "{changes} changes in {commits} commits ({:.1} per commit, {:.0} fsyncs/s)",
            changes as f64 / commits.max(1) as f64,
            commits as f64 / elapsed.as_secs_f64()
        ),
        ..Row::default()
    });

    eprintln!("{CONNECTIONS} connections closed-loop x{} ...", o.conc);
    let per = (o.conc / CONNECTIONS).max(1);
    let t0 = Instant::now();
    let results: Vec<(Vec<Duration>, usize, Option<String>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let socket = &socket;
                sc.spawn(move || sequential(socket, per, &format!("conc{c}"), spawn_line))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = t0.elapsed();
    let errors: usize = results.iter().map(|r| r.1).sum();
    let all: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let st = stats(&all);
    let r8 = rate(per * CONNECTIONS, elapsed);
    let r1 = 1.0 / s.median.as_secs_f64();
    t.push(Row {
        metric: format!("durable spawns/s, {CONNECTIONS} connections × 1 in flight"),
        value: format!(
            "{} (call median {}, p99 {}){}",
            per_s(r8),
            ms(st.median),
            ms(st.p99),
            errors_text(errors)
        ),
        baseline: format!("1 connection × 1 in flight {}", per_s(r1)),
        ratio: ratio_rate(r8, r1),
        target: String::new(),
    });
    let last_conc = results.iter().filter_map(|r| r.2.clone()).next_back();

    eprintln!("{CONNECTIONS} connections pipelined x{} ...", o.conc);
    let t0 = Instant::now();
    let results: Vec<(Duration, usize, Option<String>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let socket = &socket;
                sc.spawn(move || pipelined(socket, per, &format!("pconc{c}"), spawn_line))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = t0.elapsed();
    let errors: usize = results.iter().map(|r| r.1).sum();
    let r8p = rate(per * CONNECTIONS, elapsed);
    t.push(Row {
        metric: format!("durable spawns/s, {CONNECTIONS} connections pipelined"),
        value: format!("{}{}", per_s(r8p), errors_text(errors)),
        baseline: format!("1 connection pipelined {}", per_s(r)),
        ratio: ratio_rate(r8p, r),
        target: String::new(),
    });
    let last_pconc = results.iter().filter_map(|r| r.2.clone()).next_back();

    t.add(
        "RSS right after the load (runs still queued)",
        rss_text(pid),
    );
    eprintln!("waiting for queued runs to finish ...");
    let t0 = Instant::now();
    for run in [last_seq, last_pipe, last_conc, last_pconc]
        .into_iter()
        .flatten()
    {
        wait_run(&socket, &run);
    }
    let drain = t0.elapsed();
    let total = o.cli * 2 + o.rpc + o.pipeline + 2 * per * CONNECTIONS;
    t.push(Row {
        metric: format!("RSS after the load, runs drained ({total} sessions in the store)"),
        value: rss_text(pid),
        baseline: format!("idle {idle:.1} MiB"),
        ..Row::default()
    });
    t.note(format!(
        "core: draining the echo runs queued by the load took {}; store {}",
        ms(drain),
        store_size(&d)
    ));
}

fn errors_text(errors: usize) -> String {
    if errors == 0 {
        String::new()
    } else {
        format!(", **{errors} errors**")
    }
}

struct FollowRun {
    /// Append (request written) → a follower has the message.
    latency: Vec<Duration>,
    /// The append's own round trip (acknowledged = durable).
    ack: Vec<Duration>,
    expected: usize,
    delivered: usize,
    gaps: usize,
    duplicates: usize,
}

/// `followers` clients follow one session; the appender sends `appends` messages one at a
/// time (`timeoutSeconds: 0`), each after every follower has seen the previous one's reply.
fn follow_run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    followers: usize,
    appends: usize,
) -> FollowRun {
    use openclaw::Client;
    rt.block_on(async {
        let appender = Client::connect(socket).await.expect("connect");
        let spawned = appender
            .call_value("sessions.spawn", &json!({"task": "follow bench"}))
            .await
            .expect("spawn");
        let key = spawned["sessionKey"].as_str().expect("key").to_string();
        appender
            .call_value(
                "runs.wait",
                &json!({"runId": spawned["runId"], "timeoutSeconds": 30}),
            )
            .await
            .expect("wait");
        let progress = Arc::new(AtomicUsize::new(0));
        let notify = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::with_capacity(followers);
        for _ in 0..followers {
            let client = Client::connect(socket).await.expect("connect follower");
            let sub = client
                .call_value(
                    "sessions.subscribe",
                    &json!({"sessionKey": key, "events": ["message"]}),
                )
                .await
                .expect("subscribe");
            let start = sub["lastSeq"].as_u64().expect("lastSeq");
            let (progress, notify) = (progress.clone(), notify.clone());
            tasks.push(tokio::spawn(async move {
                let mut got: Vec<Option<Instant>> = vec![None; appends];
                let (mut next, mut delivered, mut gaps, mut dups) = (start + 1, 0, 0, 0);
                let mut replies = 0;
                while replies < appends {
                    let Some(n) = client.next_notification().await else {
                        break;
                    };
                    if n.method != "session.message" {
                        continue;
                    }
                    let now = Instant::now();
                    let m = &n.params["message"];
                    let seq = m["seq"].as_u64().unwrap_or(0);
                    if seq < next {
                        dups += 1;
                        continue;
                    }
                    if seq > next {
                        gaps += (seq - next) as usize;
                    }
                    next = seq + 1;
                    delivered += 1;
                    let i = m["content"]
                        .as_str()
                        .and_then(|c| c.strip_prefix("lat "))
                        .and_then(|i| i.parse::<usize>().ok());
                    match (m["role"].as_str(), i) {
                        (Some("user"), Some(i)) if i < appends => got[i] = Some(now),
                        (Some("assistant"), Some(_)) => {
                            replies += 1;
                            progress.fetch_add(1, Ordering::SeqCst);
                            notify.notify_waiters();
                        }
                        _ => {}
                    }
                }
                drop(client);
                (got, delivered, gaps, dups)
            }));
        }
        let mut sent = Vec::with_capacity(appends);
        let mut ack = Vec::with_capacity(appends);
        for i in 0..appends {
            let t0 = Instant::now();
            sent.push(t0);
            let r = appender
                .call_value(
                    "sessions.send",
                    &json!({"sessionKey": key, "message": format!("lat {i}"), "timeoutSeconds": 0}),
                )
                .await
                .expect("send");
            ack.push(t0.elapsed());
            assert_eq!(r["status"], "accepted", "{r}");
            let want = followers * (i + 1);
            loop {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if progress.load(Ordering::SeqCst) >= want {
                    break;
                }
                if tokio::time::timeout(Duration::from_secs(60), notified)
                    .await
                    .is_err()
                {
                    panic!(
                        "followers stalled: {} of {want} replies seen after 60 s",
                        progress.load(Ordering::SeqCst)
                    );
                }
            }
        }
        let mut run = FollowRun {
            latency: Vec::with_capacity(appends * followers),
            ack,
            expected: followers * appends * 2,
            delivered: 0,
            gaps: 0,
            duplicates: 0,
        };
        for task in tasks {
            let (got, delivered, gaps, dups) = task.await.expect("follower");
            run.delivered += delivered;
            run.gaps += gaps;
            run.duplicates += dups;
            for (i, at) in got.into_iter().enumerate() {
                if let Some(at) = at {
                    run.latency.push(at.saturating_duration_since(sent[i]));
                }
            }
        }
        run
    })
}

fn section_follow(o: &Opts, t: &mut Table) {
    t.section("follow: append-to-receipt latency");
    // One connection per follower, as `openclaw sessions follow` has: above the default
    // per-uid cap (512), so the caps are raised for this daemon.
    let d = Daemon::start_with_config(&format!(
        "[limits]\nmax_connections = {}\nmax_connections_per_uid = {}\n",
        o.followers * 2 + 64,
        o.followers * 2 + 64
    ));
    let socket = d.socket();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    eprintln!("1 follower x{} appends ...", o.follow_one);
    let one = follow_run(&rt, &socket, 1, o.follow_one);
    let one_lat = stats(&one.latency);
    let one_ack = stats(&one.ack);
    t.push(Row {
        metric: "append → receipt, 1 follower (append = `sessions.send`, durable)".into(),
        value: lat(&one_lat),
        baseline: format!("the append's own round trip {}", ms(one_ack.median)),
        ratio: ratio_lat(one_lat.median, one_ack.median),
        target: verdict("< 1 ms median", one_lat.median < Duration::from_millis(1)),
    });
    eprintln!("{} followers x{} appends ...", o.followers, o.follow_many);
    let many = follow_run(&rt, &socket, o.followers, o.follow_many);
    let many_lat = stats(&many.latency);
    t.push(Row {
        metric: format!("append → receipt, {} followers of one session", o.followers),
        value: lat(&many_lat),
        baseline: format!("1 follower {}", ms(one_lat.median)),
        ratio: ratio_lat(many_lat.median, one_lat.median),
        target: String::new(),
    });
    let lost =
        many.expected.saturating_sub(many.delivered) + one.expected.saturating_sub(one.delivered);
    t.push(Row {
        metric: format!("messages lost with {} followers", o.followers),
        value: format!(
            "{} lost, {} out of order, {} duplicated of {} deliveries",
            many.expected.saturating_sub(many.delivered),
            many.gaps,
            many.duplicates,
            many.expected
        ),
        target: verdict(
            "none lost",
            lost == 0 && many.gaps == 0 && many.duplicates == 0 && one.gaps == 0,
        ),
        ..Row::default()
    });
    let st = status(&socket);
    t.add(
        format!("daemon RSS after {} followers", o.followers),
        format!(
            "{}; {} buffered notifications",
            rss_text(d.pid()),
            st["bufferedNotifications"]
        ),
    );
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// Follows `key` from the start on a raw connection until `n` messages arrived: (elapsed,
/// received, in order).
fn catch_up(socket: &Path, key: &str, n: usize) -> (Duration, usize, bool) {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "sessions.subscribe",
                     "params": {"sessionKey": key, "afterSeq": 0, "events": ["message"]}});
    let t0 = Instant::now();
    w.write_all(format!("{req}\n").as_bytes()).expect("write");
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let (mut line, mut expect, mut got, mut ordered) = (Vec::new(), 1u64, 0usize, true);
    while got < n {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        let Some(seq) = seq_of(&line) else { continue };
        ordered &= seq == expect;
        expect = seq + 1;
        got += 1;
    }
    (t0.elapsed(), got, ordered)
}

/// The `"seq":N` of a `session.message` line, found without parsing the whole line.
fn seq_of(line: &[u8]) -> Option<u64> {
    let head = &line[..line.len().min(400)];
    let find = |pat: &[u8]| head.windows(pat.len()).position(|w| w == pat);
    find(b"session.message")?;
    let at = find(b"\"seq\":")? + 6;
    let digits: Vec<u8> = head[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn section_history(o: &Opts, t: &mut Table) {
    let n = o.transcript;
    t.section(&format!(
        "history and catch-up: a {n}-message transcript (pre-built store)"
    ));
    eprintln!("building a store with a {n}-message transcript ...");
    let mut keys = (String::new(), String::new());
    let (mut d, took) = prebuilt("", |loader| {
        keys.0 = insert_transcript(loader, n, "long");
        keys.1 = insert_transcript(loader, 100, "short");
    });
    let (big, small) = keys;
    t.note(format!(
        "history: inserting the {n}-message transcript took {}; store {}",
        ms(took),
        store_size(&d)
    ));
    let (ready, first) = restarts(&mut d, o.starts);
    let (ready, first) = (stats(&ready), stats(&first));
    t.push(Row {
        metric: format!("daemon start → first reply, store with a {n}-message transcript"),
        value: lat(&first),
        baseline: format!("→ ready {}", ms(ready.median)),
        target: verdict("< 20 ms", first.median < Duration::from_millis(20)),
        ..Row::default()
    });
    let socket = d.socket();
    let page = |key: &str, cursor: Option<String>, calls: usize| -> Stats {
        let mut c = RawConn::connect(&socket);
        let mut params = json!({"sessionKey": key, "limit": 100});
        if let Some(cur) = cursor {
            params["cursor"] = cur.into();
        }
        let samples: Vec<Duration> = (0..calls)
            .map(|i| {
                let t0 = Instant::now();
                let r = c.call(i as i64, "sessions.history", params.clone());
                let el = t0.elapsed();
                assert_eq!(
                    r["result"]["messages"].as_array().map(Vec::len),
                    Some(100),
                    "{}",
                    r.to_string().chars().take(300).collect::<String>()
                );
                el
            })
            .collect();
        stats(&samples)
    };
    eprintln!("history pages x{} ...", o.history);
    let base = page(&small, None, o.history);
    let newest = page(&big, None, o.history);
    let middle = page(&big, Some((n / 2).to_string()), o.history);
    t.push(Row {
        metric: format!("`sessions.history` page of 100, newest, {n}-message transcript"),
        value: lat(&newest),
        baseline: format!("same on a 100-message transcript {}", ms(base.median)),
        ratio: ratio_lat(newest.median, base.median),
        target: verdict("< 2 ms", newest.median < Duration::from_millis(2)),
    });
    t.push(Row {
        metric: format!("`sessions.history` page of 100 at seq {} (cursor)", n / 2),
        value: lat(&middle),
        baseline: format!("newest page {}", ms(newest.median)),
        ratio: ratio_lat(middle.median, newest.median),
        target: verdict("< 2 ms", middle.median < Duration::from_millis(2)),
    });
    let cli_hist = |key: &str| {
        let samples: Vec<Duration> = (0..o.cli_send.min(50))
            .map(|_| {
                time_cmd(
                    d.cli()
                        .args(["sessions", "history", key, "--limit", "100", "--json"]),
                    "openclaw sessions history",
                )
                .0
            })
            .collect();
        stats(&samples)
    };
    let cli_small = cli_hist(&small);
    let cli_big = cli_hist(&big);
    t.push(Row {
        metric: format!(
            "`openclaw sessions history KEY --limit 100 --json`, {n}-message transcript"
        ),
        value: lat(&cli_big),
        baseline: format!("100-message transcript {}", ms(cli_small.median)),
        ratio: ratio_lat(cli_big.median, cli_small.median),
        target: String::new(),
    });

    eprintln!("follow catch-up over {n} messages ...");
    let (el, got, ordered) = catch_up(&socket, &big, n);
    let r = rate(got, el);
    t.push(Row {
        metric: format!(
            "follow catch-up from seq 0 (`sessions.subscribe afterSeq 0`), {n} messages"
        ),
        value: format!(
            "{} ({} in {}{})",
            per_s(r),
            got,
            ms(el),
            if ordered && got == n {
                ""
            } else {
                ", **incomplete or out of order**"
            }
        ),
        target: verdict("> 200,000/s", r > 200_000.0 && ordered && got == n),
        ..Row::default()
    });
    let pid = d.pid();
    t.add(
        "daemon RSS after the catch-up",
        format!(
            "{}; {} buffered notifications",
            rss_text(pid),
            status(&socket)["bufferedNotifications"]
        ),
    );

    eprintln!("CLI follow --from-start over {n} messages ...");
    let err_path = d.home_path().join("follow.stderr");
    let mut child = d
        .cli()
        .args(["sessions", "follow", &big, "--from-start", "--json"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("openclaw sessions follow");
    let t0 = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    let (mut line, mut cgot) = (Vec::new(), 0usize);
    while cgot < n {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            break;
        }
        if seq_of(&line).is_some() {
            cgot += 1;
        }
    }
    let cel = t0.elapsed();
    stop_child(&mut child);
    if cgot < n {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        t.add(
            format!("`openclaw sessions follow KEY --from-start --json`, {n} messages"),
            format!(
                "not measured: {cgot} lines, then it stopped: {}",
                err.lines().next().unwrap_or("no message")
            ),
        );
        return;
    }
    let cr = rate(cgot, cel);
    t.push(Row {
        metric: format!("`openclaw sessions follow KEY --from-start --json`, {n} messages"),
        value: format!("{} ({cgot} lines in {})", per_s(cr), ms(cel)),
        baseline: format!("raw socket {}", per_s(r)),
        ratio: ratio_rate(cr, r),
        target: String::new(),
    });
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn section_scale(o: &Opts, t: &mut Table) {
    t.section("scale: sessions in the store (pre-built stores)");
    let mut results = Vec::new();
    for n in [o.sessions_small, o.sessions_large] {
        eprintln!("building a store of {n} sessions ...");
        let (mut d, took) = prebuilt("", |loader| insert_sessions(loader, n));
        t.note(format!(
            "scale: inserting {n} sessions (2 messages and 1 run each) took {}; store {}",
            ms(took),
            store_size(&d)
        ));
        let (ready, first) = restarts(&mut d, o.starts);
        let socket = d.socket();
        let mut c = RawConn::connect(&socket);
        let list: Vec<Duration> = (0..o.list)
            .map(|i| {
                let t0 = Instant::now();
                let r = c.call(i as i64, "sessions.list", json!({"limit": 50}));
                let el = t0.elapsed();
                assert_eq!(r["result"]["sessions"].as_array().map(Vec::len), Some(50));
                el
            })
            .collect();
        let cli: Vec<Duration> = (0..o.cli_send.min(50))
            .map(|_| {
                time_cmd(
                    d.cli()
                        .args(["sessions", "list", "--limit", "50", "--json"]),
                    "openclaw sessions list",
                )
                .0
            })
            .collect();
        let rss = rss_text(d.pid());
        results.push((
            n,
            stats(&ready),
            stats(&first),
            stats(&list),
            stats(&cli),
            rss,
        ));
    }
    let (small, large) = (&results[0], &results[1]);
    for r in [small, large] {
        let (n, ready, first, ..) = r;
        t.push(Row {
            metric: format!("daemon start → first reply, {n} sessions"),
            value: lat(first),
            baseline: if *n == small.0 {
                format!("→ ready {}", ms(ready.median))
            } else {
                format!("{} sessions {}", small.0, ms(small.2.median))
            },
            ratio: if *n == small.0 {
                String::new()
            } else {
                ratio_lat(first.median, small.2.median)
            },
            target: verdict("< 20 ms", first.median < Duration::from_millis(20)),
        });
    }
    for r in [small, large] {
        let (n, _, _, list, ..) = r;
        t.push(Row {
            metric: format!("`sessions.list` limit 50 (socket), {n} sessions"),
            value: lat(list),
            baseline: if *n == small.0 {
                String::new()
            } else {
                format!("{} sessions {}", small.0, ms(small.3.median))
            },
            ratio: if *n == small.0 {
                String::new()
            } else {
                ratio_lat(list.median, small.3.median)
            },
            target: String::new(),
        });
    }
    for r in [small, large] {
        let (n, _, _, _, cli, rss) = r;
        t.push(Row {
            metric: format!("`openclaw sessions list --limit 50 --json`, {n} sessions"),
            value: lat(cli),
            baseline: if *n == small.0 {
                String::new()
            } else {
                format!("{} sessions {}", small.0, ms(small.4.median))
            },
            ratio: if *n == small.0 {
                String::new()
            } else {
                ratio_lat(cli.median, small.4.median)
            },
            target: String::new(),
        });
        t.add(
            format!("daemon RSS, {n} sessions, after the list calls"),
            rss.clone(),
        );
    }
}

// ------------------------------------------------------------------ peers: pueue

struct Pueue {
    pueue: PathBuf,
    pueued: PathBuf,
}

/// pueue from `target/bench-peers/pueue`, installed there with `cargo install` when missing.
fn pueue_install() -> Result<Pueue, String> {
    let target = Path::new(common::OPENCLAW)
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let root = target.join("bench-peers").join("pueue");
    let p = Pueue {
        pueue: root.join("bin").join("pueue"),
        pueued: root.join("bin").join("pueued"),
    };
    if p.pueue.exists() && p.pueued.exists() {
        return Ok(p);
    }
    let log = target.join("bench-peers").join("pueue-install.log");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    eprintln!(
        "installing pueue: cargo install pueue --locked --root {} (takes minutes, once; log {})",
        root.display(),
        log.display()
    );
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "pueue", "--locked", "--root"])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() && p.pueue.exists() && p.pueued.exists() {
        Ok(p)
    } else {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        Err(format!(
            "cargo install pueue failed ({status}):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

struct PueueDaemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PueueDaemon {
    fn config(&self) -> PathBuf {
        self.dir.path().join("pueue.yml")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("pueue.sock")
    }

    /// Starts `pueued` in its own temp dir; returns it and the time to its first accepted
    /// connection. pueued has no readiness signal, so this tries to connect every 100 µs.
    fn start(p: &Pueue) -> (PueueDaemon, Duration) {
        let dir = tempfile::Builder::new()
            .prefix("pueue-bench-")
            .tempdir()
            .expect("tempdir");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).expect("run dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let d = PueueDaemon { dir, child: None };
        std::fs::write(
            d.config(),
            format!(
                "shared:\n  pueue_directory: {}\n  runtime_directory: {}\n  use_unix_socket: true\n  unix_socket_path: {}\n",
                d.dir.path().join("data").display(),
                run.display(),
                d.socket().display()
            ),
        )
        .expect("write pueue.yml");
        let log = std::fs::File::create(d.dir.path().join("pueued.log")).expect("log");
        let t0 = Instant::now();
        let child = Command::new(&p.pueued)
            .arg("-c")
            .arg(d.config())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", d.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pueued");
        let mut d = d;
        d.child = Some(child);
        let sock = d.socket();
        loop {
            if UnixStream::connect(&sock).is_ok() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "pueued did not listen within 20 s; log:\n{}",
                std::fs::read_to_string(d.dir.path().join("pueued.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        let el = t0.elapsed();
        (d, el)
    }

    fn cmd(&self, p: &Pueue) -> Command {
        let mut c = Command::new(&p.pueue);
        c.arg("-c")
            .arg(self.config())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("pueued").id()
    }
}

impl Drop for PueueDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            common::wait_child(&mut c, Duration::from_secs(5));
        }
    }
}

fn section_peers(o: &Opts, t: &mut Table) {
    t.section("peers: pueue side by side");
    let p = match pueue_install() {
        Ok(p) => p,
        Err(e) => {
            t.add("pueue", "not measured: it could not be built here");
            t.note(format!("pueue could not be built: {e}"));
            return;
        }
    };
    let version = Command::new(&p.pueue)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    t.note(format!(
        "peers: {version} from `cargo install pueue --locked`, its daemon in a temp dir with its own pueue.yml (`pueued -c`), `pueue parallel 8` like openclaw's lanes; commands run with the same clean environment as openclaw's"
    ));

    // Start-up, interleaved.
    eprintln!("pueued and openclawd starts x{} ...", o.starts);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..o.starts.max(1) {
        let t0 = Instant::now();
        let d = Daemon::start_with_config(EXEC_AGENT);
        RawConn::connect(&d.socket()).call_ok("hello", json!({}));
        ours.push(t0.elapsed());
        drop(d);
        let (pd, el) = PueueDaemon::start(&p);
        theirs.push(el);
        drop(pd);
    }
    let (ours_s, theirs_s) = (stats(&ours), stats(&theirs));
    t.push(Row {
        metric: "openclawd start → first reply (fresh home)".into(),
        value: lat(&ours_s),
        baseline: format!("pueued start → first connection {}", ms(theirs_s.median)),
        ratio: ratio_lat(ours_s.median, theirs_s.median),
        target: String::new(),
    });

    let d = Daemon::start_with_config(EXEC_AGENT);
    RawConn::connect(&d.socket()).call_ok("hello", json!({}));
    let (pd, _) = PueueDaemon::start(&p);
    time_cmd(pd.cmd(&p).args(["parallel", "8"]), "pueue parallel 8");
    time_cmd(pd.cmd(&p).arg("status"), "pueue status");
    let (our_idle, their_idle) = (
        rss_mib(d.pid()).map(|r| r.0).unwrap_or(f64::NAN),
        rss_mib(pd.pid()).map(|r| r.0).unwrap_or(f64::NAN),
    );
    t.push(Row {
        metric: "openclawd idle RSS".into(),
        value: format!("{our_idle:.1} MiB"),
        baseline: format!("pueued idle {their_idle:.1} MiB"),
        ratio: format!("{:.2}×", our_idle / their_idle),
        target: verdict("< 10 MB", our_idle < 10.0),
    });

    // wait: add, then wait until it ended; interleaved.
    eprintln!("wait x{} each ...", o.peer_wait);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut c = RawConn::connect(&d.socket());
    for i in 0..o.peer_wait {
        let run = c.call_ok(
            "sessions.spawn",
            json!({"task": format!("w{i}"), "agentId": "t"}),
        )["runId"]
            .as_str()
            .expect("runId")
            .to_string();
        ours.push(
            time_cmd(
                d.cli().args(["sessions", "wait", &run, "--timeout", "30"]),
                "openclaw sessions wait",
            )
            .0,
        );
        let (_, id) = time_cmd(pd.cmd(&p).args(["add", "-p", "--", "true"]), "pueue add -p");
        theirs.push(time_cmd(pd.cmd(&p).args(["wait", "-q", id.trim()]), "pueue wait").0);
    }
    let (ours_s, theirs_s) = (stats(&ours), stats(&theirs));
    t.push(Row {
        metric: "`openclaw sessions wait RUN` just after `spawn --agent t` (until the run ends)"
            .into(),
        value: lat(&ours_s),
        baseline: format!(
            "`pueue wait ID` just after `pueue add -- true` {}",
            ms(theirs_s.median)
        ),
        ratio: ratio_lat(ours_s.median, theirs_s.median),
        target: String::new(),
    });

    // add round trip, interleaved sample by sample.
    eprintln!("add round trips x{} each ...", o.peer);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..o.peer {
        ours.push(
            time_cmd(
                d.cli()
                    .args(["sessions", "spawn", "--agent", "t", "--task", "x"]),
                "openclaw sessions spawn",
            )
            .0,
        );
        theirs.push(time_cmd(pd.cmd(&p).args(["add", "--", "true"]), "pueue add").0);
    }
    let (ours_s, theirs_s) = (stats(&ours), stats(&theirs));
    let times = theirs_s.median.as_secs_f64() / ours_s.median.as_secs_f64();
    t.push(Row {
        metric: "`openclaw sessions spawn --agent t --task x` round trip".into(),
        value: lat(&ours_s),
        baseline: format!("`pueue add -- true` {}", lat(&theirs_s)),
        ratio: ratio_lat(ours_s.median, theirs_s.median),
        target: verdict(
            &format!("≥ 3× faster than pueue add (is {times:.1}×)"),
            times >= 3.0,
        ),
    });

    // The enqueue alone: pueue's default group paused (its tasks are stored, not started),
    // openclaw on the in-process echo agent (no process per run).
    eprintln!("enqueue-only round trips x{} each ...", o.peer);
    time_cmd(pd.cmd(&p).args(["pause"]), "pueue pause");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..o.peer {
        ours.push(
            time_cmd(
                d.cli().args(["sessions", "spawn", "--task", "x"]),
                "openclaw sessions spawn",
            )
            .0,
        );
        theirs.push(time_cmd(pd.cmd(&p).args(["add", "--", "true"]), "pueue add").0);
    }
    time_cmd(pd.cmd(&p).args(["start"]), "pueue start");
    let (ours_e, theirs_e) = (stats(&ours), stats(&theirs));
    let times_e = theirs_e.median.as_secs_f64() / ours_e.median.as_secs_f64();
    t.push(Row {
        metric: "`openclaw sessions spawn --task x` round trip, echo agent (no process per run)"
            .into(),
        value: lat(&ours_e),
        baseline: format!("`pueue add -- true`, group paused {}", lat(&theirs_e)),
        ratio: ratio_lat(ours_e.median, theirs_e.median),
        target: verdict(
            &format!("≥ 3× faster than pueue add (is {times_e:.1}×)"),
            times_e >= 3.0,
        ),
    });

    eprintln!("shell loops x{} each ...", o.peer);
    let our_loop = shell_loop(
        o.peer,
        Path::new(common::OPENCLAW),
        &["sessions", "spawn", "--agent", "t", "--task", "x"],
        &cli_env(&d),
    );
    let cfg = pd.config();
    let cfg_s = cfg.to_string_lossy().into_owned();
    let their_loop = shell_loop(
        o.peer,
        &p.pueue,
        &["-c", &cfg_s, "add", "--", "true"],
        &[("HOME", pd.dir.path()), ("NO_COLOR", Path::new("1"))],
    );
    let (ro, rt) = (rate(o.peer, our_loop), rate(o.peer, their_loop));
    t.push(Row {
        metric: "spawns/s from a shell loop (`--agent t`)".into(),
        value: per_s(ro),
        baseline: format!("`pueue add -- true` loop {}", per_s(rt)),
        ratio: ratio_rate(ro, rt),
        target: String::new(),
    });
    t.push(Row {
        metric: "RSS after these adds".into(),
        value: format!("openclawd {}", rss_text(d.pid())),
        baseline: format!("pueued {}", rss_text(pd.pid())),
        ..Row::default()
    });
}

fn main() {
    let o = Opts::from_env_and_args();
    let mut command = String::from("cargo bench --bench e2e");
    for var in ENV_VARS {
        if let Ok(v) = std::env::var(var) {
            command = format!("{var}={v} {command}");
        }
    }
    if o.peers && !command.contains("OPENCLAW_BENCH_PEERS") {
        command.push_str(" -- --peers");
    }
    let mut report = format!(
        "openclaw end-to-end benchmark{}\n\n",
        if o.quick { " (quick)" } else { "" }
    );
    report.push_str(&format!("- command: `{command}`\n"));
    report.push_str(&format!("- machine: {}\n", machine()));
    report.push_str(&format!(
        "- openclaw {} (git {}), release build\n\n",
        env!("CARGO_PKG_VERSION"),
        Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    ));

    let started = Instant::now();
    let mut t = Table::default();
    let sections: [(&str, Section); 13] = [
        ("floors", floors::section_floors),
        ("cold", section_cold),
        ("core", section_core),
        ("follow", section_follow),
        ("history", section_history),
        ("scale", section_scale),
        ("openai", openai::section_openai),
        ("http", http::section),
        ("acp", acp::section_acp),
        ("mcp", mcp::section),
        ("unpaired", unpaired::section_unpaired),
        ("subscriptions", subscriptions::section),
        ("peers", section_peers),
    ];
    for (name, section) in sections {
        if o.runs(name) {
            wait_quiet(&mut t, name);
            section(&o, &mut t);
        }
    }
    t.note(format!(
        "whole run took {:.0} s; load average at the end {}",
        started.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    report.push_str(&t.render());
    println!("{report}");
    if env_flag("OPENCLAW_BENCH_UPDATE") {
        update_benchmarks_md(&report);
    }
}

/// Replaces the generated part of BENCHMARKS.md (between its two markers) with this run's
/// report, leaving the hand-written analysis around it alone.
fn update_benchmarks_md(report: &str) {
    const BEGIN: &str =
        "<!-- bench:begin (generated by `OPENCLAW_BENCH_UPDATE=1 cargo bench --bench e2e`) -->";
    const END: &str = "<!-- bench:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let span = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if b < e => Some((b, e)),
        _ => None,
    };
    let Some((b, e)) = span else {
        eprintln!(
            "e2e: {} has no `{BEGIN}` … `{END}` markers; not updated",
            path.display()
        );
        return;
    };
    let updated = format!("{}{BEGIN}\n\n{report}\n{}", &text[..b], &text[e..]);
    match std::fs::write(&path, updated) {
        Ok(()) => eprintln!("e2e: updated {}", path.display()),
        Err(err) => eprintln!("e2e: cannot write {}: {err}", path.display()),
    }
}
