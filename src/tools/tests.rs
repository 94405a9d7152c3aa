use serde_json::{Value, json};

use super::*;
use crate::protocol::{ErrorKind, Runtime, SpawnMode};

fn scope(agents: &[(&str, AgentRuntime)]) -> ToolScope {
    ToolScope {
        allowed_agents: agents.iter().map(|(a, r)| (a.to_string(), *r)).collect(),
        can_spawn: true,
        strict: false,
        enabled: None,
    }
}

fn no_acp() -> ToolScope {
    scope(&[
        ("main", AgentRuntime::Native),
        ("worker", AgentRuntime::Native),
    ])
}

fn with_acp() -> ToolScope {
    scope(&[("main", AgentRuntime::Native), ("coder", AgentRuntime::Acp)])
}

/// `allow_agents = ["worker"]` on main: only the worker may be spawned.
fn restricted() -> ToolScope {
    scope(&[("worker", AgentRuntime::Native)])
}

fn names(tools: &[ToolDefinition]) -> Vec<&'static str> {
    tools.iter().map(|t| t.name).collect()
}

fn tool<'a>(tools: &'a [ToolDefinition], name: &str) -> &'a ToolDefinition {
    tools
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tool {name} in {:?}", names(tools)))
}

fn property_names(schema: &Value) -> Vec<String> {
    let mut keys: Vec<String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Every object schema in `schema` refuses extra properties; in strict form every property
/// is also required.
fn assert_closed(schema: &Value, strict: bool, at: &str) {
    match schema {
        Value::Object(obj) => {
            if obj.get("type").is_some_and(|t| {
                t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object")))
            }) {
                assert_eq!(
                    obj.get("additionalProperties"),
                    Some(&json!(false)),
                    "{at}: {schema}"
                );
                if strict {
                    let mut required: Vec<String> = obj["required"]
                        .as_array()
                        .expect("required")
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect();
                    required.sort();
                    assert_eq!(required, property_names(schema), "{at}");
                }
            }
            for (k, v) in obj {
                assert_closed(v, strict, &format!("{at}.{k}"));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| assert_closed(v, strict, at)),
        _ => {}
    }
}

const TASK_DOC: &str = "What the new session should do: its first message, complete on its own (the new session sees nothing of your conversation).";

fn attachments_schema() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "A plain file name, no '/'." },
                "content": { "type": "string", "description": "The file's content." },
                "encoding": { "type": "string", "enum": ["utf8", "base64"], "description": "utf8 (default) or base64." }
            },
            "required": ["name", "content"],
            "additionalProperties": false
        },
        "description": "Files written into the new session's workspace before it starts."
    })
}

