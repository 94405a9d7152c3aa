//! Live sessions through the real `openclaw` binary (issue 3): `send --stream` (JSON lines,
//! human form, timeout), `follow --until-done` exit codes for ok, failed, timed-out and killed
//! runs, `follow | head -n 3`, and follow ending on delete and on daemon shutdown. Raw-socket
//! tests of the same feature are in tests/live.rs.

mod common;

use std::path::Path;
use std::process::Output;

use common::{
    Daemon, FifoGate, JSONL_SCRIPT, LineChild, RawConn, describe, output_within, stderr, stdout,
    steps,
};
use serde_json::{Value, json};

const CALL_SECS: u64 = 20;

// ------------------------------------------------------------------ helpers

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A config with an exec agent `id` running `sh -c SCRIPT` with this stdout format.
fn exec_agent(id: &str, script: &str, format: &str) -> String {
    format!(
        "[agents.{id}]\nbackend = \"exec\"\nformat = \"{format}\"\ncommand = [\"sh\", \"-c\", {}]\n",
        toml_str(script)
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("openclaw-live-cli-")
        .tempdir()
        .expect("tempdir")
}

fn run(d: &Daemon, args: &[&str]) -> Output {
    output_within(
        d.cli().args(args),
        CALL_SECS,
        &format!("openclaw {}", args.join(" ")),
    )
}

fn expect_exit(d: &Daemon, args: &[&str], code: i32) -> Output {
    let out = run(d, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{}",
        describe(args, &out)
    );
    out
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    stdout(&expect_exit(d, args, 0))
        .trim_end_matches('\n')
        .to_string()
}

/// Every stdout line parsed as one JSON object.
fn json_lines(out: &Output, what: &str) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| {
                panic!(
                    "{what}: a stdout line is not JSON ({e}): {l:?}\nstdout:\n{}",
                    stdout(out)
                )
            })
        })
        .collect()
}

/// A raw call on a fresh connection (asserts success).
fn call(d: &Daemon, method: &str, params: Value) -> Value {
    RawConn::connect(&d.socket()).call_ok(method, params)
}

/// The daemon answers and still serves history of `key` with `count` messages.
fn assert_daemon_unharmed(d: &mut Daemon, key: &str, count: usize) {
    let child = d.child.as_mut().expect("daemon handle");
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the daemon exited: {:?}",
        child.try_wait()
    );
    call(d, "hello", json!({}));
    let h = call(d, "sessions.history", json!({"sessionKey": key}));
    assert_eq!(
        h["messages"].as_array().map(Vec::len),
        Some(count),
        "history of {key}: {h}"
    );
}

// ------------------------------------------------------------------ send --stream

/// A daemon whose default agent is the jsonl agent of `JSONL_SCRIPT`.
fn jsonl_daemon() -> Daemon {
    Daemon::start_with_config(&format!(
        "default_agent = \"main\"\n\n{}",
        exec_agent("main", JSONL_SCRIPT, "jsonl")
    ))
}

#[test]
fn send_stream_json_prints_each_run_event_then_the_result() {
    let d = jsonl_daemon();
    let args = ["sessions", "send", "main", "go", "--stream", "--json"];
    let out = expect_exit(&d, &args, 0);
    let lines = json_lines(&out, "send --stream --json");
    let (result, events) = lines
        .split_last()
        .unwrap_or_else(|| panic!("no output:\n{}", describe(&args, &out)));
    assert_eq!(
        result["status"],
        "ok",
        "the last line is the RunResult:\n{}",
        describe(&args, &out)
    );
    assert_eq!(result["reply"], "hello", "{result}");
    let run_id = result["runId"].as_str().expect("runId");
    for ev in events {
        assert_eq!(
            ev["event"], "run.event",
            "each line before the result is a run.event (params + event): {ev}"
        );
        assert_eq!(ev["runId"], run_id, "{ev}");
        assert_eq!(ev["subscription"], format!("run:{run_id}"), "{ev}");
    }
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "per-run seq increases: {seqs:?}"
    );
    assert_eq!(
        steps(events),
        [
            "lifecycle:started",
            "assistant:hel",
            "tool:start:t1:grep:{}",
            "tool:end:t1:x:ok",
            "assistant:lo",
            "lifecycle:ended:ok",
        ],
        "event lines in order:\n{}",
        describe(&args, &out)
    );
}

#[test]
fn send_stream_human_prints_the_text_and_a_line_per_tool_call() {
    let d = jsonl_daemon();
    let args = ["sessions", "send", "main", "go", "--stream"];
    let out = expect_exit(&d, &args, 0);
    assert_eq!(
        stdout(&out),
        "hello\n",
        "assistant text as it streams, then a newline:\n{}",
        describe(&args, &out)
    );
    assert!(
        stderr(&out).lines().any(|l| l.contains("grep")),
        "one line per tool call on stderr (`tool grep … ok`):\n{}",
        describe(&args, &out)
    );
}

