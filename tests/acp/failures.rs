//! Agents broken on purpose: each run ends `error` with a message naming the command, what
//! went wrong and the end of its stderr; the next run starts a fresh process; the daemon
//! serves on. And an agent whose model is unreachable: the run waits, saying why.

use crate::common::{self, stderr, wait_pid_gone};
use crate::{agent_dir, agent_pid, agents_available, json, node_command, ok, row, run, send};

fn broken(id: &str, script: &str, extra: &str) -> String {
    format!(
        "[agents.{id}]\nbackend = \"acp\"\n{}\n{extra}\n",
        node_command(script, &[])
    )
}

/// Spawns a session of `agent` and returns its key and the run's error (stderr of `wait`).
fn failed_run(d: &common::Daemon, agent: &str) -> (String, String) {
    let spawned = json(
        d,
        &[
            "sessions", "spawn", "--agent", agent, "--mode", "session", "--task", "hello",
        ],
    );
    let key = spawned["sessionKey"].as_str().expect("key").to_string();
    let run_id = spawned["runId"].as_str().expect("runId");
    let waited = run(d, &["sessions", "wait", run_id, "--timeout", "50"]);
    assert_eq!(
        waited.status.code(),
        Some(1),
        "{agent}: {}",
        common::describe(&["sessions", "wait", run_id], &waited)
    );
    assert_eq!(row(d, &key)["status"], "error");
    (key, stderr(&waited))
}

/// The daemon still answers, and runs other sessions.
fn serving(d: &common::Daemon) {
    assert_eq!(
        ok(
            d,
            &[
                "sessions",
                "send",
                "agent:echo:main",
                "still here",
                "--timeout",
                "50"
            ]
        ),
        "still here"
    );
    json(d, &["sessions", "list"]);
}

#[test]
fn broken_agents_end_their_runs_with_a_clear_error_and_the_daemon_serves_on() {
    if !agents_available() {
        return;
    }
    let config = [
        broken("exits", "broken/exit-at-once.mjs", ""),
        broken("garbage", "broken/garbage.mjs", ""),
        broken("silent", "broken/silent.mjs", "initialize_timeout_ms = 1500"),
        "[agents.missing]\nbackend = \"acp\"\ncommand = [\"/nonexistent/acp-agent\", \"--stdio\"]\n"
            .to_string(),
        "[agents.echo]\nbackend = \"echo\"\n[limits]\nkill_grace_ms = 300\n".to_string(),
    ]
    .concat();
    let d = common::Daemon::start_with_config(&config);
    let dir = agent_dir().join("broken");
    let command = |script: &str| format!("ACP agent `node {}`", dir.join(script).display());

    let (key, err) = failed_run(&d, "exits");
    assert!(
        err.contains(&format!(
            "{} exited with status 2 during initialize; its stderr ends: exit-at-once: cannot start: no configuration found",
            command("exit-at-once.mjs")
        )),
        "{err}"
    );
    // Every run tries again with a fresh process, and says the same.
    let again = run(&d, &["sessions", "send", &key, "again", "--timeout", "50"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exited with status 2 during initialize"));
    serving(&d);

    let (_, err) = failed_run(&d, "garbage");
    assert!(
        err.contains(&format!(
            "{} wrote something that is not JSON-RPC on stdout during initialize: \"Welcome to BrokenAgent 1.0! Type /help for help.\"; its stderr ends: garbage: starting up",
            command("garbage.mjs")
        )),
        "{err}"
    );
    serving(&d);

    let (_, err) = failed_run(&d, "silent");
    assert!(
        err.contains(&format!(
            "{} did not answer initialize within 1500 ms; its stderr ends: silent: up (pid ",
            command("silent.mjs")
        )),
        "{err}"
    );
    // It ignored SIGTERM and stdin EOF: it was killed all the same.
    let pid: i32 = err
        .split("silent: up (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {err}"));
    assert!(err.contains("silent: ignoring SIGTERM"), "{err}");
    assert!(
        wait_pid_gone(pid, 20),
        "the silent agent {pid} is still running"
    );
    serving(&d);

    let (_, err) = failed_run(&d, "missing");
    assert!(
        err.contains(
            "ACP agent `/nonexistent/acp-agent --stdio` could not be started: No such file or directory"
        ),
        "{err}"
    );
    serving(&d);
}

#[test]
fn an_agent_that_dies_mid_turn_fails_that_run_and_the_next_run_starts_afresh() {
    if !agents_available() {
        return;
    }
    let d = crate::daemon("", "[agents.echo]\nbackend = \"echo\"\n");
    let (key, _) = crate::session(&d, "t", "chunks 1");
    let pid = agent_pid(&d, &key);
    let out = run(&d, &["sessions", "send", &key, "die", "--timeout", "50"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "ACP agent `node {}` exited with status 7 during session/prompt; its stderr ends: test agent: dying on purpose",
            agent_dir().join("agent.mjs").display()
        )),
        "{err}"
    );
    assert!(wait_pid_gone(pid, 20));
    serving(&d);
    // The next run: a new process, which loads the session (the dead turn never saved).
    let new_pid = agent_pid(&d, &key);
    assert_ne!(new_pid, pid);
    let reply = send(&d, &key, "history");
    assert!(
        reply.starts_with("history: user=chunks 1 | agent=c1  | user=pid"),
        "{reply}"
    );
}