#[test]
fn without_an_acp_agent_there_is_no_acp_tool_and_no_acp_field() {
    let tools = session_tools(&no_acp());
    assert_eq!(
        names(&tools),
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "sessions_wait"
        ]
    );
    let spawn = tool(&tools, "sessions_spawn");
    assert_eq!(
        spawn.input_schema,
        json!({
            "type": "object",
            "properties": {
                "task": { "type": "string", "description": TASK_DOC },
                "agentId": { "type": "string", "enum": ["main", "worker"], "description": "The agent to run the new session. Default: main." },
                "label": { "type": "string", "description": "A short human-readable name for the new session." },
                "model": { "type": "string", "description": "A model for the new session instead of its agent's configured one." },
                "thinking": { "type": "string", "enum": ["minimal", "low", "medium", "high"], "description": "Reasoning effort, for models that support it." },
                "runTimeoutSeconds": { "type": "number", "minimum": 1.0, "description": "Abort the new session's run after this many seconds." },
                "mode": { "type": "string", "enum": ["run", "session"], "description": "run (default): one run, then the session stays readable; session: a session meant to receive further sessions_send messages." },
                "cleanup": { "type": "string", "enum": ["keep", "delete"], "description": "keep (default) or delete: delete removes the session once its result has been announced." },
                "attachments": attachments_schema()
            },
            "required": ["task"],
            "additionalProperties": false
        })
    );
    assert!(
        spawn
            .description
            .ends_with("Agents you may use: main, worker."),
        "{}",
        spawn.description
    );
    // The session tools that do not spawn do not depend on the configuration.
    assert_eq!(
        tool(&tools, "sessions_send").input_schema,
        json!({
            "type": "object",
            "properties": {
                "sessionKey": { "type": "string", "description": "The session's key, as sessions_list or sessions_spawn returned it (e.g. agent:main:subagent:…)." },
                "message": { "type": "string", "description": "The message to send." },
                "timeoutSeconds": { "type": "number", "minimum": 0.0, "description": "How long to wait for the reply (default 30); 0 returns at once with a runId to pass to sessions_wait." }
            },
            "required": ["sessionKey", "message"],
            "additionalProperties": false
        })
    );
    let wait = &tool(&tools, "sessions_wait").input_schema;
    assert_eq!(
        property_names(wait),
        ["runId", "sessionKey", "timeoutSeconds"]
    );
    assert!(
        wait.get("required").is_none(),
        "either field will do: {wait}"
    );
    let history = &tool(&tools, "sessions_history").input_schema;
    assert_eq!(
        property_names(history),
        ["cursor", "includeTools", "limit", "sessionKey"]
    );
    assert_eq!(history["required"], json!(["sessionKey"]));
    let list = &tool(&tools, "sessions_list").input_schema;
    assert_eq!(
        property_names(list),
        [
            "activeMinutes",
            "cursor",
            "includeArchived",
            "kinds",
            "limit",
            "messageLimit",
            "parentKey"
        ]
    );
    assert_eq!(
        list["properties"]["kinds"]["items"],
        json!({"type": "string", "enum": ["main", "subagent", "cron", "hook", "other"]})
    );
    for t in &tools {
        assert_closed(&t.input_schema, false, t.name);
        assert!(!t.description.is_empty());
        let text = t.input_schema.to_string();
        assert!(
            !text.contains("streamTo") && !text.contains("resumeSessionId"),
            "{}: {text}",
            t.name
        );
    }
}

#[test]
fn an_allowed_acp_agent_gets_its_own_spawn_tool_with_the_acp_fields() {
    let tools = session_tools(&with_acp());
    assert_eq!(
        names(&tools),
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "sessions_spawn_acp",
            "sessions_wait"
        ]
    );
    let spawn = &tool(&tools, "sessions_spawn").input_schema;
    assert_eq!(spawn["properties"]["agentId"]["enum"], json!(["main"]));
    assert!(spawn["properties"].get("streamTo").is_none());
    assert!(spawn["properties"].get("resumeSessionId").is_none());
    assert!(spawn["properties"].get("runtime").is_none());

    let acp = tool(&tools, "sessions_spawn_acp");
    assert_eq!(
        acp.input_schema,
        json!({
            "type": "object",
            "properties": {
                "task": { "type": "string", "description": TASK_DOC },
                "agentId": { "type": "string", "enum": ["coder"], "description": "The ACP agent to run the new session. Default: coder." },
                "label": { "type": "string", "description": "A short human-readable name for the new session." },
                "runTimeoutSeconds": { "type": "number", "minimum": 1.0, "description": "Abort the new session's run after this many seconds." },
                "mode": { "type": "string", "enum": ["run", "session"], "description": "run (default): one run, then the session stays readable; session: a session meant to receive further sessions_send messages." },
                "cleanup": { "type": "string", "enum": ["keep", "delete"], "description": "keep (default) or delete: delete removes the session once its result has been announced." },
                "streamTo": { "type": "string", "enum": ["parent"], "description": "parent: relay the new session's progress to your session's followers as it happens." },
                "resumeSessionId": { "type": "string", "description": "Resume this earlier ACP session of the agent instead of starting a new one." },
                "attachments": attachments_schema()
            },
            "required": ["task"],
            "additionalProperties": false
        })
    );
    assert!(
        acp.description.ends_with("ACP agents you may use: coder."),
        "{}",
        acp.description
    );
    for t in &tools {
        assert_closed(&t.input_schema, false, t.name);
    }
}

