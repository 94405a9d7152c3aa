use serde_json::json;

use super::*;
use crate::daemon::backends::openai::openai_server::fixture;

/// Feeds an SSE body the way a client splits it: one event per blank-line-separated block,
/// each `data:` line's value.
fn feed_body(body: &str) -> (StreamAssembler, Vec<Delta>) {
    let mut a = StreamAssembler::new();
    let mut deltas = Vec::new();
    for block in body.split("\n\n") {
        let data: Vec<&str> = block
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        if data.is_empty() {
            continue;
        }
        deltas.extend(a.feed(&data.join("\n")).expect("feed"));
    }
    (a, deltas)
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("utf-8")
}

fn chunk(delta: serde_json::Value, finish: serde_json::Value) -> String {
    json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
}

#[test]
fn the_plain_fixture_streams_its_text_and_has_no_usage() {
    let (a, deltas) = feed_body(&fixture_text("stream_plain.txt"));
    assert!(a.is_done());
    let pieces: Vec<String> = deltas
        .iter()
        .map(|d| match d {
            Delta::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        pieces,
        ["w", "S", "K", "&", "T", "Y", "n", "t", "T", "Y", "n", "t"]
    );
    let c = a.finish().unwrap();
    assert_eq!(c.text, "wSK&TYntTYnt");
    assert_eq!(c.finish_reason, "length");
    assert!(c.tool_calls.is_empty());
    assert_eq!(c.usage, None);
}

#[test]
fn llama_cpp_tool_fragments_repeat_id_and_name_which_are_set_once() {
    let (a, deltas) = feed_body(&fixture_text("stream_tools2.txt"));
    assert!(deltas.is_empty(), "no text: {deltas:?}");
    let c = a.finish().unwrap();
    assert_eq!(c.finish_reason, "tool_calls");
    assert_eq!(
        c.tool_calls,
        [AssembledCall {
            id: "call__0_get_weather_cmpl-a10eedbd-f271-4ad2-a5be-b03d11c258f5".into(),
            name: "get_weather".into(),
            arguments: r#"{"city": "J5{nSK&T" }"#.into(),
        }]
    );

    let c = feed_body(&fixture_text("stream_tools_forced.txt"))
        .0
        .finish()
        .unwrap();
    assert_eq!(c.tool_calls.len(), 1);
    assert_eq!(c.tool_calls[0].name, "sessions_spawn");
    let args: serde_json::Value = serde_json::from_str(&c.tool_calls[0].arguments).unwrap();
    assert_eq!(args["agent"], "main");
}

#[test]
fn arguments_cut_by_max_tokens_are_kept_as_sent() {
    let c = feed_body(&fixture_text("stream_tools_cut_by_max_tokens.txt"))
        .0
        .finish()
        .unwrap();
    assert_eq!(c.finish_reason, "tool_calls");
    assert_eq!(
        c.tool_calls[0].arguments,
        r#"{"task": "Jq)`<SK&TYq2]tTYnguM>PmX^ap&TY(35BWFrp"#
    );
    assert!(serde_json::from_str::<serde_json::Value>(&c.tool_calls[0].arguments).is_err());
}

#[test]
fn text_that_looks_like_a_call_stays_text() {
    let c = feed_body(&fixture_text("stream_tools_auto_text.txt"))
        .0
        .finish()
        .unwrap();
    assert_eq!(c.text, "functions.sessions_spawn:");
    assert_eq!(c.finish_reason, "stop");
    assert!(c.tool_calls.is_empty());
}

#[test]
fn openai_fragments_carry_the_id_and_name_only_first() {
    let mut a = StreamAssembler::new();
    for data in [
        chunk(json!({"role": "assistant", "content": null}), json!(null)),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "sessions_list", "arguments": ""}}]}),
            json!(null),
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"lim"}}]}),
            json!(null),
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "sessions_wait", "arguments": "{}"}}]}),
            json!(null),
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "it\": 2}"}}]}),
            json!(null),
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}).to_string(),
        "[DONE]".into(),
    ] {
        a.feed(&data).unwrap();
    }
    let c = a.finish().unwrap();
    assert_eq!(
        c.tool_calls,
        [
            AssembledCall {
                id: "call_a".into(),
                name: "sessions_list".into(),
                arguments: "{\"limit\": 2}".into()
            },
            AssembledCall {
                id: "call_b".into(),
                name: "sessions_wait".into(),
                arguments: "{}".into()
            },
        ]
    );
    assert_eq!(
        c.usage,
        Some(Usage {
            prompt_tokens: Some(7),
            completion_tokens: Some(3),
            total_tokens: Some(10)
        })
    );
}

