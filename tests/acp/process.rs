//! The agent process of a session: cancelled and stopped on kill and run timeout, kept
//! between turns, stopped when idle, and its ACP session loaded by the next process (after
//! idle time or a daemon restart).

use crate::common::{self, stderr, wait_pid_gone};
use crate::{
    agent_pid, agents_available, alive, daemon, follower, history, json, ok, row, run, sdk_agent,
    send, session,
};

/// Starts `slow` on `key` and returns its run id once the agent is streaming it.
fn start_slow(d: &common::Daemon, key: &str, prompt: &str) -> String {
    let mut f = follower(d, &[key, "--events", "assistant"]);
    crate::attach(d, key, &mut f);
    let run_id = ok(d, &["sessions", "send", key, prompt, "--no-wait"]);
    f.wait_line(30, |l| l.contains(&run_id) && l.contains("tick2"));
    run_id
}

fn system_notes(d: &common::Daemon, key: &str, run_id: &str) -> Vec<String> {
    history(d, key)
        .into_iter()
        .filter(|m| m["runId"] == run_id && m["role"] == "system")
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn kill_cancels_the_prompt_which_ends_aborted_and_the_agent_process_is_gone() {
    if !agents_available() {
        return;
    }
    // A grace longer than the kill command's deadline: the kill can only return in time if
    // the agent ended the prompt on `session/cancel`, not because its process was killed.
    let d = daemon("", "[limits]\nkill_grace_ms = 120000\n");
    let (key, _) = session(&d, "t", "chunks 1");
    let pid = agent_pid(&d, &key);
    let run_id = start_slow(&d, &key, "slow");

    let killed = common::output_within(
        d.cli().args(["sessions", "kill", &key]),
        45,
        "sessions kill (within the grace period)",
    );
    assert!(killed.status.success(), "{}", stderr(&killed));
    assert_eq!(common::stdout(&killed).trim(), run_id);
    assert!(
        wait_pid_gone(pid, 20),
        "the agent process {pid} is still there"
    );

    let waited = run(&d, &["sessions", "wait", &run_id]);
    assert_eq!(waited.status.code(), Some(1));
    assert!(
        stderr(&waited).contains("aborted: killed by `sessions kill`"),
        "{}",
        stderr(&waited)
    );
    assert_eq!(row(&d, &key)["status"], "aborted");
    assert_eq!(
        system_notes(&d, &key, &run_id)[0],
        "acp: cancelled; the agent ended the prompt and its process was stopped"
    );

    // The next run starts a new process and goes on with the same ACP session.
    let reply = send(&d, &key, "history");
    assert!(reply.contains("user=chunks 1"), "{reply}");
    assert!(reply.contains("[cancel received]"), "{reply}");
    assert_ne!(agent_pid(&d, &key), pid);
}

#[test]
fn kill_of_an_agent_that_ignores_sigterm_ends_it_and_an_end_turn_answer_is_still_aborted() {
    if !agents_available() {
        return;
    }
    let config = format!(
        "{}{}[limits]\nkill_grace_ms = 300\n",
        sdk_agent("stubborn", &["--ignore-term"], ""),
        sdk_agent("opencodeish", &[], ""),
    );
    let d = common::Daemon::start_with_config(&config);

    let (key, _) = session(&d, "stubborn", "chunks 1");
    let pid = agent_pid(&d, &key);
    let run_id = start_slow(&d, &key, "slow");
    ok(&d, &["sessions", "kill", &key]);
    assert!(wait_pid_gone(pid, 20), "{pid} survived SIGTERM and SIGKILL");
    assert!(
        common::live_group_members(pid).is_empty(),
        "its group is gone too"
    );
    assert_eq!(row(&d, &key)["status"], "aborted");
    assert!(!system_notes(&d, &key, &run_id).is_empty());

    // An agent that answers the cancel with end_turn (opencode does): still aborted.
    let (key, _) = session(&d, "opencodeish", "chunks 1");
    let pid = agent_pid(&d, &key);
    let run_id = start_slow(&d, &key, "slow-endturn");
    ok(&d, &["sessions", "kill", &key]);
    assert!(wait_pid_gone(pid, 20));
    let waited = run(&d, &["sessions", "wait", &run_id]);
    assert!(stderr(&waited).contains("aborted"), "{}", stderr(&waited));
}

#[test]
fn a_run_timeout_cancels_the_prompt_and_ends_timeout() {
    if !agents_available() {
        return;
    }
    let d = daemon("", "");
    // Only a spawn takes a run timeout, so it covers the agent's start too. A timeout that
    // fires while the agent is starting stops the start, with no prompt to cancel: the limit
    // leaves a loaded machine's Node start (seconds) well inside it.
    let spawned = json(
        &d,
        &[
            "sessions",
            "spawn",
            "--agent",
            "t",
            "--task",
            "slow",
            "--timeout",
            "8",
        ],
    );
    let run_id = spawned["runId"].as_str().expect("runId");
    let key = spawned["sessionKey"].as_str().expect("key");
    let waited = run(&d, &["sessions", "wait", run_id, "--timeout", "50"]);
    assert_eq!(waited.status.code(), Some(1));
    assert!(stderr(&waited).contains("timeout"), "{}", stderr(&waited));
    assert_eq!(row(&d, key)["status"], "timeout");
    let notes = system_notes(&d, key, run_id);
    assert!(
        notes.iter().any(|n| n.starts_with("acp: cancelled")),
        "no cancel note (did the agent take over 8 s to start?): {notes:?}"
    );
}

#[test]
fn a_second_run_reuses_the_agent_process_and_its_acp_session() {
    if !agents_available() {
        return;
    }
    let d = daemon("", "");
    let (key, first) = session(&d, "t", "chunks 2");
    assert_eq!(first, "c1 c2 ");
    let pid = agent_pid(&d, &key);
    assert_eq!(agent_pid(&d, &key), pid, "the same process");
    let reply = send(&d, &key, "history");
    assert_eq!(
        reply,
        format!(
            "history: user=chunks 2 | agent=c1 c2  | user=pid | agent=pid {pid} | user=pid | agent=pid {pid}"
        )
    );
    let acp_id = row(&d, &key)["agentSessionId"]
        .as_str()
        .expect("agentSessionId recorded")
        .to_string();
    assert!(acp_id.starts_with(&format!("test-{pid}-")), "{acp_id}");

    // Another session has a process of its own.
    let (other, _) = session(&d, "t", "chunks 1");
    let other_pid = agent_pid(&d, &other);
    assert_ne!(other_pid, pid);
    assert!(alive(pid) && alive(other_pid));

    // Deleting a session stops its process; the other one's stays.
    ok(&d, &["sessions", "delete", &other]);
    assert!(wait_pid_gone(other_pid, 20));
    assert_eq!(agent_pid(&d, &key), pid);
}

#[test]
fn an_idle_process_is_stopped_and_the_next_run_loads_its_acp_session() {
    if !agents_available() {
        return;
    }
    let config = format!(
        "{}{}",
        sdk_agent(
            "t",
            &[],
            "permissions = \"approve-all\"\nidle_timeout_seconds = 1"
        ),
        sdk_agent("noload", &["--no-load"], "idle_timeout_seconds = 1"),
    );
    let d = common::Daemon::start_with_config(&config);
    let (key, _) = session(&d, "t", "chunks 2");
    let acp_id = row(&d, &key)["agentSessionId"].clone();
    let pid = agent_pid(&d, &key);
    assert!(wait_pid_gone(pid, 30), "idle agent {pid} was never stopped");

    let sent = json(
        &d,
        &["sessions", "send", &key, "history", "--timeout", "50"],
    );
    assert_eq!(
        sent["reply"],
        format!("history: user=chunks 2 | agent=c1 c2  | user=pid | agent=pid {pid}"),
        "the new process loaded the session"
    );
    let run_id = sent["runId"].as_str().expect("runId");
    assert!(
        system_notes(&d, &key, run_id).is_empty(),
        "a load that worked needs no note"
    );
    assert_eq!(row(&d, &key)["agentSessionId"], acp_id);
    // Load replays the history as updates: none of it lands in the transcript again.
    let turn: Vec<_> = history(&d, &key)
        .into_iter()
        .filter(|m| m["runId"] == run_id)
        .collect();
    assert_eq!(turn.len(), 2, "{turn:#?}");
    let new_pid = agent_pid(&d, &key);
    assert_ne!(new_pid, pid);

    // An agent that cannot load starts a new ACP session, and the transcript says so.
    let (key, _) = session(&d, "noload", "chunks 1");
    let pid = agent_pid(&d, &key);
    assert!(wait_pid_gone(pid, 30));
    let sent = json(
        &d,
        &["sessions", "send", &key, "history", "--timeout", "50"],
    );
    assert_eq!(sent["reply"], "history: ");
    let notes = system_notes(&d, &key, sent["runId"].as_str().expect("runId"));
    assert_eq!(
        notes,
        [
            "acp: the agent cannot load sessions (no loadSession capability); started a new ACP session"
        ]
    );
}

#[test]
fn after_a_daemon_restart_the_next_run_loads_the_earlier_acp_session() {
    if !agents_available() {
        return;
    }
    let mut d = daemon("", "");
    let (key, _) = session(&d, "t", "chunks 2");
    let acp_id = row(&d, &key)["agentSessionId"].clone();
    let pid = agent_pid(&d, &key);

    // kill -9: the agent dies with the daemon (nobody would drive it).
    d.restart();
    assert!(wait_pid_gone(pid, 20), "agent {pid} outlived its daemon");
    let reply = send(&d, &key, "history");
    assert_eq!(
        reply,
        format!("history: user=chunks 2 | agent=c1 c2  | user=pid | agent=pid {pid}")
    );
    assert_eq!(row(&d, &key)["agentSessionId"], acp_id);

    // A clean stop stops the agent; the next daemon loads the session again.
    let pid = agent_pid(&d, &key);
    let before = history(&d, &key).len();
    assert!(d.stop().is_some_and(|s| s.success()));
    assert!(wait_pid_gone(pid, 20), "agent {pid} outlived a clean stop");
    d.spawn_daemon().expect("restart");
    let reply = send(&d, &key, "history");
    assert!(
        reply.ends_with(&format!("user=pid | agent=pid {pid}")),
        "{reply}"
    );
    assert!(reply.starts_with("history: user=chunks 2 | agent=c1 c2  |"));
    assert_eq!(
        history(&d, &key).len(),
        before + 2,
        "the replay is not stored"
    );
}
