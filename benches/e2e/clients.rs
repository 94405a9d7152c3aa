//! The clients the sections drive the daemon with: processes (timed commands, shell loops,
//! the CLI's environment) and raw NDJSON on the socket (one request at a time, or pipelined
//! from a writer thread), and daemon restarts.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{Daemon, RawConn};
use super::{CONNECTIONS, Stats, stats};

/// Runs a command to completion; its wall time. Panics with its stderr when it fails.
pub fn time_cmd(cmd: &mut Command, what: &str) -> (Duration, String) {
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
pub fn process_floor(n: usize) -> Stats {
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
pub fn shell_loop(n: usize, bin: &Path, args: &[&str], env: &[(&str, &Path)]) -> Duration {
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
pub fn cli_env(d: &Daemon) -> Vec<(&'static str, &Path)> {
    vec![
        ("HOME", d.home_path()),
        ("OPENCLAW_HOME", d.home_path()),
        ("OPENCLAW_NO_AUTOSTART", Path::new("1")),
    ]
}

// ------------------------------------------------------------------ socket measurements

pub fn spawn_line(id: usize, tag: &str) -> String {
    let mut s = json!({"jsonrpc": "2.0", "id": id, "method": "sessions.spawn",
                       "params": {"task": format!("bench {tag} {id}")}})
    .to_string();
    s.push('\n');
    s
}

pub fn hello_line(id: usize, _tag: &str) -> String {
    let mut s = json!({"jsonrpc": "2.0", "id": id, "method": "hello"}).to_string();
    s.push('\n');
    s
}

/// Writes `n` requests on one connection without waiting (a writer thread), reads every
/// reply; returns (elapsed, errors, last run id).
pub fn pipelined(
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
pub fn sequential(
    socket: &Path,
    n: usize,
    tag: &str,
    line: fn(usize, &str) -> String,
) -> (Vec<Duration>, usize, Option<String>) {
    sequential_lines(socket, n, |i| line(i, tag))
}

/// One request at a time on one connection, request `i` being the NDJSON line `line(i)`;
/// per-call latencies, errors, the last run id.
pub fn sequential_lines(
    socket: &Path,
    n: usize,
    line: impl Fn(usize) -> String,
) -> (Vec<Duration>, usize, Option<String>) {
    let mut c = RawConn::connect(socket);
    let mut samples = Vec::with_capacity(n);
    let mut errors = 0;
    let mut last = None;
    for i in 0..n {
        let line = line(i);
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

/// `client(c)` on `CONNECTIONS` threads at once, `c` numbering them; their results, and the
/// time until the last one ended.
pub fn on_connections<R: Send>(client: impl Fn(usize) -> R + Sync) -> (Vec<R>, Duration) {
    let start = Instant::now();
    let results = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let client = &client;
                sc.spawn(move || client(c))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    (results, start.elapsed())
}

pub fn wait_run(socket: &Path, run_id: &str) {
    let mut c = RawConn::connect(socket);
    let r = c.call_ok("runs.wait", json!({"runId": run_id, "timeoutSeconds": 120}));
    if r["status"] == "timeout" {
        eprintln!("  warning: run {run_id} still not finished after 120 s");
    }
}

pub fn status(socket: &Path) -> Value {
    RawConn::connect(socket).call_ok("daemon.status", json!({}))
}

/// Runs active or queued in the daemon's lanes, by its status.
fn busy_runs(c: &mut RawConn) -> u64 {
    let st = c.call_ok("daemon.status", json!({}));
    st["lanes"]
        .as_array()
        .map(|lanes| {
            lanes
                .iter()
                .map(|l| l["active"].as_u64().unwrap_or(0) + l["queued"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// Waits until the daemon has no run active or queued (at most 5 minutes), so that a
/// throughput row does not share the CPUs with the runs the rows before it left queued (an
/// echo run drains slower than spawns arrive); how long that took. The row's own runs still
/// run during the row, as they would under a sustained load.
pub fn wait_runs_drained(c: &mut RawConn) -> Duration {
    wait_while("runs still active or queued", || busy_runs(c) > 0)
}

/// Waits while `busy` holds, looking every 50 ms (the daemon tells neither state by an event),
/// at most 5 minutes, after which it warns that `what` is still so; how long it waited.
fn wait_while(what: &str, mut busy: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while busy() {
        if t0.elapsed() > Duration::from_secs(300) {
            eprintln!("  warning: {what} after 5 minutes");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// Waits until the daemon's thread named `name` has ended (at most 5 minutes; at once when it
/// never ran); how long that took. The daemon finishes its start-up store check on a thread
/// `store-check` when the store is too big to check within start-up: while it reads the file
/// it holds a snapshot open, so no checkpoint can restart the WAL, and it shares the CPUs.
pub fn wait_thread_gone(pid: u32, name: &str) -> Duration {
    let running = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
            })
    };
    wait_while(&format!("thread {name} still running"), running)
}

/// Stops and starts a daemon `k` times on its store: (to ready, to first reply) samples.
pub fn restarts(d: &mut Daemon, k: usize) -> (Vec<Duration>, Vec<Duration>) {
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

pub fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
