//! JSON-RPC 2.0 conformance of `openclawd`, through raw bytes on its socket: the examples of the
//! JSON-RPC 2.0 specification, notifications and batches, oversize frames, peers that hang up
//! mid-frame or mid-call, and the shapes of `hello` and `daemon.status`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use common::{BlockingAgent, Daemon, RawConn, proc_status_kb};
use serde_json::{Value, json};

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// Asserts the envelope of one response object: `jsonrpc: "2.0"`, an `id` member, and exactly
/// one of `result` and `error` (an error with an integer code and a message).
fn assert_envelope(resp: &Value) {
    let obj = resp
        .as_object()
        .unwrap_or_else(|| panic!("a response must be an object: {resp}"));
    assert_eq!(
        obj.get("jsonrpc"),
        Some(&json!("2.0")),
        "jsonrpc member: {resp}"
    );
    assert!(
        obj.contains_key("id"),
        "a response must carry an id member (null if unknown): {resp}"
    );
    let has_result = obj.contains_key("result");
    let has_error = obj.contains_key("error");
    assert!(
        has_result != has_error,
        "exactly one of result and error: {resp}"
    );
    if has_error {
        let err = &obj["error"];
        assert!(
            err["code"].is_i64(),
            "error.code must be an integer: {resp}"
        );
        assert!(
            err["message"].is_string(),
            "error.message must be a string: {resp}"
        );
    }
}

/// Asserts `resp` is an error with this code and this id.
fn assert_error(resp: &Value, code: i64, id: &Value) {
    assert_envelope(resp);
    assert_eq!(
        resp["error"]["code"], code,
        "expected error {code} with id {id}, got {resp}"
    );
    assert_eq!(
        &resp["id"], id,
        "expected error {code} with id {id}, got {resp}"
    );
}

fn assert_result(resp: &Value, id: &Value) -> Value {
    assert_envelope(resp);
    assert!(
        resp.get("error").is_none(),
        "expected a result for id {id}, got {resp}"
    );
    assert_eq!(&resp["id"], id, "reply carries another id: {resp}");
    resp["result"].clone()
}

fn same_path(reported: &Value, expected: &Path) -> bool {
    let Some(s) = reported.as_str() else {
        return false;
    };
    let p = Path::new(s);
    p == expected || matches!((p.canonicalize(), expected.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn daemon_alive(d: &mut Daemon) {
    let child = d.child.as_mut().expect("daemon handle");
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the daemon exited: {:?}; log:\n{}",
        child.try_wait(),
        std::fs::read_to_string(d.log_path()).unwrap_or_default()
    );
}

// ------------------------------------------------------------------ the specification's examples

#[test]
fn invalid_json_is_a_parse_error_with_null_id() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    // JSON-RPC 2.0 spec, "rpc call with invalid JSON".
    c.send_line(r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#);
    let resp = c.read_json();
    assert_error(&resp, PARSE_ERROR, &Value::Null);

    // The daemon is still there for the next client.
    let mut c2 = RawConn::connect(&d.socket());
    c2.call_ok("hello", json!({}));
}

#[test]
fn invalid_request_object_is_minus_32600() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    // JSON-RPC 2.0 spec, "rpc call with invalid Request object".
    c.send_line(r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#);
    assert_error(&c.read_json(), INVALID_REQUEST, &Value::Null);

    // Not JSON-RPC 2.0 at all: wrong or missing version, no method. The id may be echoed when
    // it could be read, or null.
    for (line, id) in [
        (
            r#"{"jsonrpc": "1.0", "method": "hello", "id": 3}"#,
            json!(3),
        ),
        (r#"{"method": "hello", "id": 4}"#, json!(4)),
        (r#"{"jsonrpc": "2.0", "id": 5}"#, json!(5)),
        (r#""just a string""#, Value::Null),
        (r#"42"#, Value::Null),
    ] {
        c.send_line(line);
        let resp = c.read_json();
        assert_envelope(&resp);
        assert_eq!(resp["error"]["code"], INVALID_REQUEST, "for {line}: {resp}");
        assert!(
            resp["id"] == id || resp["id"].is_null(),
            "for {line}: id must be {id} or null: {resp}"
        );
    }
    // The connection is still usable afterwards.
    assert_eq!(c.call(6, "hello", json!({}))["id"], 6);
}

#[test]
fn unknown_method_is_minus_32601_with_the_callers_id() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    // JSON-RPC 2.0 spec, "rpc call of non-existent method" (string id, echoed as a string).
    c.send_line(r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#);
    let resp = c.read_json();
    assert_error(&resp, METHOD_NOT_FOUND, &json!("1"));
    let msg = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("foobar"),
        "the message should name the unknown method: {resp}"
    );

    let resp = c.call(77, "sessions.frobnicate", json!({}));
    assert_error(&resp, METHOD_NOT_FOUND, &json!(77));
}

#[test]
fn unknown_or_missing_params_are_minus_32602_naming_the_field() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());

    let resp = c.call(1, "sessions.spawn", json!({"task": "x", "bogusField": 1}));
    assert_error(&resp, INVALID_PARAMS, &json!(1));
    let msg = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("bogusField"),
        "the message must name the unknown field: {resp}"
    );

    let resp = c.call(2, "sessions.spawn", json!({"label": "no task"}));
    assert_error(&resp, INVALID_PARAMS, &json!(2));
    let msg = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("task"),
        "the message must name the missing field: {resp}"
    );

    let resp = c.call(
        3,
        "sessions.send",
        json!({"sessionKey": "main", "message": "m", "tiemout": 3}),
    );
    assert_error(&resp, INVALID_PARAMS, &json!(3));
    let msg = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("tiemout"),
        "the message must name the unknown field: {resp}"
    );

    // Nothing was created by the rejected calls.
    let list = c.call_ok("sessions.list", json!({}));
    assert_eq!(
        list["sessions"],
        json!([]),
        "rejected calls must not create sessions: {list}"
    );
}

