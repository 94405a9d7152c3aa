//! The stdio reader's answers to input it cannot use, and progress messages.

use serde_json::{Value, json};

use super::progress::describe;
use super::stdio::{Incoming, classify};
use crate::protocol::Notification;

fn answer(line: &str) -> Value {
    match classify(line.as_bytes()) {
        Incoming::Answer(v) => v,
        Incoming::Message(_) => panic!("{line} was taken as a message"),
        Incoming::Skip => panic!("{line} was skipped"),
    }
}

fn skipped(line: &str) -> bool {
    matches!(classify(line.as_bytes()), Incoming::Skip)
}

#[test]
fn each_kind_of_bad_line_gets_its_json_rpc_answer() {
    let not_json = answer("{oops");
    assert_eq!(
        (not_json["id"].clone(), not_json["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    assert_eq!(answer("[]")["error"]["code"], -32600);
    assert_eq!(answer("42")["error"]["code"], -32600);
    let no_version = answer(r#"{"id": 3, "method": "ping"}"#);
    assert_eq!(
        (
            no_version["id"].clone(),
            no_version["error"]["code"].clone()
        ),
        (json!(3), json!(-32600))
    );
    let params = answer(r#"{"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": 1}"#);
    assert_eq!(
        (params["id"].clone(), params["error"]["code"].clone()),
        (json!("a"), json!(-32602))
    );
    assert!(
        params["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools/call")
    );
}

#[test]
fn notifications_responses_and_blank_lines_are_never_answered() {
    assert!(skipped(""));
    assert!(skipped("   \r"));
    assert!(skipped(
        r#"{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": 1}"#
    ));
    assert!(skipped(
        r#"{"jsonrpc": "2.0", "id": 1, "error": "not an error object"}"#
    ));
}

#[test]
fn good_lines_are_messages_even_with_a_byte_order_mark() {
    let line = "\u{feff}{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\"}";
    assert!(matches!(classify(line.as_bytes()), Incoming::Message(_)));
}

fn event(stream: &str, data: Value) -> Notification {
    Notification {
        jsonrpc: "2.0".into(),
        method: "run.event".into(),
        params: json!({"subscription": "s", "sessionKey": "k", "runId": "r", "stream": stream, "seq": 1, "data": data}),
    }
}

#[test]
fn progress_says_what_the_run_writes_and_which_tools_it_calls() {
    assert_eq!(
        describe(&event("assistant", json!({"delta": "Hel"}))).as_deref(),
        Some("Hel")
    );
    assert_eq!(
        describe(&event(
            "tool",
            json!({"phase": "start", "id": "1", "name": "grep"})
        ))
        .as_deref(),
        Some("calling grep")
    );
    assert_eq!(
        describe(&event(
            "tool",
            json!({"phase": "end", "id": "1", "name": "grep", "status": "error"})
        ))
        .as_deref(),
        Some("grep ended: error")
    );
    assert_eq!(describe(&event("usage", json!({"tokens": 3}))), None);
    assert_eq!(describe(&event("assistant", json!({"delta": ""}))), None);
}