#[test]
fn send_stream_streams_before_the_end_and_on_timeout_exits_124_saying_how_to_follow() {
    let dir = tempdir();
    let mut gate = FifoGate::new(dir.path(), "go");
    let script = format!(
        "cat >/dev/null; echo first; read x < '{}'; echo second",
        gate.path.display()
    );
    let d = Daemon::start_with_config(&format!(
        "default_agent = \"main\"\n\n{}",
        exec_agent("main", &script, "text")
    ));
    // The agent prints `first` and blocks until released: the text is on stdout while the
    // run still goes on, then the 1 s wait ends.
    let mut send = LineChild::spawn(
        d.cli().args([
            "sessions",
            "send",
            "main",
            "go",
            "--stream",
            "--timeout",
            "1",
        ]),
        "openclaw sessions send main go --stream --timeout 1",
    );
    let first = send.wait_line(CALL_SECS, |l| !l.trim().is_empty());
    assert!(
        first.contains("first"),
        "the first streamed text: {first:?}"
    );
    let (status, lines, err) = send.finish(CALL_SECS);
    assert_eq!(
        status.code(),
        Some(124),
        "the wait timed out: exit 124\nstdout: {lines:?}\nstderr: {err}"
    );
    assert!(
        err.contains("openclaw sessions follow") || err.contains("openclaw sessions wait"),
        "on timeout stderr says the run continues and how to keep following:\n{err}"
    );
    // The run went on; it finishes once released.
    gate.release();
    let runs = call(&d, "sessions.history", json!({"sessionKey": "main"}));
    let run_id = runs["messages"][0]["runId"]
        .as_str()
        .expect("runId of the user message")
        .to_string();
    let w = call(
        &d,
        "runs.wait",
        json!({"runId": run_id, "timeoutSeconds": CALL_SECS}),
    );
    assert_eq!(
        w["status"], "ok",
        "the run continued after the CLI's wait ended: {w}"
    );
    assert_eq!(w["reply"], "first\nsecond", "{w}");
}

// ------------------------------------------------------------------ follow --until-done

/// An exec agent `blocker`: the task names a FIFO in `dir` it waits on; a task starting with
/// `fail` then exits 3, others print `done:TASK`.
fn blocker_daemon(dir: &Path) -> Daemon {
    let script = format!(
        "msg=$(cat); read x < '{}'/\"$msg\"; case \"$msg\" in fail*) echo boom >&2; exit 3;; esac; echo \"done:$msg\"",
        dir.display()
    );
    Daemon::start_with_config(&exec_agent("blocker", &script, "text"))
}

/// Spawns a `blocker` session for `task`; returns (key, runId).
fn spawn_blocked(d: &Daemon, task: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "sessions", "spawn", "--task", task, "--agent", "blocker", "--json",
    ];
    args.extend_from_slice(extra);
    let out = expect_exit(d, &args, 0);
    let v: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("spawn --json ({e}):\n{}", describe(&args, &out)));
    (
        v["sessionKey"].as_str().expect("sessionKey").to_string(),
        v["runId"].as_str().expect("runId").to_string(),
    )
}

/// Starts `follow KEY --from-start --until-done` and waits until it has printed the task line
/// (so it is subscribed and caught up).
fn follow_until_done(d: &Daemon, key: &str, task: &str) -> LineChild {
    let what = format!("openclaw sessions follow {key} --from-start --until-done");
    let mut f = LineChild::spawn(
        d.cli()
            .args(["sessions", "follow", key, "--from-start", "--until-done"]),
        &what,
    );
    f.wait_line(CALL_SECS, |l| l.contains(task));
    f
}

fn assert_follow_exit(f: &mut LineChild, code: i32, case: &str) -> Vec<String> {
    let (status, lines, err) = f.finish(CALL_SECS);
    assert_eq!(
        status.code(),
        Some(code),
        "follow --until-done of a run that {case}: expected exit {code}\nstdout: {lines:?}\nstderr: {err}"
    );
    lines
}

fn run_status(d: &Daemon, run_id: &str) -> String {
    let w = call(
        d,
        "runs.wait",
        json!({"runId": run_id, "timeoutSeconds": CALL_SECS}),
    );
    w["runStatus"].as_str().unwrap_or("").to_string()
}

#[test]
fn follow_until_done_exits_0_when_the_run_ends_ok() {
    let dir = tempdir();
    let d = blocker_daemon(dir.path());
    let mut gate = FifoGate::new(dir.path(), "case-ok");
    let (key, run_id) = spawn_blocked(&d, "case-ok", &[]);
    let mut f = follow_until_done(&d, &key, "case-ok");
    gate.release();
    let lines = assert_follow_exit(&mut f, 0, "ends ok");
    assert!(
        lines.iter().any(|l| l.contains("done:case-ok")),
        "the reply is printed before exiting: {lines:?}"
    );
    assert_eq!(run_status(&d, &run_id), "ok");
    // No active run any more: exits after catch-up with the last run's code.
    expect_exit(&d, &["sessions", "follow", &key, "--until-done"], 0);
}