#[test]
fn wrongly_typed_param_is_minus_32602_naming_the_field() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let resp = c.call(
        1,
        "sessions.history",
        json!({"sessionKey": "main", "limit": "ten"}),
    );
    assert_error(&resp, INVALID_PARAMS, &json!(1));
    let msg = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("limit"),
        "the message must name the offending field `limit`: {resp}"
    );
}

#[test]
fn notifications_get_no_reply() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    // A valid one, one for an unknown method, one with invalid params: the spec says none of
    // them is answered, not even with an error.
    c.send_line(r#"{"jsonrpc": "2.0", "method": "hello", "params": {}}"#);
    c.send_line(r#"{"jsonrpc": "2.0", "method": "foobar"}"#);
    c.send_line(r#"{"jsonrpc": "2.0", "method": "sessions.history", "params": {"bogus": 1}}"#);
    c.send_line(r#"{"jsonrpc": "2.0", "method": "hello", "id": 7}"#);
    let first = c.read_json();
    assert_result(&first, &json!(7));
}

#[test]
fn pipelined_requests_on_one_connection_each_get_their_reply() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let mut burst = String::new();
    for id in 1..=20 {
        burst.push_str(
            &json!({"jsonrpc": "2.0", "id": id, "method": "sessions.spawn",
                               "params": {"task": format!("pipelined {id}")}})
            .to_string(),
        );
        burst.push('\n');
    }
    c.send_raw(burst.as_bytes());
    let mut keys = BTreeMap::new();
    for _ in 1..=20 {
        let resp = c.read_json();
        let id = resp["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("numeric id expected: {resp}"));
        let result = assert_result(&resp, &json!(id));
        assert_eq!(result["status"], "accepted", "{resp}");
        assert!(
            keys.insert(id, result["sessionKey"].clone()).is_none(),
            "id {id} answered twice"
        );
    }
    assert_eq!(keys.len(), 20);
    let distinct: std::collections::BTreeSet<String> =
        keys.values().map(|k| k.to_string()).collect();
    assert_eq!(
        distinct.len(),
        20,
        "every spawn must create its own session: {keys:?}"
    );
}

#[test]
fn batch_mixed_with_notifications_answers_only_the_requests() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    // Shaped after the JSON-RPC 2.0 spec's "rpc call Batch" example.
    c.send_line(
        &json!([
            {"jsonrpc": "2.0", "method": "hello", "params": {}, "id": "1"},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
            {"jsonrpc": "2.0", "method": "daemon.status", "id": "2"},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
            {"jsonrpc": "2.0", "method": "agents.list", "id": "9"},
            {"jsonrpc": "2.0", "method": "hello", "params": {}}
        ])
        .to_string(),
    );
    let resp = c.read_json();
    let replies = resp
        .as_array()
        .unwrap_or_else(|| panic!("a batch gets an array: {resp}"));
    assert_eq!(
        replies.len(),
        5,
        "one reply per request, none for notifications: {resp}"
    );
    let mut by_id: BTreeMap<String, &Value> = BTreeMap::new();
    for r in replies {
        assert_envelope(r);
        by_id.insert(r["id"].to_string(), r);
    }
    assert_result(by_id[r#""1""#], &json!("1"));
    assert_result(by_id[r#""2""#], &json!("2"));
    assert_error(by_id[r#""5""#], METHOD_NOT_FOUND, &json!("5"));
    let agents = assert_result(by_id[r#""9""#], &json!("9"));
    assert!(agents["agents"].is_array(), "agents.list result: {agents}");
    assert_error(by_id["null"], INVALID_REQUEST, &Value::Null);

    // Nothing else follows the batch reply: the next line answers the next request.
    assert_result(&c.call(10, "hello", json!({})), &json!(10));
}

#[test]
fn batch_of_only_notifications_gets_no_reply() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    c.send_line(
        r#"[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]"#,
    );
    c.send_line(r#"{"jsonrpc": "2.0", "method": "hello", "id": 11}"#);
    let first = c.read_json();
    assert!(
        first.is_object(),
        "a batch of notifications must get no reply at all (not even []): {first}"
    );
    assert_result(&first, &json!(11));
}

#[test]
fn empty_batch_is_a_single_invalid_request() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    c.send_line("[]");
    let resp = c.read_json();
    assert!(
        resp.is_object(),
        "an empty batch gets one error object, not an array: {resp}"
    );
    assert_error(&resp, INVALID_REQUEST, &Value::Null);
}

#[test]
fn invalid_batches_get_one_error_per_element() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    for (line, n) in [("[1]", 1), ("[1,2,3]", 3)] {
        c.send_line(line);
        let resp = c.read_json();
        let arr = resp
            .as_array()
            .unwrap_or_else(|| panic!("{line} gets an array: {resp}"));
        assert_eq!(arr.len(), n, "{line}: one error per element: {resp}");
        for r in arr {
            assert_error(r, INVALID_REQUEST, &Value::Null);
        }
    }
}

#[test]
fn batch_with_invalid_json_is_a_single_parse_error() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    c.send_line(
        r#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method""#,
    );
    let resp = c.read_json();
    assert!(
        resp.is_object(),
        "invalid JSON gets one error object: {resp}"
    );
    assert_error(&resp, PARSE_ERROR, &Value::Null);
}

// ------------------------------------------------------------------ application errors and fields

#[test]
fn application_error_carries_data_kind() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let unknown = format!("agent:main:subagent:{}", uuid::Uuid::new_v4());
    let resp = c.call(1, "sessions.history", json!({"sessionKey": unknown}));
    assert_envelope(&resp);
    assert_eq!(resp["error"]["data"]["kind"], "not_found", "{resp}");
    assert_eq!(
        resp["error"]["code"],
        openclaw::protocol::codes::NOT_FOUND,
        "{resp}"
    );
    let code = resp["error"]["code"].as_i64().unwrap_or(0);
    assert!(
        (-32099..=-32000).contains(&code),
        "application codes are in the server range: {resp}"
    );
}

#[tokio::test]
async fn application_error_reaches_the_async_client_as_its_kind() {
    let d = Daemon::start();
    let client = d.client().await;
    let err = client
        .call_value(
            "sessions.history",
            &json!({"sessionKey": "no-such-session"}),
        )
        .await
        .expect_err("history of an unknown session must fail");
    match err {
        openclaw::ClientError::Rpc(e) => {
            assert_eq!(e.kind(), Some(openclaw::ErrorKind::NotFound), "{e:?}")
        }
        other => panic!("expected an RPC error of kind not_found, got {other:?}"),
    }
}

#[test]
fn acp_only_spawn_fields_are_dropped_and_listed() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let result = c.call_ok(
        "sessions.spawn",
        json!({"task": "acp fields", "streamTo": "parent", "resumeSessionId": "abc-123"}),
    );
    assert_eq!(result["status"], "accepted", "{result}");
    let mut ignored: Vec<String> = result["ignoredFields"]
        .as_array()
        .unwrap_or_else(|| panic!("ignoredFields must list the dropped ACP fields: {result}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    ignored.sort();
    assert_eq!(ignored, ["resumeSessionId", "streamTo"], "{result}");

    // The spawn itself happened.
    let key = result["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();
    let hist = c.call_ok("sessions.history", json!({"sessionKey": key}));
    assert_eq!(hist["messages"][0]["content"], "acp fields", "{hist}");

    // Without them there is no ignoredFields (or an empty one).
    let plain = c.call_ok("sessions.spawn", json!({"task": "plain"}));
    assert!(
        plain
            .get("ignoredFields")
            .is_none_or(|v| v.as_array().is_some_and(|a| a.is_empty())),
        "nothing was ignored: {plain}"
    );
}

// ------------------------------------------------------------------ oversize frames

fn write_or_explain(c: &mut RawConn, bytes: &[u8], what: &str) {
    if let Err(e) = c.stream.write_all(bytes) {
        panic!(
            "writing {what} failed ({e}): the daemon must keep reading (and discarding) an oversize frame and keep the connection open"
        );
    }
}

#[test]
fn oversize_frame_answers_frame_too_large_and_the_connection_stays_usable() {
    let d = Daemon::start_with_config("[limits]\nmax_frame_bytes = 4096\n");
    let mut c = RawConn::connect(&d.socket());

    // A 1 MiB request (valid JSON, just too long).
    let filler = "x".repeat(1024 * 1024);
    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "sessions.spawn", "params": {"task": filler}});
    let mut line = big.to_string().into_bytes();
    line.push(b'\n');
    write_or_explain(&mut c, &line, "a 1 MiB frame");
    write_or_explain(
        &mut c,
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"hello\",\"params\":{}}\n",
        "the next request",
    );

    let resp = c.read_json();
    assert_envelope(&resp);
    assert_eq!(resp["error"]["data"]["kind"], "frame_too_large", "{resp}");
    assert_eq!(
        resp["error"]["code"],
        openclaw::protocol::codes::FRAME_TOO_LARGE,
        "{resp}"
    );
    assert!(
        resp["id"].is_null(),
        "the oversize frame was never parsed, so its id is null: {resp}"
    );

    let next = c.read_json();
    assert_result(&next, &json!(2));

    // The oversize spawn did not happen.
    let list = c.call_ok("sessions.list", json!({}));
    assert_eq!(
        list["sessions"],
        json!([]),
        "an oversize frame must not be executed: {list}"
    );

    // A frame just under the limit is fine.
    let task = "y".repeat(3000);
    let ok = c.call_ok("sessions.spawn", json!({"task": task}));
    assert_eq!(ok["status"], "accepted");
}

#[test]
fn oversize_frame_is_not_buffered_whole() {
    let mut d = Daemon::start_with_config("[limits]\nmax_frame_bytes = 4096\n");
    let pid = d.pid();
    let mut c = RawConn::connect(&d.socket());
    c.call_ok("hello", json!({}));
    let before = proc_status_kb(pid, "VmHWM").expect("VmHWM of the daemon");

    // 64 MiB in one line, written in 1 MiB pieces.
    let chunk = vec![b'z'; 1024 * 1024];
    write_or_explain(
        &mut c,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hello\",\"params\":{\"client\":\"",
        "the start of a 64 MiB frame",
    );
    for _ in 0..64 {
        write_or_explain(&mut c, &chunk, "a 64 MiB frame");
    }
    write_or_explain(&mut c, b"\"}}\n", "the end of a 64 MiB frame");
    let resp = c.read_json();
    assert_eq!(resp["error"]["data"]["kind"], "frame_too_large", "{resp}");
    assert_result(&c.call(2, "hello", json!({})), &json!(2));

    let after = proc_status_kb(pid, "VmHWM").expect("VmHWM of the daemon");
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "the daemon's peak RSS grew by {grown_mib} MiB while discarding a 64 MiB frame over a 4 KiB limit (VmHWM {before} kB -> {after} kB): it buffers oversize frames"
    );
    daemon_alive(&mut d);
}

// ------------------------------------------------------------------ peers that go away

#[test]
fn disconnect_mid_frame_harms_nothing() {
    let mut d = Daemon::start();
    for _ in 0..5 {
        let mut c = RawConn::connect(&d.socket());
        c.send_raw(br#"{"jsonrpc":"2.0","id":1,"method":"sessions.spawn","params":{"task":"half"#);
        c.stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        drop(c);
        // And one that just vanishes without a shutdown.
        let mut c = RawConn::connect(&d.socket());
        c.send_raw(br#"{"jsonrpc":"2.0","id":1,"meth"#);
        drop(c);
    }
    daemon_alive(&mut d);
    let mut fresh = RawConn::connect(&d.socket());
    assert_result(&fresh.call(1, "hello", json!({})), &json!(1));
    let list = fresh.call_ok("sessions.list", json!({}));
    assert_eq!(
        list["sessions"],
        json!([]),
        "a truncated frame must never be executed: {list}"
    );
    let spawned = fresh.call_ok("sessions.spawn", json!({"task": "after the hang-ups"}));
    assert_eq!(spawned["status"], "accepted");
}

#[test]
fn disconnect_while_waiting_on_a_send_leaves_the_run_going() {
    let agent = BlockingAgent::new();
    let mut d = Daemon::start_with_config(&agent.config("blocker"));
    let key = "agent:blocker:main";

    let mut c = RawConn::connect(&d.socket());
    c.send_line(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "sessions.send",
                "params": {"sessionKey": key, "message": "block me", "timeoutSeconds": 30}})
        .to_string(),
    );
    agent.wait_started();
    drop(c); // mid-call: the daemon is waiting on the run for us

    daemon_alive(&mut d);
    let mut c = RawConn::connect(&d.socket());
    assert_result(&c.call(1, "hello", json!({})), &json!(1));
    let hist = c.call_ok("sessions.history", json!({"sessionKey": key}));
    let first = &hist["messages"][0];
    assert_eq!(first["content"], "block me", "{hist}");
    let run_id = first["runId"]
        .as_str()
        .unwrap_or_else(|| panic!("user message has a runId: {hist}"))
        .to_string();

    agent.release();
    let waited = c.call_ok("runs.wait", json!({"runId": run_id, "timeoutSeconds": 20}));
    assert_eq!(
        waited["status"], "ok",
        "the run must finish normally after its caller left: {waited}"
    );
    assert_eq!(waited["reply"], "reply:block me", "{waited}");

    let again = c.call_ok(
        "sessions.send",
        json!({"sessionKey": key, "message": "again", "timeoutSeconds": 20}),
    );
    assert_eq!(again["status"], "ok", "{again}");
    assert_eq!(again["reply"], "reply:again", "{again}");
    let hist = c.call_ok("sessions.history", json!({"sessionKey": key}));
    let seqs: Vec<i64> = hist["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_i64().unwrap_or(-1))
        .collect();
    let roles: Vec<&str> = hist["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4], "{hist}");
    assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{hist}");
    daemon_alive(&mut d);
}

#[test]
fn disconnect_right_after_sending_a_call_harms_nothing() {
    let mut d = Daemon::start();
    for i in 0..20 {
        let mut c = RawConn::connect(&d.socket());
        c.send_line(
            &json!({"jsonrpc": "2.0", "id": i, "method": "sessions.send",
                    "params": {"sessionKey": "main", "message": format!("gone {i}"), "timeoutSeconds": 30}})
            .to_string(),
        );
        drop(c);
    }
    daemon_alive(&mut d);
    let mut c = RawConn::connect(&d.socket());
    let last = c.call_ok(
        "sessions.send",
        json!({"sessionKey": "main", "message": "last", "timeoutSeconds": 20}),
    );
    assert_eq!(last["status"], "ok", "{last}");
    assert_eq!(
        last["reply"], "last",
        "echo replies with the message: {last}"
    );

    // Whatever the daemon accepted from the vanished callers (it may still be reading some of
    // them) is consistent: seqs without gaps, and every accepted message's run ends ok with
    // its echo, stored under the same runId.
    let hist = c.call_ok(
        "sessions.history",
        json!({"sessionKey": "main", "limit": 1000}),
    );
    let users: Vec<Value> = hist["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .cloned()
        .collect();
    assert!(users.iter().any(|u| u["content"] == "last"), "{hist}");
    for u in &users {
        let run = u["runId"]
            .as_str()
            .unwrap_or_else(|| panic!("user message without runId: {u}"));
        let r = c.call_ok("runs.wait", json!({"runId": run, "timeoutSeconds": 20}));
        assert_eq!(r["status"], "ok", "run of {u}: {r}");
        assert_eq!(r["reply"], u["content"], "run of {u}: {r}");
    }
    let hist = c.call_ok(
        "sessions.history",
        json!({"sessionKey": "main", "limit": 1000}),
    );
    let msgs = hist["messages"].as_array().expect("messages");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m["seq"], (i + 1) as i64, "seqs without gaps: {hist}");
    }
    for u in &users {
        assert!(
            msgs.iter().any(|m| m["role"] == "assistant"
                && m["runId"] == u["runId"]
                && m["content"] == u["content"]),
            "no stored echo for {u}: {hist}"
        );
    }
}

#[test]
fn concurrent_sends_to_one_session_run_in_transcript_order() {
    // Many connections send to the same session at once. The daemon picks an arrival order and
    // records it as the transcript's seq order; SPEC §6 queues sends FIFO behind the active run,
    // so the runs (and with `echo`, their replies) must follow that same order. Otherwise the
    // transcript tells a different story from what the agent was actually given.
    let d = Daemon::start();
    let socket = d.socket();
    std::thread::scope(|s| {
        for i in 0..30 {
            let socket = &socket;
            s.spawn(move || {
                let mut c = RawConn::connect(socket);
                let r = c.call_ok(
                    "sessions.send",
                    json!({"sessionKey": "main", "message": format!("m{i}"), "timeoutSeconds": 30}),
                );
                assert_eq!(r["status"], "ok", "{r}");
            });
        }
    });
    let mut c = RawConn::connect(&socket);
    let hist = c.call_ok(
        "sessions.history",
        json!({"sessionKey": "main", "limit": 1000}),
    );
    let msgs = hist["messages"].as_array().expect("messages");
    let by_role = |role: &str| -> Vec<String> {
        msgs.iter()
            .filter(|m| m["role"] == role)
            .map(|m| m["content"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    let (users, replies) = (by_role("user"), by_role("assistant"));
    assert_eq!(users.len(), 30, "{hist}");
    assert_eq!(
        replies, users,
        "runs of one session did not execute in transcript (seq) order:\n  user messages: {users:?}\n  replies:       {replies:?}"
    );
}

// ------------------------------------------------------------------ hello and daemon.status

#[test]
fn hello_reports_the_peer() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let hello = c.call_ok("hello", json!({"client": "jsonrpc-test"}));
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(hello["peer"]["uid"], uid, "peer uid: {hello}");
    assert_eq!(
        hello["peer"]["pid"],
        std::process::id(),
        "peer pid (SO_PEERCRED at connect): {hello}"
    );
    assert_eq!(
        hello["peer"]["trusted"], true,
        "same uid is trusted: {hello}"
    );
    assert_eq!(hello["daemonVersion"], openclaw::VERSION, "{hello}");
    assert_eq!(
        hello["protocolVersion"],
        openclaw::protocol::PROTOCOL_VERSION,
        "{hello}"
    );
    assert!(
        hello["daemonId"].as_str().is_some_and(|s| !s.is_empty()),
        "{hello}"
    );
    // Params are optional.
    c.send_line(r#"{"jsonrpc":"2.0","id":2,"method":"hello"}"#);
    assert_result(&c.read_json(), &json!(2));
}

#[test]
fn daemon_status_reports_the_paths() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let st = c.call_ok("daemon.status", json!({}));
    let home = d.home_path();
    assert_eq!(st["pid"], d.pid(), "{st}");
    assert!(same_path(&st["socket"], &d.socket()), "socket path: {st}");
    assert!(
        same_path(&st["dataDir"], &home.join("data")),
        "data dir: {st}"
    );
    assert!(
        same_path(&st["configFile"], &home.join("config.toml")),
        "config file: {st}"
    );
    assert_eq!(st["version"], openclaw::VERSION, "{st}");
    assert!(st["uptimeMs"].is_u64(), "{st}");
    assert!(
        st["lanes"].as_array().is_some_and(|l| !l.is_empty()),
        "lanes: {st}"
    );
    assert!(
        d.db_path().exists(),
        "the store lives at {}",
        d.db_path().display()
    );
    // Unknown params are refused here too.
    let resp = c.call(3, "daemon.status", json!({"verbose": true}));
    assert_error(&resp, INVALID_PARAMS, &json!(3));
}

#[test]
fn the_daemon_survives_garbage_and_keeps_serving() {
    let mut d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let junk: [&[u8]; 6] = [
        b"\xff\xfe\xfd not utf-8\n",
        b"{}\n",
        b"null\n",
        b"[[]]\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":{\"an\":\"object\"},\"method\":\"hello\"}\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sessions.spawn\",\"params\":\"bar\"}\n",
    ];
    for line in junk {
        c.send_raw(line);
        let resp = c.read_json();
        let one = if resp.is_array() {
            resp[0].clone()
        } else {
            resp.clone()
        };
        assert!(
            one["error"]["code"].is_i64(),
            "{:?} must get an error reply: {resp}",
            String::from_utf8_lossy(line)
        );
    }
    daemon_alive(&mut d);
    assert_result(&c.call(9, "hello", json!({})), &json!(9));
}

#[test]
fn concurrent_sends_never_overshoot_the_session_queue_limit() {
    // One session, its agent blocked on a FIFO nobody writes: one run active, at most
    // max_queued_per_session behind it. 30 sends pipelined on one connection are handled
    // concurrently; however they interleave, no more than 1 + 2 may be accepted.
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = common::fifo(dir.path(), "never");
    let config = format!(
        "[limits]\nmax_queued_per_session = 2\n\n[agents.main]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"cat {} >/dev/null\"]\n",
        gate.display()
    );
    let d = Daemon::start_with_config(&config);
    let mut c = RawConn::connect(&d.socket());
    for i in 0..30 {
        c.send_line(
            &json!({"jsonrpc": "2.0", "id": i, "method": "sessions.send",
                    "params": {"sessionKey": "main", "message": format!("m{i}"), "timeoutSeconds": 0}})
            .to_string(),
        );
    }
    let (mut accepted, mut busy) = (0, 0);
    for _ in 0..30 {
        let r = c.read_json();
        if r["result"]["status"] == "accepted" {
            accepted += 1;
        } else if r["error"]["data"]["kind"] == "busy" {
            busy += 1;
        } else {
            panic!("neither accepted nor busy: {r}");
        }
    }
    assert!(
        (1..=3).contains(&accepted),
        "one active run plus at most 2 queued may be accepted, got {accepted} accepted and {busy} busy"
    );
    assert_eq!(accepted + busy, 30);
}

#[test]
fn a_peer_gone_mid_wait_frees_its_connection() {
    // A day-long wait, then the client closes its socket: the daemon must not keep the
    // connection (and its slot under the connection caps) for the day.
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = common::fifo(dir.path(), "never");
    let config = format!(
        "[agents.main]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"cat {} >/dev/null\"]\n",
        gate.display()
    );
    let d = Daemon::start_with_config(&config);
    let mut status = RawConn::connect(&d.socket());
    let run = status.call_ok(
        "sessions.send",
        json!({"sessionKey": "main", "message": "block", "timeoutSeconds": 0}),
    )["runId"]
        .clone();
    let baseline = status.call_ok("daemon.status", json!({}))["connections"]
        .as_u64()
        .unwrap_or(0);
    {
        let mut waiter = RawConn::connect(&d.socket());
        waiter.send_line(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "runs.wait",
                    "params": {"runId": run, "timeoutSeconds": 86400}})
            .to_string(),
        );
        // Make sure the daemon has the wait (the connection is counted) before hanging up.
        let deadline = common::deadline(20);
        while status.call_ok("daemon.status", json!({}))["connections"]
            .as_u64()
            .unwrap_or(0)
            <= baseline
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiting connection never showed up"
            );
        }
    } // dropped: the socket is closed in both directions
    let deadline = common::deadline(20);
    loop {
        let n = status.call_ok("daemon.status", json!({}))["connections"]
            .as_u64()
            .unwrap_or(0);
        if n <= baseline {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a connection whose peer hung up during a day-long wait is still open ({n} > {baseline})"
        );
    }
}

#[test]
fn a_subscription_in_a_slow_batch_sends_nothing_before_the_batch_reply() {
    // The batch's reply waits for its slowest call (a one-second wait); a shorter call on
    // another frame finishes meanwhile. The subscription in the batch must still send
    // nothing until the batch reply that names it is out.
    let d = Daemon::start_with_config(
        "[agents.hold]\nbackend = \"exec\"\ncommand = [\"sleep\", \"30\"]\n",
    );
    for i in 0..3 {
        d.ok(&["sessions", "send", "main", &format!("m{i}")]);
    }
    let mut c = RawConn::connect(&d.socket());
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "sessions.subscribe",
         "params": {"sessionKey": "main", "afterSeq": 0, "events": ["message"]}},
        {"jsonrpc": "2.0", "id": 2, "method": "sessions.send",
         "params": {"sessionKey": "agent:hold:main", "message": "x", "timeoutSeconds": 1}},
    ]);
    c.send_line(&batch.to_string());
    // Ends after the subscription was set up and well before the batch: its wait times out.
    c.send_line(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "sessions.send",
                "params": {"sessionKey": "agent:hold:main", "message": "y", "timeoutSeconds": 0.3}})
        .to_string(),
    );
    let mut batch_seen = false;
    let mut notes = 0;
    while notes < 6 {
        let v = c.read_json();
        if v.is_array() {
            batch_seen = true;
            assert_eq!(v[0]["id"], 1, "{v}");
            continue;
        }
        if v.get("method").is_some() {
            assert!(
                batch_seen,
                "a notification arrived before the batch reply naming its subscription: {v}"
            );
            notes += 1;
        }
    }
}

