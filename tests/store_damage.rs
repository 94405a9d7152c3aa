//! A damaged store is refused at start with a sentence naming the file and what to do; an
//! unreadable queued row is named and set aside, and everything else starts.

mod common;

use common::{Daemon, RawConn};
use serde_json::json;

#[test]
fn a_truncated_store_is_refused_naming_the_file_and_check_reports_it() {
    let mut d = Daemon::start();
    for i in 0..200 {
        d.ok(&[
            "sessions",
            "send",
            "main",
            &format!("message {i} {}", "x".repeat(400)),
        ]);
    }
    d.stop().expect("a clean stop");
    let db = d.db_path();
    let len = std::fs::metadata(&db).expect("the store").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .expect("open the store");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let err = d
        .spawn_daemon()
        .expect_err("a damaged store must not be used");
    assert!(
        err.contains("is damaged") && err.contains(&db.display().to_string()),
        "the refusal names the file: {err}"
    );
    assert!(err.contains("move it aside"), "and says what to do: {err}");
    let check = std::process::Command::new(common::OPENCLAWD)
        .arg("--check")
        .env("OPENCLAW_HOME", d.home_path())
        .output()
        .expect("openclawd --check");
    assert_eq!(check.status.code(), Some(1), "{check:?}");
}

#[test]
fn an_unreadable_queued_row_is_set_aside_and_the_daemon_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = common::fifo(dir.path(), "never");
    let config = format!(
        "[lanes]\nmain = 1\n[agents.block]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"cat {} >/dev/null\"]\n",
        gate.display()
    );
    let mut d = Daemon::start_with_config(&config);
    let mut c = RawConn::connect(&d.socket());
    c.call_ok(
        "sessions.spawn",
        json!({"task": "first", "agentId": "block"}),
    );
    let queued = c.call_ok(
        "sessions.spawn",
        json!({"task": "second", "agentId": "block"}),
    );
    let fine = c.call_ok(
        "sessions.spawn",
        json!({"task": "third", "agentId": "block"}),
    );
    drop(c);
    d.kill9();
    {
        let db = rusqlite::Connection::open(d.db_path()).expect("open the store");
        let n = db
            .execute(
                "UPDATE messages SET content = '{not json' WHERE sid = (SELECT sid FROM sessions WHERE key = ?1)",
                [queued["sessionKey"].as_str().expect("key")],
            )
            .expect("damage one message");
        assert_eq!(n, 1);
    }
    d.spawn_daemon()
        .expect("the daemon starts despite one unreadable row");
    let mut c = RawConn::connect(&d.socket());
    let set_aside = c.call_ok(
        "runs.wait",
        json!({"runId": queued["runId"], "timeoutSeconds": 0}),
    );
    assert_eq!(set_aside["runStatus"], "error", "{set_aside}");
    let why = set_aside["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("messages row sid") && why.contains("set aside"),
        "the row is named: {why}"
    );
    let other = c.call_ok(
        "runs.wait",
        json!({"runId": fine["runId"], "timeoutSeconds": 0}),
    );
    assert!(
        other["runStatus"] == "queued" || other["runStatus"] == "running",
        "the other queued run was queued again: {other}"
    );
}

/// A crash while a brand-new store was being built leaves an empty store file and the
/// half-built temporary one (`openclaw.db.new`, maybe with its journal). The next start
/// removes them, builds the store again, and what is stored then survives a restart.
#[test]
fn what_a_crash_while_building_a_new_store_left_is_cleared_and_the_store_built_again() {
    use std::os::unix::fs::DirBuilderExt;
    let home = tempfile::Builder::new()
        .prefix("openclaw-test-")
        .tempdir()
        .expect("tempdir");
    let data = home.path().join("data");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data)
        .expect("data dir");
    std::fs::write(data.join("openclaw.db"), b"").expect("empty store");
    let half_built = data.join("openclaw.db.new");
    let mut junk = b"SQLite format 3\0".to_vec();
    junk.resize(3000, 0xa5);
    std::fs::write(&half_built, &junk).expect("half-built store");
    std::fs::write(data.join("openclaw.db.new-journal"), b"\xd9\xd5\x05\xf9").expect("journal");
    let mut d = Daemon::start_in(home, "");
    let key = d.json(&["sessions", "spawn", "--task", "after the crash"])["sessionKey"]
        .as_str()
        .expect("a key")
        .to_string();
    for leftover in ["openclaw.db.new", "openclaw.db.new-journal"] {
        assert!(
            !data.join(leftover).exists(),
            "{leftover} is still there after the start"
        );
    }
    d.restart();
    let listed = d.json(&["sessions", "list"]);
    let keys: Vec<&str> = listed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(keys.contains(&key.as_str()), "{key} not in {listed}");
}
