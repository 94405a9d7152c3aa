//! The device proof against a fake daemon that speaks just enough of the protocol.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use openclaw::device::KEY_FILE;
use serde_json::json;

const NONCE: &str = "6e6f6e6365";
const DAEMON_ID: &str = "daemon-1";

/// How the fake daemon treats `pairing.authenticate`.
#[derive(Clone, Copy, PartialEq)]
enum Policy {
    /// The owner: never asks for a proof.
    Owner,
    /// Asks, and admits a correctly signed device.
    Paired,
    /// Asks, and answers every proof with a new pairing request.
    Unknown,
    /// Asks without a nonce (an older or confused daemon).
    NoNonce,
}

#[derive(Default)]
struct Calls {
    list: AtomicUsize,
    authenticate: AtomicUsize,
}

/// A daemon on one connection that speaks just enough of the protocol.
fn fake_daemon(stream: UnixStream, socket: PathBuf, policy: Policy, calls: Arc<Calls>) {
    let mut write = stream.try_clone().unwrap();
    let mut proven = policy == Policy::Owner;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let request: Value = serde_json::from_str(&line).unwrap();
        let id = request["id"].clone();
        let refuse = |e: RpcError| json!({"jsonrpc": "2.0", "id": id, "error": e});
        let reply = match request["method"].as_str().unwrap() {
            "pairing.authenticate" => {
                calls.authenticate.fetch_add(1, Ordering::SeqCst);
                let p = &request["params"];
                let proof = Proof {
                    nonce: NONCE,
                    uid: current_uid(),
                    socket: &socket.display().to_string(),
                    daemon_id: DAEMON_ID,
                };
                let signed = proof.verify(
                    p["publicKey"].as_str().unwrap(),
                    p["signature"].as_str().unwrap(),
                );
                if !signed {
                    refuse(RpcError::app(ErrorKind::Forbidden, "bad signature"))
                } else if policy == Policy::Unknown {
                    refuse(
                        RpcError::app(
                            ErrorKind::PairingRequired,
                            "this device is not paired (request 7f3a1b2c…). Ask the owner to run: openclaw pairing approve 7f3a1b2c",
                        )
                        .with_data("requestId", "7f3a1b2c00".into()),
                    )
                } else {
                    proven = true;
                    json!({"jsonrpc": "2.0", "id": id,
                           "result": {"fingerprint": "fp", "scopes": ["sessions.read"]}})
                }
            }
            _ => {
                calls.list.fetch_add(1, Ordering::SeqCst);
                if proven {
                    json!({"jsonrpc": "2.0", "id": id, "result": {"sessions": []}})
                } else {
                    let mut err = RpcError::app(ErrorKind::PairingRequired, "not paired");
                    if policy != Policy::NoNonce {
                        err = err
                            .with_data("nonce", NONCE.into())
                            .with_data("daemonId", DAEMON_ID.into());
                    }
                    refuse(err)
                }
            }
        };
        let mut bytes = serde_json::to_vec(&reply).unwrap();
        bytes.push(b'\n');
        write.write_all(&bytes).unwrap();
    }
}

struct Setup {
    conn: Connection,
    calls: Arc<Calls>,
    key_dir: PathBuf,
    _dir: tempfile::TempDir,
}

fn setup(policy: Policy, prepare_key: impl FnOnce(&Path)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("openclaw.sock");
    let key_dir = dir.path().join("config");
    prepare_key(&key_dir);
    let calls = Arc::new(Calls::default());
    let listener = UnixListener::bind(&socket).unwrap();
    let (for_daemon, for_socket) = (calls.clone(), socket.clone());
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        fake_daemon(stream, for_socket, policy, for_daemon);
    });
    let client = Client::connect(&socket).unwrap();
    Setup {
        conn: Connection::with_key_dir(client, &socket, key_dir.clone()),
        calls,
        key_dir,
        _dir: dir,
    }
}

fn list(conn: &mut Connection) -> Result<Value, CallError> {
    conn.call_value(methods::SESSIONS_LIST, &json!({}))
}

#[test]
fn the_owner_pays_nothing() {
    let mut s = setup(Policy::Owner, |_| {});
    assert_eq!(list(&mut s.conn).unwrap(), json!({"sessions": []}));
    assert_eq!(s.calls.list.load(Ordering::SeqCst), 1);
    assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
    assert!(!s.key_dir.exists(), "no device key is made for the owner");
    assert!(!s.conn.lost_reason().contains("revoked"));
}

