//! The README flow through the real `openclaw` binary against a real `openclawd`: spawn,
//! history, send, send --no-wait + wait, list, kill; JSON shapes, exit codes, keys vs ids,
//! idempotency; and the cron-like environment with autostart.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Daemon, OPENCLAW, describe, json_stdout, output_within, stderr, stdout};
use openclaw::protocol::{
    AgentsListResult, DaemonStatus, HistoryResult, KillResult, ListResult, Message, ProvenanceKind,
    Role, RunResult, RunStatus, SpawnResult, WaitStatus,
};
use serde_json::Value;

/// Deadline for one CLI call that should be quick.
const CALL_SECS: u64 = 20;

fn run(d: &Daemon, args: &[&str]) -> Output {
    output_within(
        d.cli().args(args),
        CALL_SECS,
        &format!("openclaw {}", args.join(" ")),
    )
}

/// Runs, asserts exit 0, returns stdout without the trailing newline.
fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = run(d, args);
    assert!(
        out.status.success(),
        "expected exit 0:\n{}",
        describe(args, &out)
    );
    stdout(&out).trim_end_matches('\n').to_string()
}

/// Runs with `--json`, asserts exit 0 and one JSON object on one line.
fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(d, &all);
    assert!(
        out.status.success(),
        "expected exit 0:\n{}",
        describe(&all, &out)
    );
    json_stdout(&out, &format!("openclaw {}", all.join(" ")))
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> T {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{what}: JSON does not have the documented shape ({e}):\n{v}"))
}

fn history(d: &Daemon, key: &str) -> HistoryResult {
    typed(
        &json(d, &["sessions", "history", key]),
        "sessions history --json",
    )
}

fn assert_exit(out: &Output, code: i32, args: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{}",
        describe(args, out)
    );
}

/// The run id of a session's spawn run, to wait on it: the task message's runId, or the
/// session's active run. None means the run is already over.
fn spawn_run_id(d: &Daemon, key: &str) -> Option<String> {
    let h = history(d, key);
    if let Some(id) = h.messages.first().and_then(|m| m.run_id.clone()) {
        return Some(id);
    }
    let list: ListResult = typed(&json(d, &["sessions", "list"]), "sessions list --json");
    let row = list
        .sessions
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("sessions list --json has no row for {key}"));
    row.active_run_id.clone()
}

fn contents(h: &HistoryResult) -> Vec<(u64, Role, String)> {
    h.messages
        .iter()
        .map(|m| {
            (
                m.seq,
                m.role,
                m.content.as_str().unwrap_or("<non-string>").to_string(),
            )
        })
        .collect()
}

fn assert_rfc3339_utc(m: &Message) {
    let ts = time::OffsetDateTime::parse(&m.ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("message #{} ts {:?} is not RFC 3339: {e}", m.seq, m.ts));
    assert!(
        ts.offset().is_utc(),
        "message #{} ts {:?} is not UTC",
        m.seq,
        m.ts
    );
}

