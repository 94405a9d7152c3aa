//! The `openai` backend end to end (issue 10): the real daemon and CLI, an agent pointed at
//! an in-test OpenAI-compatible server that replays the captured llama.cpp streams and
//! scripted ones, and records what it was sent. The loop, the session tools run in-process,
//! the schemas each configuration offers, the key, and the default agent from the
//! environment. Never sleeps: replies a test must watch are held at a gate until the
//! follower listens.

mod common;
mod openai_support;

use std::process::Command;

use common::openai_server::{Gate, OpenAiServer, Recorded, Reply, fixture};
use common::{LineChild, OPENCLAW, describe, output_within};
use openai_support::{CALL_SECS, OpenAi, WAIT_SECS, fixture_text, line_of};
use serde_json::{Value, json};

fn first_user_is(text: &'static str) -> impl Fn(&Recorded) -> bool + Send + Sync + 'static {
    move |r: &Recorded| r.first_user_text() == text
}

/// The JSON lines of `follow --json`, parsed.
fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_streamed_reply_reaches_a_follower_as_deltas_and_then_lands_in_history() {
    let oa = OpenAi::start("", "");
    let gate = Gate::new();
    oa.server
        .push(Reply::fixture("stream_plain.txt").after(&gate));
    let expected = fixture_text(&fixture("stream_plain.txt"));
    assert_eq!(expected, "wSK&TYntTYnt", "the captured stream's text");

    let (key, run) = oa.spawn("say something", &[]);
    let mut follow = LineChild::spawn(
        oa.d.cli().args([
            "sessions",
            "follow",
            &key,
            "--from-start",
            "--until-done",
            "--events",
            "message,assistant,lifecycle",
            "--json",
        ]),
        "follow --events assistant",
    );
    // Once the task is printed the follower listens: only then may the stream flow.
    follow.wait_line(WAIT_SECS, |l| l.contains("say something"));
    gate.open();
    let (status, lines, err) = follow.finish(CALL_SECS);
    assert!(status.success(), "follow: {status:?} {err}\n{lines:#?}");

    let events = parsed(&lines);
    let deltas: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == "run.event" && e["stream"] == "assistant")
        .map(|(i, e)| (i, e["data"]["delta"].as_str().unwrap_or("").to_string()))
        .collect();
    let streamed: String = deltas.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(streamed, expected, "the deltas, in order: {lines:#?}");
    assert!(
        deltas.len() > 1,
        "the text arrived in pieces, as the server sent it: {deltas:?}"
    );
    let reply_at = events
        .iter()
        .position(|e| e["event"] == "session.message" && e["message"]["role"] == "assistant")
        .unwrap_or_else(|| panic!("no assistant message: {lines:#?}"));
    assert_eq!(events[reply_at]["message"]["content"], expected);
    assert!(
        deltas.iter().all(|(i, _)| *i < reply_at),
        "every delta before the reply: {lines:#?}"
    );

    assert_eq!(oa.wait_ok(&run), expected);
    let history = oa.transcript(&key);
    assert_eq!(
        history,
        [
            "user[spawn_task]: say something".to_string(),
            format!("assistant[agent]: {expected}"),
        ]
    );
    // What the server was asked: the task as the one user message, streamed, with usage.
    let chat = &oa.chats(1)[0];
    let body = chat.json.as_ref().expect("a JSON body");
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(
        body["messages"],
        json!([{ "role": "user", "content": "say something" }])
    );
}

