//! Sub-agents end to end (issue 4): exec agents that call the real `openclaw` binary from
//! inside their run (attributed by `OPENCLAW_RUN_TOKEN`), parent/child sessions, announce
//! messages, depth limit, visibility, run tokens and send policy. Never sleeps: the test
//! blocks on `sessions wait`, FIFOs or a live subscription, always with a deadline.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Daemon, OPENCLAW, RawConn, json_stdout, output_within, stderr, stdout};
use serde_json::{Value, json};

/// Upper bound for one `openclaw` command (waits inside are shorter).
const CALL_SECS: u64 = 40;
/// How long the test waits for a run, an announce or a deletion.
const WAIT_SECS: u64 = 25;

// ------------------------------------------------------------------ fixture: agent scripts

/// A temp dir holding the agents' shell scripts (and FIFOs), declared in config.toml as
/// `command = ["sh", "/dir/ID.sh"]`, so no quoting goes through TOML.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::Builder::new()
                .prefix("openclaw-subagents-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn fifo(&self, name: &str) -> PathBuf {
        common::fifo(self.dir.path(), name)
    }

    /// Writes `ID.sh` (with `$OC` = the absolute path of the `openclaw` binary, and a `probe`
    /// function) and returns the `[agents.ID]` TOML block running it.
    fn agent(&self, id: &str, body: &str) -> String {
        let script = self.path(&format!("{id}.sh"));
        let prelude = format!(
            "OC='{OPENCLAW}'\n\
             # probe LABEL CMD...: runs CMD, prints `LABEL rc=N err=<stderr on one line>`.\n\
             probe() {{\n  label=$1; shift\n  err=$(\"$@\" 2>&1 >/dev/null); rc=$?\n  \
             printf '%s rc=%s err=%s\\n' \"$label\" \"$rc\" \"$(printf '%s' \"$err\" | tr '\\n' ' ')\"\n}}\n"
        );
        std::fs::write(&script, format!("{prelude}{body}\n")).expect("write agent script");
        format!(
            "[agents.{id}]\nbackend = \"exec\"\ncommand = [\"sh\", \"{}\"]\n\n",
            script.display()
        )
    }
}

// ------------------------------------------------------------------ running the CLI

fn log_tail(d: &Daemon) -> String {
    let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
    let start = log.len().saturating_sub(3000);
    let start = (start..log.len())
        .find(|i| log.is_char_boundary(*i))
        .unwrap_or(log.len());
    log[start..].to_string()
}

fn describe(d: &Daemon, what: &str, out: &Output) -> String {
    format!(
        "{what}\n  exit: {:?}\n  stdout: {}\n  stderr: {}\n  daemon log (tail): {}",
        out.status.code(),
        stdout(out).trim_end(),
        stderr(out).trim_end(),
        log_tail(d)
    )
}

/// `openclaw ARGS` as the operator (no run token).
fn run(d: &Daemon, args: &[&str]) -> Output {
    output_within(
        d.cli().args(args),
        CALL_SECS,
        &format!("openclaw {}", args.join(" ")),
    )
}

/// `OPENCLAW_RUN_TOKEN=TOKEN openclaw ARGS`.
fn run_with_token(d: &Daemon, token: &str, args: &[&str]) -> Output {
    output_within(
        d.cli().env("OPENCLAW_RUN_TOKEN", token).args(args),
        CALL_SECS,
        &format!("OPENCLAW_RUN_TOKEN=... openclaw {}", args.join(" ")),
    )
}

fn expect_exit(d: &Daemon, args: &[&str], code: i32, why: &str) -> Output {
    let out = run(d, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{why}: expected exit {code}:\n{}",
        describe(d, &format!("openclaw {}", args.join(" ")), &out)
    );
    out
}

fn json_ok(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = expect_exit(d, &all, 0, "operator command");
    json_stdout(&out, &format!("openclaw {}", all.join(" ")))
}

/// Spawns a session on AGENT as the operator; returns (key, sessionId, runId).
fn spawn(d: &Daemon, agent: &str, task: &str) -> (String, String, String) {
    let v = json_ok(d, &["sessions", "spawn", "--agent", agent, "--task", task]);
    let s = |f: &str| {
        v[f].as_str()
            .unwrap_or_else(|| panic!("spawn --json has no string {f}: {v}"))
            .to_string()
    };
    (s("sessionKey"), s("sessionId"), s("runId"))
}

/// Waits for a run (as the operator) and returns its RunResult JSON, whatever the outcome.
fn wait_run(d: &Daemon, run_id: &str) -> Value {
    let args = [
        "sessions",
        "wait",
        run_id,
        "--timeout",
        &WAIT_SECS.to_string(),
        "--json",
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let out = run(d, &args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the run should end within {WAIT_SECS} s:\n{}",
        describe(d, &format!("openclaw {}", args.join(" ")), &out)
    );
    json_stdout(&out, "sessions wait --json")
}

/// Waits for an agent's run, asserts it ended ok, returns its reply.
fn reply_of(d: &Daemon, run_id: &str, agent: &str) -> String {
    let r = wait_run(d, run_id);
    assert_eq!(
        (r["status"].as_str(), r["runStatus"].as_str()),
        (Some("ok"), Some("ok")),
        "the {agent} agent's run should end ok: {r}\ndaemon log (tail): {}",
        log_tail(d)
    );
    r["reply"].as_str().unwrap_or("").to_string()
}

/// Every row of `sessions list --json` (the operator's view).
fn rows(d: &Daemon) -> Vec<Value> {
    let v = json_ok(d, &["sessions", "list", "--limit", "500"]);
    v["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("sessions list --json has no sessions array: {v}"))
        .clone()
}

fn find_row<'a>(rows: &'a [Value], key: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("sessions list --json has no row for {key}; rows: {rows:#?}"))
}

fn keys(rows: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = rows
        .iter()
        .map(|r| r["key"].as_str().unwrap_or("?").to_string())
        .collect();
    k.sort();
    k
}