#[test]
fn a_paired_device_proves_itself_once_and_the_call_is_retried() {
    let mut s = setup(Policy::Paired, |_| {});
    assert_eq!(list(&mut s.conn).unwrap(), json!({"sessions": []}));
    assert_eq!(s.calls.list.load(Ordering::SeqCst), 2);
    assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
    let mode = std::fs::metadata(s.key_dir.join(KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(s.conn.lost_reason().contains("revoked"));
    // Later calls on the same connection go straight through.
    list(&mut s.conn).unwrap();
    assert_eq!(s.calls.list.load(Ordering::SeqCst), 3);
    assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
}

#[test]
fn an_unknown_device_reports_the_request_and_exits_5() {
    let mut s = setup(Policy::Unknown, |_| {});
    let failure = Failure::from(list(&mut s.conn).unwrap_err());
    assert_eq!(failure.exit, Exit::NotPermitted);
    let message = failure.message.unwrap();
    assert!(
        message.contains("Ask the owner to run: openclaw pairing approve 7f3a1b2c"),
        "{message}"
    );
    // The refusal is remembered: a second call says the same without asking again.
    let again = Failure::from(list(&mut s.conn).unwrap_err());
    assert_eq!(again.message.unwrap(), message);
    assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 1);
    assert_eq!(s.calls.list.load(Ordering::SeqCst), 2);
}

#[test]
fn a_key_readable_by_others_is_refused_before_anything_is_sent() {
    let mut s = setup(Policy::Paired, |dir| {
        Device::load_or_create(dir).unwrap();
        let key = dir.join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    });
    let failure = Failure::from(list(&mut s.conn).unwrap_err());
    assert_eq!(failure.exit, Exit::NotPermitted);
    let message = failure.message.unwrap();
    assert!(message.contains("chmod 600"), "{message}");
    assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
}

#[test]
fn a_refusal_without_a_nonce_is_passed_on_as_it_is() {
    let mut s = setup(Policy::NoNonce, |_| {});
    let err = list(&mut s.conn).unwrap_err();
    assert_eq!(err.rpc().unwrap().message, "not paired");
    assert_eq!(Failure::from(err).exit, Exit::NotPermitted);
    assert_eq!(s.calls.authenticate.load(Ordering::SeqCst), 0);
    assert!(!s.key_dir.exists());
}

#[test]
fn a_challenge_needs_a_pairing_required_kind_a_nonce_and_a_daemon_id() {
    let challenge = RpcError::app(ErrorKind::PairingRequired, "x")
        .with_data("nonce", "ab".into())
        .with_data("daemonId", "d".into());
    assert_eq!(
        Challenge::from_error(&challenge),
        Some(Challenge {
            nonce: "ab".into(),
            daemon_id: "d".into(),
            socket: None,
        })
    );
    let forbidden = RpcError::app(ErrorKind::Forbidden, "x")
        .with_data("nonce", "ab".into())
        .with_data("daemonId", "d".into());
    assert_eq!(Challenge::from_error(&forbidden), None);
    let no_id = RpcError::app(ErrorKind::PairingRequired, "x").with_data("nonce", "ab".into());
    assert_eq!(Challenge::from_error(&no_id), None);
    let empty = RpcError::app(ErrorKind::PairingRequired, "x")
        .with_data("nonce", "".into())
        .with_data("daemonId", "d".into());
    assert_eq!(Challenge::from_error(&empty), None);
}

#[test]
fn a_refused_signature_names_what_was_signed() {
    let err = explain_refusal(
        RpcError::app(ErrorKind::Forbidden, "bad signature"),
        "/run/x.sock",
    );
    assert!(
        err.message.starts_with("bad signature ("),
        "{}",
        err.message
    );
    assert!(err.message.contains("/run/x.sock"), "{}", err.message);
    assert!(
        err.message
            .contains(&format!("signed for uid {}", current_uid())),
        "{}",
        err.message
    );
    let other = explain_refusal(RpcError::not_found("gone"), "/run/x.sock");
    assert_eq!(other.message, "gone");
}

#[test]
fn the_key_lives_beside_the_config_file() {
    let paths = Paths {
        config_file: "/home/u/.config/openclaw/config.toml".into(),
        data_dir: "/home/u/.local/share/openclaw".into(),
        socket: "/run/user/1/openclaw/openclaw.sock".into(),
        socket_named: false,
    };
    assert_eq!(key_dir(&paths), PathBuf::from("/home/u/.config/openclaw"));
}