#[test]
fn readme_flow() {
    let d = Daemon::start();

    // spawn prints the key alone on a line.
    let out = run(&d, &["sessions", "spawn", "--task", "run the daily report"]);
    assert_exit(
        &out,
        0,
        &["sessions", "spawn", "--task", "run the daily report"],
    );
    let text = stdout(&out);
    let key = text.trim_end_matches('\n').to_string();
    assert!(
        !key.is_empty() && !key.contains('\n') && !key.contains(char::is_whitespace),
        "spawn should print the session key alone on one line, got {text:?}"
    );
    assert!(
        key.starts_with("agent:main:task:"),
        "a top-level spawn key should be agent:main:task:<uuid>, got {key:?}"
    );

    // The key works for history at once: the task is there.
    let h = history(&d, &key);
    assert_eq!(h.session_key, key, "history names another session");
    let first = h.messages.first().unwrap_or_else(|| {
        panic!("history right after spawn should already hold the task, got none")
    });
    assert_eq!(first.seq, 1, "seqs start at 1");
    assert_eq!(first.role, Role::User);
    assert_eq!(first.content, "run the daily report");
    assert_eq!(first.provenance.kind, ProvenanceKind::SpawnTask);

    // Wait for the echo reply by waiting on the run, never by sleeping.
    if let Some(run_id) = spawn_run_id(&d, &key) {
        let reply = ok(&d, &["sessions", "wait", &run_id, "--timeout", "10"]);
        assert_eq!(
            reply, "run the daily report",
            "wait should print the spawn run's reply"
        );
    }
    let h = history(&d, &key);
    assert_eq!(
        contents(&h),
        vec![
            (1, Role::User, "run the daily report".into()),
            (2, Role::Assistant, "run the daily report".into()),
        ],
        "history after the spawn run: the task, then the echo reply"
    );

    // send waits and prints the reply.
    let reply = ok(&d, &["sessions", "send", &key, "and the weekly one"]);
    assert_eq!(
        reply, "and the weekly one",
        "send should print the echo reply"
    );

    // send --no-wait prints a run id; wait on it prints the reply.
    let run_id = ok(&d, &["sessions", "send", &key, "later", "--no-wait"]);
    assert!(
        !run_id.is_empty() && !run_id.contains(char::is_whitespace),
        "send --no-wait should print the run id alone, got {run_id:?}"
    );
    let out = run(&d, &["sessions", "wait", &run_id, "--timeout", "5"]);
    assert_exit(&out, 0, &["sessions", "wait", &run_id, "--timeout", "5"]);
    assert_eq!(
        stdout(&out).trim_end_matches('\n'),
        "later",
        "wait should print the reply"
    );

    let h = history(&d, &key);
    assert_eq!(
        contents(&h),
        vec![
            (1, Role::User, "run the daily report".into()),
            (2, Role::Assistant, "run the daily report".into()),
            (3, Role::User, "and the weekly one".into()),
            (4, Role::Assistant, "and the weekly one".into()),
            (5, Role::User, "later".into()),
            (6, Role::Assistant, "later".into()),
        ],
        "full transcript after the README flow"
    );
    assert!(
        !h.has_more,
        "6 messages fit in the default page; hasMore should be false"
    );

    // Human history mentions the messages.
    let human = ok(&d, &["sessions", "history", &key]);
    for needle in [
        "run the daily report",
        "and the weekly one",
        "later",
        "user",
        "assistant",
    ] {
        assert!(
            human.contains(needle),
            "plain history should show {needle:?}:\n{human}"
        );
    }

    // list --json has the session.
    let list: ListResult = typed(&json(&d, &["sessions", "list"]), "sessions list --json");
    let row = list
        .sessions
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("sessions list --json lacks {key}: {list:?}"));
    assert_eq!(row.kind, "task");
    assert_eq!(row.agent_id, "main");
    assert_eq!(row.message_count, 6, "messageCount of {key}");

    // Plain list (stdout is a pipe, not a TTY): tab-separated with a header line.
    let plain = ok(&d, &["sessions", "list"]);
    let mut lines = plain.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.contains('\t') && header.to_lowercase().contains("key"),
        "non-TTY `sessions list` should start with a tab-separated header naming KEY, got:\n{plain}"
    );
    assert!(
        lines.any(|l| l.split('\t').any(|f| f.trim() == key)),
        "non-TTY `sessions list` should have a tab-separated row with the full key {key}:\n{plain}"
    );
    assert!(
        !plain.contains('\u{1b}'),
        "no colour codes when stdout is not a TTY:\n{plain}"
    );

    // kill: nothing is running, so it just says so.
    let out = run(&d, &["sessions", "kill", &key]);
    assert_exit(&out, 0, &["sessions", "kill", &key]);
    let k: KillResult = typed(
        &json(&d, &["sessions", "kill", &key]),
        "sessions kill --json",
    );
    assert_eq!(k.session_key, key);
    assert_eq!(
        k.status, "idle",
        "kill with no active run reports idle: {k:?}"
    );
    assert_eq!(k.aborted_run_id, None);
    // The session is still usable after a kill.
    assert_eq!(
        ok(&d, &["sessions", "send", &key, "still here"]),
        "still here"
    );
}

