use crate::protocol::{Message, Provenance, ProvenanceKind, Role};
use serde_json::{Value, json};

use super::*;

fn msg(
    role: Role,
    content: Value,
    run: Option<&str>,
    kind: ProvenanceKind,
    from: Option<&str>,
) -> Message {
    Message {
        seq: 0,
        ts: "2026-01-01T00:00:00Z".into(),
        role,
        content,
        run_id: run.map(str::to_string),
        provenance: Provenance {
            kind,
            from: from.map(str::to_string),
        },
        usage: None,
        truncated: None,
        bytes: None,
    }
}

fn task(text: &str) -> Message {
    msg(
        Role::User,
        json!(text),
        None,
        ProvenanceKind::SpawnTask,
        None,
    )
}

fn user(text: &str) -> Message {
    msg(
        Role::User,
        json!(text),
        None,
        ProvenanceKind::Operator,
        None,
    )
}

fn assistant(text: &str, run: &str) -> Message {
    msg(
        Role::Assistant,
        json!(text),
        Some(run),
        ProvenanceKind::Agent,
        None,
    )
}

fn call(id: &str, name: &str, input: Value, run: &str) -> Message {
    msg(
        Role::ToolCall,
        json!({"id": id, "name": name, "input": input}),
        Some(run),
        ProvenanceKind::Agent,
        None,
    )
}

fn result(id: &str, output: Value, run: &str) -> Message {
    msg(
        Role::ToolResult,
        json!({"id": id, "name": "x", "output": output, "status": "ok"}),
        Some(run),
        ProvenanceKind::Agent,
        None,
    )
}

fn announce(text: &str, from: &str) -> Message {
    msg(
        Role::Announce,
        json!(text),
        Some("child-run"),
        ProvenanceKind::Announce,
        Some(from),
    )
}

fn wire(messages: &[ChatMessage]) -> Vec<Value> {
    messages.iter().map(ChatMessage::to_json).collect()
}

#[test]
fn roles_map_onto_chat_roles_and_say_where_messages_came_from() {
    let history = vec![
        task("count the files"),
        msg(
            Role::Assistant,
            json!("on it"),
            Some("r1"),
            ProvenanceKind::Agent,
            None,
        ),
        call("c1", "sessions_spawn", json!({"task": "ls | wc -l"}), "r1"),
        result(
            "c1",
            json!({"status": "accepted", "sessionKey": "agent:w:subagent:1"}),
            "r1",
        ),
        assistant("spawned a worker", "r1"),
        announce("Status: ok\nResult: 42", "agent:w:subagent:1"),
        msg(
            Role::User,
            json!("ping"),
            None,
            ProvenanceKind::InterSession,
            Some("agent:main:main"),
        ),
        msg(
            Role::System,
            json!("run r2 ended error: boom"),
            Some("r2"),
            ProvenanceKind::Agent,
            None,
        ),
    ];
    let out = build(
        Some("You are the ops assistant."),
        &history,
        &IncomingMessage::operator("and now?"),
        200,
    );
    assert_eq!(
        wire(&out),
        vec![
            json!({"role": "system", "content": "You are the ops assistant."}),
            json!({"role": "user", "content": "count the files"}),
            json!({"role": "assistant", "content": "on it", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "sessions_spawn", "arguments": "{\"task\":\"ls | wc -l\"}"}}
            ]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "{\"status\":\"accepted\",\"sessionKey\":\"agent:w:subagent:1\"}"}),
            json!({"role": "assistant", "content": "spawned a worker"}),
            json!({"role": "user", "content": "[result of sub-agent session agent:w:subagent:1]\nStatus: ok\nResult: 42\n\n[message from session agent:main:main]\nping\n\n[openclaw note] run r2 ended error: boom\n\nand now?"}),
        ]
    );
}

#[test]
fn an_incoming_message_from_another_session_is_labelled() {
    let incoming = IncomingMessage {
        text: "status?".into(),
        provenance: Provenance {
            kind: ProvenanceKind::InterSession,
            from: Some("agent:main:main".into()),
        },
    };
    let out = build(None, &[], &incoming, 200);
    assert_eq!(
        wire(&out),
        vec![json!({"role": "user", "content": "[message from session agent:main:main]\nstatus?"})]
    );
}

#[test]
fn parallel_calls_share_one_assistant_message_and_a_missing_result_is_filled_in() {
    let history = vec![
        task("t"),
        call("a", "sessions_list", json!({}), "r1"),
        call("b", "sessions_wait", json!({"runId": "x"}), "r1"),
        result("a", json!("listed"), "r1"),
        // An announce that landed while b was still running, then the run was killed.
        announce("Status: ok", "agent:w:subagent:1"),
        result("zzz", json!("a result of no call"), "r1"),
    ];
    let out = build(None, &history, &IncomingMessage::operator("next"), 200);
    let w = wire(&out);
    assert_eq!(w.len(), 5, "{w:#?}");
    assert_eq!(w[1]["role"], "assistant");
    assert_eq!(w[1]["content"], "", "never null");
    assert_eq!(w[1]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(
        w[2],
        json!({"role": "tool", "tool_call_id": "a", "content": "listed"})
    );
    assert_eq!(w[3]["tool_call_id"], "b");
    assert!(
        w[3]["content"]
            .as_str()
            .unwrap()
            .contains("\"interrupted\""),
        "{}",
        w[3]
    );
    assert_eq!(
        w[4]["content"],
        "[result of sub-agent session agent:w:subagent:1]\nStatus: ok\n\nnext"
    );
}

#[test]
fn calls_of_a_new_round_start_a_new_assistant_message_and_raw_arguments_are_replayed() {
    let history = vec![
        task("t"),
        call("a", "sessions_list", json!({}), "r1"),
        result("a", json!({"sessions": []}), "r1"),
        msg(
            Role::ToolCall,
            json!({"id": "b", "name": "sessions_spawn", "input": null, "rawArguments": "{\"task\": \"cut"}),
            Some("r1"),
            ProvenanceKind::Agent,
            None,
        ),
        result(
            "b",
            json!({"error": {"kind": "invalid_params", "message": "bad"}}),
            "r1",
        ),
        assistant("done", "r1"),
    ];
    let w = wire(&build(
        None,
        &history,
        &IncomingMessage::operator("more"),
        200,
    ));
    let roles: Vec<&str> = w.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "user"
        ]
    );
    assert_eq!(
        w[3]["tool_calls"][0]["function"]["arguments"],
        "{\"task\": \"cut"
    );
}

