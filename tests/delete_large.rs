//! Deleting a huge session: it is gone for users at once, its rows are removed in bounded
//! chunks between other writes, and a purge a crash interrupts finishes at the next start.

mod common;

use common::Daemon;
use openclaw::daemon::store::{LoadSession, Loader};

#[test]
fn a_huge_session_is_deleted_at_once_and_purged_even_across_a_crash() {
    let mut d = Daemon::start();
    d.stop().expect("stop to fill the store");
    let data = d.db_path().parent().expect("data dir").to_path_buf();
    let mut loader = Loader::open(&data).expect("loader");
    let turns = (0..30_000).map(|i| (format!("question {i}"), format!("answer {i}")));
    let big = LoadSession {
        key: "cron:big",
        agent_id: "main",
        label: None,
    };
    loader.session(&big, 1, turns).expect("load");
    loader.finish().expect("commit");
    d.spawn_daemon().expect("start on the big store");

    d.ok(&["sessions", "delete", "cron:big"]);
    let out = d.run(&["sessions", "history", "cron:big"]);
    assert_eq!(out.status.code(), Some(4), "deleted means gone at once");
    // Other writes go on meanwhile, and the key is free again.
    assert_eq!(
        d.ok(&["sessions", "send", "main", "still here"]),
        "still here"
    );
    d.ok(&[
        "sessions",
        "spawn",
        "--key",
        "cron:big",
        "--task",
        "a new one",
    ]);
    // Crash while the purge may still be running; the next start finishes it.
    d.restart();
    d.stop().expect("a clean stop");
    let db = rusqlite::Connection::open(d.db_path()).expect("open");
    let retired: i64 = db
        .query_row(
            "SELECT count(*) FROM sessions WHERE key GLOB 'deleted:*'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    d.spawn_daemon().expect("start again");
    // A start resumes any purge left; wait for it by asking until it is done.
    let mut left = retired;
    let deadline = common::deadline(60);
    while left > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the purge never finished"
        );
        d.stop().expect("stop");
        left = rusqlite::Connection::open(d.db_path())
            .and_then(|db| {
                db.query_row(
                    "SELECT count(*) FROM sessions WHERE key GLOB 'deleted:*'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .expect("count");
        d.spawn_daemon().expect("start");
    }
    d.stop().expect("stop");
    let db = rusqlite::Connection::open(d.db_path()).expect("open");
    let orphans: i64 = db
        .query_row(
            "SELECT count(*) FROM messages WHERE sid NOT IN (SELECT sid FROM sessions)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(orphans, 0, "every message of the deleted session is gone");
    let history: i64 = db
        .query_row(
            "SELECT count(*) FROM messages m JOIN sessions s ON s.sid = m.sid WHERE s.key = 'cron:big'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        history, 2,
        "the new cron:big has only its own task and reply"
    );
}
