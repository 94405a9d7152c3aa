//! End-to-end benchmark: a real `openclawd` (release build) in a temp `OPENCLAW_HOME`, driven by
//! the real `openclaw` CLI and by raw NDJSON on its socket. Prints one table.
//!
//!     cargo bench --bench e2e
//!     OPENCLAW_BENCH_QUICK=1 cargo bench --bench e2e      # small counts, a few seconds
//!
//! Counts can be set one by one: OPENCLAW_BENCH_CLI_N (CLI spawns), OPENCLAW_BENCH_CLI_SEND_N,
//! OPENCLAW_BENCH_RPC_N (sequential spawns on one connection), OPENCLAW_BENCH_PIPELINE_N,
//! OPENCLAW_BENCH_CONC_N (total over 8 connections), OPENCLAW_BENCH_SEND_N, OPENCLAW_BENCH_COLD_N.
//!
//! Cargo builds the binary targets for benchmarks and sets CARGO_BIN_EXE_*, so the shared test
//! harness (which locates the binaries that way) is used as is.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, RawConn, proc_status_kb};
use serde_json::{Value, json};

const CONNECTIONS: usize = 8;

struct Counts {
    cli: usize,
    cli_send: usize,
    rpc: usize,
    pipeline: usize,
    conc: usize,
    send: usize,
    cold: usize,
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Counts {
    fn from_env() -> (Counts, bool) {
        let quick = std::env::var("OPENCLAW_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let q = |full: usize, small: usize| if quick { small } else { full };
        let c = Counts {
            cli: env_count("OPENCLAW_BENCH_CLI_N", q(300, 30)),
            cli_send: env_count("OPENCLAW_BENCH_CLI_SEND_N", q(100, 10)),
            rpc: env_count("OPENCLAW_BENCH_RPC_N", q(2_000, 200)),
            pipeline: env_count("OPENCLAW_BENCH_PIPELINE_N", q(20_000, 2_000)),
            conc: env_count("OPENCLAW_BENCH_CONC_N", q(20_000, 2_000)),
            send: env_count("OPENCLAW_BENCH_SEND_N", q(1_000, 100)),
            cold: env_count("OPENCLAW_BENCH_COLD_N", q(20, 3)),
        };
        (c, quick)
    }
}

// ------------------------------------------------------------------ statistics and output

struct Stats {
    n: usize,
    median: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    assert!(!samples.is_empty(), "no samples");
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
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

struct Table {
    rows: Vec<(String, String, String)>,
}

impl Table {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>, note: impl Into<String>) {
        let (what, value, note) = (what.into(), value.into(), note.into());
        eprintln!("  {what}: {value} {note}");
        self.rows.push((what, value, note));
    }

    fn latency(&mut self, what: &str, s: &Stats, target: &str) {
        self.add(
            what,
            format!("median {}, p99 {}", ms(s.median), ms(s.p99)),
            format!(
                "n={}, max {}{}",
                s.n,
                ms(s.max),
                if target.is_empty() {
                    String::new()
                } else {
                    format!("; target {target}")
                }
            ),
        );
    }

    fn print(&self) {
        let w0 = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let w1 = self
            .rows
            .iter()
            .map(|r| r.1.len())
            .max()
            .unwrap_or(0)
            .max(5);
        println!("| {:w0$} | {:w1$} | notes", "metric", "value");
        println!("|-{}-|-{}-|------", "-".repeat(w0), "-".repeat(w1));
        for (a, b, c) in &self.rows {
            println!("| {a:w0$} | {b:w1$} | {c}");
        }
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
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb / 1024)
                .unwrap_or(0)
        })
        .unwrap_or(0);
    format!(
        "{nproc} CPUs ({model}), {mem} MiB RAM, Linux {}",
        kernel.trim()
    )
}