#[test]
fn history_json_shape_and_provenance() {
    let d = Daemon::start();
    let spawn: SpawnResult = typed(
        &json(&d, &["sessions", "spawn", "--task", "first task"]),
        "sessions spawn --json",
    );
    assert_eq!(spawn.status, "accepted");
    assert!(spawn.session_key.starts_with("agent:main:task:"));
    assert!(
        uuid::Uuid::parse_str(&spawn.session_id).is_ok(),
        "sessionId should be a UUID"
    );
    let w: RunResult = typed(
        &json(&d, &["sessions", "wait", &spawn.run_id, "--timeout", "10"]),
        "sessions wait --json",
    );
    assert_eq!(w.status, WaitStatus::Ok);
    assert_eq!(w.run_status, RunStatus::Ok);
    assert_eq!(w.run_id, spawn.run_id);
    assert_eq!(w.session_key, spawn.session_key);
    assert_eq!(w.reply.as_deref(), Some("first task"));

    let s: RunResult = typed(
        &json(
            &d,
            &["sessions", "send", &spawn.session_key, "from the operator"],
        ),
        "sessions send --json",
    );
    assert_eq!((s.status, s.run_status), (WaitStatus::Ok, RunStatus::Ok));
    assert_eq!(s.reply.as_deref(), Some("from the operator"));
    assert_ne!(s.run_id, spawn.run_id, "each send is a new run");

    let raw = json(&d, &["sessions", "history", &spawn.session_key]);
    let h: HistoryResult = typed(&raw, "sessions history --json");
    assert_eq!(h.session_key, spawn.session_key);
    assert_eq!(h.session_id, spawn.session_id);
    assert_eq!(h.messages.len(), 4, "{raw}");
    let expect = [
        (1, Role::User, ProvenanceKind::SpawnTask, "first task"),
        (2, Role::Assistant, ProvenanceKind::Agent, "first task"),
        (3, Role::User, ProvenanceKind::Operator, "from the operator"),
        (
            4,
            Role::Assistant,
            ProvenanceKind::Agent,
            "from the operator",
        ),
    ];
    for (m, (seq, role, prov, content)) in h.messages.iter().zip(expect) {
        assert_eq!(
            (m.seq, m.role, m.provenance.kind, m.content.as_str()),
            (seq, role, prov, Some(content)),
            "history message {m:?}"
        );
        assert_rfc3339_utc(m);
    }
    // Raw field names on the wire are the documented camelCase/snake ones.
    let m0 = &raw["messages"][0];
    assert_eq!(m0["provenance"]["kind"], "spawn_task", "{m0}");
    assert_eq!(raw["messages"][2]["provenance"]["kind"], "operator");
    assert!(
        m0["seq"].is_u64() && m0["ts"].is_string() && m0["role"] == "user",
        "{m0}"
    );
    assert_eq!(
        h.messages[1].run_id.as_deref(),
        Some(spawn.run_id.as_str()),
        "reply runId"
    );
    assert_eq!(
        h.messages[3].run_id.as_deref(),
        Some(s.run_id.as_str()),
        "reply runId"
    );

    // --limit gives the newest N, oldest first, with a cursor to older ones.
    let page: HistoryResult = typed(
        &json(
            &d,
            &["sessions", "history", &spawn.session_key, "--limit", "2"],
        ),
        "sessions history --limit 2 --json",
    );
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert!(
        page.has_more,
        "two older messages remain: hasMore should be true"
    );
    let cursor = page.next_cursor.expect("nextCursor when hasMore");
    let older: HistoryResult = typed(
        &json(
            &d,
            &[
                "sessions",
                "history",
                &spawn.session_key,
                "--limit",
                "2",
                "--cursor",
                &cursor,
            ],
        ),
        "sessions history --cursor --json",
    );
    assert_eq!(
        older.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(!older.has_more, "nothing older than seq 1");
}

#[test]
fn json_everywhere_parses() {
    let d = Daemon::start();
    let spawn: SpawnResult = typed(
        &json(&d, &["sessions", "spawn", "--task", "j"]),
        "sessions spawn --json",
    );
    let _: RunResult = typed(
        &json(&d, &["sessions", "wait", &spawn.run_id]),
        "sessions wait --json",
    );
    let nw: RunResult = typed(
        &json(
            &d,
            &["sessions", "send", &spawn.session_key, "nw", "--no-wait"],
        ),
        "sessions send --no-wait --json",
    );
    assert_eq!(nw.status, WaitStatus::Accepted, "--no-wait result status");
    assert!(nw.reply.is_none());
    let _: RunResult = typed(&json(&d, &["sessions", "wait", &nw.run_id]), "wait --json");
    let _: HistoryResult = typed(&json(&d, &["sessions", "history", &spawn.session_key]), "h");
    let _: ListResult = typed(&json(&d, &["sessions", "list"]), "sessions list --json");
    let _: KillResult = typed(&json(&d, &["sessions", "kill", &spawn.session_key]), "kill");
    let p = json(
        &d,
        &[
            "sessions",
            "patch",
            &spawn.session_key,
            "--label",
            "nightly",
        ],
    );
    assert!(p.is_object());
    let list: ListResult = typed(&json(&d, &["sessions", "list"]), "sessions list --json");
    let row = list
        .sessions
        .iter()
        .find(|r| r.key == spawn.session_key)
        .expect("row");
    assert_eq!(
        row.label.as_deref(),
        Some("nightly"),
        "patch --label should show in list"
    );
    let agents: AgentsListResult = typed(&json(&d, &["agents", "list"]), "agents list --json");
    assert_eq!(agents.default_agent, "main");
    assert!(
        agents
            .agents
            .iter()
            .any(|a| a.id == "main" && a.backend == "echo" && a.is_default),
        "with no config the default agent main is echo: {agents:?}"
    );
    let st: DaemonStatus = typed(&json(&d, &["daemon", "status"]), "daemon status --json");
    assert_eq!(st.pid, d.pid(), "daemon status pid");
    assert_eq!(Path::new(&st.socket), d.socket(), "daemon status socket");
    assert_eq!(
        Path::new(&st.data_dir),
        d.home_path().join("data"),
        "daemon status dataDir"
    );
    assert_eq!(
        Path::new(&st.config_file),
        d.home_path().join("config.toml"),
        "daemon status configFile"
    );
    let del = json(&d, &["sessions", "delete", &spawn.session_key]);
    assert_eq!(del["deleted"], true, "{del}");
    let out = run(&d, &["sessions", "history", &spawn.session_key]);
    assert_exit(&out, 4, &["sessions", "history", "<deleted key>"]);
}

#[test]
fn not_found_exits_4() {
    let d = Daemon::start();
    let missing = "agent:main:subagent:00000000-0000-4000-8000-000000000000";
    for args in [
        vec!["sessions", "history", missing],
        vec!["sessions", "kill", missing],
        vec!["sessions", "send", missing, "hi"],
        vec![
            "sessions",
            "history",
            "00000000-0000-4000-8000-000000000000",
        ],
        vec![
            "sessions",
            "wait",
            "00000000-0000-4000-8000-000000000000",
            "--timeout",
            "1",
        ],
    ] {
        let out = run(&d, &args);
        assert_exit(&out, 4, &args);
        assert!(
            stdout(&out).is_empty(),
            "nothing on stdout on error:\n{}",
            describe(&args, &out)
        );
        assert!(
            stderr(&out).starts_with("error: "),
            "diagnostic should be `error: <message>` on stderr:\n{}",
            describe(&args, &out)
        );
    }
    // A usage error is 2, distinct from not_found.
    let out = run(&d, &["sessions", "spawn"]);
    assert_exit(&out, 2, &["sessions", "spawn", "(no --task)"]);
}

#[test]
fn keys_and_session_ids_are_both_accepted() {
    let d = Daemon::start();
    let spawn: SpawnResult = typed(
        &json(&d, &["sessions", "spawn", "--task", "by id"]),
        "sessions spawn --json",
    );
    let _ = ok(&d, &["sessions", "wait", &spawn.run_id]);
    let by_key = history(&d, &spawn.session_key);
    let by_id = history(&d, &spawn.session_id);
    assert_eq!(
        by_id.session_key, spawn.session_key,
        "history by session id names the key"
    );
    assert_eq!(
        by_key.messages, by_id.messages,
        "history by id and by key differ"
    );
    assert_eq!(
        ok(&d, &["sessions", "send", &spawn.session_id, "via id"]),
        "via id"
    );
    let k: KillResult = typed(
        &json(&d, &["sessions", "kill", &spawn.session_id]),
        "kill by id",
    );
    assert_eq!(k.session_key, spawn.session_key);

    // `main` (no prefix) resolves under the default agent and is created by the first send.
    assert_eq!(
        ok(&d, &["sessions", "send", "main", "hello main"]),
        "hello main"
    );
    let h = history(&d, "agent:main:main");
    assert_eq!(h.session_key, "agent:main:main");
    assert_eq!(
        contents(&h),
        vec![
            (1, Role::User, "hello main".into()),
            (2, Role::Assistant, "hello main".into())
        ]
    );
    assert_eq!(
        history(&d, "main").messages,
        h.messages,
        "`main` == `agent:main:main`"
    );
    let list: ListResult = typed(&json(&d, &["sessions", "list"]), "sessions list --json");
    let row = list
        .sessions
        .iter()
        .find(|r| r.key == "agent:main:main")
        .expect("main row");
    assert_eq!(row.kind, "main");
    let by_main_id = history(&d, &row.session_id);
    assert_eq!(by_main_id.session_key, "agent:main:main");
}

#[test]
fn idempotent_spawn_returns_the_first_result() {
    let d = Daemon::start();
    let args = [
        "sessions",
        "spawn",
        "--task",
        "once",
        "--idempotency-key",
        "nightly-2024-01-01",
    ];
    let a: SpawnResult = typed(&json(&d, &args), "first spawn");
    let b: SpawnResult = typed(&json(&d, &args), "retried spawn");
    assert_eq!(
        a.session_key, b.session_key,
        "a retried spawn must return the same key"
    );
    assert_eq!(
        a.run_id, b.run_id,
        "a retried spawn must return the same run"
    );
    // Plain output of a third retry: the same key.
    assert_eq!(ok(&d, &args), a.session_key);
    let list: ListResult = typed(&json(&d, &["sessions", "list"]), "sessions list --json");
    assert_eq!(
        list.sessions
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>(),
        vec![a.session_key.as_str()],
        "three spawns with one idempotency key must make exactly one session"
    );
    let _ = ok(&d, &["sessions", "wait", &a.run_id]);
    let h = history(&d, &a.session_key);
    assert_eq!(
        contents(&h),
        vec![
            (1, Role::User, "once".into()),
            (2, Role::Assistant, "once".into())
        ],
        "the task must be recorded and run once"
    );
    // A different idempotency key is a different session.
    let c: SpawnResult = typed(
        &json(
            &d,
            &[
                "sessions",
                "spawn",
                "--task",
                "once",
                "--idempotency-key",
                "other",
            ],
        ),
        "spawn with another idempotency key",
    );
    assert_ne!(c.session_key, a.session_key);
}

// ------------------------------------------------------------------ cron-like environment

/// Kills (by pid) any openclawd still running for this home when the test ends, pass or fail:
/// the ones found by their environment, and the ones `daemon status` reported.
struct Reaper<'a> {
    home: &'a Path,
    seen: std::cell::RefCell<Vec<i32>>,
}

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        let mut pids = daemons_for_home(self.home);
        pids.extend(
            self.seen
                .borrow()
                .iter()
                .copied()
                .filter(|p| is_openclawd(*p)),
        );
        for pid in pids {
            // SAFETY: kill(2) on a daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn is_openclawd(pid: i32) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let live = common::proc_stat(pid).is_some_and(|(_, s, ..)| s != 'Z' && s != 'X');
    live && exe
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("openclawd"))
}

