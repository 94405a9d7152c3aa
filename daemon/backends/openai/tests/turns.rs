//! Turns that work: streamed replies, tool rounds, and what the server receives.

use super::*;

#[tokio::test]
async fn a_plain_stream_from_the_real_server_gives_deltas_then_the_reply() {
    let server = OpenAiServer::start();
    server.set_models(&["tiny", "other"]);
    server.push(Reply::fixture("stream_plain.txt"));
    let mut s = settings(&server.base_url());
    s.model = None; // the first of GET /models
    let host = TestHost::plain();
    let reply = run(s, &host, ctx("hi", Vec::new())).await.unwrap();
    assert_eq!(reply.reply, "wSK&TYntTYnt");
    assert_eq!(reply.model, "tiny");
    assert_eq!(reply.usage, None, "the server sent no usage");
    assert_eq!(reply.tool_rounds, 0);
    assert_eq!(
        host.deltas(),
        ["w", "S", "K", "&", "T", "Y", "n", "t", "T", "Y", "n", "t"]
    );
    assert!(host.records().is_empty());

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        requests[1].json,
        Some(json!({
            "model": "tiny",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": true},
        }))
    );
    assert!(
        requests[1].header("authorization").is_none(),
        "no key configured, none sent"
    );
}

#[tokio::test]
async fn the_model_spawns_waits_and_answers_over_three_requests() {
    let server = OpenAiServer::start();
    server.push(Reply::tool_calls(&[(
        "call_1",
        "sessions_spawn",
        r#"{"task": "count the files in /srv", "agentId": "worker", "streamTo": "parent"}"#,
    )]));
    server.push(Reply::tool_calls(&[(
        "call_2",
        "sessions_wait",
        r#"{"runId": "run-1"}"#,
    )]));
    server.push(
        Sse::new()
            .role()
            .text("There are ")
            .text("42 files.")
            .finish("stop")
            .usage(30, 5)
            .done(),
    );
    let scope = no_acp_scope();
    let host = TestHost::session_tools(scope.clone());
    let reply = run(
        settings(&server.base_url()),
        &host,
        ctx("count files", openai_tools(&scope)),
    )
    .await
    .unwrap();
    assert_eq!(reply.reply, "There are 42 files.");
    assert_eq!(reply.tool_rounds, 2);
    assert_eq!(reply.usage.map(|u| u.total()), Some(Some(35)));

    // The tools ran through the host, in order, with the model's own ids.
    let calls = host.calls();
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect::<Vec<_>>(),
        [("call_1", "sessions_spawn"), ("call_2", "sessions_wait")]
    );
    // Transcript: each call and its result; streamTo dropped and reported, not failed.
    let records = host.records();
    assert_eq!(records.len(), 4, "{records:#?}");
    assert_eq!(records[0].0, Role::ToolCall);
    assert_eq!(records[0].1["id"], "call_1");
    assert_eq!(records[0].1["input"]["streamTo"], "parent");
    assert_eq!(records[1].0, Role::ToolResult);
    assert_eq!(records[1].1["status"], "ok");
    assert_eq!(records[1].1["output"]["ignoredFields"], json!(["streamTo"]));
    assert_eq!(
        records[1].1["output"]["sessionKey"],
        "agent:worker:subagent:1"
    );
    assert_eq!(records[3].1["output"]["reply"], "42 files");
    // Tool events: start then end for each call.
    let phases: Vec<(String, String)> = host
        .tool_events()
        .iter()
        .map(|e| {
            (
                e["phase"].as_str().unwrap().into(),
                e["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        phases,
        [
            ("start".into(), "call_1".into()),
            ("end".into(), "call_1".into()),
            ("start".into(), "call_2".into()),
            ("end".into(), "call_2".into())
        ]
    );
    assert!(host.seen().contains(&Seen::Usage(Usage {
        prompt_tokens: Some(30),
        completion_tokens: Some(5),
        total_tokens: Some(35)
    })));

    // What the server received: roles, the results fed back, and the schemas.
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 3);
    let third = requests[2].json.as_ref().unwrap();
    let roles: Vec<&str> = third["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant", "tool"]);
    let assistant = &third["messages"][1];
    assert_eq!(assistant["content"], "", "never null");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["name"],
        "sessions_spawn"
    );
    let fed_back: Value =
        serde_json::from_str(third["messages"][2]["content"].as_str().unwrap()).unwrap();
    assert_eq!(fed_back["ignoredFields"], json!(["streamTo"]));
    assert_eq!(third["messages"][2]["tool_call_id"], "call_1");

    let sent_tools = third["tools"].as_array().unwrap();
    let names: Vec<&str> = sent_tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "sessions_wait"
        ]
    );
    let spawn = &sent_tools[3]["function"]["parameters"];
    assert_eq!(spawn["additionalProperties"], false);
    assert_eq!(
        spawn["properties"]["agentId"]["enum"],
        json!(["main", "worker"])
    );
    assert!(spawn["properties"].get("streamTo").is_none());
    assert!(
        !requests
            .iter()
            .any(|r| r.raw_text().contains("\"streamTo\":{")),
        "no schema offers streamTo"
    );
    assert!(third.get("tool_choice").is_none(), "none configured");
}

