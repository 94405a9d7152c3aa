//! The CLI talks only to a daemon it should (issue 15 item 1): a socket planted by another
//! user (`nobody`, via setpriv) where the CLI looks for its own — in a directory that user
//! made, or moved into the CLI user's own directory — is refused before anything is sent,
//! with a sentence naming the path and its owner; and autostart will not start a daemon in
//! a directory someone else owns. Needs root (to become nobody) and a system python3;
//! skipped with the reason otherwise.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::mcp::RawMcp;
use common::{
    LineChild, NOBODY_UID, OPENCLAW, nobody_command, nobody_unavailable, output_within, stderr,
    system_tool,
};

const CALL_SECS: u64 = 20;

/// An impostor: listens on argv[1], answers every request as a daemon would (with a forged
/// key), and counts the bytes it was sent. A line `QUIT` (from the test) makes it print the
/// count and exit.
const IMPOSTOR_PY: &str = r#"import json, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(8)
print("ready", flush=True)
received = 0
while True:
    c, _ = s.accept()
    line = c.makefile("rb").readline()
    if line.strip() == b"QUIT":
        print("received", received, flush=True)
        break
    received += len(line)
    if not line:
        # Connected and sent nothing: what a careful client does.
        c.close()
        continue
    try:
        rid = json.loads(line).get("id")
    except ValueError:
        rid = None
    forged = {"status": "accepted", "sessionKey": "agent:main:subagent:forged", "sessionId": "f", "runId": "r"}
    try:
        c.sendall((json.dumps({"jsonrpc": "2.0", "id": rid, "result": forged}) + "\n").encode())
    except OSError:
        pass
    c.close()
"#;

macro_rules! require_nobody_and_python {
    ($name:expr) => {
        if let Some(why) = nobody_unavailable() {
            eprintln!("SKIP {}: {why}", $name);
            return;
        }
        if system_tool("python3").is_none() {
            eprintln!(
                "SKIP {}: no python3 in /usr/bin, /bin or /usr/local/bin",
                $name
            );
            return;
        }
    };
}

struct Impostor {
    child: LineChild,
}

impl Impostor {
    /// Started as nobody, listening at `socket` (whose directory nobody can write).
    fn listen(socket: &Path) -> Impostor {
        let python = system_tool("python3").expect("python3");
        let mut cmd = nobody_command(
            &python,
            &["-c", IMPOSTOR_PY, socket.to_str().expect("utf-8 path")],
            &[],
        );
        let mut child = LineChild::spawn(&mut cmd, "impostor as nobody");
        child.wait_line(CALL_SECS, |l| l == "ready");
        Impostor { child }
    }

    /// How many bytes anyone sent it before now; it exits.
    fn received(mut self, at: &Path) -> u64 {
        use std::io::Write;
        let mut quit = std::os::unix::net::UnixStream::connect(at).expect("connect to quit");
        quit.write_all(b"QUIT\n").expect("quit");
        let line = self
            .child
            .wait_line(CALL_SECS, |l| l.starts_with("received "));
        line["received ".len()..].parse().expect("a count")
    }
}