/// Live `openclawd` processes whose environment has OPENCLAW_HOME=home.
fn daemons_for_home(home: &Path) -> Vec<i32> {
    let want = format!("OPENCLAW_HOME={}", home.display());
    common::all_pids()
        .into_iter()
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            is_openclawd(*pid) && env.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
        })
        .collect()
}

fn cron_cmd(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(OPENCLAW);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .env("OPENCLAW_HOME", home)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn daemon_log(home: &Path) -> String {
    std::fs::read_to_string(home.join("data").join("openclawd.log"))
        .unwrap_or_else(|e| format!("<no data/openclawd.log: {e}>"))
}

fn cron_status(home: &Path) -> Output {
    let mut cmd = cron_cmd(home, &["daemon", "status", "--json"]);
    cmd.env("OPENCLAW_NO_AUTOSTART", "1");
    output_within(&mut cmd, CALL_SECS, "openclaw daemon status --json")
}

fn cron_spawn_ok(home: &Path, task: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "cron-like `openclaw sessions spawn --task {task}` failed:\n  exit {:?}\n  stdout: {}\n  \
         stderr: {}\n  daemon log: {}",
        out.status.code(),
        stdout(out),
        stderr(out),
        daemon_log(home)
    );
    let key = stdout(out).trim_end_matches('\n').to_string();
    assert!(
        key.starts_with("agent:main:task:") && !key.contains('\n'),
        "cron-like spawn should print the key alone, got {:?}",
        stdout(out)
    );
    key
}