#[test]
fn odd_but_clear_servers_are_understood() {
    let mut a = StreamAssembler::new();
    for data in [
        // `finish_reason: ""` before the end, `usage: {}`, `choices: null`.
        chunk(json!({"content": "Hi"}), json!("")),
        json!({"choices": null, "usage": {}}).to_string(),
        // No index at all; the name in a later chunk than the id.
        json!({"choices": [{"delta": {"tool_calls": [{"id": "c1", "function": {"arguments": "{\"a\":"}}]}}]}).to_string(),
        json!({"choices": [{"delta": {"tool_calls": [{"function": {"name": "one", "arguments": "1}"}}]}}]}).to_string(),
        // Index 0 reused for a second call with its own id.
        json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c2", "function": {"name": "two", "arguments": "{}"}}]}}]}).to_string(),
        // Index 0 reused, no ids: a new name after complete arguments is a new call.
        json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "three", "arguments": "{\"b\""}}]}}]}).to_string(),
        json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 2}"}}]}}]}).to_string(),
        // A second choice (n > 1) is not the answer.
        json!({"choices": [{"index": 1, "delta": {"content": "other"}}]}).to_string(),
        chunk(json!({}), json!("tool_calls")),
    ] {
        a.feed(&data).unwrap();
    }
    let c = a.finish().expect("finish_reason was given");
    assert_eq!(c.text, "Hi");
    assert_eq!(c.usage, None, "usage: {{}} is no usage");
    let calls: Vec<(&str, &str, &str)> = c
        .tool_calls
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str(), t.arguments.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("c1", "one", "{\"a\":1}"),
            ("c2", "two", "{}"),
            ("call_2", "three", "{\"b\": 2}")
        ]
    );
}

#[test]
fn the_deprecated_function_call_alone_is_a_call_and_beside_tool_calls_is_ignored() {
    let mut a = StreamAssembler::new();
    a.feed(&chunk(
        json!({"function_call": {"name": "sessions_list", "arguments": "{"}}),
        json!(null),
    ))
    .unwrap();
    a.feed(&chunk(
        json!({"function_call": {"arguments": "}"}}),
        json!(null),
    ))
    .unwrap();
    a.feed(&chunk(json!({}), json!("function_call"))).unwrap();
    let c = a.finish().unwrap();
    assert_eq!(c.tool_calls.len(), 1);
    assert_eq!(c.tool_calls[0].name, "sessions_list");
    assert_eq!(c.tool_calls[0].arguments, "{}");
    assert_eq!(c.tool_calls[0].id, "call_0");
}

#[test]
fn reasoning_is_streamed_apart_from_the_text() {
    let mut a = StreamAssembler::new();
    let d = a
        .feed(&chunk(json!({"reasoning_content": "hmm"}), json!(null)))
        .unwrap();
    assert_eq!(d, [Delta::Reasoning("hmm".into())]);
    a.feed(&chunk(json!({"content": "yes"}), json!("stop")))
        .unwrap();
    let c = a.finish().unwrap();
    assert_eq!((c.text.as_str(), c.reasoning.as_str()), ("yes", "hmm"));
}

#[test]
fn a_stream_must_finish_and_every_chunk_must_be_json() {
    let mut a = StreamAssembler::new();
    a.feed(&chunk(json!({"content": "par"}), json!(null)))
        .unwrap();
    assert_eq!(a.finish(), Err(StreamError::Unfinished));

    // [DONE] without a finish_reason: the server said it was done.
    let mut a = StreamAssembler::new();
    a.feed(&chunk(json!({"content": "ok"}), json!(null)))
        .unwrap();
    a.feed("[DONE]").unwrap();
    assert_eq!(a.finish().unwrap().finish_reason, "stop");

    let mut a = StreamAssembler::new();
    assert_eq!(
        a.feed("<html>502 Bad Gateway</html>"),
        Err(StreamError::NotJson("<html>502 Bad Gateway</html>".into()))
    );
    assert_eq!(
        StreamAssembler::new().feed(r#"{"error": {"message": "model crashed"}}"#),
        Err(StreamError::Server("model crashed".into()))
    );
    // Whatever follows [DONE] is not read.
    let mut a = StreamAssembler::new();
    a.feed("[DONE]").unwrap();
    assert_eq!(a.feed("HTTP 200"), Ok(vec![]));
}

#[test]
fn a_whole_completion_in_one_json_body() {
    let c = completion_from_json(
        &json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "",
                "tool_calls": [{"id": "x", "type": "function", "function": {"name": "sessions_list", "arguments": "{}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(c.tool_calls[0].name, "sessions_list");
    assert_eq!(c.usage.unwrap().total(), Some(4));
    let c = completion_from_json(r#"{"choices": [{"message": {"content": "hello"}}]}"#).unwrap();
    assert_eq!(
        (c.text.as_str(), c.finish_reason.as_str()),
        ("hello", "stop")
    );
}
