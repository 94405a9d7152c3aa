//! Managing the daemon from the CLI (issue 14 items 3 and 20, issue 13, issue 15 item 5):
//! stop says what it interrupts, restart, systemd user units, reload, a drained stop, the
//! HTTP token, and reading one large message whole.

mod common;

use std::path::Path;
use std::process::Command;

use common::cli::{CALL_SECS, exit, json, ok};
use common::{
    BlockingAgent, Daemon, OPENCLAW, OPENCLAWD, output_within, stderr, stdout, wait_pid_gone,
};

fn daemon_pid(d: &Daemon) -> u32 {
    json(d, &["daemon", "status"])["pid"].as_u64().unwrap() as u32
}

#[test]
fn stop_says_how_many_runs_it_interrupts() {
    let agent = BlockingAgent::new();
    let mut d = Daemon::start_with_config(&agent.config("slow"));
    ok(
        &d,
        &["sessions", "spawn", "--agent", "slow", "--task", "block"],
    );
    agent.wait_started();
    let out = exit(&d, &["daemon", "stop"], 0);
    let note = stderr(&out);
    assert!(note.contains("interrupts 1 run still going"), "{note}");
    assert!(note.contains("--drain"), "{note}");
    assert!(d.stop().is_some(), "the daemon exited");
    // Nothing running, nothing said.
    let d = Daemon::start();
    let out = exit(&d, &["daemon", "stop"], 0);
    assert_eq!(stderr(&out), "");
}

#[test]
fn restart_replaces_the_daemon_on_the_same_socket() {
    let d = Daemon::start();
    let key = ok(&d, &["sessions", "spawn", "--task", "kept"]);
    let before = daemon_pid(&d);
    ok(&d, &["daemon", "restart"]);
    let after = daemon_pid(&d);
    assert_ne!(before, after, "a new daemon");
    assert!(
        wait_pid_gone(before as i32, CALL_SECS),
        "the old one is gone"
    );
    // The store came along.
    assert_eq!(
        json(&d, &["sessions", "history", &key])["sessionKey"],
        key.as_str()
    );
    ok(&d, &["daemon", "stop"]);
    assert!(wait_pid_gone(after as i32, CALL_SECS));
}

#[test]
fn install_service_writes_user_units_for_this_socket() {
    let d = Daemon::start();
    let config = tempfile::Builder::new()
        .prefix("openclaw-units-")
        .tempdir()
        .expect("tempdir");
    let install = |extra: &[&str]| {
        let mut cmd = d.cli();
        cmd.env("XDG_CONFIG_HOME", config.path())
            .env("OPENCLAWD", OPENCLAWD)
            .args(["daemon", "install-service"])
            .args(extra);
        output_within(&mut cmd, CALL_SECS, "daemon install-service")
    };
    let out = install(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("systemctl --user enable --now openclawd.socket"),
        "{}",
        stdout(&out)
    );
    let dir = config.path().join("systemd").join("user");
    let service = std::fs::read_to_string(dir.join("openclawd.service")).expect("service unit");
    let socket = std::fs::read_to_string(dir.join("openclawd.socket")).expect("socket unit");
    let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
    let service_lines = lines(&service);
    for want in [
        "Type=notify".to_string(),
        format!("ExecStart={OPENCLAWD}"),
        format!(
            "ExecReload={} daemon reload",
            Path::new(OPENCLAW).canonicalize().unwrap().display()
        ),
        format!("Environment=OPENCLAW_HOME={}", d.home_path().display()),
        format!("Environment=OPENCLAW_SOCKET={}", d.socket().display()),
    ] {
        assert!(service_lines.contains(&want), "{want:?} in:\n{service}");
    }
    assert!(
        lines(&socket).contains(&format!("ListenStream={}", d.socket().display())),
        "{socket}"
    );
    // Again: nothing changed, nothing refused. Edited by hand: left alone unless --force.
    assert!(install(&[]).status.success());
    std::fs::write(dir.join("openclawd.service"), "# mine\n").unwrap();
    let out = install(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("openclawd.service")).unwrap(),
        "# mine\n"
    );
    assert!(install(&["--force"]).status.success());
    assert_eq!(
        std::fs::read_to_string(dir.join("openclawd.service")).unwrap(),
        service
    );
}

