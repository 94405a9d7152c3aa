//! A full disk under the daemon's data (and its log): the error says so, names the store and
//! what to do, nothing acknowledged is lost, and everything works again once there is room —
//! without a restart.

mod common;

use common::{Daemon, Tmpfs, stderr};

#[test]
fn a_full_disk_is_named_and_the_daemon_recovers_when_space_returns() {
    let fs = match Tmpfs::mount("8m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mut fs = fs;
    let home = fs.dir.take().expect("the mount's dir");
    let d = Daemon::start_in(home, "");
    let before = d.ok(&["sessions", "spawn", "--task", "before the disk filled"]);

    fs.fill("filler");
    // A task large enough that its commit must grow the WAL onto the full disk.
    let big = "x".repeat(120 * 1024);
    let out = d.run(&["sessions", "spawn", "--task", &big]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "a spawn onto a full disk must fail: {err}"
    );
    assert!(
        err.contains("no space left on the device holding") && err.contains("openclaw.db"),
        "the error names the cause and the store: {err}"
    );
    assert!(
        !err.contains("not valid"),
        "not a corruption message: {err}"
    );

    std::fs::remove_file(fs.path().join("filler")).expect("free the space");
    let after = d.ok(&["sessions", "spawn", "--task", "after space returned"]);
    assert_ne!(after, before);
    let history = d.json(&["sessions", "history", &before]);
    assert_eq!(history["messages"][0]["content"], "before the disk filled");
    let history = d.json(&["sessions", "history", &after]);
    assert_eq!(history["messages"][0]["content"], "after space returned");
    drop(d);
}