fn stop_and_check_gone(home: &Path, pid: i32) {
    let out = output_within(
        &mut cron_cmd(home, &["daemon", "stop"]),
        CALL_SECS,
        "openclaw daemon stop",
    );
    assert!(
        out.status.success(),
        "openclaw daemon stop failed: {:?}\nstderr: {}",
        out.status.code(),
        stderr(&out)
    );
    assert!(
        common::wait_pid_gone(pid, 10),
        "openclawd pid {pid} is still alive 10 s after `openclaw daemon stop` returned"
    );
    let out = cron_status(home);
    assert_eq!(
        out.status.code(),
        Some(3),
        "`daemon status` after stop should exit 3 (not running); stdout {} stderr {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        !home.join("openclaw.sock").exists(),
        "a stopped daemon should remove its socket file"
    );
}

#[test]
fn cron_like_spawn_autostarts_exactly_one_daemon() {
    let home = tempfile::Builder::new()
        .prefix("openclaw-cron-")
        .tempdir()
        .expect("tempdir");
    let home = home.path().to_path_buf();
    let reaper = Reaper {
        home: &home,
        seen: Default::default(),
    };

    let out = cron_status(&home);
    assert_eq!(
        out.status.code(),
        Some(3),
        "no daemon yet: `daemon status` should exit 3"
    );

    // No daemon, no OPENCLAW_NO_AUTOSTART, `env -i`, stdin closed: spawn starts one and returns.
    let out = output_within(
        &mut cron_cmd(&home, &["sessions", "spawn", "--task", "x"]),
        CALL_SECS,
        "cron-like openclaw sessions spawn --task x",
    );
    let key = cron_spawn_ok(&home, "x", &out);

    let out = cron_status(&home);
    assert!(
        out.status.success(),
        "daemon status after autostart: {}",
        stderr(&out)
    );
    let st: DaemonStatus = typed(&json_stdout(&out, "daemon status --json"), "daemon status");
    let pid = st.pid as i32;
    reaper.seen.borrow_mut().push(pid);
    assert_eq!(
        daemons_for_home(&home),
        vec![pid],
        "exactly one openclawd for this home, the one `daemon status` reports"
    );
    let (_, _, _, sid, _) = common::proc_stat(pid).expect("daemon stat");
    // SAFETY: getsid(0) has no preconditions.
    let my_sid = unsafe { libc::getsid(0) };
    assert_ne!(
        sid, my_sid,
        "the autostarted daemon should run in its own session (setsid)"
    );

    let mut hist = cron_cmd(&home, &["sessions", "history", &key, "--json"]);
    hist.env("OPENCLAW_NO_AUTOSTART", "1");
    let out = output_within(&mut hist, CALL_SECS, "openclaw sessions history --json");
    assert!(
        out.status.success(),
        "history of the cron spawn: {}",
        stderr(&out)
    );
    let h: HistoryResult = typed(&json_stdout(&out, "history --json"), "history");
    assert_eq!(
        h.messages.first().map(|m| m.content.clone()),
        Some(Value::from("x"))
    );

    stop_and_check_gone(&home, pid);

    // Two cron jobs at once with no daemon: both succeed, and only one daemon is started.
    let a = cron_cmd(&home, &["sessions", "spawn", "--task", "a"]);
    let b = cron_cmd(&home, &["sessions", "spawn", "--task", "b"]);
    let handles: Vec<_> = [("a", a), ("b", b)]
        .into_iter()
        .map(|(task, mut cmd)| {
            std::thread::spawn(move || {
                (
                    task,
                    output_within(&mut cmd, CALL_SECS, "concurrent cron-like spawn"),
                )
            })
        })
        .collect();
    let mut keys = vec![key];
    for h in handles {
        let (task, out) = h.join().expect("spawn thread");
        keys.push(cron_spawn_ok(&home, task, &out));
    }
    let out = cron_status(&home);
    assert!(
        out.status.success(),
        "daemon status after concurrent autostart: {}",
        stderr(&out)
    );
    let st: DaemonStatus = typed(&json_stdout(&out, "daemon status --json"), "daemon status");
    let pid2 = st.pid as i32;
    reaper.seen.borrow_mut().push(pid2);
    assert_eq!(
        daemons_for_home(&home),
        vec![pid2],
        "two concurrent autostarting spawns must leave exactly one daemon; log:\n{}",
        daemon_log(&home)
    );
    let mut list = cron_cmd(&home, &["sessions", "list", "--json"]);
    list.env("OPENCLAW_NO_AUTOSTART", "1");
    let out = output_within(&mut list, CALL_SECS, "openclaw sessions list --json");
    let l: ListResult = typed(&json_stdout(&out, "sessions list --json"), "list");
    for k in &keys {
        assert!(
            l.sessions.iter().any(|r| &r.key == k),
            "session {k} missing from the restarted daemon's list: {:?}",
            l.sessions.iter().map(|r| &r.key).collect::<Vec<_>>()
        );
    }

    stop_and_check_gone(&home, pid2);
    assert!(
        daemons_for_home(&home).is_empty(),
        "a daemon is left for {}",
        home.display()
    );
}

