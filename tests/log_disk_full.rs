//! The daemon's log on a full disk (issue 15 item 3): with debug logging on, spawn, send and
//! kill still answer, the lines that could not be written are counted (`daemon status`),
//! and once there is room again the log resumes, saying how many lines were lost — all
//! without a restart.

mod common;

use common::{BlockingAgent, Daemon, Tmpfs, output_within, stderr, stdout};

/// `openclaw ARGS --json`, which must answer (exit 0) within 20 s: a wedged daemon fails the
/// test instead of hanging it.
fn json(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let what = format!("openclaw {}", args.join(" "));
    let out = output_within(d.cli().args(args).arg("--json"), 20, &what);
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn lines_lost(d: &Daemon) -> u64 {
    json(d, &["daemon", "status"])["logLinesLost"]
        .as_u64()
        .expect("daemon status --json has logLinesLost")
}

#[test]
fn a_full_disk_under_the_log_neither_wedges_nor_stops_the_daemon() {
    let fs = match Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    // The store on a disk with room; only the daemon's stderr on the small tmpfs.
    let home = tempfile::Builder::new()
        .prefix("openclaw-logfull-")
        .tempdir()
        .expect("tempdir");
    let log = fs.path().join("daemon.log");
    std::os::unix::fs::symlink(&log, home.path().join("daemon.log")).expect("symlink the log");
    let agent = BlockingAgent::new();
    let d = Daemon::start_in_with_env(home, &agent.config("blocker"), &[("RUST_LOG", "debug")]);
    let key = d.ok(&[
        "sessions", "spawn", "--agent", "blocker", "--task", "before",
    ]);
    assert_eq!(lines_lost(&d), 0, "nothing lost while the log has room");

    fs.fill("filler");
    // The log's own last page may still have room: use it up, so the next line fails.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open the log");
        while f.write(b"#").is_ok_and(|n| n > 0) {}
    }
    // Everything answers while the log cannot be written.
    let sent = json(&d, &["sessions", "send", &key, "while the log is full"]);
    assert_eq!(sent["reply"], "reply:while the log is full", "{sent}");
    let blocked = d.ok(&[
        "sessions", "spawn", "--agent", "blocker", "--task", "block me",
    ]);
    agent.wait_started();
    d.ok(&["sessions", "kill", &blocked]);
    let history = d.json(&["sessions", "history", &blocked]);
    let last = history["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert!(
        last["content"].as_str().unwrap_or("").contains("killed"),
        "the killed run's end is stored: {history}"
    );
    let lost = lines_lost(&d);
    assert!(
        lost > 0,
        "debug lines written onto the full disk are counted"
    );

    std::fs::remove_file(fs.path().join("filler")).expect("free the space");
    let sent = json(&d, &["sessions", "send", &key, "after space returned"]);
    assert_eq!(sent["reply"], "reply:after space returned", "{sent}");
    let text = std::fs::read_to_string(&log).expect("read the log");
    assert!(
        text.contains("log lines were lost"),
        "the log says lines were lost once it can be written again:\n{text}"
    );
    drop(d);
}
