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
    let keys = d.listed_keys();
    assert!(keys.contains(&key), "{key} not in {keys:?}");
}

/// A store too big to check whole before the first answer is checked on in the background
/// while the daemon serves; damage found there is logged as an error that says what to do.
#[test]
fn damage_the_start_up_check_had_no_time_for_is_found_in_the_background_and_logged() {
    let mut d = Daemon::start();
    let key = d.json(&["sessions", "spawn", "--task", "a long transcript"])["sessionKey"]
        .as_str()
        .expect("a key")
        .to_string();
    d.stop().expect("a clean stop");
    // 150 messages of 1 MB: far more than start-up's few milliseconds of checking can read
    // (40 were not quite: from the page cache, it read a third of them in time).
    const BIG_MESSAGES: i64 = 150;
    {
        let db = rusqlite::Connection::open(d.db_path()).expect("open the store");
        let sid: i64 = db
            .query_row("SELECT sid FROM sessions WHERE key = ?1", [&key], |r| {
                r.get(0)
            })
            .expect("the session");
        let last: i64 = db
            .query_row("SELECT max(seq) FROM messages WHERE sid = ?1", [sid], |r| {
                r.get(0)
            })
            .expect("its last seq");
        for seq in last + 1..=last + BIG_MESSAGES {
            db.execute(
                "INSERT INTO messages (sid, seq, ts, role, content, provenance)
                 VALUES (?1, ?2, 0, 'user', '\"' || hex(zeroblob(500000)) || '\"', 'operator')",
                rusqlite::params![sid, seq],
            )
            .expect("a big message");
        }
        db.execute(
            "UPDATE sessions SET last_seq = ?2, message_count = message_count + ?3 WHERE sid = ?1",
            rusqlite::params![sid, last + BIG_MESSAGES, BIG_MESSAGES],
        )
        .expect("the session's counters");
    }
    // Garbage over the start of the first big message's first overflow page (the first such
    // page in the file). SQLite's check walks a table from its last row back to its first, so
    // that chain is the last it reaches. Not just any page: a b-tree page among the chains is
    // checked at once (seen failing in CI). An overflow page of these messages is the next
    // page's number (4 bytes), then the hex text: '0's.
    let db = d.db_path();
    let pages = std::fs::metadata(&db).expect("the store").len() / 4096;
    assert!(pages > 36_000, "the store has only {pages} pages");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&db)
            .expect("open the store's file");
        let is_overflow = |page: u64| {
            let mut head = [0u8; 16];
            f.read_exact_at(&mut head, page * 4096)
                .expect("read a page");
            head[4..].iter().all(|&b| b == b'0')
        };
        let page = (1..pages)
            .find(|&p| is_overflow(p))
            .expect("an overflow page of the big messages");
        f.write_all_at(&[0xff; 16], page * 4096)
            .expect("damage one page");
    }
    d.spawn_daemon()
        .expect("the daemon starts: the damage is beyond what start-up checks");
    // It serves while the check goes on.
    d.json(&["sessions", "spawn", "--task", "meanwhile"]);
    let deadline = common::deadline(60);
    let log = loop {
        let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
        if log.contains("is damaged") {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no damage reported within 60 s; log:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The record from its start: SQLite's report in it spans lines.
    let at = log.find("is damaged").unwrap_or(0);
    let record = &log[log[..at].rfind('\n').map_or(0, |i| i + 1)..];
    assert!(
        record.contains("ERROR") && record.contains(&db.display().to_string()),
        "an error naming the file: {record}"
    );
    assert!(
        record.contains("after start-up")
            && record.contains("stop the daemon")
            && record.contains("openclawd --check"),
        "it says when it was found and what to do: {record}"
    );
}