/// `sessions history KEY --json` messages (operator).
fn history(d: &Daemon, key: &str) -> Vec<Value> {
    let v = json_ok(d, &["sessions", "history", key, "--limit", "1000"]);
    v["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("history --json has no messages array: {v}"))
        .clone()
}

fn announces(msgs: &[Value]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["role"] == "announce")
        .cloned()
        .collect()
}

fn content(m: &Value) -> &str {
    m["content"]
        .as_str()
        .unwrap_or_else(|| panic!("message content should be a string: {m}"))
}

/// The lines of an announce that start with `Field:`.
fn field_lines<'a>(text: &'a str, field: &str) -> Vec<&'a str> {
    let p = format!("{field}:");
    text.lines().filter(|l| l.starts_with(&p)).collect()
}

/// Parses the `LABEL rc=N err=...` lines a `probe` prints.
fn probe_result(reply: &str, label: &str) -> (i32, String) {
    let prefix = format!("{label} rc=");
    let line = reply
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("the agent's output has no `{label}` probe line:\n{reply}"));
    let rest = &line[prefix.len()..];
    let (rc, err) = rest.split_once(" err=").unwrap_or((rest, ""));
    let rc = rc
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad probe line {line:?}"));
    (rc, err.trim().to_string())
}

// ------------------------------------------------------------------ live subscription

/// A raw connection holding one `sessions.subscribe`, read with a deadline.
struct Events {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// Notifications that arrived before the subscribe's own reply.
    early: std::collections::VecDeque<Value>,
}

impl Events {
    /// Subscribes as the operator; `Err(error object)` when the daemon refuses.
    fn subscribe(d: &Daemon, params: Value) -> Result<Events, Value> {
        let mut stream = UnixStream::connect(d.socket()).expect("connect to the daemon");
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        stream
            .set_read_timeout(Some(Duration::from_secs(WAIT_SECS)))
            .expect("read timeout");
        let req =
            json!({"jsonrpc": "2.0", "id": 1, "method": "sessions.subscribe", "params": params});
        stream
            .write_all(format!("{req}\n").as_bytes())
            .expect("write subscribe");
        let mut ev = Events {
            reader: BufReader::new(stream.try_clone().expect("clone stream")),
            stream,
            early: Default::default(),
        };
        let mut early = std::collections::VecDeque::new();
        loop {
            let v = ev
                .next(Instant::now() + Duration::from_secs(WAIT_SECS))
                .unwrap_or_else(|| panic!("no answer to sessions.subscribe {params}"));
            if v["id"] == 1 {
                ev.early = early;
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(ev),
                };
            }
            early.push_back(v);
        }
    }

    /// The next line from the daemon; `None` at end of stream or when `until` passes.
    fn next(&mut self, until: Instant) -> Option<Value> {
        if let Some(v) = self.early.pop_front() {
            return Some(v);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.stream.set_read_timeout(Some(left)).ok()?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                serde_json::from_str(line.trim_end())
                    .unwrap_or_else(|e| panic!("daemon sent bad JSON ({e}): {line}")),
            ),
        }
    }
}

/// Blocks until PARENT's transcript holds an announce from FROM (a follow from seq 0: stored
/// messages first, then live ones), up to WAIT_SECS. Returns that message.
fn wait_for_announce(d: &Daemon, parent: &str, from: &str) -> Value {
    let mut ev = Events::subscribe(
        d,
        json!({"sessionKey": parent, "afterSeq": 0, "events": ["message"]}),
    )
    .unwrap_or_else(|e| panic!("cannot follow {parent}: {e}"));
    let until = Instant::now() + Duration::from_secs(WAIT_SECS);
    let mut seen = Vec::new();
    while let Some(n) = ev.next(until) {
        if n["method"] == "subscription.ended" {
            break;
        }
        if n["method"] == "session.message" {
            let m = &n["params"]["message"];
            if m["role"] == "announce" && m["provenance"]["from"] == from {
                return m.clone();
            }
        }
        seen.push(n);
    }
    panic!(
        "no announce from {from} reached the parent {parent} within {WAIT_SECS} s; what the follow \
         (afterSeq 0) delivered: {seen:#?}\ndaemon log (tail): {}",
        log_tail(d)
    )
}

/// Blocks until session KEY is gone from `sessions list`, up to WAIT_SECS: subscribes to every
/// session's lifecycle first, then re-checks the list after each event, so a deletion between
/// the check and the wait cannot be missed.
fn wait_session_gone(d: &Daemon, key: &str) {
    let until = Instant::now() + Duration::from_secs(WAIT_SECS);
    let mut ev = Events::subscribe(d, json!({"events": ["lifecycle"]}))
        .unwrap_or_else(|e| panic!("cannot subscribe to all sessions: {e}"));
    let mut seen = Vec::new();
    loop {
        if !keys(&rows(d)).iter().any(|k| k == key) {
            return;
        }
        // Block until the next lifecycle event (any session), then re-check.
        match ev.next(until) {
            Some(n) => seen.push(n),
            None => panic!(
                "session {key} (cleanup delete) still listed {WAIT_SECS} s after its parent's \
                 run ended; lifecycle events seen: {seen:#?}\ndaemon log (tail): {}",
                log_tail(d)
            ),
        }
    }
}

// ------------------------------------------------------------------ the example

/// The planner of the issue: spawns a worker on its own task and waits for it by session.
const PLANNER: &str = "child=$(\"$OC\" sessions spawn --agent worker --task \"$(cat)\") || exit 7\n\
                       \"$OC\" sessions wait --session \"$child\" --timeout 60";
const WORKER: &str = "tr a-z A-Z";