#[tokio::test]
async fn the_request_carries_the_conversation_settings_and_the_key_only_in_its_header() {
    let server = OpenAiServer::start();
    server.push(Reply::text(&["ok"]));
    let mut s = settings(&server.base_url());
    s.api_key = KeySource::Set {
        var: "TEST_KEY".into(),
        key: ApiKey::new(SECRET),
    };
    s.system_prompt = Some("You are the ops assistant of this host.".into());
    s.temperature = Some(0.25);
    s.max_tokens = Some(64);
    s.extra_body = json!({"top_p": 0.5, "seed": 7})
        .as_object()
        .unwrap()
        .clone();
    s.tool_choice = Some(crate::config::ToolChoice::Required);
    assert!(
        !format!("{s:?}").contains(SECRET),
        "settings never print the key"
    );
    let mut c = ctx("go on", openai_tools(&no_acp_scope()));
    c.history = vec![
        serde_json::from_value(json!({
            "seq": 1, "ts": "2026-01-01T00:00:00Z", "role": "user", "content": "the task",
            "provenance": {"kind": "spawn_task"}
        }))
        .unwrap(),
    ];
    c.thinking = Some("high".into());
    c.model = Some("session-model".into());
    let host = TestHost::plain();
    run(s, &host, c).await.unwrap();

    let request = &server.chat_requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(
        request.raw_text().matches(SECRET).count(),
        1,
        "the key appears once, in the Authorization header"
    );
    let body = request.json.as_ref().unwrap();
    assert_eq!(body["model"], "session-model", "the session's model wins");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are the ops assistant of this host."},
            {"role": "user", "content": "the task\n\ngo on"},
        ])
    );
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["top_p"], 0.5);
    assert_eq!(body["seed"], 7);
    assert_eq!(body["reasoning_effort"], "high");
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["stream"], true);
}

#[tokio::test]
async fn a_forced_tool_choice_applies_to_the_first_request_only() {
    let server = OpenAiServer::start();
    server.push(Reply::tool_calls(&[(
        "c1",
        "sessions_spawn",
        r#"{"task": "t"}"#,
    )]));
    server.push(Reply::text(&["done"]));
    let mut s = settings(&server.base_url());
    s.tool_choice = Some(crate::config::ToolChoice::Tool("sessions_spawn".into()));
    let scope = no_acp_scope();
    let host = TestHost::session_tools(scope.clone());
    run(s, &host, ctx("go", openai_tools(&scope)))
        .await
        .unwrap();
    let requests = server.chat_requests();
    assert_eq!(
        requests[0].json.as_ref().unwrap()["tool_choice"],
        json!({"type": "function", "function": {"name": "sessions_spawn"}})
    );
    assert_eq!(requests[1].json.as_ref().unwrap()["tool_choice"], "auto");
}

#[tokio::test]
async fn max_tool_rounds_ends_the_turn_ok_with_a_note() {
    let server = OpenAiServer::start();
    for i in 0..3 {
        server.push(Reply::tool_calls(&[(
            &format!("c{i}"),
            "sessions_list",
            "{}",
        )]));
    }
    let mut s = settings(&server.base_url());
    s.max_tool_rounds = 2;
    let host = TestHost::new(|_| Some(json!({"sessions": []})));
    let reply = run(s, &host, ctx("loop", Vec::new())).await.unwrap();
    assert_eq!(reply.reply, "");
    assert_eq!(reply.tool_rounds, 2);
    assert_eq!(server.chat_requests().len(), 2);
    assert_eq!(server.pending(), 1, "no third request");
    let records = host.records();
    let (role, note) = records.last().unwrap();
    assert_eq!(*role, Role::System);
    assert_eq!(
        note,
        "the turn stopped after 2 rounds of tool calls (max_tool_rounds = 2) with the model still calling tools; send a message to let it go on"
    );
    // Every call that ran has its result.
    let calls = records.iter().filter(|(r, _)| *r == Role::ToolCall).count();
    let results = records
        .iter()
        .filter(|(r, _)| *r == Role::ToolResult)
        .count();
    assert_eq!((calls, results), (2, 2));
}

