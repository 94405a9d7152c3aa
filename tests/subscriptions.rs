//! Subscriptions end to end: a live message keeps to the reply budget as a history page does,
//! and subscriptions are capped per uid whatever connection they come on, a closed
//! connection giving its slots back.

mod common;
mod http_client;

use std::time::Duration;

use common::{Daemon, RawConn, deadline, output_within, stderr};
use http_client::{Conn, Target, daemon_with_http};
use serde_json::{Value, json};

const CALL_SECS: u64 = 60;

/// A session that has finished its first run, its key.
fn idle_session(conn: &mut RawConn) -> String {
    let spawned = conn.call_ok("sessions.spawn", json!({"task": "first"}));
    let key = spawned["sessionKey"].as_str().unwrap().to_string();
    conn.call_ok(
        "runs.wait",
        json!({"sessionKey": key, "timeoutSeconds": 30}),
    );
    key
}

/// The next `session.message` notification on `conn`, skipping other notifications.
fn next_message(conn: &mut RawConn) -> Value {
    let until = deadline(CALL_SECS);
    loop {
        assert!(std::time::Instant::now() < until, "no session.message");
        let n = conn.read_json();
        if n["method"] == "session.message" {
            return n["params"]["message"].clone();
        }
    }
}

/// Message `seq` as history pages give it, paging back from the newest.
fn history_message(conn: &mut RawConn, key: &str, seq: u64) -> Value {
    let mut params = json!({"sessionKey": key});
    loop {
        let page = conn.call_ok("sessions.history", params.clone());
        let list = page["messages"].as_array().unwrap();
        if let Some(m) = list.iter().find(|m| m["seq"] == seq) {
            return m.clone();
        }
        assert_eq!(page["hasMore"], true, "message {seq} not in history");
        params["cursor"] = page["nextCursor"].clone();
    }
}

#[test]
fn a_follower_gets_a_large_message_truncated_and_reads_it_whole() {
    let d = Daemon::start_with_config("[limits]\nmax_reply_bytes = 65536\n");
    let mut owner = RawConn::connect(&d.socket());
    let key = idle_session(&mut owner);
    let mut follower = RawConn::connect(&d.socket());
    let sub = follower.call_ok("sessions.subscribe", json!({"sessionKey": key}));
    assert!(sub["subscription"].is_string(), "{sub}");

    let big: String = (0..40_000).map(|i| format!("{i:07}\n")).collect();
    owner.call_ok(
        "sessions.send",
        json!({"sessionKey": key, "message": big, "timeoutSeconds": 30}),
    );
    let live = next_message(&mut follower);
    assert_eq!(live["role"], "user", "{live}");
    assert_eq!(
        live["truncated"], true,
        "cut to the budget: {}",
        live["bytes"]
    );
    let text = live["content"].as_str().unwrap();
    assert!(text.len() <= 65536 && big.starts_with(text), "a prefix");
    // The full size, as a history page gives it for the same message.
    let seq = live["seq"].as_u64().unwrap();
    let stored = history_message(&mut owner, &key, seq);
    assert_eq!(stored["truncated"], true);
    assert_eq!(live["bytes"], stored["bytes"]);
    assert!(live["bytes"].as_u64().unwrap() > big.len() as u64);

    let mut cmd = d.cli();
    cmd.args([
        "sessions",
        "history",
        &key,
        "--seq",
        &seq.to_string(),
        "--full",
    ]);
    let whole = output_within(&mut cmd, CALL_SECS, "history --seq --full");
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_eq!(whole.stdout, big.as_bytes(), "every byte, read in chunks");
}

/// Subscribes on `conn` until admitted: a slot given back is seen within the deadline.
fn subscribe_once_admitted(conn: &mut RawConn, params: Value, what: &str) {
    let until = deadline(CALL_SECS);
    for id in 100.. {
        let r = conn.call(id, "sessions.subscribe", params.clone());
        if r.get("result").is_some() {
            return;
        }
        assert_eq!(r["error"]["data"]["kind"], "busy", "{r}");
        assert!(std::time::Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_http_event_stream_holds_a_subscription_slot_until_it_closes() {
    let (d, _addr) = daemon_with_http("[limits]\nmax_subscriptions_per_uid = 1\n", "", &[]);
    let sse = Conn::connect(&Target::Unix(d.socket())).sse("/api/events", &[]);
    let mut rpc = RawConn::connect(&d.socket());
    let refused = rpc.call(1, "sessions.subscribe", json!({}));
    assert_eq!(refused["error"]["data"]["kind"], "busy", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_subscriptions_per_uid"),
        "{refused}"
    );
    drop(sse);
    subscribe_once_admitted(
        &mut rpc,
        json!({}),
        "the closed stream's slot never came back",
    );
}

#[test]
fn subscriptions_are_capped_per_uid_across_connections_and_a_closed_one_gives_its_slots_back() {
    let d = Daemon::start_with_config(
        "[limits]\nmax_subscriptions_per_uid = 3\nmax_subscriptions = 100\n",
    );
    let mut first = RawConn::connect(&d.socket());
    let key = idle_session(&mut first);
    for _ in 0..2 {
        first.call_ok("sessions.subscribe", json!({"sessionKey": key}));
    }
    let mut second = RawConn::connect(&d.socket());
    second.call_ok("sessions.subscribe", json!({}));
    let refused = second.call(7, "sessions.subscribe", json!({"sessionKey": key}));
    let error = &refused["error"];
    assert_eq!(error["data"]["kind"], "busy", "{refused}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("max_subscriptions_per_uid") && message.contains("unsubscribe"),
        "says which cap and what to do: {message}"
    );

    drop(first);
    subscribe_once_admitted(
        &mut second,
        json!({"sessionKey": key}),
        "the closed connection's slots never came back",
    );
}