#[test]
fn planner_spawns_worker_and_hears_its_announce() {
    let fx = Fixture::new();
    let d = Daemon::start_with_config(&format!(
        "{}{}",
        fx.agent("planner", PLANNER),
        fx.agent("worker", WORKER)
    ));

    let (pk, _pid, prun) = spawn(&d, "planner", "hello");
    let reply = reply_of(&d, &prun, "planner");
    assert_eq!(
        reply, "HELLO",
        "the planner prints what `sessions wait --session CHILD` printed: the worker's reply"
    );

    // list --json: the worker is the planner's child, at depth 1.
    let all = rows(&d);
    let workers: Vec<&Value> = all.iter().filter(|r| r["agentId"] == "worker").collect();
    assert_eq!(
        workers.len(),
        1,
        "the planner's nested spawn creates exactly one worker session: {all:#?}"
    );
    let w = workers[0].clone();
    let wk = w["key"].as_str().expect("worker key").to_string();
    let wid = w["sessionId"]
        .as_str()
        .expect("worker sessionId")
        .to_string();
    assert!(wk.starts_with("agent:worker:subagent:"), "worker key {wk}");
    assert_eq!(
        w["parentKey"], pk,
        "a spawn made with the planner's run token records the planner as parent: {w:#}"
    );
    assert_eq!(w["spawnDepth"], 1, "the worker's spawnDepth: {w:#}");
    let p = find_row(&all, &pk);
    assert_eq!(
        p["children"], 1,
        "the planner row counts its one child: {p:#}"
    );
    assert_eq!(
        p["spawnDepth"], 0,
        "an operator spawn without --parent is at depth 0: {p:#}"
    );
    assert!(
        p["parentKey"].is_null(),
        "an operator spawn has no parent: {p:#}"
    );

    // list --parent PLANNER lists exactly the worker.
    let kids = json_ok(&d, &["sessions", "list", "--parent", &pk]);
    assert_eq!(
        keys(kids["sessions"].as_array().expect("sessions")),
        vec![wk.clone()],
        "sessions list --parent {pk}: {kids}"
    );

    // The worker's task message is a spawn_task; its reply HELLO.
    let wh = history(&d, &wk);
    assert_eq!(wh[0]["role"], "user", "worker transcript: {wh:#?}");
    assert_eq!(wh[0]["content"], "hello", "worker task: {wh:#?}");
    assert_eq!(
        wh[0]["provenance"]["kind"], "spawn_task",
        "the worker's task message has provenance spawn_task: {wh:#?}"
    );
    let wrun = wh
        .iter()
        .find(|m| m["role"] == "assistant")
        .and_then(|m| m["runId"].as_str())
        .unwrap_or_else(|| panic!("the worker's transcript has no reply with a runId: {wh:#?}"))
        .to_string();

    // history PLANNER --json: one announce from the worker.
    wait_for_announce(&d, &pk, &wk);
    let ph = history(&d, &pk);
    let ann = announces(&ph);
    assert_eq!(
        ann.len(),
        1,
        "exactly one announce in the planner's transcript: {ph:#?}"
    );
    let a = &ann[0];
    assert_eq!(
        a["provenance"],
        json!({"kind": "announce", "from": wk}),
        "announce provenance: {a:#}"
    );
    assert_eq!(
        a["runId"], wrun,
        "the announce carries the worker's run id: {a:#}"
    );
    let text = content(a);
    assert_eq!(
        field_lines(text, "Status"),
        vec!["Status: ok"],
        "announce Status:\n{text}"
    );
    assert_eq!(
        field_lines(text, "Result"),
        vec!["Result: HELLO"],
        "announce Result:\n{text}"
    );
    assert!(
        field_lines(text, "Notes").is_empty(),
        "no Notes line for a clean, short result:\n{text}"
    );
    let stats = field_lines(text, "Stats");
    assert_eq!(stats.len(), 1, "one Stats line:\n{text}");
    for want in [
        "runtime",
        "sessionKey",
        wk.as_str(),
        "sessionId",
        wid.as_str(),
    ] {
        assert!(
            stats[0].contains(want),
            "the Stats line should contain {want:?}: {:?}",
            stats[0]
        );
    }
    // The planner's own transcript: its task, the announce, its reply.
    assert_eq!(ph[0]["provenance"]["kind"], "spawn_task", "{ph:#?}");
    assert!(
        ph.iter()
            .any(|m| m["role"] == "assistant" && m["content"] == "HELLO"),
        "the planner's reply HELLO is stored: {ph:#?}"
    );
}

// ------------------------------------------------------------------ depth limit

const TOP: &str = "c=$(\"$OC\" sessions spawn --agent mid --task \"$(cat)\") || exit 7\n\
                   \"$OC\" sessions wait --session \"$c\" --timeout 60";
const MID: &str = "out=$(\"$OC\" sessions spawn --agent leaf --task deep 2>&1); rc=$?\n\
                   echo \"mid spawn rc=$rc\"\n\
                   echo \"mid spawn out=$(printf '%s' \"$out\" | tr '\\n' ' ')\"\n\
                   if [ \"$rc\" = 0 ]; then\n  \
                   echo \"leaf reply=$(\"$OC\" sessions wait --session \"$out\" --timeout 60 2>&1)\"\n\
                   fi";
const LEAF: &str = "out=$(\"$OC\" sessions spawn --agent leaf --task deeper 2>&1); rc=$?\n\
                    printf 'leaf spawn rc=%s out=%s' \"$rc\" \"$(printf '%s' \"$out\" | tr '\\n' ' ')\"";

fn line_value<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(prefix))
}

