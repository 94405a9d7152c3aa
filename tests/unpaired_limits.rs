//! What another local user gets before it proves a paired device (issue 15, item 2): one
//! request at a time, no batches, small frames, a few connections per uid, a bounded rate
//! of signature checks, and never the owner's last connection slots. The other user is
//! `nobody` (the connection is made by a python3 run with setpriv, then handed to the test).

mod common;

use std::time::Duration;

use common::{
    Daemon, RawConn, connect_as_nobody, nobody_unavailable, open_home_to_others, wait_peer_closed,
};
use serde_json::{Value, json};

/// A daemon another uid can reach, with these `[limits]`; `None` (after saying why) where
/// nothing can run as nobody here.
fn open_daemon(test: &str, limits: &str) -> Option<Daemon> {
    if let Some(why) = nobody_unavailable() {
        eprintln!("SKIP {test}: {why}");
        return None;
    }
    let d = Daemon::start_with_config(&format!(
        "[socket]\nmode = \"0666\"\n[limits]\nhandshake_timeout_ms = 60000\n{limits}"
    ));
    open_home_to_others(&d);
    Some(d)
}

fn nobody(d: &Daemon) -> RawConn {
    RawConn::from_stream(connect_as_nobody(&d.socket()).expect("connect as nobody"))
}

/// The first line a connection gets, as JSON (it must get one).
fn first_frame(c: &mut RawConn, what: &str) -> Value {
    let line = match c.try_read_line() {
        Ok(Some(l)) => l,
        Ok(None) => panic!("{what}: closed without a word"),
        Err(e) => panic!("{what}: nothing within {:?}: {e}", RawConn::TIMEOUT),
    };
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {line}"))
}

/// A new connection's `hello` answer, or the refusal it was sent on connecting (which may
/// close it before the `hello` is written).
fn hello_or_refusal(d: &Daemon, id: u64) -> Value {
    use std::io::Write;
    let mut c = nobody(d);
    let line = json!({"jsonrpc": "2.0", "id": id, "method": "hello", "params": {}});
    let _ = c.stream.write_all(format!("{line}\n").as_bytes());
    first_frame(&mut c, "a new connection of nobody")
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

/// The owner still connects and starts work.
fn owner_spawns(d: &Daemon, what: &str) {
    let mut owner = RawConn::connect(&d.socket());
    let r = owner.call(1, "sessions.spawn", json!({"task": "still served"}));
    assert!(
        r["result"]["sessionKey"].is_string(),
        "{what}: the owner's spawn: {r}"
    );
}

#[test]
fn a_pipelined_flood_is_answered_one_request_at_a_time() {
    let Some(d) = open_daemon("pipelined flood", "") else {
        return;
    };
    let mut flood = nobody(&d);
    const N: usize = 300;
    let burst: String = (0..N)
        .map(|i| {
            format!(
                "{}\n",
                json!({"jsonrpc": "2.0", "id": i, "method": "hello"})
            )
        })
        .collect();
    flood.send_raw(burst.as_bytes());
    for i in 0..N {
        let r = flood.read_json();
        assert_eq!(
            r["id"], i,
            "replies come in request order, one finished before the next is read: {r}"
        );
        assert!(r["result"].is_object(), "hello {i}: {r}");
    }
    let mut owner = RawConn::connect(&d.socket());
    let status = owner.call_ok("daemon.status", json!({}));
    assert_eq!(
        status["unauthenticated"]["inFlightPeak"], 1,
        "an unauthenticated connection never has more than one request in the daemon: {status}"
    );
    assert_eq!(
        status["unauthenticated"]["connections"], 1,
        "the flooding connection is counted as unauthenticated: {status}"
    );
}

#[test]
fn a_batch_from_an_unpaired_user_is_refused() {
    let Some(d) = open_daemon("batch", "") else {
        return;
    };
    let mut c = nobody(&d);
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "hello"},
        {"jsonrpc": "2.0", "id": 2, "method": "hello"}
    ]);
    c.send_line(&batch.to_string());
    let r = c.read_json();
    assert!(
        r.is_object(),
        "one error, not the batch's answers, comes back: {r}"
    );
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(
        message(&r).contains("batches are not served before this connection is authenticated"),
        "the refusal says why: {r}"
    );
    // The connection goes on, one request at a time.
    assert!(c.call(3, "hello", json!({}))["result"].is_object());
    // The owner's batches are served as before.
    let mut owner = RawConn::connect(&d.socket());
    owner.send_line(&batch.to_string());
    let r = owner.read_json();
    assert_eq!(
        r.as_array().map(Vec::len),
        Some(2),
        "the owner's batch: {r}"
    );
}

#[test]
fn a_large_frame_from_an_unpaired_user_is_refused_and_the_connection_closed() {
    let Some(d) = open_daemon("large frame", "") else {
        return;
    };
    let mut c = nobody(&d);
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "hello",
                     "params": {"client": "x".repeat(100 * 1024)}});
    c.send_line(&big.to_string());
    let r = first_frame(&mut c, "a 100 KiB frame from nobody");
    assert_eq!(r["error"]["data"]["kind"], "frame_too_large", "{r}");
    assert_eq!(r["error"]["data"]["limit"], 65536, "{r}");
    assert!(
        message(&r).contains("65536 bytes, the limit before this connection is authenticated")
            && message(&r).contains("the connection is closed"),
        "the sentence names the limit and the close: {r}"
    );
    assert!(
        wait_peer_closed(&c.stream, Duration::from_secs(10)),
        "the connection is closed after the oversize frame"
    );
    // The owner may still send large frames (within max_frame_bytes).
    let mut owner = RawConn::connect(&d.socket());
    owner.send_line(&big.to_string());
    assert!(owner.read_json()["result"].is_object());
}