#[test]
fn blocks_and_attachments_become_text() {
    let history = vec![msg(
        Role::User,
        json!([{"type": "text", "text": "read this"}, {"type": "attachment", "name": "a.txt"}]),
        None,
        ProvenanceKind::SpawnTask,
        None,
    )];
    let w = wire(&build(
        None,
        &history,
        &IncomingMessage::operator("go"),
        200,
    ));
    assert_eq!(
        w[0]["content"],
        "read this\n[attachment: a.txt, in the session's workspace]\n\ngo"
    );
}

/// A long session: the task, then `rounds` × (user, assistant with a call, its result,
/// assistant reply).
fn long_history(rounds: usize) -> Vec<Message> {
    let mut h = vec![task("the task")];
    for i in 0..rounds {
        let run = format!("r{i}");
        h.push(user(&format!("q{i}")));
        h.push(call(&format!("c{i}"), "sessions_list", json!({}), &run));
        h.push(result(&format!("c{i}"), json!(i), &run));
        h.push(assistant(&format!("a{i}"), &run));
    }
    h
}

#[test]
fn the_budget_keeps_the_system_prompt_the_task_and_the_newest_turns() {
    // 1 task + 10 × 4 + the new message = 42 messages.
    let history = long_history(10);
    let out = build(Some("sys"), &history, &IncomingMessage::operator("now"), 10);
    let w = wire(&out);
    assert_eq!(w[0], json!({"role": "system", "content": "sys"}));
    assert!(w.len() - 1 <= 10, "{} messages: {w:#?}", w.len() - 1);
    // The task comes first, with the note about what was left out.
    assert!(
        w[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("the task\n\n[openclaw note] "),
        "{}",
        w[1]
    );
    assert_eq!(w.last().unwrap()["content"], "now");
    // No tool result without its call.
    for (i, m) in w.iter().enumerate() {
        if m["role"] == "tool" {
            let prev = &w[i - 1];
            assert_eq!(prev["role"], "assistant", "at {i}: {w:#?}");
            assert_eq!(prev["tool_calls"][0]["id"], m["tool_call_id"]);
        }
    }
    // The newest turns are all there.
    let texts: Vec<String> = w.iter().map(|m| m["content"].to_string()).collect();
    assert!(texts.iter().any(|t| t.contains("a9")));
    assert!(!texts.iter().any(|t| t.contains("q0")));
}

#[test]
fn the_budget_never_starts_on_a_tool_result() {
    let history = long_history(3);
    // Every budget from the smallest up: the cut never splits a call from its result.
    for budget in 2..20 {
        let w = wire(&build(
            None,
            &history,
            &IncomingMessage::operator("now"),
            budget,
        ));
        assert!(w.len() <= budget, "budget {budget}: {} messages", w.len());
        assert!(w[0]["content"].as_str().unwrap().starts_with("the task"));
        for (i, m) in w.iter().enumerate() {
            if m["role"] == "tool" {
                assert_eq!(w[i - 1]["role"], "assistant", "budget {budget}: {w:#?}");
            }
        }
        // Roles alternate between the user side and the model.
        for pair in w.windows(2) {
            assert!(
                !(pair[0]["role"] == "user" && pair[1]["role"] == "user"),
                "budget {budget}: {w:#?}"
            );
        }
    }
    // Within the budget nothing is left out and there is no note.
    let w = wire(&build(
        None,
        &history,
        &IncomingMessage::operator("now"),
        200,
    ));
    // (The task and the first question are adjacent user turns: joined.)
    assert_eq!(w.len(), 3 * 4 + 1);
    assert!(
        !w.iter()
            .any(|m| m["content"].to_string().contains("left out"))
    );
}

#[test]
fn the_request_body_serialises_each_message_as_its_json_shape() {
    let messages = vec![
        ChatMessage::System("be brief".into()),
        ChatMessage::User("hi \"there\"\n".into()),
        ChatMessage::Assistant {
            content: String::new(),
            tool_calls: vec![ChatToolCall {
                id: "c1".into(),
                name: "sessions_list".into(),
                arguments: "{\"limit\": 2}".into(),
            }],
        },
        ChatMessage::Tool {
            tool_call_id: "c1".into(),
            content: "[]".into(),
        },
        ChatMessage::Assistant {
            content: "done".into(),
            tool_calls: Vec::new(),
        },
    ];
    let written: Value = serde_json::from_slice(&serde_json::to_vec(&messages).unwrap()).unwrap();
    assert_eq!(written, Value::Array(wire(&messages)));
}