#[test]
fn restricted_allow_agents_limit_the_spawn_enum_and_tools_limit_the_list() {
    let tools = session_tools(&restricted());
    assert_eq!(
        names(&tools),
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "sessions_wait"
        ]
    );
    let spawn = tool(&tools, "sessions_spawn");
    assert_eq!(
        spawn.input_schema["properties"]["agentId"],
        json!({ "type": "string", "enum": ["worker"], "description": "The agent to run the new session. Default: worker." })
    );
    assert!(spawn.description.ends_with("Agents you may use: worker."));

    // Only ACP agents allowed: no native spawn tool at all.
    let acp_only = session_tools(&scope(&[("coder", AgentRuntime::Acp)]));
    assert_eq!(
        names(&acp_only),
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn_acp",
            "sessions_wait"
        ]
    );
    // At the depth limit: no spawn tools, whatever is allowed.
    let mut leaf = with_acp();
    leaf.can_spawn = false;
    assert_eq!(
        names(&session_tools(&leaf)),
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_wait"
        ]
    );
    // `tools = [...]` picks tools; it cannot bring back a tool the scope does not allow.
    let mut picked = no_acp();
    picked.enabled = Some(vec![
        "sessions_wait".into(),
        "sessions_spawn".into(),
        "sessions_spawn_acp".into(),
    ]);
    assert_eq!(
        names(&session_tools(&picked)),
        ["sessions_spawn", "sessions_wait"]
    );
    picked.enabled = Some(vec![]);
    assert!(session_tools(&picked).is_empty());
}

#[test]
fn strict_form_requires_every_property_and_makes_optional_ones_nullable() {
    let mut s = with_acp();
    s.strict = true;
    let tools = session_tools(&s);
    for t in &tools {
        assert!(t.strict);
        assert_closed(&t.input_schema, true, t.name);
        assert_eq!(t.openai_tool()["function"]["strict"], json!(true));
    }
    let spawn = &tool(&tools, "sessions_spawn").input_schema;
    assert_eq!(
        spawn["required"],
        json!([
            "task",
            "agentId",
            "label",
            "model",
            "thinking",
            "runTimeoutSeconds",
            "mode",
            "cleanup",
            "attachments"
        ])
    );
    let p = &spawn["properties"];
    assert_eq!(
        p["task"]["type"],
        json!("string"),
        "required stays non-null"
    );
    assert_eq!(p["label"]["type"], json!(["string", "null"]));
    assert_eq!(p["runTimeoutSeconds"]["type"], json!(["number", "null"]));
    assert_eq!(p["agentId"]["enum"], json!(["main", null]));
    assert_eq!(p["mode"]["enum"], json!(["run", "session", null]));
    assert_eq!(p["attachments"]["type"], json!(["array", "null"]));
    assert_eq!(
        p["attachments"]["items"]["properties"]["encoding"]["enum"],
        json!(["utf8", "base64", null])
    );
    let acp = &tool(&tools, "sessions_spawn_acp").input_schema;
    assert_eq!(
        acp["properties"]["streamTo"]["enum"],
        json!(["parent", null])
    );

    // The plain form carries no `strict` flag, in either wire shape.
    let plain = session_tools(&with_acp());
    let openai = plain[0].openai_tool();
    assert_eq!(openai["type"], "function");
    assert_eq!(openai["function"]["name"], "sessions_list");
    assert!(openai["function"].get("strict").is_none());
    assert_eq!(openai["function"]["parameters"], plain[0].input_schema);
    let mcp = plain[0].mcp_tool();
    assert_eq!(mcp["name"], "sessions_list");
    assert_eq!(mcp["inputSchema"], plain[0].input_schema);
}

fn spawn_params(parsed: &ParsedToolCall) -> &SpawnParams {
    match &parsed.call {
        SessionToolCall::Spawn(p) => p,
        other => panic!("not a spawn: {other:?}"),
    }
}