#[test]
fn nested_spawn_is_refused_at_default_depth_and_allowed_at_max_depth_2() {
    // Default max_depth 1: top (0) → mid (1) → leaf (2) is refused.
    let fx = Fixture::new();
    let agents = format!(
        "{}{}{}",
        fx.agent("top", TOP),
        fx.agent("mid", MID),
        fx.agent("leaf", LEAF)
    );
    let d = Daemon::start_with_config(&agents);
    let (tk, _, trun) = spawn(&d, "top", "go");
    let reply = reply_of(&d, &trun, "top");
    assert_eq!(
        line_value(&reply, "mid spawn rc="),
        Some("5"),
        "with the default max_depth 1, a child's `openclaw sessions spawn` exits 5 \
         (forbidden); the mid agent reported:\n{reply}"
    );
    let out = line_value(&reply, "mid spawn out=").unwrap_or("");
    assert!(
        out.contains("subagents.max_depth") && out.contains('2'),
        "the refusal names the setting to change (subagents.max_depth) and the value to \
         raise it to (2): {out:?}"
    );
    let all = rows(&d);
    assert!(
        !all.iter().any(|r| r["agentId"] == "leaf"),
        "no leaf session may exist after a refused spawn: {all:#?}"
    );
    let mids: Vec<&Value> = all.iter().filter(|r| r["agentId"] == "mid").collect();
    assert_eq!(mids.len(), 1, "{all:#?}");
    assert_eq!(mids[0]["parentKey"], tk, "{:#}", mids[0]);
    assert_eq!(mids[0]["children"], 0, "{:#}", mids[0]);

    // max_depth = 2: the grandchild is allowed, its own spawn (depth 3) refused.
    let fx2 = Fixture::new();
    let agents2 = format!(
        "{}{}{}[subagents]\nmax_depth = 2\n",
        fx2.agent("top", TOP),
        fx2.agent("mid", MID),
        fx2.agent("leaf", LEAF)
    );
    let d2 = Daemon::start_with_config(&agents2);
    let (_tk2, _, trun2) = spawn(&d2, "top", "go");
    let reply2 = reply_of(&d2, &trun2, "top");
    assert_eq!(
        line_value(&reply2, "mid spawn rc="),
        Some("0"),
        "with [subagents] max_depth = 2 a child may spawn; the mid agent reported:\n{reply2}"
    );
    let leaf_key = line_value(&reply2, "mid spawn out=")
        .unwrap_or("")
        .trim()
        .to_string();
    assert!(
        leaf_key.starts_with("agent:leaf:subagent:"),
        "the nested spawn prints the leaf's key: {reply2}"
    );
    let leaf_reply = line_value(&reply2, "leaf reply=").unwrap_or("");
    assert!(
        leaf_reply.starts_with("leaf spawn rc=5")
            && leaf_reply.contains("subagents.max_depth")
            && leaf_reply.contains('3'),
        "at depth 2 with max_depth 2, the leaf's own spawn (depth 3) is refused naming \
         subagents.max_depth and the value 3; mid reported:\n{reply2}"
    );
    let all2 = rows(&d2);
    let mid = all2
        .iter()
        .find(|r| r["agentId"] == "mid")
        .unwrap_or_else(|| panic!("no mid row: {all2:#?}"));
    let leaf = find_row(&all2, &leaf_key);
    assert_eq!(
        leaf["parentKey"], mid["key"],
        "the leaf's parent is mid: {leaf:#}"
    );
    assert_eq!(leaf["spawnDepth"], 2, "{leaf:#}");
    assert_eq!(mid["spawnDepth"], 1, "{mid:#}");
    assert_eq!(mid["children"], 1, "{mid:#}");
    assert_eq!(
        all2.iter().filter(|r| r["agentId"] == "leaf").count(),
        1,
        "only one leaf session (its nested spawn was refused): {all2:#?}"
    );
}

// ------------------------------------------------------------------ visibility

/// Probes what a run's child process can reach. The destructive probes come last.
const PROBER: &str = "K=\"$OPENCLAW_SESSION_KEY\"\n\
    child=$(\"$OC\" sessions spawn --agent worker --task kid 2>&1); echo \"spawn rc=$? err=\"\n\
    echo \"child=$child\"\n\
    probe 'wait child' \"$OC\" sessions wait --session \"$child\" --timeout 30\n\
    probe 'own history' \"$OC\" sessions history \"$K\" --json\n\
    probe 'child history' \"$OC\" sessions history \"$child\" --json\n\
    probe 'unrelated history' \"$OC\" sessions history agent:main:main\n\
    probe 'missing history' \"$OC\" sessions history agent:main:nosuch\n\
    probe 'unrelated send' \"$OC\" sessions send agent:main:main intrude --timeout 10\n\
    probe 'unrelated wait' \"$OC\" sessions wait --session agent:main:main --timeout 10\n\
    probe 'unrelated patch' \"$OC\" sessions patch agent:main:main --label hijacked\n\
    probe 'unrelated kill' \"$OC\" sessions kill agent:main:main\n\
    probe 'foreign parent' \"$OC\" sessions spawn --agent worker --parent agent:main:main --task adopt\n\
    echo \"list=$(\"$OC\" sessions list --json 2>&1 | tr '\\n' ' ')\"\n\
    probe 'unrelated delete' \"$OC\" sessions delete agent:main:main";

struct Probed {
    d: Daemon,
    prober: String,
    child: String,
    reply: String,
}

fn run_prober(visibility: Option<&str>) -> (Fixture, Probed) {
    let fx = Fixture::new();
    let extra = visibility
        .map(|v| format!("[session]\nvisibility = \"{v}\"\n"))
        .unwrap_or_default();
    let d = Daemon::start_with_config(&format!(
        "{}{}{extra}",
        fx.agent("prober", PROBER),
        fx.agent("worker", WORKER)
    ));
    // An unrelated session (the default agent `main`, built-in echo).
    let out = expect_exit(&d, &["sessions", "send", "main", "hi"], 0, "operator send");
    assert_eq!(stdout(&out).trim_end(), "hi");
    let (pk, _, prun) = spawn(&d, "prober", "probe");
    let reply = reply_of(&d, &prun, "prober");
    let (rc, err) = probe_result(&reply, "spawn");
    assert_eq!(rc, 0, "the prober's own spawn: {err}\n{reply}");
    let child = line_value(&reply, "child=")
        .unwrap_or_else(|| panic!("no child= line:\n{reply}"))
        .trim()
        .to_string();
    (
        fx,
        Probed {
            d,
            prober: pk,
            child,
            reply,
        },
    )
}