#[test]
fn reload_applies_a_new_agent_and_keeps_the_old_config_on_an_error() {
    let d = Daemon::start();
    std::fs::write(
        d.home_path().join("config.toml"),
        "[agents.worker]\nbackend = \"echo\"\n",
    )
    .unwrap();
    let said = ok(&d, &["daemon", "reload"]);
    assert!(said.contains("agents.worker"), "{said}");
    ok(
        &d,
        &["sessions", "spawn", "--agent", "worker", "--task", "x"],
    );
    std::fs::write(
        d.home_path().join("config.toml"),
        "[lanes]\nmain = \"eight\"\n",
    )
    .unwrap();
    let out = exit(&d, &["daemon", "reload"], 1);
    assert!(stderr(&out).contains("lanes.main"), "{}", stderr(&out));
    ok(
        &d,
        &[
            "sessions",
            "spawn",
            "--agent",
            "worker",
            "--task",
            "still there",
        ],
    );
}

#[test]
fn stop_drain_lets_the_running_run_finish() {
    let agent = BlockingAgent::new();
    let mut d = Daemon::start_with_config(&agent.config("slow"));
    let spawned = json(
        &d,
        &["sessions", "spawn", "--agent", "slow", "--task", "block"],
    );
    let run = spawned["runId"].as_str().unwrap().to_string();
    agent.wait_started();
    // Its note (stderr, read as lines here) says the daemon took the drain; only then may the
    // run finish, or the stop could come after it.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "exec \"$0\" daemon stop --drain --timeout 60 2>&1",
        OPENCLAW,
    ])
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("HOME", d.home_path())
    .env("OPENCLAW_HOME", d.home_path())
    .env("OPENCLAW_NO_AUTOSTART", "1")
    .stdin(std::process::Stdio::null());
    let mut stop = common::LineChild::spawn(&mut cmd, "daemon stop --drain");
    stop.wait_line(CALL_SECS, |l| {
        l.contains("once the running run has finished")
    });
    agent.release();
    let (status, _, err) = stop.finish(CALL_SECS * 3);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(d.stop().is_some());
    d.spawn_daemon().unwrap();
    let result = json(&d, &["sessions", "wait", &run]);
    assert_eq!(result["runStatus"], "ok", "{result}");
}

#[test]
fn http_token_prints_the_token_and_rotate_replaces_it() {
    let d = Daemon::start();
    let first = ok(&d, &["http", "token"]);
    assert!(
        !first.is_empty() && !first.contains(char::is_whitespace),
        "{first:?}"
    );
    assert_eq!(
        ok(&d, &["http", "token"]),
        first,
        "the same token until rotated"
    );
    let rotated = ok(&d, &["http", "token", "--rotate"]);
    assert_ne!(rotated, first);
    let v = json(&d, &["http", "token"]);
    assert_eq!(v["token"], rotated.as_str());
    assert!(Path::new(v["path"].as_str().unwrap()).exists());
}

#[test]
fn history_full_reads_a_large_message_whole() {
    let d = Daemon::start_with_config("[limits]\nmax_reply_bytes = 65536\n");
    let big: String = (0..40_000).map(|i| format!("{i:07}\n")).collect();
    let file = d.home_path().join("big.txt");
    std::fs::write(&file, &big).unwrap();
    let key = ok(&d, &["sessions", "spawn", "--task", "x"]);
    ok(&d, &["sessions", "wait", "--session", &key]);
    let script = format!(
        "\"$OPENCLAW_BIN\" sessions send {key} - < {} > /dev/null",
        file.display()
    );
    let out = output_within(&mut d.sh(&script), CALL_SECS, "send a large message");
    assert!(out.status.success(), "{}", stderr(&out));
    let page = json(&d, &["sessions", "history", &key]);
    let cut = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["truncated"] == true)
        .cloned()
        .expect("a message cut to fit the page");
    let seq = cut["seq"].as_u64().unwrap().to_string();
    let mut cmd = d.cli();
    cmd.args(["sessions", "history", &key, "--seq", &seq, "--full"]);
    let whole = output_within(&mut cmd, CALL_SECS, "history --seq --full");
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_eq!(whole.stdout, big.as_bytes(), "every byte, read in chunks");
    let human = stdout(&exit(&d, &["sessions", "history", &key], 0));
    assert!(human.contains(&format!("--seq {seq} --full")), "{human}");
}
