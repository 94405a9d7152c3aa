//! Who may talk to the daemon, and where it agrees to listen: another uid is refused with
//! `pairing_required` (exit 5) even when the socket mode lets it connect; the daemon refuses an
//! unsafe socket directory and a second daemon on the same socket, and replaces a stale socket.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Daemon, OPENCLAW, OPENCLAWD, json_stdout, output_within, stderr, stdout};
use openclaw::protocol::{DaemonStatus, HistoryResult, ListResult};

const CALL_SECS: u64 = 20;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn setpriv() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join("setpriv"))
        .find(|p| p.is_file())
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// `setpriv --reuid=nobody --regid=nogroup --clear-groups PROGRAM ARGS...` with a clean env.
fn as_nobody(setpriv: &Path, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// The openclaw binary, somewhere `nobody` can execute it (a 0755 copy if target/ is closed).
fn binary_for_nobody(setpriv: &Path, scratch: &Path) -> PathBuf {
    let direct = PathBuf::from(OPENCLAW);
    let probe = output_within(
        &mut as_nobody(
            setpriv,
            Path::new("/bin/sh"),
            &["-c", "test -x \"$1\" && test -r \"$1\"", "sh", OPENCLAW],
            &[],
        ),
        CALL_SECS,
        "probe whether nobody can run the openclaw binary",
    );
    if probe.status.success() {
        return direct;
    }
    chmod(scratch, 0o755);
    let copy = scratch.join("openclaw");
    std::fs::copy(&direct, &copy).expect("copy openclaw binary");
    chmod(&copy, 0o755);
    copy
}

#[test]
fn other_uid_is_refused_with_pairing_required() {
    if !is_root() {
        eprintln!("SKIP other_uid_is_refused_with_pairing_required: needs root to run as nobody");
        return;
    }
    let Some(setpriv) = setpriv() else {
        eprintln!("SKIP other_uid_is_refused_with_pairing_required: setpriv(1) not found");
        return;
    };
    let d = Daemon::start_with_config("[socket]\nmode = \"0666\"\n");
    chmod(d.home_path(), 0o755);
    let mode = std::fs::metadata(d.socket()).expect("socket").mode() & 0o777;
    assert_eq!(
        mode, 0o666,
        "[socket] mode = \"0666\" should give the socket mode 0666"
    );

    let scratch = tempfile::Builder::new()
        .prefix("openclaw-nobody-")
        .tempdir()
        .expect("tmp");
    let bin = binary_for_nobody(&setpriv, scratch.path());
    let sock = d.socket();
    let env = [
        ("OPENCLAW_SOCKET", sock.to_str().expect("utf-8 path")),
        ("OPENCLAW_NO_AUTOSTART", "1"),
        ("HOME", "/tmp"),
    ];

    for args in [
        vec!["sessions", "list"],
        vec!["sessions", "spawn", "--task", "sneaky"],
        vec!["daemon", "status", "--json"],
    ] {
        let out = output_within(
            &mut as_nobody(&setpriv, &bin, &args, &env),
            CALL_SECS,
            &format!("openclaw {} as nobody", args.join(" ")),
        );
        assert_eq!(
            out.status.code(),
            Some(5),
            "`openclaw {}` as uid nobody should exit 5 (pairing required); exit {:?}\n\
             stdout: {}\nstderr: {}",
            args.join(" "),
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stderr(&out).to_lowercase().contains("pairing"),
            "stderr should say pairing is required, got: {}",
            stderr(&out)
        );
        assert!(
            !args.contains(&"spawn") || stdout(&out).is_empty(),
            "a refused spawn printed a key: {}",
            stdout(&out)
        );
    }

    // The refused spawn did nothing; the owner (root) is trusted on the same socket.
    let out = output_within(
        d.cli().args(["sessions", "list", "--json"]),
        CALL_SECS,
        "list",
    );
    assert!(
        out.status.success(),
        "root's `sessions list` failed: {}",
        stderr(&out)
    );
    let list: ListResult =
        serde_json::from_value(json_stdout(&out, "sessions list --json")).expect("list shape");
    assert!(
        list.sessions.is_empty(),
        "a refused peer created sessions: {list:?}"
    );
}

#[test]
fn socket_is_0600_by_default() {
    let d = Daemon::start();
    let meta = std::fs::metadata(d.socket()).expect("socket exists");
    assert_eq!(
        meta.mode() & 0o777,
        0o600,
        "default socket mode should be 0600"
    );
}

#[test]
fn store_files_are_private() {
    let d = Daemon::start();
    d.ok(&["sessions", "spawn", "--task", "x"]);
    let data = d.home_path().join("data");
    for name in ["openclaw.db", "openclaw.db-wal", "openclaw.db-shm"] {
        let meta = std::fs::metadata(data.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            meta.mode() & 0o077,
            0,
            "{name} must not be readable by others: mode {:o}",
            meta.mode() & 0o777
        );
    }
    let dir = std::fs::metadata(&data).expect("data dir");
    assert_eq!(
        dir.mode() & 0o077,
        0,
        "the data directory is created 0700: {:o}",
        dir.mode() & 0o777
    );
}

#[test]
fn refuses_an_unsafe_socket_directory() {
    let mut d = Daemon::start();
    let status = d.stop().expect("daemon exits on SIGTERM");
    assert!(
        status.success(),
        "SIGTERM should stop the daemon with exit 0, got {status:?}"
    );
    assert!(
        !d.socket().exists(),
        "a daemon stopped by SIGTERM should remove its socket"
    );
    let home = d.home_path().to_path_buf();
    let home_str = home.display().to_string();

    // (what, mode, give the directory to nobody)
    let mut cases = vec![
        ("world-writable (0777)", 0o777, false),
        ("group-writable (0770)", 0o770, false),
    ];
    if is_root() {
        cases.push(("owned by another user (nobody)", 0o700, true));
    }
    for (what, mode, to_nobody) in cases {
        chmod(&home, mode);
        if to_nobody {
            std::os::unix::fs::chown(&home, Some(65534), Some(65534)).expect("chown nobody");
        }
        std::fs::write(d.log_path(), "").expect("truncate daemon log");
        match d.spawn_daemon() {
            Ok(()) => panic!(
                "openclawd started although its socket directory {home_str} is {what}; it must refuse"
            ),
            Err(msg) => assert!(
                msg.contains(&home_str),
                "refusing a socket directory that is {what}, the daemon should name the \
                 directory {home_str}; it said:\n{msg}"
            ),
        }
        assert!(
            !d.socket().exists(),
            "a refused start left a socket file ({what})"
        );
    }

    // Made safe again, it starts: the refusals were about the directory, nothing else.
    if is_root() {
        std::os::unix::fs::chown(&home, Some(0), Some(0)).expect("chown back");
    }
    chmod(&home, 0o700);
    d.spawn_daemon()
        .expect("daemon starts once the directory is 0700 and ours");
    let out = output_within(
        d.cli().args(["sessions", "list"]),
        CALL_SECS,
        "sessions list",
    );
    assert!(
        out.status.success(),
        "sessions list after restart: {}",
        stderr(&out)
    );
}

fn second_daemon(home: &Path) -> Output {
    let mut cmd = Command::new(OPENCLAWD);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("OPENCLAW_HOME", home)
        .stdin(Stdio::null());
    output_within(
        &mut cmd,
        CALL_SECS,
        "a second openclawd on the same home (it should refuse and exit, not run)",
    )
}

#[test]
fn second_daemon_refuses_naming_the_running_one() {
    let d = Daemon::start();
    let out = second_daemon(d.home_path());
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "a second openclawd on the same socket should exit non-zero, got {:?}; stderr: {err}",
        out.status.code()
    );
    let pid = d.pid().to_string();
    assert!(
        err.contains(&pid),
        "the refusal should name the running daemon (pid {pid}), got:\n{err}"
    );
    assert_eq!(
        err.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "a failed start should print one clear line on stderr, got:\n{err}"
    );

    // The first daemon is untouched: its socket still answers, as itself.
    assert!(
        d.socket().exists(),
        "the refused second daemon removed the live socket"
    );
    let out = output_within(
        d.cli().args(["daemon", "status", "--json"]),
        CALL_SECS,
        "status",
    );
    assert!(
        out.status.success(),
        "first daemon unreachable after the refusal: {}",
        stderr(&out)
    );
    let st: DaemonStatus =
        serde_json::from_value(json_stdout(&out, "daemon status --json")).expect("status shape");
    assert_eq!(
        st.pid,
        d.pid(),
        "the socket is answered by another daemon than the first"
    );
}