#[test]
fn a_two_round_tool_loop_spawns_a_child_waits_for_it_and_the_announce_reaches_the_parent() {
    let oa = OpenAi::start("", "");
    let parent = first_user_is("orchestrate");
    oa.server.push_when(
        parent,
        Reply::tool_calls(&[(
            "call_spawn",
            "sessions_spawn",
            r#"{"task":"child work","label":"kid"}"#,
        )]),
    );
    oa.server.push_when(
        first_user_is("orchestrate"),
        Reply::tool_calls(&[(
            "call_wait",
            "sessions_wait",
            r#"{"sessionKey":"kid","timeoutSeconds":20}"#,
        )]),
    );
    oa.server
        .push_when(first_user_is("orchestrate"), Reply::text(&["all ", "done"]));
    oa.server.push_when(
        first_user_is("child work"),
        Reply::text(&["child ", "result"]),
    );

    let (key, run) = oa.spawn("orchestrate", &[]);
    assert_eq!(oa.wait_ok(&run), "all done");

    let history = oa.history(&key);
    let lines: Vec<String> = history.iter().map(line_of).collect();
    let roles: Vec<&str> = history
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    // The child's announce lands when the child ends: after the spawn's result, and before or
    // after the parent's next call depending on which finishes first. Everything else is in
    // a fixed order.
    let announce_at = roles
        .iter()
        .position(|r| *r == "announce")
        .unwrap_or_else(|| panic!("the child's announce is in the parent's history: {lines:#?}"));
    let mut others = roles.clone();
    others.remove(announce_at);
    assert_eq!(
        others,
        [
            "user",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "assistant"
        ],
        "{lines:#?}"
    );
    assert!(
        (3..=5).contains(&announce_at),
        "the announce comes after the spawn's result and before the final answer: {lines:#?}"
    );
    let without_announce: Vec<&Value> = history
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != announce_at)
        .map(|(_, m)| m)
        .collect();
    let spawned = &without_announce[2]["content"];
    assert_eq!(spawned["name"], "sessions_spawn");
    assert_eq!(spawned["status"], "ok", "{lines:#?}");
    let child_key = spawned["output"]["childSessionKey"]
        .as_str()
        .or_else(|| spawned["output"]["sessionKey"].as_str())
        .unwrap_or_else(|| panic!("the spawn's result names the child: {spawned}"))
        .to_string();
    assert_eq!(without_announce[3]["content"]["input"]["sessionKey"], "kid");

    let announce = &history[announce_at];
    assert_eq!(announce["provenance"]["kind"], "announce");
    assert_eq!(announce["provenance"]["from"], child_key.as_str());
    let text = announce["content"].as_str().unwrap();
    assert!(
        text.starts_with("Status: ok\nResult: child result\n"),
        "{text}"
    );
    assert!(text.contains(&format!("sessionKey {child_key}")), "{text}");
    let waited = &without_announce[4]["content"];
    assert_eq!(waited["output"]["reply"], "child result", "{lines:#?}");
    assert_eq!(waited["output"]["status"], "ok");

    // The child is the parent's, and ran its own task.
    let list = oa.json(&["sessions", "list"]);
    let child = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == child_key.as_str())
        .unwrap_or_else(|| panic!("the child is listed: {list}"));
    assert_eq!(child["parentKey"], key.as_str(), "{child}");
    assert_eq!(child["spawnDepth"], 1, "{child}");
    assert_eq!(
        oa.transcript(&child_key),
        [
            "user[spawn_task]: child work",
            "assistant[agent]: child result"
        ]
    );

    // Each round's request carried the previous round's call and result.
    let chats = oa.chats(4);
    let of_parent: Vec<&Recorded> = chats
        .iter()
        .filter(|r| r.first_user_text() == "orchestrate")
        .collect();
    assert_eq!(of_parent.len(), 3);
    let third = of_parent[2].messages();
    let roles: Vec<&str> = third.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "tool", "assistant", "tool"],
        "{third:#?}"
    );
    assert_eq!(third[1]["tool_calls"][0]["id"], "call_spawn");
    assert_eq!(third[2]["tool_call_id"], "call_spawn");
    assert_eq!(third[4]["tool_call_id"], "call_wait");
    let result: Value = serde_json::from_str(third[4]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["reply"], "child result");
}

#[test]
fn the_tool_rounds_limit_ends_the_run_ok_with_a_note() {
    let oa = OpenAi::start("max_tool_rounds = 2", "");
    for i in 0..2 {
        oa.server.push(Reply::tool_calls(&[(
            &format!("call_{i}"),
            "sessions_list",
            "{}",
        )]));
    }
    let (key, run) = oa.spawn("loop forever", &[]);
    let r = oa.wait(&run);
    assert_eq!(r["runStatus"], "ok", "{r}");
    let lines = oa.transcript(&key);
    let notes: Vec<&String> = lines.iter().filter(|l| l.starts_with("system")).collect();
    assert_eq!(notes.len(), 1, "{lines:#?}");
    assert!(
        notes[0].contains("stopped after 2 rounds of tool calls (max_tool_rounds = 2)"),
        "{lines:#?}"
    );
    let calls = lines.iter().filter(|l| l.starts_with("tool_call")).count();
    let results = lines
        .iter()
        .filter(|l| l.starts_with("tool_result[") && l.contains("sessions_list ok"))
        .count();
    assert_eq!((calls, results), (2, 2), "{lines:#?}");
    assert_eq!(
        oa.server.chat_requests().len(),
        2,
        "no third request after the limit"
    );
}

