//! `acp`: the acp backend with the SDK test agent (`tests/acp-agent/agent.mjs`, Node).
//!
//! - warm turns: `sessions.send` + wait on a session whose agent process is running, against
//!   the same agent driven directly over its pipes by this harness (a minimal ACP client:
//!   what any client must do), interleaved turn by turn so both see the same machine; the
//!   difference is the daemon's time around the agent's own work. An `echo` turn (engine,
//!   store and socket with no backend) is measured in the same loop, so the difference splits
//!   into the engine's share and the backend's;
//! - first turns: a spawn until its reply, process start included, against starting the
//!   agent directly and running one prompt;
//! - many sessions: N sessions, each with its own live agent process, and the daemon's RSS
//!   growth for holding them (the agents' own memory is reported apart).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{Daemon, RawConn, proc_status_kb};
use super::{Opts, Row, Stats, Table, lat, ms, ratio_lat, rss_text, stats, verdict};

fn agent_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acp-agent/agent.mjs")
}

/// Why the section cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        return Some("`node` is not installed".into());
    }
    let sdk = agent_script()
        .with_file_name("node_modules")
        .join("@agentclientprotocol/sdk");
    if !sdk.is_dir() {
        return Some("the SDK test agent is not installed (`npm ci` in tests/acp-agent)".into());
    }
    None
}

fn config() -> String {
    format!(
        "[agents.t]\nbackend = \"acp\"\ncommand = [\"node\", {}]\npermissions = \"approve-all\"\n\
         [agents.echo]\nbackend = \"echo\"\n[lanes]\nsubagent = 16\n",
        serde_json::to_string(&agent_script().display().to_string()).expect("path")
    )
}

/// The SDK agent driven directly: the least any ACP client does for a turn.
struct DirectAgent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    session_id: String,
    _dir: tempfile::TempDir,
}

impl DirectAgent {
    fn start() -> DirectAgent {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new("node")
            .arg(agent_script())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SDK agent");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut a = DirectAgent {
            child,
            stdin,
            stdout,
            next_id: 0,
            session_id: String::new(),
            _dir: dir,
        };
        a.call(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}}}),
        );
        let cwd = a._dir.path().display().to_string();
        let new = a.call("session/new", json!({"cwd": cwd, "mcpServers": []}));
        a.session_id = new["sessionId"].as_str().expect("sessionId").to_string();
        a
    }

    /// A request and its result; notifications on the way are read and dropped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.stdin, "{line}").expect("write to the agent");
        self.stdin.flush().expect("flush");
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = self.stdout.read_line(&mut buf).expect("read the agent");
            assert!(n > 0, "the SDK agent closed its stdout during {method}");
            let v: Value = serde_json::from_str(&buf).expect("JSON from the agent");
            if v.get("method").is_none() && v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn prompt(&mut self, text: &str) -> Duration {
        let t0 = Instant::now();
        let r = self.call(
            "session/prompt",
            json!({"sessionId": self.session_id, "prompt": [{"type": "text", "text": text}]}),
        );
        let took = t0.elapsed();
        assert_eq!(r["stopReason"], "end_turn", "{r}");
        took
    }
}

impl Drop for DirectAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(c: &mut RawConn, key: &str, message: &str) -> (Duration, Value) {
    let t0 = Instant::now();
    let r = c.call_ok(
        "sessions.send",
        json!({"sessionKey": key, "message": message, "timeoutSeconds": 60}),
    );
    let took = t0.elapsed();
    assert_eq!(r["status"], "ok", "send: {r}");
    (took, r)
}

/// Spawns a session of agent `t` whose first task is `pid`; (key, run id).
fn spawn(c: &mut RawConn) -> (String, String) {
    let r = c.call_ok(
        "sessions.spawn",
        json!({"agentId": "t", "task": "pid", "mode": "session"}),
    );
    (
        r["sessionKey"].as_str().expect("key").to_string(),
        r["runId"].as_str().expect("run").to_string(),
    )
}

/// Waits for a run; its reply.
fn wait(c: &mut RawConn, run_id: &str) -> String {
    let r = c.call_ok("runs.wait", json!({"runId": run_id, "timeoutSeconds": 120}));
    assert_eq!(r["status"], "ok", "run {run_id}: {r}");
    r["reply"].as_str().unwrap_or("").to_string()
}

