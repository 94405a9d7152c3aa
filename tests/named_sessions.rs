//! Sessions spawned from a shell or cron: they are not sub-agents (never archived away), and
//! scripts can name them (`--key cron:NAME`) and reach them again by that name.

mod common;

use common::{Daemon, RawConn};
use serde_json::json;

#[test]
fn a_top_level_spawn_stays_listed_while_sub_agents_are_archived() {
    let d = Daemon::start_with_config("[subagents]\narchive_after_minutes = 0\n");
    let mut events = RawConn::connect(&d.socket());
    events.call_ok("sessions.subscribe", json!({"events": ["lifecycle"]}));
    let top = d.ok(&["sessions", "spawn", "--task", "from a shell"]);
    assert!(top.starts_with("agent:main:task:"), "{top}");
    // Its run ends first; then a sub-agent's archive is the sign the archiver has run.
    d.ok(&["sessions", "wait", "--session", &top]);
    let child = d.ok(&["sessions", "spawn", "--task", "a child", "--parent", &top]);
    loop {
        let note = events.read_json();
        if note["params"]["phase"] == "archive" {
            assert_eq!(
                note["params"]["sessionKey"], child,
                "only the sub-agent is archived: {note}"
            );
            break;
        }
    }
    let list = d.json(&["sessions", "list"]);
    let row = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|r| r["key"] == top.as_str())
        .unwrap_or_else(|| panic!("the top-level spawn left the list: {list}"));
    assert_eq!(row["kind"], "task");
    assert_eq!(row["archived"], false);
}

#[test]
fn a_named_cron_session_is_found_again_by_its_key() {
    let d = Daemon::start();
    let key = d.ok(&[
        "sessions",
        "spawn",
        "--key",
        "cron:nightly",
        "--task",
        "monday",
    ]);
    assert_eq!(key, "cron:nightly");
    let reply = d.ok(&["sessions", "send", "cron:nightly", "and the weekly one"]);
    assert_eq!(reply, "and the weekly one");
    // The next night's spawn goes to the same session.
    let again = d.ok(&[
        "sessions",
        "spawn",
        "--key",
        "cron:nightly",
        "--task",
        "tuesday",
    ]);
    assert_eq!(again, "cron:nightly");
    d.ok(&["sessions", "wait", "--session", "cron:nightly"]);
    let row = d.json(&["sessions", "list", "--kind", "cron"]);
    let sessions = row["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{row}");
    assert_eq!(sessions[0]["kind"], "cron");
    let history = d.json(&["sessions", "history", "cron:nightly"]);
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["monday", "and the weekly one", "tuesday"]);
}

#[test]
fn a_bad_key_is_a_usage_error_and_stores_nothing() {
    let d = Daemon::start();
    for key in ["agent:main:main", "cron:", "cron:two words", "nightly"] {
        let out = d.run(&["sessions", "spawn", "--key", key, "--task", "x"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--key {key}: {}",
            common::stderr(&out)
        );
        assert!(
            common::stderr(&out).contains("cron:NAME")
                || common::stderr(&out).contains("the name after the prefix"),
            "{}",
            common::stderr(&out)
        );
    }
    let list = d.json(&["sessions", "list"]);
    assert_eq!(list["sessions"], json!([]));
}
