//! Pre-built stores: filled offline by the store's own loader while the daemon is stopped
//! (building a 1M-message transcript through the socket would take minutes).

use std::path::Path;
use std::time::{Duration, Instant};

use openclaw::daemon::store::{LoadSession, Loader};

use super::common::Daemon;

/// A daemon whose store was filled by `build` while it was stopped (see the module docs).
/// Returns it running, and how long `build` took.
pub fn prebuilt(config: &str, build: impl FnOnce(&mut Loader)) -> (Daemon, Duration) {
    let mut d = Daemon::start_with_config(config);
    d.stop().expect("the daemon stops on SIGTERM");
    let t0 = Instant::now();
    let data_dir = d.db_path().parent().expect("the data dir").to_path_buf();
    let mut loader = Loader::open(&data_dir).expect("open the store offline");
    build(&mut loader);
    loader.finish().expect("commit the pre-built store");
    let took = t0.elapsed();
    // The file's pages are written out before anything is measured on it: the kernel would
    // otherwise write a freshly built store (up to a gigabyte) back during the rows, and
    // every durable commit would queue behind that on the disk.
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    d.spawn_daemon()
        .expect("daemon start on the pre-built store");
    (d, took)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One session with `n` messages (user and assistant turns in pairs, each pair one `ok`
/// run), stored through the store's own changes; returns its key.
pub fn insert_transcript(loader: &mut Loader, n: usize, label: &str) -> String {
    let key = format!(
        "agent:main:subagent:{}",
        openclaw::daemon::ids::new_session_uuid()
    );
    let text = |seq: usize| {
        format!(
            "message {seq} of a long transcript: some words of a turn, as an agent session has them"
        )
    };
    let turns = (0..n / 2).map(|i| (text(2 * i + 1), text(2 * i + 2)));
    let session = LoadSession {
        key: &key,
        agent_id: "main",
        label: Some(label),
    };
    loader
        .session(&session, now_ms() - n as i64, turns)
        .expect("load a transcript");
    key
}

/// `n` spawned sessions, each with its task, its reply and one `ok` run, as a spawn leaves
/// them; updated one millisecond apart.
pub fn insert_sessions(loader: &mut Loader, n: usize) {
    let now = now_ms();
    for i in 0..n {
        let key = format!(
            "agent:main:subagent:{}",
            openclaw::daemon::ids::new_session_uuid()
        );
        let task = format!("nightly report {i}: summarise what changed since yesterday");
        let session = LoadSession {
            key: &key,
            agent_id: "main",
            label: None,
        };
        loader
            .session(&session, now - (n - i) as i64, [(task.clone(), task)])
            .expect("load a session");
    }
}

pub fn store_size(d: &Daemon) -> String {
    let db = d.db_path();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = db.with_extension("db-wal");
    format!(
        "{:.1} MiB (+ WAL {:.1} MiB)",
        size(&db) as f64 / (1024.0 * 1024.0),
        size(&wal) as f64 / (1024.0 * 1024.0)
    )
}
