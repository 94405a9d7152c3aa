//! The CLI as a person at a terminal meets it (issue 14, items 6, 7, 12, 16, 19): Ctrl-C on a
//! command that waits for a run says the run goes on and how to resume, exit 130; on a
//! terminal, `spawn --follow` streams the reply, `sessions list` fits 80 columns, and a
//! daemon started on demand is announced once; completions offer session keys from the
//! daemon. Terminals are real pseudo-terminals; Ctrl-C is a real SIGINT.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    BlockingAgent, Daemon, LineChild, OPENCLAW, describe, interrupt, output_in_pty, output_within,
    stderr, stdout,
};

const CALL_SECS: u64 = 20;

fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = output_within(d.cli().args(args), CALL_SECS, &args.join(" "));
    assert!(out.status.success(), "{}", describe(args, &out));
    stdout(&out).trim_end().to_string()
}

/// The run id a `--json` send or spawn result names.
fn run_id_of(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON result");
    v["runId"].as_str().expect("runId").to_string()
}

/// Starts `args` (a command that waits for the blocking agent's run), waits until the agent
/// runs, presses Ctrl-C, and returns the exit status and stderr.
fn interrupted(d: &Daemon, agent: &BlockingAgent, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = d.cli();
    cmd.args(args);
    let mut child = LineChild::spawn(&mut cmd, &args.join(" "));
    agent.wait_started();
    interrupt(&child.child);
    let (status, _, err) = child.finish(CALL_SECS);
    (status.code(), err)
}

#[test]
fn ctrl_c_on_send_says_the_run_goes_on_and_how_to_wait_for_it() {
    let agent = BlockingAgent::new();
    let d = Daemon::start_with_config(&agent.config("slow"));
    let key = ok(
        &d,
        &["sessions", "spawn", "--agent", "slow", "--task", "hello"],
    );
    ok(&d, &["sessions", "wait", "--session", &key]);

    let (code, err) = interrupted(&d, &agent, &["sessions", "send", &key, "block me"]);
    assert_eq!(code, Some(130), "send interrupted by Ctrl-C: {err}");
    assert!(err.contains("goes on"), "{err}");
    let run = err
        .split("openclaw sessions wait ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no `openclaw sessions wait RUN` in: {err}"))
        .to_string();
    assert!(err.contains(&format!("run {run} goes on")), "{err}");
    // The run did go on: released, it ends ok and the wait the message named prints it.
    agent.release();
    assert_eq!(ok(&d, &["sessions", "wait", &run]), "reply:block me");
}

#[test]
fn ctrl_c_on_wait_spawn_wait_and_send_stream_leaves_the_run_going() {
    let agent = BlockingAgent::new();
    let d = Daemon::start_with_config(&agent.config("slow"));

    // spawn --wait
    let (code, err) = interrupted(
        &d,
        &agent,
        &[
            "sessions", "spawn", "--agent", "slow", "--task", "block a", "--wait",
        ],
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("goes on") && err.contains("openclaw sessions wait "),
        "{err}"
    );
    agent.release();

    // send --stream (its run id comes from the run's own events)
    let key = ok(&d, &["sessions", "spawn", "--agent", "slow", "--task", "x"]);
    ok(&d, &["sessions", "wait", "--session", &key]);
    let (code, err) = interrupted(
        &d,
        &agent,
        &["sessions", "send", &key, "block b", "--stream"],
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("goes on") && err.contains("openclaw sessions wait "),
        "{err}"
    );
    agent.release();

    // wait: Ctrl-C once the wait is underway (-vv logs the call before it is sent).
    let run = run_id_of(&ok(
        &d,
        &["sessions", "send", &key, "block c", "--no-wait", "--json"],
    ));
    agent.wait_started();
    let mut cmd = d.sh(&format!(
        "exec \"$OPENCLAW_BIN\" -vv sessions wait {run} 2>&1"
    ));
    let mut child = LineChild::spawn(&mut cmd, "sessions wait -vv");
    child.wait_line(CALL_SECS, |l| l.contains("runs.wait"));
    interrupt(&child.child);
    let (status, lines, _) = child.finish(CALL_SECS);
    assert_eq!(status.code(), Some(130), "{lines:?}");
    let said = lines.join("\n");
    assert!(said.contains(&format!("run {run} goes on")), "{said}");
    agent.release();
    assert_eq!(ok(&d, &["sessions", "wait", &run]), "reply:block c");
}

#[test]
fn spawn_follow_on_a_terminal_streams_the_reply() {
    let script = "cat >/dev/null; printf 'hel'; printf 'lo world'";
    let config =
        format!("[agents.talk]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"{script}\"]\n");
    let d = Daemon::start_with_config(&config);
    let mut cmd = d.cli();
    cmd.env("NO_COLOR", "1").args([
        "sessions", "spawn", "--agent", "talk", "--task", "greet", "--follow",
    ]);
    let (status, out) = output_in_pty(&mut cmd, 80, CALL_SECS, "spawn --follow on a terminal");
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("session agent:"), "the key first: {out}");
    assert!(out.contains("#1 user"), "the task: {out}");
    // The reply, streamed on its own line, stands for the stored message: printed once.
    assert_eq!(out.matches("hello world").count(), 1, "{out}");
}