#[test]
fn a_pipelined_subscription_sends_nothing_before_its_own_reply() {
    // Many follows (each with messages to catch up on at once) pipelined with quick calls on
    // one connection: however the handlers interleave, no notification of a subscription
    // may come before the reply that names it.
    let d = Daemon::start();
    for i in 0..3 {
        d.ok(&["sessions", "send", "main", &format!("m{i}")]);
    }
    let mut c = RawConn::connect(&d.socket());
    let mut burst = String::new();
    let n = 200;
    for i in 0..n {
        let line = if i % 2 == 0 {
            json!({"jsonrpc": "2.0", "id": i, "method": "sessions.subscribe",
                   "params": {"sessionKey": "main", "afterSeq": 0, "events": ["message"]}})
        } else {
            json!({"jsonrpc": "2.0", "id": i, "method": "hello"})
        };
        burst.push_str(&line.to_string());
        burst.push('\n');
    }
    c.send_raw(burst.as_bytes());
    let mut named = std::collections::HashSet::new();
    let (mut replies, mut notes) = (0, 0);
    // Every subscription catches up 6 messages (3 sends, 3 echo replies).
    while replies < n || notes < (n / 2) * 6 {
        let v = c.read_json();
        if v.get("id").is_some() {
            replies += 1;
            if let Some(sub) = v["result"]["subscription"].as_str() {
                named.insert(sub.to_string());
            }
            continue;
        }
        let sub = v["params"]["subscription"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            named.contains(&sub),
            "a notification of {sub} arrived before the reply naming it: {v}"
        );
        notes += 1;
    }
    assert_eq!(named.len(), n as usize / 2);
}