#[test]
fn a_kill_while_the_agent_starts_does_not_wait_for_the_initialize_deadline() {
    if !agents_available() {
        return;
    }
    // Deadlines far past the kill command's own: only a start that is abandoned at once
    // lets the kill return in time.
    let config = format!(
        "{}[limits]\nkill_grace_ms = 120000\n",
        broken(
            "silent",
            "broken/silent.mjs",
            "initialize_timeout_ms = 120000"
        )
    );
    let d = common::Daemon::start_with_config(&config);
    let spawned = json(
        &d,
        &["sessions", "spawn", "--agent", "silent", "--task", "hello"],
    );
    let key = spawned["sessionKey"].as_str().expect("key");
    let session_id = spawned["sessionId"].as_str().expect("sessionId");
    let pid_file = d
        .home_path()
        .join("data/workspaces")
        .join(session_id)
        .join("silent.pid");
    let mut pid = 0;
    crate::wait_until("the silent agent is up", || {
        pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    let killed = common::output_within(
        d.cli().args(["sessions", "kill", key]),
        45,
        "sessions kill of a starting agent",
    );
    assert!(killed.status.success(), "{}", stderr(&killed));
    assert!(
        wait_pid_gone(pid, 20),
        "the starting agent {pid} is still running"
    );
    assert_eq!(row(&d, key)["status"], "aborted");
    let run_id = spawned["runId"].as_str().expect("runId");
    let notes: Vec<String> = crate::history(&d, key)
        .into_iter()
        .filter(|m| m["runId"] == run_id && m["role"] == "system")
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n == "acp: stopped while the agent was starting; no prompt was sent"),
        "{notes:?}"
    );
}

#[test]
fn a_refused_prompt_fails_its_run_the_process_stays_and_idle_time_still_stops_it() {
    if !agents_available() {
        return;
    }
    let d =
        common::Daemon::start_with_config(&crate::sdk_agent("t", &[], "idle_timeout_seconds = 2"));
    let (key, _) = crate::session(&d, "t", "chunks 1");
    let pid = agent_pid(&d, &key);
    let out = run(&d, &["sessions", "send", &key, "auth", "--timeout", "50"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "answered session/prompt with error -32000: Authentication required: log in first"
        ),
        "{err}"
    );
    assert!(crate::alive(pid), "a refusal does not stop the agent");
    // No turn after the refusal: idle time must still end the process.
    assert!(
        wait_pid_gone(pid, 30),
        "agent {pid} outlived its idle timeout"
    );
}

#[test]
fn an_agent_retrying_its_model_says_so_once_in_the_transcript() {
    if !agents_available() {
        return;
    }
    let d = crate::daemon("", "");
    let (key, _) = crate::session(&d, "t", "chunks 1");
    // Three `_session/retrying` in the turn (mistral-vibe sends one every few seconds while
    // its model server is down): one note, not one per retry, and the turn goes on.
    assert_eq!(send(&d, &key, "retrying"), "answered at last");
    let notes: Vec<String> = crate::history(&d, &key)
        .into_iter()
        .filter(|m| m["role"] == "system")
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .filter(|n| n.contains("retrying"))
        .collect();
    assert_eq!(
        notes,
        [
            "acp: the agent is retrying its model request (connection: ConnectError); the run goes on until it answers, is killed or times out"
        ],
    );
    // Another turn that retries is told again.
    assert_eq!(send(&d, &key, "retrying"), "answered at last");
    let count = crate::history(&d, &key)
        .iter()
        .filter(|m| {
            m["role"] == "system"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("retrying"))
        })
        .count();
    assert_eq!(count, 2);
}
