//! The `acp` backend end to end (issue 12): a real `openclawd` driving ACP agents — the one
//! built on the official TypeScript SDK (`tests/acp-agent/agent.mjs`, what it does is chosen
//! by the prompt's first word) and the ones broken on purpose — through the real `openclaw`
//! CLI and raw sockets.
//!
//! - `turns`: follow, history, permission policies, workspace confinement, `send --stream`;
//! - `process`: kill, run timeout, one process per session, idle timeout, daemon restart;
//! - `failures`: broken agents, and the daemon serving on after them;
//! - `spawn`: `runtime: "acp"`, `streamTo: "parent"`, `resumeSessionId`.
//!
//! Each test is skipped, saying why, when Node or the SDK agent's packages are missing
//! (`.ci/run` installs them with `npm ci`).

#[path = "../common/mod.rs"]
mod common;

mod failures;
mod process;
mod spawn;
mod turns;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, LineChild, describe, output_within};
use serde_json::Value;

pub fn agent_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acp-agent")
}

/// Whether the test agents can run here; says why not when they cannot.
pub fn agents_available() -> bool {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        eprintln!("skipping: `node` is not installed (the ACP test agents run on Node 20)");
        return false;
    }
    if !agent_dir()
        .join("node_modules/@agentclientprotocol/sdk")
        .is_dir()
    {
        eprintln!(
            "skipping: the SDK test agent is not installed; run `npm ci` in {}",
            agent_dir().display()
        );
        return false;
    }
    true
}

/// A TOML string literal.
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// `command = [...]` running `node SCRIPT ARGS...` from tests/acp-agent.
pub fn node_command(script: &str, args: &[&str]) -> String {
    let mut parts = vec![
        toml_str("node"),
        toml_str(&agent_dir().join(script).display().to_string()),
    ];
    parts.extend(args.iter().map(|a| toml_str(a)));
    format!("command = [{}]", parts.join(", "))
}

/// An `[agents.ID]` table for the SDK agent with `args`, and more lines of the table.
pub fn sdk_agent(id: &str, args: &[&str], extra: &str) -> String {
    format!(
        "[agents.{id}]\nbackend = \"acp\"\n{}\n{extra}\n",
        node_command("agent.mjs", args)
    )
}

/// A daemon with the SDK agent as agent `t` (policy approve-all unless `extra` says), and
/// `more` config after it.
pub fn daemon(extra: &str, more: &str) -> Daemon {
    let extra = if extra.contains("permissions") {
        extra.to_string()
    } else {
        format!("permissions = \"approve-all\"\n{extra}")
    };
    Daemon::start_with_config(&format!("{}{more}", sdk_agent("t", &[], &extra)))
}

/// `openclaw ARGS...` with a deadline (an ACP turn that hangs fails the test, never hangs it).
pub fn run(d: &Daemon, args: &[&str]) -> std::process::Output {
    output_within(
        d.cli().args(args),
        60,
        &format!("openclaw {}", args.join(" ")),
    )
}

/// `openclaw ARGS...`, which must succeed; its stdout without the final newline.
pub fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = run(d, args);
    assert!(out.status.success(), "{}", describe(args, &out));
    String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .to_string()
}

pub fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(d, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

/// A session of agent `agent` that takes further sends, its first run (`task`) done and ok;
/// returns its key and that run's reply.
pub fn session(d: &Daemon, agent: &str, task: &str) -> (String, String) {
    let spawned = json(
        d,
        &[
            "sessions", "spawn", "--agent", agent, "--mode", "session", "--task", task,
        ],
    );
    let key = spawned["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();
    let run = spawned["runId"].as_str().expect("runId");
    let reply = ok(d, &["sessions", "wait", run, "--timeout", "50"]);
    (key, reply)
}

/// Sends `message` and returns the reply (the run must end ok).
pub fn send(d: &Daemon, key: &str, message: &str) -> String {
    ok(d, &["sessions", "send", key, message, "--timeout", "50"])
}

/// The pid of the session's agent process (it answers `pid` with `pid N`).
pub fn agent_pid(d: &Daemon, key: &str) -> i32 {
    let reply = send(d, key, "pid");
    reply
        .strip_prefix("pid ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("`pid` answered {reply:?}"))
}

pub fn alive(pid: i32) -> bool {
    common::proc_stat(pid).is_some_and(|(_, state, ..)| state != 'Z' && state != 'X')
}

/// The session's row from `sessions list --json`.
pub fn row(d: &Daemon, key: &str) -> Value {
    let list = json(d, &["sessions", "list", "--limit", "1000"]);
    list["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|r| r["key"] == key))
        .cloned()
        .unwrap_or_else(|| panic!("{key} not in sessions list: {list}"))
}

/// The whole transcript, tool messages included.
pub fn history(d: &Daemon, key: &str) -> Vec<Value> {
    json(
        d,
        &[
            "sessions",
            "history",
            key,
            "--include-tools",
            "--limit",
            "1000",
        ],
    )["messages"]
        .as_array()
        .cloned()
        .expect("messages")
}

/// `openclaw sessions follow ARGS... --json`, read line by line.
pub fn follower(d: &Daemon, args: &[&str]) -> LineChild {
    let mut all = vec!["sessions", "follow"];
    all.extend_from_slice(args);
    all.push("--json");
    LineChild::spawn(d.cli().args(&all), &format!("openclaw {}", all.join(" ")))
}

/// Sends `tool read` to `key` until `f` (following `key`, or a session that hears it) prints
/// something: events are only live, so from then on the follower hears everything. The rest
/// of those turns' lines are still to come; callers pick theirs by run id or content.
pub fn attach(d: &Daemon, key: &str, f: &mut LineChild) {
    for _ in 0..20 {
        send(d, key, "tool read");
        if f.next_line(Duration::from_secs(1)).is_ok() {
            return;
        }
    }
    panic!("the follower never printed anything: {:?}", f.seen);
}

/// Parses a follower's JSON lines (the ones after the sync replies are what the test wants).
pub fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("follow printed non-JSON ({e}): {line}"))
}

/// Waits until `pred` holds, failing with `what` after 20 s.
pub fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let end = common::deadline(20);
    while !pred() {
        assert!(std::time::Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
