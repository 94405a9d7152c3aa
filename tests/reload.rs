//! Config changes without a restart: `daemon.reload` (and SIGHUP) put a new config.toml in
//! force for new runs, leave running runs alone, and keep the old config when the new one is
//! bad; `daemon.shutdown` with drain lets running runs finish; agents get their env files and
//! not the variables of whoever started the daemon.

mod common;

use std::time::Duration;

use common::{Daemon, RawConn, fifo, fifo_write_within, wait_child};
use serde_json::json;

fn blocking_agent(gate: &std::path::Path) -> String {
    format!(
        "[agents.block]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"cat {} >/dev/null; echo released\"]\n",
        gate.display()
    )
}

#[test]
fn reload_adds_an_agent_leaves_a_running_run_alone_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = fifo(dir.path(), "gate");
    let d = Daemon::start_with_config(&blocking_agent(&gate));
    let mut c = RawConn::connect(&d.socket());
    let running = c.call_ok("sessions.spawn", json!({"task": "t", "agentId": "block"}));
    let before = d.run(&["sessions", "spawn", "--agent", "worker", "--task", "x"]);
    assert_eq!(before.status.code(), Some(4));
    let config = d.home_path().join("config.toml");
    let added = format!(
        "{}[agents.worker]\nbackend = \"exec\"\ncommand = [\"tr\", \"a-z\", \"A-Z\"]\n",
        blocking_agent(&gate)
    );
    std::fs::write(&config, &added).expect("write config");
    // Before the reload, the error says the file changed since it was loaded.
    let out = d.run(&["sessions", "spawn", "--agent", "worker", "--task", "x"]);
    assert!(
        common::stderr(&out).contains("openclaw daemon reload"),
        "{}",
        common::stderr(&out)
    );
    let r = c.call_ok("daemon.reload", json!({}));
    assert_eq!(r["changed"], json!(["agents.worker: added (exec)"]), "{r}");
    let reply = c.call_ok(
        "sessions.send",
        json!({"sessionKey": "agent:worker:main", "message": "hi", "timeoutSeconds": 20}),
    );
    assert_eq!(reply["reply"], "HI");
    // A bad file: an error naming file, line and key; the old config stays in force.
    std::fs::write(&config, format!("{added}[lanes]\nmain = \"eight\"\n")).expect("write");
    let bad = c.call(9, "daemon.reload", json!({}));
    let msg = bad["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("config.toml")
            && msg.contains("lanes")
            && msg.contains("keeps the configuration"),
        "{bad}"
    );
    let again = c.call_ok(
        "sessions.send",
        json!({"sessionKey": "agent:worker:main", "message": "still", "timeoutSeconds": 20}),
    );
    assert_eq!(again["reply"], "STILL");
    // The run that was going all along ends as it would have.
    fifo_write_within(&gate, "go", Duration::from_secs(10)).expect("release the run");
    let ended = c.call_ok(
        "runs.wait",
        json!({"runId": running["runId"], "timeoutSeconds": 20}),
    );
    assert_eq!(ended["reply"], "released", "{ended}");
}

#[test]
fn sighup_reloads_instead_of_killing_the_daemon() {
    let d = Daemon::start();
    let config = d.home_path().join("config.toml");
    std::fs::write(
        &config,
        "[agents.up]\nbackend = \"exec\"\ncommand = [\"tr\", \"a-z\", \"A-Z\"]\n",
    )
    .expect("write");
    let mut events = RawConn::connect(&d.socket());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    // The daemon is still there, and the agent came in: a send waits for it.
    let mut c = RawConn::connect(&d.socket());
    let mut ok = false;
    let deadline = common::deadline(20);
    while std::time::Instant::now() < deadline {
        let r = c.call(1, "agents.list", json!({}));
        if r["result"]["agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == "up"))
        {
            ok = true;
            break;
        }
        // Each hello is a round trip: the signal is handled between them.
        events.call_ok("hello", json!({}));
    }
    assert!(ok, "SIGHUP did not reload config.toml");
    assert_eq!(d.ok(&["sessions", "send", "agent:up:main", "x"]), "X");
}

#[test]
fn a_drained_shutdown_lets_the_running_run_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = fifo(dir.path(), "gate");
    let mut d = Daemon::start_with_config(&blocking_agent(&gate));
    let mut c = RawConn::connect(&d.socket());
    let running = c.call_ok("sessions.spawn", json!({"task": "t", "agentId": "block"}));
    let stopping = c.call_ok(
        "daemon.shutdown",
        json!({"drain": true, "timeoutSeconds": 60}),
    );
    assert_eq!(stopping["activeRuns"], 1, "{stopping}");
    // New work is refused while draining.
    let refused = c.call(5, "sessions.spawn", json!({"task": "more"}));
    assert_eq!(
        refused["error"]["data"]["kind"], "shutting_down",
        "{refused}"
    );
    fifo_write_within(&gate, "go", Duration::from_secs(10)).expect("release");
    let status = wait_child(d.child.as_mut().expect("daemon"), Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    d.child = None;
    d.spawn_daemon().expect("start again");
    let mut c = RawConn::connect(&d.socket());
    let ended = c.call_ok(
        "runs.wait",
        json!({"runId": running["runId"], "timeoutSeconds": 0}),
    );
    assert_eq!(
        ended["runStatus"], "ok",
        "the run finished before the stop: {ended}"
    );
    assert_eq!(ended["reply"], "released");
}

#[test]
fn agents_get_their_env_files_and_not_the_starters_openclaw_variables() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("daemon.env"),
        "SHARED=from-daemon\nOVERRIDDEN=daemon\n",
    )
    .expect("env");
    std::fs::write(
        home.path().join("agent.env"),
        "# keys\nexport OWN='from-agent'\nOVERRIDDEN=agent\n",
    )
    .expect("env");
    let config = "[daemon]\nenv_file = \"daemon.env\"\n[agents.show]\nbackend = \"exec\"\nenv_file = \"agent.env\"\nenv = { INLINE = \"yes\" }\ncommand = [\"sh\", \"-c\", \"echo $SHARED/$OWN/$OVERRIDDEN/$INLINE/${OPENCLAWD:-none}/$OPENCLAW_NO_AUTOSTART\"]\n";
    // As whoever started the daemon had them: not for agents.
    let d = Daemon::start_in_with_env(
        home,
        config,
        &[
            ("OPENCLAWD", "/somewhere/openclawd"),
            ("OPENCLAW_NO_AUTOSTART", "0"),
        ],
    );
    let mut c = RawConn::connect(&d.socket());
    let reply = c.call_ok(
        "sessions.send",
        json!({"sessionKey": "agent:show:main", "message": "x", "timeoutSeconds": 20}),
    );
    assert_eq!(
        reply["reply"], "from-daemon/from-agent/agent/yes/none/1",
        "{reply}"
    );
}