#[test]
fn stream_to_sent_to_sessions_spawn_is_dropped_and_reported() {
    let parsed = parse_tool_call(
        &no_acp(),
        "sessions_spawn",
        r#"{"task": "Reply with exactly: subagent-ok", "runtime": "subagent", "agentId": "main", "mode": "run", "streamTo": "parent", "resumeSessionId": "s1"}"#,
    )
    .expect("the call succeeds");
    let p = spawn_params(&parsed);
    assert_eq!(p.task, "Reply with exactly: subagent-ok");
    assert_eq!(p.agent_id.as_deref(), Some("main"));
    assert_eq!(p.mode, Some(SpawnMode::Run));
    assert!(p.stream_to.is_none() && p.resume_session_id.is_none());
    assert!(p.runtime.is_none(), "the tool decides the runtime");
    assert_eq!(
        parsed.ignored_fields,
        ["resumeSessionId", "runtime", "streamTo"]
    );

    // Reported in the result, merged with what the service reported itself.
    let result = parsed.result_value(json!({
        "status": "accepted", "sessionKey": "k", "ignoredFields": ["streamTo"]
    }));
    assert_eq!(
        result["ignoredFields"],
        json!(["streamTo", "resumeSessionId", "runtime"])
    );
    assert_eq!(result["status"], "accepted");
}

#[test]
fn the_acp_tool_keeps_its_fields_and_sets_the_runtime() {
    let parsed = parse_tool_call(
        &with_acp(),
        "sessions_spawn_acp",
        r#"{"task": "fix the build", "streamTo": "parent", "resumeSessionId": "abc", "thinking": "high"}"#,
    )
    .unwrap();
    let p = spawn_params(&parsed);
    assert_eq!(p.runtime, Some(Runtime::Acp));
    assert_eq!(
        p.agent_id.as_deref(),
        Some("coder"),
        "the default ACP agent"
    );
    assert_eq!(p.stream_to, Some(json!("parent")));
    assert_eq!(p.resume_session_id, Some(json!("abc")));
    assert!(p.thinking.is_none());
    assert_eq!(parsed.ignored_fields, ["thinking"]);
}

#[test]
fn an_omitted_agent_is_the_first_allowed_one_and_nulls_mean_absent() {
    let mut s = restricted();
    s.strict = true;
    let parsed = parse_tool_call(
        &s,
        "sessions_spawn",
        r#"{"task": "t", "agentId": null, "label": null, "model": null, "thinking": null, "runTimeoutSeconds": null, "mode": null, "cleanup": null, "attachments": null}"#,
    )
    .unwrap();
    let p = spawn_params(&parsed);
    assert_eq!(p.agent_id.as_deref(), Some("worker"));
    assert!(p.label.is_none() && p.mode.is_none() && p.attachments.is_empty());
    assert!(
        parsed.ignored_fields.is_empty(),
        "nulls are not extra fields"
    );
}