#[test]
fn task_and_message_from_stdin_and_spawn_wait() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let task = dir.path().join("task.txt");
    std::fs::write(&task, "line one\nline two with \"quotes\" and ünïcode").expect("write");

    let mut cmd = d.cli();
    cmd.args(["sessions", "spawn", "--task", "-", "--wait"])
        .stdin(std::fs::File::open(&task).expect("open"));
    let out = output_within(
        &mut cmd,
        CALL_SECS,
        "openclaw sessions spawn --task - --wait",
    );
    assert!(
        out.status.success(),
        "spawn --task - --wait: {}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&out).trim_end_matches('\n'),
        "line one\nline two with \"quotes\" and ünïcode",
        "spawn --wait prints the reply of the first run (echo of the task read from stdin)"
    );

    let key = ok(&d, &["sessions", "spawn", "--task", "t"]);
    let mut cmd = d.cli();
    cmd.args(["sessions", "send", &key, "-"])
        .stdin(std::fs::File::open(&task).expect("open"));
    let out = output_within(&mut cmd, CALL_SECS, "openclaw sessions send KEY -");
    assert!(out.status.success(), "send KEY -: {}", stderr(&out));
    assert_eq!(
        stdout(&out).trim_end_matches('\n'),
        "line one\nline two with \"quotes\" and ünïcode",
        "send KEY - reads the message from stdin"
    );
    let h = history(&d, &key);
    assert_eq!(
        h.messages.last().map(|m| m.content.clone()),
        Some(Value::from(
            "line one\nline two with \"quotes\" and ünïcode"
        ))
    );
}

