//! Opt-in: the real daemon against a real OpenAI-compatible server. Set
//! `OPENCLAW_TEST_OPENAI_URL` (a base URL such as `http://127.0.0.1:8080/v1`) for a spawned
//! session whose reply a follower watches stream, and `OPENCLAW_TEST_OPENAI_TOOLS_URL` for
//! a forced call of a session tool (a server that can call tools, e.g. llama-cpp-python
//! with `--chat_format chatml-function-calling`). `OPENCLAW_TEST_OPENAI_MODEL` picks the
//! model (default: the server's first). Skipped, saying so, when unset.

mod common;
mod openai_support;

use common::openai_server::OpenAiServer;
use common::{Daemon, LineChild};
use openai_support::{CALL_SECS, OpenAi, openai_agent};
use serde_json::Value;

fn env_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!("skipped: set {var} to run this test against a real server");
    }
    url
}

/// A daemon whose `main` agent is on `url`; `extra` adds keys to its table.
fn daemon_on(url: &str, extra: &str) -> OpenAi {
    let model = std::env::var("OPENCLAW_TEST_OPENAI_MODEL")
        .ok()
        .filter(|m| !m.is_empty());
    let mut table = openai_agent("main", url.trim_end_matches('/'), extra);
    // No model named: the server's first, as a user without one gets.
    table = match model {
        Some(m) => table.replace("model = \"test-model\"", &format!("model = \"{m}\"")),
        None => table.replace("model = \"test-model\"\n", ""),
    };
    OpenAi {
        // Unused: the agent talks to the real server.
        server: OpenAiServer::start(),
        d: Daemon::start_with_config(&table),
    }
}

#[test]
fn a_real_server_streams_a_spawned_sessions_reply_to_a_follower() {
    let Some(url) = env_url("OPENCLAW_TEST_OPENAI_URL") else {
        return;
    };
    let oa = daemon_on(&url, "max_tokens = 24\nrequest_timeout_seconds = 120");
    let (key, run) = oa.spawn("Say hello.", &[]);
    let mut follow = LineChild::spawn(
        oa.d.cli().args([
            "sessions",
            "follow",
            &key,
            "--from-start",
            "--until-done",
            "--events",
            "message,assistant,usage,lifecycle",
            "--json",
        ]),
        "follow",
    );
    let (status, lines, err) = follow.finish(CALL_SECS * 3);
    let reply = oa.wait_ok(&run);
    eprintln!("reply {reply:?}\nfollow printed:\n{}", lines.join("\n"));
    assert!(status.success(), "{status:?} {err}");
    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let streamed: String = events
        .iter()
        .filter(|e| e["stream"] == "assistant")
        .filter_map(|e| e["data"]["delta"].as_str())
        .collect();
    // A follower that attached after the first deltas sees the rest of them.
    assert!(
        reply.ends_with(&streamed),
        "the deltas end the reply: {streamed:?} vs {reply:?}"
    );
    let history = oa.transcript(&key);
    assert_eq!(history.len(), 2, "{history:#?}");
    assert_eq!(history[1], format!("assistant[agent]: {reply}"));
}

#[test]
fn a_real_server_calls_a_forced_session_tool_through_the_daemon() {
    let Some(url) = env_url("OPENCLAW_TEST_OPENAI_TOOLS_URL") else {
        return;
    };
    let oa = daemon_on(
        &url,
        "max_tokens = 64\ntool_choice = \"sessions_list\"\nrequest_timeout_seconds = 120",
    );
    let (key, run) = oa.spawn("List the sessions.", &[]);
    let r = oa.wait(&run);
    let history = oa.history(&key);
    let lines: Vec<String> = history.iter().map(openai_support::line_of).collect();
    eprintln!("run {r}\ntranscript:\n{}", lines.join("\n"));
    assert_eq!(r["runStatus"], "ok", "{r}");
    let call = history
        .iter()
        .find(|m| m["role"] == "tool_call")
        .unwrap_or_else(|| panic!("no tool call: {lines:#?}"));
    assert_eq!(call["content"]["name"], "sessions_list");
    let result = history
        .iter()
        .find(|m| m["role"] == "tool_result")
        .unwrap_or_else(|| panic!("no tool result: {lines:#?}"));
    assert_eq!(result["content"]["id"], call["content"]["id"]);
    // Whatever the tiny model wrote, the call ran in-process and the model got JSON back.
    let output = &result["content"]["output"];
    assert!(
        output.get("sessions").is_some() || output.get("error").is_some(),
        "{output}"
    );
}