#[test]
fn stale_socket_of_a_killed_daemon_is_replaced() {
    let mut d = Daemon::start();
    let out = output_within(
        d.cli()
            .args(["sessions", "spawn", "--task", "before the crash"]),
        CALL_SECS,
        "spawn",
    );
    assert!(out.status.success(), "spawn: {}", stderr(&out));
    let key = stdout(&out).trim().to_string();
    let old_pid = d.pid();

    d.kill9();
    assert!(
        d.socket().exists(),
        "precondition: kill -9 leaves the socket file behind"
    );
    let out = output_within(
        d.cli().args(["sessions", "list"]),
        CALL_SECS,
        "list, daemon dead",
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "with a stale socket and no daemon the CLI should exit 3 (unreachable); stderr: {}",
        stderr(&out)
    );

    d.spawn_daemon()
        .unwrap_or_else(|e| panic!("restart over a stale socket failed: {e}"));
    let out = output_within(
        d.cli().args(["daemon", "status", "--json"]),
        CALL_SECS,
        "status",
    );
    assert!(
        out.status.success(),
        "daemon status after restart: {}",
        stderr(&out)
    );
    let st: DaemonStatus =
        serde_json::from_value(json_stdout(&out, "daemon status --json")).expect("status shape");
    assert_eq!(
        st.pid,
        d.pid(),
        "status should come from the restarted daemon"
    );
    assert_ne!(st.pid, old_pid);

    let out = output_within(
        d.cli().args(["sessions", "history", &key, "--json"]),
        CALL_SECS,
        "history after restart",
    );
    assert!(
        out.status.success(),
        "history of {key} after restart: {}",
        stderr(&out)
    );
    let h: HistoryResult =
        serde_json::from_value(json_stdout(&out, "history --json")).expect("history shape");
    assert_eq!(
        h.messages.first().and_then(|m| m.content.as_str()),
        Some("before the crash"),
        "the acknowledged spawn's task must survive kill -9"
    );
}