#[test]
fn the_data_dir_workspaces_and_attachments_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let d = Daemon::start_in(
        home,
        "[agents.t]\nbackend = \"exec\"\ncommand = [\"true\"]\n",
    );
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "a wider data dir is narrowed");
    let file = d.home_path().join("report.txt");
    std::fs::write(&file, "attached").expect("write");
    let spawned = d.json(&[
        "sessions",
        "spawn",
        "--agent",
        "t",
        "--task",
        "x",
        "--attach",
        file.to_str().expect("path"),
    ]);
    d.ok(&[
        "sessions",
        "wait",
        "--session",
        spawned["sessionKey"].as_str().expect("key"),
    ]);
    let workspace = data
        .join("workspaces")
        .join(spawned["sessionId"].as_str().expect("id"));
    assert_eq!(mode(&workspace), 0o700, "the workspace is private");
    assert_eq!(mode(&data.join("workspaces")), 0o700);
    let receipt = &spawned["attachments"][0];
    assert_eq!(receipt["name"], "report.txt");
    assert_eq!(receipt["bytes"], 8);
    let path = workspace.join(receipt["path"].as_str().expect("path"));
    assert!(
        receipt["path"]
            .as_str()
            .unwrap_or_default()
            .starts_with(".openclaw/attachments/"),
        "{receipt}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("the attachment"),
        "attached"
    );
    assert_eq!(mode(&path), 0o600, "the attachment is private");
    // A refused spawn leaves nothing behind.
    let out = d.run(&[
        "sessions",
        "spawn",
        "--agent",
        "nosuch",
        "--task",
        "x",
        "--attach",
        file.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(4));
    let workspaces = std::fs::read_dir(data.join("workspaces"))
        .expect("workspaces")
        .count();
    assert_eq!(workspaces, 1, "only the accepted spawn has a workspace");
}