#[tokio::test]
async fn arguments_cut_by_max_tokens_get_an_error_result_and_the_turn_goes_on() {
    let server = OpenAiServer::start();
    server.push(Reply::fixture("stream_tools_cut_by_max_tokens.txt"));
    server.push(Reply::text(&["sorry, again"]));
    let scope = no_acp_scope();
    let host = TestHost::session_tools(scope.clone());
    let reply = run(
        settings(&server.base_url()),
        &host,
        ctx("spawn", openai_tools(&scope)),
    )
    .await
    .unwrap();
    assert_eq!(reply.reply, "sorry, again");
    assert!(
        host.calls().is_empty(),
        "broken arguments never reach the tool"
    );
    let records = host.records();
    assert_eq!(records[0].0, Role::ToolCall);
    assert_eq!(records[0].1["input"], Value::Null);
    assert_eq!(
        records[0].1["rawArguments"],
        r#"{"task": "Jq)`<SK&TYq2]tTYnguM>PmX^ap&TY(35BWFrp"#
    );
    assert_eq!(records[1].1["status"], "error");
    assert_eq!(records[1].1["output"]["error"]["kind"], "invalid_params");
    // The model is told, in the next request.
    let second = server.chat_requests()[1].json.clone().unwrap();
    let tool_message = &second["messages"][2];
    assert_eq!(tool_message["role"], "tool");
    assert!(
        tool_message["content"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{tool_message}"
    );
    // And it sees its own call as it made it.
    assert_eq!(
        second["messages"][1]["tool_calls"][0]["function"]["arguments"],
        r#"{"task": "Jq)`<SK&TYq2]tTYnguM>PmX^ap&TY(35BWFrp"#
    );
}

#[tokio::test]
async fn the_real_forced_call_with_made_up_fields_succeeds_with_ignored_fields() {
    let server = OpenAiServer::start();
    server.push(Reply::fixture("stream_tools_forced.txt"));
    server.push(Reply::fixture("stream_plain_length.txt"));
    let scope = no_acp_scope();
    let host = TestHost::session_tools(scope.clone());
    let reply = run(
        settings(&server.base_url()),
        &host,
        ctx("spawn", openai_tools(&scope)),
    )
    .await
    .unwrap();
    assert_eq!(reply.reply, "wSK&TYntTYCp&TYn");
    let result = &host.records()[1].1;
    assert_eq!(result["status"], "ok");
    assert_eq!(
        result["output"]["ignoredFields"],
        json!(["agent", "background", "timeout_s"])
    );
}

#[tokio::test]
async fn a_server_that_ignores_stream_true_still_works() {
    let server = OpenAiServer::start();
    server.push(Reply::Json(json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    })));
    let host = TestHost::plain();
    let reply = run(settings(&server.base_url()), &host, ctx("hi", Vec::new()))
        .await
        .unwrap();
    assert_eq!(reply.reply, "whole");
    assert_eq!(host.deltas(), ["whole"]);
    assert_eq!(reply.usage.unwrap().total(), Some(5));
}

#[tokio::test]
async fn usage_is_summed_over_the_rounds_and_reasoning_is_a_thought() {
    let server = OpenAiServer::start();
    server.push(
        Sse::new()
            .role()
            .tool_call(0, "c1", "sessions_list", "{}")
            .finish("tool_calls")
            .usage(10, 2)
            .done(),
    );
    server.push(
        Sse::new()
            .data(r#"{"choices": [{"index": 0, "delta": {"reasoning_content": "thinking..."}}]}"#)
            .text("ok")
            .finish("stop")
            .usage(20, 3)
            .done(),
    );
    let host = TestHost::new(|_| Some(json!({"sessions": []})));
    let reply = run(settings(&server.base_url()), &host, ctx("hi", Vec::new()))
        .await
        .unwrap();
    assert_eq!(
        reply.usage,
        Some(Usage {
            prompt_tokens: Some(30),
            completion_tokens: Some(5),
            total_tokens: Some(35)
        })
    );
    assert_eq!(
        reply.usage.unwrap().to_json(),
        json!({"promptTokens": 30, "completionTokens": 5, "totalTokens": 35})
    );
    assert!(host.seen().contains(&Seen::Thought("thinking...".into())));
    assert_eq!(reply.reply, "ok");
}

#[tokio::test]
async fn a_connection_dropped_after_the_finish_reason_loses_nothing() {
    let server = OpenAiServer::start();
    server.push(
        Sse::new()
            .role()
            .text("all ")
            .text("there")
            .finish("stop")
            .end(End::Cut),
    );
    let host = TestHost::plain();
    let reply = run(settings(&server.base_url()), &host, ctx("hi", Vec::new()))
        .await
        .unwrap();
    assert_eq!(reply.reply, "all there");
}