#[test]
fn tree_visibility_hides_unrelated_sessions_from_a_run() {
    let (_fx, p) = run_prober(None);
    let (d, reply) = (&p.d, &p.reply);
    let rc = |label: &str| probe_result(reply, label);

    for label in ["wait child", "own history", "child history"] {
        let (code, err) = rc(label);
        assert_eq!(
            code, 0,
            "under tree visibility a run reaches itself and its descendants: `{label}` \
             failed: {err}\nall probes:\n{reply}"
        );
    }
    for label in [
        "unrelated history",
        "missing history",
        "unrelated send",
        "unrelated wait",
        "unrelated patch",
        "unrelated kill",
        "unrelated delete",
    ] {
        let (code, err) = rc(label);
        assert_eq!(
            code, 4,
            "`{label}` from inside a run, on a session outside its tree, must answer \
             not_found (exit 4), got exit {code}: {err}\nall probes:\n{reply}"
        );
    }
    // Existence does not leak: an invisible session answers like a missing one.
    let (_, hidden) = rc("unrelated history");
    let (_, missing) = rc("missing history");
    assert_eq!(
        hidden.replace("agent:main:main", "KEY"),
        missing.replace("agent:main:nosuch", "KEY"),
        "an invisible session must get the same answer as a nonexistent one"
    );
    let (code, err) = rc("foreign parent");
    assert!(
        code == 5 || code == 4,
        "a run may not spawn under a session outside its tree (--parent agent:main:main): \
         expected forbidden (5) or not_found (4), got {code}: {err}"
    );

    // The list from inside shows exactly the prober and its child.
    let list: Value = serde_json::from_str(line_value(reply, "list=").unwrap_or("").trim())
        .unwrap_or_else(|e| {
            panic!("`sessions list --json` from inside printed no JSON ({e}):\n{reply}")
        });
    let inside = keys(list["sessions"].as_array().expect("sessions array"));
    let mut want = vec![p.prober.clone(), p.child.clone()];
    want.sort();
    assert_eq!(
        inside, want,
        "sessions list from inside a run shows only itself and its descendants"
    );

    // The operator sees everything, and nothing the run tried reached agent:main:main.
    let all = rows(d);
    let mut want_all = vec![
        p.prober.clone(),
        p.child.clone(),
        "agent:main:main".to_string(),
    ];
    want_all.sort();
    assert_eq!(
        keys(&all),
        want_all,
        "the operator lists every session (and the refused --parent spawn created none)"
    );
    let main_row = find_row(&all, "agent:main:main");
    assert!(
        main_row["label"].is_null(),
        "the refused patch must not have changed the label: {main_row:#}"
    );
    let mh = history(d, "agent:main:main");
    assert!(
        !mh.iter().any(|m| m["content"] == "intrude"),
        "the refused send must not be stored: {mh:#?}"
    );
    assert_eq!(
        mh.iter()
            .map(|m| m["content"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        vec!["hi", "hi"],
        "the operator reads the unrelated session"
    );
}

#[test]
fn visibility_all_lets_a_run_read_unrelated_sessions() {
    let (_fx, p) = run_prober(Some("all"));
    let reply = &p.reply;
    for label in ["unrelated history", "unrelated send", "unrelated wait"] {
        let (code, err) = probe_result(reply, label);
        assert_eq!(
            code, 0,
            "with visibility = \"all\", `{label}` on an unrelated session works: {err}\n\
             all probes:\n{reply}"
        );
    }
    let (code, err) = probe_result(reply, "missing history");
    assert_eq!(code, 4, "a missing session is still not found: {err}");
    let list: Value = serde_json::from_str(line_value(reply, "list=").unwrap_or("").trim())
        .unwrap_or_else(|e| panic!("no JSON list from inside ({e}):\n{reply}"));
    let inside = keys(list["sessions"].as_array().expect("sessions array"));
    assert!(
        inside.contains(&"agent:main:main".to_string()),
        "with visibility all, the list from inside includes agent:main:main: {inside:?}"
    );
    // The last probe deleted it: visibility all reaches everything.
    let (code, err) = probe_result(reply, "unrelated delete");
    assert_eq!(code, 0, "visibility all allows delete too: {err}");
    expect_exit(
        &p.d,
        &["sessions", "history", "agent:main:main"],
        4,
        "deleted by the prober under visibility all",
    );
    // Seeing a session does not make it a parent a run may spawn under (that would also let
    // a child escape subagents.max_depth by naming a shallower session).
    let (code, err) = probe_result(reply, "foreign parent");
    let adopted: Vec<Value> = rows(&p.d)
        .into_iter()
        .filter(|r| r["parentKey"] == "agent:main:main")
        .collect();
    assert!(
        code == 5 && adopted.is_empty(),
        "a run's `openclaw sessions spawn --parent agent:main:main` (visible under \
         visibility all, but neither the run's own session nor one of its descendants) must be \
         refused with forbidden (exit 5); got exit {code} (stderr: {err:?}), sessions created \
         under agent:main:main: {adopted:#?}"
    );
}

// ------------------------------------------------------------------ run tokens

/// Hands its token to the test through a FIFO, then blocks until released.
fn holder(fx: &Fixture) -> (String, PathBuf, PathBuf) {
    let tok = fx.fifo("token");
    let gate = fx.fifo("gate");
    let body = format!(
        "printf '%s' \"$OPENCLAW_RUN_TOKEN\" > '{}'\nread x < '{}'\nprintf held",
        tok.display(),
        gate.display()
    );
    (fx.agent("holder", &body), tok, gate)
}

fn read_token(path: &Path) -> String {
    let t = common::fifo_read_within(path, Duration::from_secs(WAIT_SECS))
        .unwrap_or_else(|e| panic!("the holder agent never wrote its token: {e}"));
    assert!(
        !t.trim().is_empty(),
        "the exec backend must pass OPENCLAW_RUN_TOKEN to its command (got an empty one)"
    );
    t.trim().to_string()
}

fn assert_refused(d: &Daemon, token: &str, why: &str) {
    let out = run_with_token(d, token, &["sessions", "list"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{why}: `OPENCLAW_RUN_TOKEN=... openclaw sessions list` must exit 5 (forbidden):\n{}",
        describe(d, "OPENCLAW_RUN_TOKEN=... openclaw sessions list", &out)
    );
    assert!(
        stderr(&out).contains("token"),
        "{why}: stderr should say the run token is not valid, got: {}",
        stderr(&out)
    );
}

#[test]
fn run_token_is_valid_only_for_a_live_run_of_its_own_daemon() {
    let fx = Fixture::new();
    let (agent, tok_fifo, gate) = holder(&fx);
    let d = Daemon::start_with_config(&agent);
    let other = Daemon::start();
    expect_exit(&d, &["sessions", "send", "main", "hi"], 0, "operator send");

    let (hk, _, hrun) = spawn(&d, "holder", "hold");
    let token = read_token(&tok_fifo);

    // Live: hello binds a raw connection to the holder's session.
    let mut bound = RawConn::connect(&d.socket());
    let hello = bound.call_ok("hello", json!({"runToken": token}));
    assert_eq!(
        hello["peer"]["actingAs"],
        json!({"sessionKey": hk, "runId": hrun}),
        "hello {{runToken}} answers actingAs: {hello}"
    );
    // Live, through the CLI: it acts as the holder (tree: sees only itself, not main).
    let out = run_with_token(&d, &token, &["sessions", "list", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a live token works:\n{}",
        describe(&d, "sessions list with a live token", &out)
    );
    let seen = keys(
        json_stdout(&out, "list with token")["sessions"]
            .as_array()
            .expect("sessions"),
    );
    assert_eq!(
        seen,
        vec![hk.clone()],
        "the CLI presents OPENCLAW_RUN_TOKEN and the daemon applies tree visibility"
    );

    // Foreign: the same live token on another daemon.
    assert_refused(&other, &token, "a token issued by another daemon");

    // Let the run end, then the token is stale.
    common::fifo_write_within(&gate, "go\n", Duration::from_secs(WAIT_SECS))
        .unwrap_or_else(|e| panic!("could not release the holder: {e}"));
    assert_eq!(reply_of(&d, &hrun, "holder"), "held");
    assert_refused(&d, &token, "a token whose run has ended");

    // A connection bound while the run was live loses it when the run ends.
    let resp = bound.call(2, "sessions.list", json!({}));
    assert_eq!(
        resp["error"]["data"]["kind"], "forbidden",
        "a connection bound to a run that has since ended must get forbidden: {resp}"
    );

    // The operator, without a token, is unaffected.
    assert_eq!(rows(&d).len(), 2, "operator list after the refusals");
}

#[test]
fn forged_run_tokens_are_refused() {
    let fx = Fixture::new();
    let (agent, tok_fifo, gate) = holder(&fx);
    let d = Daemon::start_with_config(&agent);
    let (_hk, _, hrun) = spawn(&d, "holder", "hold");
    let token = read_token(&tok_fifo);

    // Same length and prefix as the live token, last character changed.
    let mut tampered: Vec<char> = token.chars().collect();
    let last = tampered.last_mut().expect("non-empty token");
    *last = if *last == '0' { '1' } else { '0' };
    let tampered: String = tampered.into_iter().collect();
    for (forged, why) in [
        ("forged-token", "a made-up token"),
        (tampered.as_str(), "a live token with one character changed"),
        (hrun.as_str(), "the run id alone"),
    ] {
        assert_refused(&d, forged, why);
        let mut c = RawConn::connect(&d.socket());
        let resp = c.call(1, "hello", json!({"runToken": forged}));
        assert_eq!(
            resp["error"]["data"]["kind"], "forbidden",
            "{why}: hello {{runToken}} must answer forbidden: {resp}"
        );
        assert_eq!(resp["error"]["code"], -32003, "{why}: {resp}");
    }
    common::fifo_write_within(&gate, "go\n", Duration::from_secs(WAIT_SECS))
        .unwrap_or_else(|e| panic!("could not release the holder: {e}"));
    assert_eq!(reply_of(&d, &hrun, "holder"), "held");
}

// ------------------------------------------------------------------ send policy

const SENDER: &str = "t=$(cat)\n\
                      probe send \"$OC\" sessions send \"$t\" \"note from $OPENCLAW_SESSION_KEY\" --timeout 20";

fn sender_probe(d: &Daemon, target: &str) -> (String, i32, String) {
    let (sk, _, srun) = spawn(d, "sender", target);
    let reply = reply_of(d, &srun, "sender");
    let (rc, err) = probe_result(&reply, "send");
    (sk, rc, err)
}

#[test]
fn send_policy_denies_by_key_prefix_and_a_session_override_allows() {
    let fx = Fixture::new();
    let config = format!(
        "{}[agents.helper]\nbackend = \"echo\"\n\n\
         [session]\nvisibility = \"all\"\n\n\
         [session.send_policy]\ndefault = \"allow\"\n\n\
         [[session.send_policy.rules]]\nname = \"protect-main\"\naction = \"deny\"\nkey_prefix = \"agent:main:\"\n",
        fx.agent("sender", SENDER)
    );
    let d = Daemon::start_with_config(&config);
    // Operator sends are never subject to the policy.
    expect_exit(
        &d,
        &["sessions", "send", "main", "hi"],
        0,
        "an operator send to agent:main:main despite the deny rule",
    );
    expect_exit(
        &d,
        &["sessions", "send", "agent:helper:main", "hi"],
        0,
        "operator send",
    );

    // Denied by the rule, which the error names.
    let (k1, rc, err) = sender_probe(&d, "agent:main:main");
    assert_eq!(
        rc, 5,
        "a send from a run to agent:main:main is denied by rule protect-main (exit 5): {err}"
    );
    assert!(
        err.contains("protect-main"),
        "the denial names the rule: {err}"
    );
    let notes = |key: &str| -> Vec<Value> {
        history(&d, key)
            .into_iter()
            .filter(|m| {
                m["role"] == "user"
                    && m["content"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("note from"))
            })
            .collect()
    };
    assert!(
        notes("agent:main:main").is_empty(),
        "a denied send stores nothing (sent by {k1})"
    );

    // A target no rule matches: the default allows.
    let (hk, rc, err) = sender_probe(&d, "agent:helper:main");
    assert_eq!(
        rc, 0,
        "agent:helper:main matches no rule, default allow: {err}"
    );
    let hn = notes("agent:helper:main");
    assert_eq!(hn.len(), 1, "{hn:#?}");
    assert_eq!(
        hn[0]["provenance"],
        json!({"kind": "inter_session", "from": hk}),
        "{:#}",
        hn[0]
    );

    // Per-session override allow wins over the rule.
    expect_exit(
        &d,
        &[
            "sessions",
            "patch",
            "agent:main:main",
            "--send-policy",
            "allow",
        ],
        0,
        "operator patch --send-policy allow",
    );
    assert_eq!(
        find_row(&rows(&d), "agent:main:main")["sendPolicy"],
        "allow",
        "the override shows in the row"
    );
    let (k2, rc, err) = sender_probe(&d, "agent:main:main");
    assert_eq!(
        rc, 0,
        "after `sessions patch agent:main:main --send-policy allow` the send works: {err}"
    );
    let mn = notes("agent:main:main");
    assert_eq!(
        mn.len(),
        1,
        "exactly the allowed inter-session message is stored: {mn:#?}"
    );
    assert_eq!(mn[0]["role"], "user", "{:#}", mn[0]);
    assert_eq!(mn[0]["content"], format!("note from {k2}"), "{:#}", mn[0]);
    assert_eq!(
        mn[0]["provenance"],
        json!({"kind": "inter_session", "from": k2}),
        "an inter-session message records the sender's key: {:#}",
        mn[0]
    );

    // inherit: the rule decides again.
    expect_exit(
        &d,
        &[
            "sessions",
            "patch",
            "agent:main:main",
            "--send-policy",
            "inherit",
        ],
        0,
        "operator patch --send-policy inherit",
    );
    let (_, rc, err) = sender_probe(&d, "agent:main:main");
    assert_eq!(
        rc, 5,
        "--send-policy inherit puts the rule back in charge: {err}"
    );
    assert!(err.contains("protect-main"), "{err}");

    // An override deny on a session the rules allow; the error says so.
    expect_exit(
        &d,
        &[
            "sessions",
            "patch",
            "agent:helper:main",
            "--send-policy",
            "deny",
        ],
        0,
        "operator patch --send-policy deny",
    );
    let (_, rc, err) = sender_probe(&d, "agent:helper:main");
    assert_eq!(rc, 5, "the session's own deny override refuses: {err}");
    assert!(
        err.contains("override"),
        "the denial names the session's own sendPolicy override: {err}"
    );
    assert_eq!(
        notes("agent:helper:main").len(),
        1,
        "nothing new stored after the deny"
    );
}

// ------------------------------------------------------------------ cleanup delete

#[test]
fn cleanup_delete_child_is_announced_then_removed() {
    let fx = Fixture::new();
    let d = Daemon::start_with_config(&format!(
        "{}{}",
        fx.agent(
            "planner",
            "child=$(\"$OC\" sessions spawn --agent worker --cleanup delete --task \"$(cat)\") \
             || exit 7\nprintf '%s' \"$child\""
        ),
        fx.agent("worker", WORKER)
    ));
    let (pk, _, prun) = spawn(&d, "planner", "hello");
    let child = reply_of(&d, &prun, "planner");
    assert!(
        child.starts_with("agent:worker:subagent:"),
        "the planner prints its child's key: {child:?}"
    );

    wait_session_gone(&d, &child);
    // Deleted only after its announce was stored: a plain read must find it now.
    let ph = history(&d, &pk);
    let ann = announces(&ph);
    assert_eq!(
        ann.len(),
        1,
        "the deleted child's announce is in the parent: {ph:#?}"
    );
    assert_eq!(
        ann[0]["provenance"],
        json!({"kind": "announce", "from": child}),
        "{:#}",
        ann[0]
    );
    let text = content(&ann[0]);
    assert_eq!(field_lines(text, "Status"), vec!["Status: ok"], "{text}");
    assert_eq!(field_lines(text, "Result"), vec!["Result: HELLO"], "{text}");
    let out = expect_exit(
        &d,
        &["sessions", "history", &child],
        4,
        "the cleanup-delete child is gone",
    );
    drop(out);
}

// ------------------------------------------------------------------ ANNOUNCE_SKIP

#[test]
fn announce_skip_reply_suppresses_the_announce() {
    let fx = Fixture::new();
    let d = Daemon::start_with_config(&format!(
        "{}{}",
        fx.agent(
            "planner",
            "a=$(\"$OC\" sessions spawn --agent worker --task announce_skip) || exit 7\n\
             \"$OC\" sessions wait --session \"$a\" --timeout 60 >/dev/null || exit 8\n\
             b=$(\"$OC\" sessions spawn --agent worker --task 'not announce_skip') || exit 9\n\
             \"$OC\" sessions wait --session \"$b\" --timeout 60 >/dev/null || exit 10\n\
             printf '%s %s' \"$a\" \"$b\""
        ),
        fx.agent("worker", WORKER)
    ));
    let (pk, _, prun) = spawn(&d, "planner", "go");
    let reply = reply_of(&d, &prun, "planner");
    let (a, b) = reply
        .split_once(' ')
        .unwrap_or_else(|| panic!("the planner prints both children's keys: {reply:?}"));

    let ah = history(&d, a);
    assert!(
        ah.iter()
            .any(|m| m["role"] == "assistant" && m["content"] == "ANNOUNCE_SKIP"),
        "the first worker replied ANNOUNCE_SKIP: {ah:#?}"
    );
    // The second child ended after the first: once its announce is there, the first one's
    // would be too.
    let bann = wait_for_announce(&d, &pk, b);
    assert_eq!(
        field_lines(content(&bann), "Result"),
        vec!["Result: NOT ANNOUNCE_SKIP"],
        "a reply merely containing ANNOUNCE_SKIP is announced: {bann:#}"
    );
    let ph = history(&d, &pk);
    let ann = announces(&ph);
    assert!(
        !ann.iter().any(|m| m["provenance"]["from"] == a),
        "a child replying exactly ANNOUNCE_SKIP must not be announced: {ann:#?}"
    );
    assert_eq!(ann.len(), 1, "{ph:#?}");
}

// ------------------------------------------------------------------ error outcome

#[test]
fn failed_child_is_announced_with_status_error_and_its_stderr() {
    let fx = Fixture::new();
    let d = Daemon::start_with_config(&format!(
        "{}{}",
        fx.agent(
            "planner",
            "c=$(\"$OC\" sessions spawn --agent failer --task x) || exit 7\n\
             \"$OC\" sessions wait --session \"$c\" --timeout 60 >/dev/null 2>&1\n\
             printf '%s rc=%s' \"$c\" \"$?\""
        ),
        // Model text claiming success must not decide the Status.
        fx.agent(
            "failer",
            "printf 'Status: ok'\necho 'boom: disk on fire' >&2\nexit 3"
        )
    ));
    let (pk, _, prun) = spawn(&d, "planner", "go");
    let reply = reply_of(&d, &prun, "planner");
    let (child, rc) = reply
        .split_once(" rc=")
        .unwrap_or_else(|| panic!("planner output: {reply:?}"));
    assert_eq!(rc, "1", "`sessions wait --session` on a failed run exits 1");

    let ann = wait_for_announce(&d, &pk, child);
    let text = content(&ann);
    assert_eq!(
        field_lines(text, "Status"),
        vec!["Status: error"],
        "Status comes from the run outcome (exit 3), not the agent's text:\n{text}"
    );
    let notes = field_lines(text, "Notes");
    assert!(
        notes.len() == 1 && notes[0].contains("boom: disk on fire"),
        "Notes carries the stderr tail of the failed run:\n{text}"
    );
    let stats = field_lines(text, "Stats");
    assert!(
        stats.len() == 1 && stats[0].contains(child),
        "Stats line with the child's key:\n{text}"
    );
}

#[test]
fn idempotency_keys_are_scoped_to_their_caller() {
    // The same key from a run's child and from the operator names two different requests:
    // a retry returns the caller's own first result, never someone else's.
    let fx = Fixture::new();
    let (agent, tok_fifo, gate) = holder(&fx);
    let d = Daemon::start_with_config(&agent);
    let (hk, _, hrun) = spawn(&d, "holder", "hold");
    let token = read_token(&tok_fifo);

    let mut operator = RawConn::connect(&d.socket());
    let first = operator.call_ok(
        "sessions.spawn",
        json!({"task": "op", "idempotencyKey": "k"}),
    );
    let again = operator.call_ok(
        "sessions.spawn",
        json!({"task": "op", "idempotencyKey": "k"}),
    );
    assert_eq!(
        first["sessionKey"], again["sessionKey"],
        "a retry by the same caller returns its first result"
    );

    let mut bound = RawConn::connect(&d.socket());
    bound.call_ok("hello", json!({"runToken": token}));
    let child = bound.call_ok(
        "sessions.spawn",
        json!({"task": "child", "idempotencyKey": "k"}),
    );
    assert_ne!(
        child["sessionKey"], first["sessionKey"],
        "a run's child using the operator's idempotency key must not get the operator's session: {child}"
    );
    assert_eq!(
        rows(&d)
            .iter()
            .find(|r| r["key"] == child["sessionKey"])
            .map(|r| r["parentKey"].clone()),
        Some(json!(hk)),
        "the child's spawn really happened, under the holder"
    );
    common::fifo_write_within(&gate, "go\n", Duration::from_secs(WAIT_SECS))
        .unwrap_or_else(|e| panic!("could not release the holder: {e}"));
    assert_eq!(reply_of(&d, &hrun, "holder"), "held");
}

#[test]
fn a_subscription_opened_with_a_run_token_ends_with_the_run() {
    let fx = Fixture::new();
    let (agent, tok_fifo, gate) = holder(&fx);
    let d = Daemon::start_with_config(&agent);
    let (hk, _, hrun) = spawn(&d, "holder", "hold");
    let token = read_token(&tok_fifo);

    let mut bound = RawConn::connect(&d.socket());
    bound.call_ok("hello", json!({"runToken": token}));
    let sub = bound.call_ok("sessions.subscribe", json!({"sessionKey": hk}));
    common::fifo_write_within(&gate, "go\n", Duration::from_secs(WAIT_SECS))
        .unwrap_or_else(|e| panic!("could not release the holder: {e}"));
    assert_eq!(reply_of(&d, &hrun, "holder"), "held");
    // Notifications until the subscription says it is over (the reply message may come first).
    for _ in 0..50 {
        let note = bound.read_json();
        if note["method"] == "subscription.ended" {
            assert_eq!(
                note["params"]["subscription"], sub["subscription"],
                "{note}"
            );
            assert_eq!(note["params"]["reason"], "run_ended", "{note}");
            return;
        }
    }
    panic!("the subscription opened with the run's token did not end when the run did");
}

#[test]
fn sub_agent_sessions_are_archived_after_their_last_run() {
    // archive_after_minutes = 0: archived as soon as the run has ended. Archived sessions
    // leave the default list, stay readable, and show with includeArchived.
    let d = Daemon::start_with_config("[subagents]\narchive_after_minutes = 0\n");
    // Listening before anything happens, so the archive cannot be missed.
    let mut events = RawConn::connect(&d.socket());
    events.call_ok("sessions.subscribe", json!({"events": ["lifecycle"]}));
    let mut c = RawConn::connect(&d.socket());
    // A sub-agent is a session with a parent.
    c.call_ok(
        "sessions.send",
        json!({"sessionKey": "main", "message": "parent", "timeoutSeconds": 0}),
    );
    let spawned = c.call_ok("sessions.spawn", json!({"task": "t", "parentKey": "main"}));
    let mut archived = false;
    for _ in 0..50 {
        let note = events.read_json(); // blocks until the next change
        if note["params"]["phase"] == "archive"
            && note["params"]["sessionKey"] == spawned["sessionKey"]
        {
            assert_eq!(note["params"]["session"]["archived"], true, "{note}");
            archived = true;
            break;
        }
    }
    assert!(
        archived,
        "the sub-agent session was not archived after its run"
    );
    let listed = c.call_ok("sessions.list", json!({}));
    assert!(
        !listed["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|r| r["key"] == spawned["sessionKey"]),
        "an archived session leaves the default list: {listed}"
    );
    let all = c.call_ok("sessions.list", json!({"includeArchived": true}));
    assert!(
        all["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|r| r["key"] == spawned["sessionKey"] && r["archived"] == true),
        "includeArchived lists it, marked archived: {all}"
    );
    let history = c.call_ok(
        "sessions.history",
        json!({"sessionKey": spawned["sessionKey"]}),
    );
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(2),
        "archived sessions stay readable: {history}"
    );
}