#[test]
fn the_list_fits_80_columns_on_a_terminal_and_is_whole_with_wide() {
    let d = Daemon::start();
    let parent = ok(
        &d,
        &["sessions", "spawn", "--task", "p", "--label", "parent"],
    );
    let child = ok(
        &d,
        &[
            "sessions",
            "spawn",
            "--task",
            "c",
            "--parent",
            &parent,
            "--label",
            "a label long enough to need cutting on an eighty column terminal",
        ],
    );
    let mut cmd = d.cli();
    cmd.env("NO_COLOR", "1").args(["sessions", "list"]);
    let (status, out) = output_in_pty(&mut cmd, 80, CALL_SECS, "sessions list on a terminal");
    assert_eq!(status.code(), Some(0), "{out}");
    for line in out.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line:?}\n{out}",
            line.chars().count()
        );
    }
    let header = out.lines().next().unwrap_or_default();
    for column in ["KEY", "STATUS", "PARENT", "UPDATED"] {
        assert!(header.contains(column), "{header}");
    }
    let short = |key: &str| key.rsplit(':').next().unwrap()[..8].to_string();
    assert!(out.contains(&short(&child)), "short id of the child: {out}");
    assert!(!out.contains(&child), "no full keys: {out}");
    assert!(
        out.contains(" ago") || out.contains("just now"),
        "relative times: {out}"
    );
    // Its parent, by the same short id.
    let child_line = out.lines().find(|l| l.starts_with(&short(&child))).unwrap();
    assert!(child_line.contains(&short(&parent)), "{child_line}");
    let mut cmd = d.cli();
    cmd.env("NO_COLOR", "1")
        .args(["sessions", "list", "--wide"]);
    let (status, out) = output_in_pty(&mut cmd, 80, CALL_SECS, "sessions list --wide");
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        out.contains(&child) && out.contains("eighty column terminal"),
        "{out}"
    );
}

#[test]
fn a_daemon_started_on_demand_is_announced_once_on_a_terminal_only() {
    let home = tempfile::Builder::new()
        .prefix("openclaw-announce-")
        .tempdir()
        .expect("tempdir");
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(OPENCLAW);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("OPENCLAW_HOME", home.path())
            .args(args);
        cmd
    };
    let stop = || {
        let _ = output_within(&mut cli(&["daemon", "stop"]), CALL_SECS, "daemon stop");
    };
    let (status, out) = output_in_pty(
        &mut cli(&["sessions", "spawn", "--task", "x"]),
        80,
        CALL_SECS,
        "spawn that starts the daemon, on a terminal",
    );
    let log = home.path().join("data").join("openclawd.log");
    let announced = out.contains("started the openclaw daemon")
        && out.contains(&log.display().to_string())
        && out.contains(&home.path().join("openclaw.sock").display().to_string());
    let second = output_in_pty(
        &mut cli(&["sessions", "spawn", "--task", "y"]),
        80,
        CALL_SECS,
        "spawn with the daemon running",
    );
    stop();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(announced, "where the daemon runs and logs: {out}");
    assert!(!second.1.contains("started the"), "only once: {}", second.1);

    // Not on a pipe: a cron job's mail stays clean.
    let out = output_within(
        &mut cli(&["sessions", "spawn", "--task", "z"]),
        CALL_SECS,
        "spawn",
    );
    stop();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "",
        "nothing on a stderr that is not a terminal"
    );
}

#[test]
fn bash_completes_session_keys_and_agent_ids_from_the_daemon() {
    let d = Daemon::start_with_config("[agents.worker]\nbackend = \"echo\"\n");
    let key = ok(&d, &["sessions", "spawn", "--task", "x"]);
    let bin_dir = Path::new(OPENCLAW).parent().expect("bin dir");
    let complete = |words: &str| {
        let script = format!(
            "source <(openclaw completions bash)\n\
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
             _openclaw_dynamic openclaw \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .env("HOME", d.home_path())
            .env("OPENCLAW_HOME", d.home_path())
            .env("OPENCLAW_NO_AUTOSTART", "1");
        let out = output_within(&mut cmd, CALL_SECS, "bash completion");
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let offered = complete("openclaw sessions send ''");
    assert!(
        offered.lines().any(|l| l == key),
        "session keys: {offered:?}"
    );
    let offered = complete("openclaw sessions spawn --agent ''");
    assert!(
        offered.lines().any(|l| l == "worker"),
        "agent ids: {offered:?}"
    );
    let offered = complete("openclaw ''");
    assert!(
        offered.contains("sessions") && !offered.contains("__man"),
        "{offered:?}"
    );
}

#[test]
fn daemon_logs_prints_the_log_and_follows_it() {
    let d = Daemon::start();
    // The file the daemon's stderr is open on, as it says itself (here the harness's log).
    let status = d.json(&["daemon", "status"]);
    let log = std::path::PathBuf::from(status["logFile"].as_str().expect("logFile"));
    assert_eq!(log, d.log_path(), "{status}");
    std::fs::write(&log, "first line\nsecond line\n").expect("write log");
    assert_eq!(ok(&d, &["daemon", "logs"]), "first line\nsecond line");
    assert_eq!(ok(&d, &["daemon", "logs", "-n", "1"]), "second line");

    let mut cmd = d.cli();
    cmd.args(["daemon", "logs", "-f"]);
    let mut follow = LineChild::spawn(&mut cmd, "daemon logs -f");
    follow.wait_line(CALL_SECS, |l| l == "second line");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"written later\n").unwrap();
    follow.wait_line(CALL_SECS, |l| l == "written later");
    interrupt(&follow.child);
    let (status, _, err) = follow.finish(CALL_SECS);
    assert_eq!(status.code(), Some(130), "{err}");
}
