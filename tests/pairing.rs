//! Other local users (issue 6): a second uid (`nobody`, via setpriv) pairs its device with the
//! daemon through the real CLI, works within the scopes the owner granted, sees only its own
//! sessions, and is cut off by a revocation; a replayed device proof and a key file readable by
//! others are refused. Everything here needs root (to become nobody) and is skipped with a
//! printed reason otherwise.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output};

use common::mcp::RawMcp;
use common::{
    Daemon, LineChild, NOBODY_UID, RawConn, connect_as_nobody, json_stdout, nobody_command,
    nobody_unavailable, open_home_to_others, openclaw_for_nobody, output_within, stderr, stdout,
};
use openclaw::device::{Device, KEY_FILE, Proof};
use serde_json::{Value, json};

const CALL_SECS: u64 = 20;
const OPEN_SOCKET: &str = "[socket]\nmode = \"0666\"\n";

/// Skips the test (printing why) unless commands can run as nobody.
macro_rules! require_nobody {
    ($name:expr) => {
        if let Some(why) = nobody_unavailable() {
            eprintln!("SKIP {}: {why}", $name);
            return;
        }
    };
}

/// A daemon whose socket other users may open.
fn open_daemon() -> Daemon {
    let d = Daemon::start_with_config(OPEN_SOCKET);
    open_home_to_others(&d);
    d
}

/// The user `nobody` with a HOME and config dir of its own, running the real CLI against one
/// daemon. Each `Other` has its own config dir, so its own device key.
struct Other {
    _scratch: tempfile::TempDir,
    home: PathBuf,
    config: PathBuf,
    bin: PathBuf,
    socket: PathBuf,
    name: String,
}