fn pid_of(reply: &str) -> u32 {
    reply
        .strip_prefix("pid ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("`pid` answered {reply:?}"))
}

fn median_diff(a: &Stats, b: &Stats) -> Duration {
    a.median.saturating_sub(b.median)
}

pub fn section_acp(o: &Opts, t: &mut Table) {
    t.section("acp: the SDK test agent");
    if let Some(why) = unavailable() {
        t.note(format!("acp: skipped: {why}"));
        return;
    }
    let d = Daemon::start_with_config(&config());
    let socket = d.socket();
    let mut c = RawConn::connect(&socket);

    // Warm turns, interleaved: daemon (acp), direct, daemon (echo).
    let (key, run) = spawn(&mut c);
    wait(&mut c, &run);
    let mut direct = DirectAgent::start();
    for _ in 0..20 {
        send(&mut c, &key, "warm");
        send(&mut c, "agent:echo:main", "warm");
        direct.prompt("warm");
    }
    eprintln!("acp warm turns x{} ...", o.acp_turns);
    let (mut via, mut own, mut echo) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..o.acp_turns {
        let msg = format!("turn {i}");
        via.push(send(&mut c, &key, &msg).0);
        own.push(direct.prompt(&msg));
        echo.push(send(&mut c, "agent:echo:main", &msg).0);
    }
    drop(direct);
    let (via, own, echo) = (stats(&via), stats(&own), stats(&echo));
    let around = median_diff(&via, &own);
    let backend = around.saturating_sub(echo.median);
    t.push(Row {
        metric: "warm ACP turn: `sessions.send` + wait for the reply (socket)".into(),
        value: lat(&via),
        baseline: format!("the same agent driven directly: {}", lat(&own)),
        ratio: ratio_lat(via.median, own.median),
        target: String::new(),
    });
    t.push(Row {
        metric: "daemon time around the agent's own work (median difference)".into(),
        value: ms(around),
        baseline: format!(
            "an `echo` turn (engine, store, socket; no backend): {}",
            lat(&echo)
        ),
        ratio: String::new(),
        target: String::new(),
    });
    t.push(Row {
        metric: "of which the acp backend (difference − echo turn)".into(),
        value: ms(backend),
        baseline: String::new(),
        ratio: String::new(),
        target: verdict("< 2 ms median", backend < Duration::from_millis(2)),
    });

    // First turns: process start, initialize, session/new, the prompt.
    eprintln!("acp first turns x{} ...", o.acp_first);
    let (mut first, mut first_direct) = (Vec::new(), Vec::new());
    for _ in 0..o.acp_first {
        let t0 = Instant::now();
        let (key, run) = spawn(&mut c);
        wait(&mut c, &run);
        first.push(t0.elapsed());
        c.call_ok("sessions.delete", json!({"sessionKey": key}));
        let t0 = Instant::now();
        let mut a = DirectAgent::start();
        a.prompt("pid");
        first_direct.push(t0.elapsed());
    }
    let (first, first_direct) = (stats(&first), stats(&first_direct));
    t.push(Row {
        metric: "first turn of a session, agent process start included (spawn → reply)".into(),
        value: lat(&first),
        baseline: format!(
            "starting the agent directly + one prompt: {}",
            lat(&first_direct)
        ),
        ratio: ratio_lat(first.median, first_direct.median),
        target: String::new(),
    });
    drop(c);
    drop(d);

    many_sessions(o, t);
}

/// N sessions held at once, each with its live agent process.
fn many_sessions(o: &Opts, t: &mut Table) {
    let n = o.acp_sessions;
    let d = Daemon::start_with_config(&config());
    let pid = d.pid();
    let mut c = RawConn::connect(&d.socket());
    // One session first, so what every ACP session shares is already there.
    let (key, run) = spawn(&mut c);
    wait(&mut c, &run);
    send(&mut c, &key, "warm");
    let kb0 = proc_status_kb(pid, "VmRSS").unwrap_or(0);
    eprintln!("acp: {n} sessions with live agents ...");
    let t0 = Instant::now();
    let spawned: Vec<(String, String)> = (0..n).map(|_| spawn(&mut c)).collect();
    let agents: Vec<u32> = spawned
        .iter()
        .map(|(_, r)| pid_of(&wait(&mut c, r)))
        .collect();
    let up = t0.elapsed();
    let kb1 = proc_status_kb(pid, "VmRSS").unwrap_or(0);
    // A turn on every one of them at once.
    let t0 = Instant::now();
    let runs: Vec<String> = spawned
        .iter()
        .map(|(key, _)| {
            let r = c.call_ok(
                "sessions.send",
                json!({"sessionKey": key, "message": "pid", "timeoutSeconds": 0}),
            );
            r["runId"].as_str().expect("runId").to_string()
        })
        .collect();
    for (run, agent) in runs.iter().zip(&agents) {
        assert_eq!(pid_of(&wait(&mut c, run)), *agent, "the same process");
    }
    let turn_all = t0.elapsed();
    let kb2 = proc_status_kb(pid, "VmRSS").unwrap_or(0);
    let alive = agents
        .iter()
        .filter(|p| proc_status_kb(**p, "VmRSS").is_some())
        .count();
    let agents_mib: f64 = agents
        .iter()
        .filter_map(|p| proc_status_kb(*p, "VmRSS"))
        .sum::<u64>() as f64
        / 1024.0;
    let growth = |kb: u64| (kb as f64 - kb0 as f64) / 1024.0;
    t.push(Row {
        metric: format!("daemon RSS growth holding {n} ACP sessions with live agents"),
        value: format!(
            "{:+.1} MiB after their first turns, {:+.1} MiB after one more turn each",
            growth(kb1),
            growth(kb2)
        ),
        baseline: format!("{:.1} MiB with one ACP session", kb0 as f64 / 1024.0),
        ratio: format!(
            "{:.0} KiB per session",
            (kb2 as f64 - kb0 as f64).max(0.0) / n.max(1) as f64
        ),
        target: verdict(
            "< 5 MB",
            (kb2.max(kb1) as f64 - kb0 as f64) * 1024.0 < 5_000_000.0,
        ),
    });
    t.push(Row {
        metric: format!("{n} sessions: spawn to all first replies / one turn on each at once"),
        value: format!("{} / {}", ms(up), ms(turn_all)),
        baseline: format!("{alive} agent processes alive, {agents_mib:.0} MiB RSS together"),
        ratio: String::new(),
        target: String::new(),
    });
    t.add("daemon RSS at the end", rss_text(pid));
}