/// The request of a configuration: roles, session tools and their schemas, the key.
#[test]
fn the_request_carries_roles_the_configured_tools_and_the_key_only_in_its_header() {
    const KEY: &str = "sk-oc-test-7f3a9c1e55d2";
    let oa = OpenAi::start_with_env(
        "system_prompt = \"You are the test assistant.\"\napi_key_env = \"OC_TEST_KEY\"\n[agents.main.subagents]\nallow_agents = [\"main\", \"worker\"]\n",
        "[agents.worker]\nbackend = \"echo\"\n[agents.other]\nbackend = \"echo\"\n",
        &[("OC_TEST_KEY", KEY)],
    );
    oa.server.push(Reply::text(&["one"]));
    oa.server.push(Reply::text(&["two"]));
    let (key, run) = oa.spawn("first", &[]);
    assert_eq!(oa.wait_ok(&run), "one");
    let out = oa.run(&["sessions", "send", &key, "second"]);
    assert!(out.status.success(), "{}", describe(&["send"], &out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "two");

    let chats = oa.chats(2);
    let second = &chats[1];
    let roles: Vec<(String, String)> = second
        .messages()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("system", "You are the test assistant."),
            ("user", "first"),
            ("assistant", "one"),
            ("user", "second"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // The session tools, with schemas for what this agent may do.
    assert_eq!(
        second.tool_names(),
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "sessions_wait"
        ]
    );
    let spawn = second.tool_parameters("sessions_spawn").unwrap();
    assert_eq!(spawn["additionalProperties"], false, "{spawn}");
    assert_eq!(
        spawn["properties"]["agentId"]["enum"],
        json!(["main", "worker"]),
        "only the allowed agents: {spawn}"
    );
    for acp_only in ["streamTo", "resumeSessionId", "runtime"] {
        assert!(
            spawn["properties"].get(acp_only).is_none(),
            "no {acp_only} without an ACP agent: {spawn}"
        );
    }
    assert!(spawn["properties"].get("task").is_some(), "{spawn}");

    // The key: in the Authorization header, nowhere else.
    for r in &chats {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(
            r.raw_text().matches(KEY).count(),
            1,
            "the key appears once, in its header:\n{}",
            r.raw_text()
        );
    }
    // A server that quotes the key back in an error: the user's sentence does not.
    oa.server.push(Reply::error(
        401,
        &format!("Incorrect API key provided: {KEY}"),
    ));
    let out = oa.run(&["sessions", "send", &key, "third"]);
    assert!(!out.status.success());
    let said = format!("{}{}", common::stdout(&out), common::stderr(&out));
    assert!(said.contains("HTTP 401"), "{said}");
    assert!(said.contains("OC_TEST_KEY"), "names the variable: {said}");
    assert!(!said.contains(KEY), "the key leaked into the error: {said}");
    let history = serde_json::to_string(&oa.history(&key)).unwrap();
    assert!(history.contains("HTTP 401"), "{history}");
    assert!(!history.contains(KEY), "the key leaked into history");
    let log = std::fs::read_to_string(oa.d.log_path()).unwrap_or_default();
    assert!(!log.contains(KEY), "the key leaked into the log:\n{log}");
    let status = serde_json::to_string(&oa.json(&["agents", "list"])).unwrap();
    assert!(!status.contains(KEY), "the key leaked into agents list");
}

/// What `tools_of(config)` offers the model of `main`.
fn tools_offered(extra_main: &str, more: &str) -> Recorded {
    let oa = OpenAi::start(extra_main, more);
    oa.server.push(Reply::text(&["ok"]));
    let (_, run) = oa.spawn("which tools", &[]);
    oa.wait_ok(&run);
    oa.chats(1).remove(0)
}

#[test]
fn an_allowed_acp_agent_adds_the_acp_spawn_tool_and_only_then() {
    let acp = "[agents.coder]\nbackend = \"acp\"\ncommand = [\"false\"]\n";
    // Allowed: a separate tool with the ACP-only fields; sessions_spawn stays native.
    let r = tools_offered(
        "[agents.main.subagents]\nallow_agents = [\"main\", \"coder\"]\n",
        acp,
    );
    assert_eq!(
        r.tool_names(),
        [
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "sessions_spawn_acp",
            "sessions_wait"
        ]
    );
    let native = r.tool_parameters("sessions_spawn").unwrap();
    assert_eq!(native["properties"]["agentId"]["enum"], json!(["main"]));
    assert!(native["properties"].get("streamTo").is_none(), "{native}");
    let acp_tool = r.tool_parameters("sessions_spawn_acp").unwrap();
    assert_eq!(acp_tool["properties"]["agentId"]["enum"], json!(["coder"]));
    assert!(
        acp_tool["properties"].get("streamTo").is_some(),
        "{acp_tool}"
    );
    assert!(
        acp_tool["properties"].get("resumeSessionId").is_some(),
        "{acp_tool}"
    );
    assert_eq!(acp_tool["additionalProperties"], false);

    // Configured but not allowed: nothing of it shows.
    let r = tools_offered("", acp);
    assert!(
        !r.tool_names().iter().any(|n| n == "sessions_spawn_acp"),
        "{:?}",
        r.tool_names()
    );
    let native = r.tool_parameters("sessions_spawn").unwrap();
    assert_eq!(native["properties"]["agentId"]["enum"], json!(["main"]));

    // strict_tools: OpenAI's strict flag on every tool.
    let r = tools_offered("strict_tools = true\ntools = [\"sessions_list\"]", "");
    assert_eq!(r.tool_names(), ["sessions_list"]);
    let tool = &r.json.as_ref().unwrap()["tools"][0];
    assert_eq!(tool["function"]["strict"], true, "{tool}");
}

#[test]
fn a_spawn_call_with_stream_to_succeeds_with_ignored_fields_and_the_child_gets_no_session_tools() {
    let oa = OpenAi::start("", "");
    oa.server.push_when(
        first_user_is("delegate"),
        Reply::tool_calls(&[(
            "call_1",
            "sessions_spawn",
            r#"{"task":"kid task","streamTo":"parent","resumeSessionId":"abc"}"#,
        )]),
    );
    oa.server
        .push_when(first_user_is("delegate"), Reply::text(&["spawned"]));
    oa.server
        .push_when(first_user_is("kid task"), Reply::text(&["kid done"]));
    let (key, run) = oa.spawn("delegate", &[]);
    assert_eq!(oa.wait_ok(&run), "spawned");

    let history = oa.history(&key);
    let result = history
        .iter()
        .find(|m| m["role"] == "tool_result")
        .unwrap_or_else(|| panic!("{history:#?}"));
    assert_eq!(result["content"]["status"], "ok", "{result}");
    let output = &result["content"]["output"];
    let mut ignored: Vec<&str> = output["ignoredFields"]
        .as_array()
        .unwrap_or_else(|| panic!("no ignoredFields: {output}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ignored.sort();
    assert_eq!(ignored, ["resumeSessionId", "streamTo"], "{output}");
    let child_key = output["childSessionKey"]
        .as_str()
        .or_else(|| output["sessionKey"].as_str())
        .unwrap_or_else(|| panic!("{output}"))
        .to_string();

    // The child, at the default depth limit (1), may not spawn: it gets no session tools.
    let chats = oa.chats(3);
    let kid = chats
        .iter()
        .find(|r| r.first_user_text() == "kid task")
        .unwrap_or_else(|| panic!("the child's request never came"));
    assert!(kid.tool_names().is_empty(), "{:?}", kid.tool_names());
    assert!(
        kid.json.as_ref().unwrap().get("tool_choice").is_none(),
        "no tool_choice without tools: {}",
        kid.raw_text()
    );
    let parent_first = chats
        .iter()
        .find(|r| r.first_user_text() == "delegate")
        .unwrap();
    assert!(parent_first.tool_names().len() >= 5);
    // The child's run ended and was announced to the parent.
    let child_run = oa.json(&["sessions", "wait", "--session", &child_key]);
    assert_eq!(child_run["runStatus"], "ok", "{child_run}");
}

#[test]
fn model_on_spawn_reaches_the_request() {
    let oa = OpenAi::start("", "");
    oa.server.push(Reply::text(&["a"]));
    oa.server.push(Reply::text(&["b"]));
    let (_, run) = oa.spawn("pick a model", &["--model", "special-model-7b"]);
    oa.wait_ok(&run);
    let (_, run) = oa.spawn("the agent's model", &[]);
    oa.wait_ok(&run);
    let chats = oa.chats(2);
    assert_eq!(chats[0].json.as_ref().unwrap()["model"], "special-model-7b");
    assert_eq!(chats[1].json.as_ref().unwrap()["model"], "test-model");
}

/// Stops an autostarted daemon when the test ends, however it ends.
struct AutostartedDaemon {
    home: tempfile::TempDir,
}

impl AutostartedDaemon {
    fn cli(&self, base_url: &str) -> Command {
        let mut cmd = Command::new(OPENCLAW);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("OPENCLAW_HOME", self.home.path())
            .env("OPENAI_BASE_URL", base_url)
            .stdin(std::process::Stdio::null());
        cmd
    }
}

impl Drop for AutostartedDaemon {
    fn drop(&mut self) {
        let cli = |args: &[&str]| {
            Command::new(OPENCLAW)
                .env_clear()
                .env("OPENCLAW_HOME", self.home.path())
                .env("OPENCLAW_NO_AUTOSTART", "1")
                .args(args)
                .output()
        };
        let pid = cli(&["daemon", "status", "--json"])
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .and_then(|v| v["pid"].as_i64())
            .map(|p| p as i32);
        let _ = cli(&["daemon", "stop"]);
        if let Some(pid) = pid
            && !common::wait_pid_gone(pid, 10)
        {
            // SAFETY: plain kill(2) of the daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn with_no_config_openai_base_url_gives_the_default_agent_and_autostart_uses_it() {
    let server = OpenAiServer::start();
    server.set_models(&["llama-from-env"]);
    server.push(Reply::text(&["hello ", "from env"]));
    let daemon = AutostartedDaemon {
        home: tempfile::Builder::new()
            .prefix("openclaw-test-")
            .tempdir()
            .expect("tempdir"),
    };
    let base = server.base_url();
    let out = output_within(
        daemon
            .cli(&base)
            .args(["sessions", "spawn", "--task", "hi"]),
        CALL_SECS,
        "spawn with autostart",
    );
    assert!(out.status.success(), "{}", describe(&["spawn"], &out));
    let key = common::stdout(&out).trim().to_string();
    assert!(key.starts_with("agent:main:"), "{key}");
    let notice = common::stderr(&out);
    assert_eq!(
        notice.lines().filter(|l| l.contains(&base)).count(),
        1,
        "one line naming the endpoint: {notice}"
    );
    assert!(
        notice.contains("model the first of GET /models"),
        "the notice says which model: {notice}"
    );

    let secs = WAIT_SECS.to_string();
    let out = output_within(
        daemon
            .cli(&base)
            .args(["sessions", "wait", "--session", &key, "--timeout", &secs]),
        CALL_SECS,
        "wait",
    );
    assert!(out.status.success(), "{}", describe(&["wait"], &out));
    assert_eq!(common::stdout(&out).trim(), "hello from env");
    let chats = server.chat_requests();
    assert_eq!(chats.len(), 1);
    assert_eq!(
        chats[0].json.as_ref().unwrap()["model"],
        "llama-from-env",
        "the server's first model"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/models")),
        "it asked for the models"
    );
    assert_eq!(chats[0].header("authorization"), None, "no key was set");

    // `agents list` shows the endpoint and the model it found.
    let out = output_within(
        daemon.cli(&base).args(["agents", "list"]),
        CALL_SECS,
        "agents list",
    );
    let listed = common::stdout(&out);
    assert!(listed.contains("openai"), "{listed}");
    assert!(listed.contains(&base), "{listed}");
}