impl Other {
    fn new(d: &Daemon, name: &str) -> Other {
        let scratch = tempfile::Builder::new()
            .prefix("openclaw-nobody-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch");
        let bin = openclaw_for_nobody(scratch.path());
        let home = scratch.path().join("home");
        std::fs::create_dir(&home).expect("mkdir home");
        std::os::unix::fs::chown(&home, Some(NOBODY_UID), Some(NOBODY_UID)).expect("chown home");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        Other {
            config: home.join(".config"),
            home,
            bin,
            socket: d.socket(),
            _scratch: scratch,
            name: name.to_string(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let env = [
            ("HOME", self.home.to_str().expect("utf-8")),
            ("XDG_CONFIG_HOME", self.config.to_str().expect("utf-8")),
            ("OPENCLAW_SOCKET", self.socket.to_str().expect("utf-8")),
            ("OPENCLAW_NO_AUTOSTART", "1"),
        ];
        nobody_command(&self.bin, args, &env)
    }

    fn run(&self, args: &[&str]) -> Output {
        output_within(
            &mut self.cmd(args),
            CALL_SECS,
            &format!("`openclaw {}` as {}", args.join(" "), self.name),
        )
    }

    /// Runs and asserts exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`openclaw {}` as {} should succeed, exit {:?}\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.name,
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Runs and asserts exit 5 (pairing required / forbidden); returns stderr.
    fn refused(&self, args: &[&str], why: &str) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(5),
            "`openclaw {}` as {} should exit 5 ({why}), got {:?}\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.name,
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    }

    fn key_file(&self) -> PathBuf {
        self.config.join("openclaw").join(KEY_FILE)
    }

    /// The fingerprint of this user's device key (which must exist by now).
    fn fingerprint(&self) -> String {
        let key = self.key_file();
        assert!(
            key.exists(),
            "{}: the CLI should have created its device key at {}",
            self.name,
            key.display()
        );
        Device::load_or_create(key.parent().expect("dir"))
            .unwrap_or_else(|e| panic!("{}: reading {}: {e}", self.name, key.display()))
            .fingerprint()
    }
}

/// The request id the CLI tells an unpaired user to approve: the word after
/// "openclaw pairing approve " in its message.
fn approve_id(msg: &str, who: &str) -> String {
    let at = msg.find("openclaw pairing approve ").unwrap_or_else(|| {
        panic!("{who}: the refusal must give the owner's command `openclaw pairing approve ID`, got:\n{msg}")
    });
    let id: String = msg[at + "openclaw pairing approve ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    assert!(
        id.len() >= 4,
        "{who}: the request id in the approve command is too short to use: {id:?} in\n{msg}"
    );
    id
}

/// `openclaw ARGS...` as the owner (root, same as the daemon), asserting exit 0.
fn owner(d: &Daemon, args: &[&str]) -> Output {
    let out = output_within(
        d.cli().args(args),
        CALL_SECS,
        &format!("`openclaw {}` as the owner", args.join(" ")),
    );
    assert!(
        out.status.success(),
        "`openclaw {}` as the owner failed, exit {:?}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

fn pairing_list(d: &Daemon) -> Value {
    let out = owner(d, &["pairing", "list", "--json"]);
    let v = json_stdout(&out, "openclaw pairing list --json");
    assert!(
        v["pending"].is_array() && v["devices"].is_array(),
        "pairing list --json is {{pending: [...], devices: [...]}}: {v}"
    );
    v
}

fn device_entry(list: &Value, fingerprint: &str) -> Option<Value> {
    list["devices"]
        .as_array()?
        .iter()
        .find(|d| d["fingerprint"] == fingerprint)
        .cloned()
}

/// Asks as `other` (refused, exit 5), approves as the owner with these scopes (default: the
/// daemon's), and returns the device fingerprint.
fn pair(d: &Daemon, other: &Other, scopes: Option<&str>) -> String {
    let msg = other.refused(&["sessions", "list"], "not paired yet");
    let id = approve_id(&msg, &other.name);
    let fp = other.fingerprint();
    let mut args = vec!["pairing", "approve", id.as_str()];
    if let Some(s) = scopes {
        args.extend(["--scopes", s]);
    }
    owner(d, &args);
    let list = pairing_list(d);
    let dev = device_entry(&list, &fp).unwrap_or_else(|| {
        panic!("after `openclaw pairing approve {id}` the device {fp} is listed: {list}")
    });
    assert!(
        dev["revokedAt"].is_null(),
        "a fresh device is not revoked: {dev}"
    );
    fp
}

fn spawn_key(out: &str) -> String {
    let key = out.trim().to_string();
    assert!(
        !key.is_empty() && !key.contains('\n'),
        "sessions spawn prints the new session's key on one line, got {out:?}"
    );
    key
}

fn session_keys(list_json: &str, what: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(list_json.trim())
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {list_json}"));
    v["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no sessions array: {v}"))
        .iter()
        .map(|s| s["key"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ------------------------------------------------------------------ the user's story

#[test]
fn unpaired_user_is_told_the_approve_command_then_works_and_sees_only_its_own() {
    require_nobody!("unpaired_user_is_told_the_approve_command_then_works_and_sees_only_its_own");
    let d = open_daemon();
    let owners = spawn_key(&stdout(&owner(
        &d,
        &["sessions", "spawn", "--task", "the owner's secret task"],
    )));

    // Unpaired: exit 5, with the command the owner must run.
    let a = Other::new(&d, "nobody (device A)");
    let msg = a.refused(&["sessions", "list"], "this device is not paired");
    let id = approve_id(&msg, &a.name);
    assert!(
        msg.contains("error:"),
        "the refusal is printed as `error: ...`: {msg}"
    );

    // The device key was created on first use: 0600, nobody's.
    let meta = std::fs::metadata(a.key_file()).expect("device key");
    assert_eq!(meta.mode() & 0o777, 0o600, "the device key is created 0600");
    assert_eq!(meta.uid(), NOBODY_UID, "the device key belongs to its user");
    let fp = a.fingerprint();

    // The owner sees the request: id, uid, user, fingerprint.
    let list = pairing_list(&d);
    let pending = list["pending"].as_array().expect("pending");
    let req = pending
        .iter()
        .find(|r| r["requestId"].as_str().is_some_and(|r| r.starts_with(&id)))
        .unwrap_or_else(|| {
            panic!("pairing list --json shows no pending request starting with {id}: {list}")
        });
    assert_eq!(req["uid"], NOBODY_UID, "the request's uid: {req}");
    assert_eq!(req["user"], "nobody", "the request's user name: {req}");
    assert_eq!(
        req["fingerprint"],
        fp.as_str(),
        "the request's device fingerprint: {req}"
    );
    assert!(
        req["requestedAt"].is_string() && req["expiresAt"].is_string(),
        "the request says when it was made and when it expires: {req}"
    );
    let table = stdout(&owner(&d, &["pairing", "list"]));
    assert!(
        table.contains(&id[..4]) && table.contains(&fp[..8]),
        "`openclaw pairing list` shows the request id and the fingerprint:\n{table}"
    );

    // Approved (default scopes), the same command now works.
    owner(&d, &["pairing", "approve", &id]);
    let list = pairing_list(&d);
    let dev = device_entry(&list, &fp).unwrap_or_else(|| panic!("approved device listed: {list}"));
    let mut scopes: Vec<String> = serde_json::from_value(dev["scopes"].clone()).expect("scopes");
    scopes.sort();
    assert_eq!(
        scopes,
        ["sessions.read", "sessions.write"],
        "approve without --scopes grants sessions.read and sessions.write: {dev}"
    );
    assert!(
        !list["pending"].to_string().contains(&id),
        "an approved request is no longer pending: {list}"
    );
    let mine_before = session_keys(&a.ok(&["sessions", "list", "--json"]), "A's list");
    assert!(
        mine_before.is_empty(),
        "a paired device without admin must not see the owner's sessions, got {mine_before:?}"
    );

    // It sees what it creates, and only that.
    let mine = spawn_key(&a.ok(&["sessions", "spawn", "--task", "nobody's own task"]));
    let keys = session_keys(&a.ok(&["sessions", "list", "--json"]), "A's list");
    assert_eq!(
        keys,
        std::slice::from_ref(&mine),
        "A lists its own session and nothing else"
    );
    let hist = a.ok(&["sessions", "history", &mine]);
    assert!(
        hist.contains("nobody's own task"),
        "A reads its own history: {hist}"
    );
    let out = a.run(&["sessions", "history", &owners]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "the owner's session is not found for A (exit 4), got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    assert!(
        !stdout(&out).contains("secret") && !stderr(&out).contains("secret"),
        "nothing of the owner's session leaks to A"
    );

    // The owner sees everything, A's session included.
    let all = session_keys(
        &stdout(&owner(&d, &["sessions", "list", "--json"])),
        "the owner's list",
    );
    assert!(
        all.contains(&owners) && all.contains(&mine),
        "the owner sees its own and A's sessions: {all:?}"
    );

    // Managing pairing needs admin: refused, naming it.
    let err = a.refused(&["pairing", "list"], "pairing needs the admin scope");
    assert!(
        err.contains("admin"),
        "the refusal names the missing scope `admin`: {err}"
    );

    // The owner never needed a device key.
    assert!(
        !d.home_path().join(KEY_FILE).exists(),
        "the owner's CLI created a device key it does not need ({})",
        d.home_path().join(KEY_FILE).display()
    );
}

#[test]
fn openclaw_mcp_proves_this_device_and_acts_as_it() {
    require_nobody!("openclaw_mcp_proves_this_device_and_acts_as_it");
    let d = open_daemon();
    let other = Other::new(&d, "nobody's MCP client");
    let mut mcp = RawMcp::spawn(&mut other.cmd(&["mcp"]));
    assert!(mcp.initialize()["result"].is_object());
    // Not paired yet: the tool call says what the owner must run, as the CLI would.
    let refused = mcp.call_tool(2, "sessions_list", json!({}));
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(
        refused["structuredContent"]["error"]["kind"], "pairing_required",
        "{refused}"
    );
    let text = refused["content"][0]["text"].as_str().unwrap_or_default();
    let id = approve_id(text, &other.name);
    owner(&d, &["pairing", "approve", &id]);
    // The same MCP session goes on: the next call proves the device and acts as it.
    let spawned = mcp.call_tool(
        3,
        "sessions_spawn",
        json!({"task": "from a paired device's MCP client"}),
    );
    assert_ne!(spawned["isError"], true, "{spawned}");
    let key = spawned["structuredContent"]["sessionKey"]
        .as_str()
        .unwrap_or_else(|| panic!("a session key: {spawned}"))
        .to_string();
    drop(mcp);
    let owners = spawn_key(&stdout(&owner(
        &d,
        &["sessions", "spawn", "--task", "the owner's own"],
    )));
    let own = session_keys(
        &other.ok(&["sessions", "list", "--json"]),
        "the device's list",
    );
    assert!(
        own.contains(&key) && !own.contains(&owners),
        "the MCP client's session is the device's own (it sees it, and not the owner's): {own:?}"
    );
}

#[test]
fn scopes_limit_what_a_device_may_do() {
    require_nobody!("scopes_limit_what_a_device_may_do");
    let d = open_daemon();
    let owners = spawn_key(&stdout(&owner(
        &d,
        &["sessions", "spawn", "--task", "owner task"],
    )));
    let writer = Other::new(&d, "nobody (read+write device)");
    pair(&d, &writer, None);
    let theirs = spawn_key(&writer.ok(&["sessions", "spawn", "--task", "writer's task"]));

    // sessions.read only: reads work, spawn is forbidden naming sessions.write.
    let reader = Other::new(&d, "nobody (read-only device)");
    pair(&d, &reader, Some("sessions.read"));
    let keys = session_keys(&reader.ok(&["sessions", "list", "--json"]), "reader's list");
    assert!(
        keys.is_empty(),
        "a device without admin sees neither the owner's nor another device's sessions: {keys:?}"
    );
    let err = reader.refused(
        &["sessions", "spawn", "--task", "not allowed"],
        "spawn needs sessions.write",
    );
    assert!(
        err.contains("sessions.write"),
        "the refusal names the missing scope `sessions.write`:\n{err}"
    );
    let all = session_keys(
        &stdout(&owner(&d, &["sessions", "list", "--json"])),
        "owner's list",
    );
    assert_eq!(all.len(), 2, "the refused spawn created nothing: {all:?}");

    // admin: sees every session.
    let admin = Other::new(&d, "nobody (admin device)");
    pair(&d, &admin, Some("sessions.read,admin"));
    let keys = session_keys(&admin.ok(&["sessions", "list", "--json"]), "admin's list");
    assert!(
        keys.contains(&owners) && keys.contains(&theirs),
        "a device with admin sees every session: {keys:?}"
    );
}

#[test]
fn revoke_ends_the_open_follow_and_refuses_new_calls() {
    require_nobody!("revoke_ends_the_open_follow_and_refuses_new_calls");
    let d = open_daemon();
    let a = Other::new(&d, "nobody");
    let fp = pair(&d, &a, None);
    let key = spawn_key(&a.ok(&["sessions", "spawn", "--task", "followed task"]));

    // A follow, started before the revoke, on nobody's own session: it has printed the task,
    // so it is connected and authenticated.
    let mut follow = LineChild::spawn(
        &mut a.cmd(&["sessions", "follow", &key, "--from-start"]),
        "nobody's `openclaw sessions follow --from-start`",
    );
    follow.wait_line(CALL_SECS, |l| l.contains("followed task"));

    let out = owner(&d, &["pairing", "revoke", &fp[..12], "--json"]);
    let revoked = json_stdout(&out, "openclaw pairing revoke --json");
    assert_eq!(
        (
            &revoked["fingerprint"],
            &revoked["revoked"],
            &revoked["droppedConnections"]
        ),
        (&json!(fp), &json!(true), &json!(1)),
        "revoking by a 12-character prefix names the device and drops its one open connection (the follow): {revoked}"
    );
    let (status, _, err) = follow.finish(15);
    assert!(
        !status.success(),
        "the revoked device's follow should end with a failure status, got {status:?}; stderr: {err}"
    );

    let list = pairing_list(&d);
    let dev =
        device_entry(&list, &fp).unwrap_or_else(|| panic!("revoked device still listed: {list}"));
    assert!(
        dev["revokedAt"].is_string(),
        "the device shows when it was revoked: {dev}"
    );

    a.refused(&["sessions", "list"], "the device was revoked");
    a.refused(&["sessions", "history", &key], "the device was revoked");
}

// ------------------------------------------------------------------ the proof itself

fn error_kind(resp: &Value) -> &str {
    resp["error"]["data"]["kind"].as_str().unwrap_or("")
}

#[test]
fn replayed_authenticate_on_a_new_connection_is_forbidden() {
    require_nobody!("replayed_authenticate_on_a_new_connection_is_forbidden");
    let d = open_daemon();
    let keys = tempfile::tempdir().expect("tempdir");
    let device = Device::load_or_create(keys.path()).expect("device key");
    let mut root = RawConn::connect(&d.socket());
    let socket = root.call_ok("daemon.status", json!({}))["socket"]
        .as_str()
        .expect("daemon.status socket")
        .to_string();
    let sign = |nonce: &str, uid: u32, socket: &str, daemon_id: &str| {
        device.sign_proof(&Proof {
            nonce,
            uid,
            socket,
            daemon_id,
        })
    };
    let challenge = |c: &mut RawConn, id: i64| -> (String, String) {
        let r = c.call(id, "sessions.list", json!({}));
        assert_eq!(
            error_kind(&r),
            "pairing_required",
            "unauthenticated call: {r}"
        );
        let data = &r["error"]["data"];
        (
            data["nonce"]
                .as_str()
                .unwrap_or_else(|| panic!("pairing_required has data.nonce: {r}"))
                .to_string(),
            data["daemonId"]
                .as_str()
                .unwrap_or_else(|| panic!("pairing_required has data.daemonId: {r}"))
                .to_string(),
        )
    };

    // Connection 1 proves the device: first a request, approved by the owner, then accepted.
    let mut c1 = RawConn::from_stream(connect_as_nobody(&d.socket()).expect("connect as nobody"));
    let (nonce1, daemon_id) = challenge(&mut c1, 1);
    let signed = json!({
        "jsonrpc": "2.0", "id": 2, "method": "pairing.authenticate",
        "params": {"publicKey": device.public_key_hex(), "signature": sign(&nonce1, NOBODY_UID, &socket, &daemon_id)},
    })
    .to_string();
    c1.send_line(&signed);
    let r = c1.read_json();
    assert_eq!(
        error_kind(&r),
        "pairing_required",
        "an unknown device gets a request: {r}"
    );
    let request = r["error"]["data"]["requestId"]
        .as_str()
        .expect("requestId")
        .to_string();
    root.call_ok("pairing.approve", json!({"requestId": request}));
    c1.send_line(&signed);
    let r = c1.read_json();
    assert_eq!(
        r["result"]["fingerprint"],
        device.fingerprint(),
        "the same signed frame on its own connection authenticates once approved: {r}"
    );
    assert!(c1.call(3, "sessions.list", json!({}))["result"].is_object());

    // The captured frame replayed on a new connection: forbidden, and it stays unauthenticated.
    let mut c2 = RawConn::from_stream(connect_as_nobody(&d.socket()).expect("connect as nobody"));
    c2.send_line(&signed);
    let r = c2.read_json();
    assert_eq!(
        error_kind(&r),
        "forbidden",
        "a signature captured on another connection must be refused as forbidden: {r}"
    );
    let (nonce2, _) = challenge(&mut c2, 4);
    assert_ne!(nonce2, nonce1, "every connection gets a fresh nonce");

    // Bound to the uid, the socket and the daemon as well.
    for (what, sig) in [
        ("another uid (0)", sign(&nonce2, 0, &socket, &daemon_id)),
        (
            "another socket path",
            sign(&nonce2, NOBODY_UID, "/tmp/other.sock", &daemon_id),
        ),
        (
            "another daemon id",
            sign(&nonce2, NOBODY_UID, &socket, "another-daemon"),
        ),
    ] {
        let r = c2.call(
            5,
            "pairing.authenticate",
            json!({"publicKey": device.public_key_hex(), "signature": sig}),
        );
        assert_eq!(
            error_kind(&r),
            "forbidden",
            "a proof signed for {what} must be forbidden: {r}"
        );
    }
    // The genuine proof for this connection works: the refusals were about the binding.
    let r = c2.call(
        6,
        "pairing.authenticate",
        json!({"publicKey": device.public_key_hex(), "signature": sign(&nonce2, NOBODY_UID, &socket, &daemon_id)}),
    );
    assert_eq!(r["result"]["fingerprint"], device.fingerprint(), "{r}");
}

#[test]
fn a_key_file_readable_by_others_is_refused_with_the_chmod_fix() {
    require_nobody!("a_key_file_readable_by_others_is_refused_with_the_chmod_fix");
    let d = open_daemon();
    let a = Other::new(&d, "nobody");
    pair(&d, &a, None);
    a.ok(&["sessions", "list"]);

    // The paired key, made readable by others: the CLI must not use it.
    let key = a.key_file();
    let bytes = std::fs::read(&key).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod 644");
    let out = a.run(&["sessions", "list"]);
    let err = stderr(&out);
    assert!(
        matches!(out.status.code(), Some(5 | 1)),
        "a device key with mode 0644 must be refused (exit 5 or 1), got {:?}\nstdout: {}\nstderr: {err}",
        out.status.code(),
        stdout(&out)
    );
    assert!(
        err.contains("chmod 600"),
        "the refusal says how to fix it (`chmod 600 {}`):\n{err}",
        key.display()
    );
    assert!(
        err.contains(key.to_str().expect("utf-8")),
        "the refusal names the key file {}:\n{err}",
        key.display()
    );
    assert!(
        stdout(&out).trim().is_empty(),
        "nothing listed with a refused key: {}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read(&key).expect("key"),
        bytes,
        "the refused key file was changed"
    );

    // Fixed as told, it works again.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    a.ok(&["sessions", "list"]);
}
