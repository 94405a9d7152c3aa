//! A store an older openclaw wrote (schema version 7, its sessions' unique indexes on the id
//! and key as they are) is upgraded when the daemon starts, and every session in it is still
//! found the ways a user names one: key, id, a 6-character prefix of either, label.

mod common;

use common::Daemon;
use serde_json::Value;

const OLD_STORE: &str = include_str!("fixtures/store_v7.sql");
const TASK_KEY: &str = "agent:main:task:a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
const TASK_ID: &str = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9";
const CHILD_KEY: &str = "agent:main:subagent:c0ffee00-1234-4567-89ab-cdef01234567";

fn history_key(d: &Daemon, name: &str) -> Value {
    let v = d.json(&["sessions", "history", name]);
    v["sessionKey"].clone()
}

#[test]
fn an_old_store_is_upgraded_and_its_sessions_are_found_by_every_name() {
    let mut d = Daemon::start();
    d.stop().expect("a clean stop");
    let db = d.db_path();
    for side in ["", "-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(side);
        let _ = std::fs::remove_file(p);
    }
    {
        let c = rusqlite::Connection::open(&db).expect("create the old store");
        c.execute_batch(OLD_STORE).expect("the version-7 store");
    }
    d.spawn_daemon()
        .expect("the daemon starts on the old store");

    let keys = d.listed_keys();
    for key in ["agent:main:main", TASK_KEY, CHILD_KEY] {
        assert!(keys.iter().any(|k| k == key), "{key} listed: {keys:?}");
    }
    for name in [TASK_KEY, TASK_ID, &TASK_ID[..6], "a1b2c3", "nightly"] {
        assert_eq!(history_key(&d, name), TASK_KEY, "named {name:?}");
    }
    let page = d.json(&["sessions", "history", TASK_KEY]);
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(texts, ["run the nightly report", "report done"]);
    let shown = d.json(&["sessions", "show", TASK_KEY]);
    assert_eq!(shown["session"]["children"], 1, "{shown:#}");
    assert_eq!(history_key(&d, "c0ffee"), CHILD_KEY);

    // The old sessions take new messages, and new sessions sit beside them.
    d.ok(&["sessions", "send", TASK_KEY, "once more"]);
    let page = d.json(&["sessions", "history", &TASK_ID[..8]]);
    assert_eq!(
        page["messages"].as_array().map(Vec::len),
        Some(4),
        "{page:#}"
    );
    let new_key = d.ok(&["sessions", "spawn", "--task", "after the upgrade"]);
    let uuid = new_key.rsplit(':').next().expect("a uuid");
    assert_eq!(&uuid[14..15], "8", "a v8 session uuid: {new_key}");
    assert_eq!(history_key(&d, &uuid[..6]), new_key.as_str());

    d.stop().expect("a clean stop");
    let c = rusqlite::Connection::open(&db).expect("open the upgraded store");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert!(version >= 8, "upgraded: {version}");
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let sessions: i64 = c
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .expect("count");
    assert_eq!(sessions, 4, "three old sessions and the new one");
}