fn rss_kb(pid: u32) -> String {
    match (proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")) {
        (Some(rss), Some(hwm)) => format!(
            "{:.1} MiB (peak {:.1} MiB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        _ => "n/a".into(),
    }
}

// ------------------------------------------------------------------ measurements

fn spawn_line(id: usize, tag: &str) -> String {
    let mut s = json!({"jsonrpc": "2.0", "id": id, "method": "sessions.spawn",
                       "params": {"task": format!("bench {tag} {id}")}})
    .to_string();
    s.push('\n');
    s
}

/// Writes `n` spawn requests on one connection without waiting (a writer thread), reads every
/// reply; returns (elapsed, errors, last run id).
fn pipelined_spawns(socket: &Path, n: usize, tag: &str) -> (Duration, usize, Option<String>) {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let write_half = stream.try_clone().expect("clone");
    let tag_w = tag.to_string();
    let payload: Vec<String> = (0..n).map(|i| spawn_line(i, &tag_w)).collect();
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
        match v["result"]["runId"].as_str() {
            Some(run) => last_run = Some(run.to_string()),
            None => {
                if errors == 0 {
                    eprintln!("  first error reply: {}", line.trim_end());
                }
                errors += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    writer.join().expect("writer thread");
    (elapsed, errors, last_run)
}

/// One request at a time on one connection; returns per-call latencies and the last run id.
fn sequential_spawns(socket: &Path, n: usize, tag: &str) -> (Vec<Duration>, usize, Option<String>) {
    let mut c = RawConn::connect(socket);
    let mut samples = Vec::with_capacity(n);
    let mut errors = 0;
    let mut last = None;
    for i in 0..n {
        let line = spawn_line(i, tag);
        let t = Instant::now();
        c.send_raw(line.as_bytes());
        let v = c.read_json();
        samples.push(t.elapsed());
        match v["result"]["runId"].as_str() {
            Some(r) => last = Some(r.to_string()),
            None => errors += 1,
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

fn main() {
    let (n, quick) = Counts::from_env();
    let mut command = String::from("cargo bench --bench e2e");
    for var in [
        "OPENCLAW_BENCH_QUICK",
        "OPENCLAW_BENCH_CLI_N",
        "OPENCLAW_BENCH_CLI_SEND_N",
        "OPENCLAW_BENCH_RPC_N",
        "OPENCLAW_BENCH_PIPELINE_N",
        "OPENCLAW_BENCH_CONC_N",
        "OPENCLAW_BENCH_SEND_N",
        "OPENCLAW_BENCH_COLD_N",
    ] {
        if let Ok(v) = std::env::var(var) {
            command = format!("{var}={v} {command}");
        }
    }
    println!(
        "openclaw end-to-end benchmark{}",
        if quick { " (quick)" } else { "" }
    );
    println!("command: {command}");
    println!("machine: {}", machine());
    println!("binaries: {} {}", common::OPENCLAW, common::OPENCLAWD);
    println!();

    let mut t = Table { rows: Vec::new() };

    // Cold start: process start to "ready" on the pipe, and to the first answered request.
    eprintln!("cold start x{} ...", n.cold);
    let mut to_ready = Vec::new();
    let mut to_first = Vec::new();
    for _ in 0..n.cold.max(1) {
        let t0 = Instant::now();
        let d = Daemon::start();
        to_ready.push(t0.elapsed());
        let mut c = RawConn::connect(&d.socket());
        c.call_ok("hello", json!({}));
        to_first.push(t0.elapsed());
    }
    t.latency(
        "daemon cold start -> ready (fresh home)",
        &stats(to_ready),
        "",
    );
    t.latency("daemon cold start -> first reply", &stats(to_first), "");

    let d = Daemon::start();
    let socket = d.socket();
    let pid = d.pid();
    {
        let mut c = RawConn::connect(&socket);
        c.call_ok("hello", json!({}));
    }
    t.add("idle RSS (after one hello)", rss_kb(pid), "target < 10 MB");

    // CLI spawn round trip, as a shell calls it.
    eprintln!("CLI spawn x{} ...", n.cli);
    let mut samples = Vec::with_capacity(n.cli);
    let mut last_cli_key = String::new();
    for _ in 0..n.cli {
        let t0 = Instant::now();
        let out = d
            .cli()
            .args(["sessions", "spawn", "--task", "x"])
            .output()
            .expect("run openclaw");
        samples.push(t0.elapsed());
        assert!(
            out.status.success(),
            "openclaw sessions spawn failed: {}",
            common::stderr(&out)
        );
        last_cli_key = common::stdout(&out).trim().to_string();
    }
    t.latency(
        "`openclaw sessions spawn --task x` (process)",
        &stats(samples),
        "< 3 ms median",
    );
    let _ = last_cli_key;

    // send + wait on echo, over the socket.
    eprintln!("sessions.send + wait x{} ...", n.send);
    {
        let mut c = RawConn::connect(&socket);
        let mut samples = Vec::with_capacity(n.send);
        for i in 0..n.send {
            let t0 = Instant::now();
            let r = c.call(
                i as i64,
                "sessions.send",
                json!({"sessionKey": "main", "message": format!("ping {i}"), "timeoutSeconds": 30}),
            );
            samples.push(t0.elapsed());
            assert_eq!(r["result"]["status"], "ok", "send + wait: {r}");
        }
        t.latency("sessions.send + wait on echo (socket)", &stats(samples), "");
    }

    // send + wait on echo, through the CLI.
    eprintln!("CLI send x{} ...", n.cli_send);
    {
        let mut samples = Vec::with_capacity(n.cli_send);
        for i in 0..n.cli_send {
            let msg = format!("cli ping {i}");
            let t0 = Instant::now();
            let out = d
                .cli()
                .args(["sessions", "send", "main", &msg])
                .output()
                .expect("run openclaw");
            samples.push(t0.elapsed());
            assert!(
                out.status.success(),
                "openclaw sessions send failed: {}",
                common::stderr(&out)
            );
            assert_eq!(common::stdout(&out).trim_end(), msg);
        }
        t.latency(
            "`openclaw sessions send KEY MSG` (echo, waits)",
            &stats(samples),
            "",
        );
    }

    // Sequential spawn RPCs on one connection.
    eprintln!("sequential spawn RPC x{} ...", n.rpc);
    let (samples, errors, last_seq) = sequential_spawns(&socket, n.rpc, "seq");
    let s = stats(samples);
    t.add(
        "sessions.spawn RPC round trip (1 conn, 1 in flight)",
        format!("median {}, p99 {}", ms(s.median), ms(s.p99)),
        format!("n={}, max {}, {errors} errors", s.n, ms(s.max)),
    );

    // Pipelined spawns on one connection.
    eprintln!("pipelined spawns x{} ...", n.pipeline);
    let (elapsed, errors, last_pipe) = pipelined_spawns(&socket, n.pipeline, "pipe");
    t.add(
        "durable spawns/s, 1 connection pipelined",
        format!("{:.0}/s", n.pipeline as f64 / elapsed.as_secs_f64()),
        format!(
            "{} spawns in {}, {errors} errors; target >= 10000/s",
            n.pipeline,
            ms(elapsed)
        ),
    );

    // 8 connections, one request in flight each.
    eprintln!("{CONNECTIONS} connections closed-loop x{} ...", n.conc);
    let per = (n.conc / CONNECTIONS).max(1);
    let t0 = Instant::now();
    let results: Vec<(Vec<Duration>, usize, Option<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let socket = &socket;
                s.spawn(move || sequential_spawns(socket, per, &format!("conc{c}")))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = t0.elapsed();
    let errors: usize = results.iter().map(|r| r.1).sum();
    let all: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let st = stats(all);
    t.add(
        format!("durable spawns/s, {CONNECTIONS} connections x 1 in flight"),
        format!(
            "{:.0}/s",
            (per * CONNECTIONS) as f64 / elapsed.as_secs_f64()
        ),
        format!(
            "{} spawns in {}, call median {} p99 {}, {errors} errors",
            per * CONNECTIONS,
            ms(elapsed),
            ms(st.median),
            ms(st.p99)
        ),
    );
    let last_conc = results.iter().filter_map(|r| r.2.clone()).next_back();

    // 8 connections, all pipelined.
    eprintln!("{CONNECTIONS} connections pipelined x{} ...", n.conc);
    let t0 = Instant::now();
    let results: Vec<(Duration, usize, Option<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let socket = &socket;
                s.spawn(move || pipelined_spawns(socket, per, &format!("pconc{c}")))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = t0.elapsed();
    let errors: usize = results.iter().map(|r| r.1).sum();
    t.add(
        format!("durable spawns/s, {CONNECTIONS} connections pipelined"),
        format!(
            "{:.0}/s",
            (per * CONNECTIONS) as f64 / elapsed.as_secs_f64()
        ),
        format!(
            "{} spawns in {}, {errors} errors",
            per * CONNECTIONS,
            ms(elapsed)
        ),
    );
    let last_pconc = results.iter().filter_map(|r| r.2.clone()).next_back();

    t.add("RSS right after the load", rss_kb(pid), "");
    // Let the echo runs queued by the load finish (wait on the last ones, no sleeping).
    eprintln!("waiting for queued runs to finish ...");
    let t0 = Instant::now();
    for run in [last_seq, last_pipe, last_conc, last_pconc]
        .into_iter()
        .flatten()
    {
        wait_run(&socket, &run);
    }
    let total_spawns = n.cli + n.rpc + n.pipeline + 2 * per * CONNECTIONS;
    t.add(
        "RSS after the load, runs drained",
        rss_kb(pid),
        format!(
            "{total_spawns} sessions in the store; drain took {}",
            ms(t0.elapsed())
        ),
    );
    let db = d.db_path();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = db.with_extension("db-wal");
    t.add(
        "store size",
        format!(
            "{:.1} MiB",
            (size(&db) + size(&wal)) as f64 / (1024.0 * 1024.0)
        ),
        format!("{} + WAL {}", db.display(), size(&wal)),
    );

    println!();
    t.print();
}