#[test]
fn one_uid_holds_only_a_few_unauthenticated_connections() {
    // The default cap, 8.
    let Some(d) = open_daemon("per-uid cap", "") else {
        return;
    };
    let mut held: Vec<RawConn> = (0..8)
        .map(|i| {
            let mut c = nobody(&d);
            let r = c.call(i, "hello", json!({}));
            assert!(r["result"].is_object(), "connection {} of 8: {r}", i + 1);
            c
        })
        .collect();
    let mut ninth = nobody(&d);
    let r = first_frame(&mut ninth, "nobody's 9th unauthenticated connection");
    assert_eq!(r["error"]["data"]["kind"], "busy", "{r}");
    assert!(r["error"]["data"]["retryAfterMs"].is_u64(), "{r}");
    assert!(
        message(&r).contains("uid 65534 already has 8 connections that have not authenticated")
            && message(&r).contains("max_unauthenticated_per_uid"),
        "the refusal names the uid and the limit: {r}"
    );
    assert!(
        wait_peer_closed(&ninth.stream, Duration::from_secs(10)),
        "the refused connection is closed"
    );
    owner_spawns(&d, "while nobody holds its cap");
    // Closing one gives its place back.
    drop(held.pop());
    let admitted = (0..50).any(|i| {
        let r = hello_or_refusal(&d, 100 + i);
        if r["result"].is_object() {
            return true;
        }
        // The close may not have reached the daemon yet: told busy, try a new connection.
        assert_eq!(r["error"]["data"]["kind"], "busy", "{r}");
        false
    });
    assert!(admitted, "a closed connection's place is given back");
    drop(held);
}

#[test]
fn silent_connections_count_against_the_cap_before_they_speak() {
    // The socket serves JSON-RPC and HTTP, told apart by the first bytes; a connection that
    // says nothing must still take its place in the count (the handshake time is a minute
    // here, so a refusal that waited for the first bytes would never come in time).
    let Some(d) = open_daemon("silent connections", "max_unauthenticated_per_uid = 3\n") else {
        return;
    };
    let silent: Vec<RawConn> = (0..3).map(|_| nobody(&d)).collect();
    let mut fourth = nobody(&d);
    let r = first_frame(&mut fourth, "nobody's 4th connection, silent");
    assert_eq!(r["error"]["data"]["kind"], "busy", "{r}");
    assert!(
        message(&r).contains("uid 65534 already has 3 connections that have not authenticated"),
        "the refusal names the uid and the count: {r}"
    );
    assert!(
        wait_peer_closed(&fourth.stream, Duration::from_secs(10)),
        "the refused connection is closed"
    );
    owner_spawns(&d, "while nobody holds its cap with silent connections");
    // A silent connection that goes gives its place back.
    drop(silent);
    let admitted = (0..50).any(|i| {
        let r = hello_or_refusal(&d, i);
        if r["result"].is_object() {
            return true;
        }
        assert_eq!(r["error"]["data"]["kind"], "busy", "{r}");
        false
    });
    assert!(
        admitted,
        "the closed silent connections' places are given back"
    );
}

#[test]
fn the_owner_gets_in_when_others_hold_every_other_slot() {
    // The default reserve (64) is cut to half of a small max_connections: 3 of 6.
    let Some(d) = open_daemon("reserve", "max_connections = 6\n") else {
        return;
    };
    let _held: Vec<RawConn> = (0..3)
        .map(|i| {
            let mut c = nobody(&d);
            let r = c.call(i, "hello", json!({}));
            assert!(
                r["result"].is_object(),
                "slot {} of 3 for others: {r}",
                i + 1
            );
            c
        })
        .collect();
    let mut fourth = nobody(&d);
    let r = first_frame(&mut fourth, "nobody's 4th connection");
    assert_eq!(r["error"]["data"]["kind"], "busy", "{r}");
    assert!(
        message(&r).contains("kept for its owner") && message(&r).contains("reserved_connections"),
        "the refusal names the reserve: {r}"
    );
    let mut owners: Vec<RawConn> = (0..3).map(|_| RawConn::connect(&d.socket())).collect();
    for (i, o) in owners.iter_mut().enumerate() {
        let r = o.call(i as i64, "sessions.spawn", json!({"task": "reserved"}));
        assert!(
            r["result"]["sessionKey"].is_string(),
            "owner connection {} in the reserve: {r}",
            i + 1
        );
    }
}

#[test]
fn signature_checks_past_the_rate_are_told_when_to_retry() {
    // The default rate, 20 a second.
    let Some(d) = open_daemon("signature rate", "") else {
        return;
    };
    let mut c = nobody(&d);
    // A well-formed attempt that fails verification: the work an attacker makes the daemon do.
    let attempt = json!({"publicKey": "ab".repeat(32), "signature": "cd".repeat(64)});
    let mut refused = None;
    for i in 0..200 {
        let r = c.call(i, "pairing.authenticate", attempt.clone());
        if r["error"]["data"]["kind"] == "busy" {
            refused = Some(r);
            break;
        }
        assert_eq!(
            r["error"]["data"]["kind"], "forbidden",
            "attempt {i} within the rate is checked and fails: {r}"
        );
    }
    let r =
        refused.expect("200 attempts back to back, with 20 a second allowed, are not all checked");
    let retry = r["error"]["data"]["retryAfterMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("busy says when to retry: {r}"));
    assert!(
        (1..=50).contains(&retry),
        "a check comes back within 1/20 s: {r}"
    );
    assert!(
        message(&r).contains("auth_attempts_per_second")
            && message(&r).contains(&format!("retry in {retry} ms")),
        "the sentence names the limit and the wait: {r}"
    );
    // The owner is not rate limited by another user's attempts.
    owner_spawns(&d, "while nobody is over its signature rate");
}