fn cli(env: &[(&str, &Path)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(OPENCLAW);
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    output_within(&mut cmd, CALL_SECS, &format!("openclaw {}", args.join(" ")))
}

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("openclaw-trust-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A directory owned by nobody, as if nobody had made it first.
fn nobodys_dir(path: &Path) {
    std::fs::create_dir(path).unwrap();
    std::os::unix::fs::chown(path, Some(NOBODY_UID), Some(NOBODY_UID)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// An impostor (nobody) listening at the socket in this user's own 0700 home: it listened in
/// a directory of its own, and the socket was moved to where this user's openclaw looks (a
/// listening socket keeps listening when its file is renamed). (scratch, home, socket, it).
fn impostor_in_my_home() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    Impostor,
) {
    let base = scratch();
    let theirs = base.path().join("theirs");
    nobodys_dir(&theirs);
    let planted = theirs.join("s.sock");
    let impostor = Impostor::listen(&planted);
    let home = base.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = home.join("openclaw.sock");
    std::fs::rename(&planted, &socket).unwrap();
    (base, home, socket, impostor)
}

#[test]
fn a_socket_planted_in_another_users_directory_is_refused_before_sending() {
    require_nobody_and_python!(
        "a_socket_planted_in_another_users_directory_is_refused_before_sending"
    );
    // Where a cron job without XDG_RUNTIME_DIR... or any runtime dir: another user got there
    // first and made the directory.
    let base = scratch();
    let runtime = base.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    let dir = runtime.join("openclaw");
    nobodys_dir(&dir);
    let socket = dir.join("openclaw.sock");
    let impostor = Impostor::listen(&socket);
    let home = base.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let env = [
        ("HOME", home.as_path()),
        ("XDG_RUNTIME_DIR", runtime.as_path()),
        ("OPENCLAW_NO_AUTOSTART", Path::new("1")),
    ];
    for args in [
        &["sessions", "spawn", "--task", "the secret plan"][..],
        &["daemon", "status"],
    ] {
        let out = cli(&env, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {err}");
        assert!(
            err.contains(&dir.display().to_string()),
            "names the directory: {err}"
        );
        assert!(err.contains("uid 65534"), "names its owner: {err}");
        assert!(err.contains("OPENCLAW_SOCKET"), "says what to do: {err}");
    }
    assert_eq!(
        impostor.received(&socket),
        0,
        "nothing reached the impostor"
    );
}

#[test]
fn another_users_process_behind_a_socket_in_my_own_directory_is_refused() {
    require_nobody_and_python!(
        "another_users_process_behind_a_socket_in_my_own_directory_is_refused"
    );
    let (_base, home, socket, impostor) = impostor_in_my_home();
    let env = [
        ("HOME", home.as_path()),
        ("OPENCLAW_HOME", home.as_path()),
        ("OPENCLAW_NO_AUTOSTART", Path::new("1")),
    ];
    let out = cli(&env, &["sessions", "spawn", "--task", "the secret plan"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(
        err.contains("uid 65534") && err.contains("Nothing was sent"),
        "{err}"
    );
    assert!(!stdout_has_key(&out), "no forged key printed");
    assert_eq!(
        impostor.received(&socket),
        0,
        "nothing reached the impostor"
    );
}

#[test]
fn autostart_will_not_start_a_daemon_in_a_directory_someone_else_owns() {
    require_nobody_and_python!(
        "autostart_will_not_start_a_daemon_in_a_directory_someone_else_owns"
    );
    let base = scratch();
    let runtime = base.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    let dir = runtime.join("openclaw");
    nobodys_dir(&dir);
    let home = base.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let data = base.path().join("data");
    let env = [
        ("HOME", home.as_path()),
        ("XDG_RUNTIME_DIR", runtime.as_path()),
        ("XDG_DATA_HOME", data.as_path()),
    ];
    let out = cli(&env, &["sessions", "list"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains(&dir.display().to_string()) && err.contains("uid 65534"),
        "{err}"
    );
    assert!(
        !err.contains("start-up lock"),
        "the cause, not a symptom: {err}"
    );
    assert!(
        !dir.join("openclaw.start.lock").exists(),
        "nothing made in their directory"
    );
    assert!(
        !data.join("openclaw").join("openclawd.log").exists(),
        "no daemon started"
    );
}

fn stdout_has_key(out: &std::process::Output) -> bool {
    String::from_utf8_lossy(&out.stdout).contains("forged")
}

/// `openclaw mcp` checks the socket as every command does: a tool call behind an impostor's
/// socket fails with the reason, and the impostor hears nothing (not even the handshake).
#[test]
fn openclaw_mcp_refuses_an_impostor_socket_per_call_and_sends_it_nothing() {
    require_nobody_and_python!("openclaw_mcp_refuses_an_impostor_socket_per_call");
    let (_base, home, socket, impostor) = impostor_in_my_home();
    let mut cmd = Command::new(OPENCLAW);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("OPENCLAW_HOME", &home)
        .env("OPENCLAW_NO_AUTOSTART", "1")
        .arg("mcp");
    let mut mcp = RawMcp::spawn(&mut cmd);
    assert!(mcp.initialize()["result"].is_object());
    let result = mcp.call_tool(
        2,
        "sessions_spawn",
        serde_json::json!({"task": "the secret plan"}),
    );
    drop(mcp);
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&socket.display().to_string()) && text.contains("uid 65534"),
        "the tool result names the socket and who is behind it: {result}"
    );
    assert!(!text.contains("forged"), "no forged key: {result}");
    assert_eq!(
        impostor.received(&socket),
        0,
        "nothing reached the impostor"
    );
}
