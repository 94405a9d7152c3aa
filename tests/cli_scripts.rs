//! The CLI as a script meets it (issue 14, items 8–11, 13, 15, 17): empty messages refused,
//! a list that says what it left out, one session shown, errors as JSON, `--quiet`, `-v`,
//! and messages that say the right thing. Tests that need daemon support still to come are
//! ignored with the reason; the daemon side un-ignores them.

mod common;

use std::process::{Command, Stdio};

use common::cli::{CALL_SECS, exit, json, ok};
use common::{BlockingAgent, Daemon, OPENCLAW, describe, output_within, stderr, stdout};
use serde_json::Value;

fn session_count(d: &Daemon) -> usize {
    json(d, &["sessions", "list", "--all"])["sessions"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn blank_messages_and_tasks_are_refused_and_nothing_is_sent() {
    let d = Daemon::start();
    for args in [
        &["sessions", "send", "main", ""][..],
        &["sessions", "send", "main", "  \n\t"],
        &["sessions", "spawn", "--task", " "],
    ] {
        let out = exit(&d, args, 2);
        assert!(
            stderr(&out).contains("is empty"),
            "{}",
            describe(args, &out)
        );
    }
    let mut cmd = d.cli();
    cmd.args(["sessions", "send", "main", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start send -");
    // Empty stdin: the child sees end of file at once.
    let out = child.wait_with_output().expect("send -");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("read from stdin"), "{}", stderr(&out));
    assert_eq!(session_count(&d), 0, "nothing was stored");
}

#[test]
fn a_list_says_on_stderr_what_it_left_out_and_all_gets_everything() {
    let d = Daemon::start();
    for i in 0..3 {
        ok(&d, &["sessions", "spawn", "--task", &format!("t{i}")]);
    }
    let out = exit(&d, &["sessions", "list", "--limit", "2"], 0);
    let rows = stdout(&out).lines().count() - 1;
    assert_eq!(rows, 2, "{}", stdout(&out));
    let note = stderr(&out);
    assert!(
        note.contains("showing 2") && note.contains("--all") && note.contains("--limit"),
        "{note}"
    );
    // The same with --json: the note is on stderr, stdout stays one object.
    let out = exit(&d, &["sessions", "list", "--limit", "2", "--json"], 0);
    assert!(stderr(&out).contains("showing 2"));
    let all = json(&d, &["sessions", "list", "--all"]);
    assert_eq!(all["sessions"].as_array().unwrap().len(), 3, "{all}");
    let out = exit(&d, &["sessions", "list", "--all"], 0);
    assert_eq!(stderr(&out), "", "nothing left out, nothing said");
    let help = ok(&d, &["sessions", "list", "--help"]);
    assert!(help.contains("[default: 50]"), "{help}");
}

#[test]
fn a_partial_list_says_how_many_there_are() {
    let d = Daemon::start();
    for i in 0..3 {
        ok(&d, &["sessions", "spawn", "--task", &format!("t{i}")]);
    }
    let out = exit(&d, &["sessions", "list", "--limit", "1"], 0);
    assert!(
        stderr(&out).contains("showing 1 of 3 sessions"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn show_prints_one_session_for_people_and_for_scripts() {
    let d = Daemon::start();
    let parent = ok(&d, &["sessions", "spawn", "--task", "p", "--label", "boss"]);
    ok(&d, &["sessions", "wait", "--session", &parent]);
    let child = ok(
        &d,
        &["sessions", "spawn", "--task", "c", "--parent", &parent],
    );
    ok(&d, &["sessions", "wait", "--session", &child]);
    let text = ok(&d, &["sessions", "show", &parent]);
    for needle in [
        format!("key           {parent}"),
        "agent         main".to_string(),
        "label         boss".to_string(),
        "children      1".to_string(),
        "last message".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} in:\n{text}");
    }
    // A time for people, then the exact one: "just now (2026-…Z)" or "3 min ago (…)".
    let created = text
        .lines()
        .find(|l| l.starts_with("created "))
        .unwrap_or_else(|| panic!("a created line in:\n{text}"));
    assert!(
        (created.contains("just now (") || created.contains(" ago (")) && created.ends_with("Z)"),
        "{created}"
    );
    let shown = json(&d, &["sessions", "show", &child]);
    assert_eq!(shown["session"]["key"], child.as_str());
    assert_eq!(shown["session"]["parentKey"], parent.as_str());
    exit(&d, &["sessions", "show", "agent:main:nosuch"], 4);
}

#[test]
fn short_forms_name_a_session_and_an_ambiguous_one_lists_the_candidates() {
    let d = Daemon::start();
    let a = ok(&d, &["sessions", "spawn", "--task", "a", "--label", "dup"]);
    let b = ok(&d, &["sessions", "spawn", "--task", "b", "--label", "dup"]);
    let c = ok(&d, &["sessions", "spawn", "--task", "c", "--label", "solo"]);
    let uuid = |key: &str| key.rsplit(':').next().unwrap().to_string();
    let history = |name: &str| json(&d, &["sessions", "history", name])["sessionKey"].clone();
    assert_eq!(history(&uuid(&a)[..6]), a.as_str(), "a 6-character prefix");
    assert_eq!(history("solo"), c.as_str(), "a label");
    // Ids and key uuids carry the time they were made, but after 8 random digits: sessions
    // spawned back to back are still told apart by 6 characters of either.
    for _ in 0..8 {
        let spawned = json(&d, &["sessions", "spawn", "--task", "burst"]);
        let key = spawned["sessionKey"].as_str().expect("a key").to_string();
        let id = spawned["sessionId"].as_str().expect("an id").to_string();
        assert_eq!(history(&uuid(&key)[..6]), key.as_str(), "{key}");
        assert_eq!(history(&id[..6]), key.as_str(), "{id}");
    }
    let out = exit(&d, &["sessions", "history", "dup"], 2);
    let err = stderr(&out);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(
        err.contains(&a) && err.contains(&b),
        "both candidates, one per line: {err}"
    );
}

#[test]
fn errors_are_one_json_line_on_stderr_with_json() {
    let d = Daemon::start();
    let out = exit(
        &d,
        &["sessions", "history", "agent:main:nosuch", "--json"],
        4,
    );
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let v: Value = serde_json::from_str(&err).expect("stderr is JSON");
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(v["error"]["exitCode"], 4);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("nosuch"),
        "{v}"
    );

    // A usage error from the command line itself, found before --json is parsed.
    let out = exit(&d, &["sessions", "spawn", "--json"], 2);
    let v: Value = serde_json::from_str(&stderr(&out)).expect("usage error as JSON");
    assert_eq!(v["error"]["kind"], "usage");
    assert_eq!(v["error"]["exitCode"], 2);
    // And no daemon at all.
    let mut cmd = d.cli();
    cmd.env("OPENCLAW_SOCKET", d.home_path().join("none.sock"))
        .args(["sessions", "list", "--json"]);
    let out = output_within(&mut cmd, CALL_SECS, "list with no daemon");
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_str(&stderr(&out)).expect("unreachable as JSON");
    assert_eq!(v["error"]["kind"], "unreachable");
}

#[test]
fn quiet_prints_only_the_key_or_the_run_id() {
    let d = Daemon::start();
    let key = ok(&d, &["sessions", "spawn", "--task", "x", "--quiet"]);
    assert!(key.starts_with("agent:") && !key.contains('\n'), "{key:?}");
    let key2 = ok(&d, &["sessions", "spawn", "--task", "y", "--wait", "-q"]);
    assert!(
        key2.starts_with("agent:") && !key2.contains('\n'),
        "{key2:?}"
    );
    let run = ok(&d, &["sessions", "send", &key, "hello", "--quiet"]);
    assert!(
        !run.contains("hello") && !run.contains('\n') && !run.is_empty(),
        "{run:?}"
    );
    // It is the run's id: waiting for it prints the reply.
    assert_eq!(ok(&d, &["sessions", "wait", &run]), "hello");
}

#[test]
fn verbose_logs_connecting_and_each_call_with_its_time() {
    let d = Daemon::start();
    let out = exit(&d, &["-v", "sessions", "spawn", "--task", "x"], 0);
    let log = stderr(&out);
    assert!(log.contains("connecting to"), "{log}");
    assert!(log.contains("sessions.spawn: answered in"), "{log}");
    assert!(log.contains(" ms"), "{log}");
    assert!(!log.contains("\"task\""), "params only with -vv: {log}");
    let out = exit(
        &d,
        &["-vv", "sessions", "spawn", "--task", "marker-task"],
        0,
    );
    assert!(stderr(&out).contains("marker-task"), "{}", stderr(&out));
    // Nothing without -v.
    assert_eq!(
        stderr(&exit(&d, &["sessions", "spawn", "--task", "x"], 0)),
        ""
    );
}

#[test]
fn messages_name_what_the_user_typed() {
    let d = Daemon::start();
    let out = exit(&d, &["pairing", "approve", "ab"], 2);
    assert!(
        stderr(&out).contains("at least 4 characters"),
        "{}",
        stderr(&out)
    );

    // A socket path the kernel cannot take: said as such, even to `daemon start`.
    let long = d.home_path().join("d".repeat(120)).join("openclaw.sock");
    let mut cmd = Command::new(OPENCLAW);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", d.home_path())
        .env("OPENCLAW_SOCKET", &long)
        .args(["daemon", "start"]);
    let out = output_within(&mut cmd, CALL_SECS, "daemon start on a long socket path");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bytes long") && err.contains("OPENCLAW_SOCKET"),
        "{err}"
    );
    assert!(!err.contains("openclaw daemon start"), "{err}");
}

#[test]
fn an_interrupted_run_says_why_once() {
    let agent = BlockingAgent::new();
    let mut d = Daemon::start_with_config(&agent.config("slow"));
    let spawned = json(
        &d,
        &["sessions", "spawn", "--agent", "slow", "--task", "block"],
    );
    let run = spawned["runId"].as_str().unwrap().to_string();
    agent.wait_started();
    d.restart();
    let out = exit(&d, &["sessions", "wait", &run], 1);
    let err = stderr(&out);
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(err.matches("daemon stopped").count(), 1, "said once: {err}");
}

#[test]
fn follow_since_past_the_end_waits_for_the_next_message() {
    let d = Daemon::start();
    let key = ok(&d, &["sessions", "spawn", "--task", "x"]);
    ok(&d, &["sessions", "wait", "--session", &key]);
    let newest = json(&d, &["sessions", "history", &key])["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .and_then(|m| m["seq"].as_u64())
        .unwrap();
    let since = (newest + 1).to_string();
    let mut cmd = d.cli();
    cmd.args(["sessions", "follow", &key, "--since", &since]);
    let mut follow = common::LineChild::spawn(&mut cmd, "follow --since past the end");
    // The follow starts after #N+1, so the reply to "one" (#N+2) is the first it prints.
    ok(&d, &["sessions", "send", &key, "one"]);
    let line = follow.wait_line(CALL_SECS, |l| l.starts_with('#'));
    assert!(line.starts_with(&format!("#{}", newest + 2)), "{line}");
}

#[test]
fn subscribe_to_an_unknown_run_exits_4() {
    let d = Daemon::start();
    exit(&d, &["sessions", "subscribe", "--run", "nosuch"], 4);
}

#[test]
fn subscribe_to_a_run_exits_when_it_ends() {
    let agent = BlockingAgent::new();
    let d = Daemon::start_with_config(&agent.config("slow"));
    let spawned = json(
        &d,
        &["sessions", "spawn", "--agent", "slow", "--task", "block"],
    );
    let run = spawned["runId"].as_str().unwrap().to_string();
    agent.wait_started();
    let mut cmd = d.cli();
    cmd.args(["sessions", "subscribe", "--run", &run, "--json"]);
    let mut sub = common::LineChild::spawn(&mut cmd, "subscribe --run");
    // Released only once the subscription is in place, or the run could end before it.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(CALL_SECS);
    while json(&d, &["daemon", "status"])["subscriptions"].as_u64() < Some(1) {
        assert!(
            std::time::Instant::now() < end,
            "the subscription never started"
        );
    }
    agent.release();
    let (status, lines, err) = sub.finish(CALL_SECS);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(lines.iter().any(|l| l.contains("\"ended\"")), "{lines:?}");
}