#[test]
fn malformed_arguments_are_an_error_value_the_model_can_read() {
    // What a model cut off by max_tokens sends (fixtures/openai/stream_tools_cut_by_max_tokens).
    let err = parse_tool_call(
        &no_acp(),
        "sessions_spawn",
        r#"{"task": "Jq)`<SK&TYq2]tTYnguM>PmX^ap&TY(35BWFrp"#,
    )
    .unwrap_err();
    assert_eq!(err.kind, "invalid_params");
    assert!(
        err.message
            .starts_with("the arguments of sessions_spawn are not valid JSON ("),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with(r#"e.g. {"task": "…"}"#),
        "{}",
        err.message
    );
    assert_eq!(
        err.to_value(),
        json!({"error": {"kind": "invalid_params", "message": err.message}})
    );

    let err = parse_tool_call(&no_acp(), "sessions_send", "[1, 2]").unwrap_err();
    assert!(
        err.message
            .starts_with("the arguments of sessions_send must be a JSON object"),
        "{}",
        err.message
    );
}

#[test]
fn missing_or_mistyped_fields_are_named() {
    let s = no_acp();
    let err = parse_tool_call(&s, "sessions_spawn", r#"{"label": "x"}"#).unwrap_err();
    assert_eq!(err.kind, "invalid_params");
    assert!(
        err.message.starts_with("sessions_spawn needs \"task\""),
        "{}",
        err.message
    );

    let err =
        parse_tool_call(&s, "sessions_send", r#"{"sessionKey": 5, "message": "m"}"#).unwrap_err();
    assert_eq!(
        err.message,
        "sessions_send: \"sessionKey\" must be a string, not 5"
    );

    let err =
        parse_tool_call(&s, "sessions_spawn", r#"{"task": "t", "mode": "forever"}"#).unwrap_err();
    assert_eq!(
        err.message,
        "sessions_spawn: \"mode\" must be one of \"run\", \"session\", not \"forever\""
    );

    let err = parse_tool_call(&s, "sessions_wait", r#"{"timeoutSeconds": 3}"#).unwrap_err();
    assert!(
        err.message.starts_with("sessions_wait needs \"runId\""),
        "{}",
        err.message
    );

    let err =
        parse_tool_call(&s, "sessions_history", r#"{"sessionKey": "k", "limit": 0}"#).unwrap_err();
    assert_eq!(
        err.message,
        "sessions_history: \"limit\" must be a whole number from 1 to 4294967295, not 0"
    );
    // A whole number out of range (what a small model sends) is told the range.
    for (given, shown) in [("-52935", "-52935"), ("35293529352", "35293529352")] {
        let args = format!(r#"{{"messageLimit": {given}}}"#);
        let err = parse_tool_call(&s, "sessions_list", &args).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "sessions_list: \"messageLimit\" must be a whole number from 0 to 4294967295, not {shown}"
            )
        );
    }
    let err = parse_tool_call(&s, "sessions_list", r#"{"messageLimit": 2.5}"#).unwrap_err();
    assert_eq!(
        err.message,
        "sessions_list: \"messageLimit\" must be a whole number, not 2.5"
    );

    let err = parse_tool_call(
        &s,
        "sessions_send",
        r#"{"sessionKey": "k", "message": "m", "timeoutSeconds": -1}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "sessions_send: \"timeoutSeconds\" must be a number of at least 0, not -1"
    );
}

#[test]
fn quoted_numbers_and_booleans_are_taken_for_what_they_mean() {
    let parsed = parse_tool_call(
        &no_acp(),
        "sessions_send",
        r#"{"sessionKey": "k", "message": "m", "timeoutSeconds": "5"}"#,
    )
    .unwrap();
    match parsed.call {
        SessionToolCall::Send(p) => {
            assert_eq!(p.session_key, "k");
            assert_eq!(p.timeout_seconds, Some(5.0));
            assert!(p.stream_progress.is_none());
        }
        other => panic!("{other:?}"),
    }
    let parsed = parse_tool_call(
        &no_acp(),
        "sessions_history",
        r#"{"sessionKey": "k", "limit": "20", "includeTools": "true"}"#,
    )
    .unwrap();
    match parsed.call {
        SessionToolCall::History(p) => {
            assert_eq!(p.limit, Some(20));
            assert_eq!(p.include_tools, Some(true));
        }
        other => panic!("{other:?}"),
    }
    // A single kind instead of a list.
    let parsed = parse_tool_call(&no_acp(), "sessions_list", r#"{"kinds": "subagent"}"#).unwrap();
    match parsed.call {
        SessionToolCall::List(p) => assert_eq!(p.kinds, Some(vec!["subagent".to_string()])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_arguments_are_an_empty_object() {
    for args in ["", "  ", "{}", "null"] {
        let parsed = parse_tool_call(&no_acp(), "sessions_list", args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(matches!(parsed.call, SessionToolCall::List(_)));
    }
    let parsed = parse_tool_arguments(&no_acp(), "sessions_list", Value::Null).unwrap();
    assert!(matches!(parsed.call, SessionToolCall::List(_)));
}

#[test]
fn wrong_runtime_and_unlisted_agents_are_refused_with_the_way_out() {
    let err = parse_tool_call(
        &with_acp(),
        "sessions_spawn",
        r#"{"task": "t", "agentId": "coder"}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "agent \"coder\" is an ACP agent: spawn it with sessions_spawn_acp"
    );
    let err = parse_tool_call(
        &with_acp(),
        "sessions_spawn_acp",
        r#"{"task": "t", "agentId": "main"}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "agent \"main\" is not an ACP agent: spawn it with sessions_spawn"
    );
    let err = parse_tool_call(
        &restricted(),
        "sessions_spawn",
        r#"{"task": "t", "agentId": "main"}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "sessions_spawn: agentId \"main\" is not an agent you may use; use one of: worker"
    );
}

#[test]
fn tools_not_offered_are_unknown() {
    let err = parse_tool_call(&no_acp(), "sessions_spawn_acp", r#"{"task": "t"}"#).unwrap_err();
    assert_eq!(err.kind, "unknown_tool");
    assert!(
        err.message.contains(
            "the session tools you have are: sessions_list, sessions_history, sessions_send, sessions_spawn, sessions_wait"
        ),
        "{}",
        err.message
    );
    let mut leaf = no_acp();
    leaf.can_spawn = false;
    let err = parse_tool_call(&leaf, "sessions_spawn", r#"{"task": "t"}"#).unwrap_err();
    assert_eq!(err.kind, "unknown_tool");
    let err = parse_tool_call(&no_acp(), "read_file", "{}").unwrap_err();
    assert_eq!(
        err.message,
        "there is no tool \"read_file\"; the session tools you have are: sessions_list, sessions_history, sessions_send, sessions_spawn, sessions_wait"
    );
}

#[test]
fn attachments_are_checked_and_their_extra_keys_reported() {
    let parsed = parse_tool_call(
        &no_acp(),
        "sessions_spawn",
        r#"{"task": "t", "attachments": [{"name": "a.txt", "content": "hi", "mode": "0644"}]}"#,
    )
    .unwrap();
    let p = spawn_params(&parsed);
    assert_eq!(p.attachments.len(), 1);
    assert_eq!(p.attachments[0].name, "a.txt");
    assert_eq!(parsed.ignored_fields, ["attachments[0].mode"]);
    let err = parse_tool_call(
        &no_acp(),
        "sessions_spawn",
        r#"{"task": "t", "attachments": [{"name": "a.txt"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "sessions_spawn: attachments[0] needs \"content\""
    );
}

#[test]
fn errors_keep_the_ignored_fields_and_service_errors_keep_their_kind() {
    let parsed = parse_tool_call(
        &no_acp(),
        "sessions_send",
        r#"{"sessionKey": "k", "message": "m", "streamProgress": true}"#,
    )
    .unwrap();
    assert_eq!(parsed.ignored_fields, ["streamProgress"]);
    let rpc = RpcError::app(ErrorKind::Forbidden, "denied by send policy rule \"x\"");
    let err = ToolError::from_rpc(&rpc);
    assert_eq!(err.kind, "forbidden");
    assert_eq!(
        parsed.error_value(&err),
        json!({
            "error": {"kind": "forbidden", "message": "denied by send policy rule \"x\""},
            "ignoredFields": ["streamProgress"]
        })
    );
    assert_eq!(
        ToolError::from_rpc(&RpcError::invalid_params("bad")).kind,
        "invalid_params"
    );
    assert_eq!(
        ToolError::from_rpc(&RpcError::internal("oops")).kind,
        "internal"
    );
    // Without ignored fields a result passes through untouched.
    let clean = parse_tool_call(&no_acp(), "sessions_list", "{}").unwrap();
    assert_eq!(clean.result_value(json!({"a": 1})), json!({"a": 1}));
}
