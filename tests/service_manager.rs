//! The daemon under a service manager, tested without one: socket activation from a pre-bound
//! socket (`LISTEN_FDS`/`LISTEN_PID`), readiness, reload and stop told to a `NOTIFY_SOCKET`
//! datagram socket the test reads, and `daemon status` saying how the daemon was started.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{OPENCLAW, OPENCLAWD, output_within, stderr, stdout, wait_child, wait_pid_gone};

const SECS: u64 = 30;

/// What systemd would hear: the datagrams the daemon sends to NOTIFY_SOCKET.
struct Manager {
    socket: UnixDatagram,
}

impl Manager {
    fn bind(path: &Path) -> Manager {
        let socket = UnixDatagram::bind(path).expect("bind notify socket");
        Manager { socket }
    }

    /// The next datagram that contains `want`, skipping others; panics at the deadline.
    fn expect(&self, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(SECS);
        let mut heard = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {want:?} from the daemon; heard {heard:?}"
            );
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            let mut buf = [0u8; 4096];
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if msg.lines().any(|l| l == want) {
                        return msg;
                    }
                    heard.push(msg);
                }
                Err(e) => panic!("no {want:?} from the daemon ({e}); heard {heard:?}"),
            }
        }
    }
}

/// `openclawd` as systemd starts it: `fd` as fd 3, LISTEN_PID naming the daemon itself.
fn activated_daemon(home: &Path, fd: i32, notify: &Path) -> Child {
    let log = std::fs::File::create(home.join("daemon.log")).expect("log");
    let mut cmd = Command::new("sh");
    // LISTEN_PID must be the daemon's pid: the shell's, kept by exec.
    cmd.args([
        "-c",
        "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\"",
        OPENCLAWD,
    ])
    .env("OPENCLAW_HOME", home)
    .env("OPENCLAW_SOCKET", home.join("openclaw.sock"))
    .env("NOTIFY_SOCKET", notify)
    .env_remove("XDG_RUNTIME_DIR")
    .stdin(Stdio::null())
    .stdout(log.try_clone().expect("dup"))
    .stderr(log);
    common::pass_as_fd_3(&mut cmd, fd);
    cmd.spawn().expect("spawn openclawd")
}

fn cli(home: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(OPENCLAW);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("OPENCLAW_HOME", home)
        .env("OPENCLAW_NO_AUTOSTART", "1")
        .args(args)
        .stdin(Stdio::null());
    output_within(&mut cmd, SECS, &format!("openclaw {args:?}"))
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = cli(home, args);
    assert!(
        out.status.success(),
        "openclaw {args:?}: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out).trim_end().to_string()
}

#[test]
fn a_socket_passed_by_systemd_is_served_and_systemd_hears_ready_reload_and_stop() {
    let home = tempfile::Builder::new()
        .prefix("openclaw-test-")
        .tempdir()
        .expect("tempdir");
    std::fs::write(
        home.path().join("config.toml"),
        "[agents.envcheck]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"echo notify=${NOTIFY_SOCKET:-none} listen=${LISTEN_FDS:-none}/${LISTEN_PID:-none}\"]\n",
    )
    .expect("config");
    let socket = home.path().join("openclaw.sock");
    let listener = UnixListener::bind(&socket).expect("pre-bind the socket");
    let manager = Manager::bind(&home.path().join("notify.sock"));
    let mut child = activated_daemon(
        home.path(),
        listener.as_raw_fd(),
        &home.path().join("notify.sock"),
    );
    drop(listener);
    let ready = manager.expect("READY=1");
    assert!(ready.contains("READY=1"), "{ready}");

    let status: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["daemon", "status", "--json"])).expect("json");
    assert_eq!(status["pid"], child.id());
    assert_eq!(status["startedBy"], "systemd");
    assert_eq!(
        status["logFile"].as_str().map(Path::new),
        Some(home.path().join("daemon.log").as_path()),
        "{status}"
    );
    let key = ok(home.path(), &["sessions", "spawn", "--task", "hello"]);
    let reply = ok(home.path(), &["sessions", "wait", "--session", &key]);
    assert!(reply.contains("hello"), "{reply}");
    // What systemd handed the daemon is not handed on to agents.
    let env = ok(
        home.path(),
        &[
            "sessions", "spawn", "--agent", "envcheck", "--task", "x", "--wait",
        ],
    );
    assert!(env.contains("notify=none listen=none/none"), "{env}");

    ok(home.path(), &["daemon", "reload"]);
    manager.expect("RELOADING=1");
    manager.expect("READY=1");

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    manager.expect("STOPPING=1");
    let exit = wait_child(&mut child, Duration::from_secs(SECS)).expect("daemon exits");
    assert!(exit.success(), "{exit:?}");
    // systemd owns the socket file: it stays, so the next client starts the daemon again.
    assert!(socket.exists(), "the activated socket was removed");
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_socket_is_refused_with_the_fix() {
    let home = tempfile::Builder::new()
        .prefix("openclaw-test-")
        .tempdir()
        .expect("tempdir");
    let not_a_socket = std::fs::File::open("/dev/null").expect("open");
    let notify = home.path().join("notify.sock");
    let _manager = Manager::bind(&notify);
    let mut child = activated_daemon(home.path(), not_a_socket.as_raw_fd(), &notify);
    let exit = wait_child(&mut child, Duration::from_secs(SECS)).expect("daemon exits");
    assert_eq!(exit.code(), Some(1));
    let log = std::fs::read_to_string(home.path().join("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("LISTEN_FDS") && log.contains("ListenStream="),
        "{log}"
    );
}

#[test]
fn status_says_an_autostarted_daemon_was_started_on_demand_and_where_it_logs() {
    let home = tempfile::Builder::new()
        .prefix("openclaw-test-")
        .tempdir()
        .expect("tempdir");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(OPENCLAW);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("OPENCLAW_HOME", home.path())
            .env("OPENCLAWD", OPENCLAWD)
            .args(args)
            .stdin(Stdio::null());
        output_within(&mut cmd, SECS, &format!("openclaw {args:?}"))
    };
    let out = run(&["sessions", "spawn", "--task", "hi"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["daemon", "status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let pid = status["pid"].as_i64().expect("pid") as i32;
    assert_eq!(status["startedBy"], "autostart", "{status}");
    let log = home.path().join("data").join("openclawd.log");
    assert_eq!(
        status["logFile"].as_str().map(Path::new),
        Some(log.as_path()),
        "{status}"
    );
    let out = run(&["daemon", "status"]);
    assert!(stdout(&out).contains("autostart"), "{}", stdout(&out));
    let out = run(&["daemon", "stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(wait_pid_gone(pid, SECS));
}

#[test]
fn a_socket_deleted_under_the_daemon_is_made_again() {
    let d = common::Daemon::start();
    let pid = d.pid();
    std::fs::remove_file(d.socket()).expect("delete the socket");
    // The daemon binds the path again on its own; the first status after that reaches it.
    let end = Instant::now() + Duration::from_secs(SECS);
    let status = loop {
        let out = d.run(&["daemon", "status", "--json"]);
        if out.status.success() {
            break serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("json");
        }
        assert!(
            Instant::now() < end,
            "the socket was not made again: {}",
            stderr(&out)
        );
        std::thread::yield_now();
    };
    assert_eq!(status["pid"], pid, "the same daemon answers");
    let key = d.ok(&["sessions", "spawn", "--task", "still here"]);
    let reply = d.ok(&["sessions", "wait", "--session", &key]);
    assert!(reply.contains("still here"), "{reply}");
    let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
    assert!(log.contains("listening there again"), "{log}");
}