#[test]
fn follow_until_done_exits_1_when_the_run_fails() {
    let dir = tempdir();
    let d = blocker_daemon(dir.path());
    let mut gate = FifoGate::new(dir.path(), "fail-case");
    let (key, run_id) = spawn_blocked(&d, "fail-case", &[]);
    let mut f = follow_until_done(&d, &key, "fail-case");
    gate.release(); // the agent then exits 3
    assert_follow_exit(&mut f, 1, "fails (exit 3)");
    assert_eq!(run_status(&d, &run_id), "error");
    // No active run any more: the last run's outcome decides.
    expect_exit(&d, &["sessions", "follow", &key, "--until-done"], 1);
}

#[test]
fn follow_until_done_exits_1_when_the_run_times_out() {
    let dir = tempdir();
    let d = blocker_daemon(dir.path());
    let _gate = FifoGate::new(dir.path(), "case-timeout"); // never released: the run times out
    let (key, run_id) = spawn_blocked(&d, "case-timeout", &["--timeout", "1"]);
    let mut f = follow_until_done(&d, &key, "case-timeout");
    assert_follow_exit(&mut f, 1, "times out (spawn --timeout 1)");
    assert_eq!(run_status(&d, &run_id), "timeout");
}

#[test]
fn follow_until_done_exits_1_when_the_run_is_killed() {
    let dir = tempdir();
    let d = blocker_daemon(dir.path());
    let _gate = FifoGate::new(dir.path(), "case-kill"); // never released: the run is killed
    let (key, run_id) = spawn_blocked(&d, "case-kill", &[]);
    let mut f = follow_until_done(&d, &key, "case-kill");
    ok(&d, &["sessions", "kill", &key]);
    assert_follow_exit(&mut f, 1, "is killed by `openclaw sessions kill`");
    assert_eq!(run_status(&d, &run_id), "aborted");
}

// ------------------------------------------------------------------ follow and its consumers

#[test]
fn follow_piped_into_head_exits_promptly_with_0_and_leaves_the_daemon_unharmed() {
    let mut d = Daemon::start();
    ok(&d, &["sessions", "send", "main", "alpha"]);
    ok(&d, &["sessions", "send", "main", "beta"]);
    let dir = tempdir();
    let status_file = dir.path().join("follow-status");
    // sh's own status is head's; the follow's exit status is written to a file.
    let script = format!(
        "{{ \"$OPENCLAW_BIN\" sessions follow main --from-start; echo $? > '{}'; }} | head -n 3",
        status_file.display()
    );
    let out = output_within(
        &mut d.sh(&script),
        CALL_SECS,
        "openclaw sessions follow main --from-start | head -n 3",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "sh -c {script:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let follow_status = std::fs::read_to_string(&status_file).unwrap_or_default();
    assert_eq!(
        follow_status.trim(),
        "0",
        "follow exits 0 once its stdout is closed\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).trim().is_empty(),
        "a closed stdout is not an error: stderr {:?}",
        stderr(&out)
    );
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "head -n 3: {lines:?}");
    for (line, want) in lines.iter().zip(["alpha", "alpha", "beta"]) {
        assert!(
            line.contains(want),
            "transcript lines in seq order (alpha, its reply, beta): {lines:?}"
        );
    }
    assert_daemon_unharmed(&mut d, "main", 4);
}

#[test]
fn deleting_a_followed_session_makes_follow_exit_4() {
    let d = Daemon::start();
    let key = ok(&d, &["sessions", "spawn", "--task", "short lived"]);
    let run =
        call(&d, "sessions.history", json!({"sessionKey": key}))["messages"][0]["runId"].clone();
    call(
        &d,
        "runs.wait",
        json!({"runId": run, "timeoutSeconds": CALL_SECS}),
    );
    let what = format!("openclaw sessions follow {key} --from-start");
    let mut f = LineChild::spawn(
        d.cli().args(["sessions", "follow", &key, "--from-start"]),
        &what,
    );
    f.wait_line(CALL_SECS, |l| l.contains("short lived"));
    ok(&d, &["sessions", "delete", &key]);
    let (status, lines, err) = f.finish(CALL_SECS);
    assert_eq!(
        status.code(),
        Some(4),
        "follow of a deleted session: exit 4\nstdout: {lines:?}\nstderr: {err}"
    );
    assert!(!err.trim().is_empty(), "stderr notes the deletion");
}

#[test]
fn daemon_shutdown_ends_follow_with_exit_3_and_a_message() {
    let mut d = Daemon::start();
    ok(&d, &["sessions", "send", "main", "alpha"]);
    let mut f = LineChild::spawn(
        d.cli().args(["sessions", "follow", "main", "--from-start"]),
        "openclaw sessions follow main --from-start",
    );
    f.wait_line(CALL_SECS, |l| l.contains("alpha"));
    let status = d.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "openclawd did not stop cleanly: {status:?}"
    );
    let (status, lines, err) = f.finish(CALL_SECS);
    assert_eq!(
        status.code(),
        Some(3),
        "follow when the daemon stops: exit 3\nstdout: {lines:?}\nstderr: {err}"
    );
    assert!(
        !err.trim().is_empty(),
        "stderr says the connection to the daemon was lost"
    );
}
