//! Agent processes never outlive what they belong to: a run's group after `kill -9` of the
//! daemon (stopped when it starts again, and the interrupted run says so), and processes that
//! leave their run's group with `setsid` (killed with the run, even when they hold its output
//! open).

mod common;

use std::time::Duration;

use common::{Daemon, fifo, fifo_read_within, wait_pid_gone};
use serde_json::json;

/// An agent that reports the pid of a process it started into `report`, then runs `rest`.
fn config(report: &std::path::Path, start: &str, rest: &str) -> String {
    let script = format!("{start} echo $! > {}; {rest}", report.display());
    format!(
        "[agents.a]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", {}]\n[limits]\nkill_grace_ms = 200\n",
        serde_json::to_string(&script).expect("json string")
    )
}

fn pid_from(report: &std::path::Path) -> i32 {
    fifo_read_within(report, Duration::from_secs(20))
        .expect("the agent reports its child's pid")
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn a_runs_processes_are_stopped_when_the_daemon_starts_again_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = fifo(dir.path(), "pid");
    // `sleep` is a member of the run's group: PDEATHSIG reaches only `sh`.
    let mut d = Daemon::start_with_config(&config(&report, "sleep 300 &", "wait"));
    let key = d.ok(&["sessions", "spawn", "--agent", "a", "--task", "t"]);
    let sleeper = pid_from(&report);
    // The run's start is stored unawaited, queued before its process starts; a durable write
    // after the pid arrived is committed after it, so the store knows the run was running
    // (else a restart would find it queued and run it again, which is right, but not this test).
    d.ok(&["sessions", "patch", &key, "--send-policy", "allow"]);
    d.kill9();
    assert!(
        !wait_pid_gone(sleeper, 1),
        "the test needs the group member to outlive the daemon (it did not: nothing to check)"
    );
    d.spawn_daemon().expect("restart");
    assert!(
        wait_pid_gone(sleeper, 20),
        "pid {sleeper} of the interrupted run survived the daemon's restart"
    );
    let history = d.json(&["sessions", "history", &key]);
    let last = history["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["role"], "system", "{history}");
    let text = last["content"].as_str().unwrap_or_default();
    assert!(
        text.contains("interrupted") && text.contains(&format!("pid {sleeper}")),
        "the interrupted run says what was stopped: {text}"
    );
}

/// Runs an agent that starts `escape` (which leaves the run's group, keeping its stdout open)
/// and then prints `done`: the run must end with its reply, and the escapee with it.
fn escapee_ends_with_its_run(escape: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = fifo(dir.path(), "pid");
    let d = Daemon::start_with_config(&config(&report, escape, "echo done"));
    let mut c = common::RawConn::connect(&d.socket());
    let spawned = c.call_ok("sessions.spawn", json!({"task": "t", "agentId": "a"}));
    let escapee = pid_from(&report);
    let ended = c.call_ok(
        "runs.wait",
        json!({"runId": spawned["runId"], "timeoutSeconds": 20}),
    );
    assert_eq!(ended["status"], "ok", "{ended}");
    assert_eq!(ended["reply"], "done");
    assert!(
        wait_pid_gone(escapee, 10),
        "the process {escapee} that left its group (`{escape}`) outlived its run"
    );
}

#[test]
fn a_process_that_left_its_group_ends_with_its_run_even_holding_its_output() {
    // The escapee keeps the run's stdout open: without the sweep the run never ends.
    escapee_ends_with_its_run("setsid sleep 300 &");
}

#[test]
fn a_process_that_leaves_its_group_after_the_leader_exited_ends_with_its_run() {
    // The background process is still in the group when the shell exits, and leaves it only
    // once the shell is gone (reaped by the daemon), holding the run's stdout: no sweep at the
    // leader's exit can find it, so the run would hang until it ended.
    // The shell's pid goes in as an argument: `$PPID` would name the daemon if the child
    // started after the shell had gone.
    escapee_ends_with_its_run(
        "sh -c 'while kill -0 $0 2>/dev/null; do sleep 0.01; done; exec setsid sleep 300' $$ &",
    );
}

#[test]
fn kill_stops_a_process_that_left_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = fifo(dir.path(), "pid");
    let d = Daemon::start_with_config(&config(&report, "setsid sleep 300 &", "sleep 300"));
    let key = d.ok(&["sessions", "spawn", "--agent", "a", "--task", "t"]);
    let escapee = pid_from(&report);
    d.ok(&["sessions", "kill", &key]);
    assert!(
        wait_pid_gone(escapee, 10),
        "the setsid'd process {escapee} survived the kill of its run"
    );
}
