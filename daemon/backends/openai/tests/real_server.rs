//! Opt-in: the loop against a real OpenAI-compatible server. Set `OPENCLAW_TEST_OPENAI_URL`
//! (a base URL such as `http://127.0.0.1:8080/v1`) for a plain streamed turn, and
//! `OPENCLAW_TEST_OPENAI_TOOLS_URL` for a turn with a forced tool call (a server that can
//! call tools, e.g. llama-cpp-python with `--chat_format chatml-function-calling`).
//! `OPENCLAW_TEST_OPENAI_MODEL` picks the model (default: the server's first).

use super::*;

fn env_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: set {var} to run this test against a real server");
    }
    url
}

fn real_settings(base_url: &str) -> OpenAiSettings {
    let mut s = settings(base_url.trim_end_matches('/'));
    s.model = std::env::var("OPENCLAW_TEST_OPENAI_MODEL").ok();
    s.max_tokens = Some(24);
    s.request_timeout = Duration::from_secs(120);
    s
}

#[tokio::test]
async fn a_real_server_streams_a_reply() {
    let Some(url) = env_url("OPENCLAW_TEST_OPENAI_URL") else {
        return;
    };
    let host = TestHost::plain();
    let reply = run(real_settings(&url), &host, ctx("Say hello.", Vec::new()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "model {} replied {:?} (usage {:?})",
        reply.model, reply.reply, reply.usage
    );
    assert_eq!(
        host.deltas().concat(),
        reply.reply,
        "the deltas make up the reply"
    );
    assert_eq!(reply.tool_rounds, 0);
}

#[tokio::test]
async fn a_real_server_calls_a_forced_tool_and_then_answers() {
    let Some(url) = env_url("OPENCLAW_TEST_OPENAI_TOOLS_URL") else {
        return;
    };
    let scope = no_acp_scope();
    let mut s = real_settings(&url);
    s.max_tokens = Some(64);
    s.tool_choice = Some(crate::config::ToolChoice::Tool("sessions_spawn".into()));
    let host = TestHost::session_tools(scope.clone());
    let reply = run(
        s,
        &host,
        ctx("Spawn a worker to count files.", openai_tools(&scope)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let records = host.records();
    eprintln!("records: {records:#?}\nreply: {:?}", reply.reply);
    assert_eq!(reply.tool_rounds, 1, "forced once, then the model answers");
    assert_eq!(records[0].0, Role::ToolCall);
    assert_eq!(records[0].1["name"], "sessions_spawn");
    assert_eq!(records[1].0, Role::ToolResult);
}