/// The README's first command, as written there, with this build's binaries standing in for
/// `target/release` (building is cargo's job, not this test's): a fresh home, autostart, and
/// the transcript followed to its end.
#[test]
fn the_readmes_first_command_runs_as_written() {
    let readme = include_str!("../README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo build --release && "))
        .expect("the README's first command");
    let after_build = line
        .split_once(" && export PATH=\"$PWD/target/release:$PATH\" && ")
        .map(|(_, rest)| rest)
        .expect("the first command puts target/release on PATH");
    let home = tempfile::Builder::new()
        .prefix("openclaw-test-")
        .tempdir()
        .expect("tempdir");
    let bin = std::path::Path::new(common::OPENCLAW)
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", after_build])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", home.path())
        .env("OPENCLAW_HOME", home.path())
        .env("OPENCLAWD", common::OPENCLAWD)
        .stdin(std::process::Stdio::null());
    let out = common::output_within(&mut cmd, 60, "the README's first command");
    let stop = || {
        let mut stop = std::process::Command::new(common::OPENCLAW);
        stop.args(["daemon", "stop"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("OPENCLAW_HOME", home.path());
        common::output_within(&mut stop, 30, "daemon stop")
    };
    let text = stdout(&out);
    let stopped = stop();
    assert!(
        out.status.success(),
        "{:?}\n{text}\n{}",
        out.status,
        common::stderr(&out)
    );
    assert!(stopped.status.success(), "{}", common::stderr(&stopped));
    for want in [
        "#1 user       run the daily report",
        "#2 assistant  run the daily report",
        "#3 user       and the weekly one",
        "#4 assistant  and the weekly one",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
}
