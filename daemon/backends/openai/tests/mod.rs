//! The agent loop against a real HTTP server on a local port (tests/common/openai_server.rs):
//! the captured llama.cpp streams replayed byte for byte, and scripted ones.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::Role;
use crate::tools::{self, AgentRuntime, SessionToolCall, ToolScope};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::openai_server::{End, OpenAiServer, Reply, Sse};
use super::*;

mod failures;
mod real_server;
mod turns;

/// How long any one turn in these tests may take before the test fails.
const TURN_DEADLINE: Duration = Duration::from_secs(30);
const SECRET: &str = "sk-test-9f8e7d6c5b4a";

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Delta(String),
    Thought(String),
    Tool(Value),
    Lifecycle(Value),
    Usage(Usage),
    Record(Role, Value),
}

type ToolFn = Box<dyn Fn(&ToolCallRequest) -> Option<Value> + Send + Sync>;

/// Records everything the loop reports; runs tools with `tool` (`None`: the call never
/// returns).
struct TestHost {
    seen: Mutex<Vec<Seen>>,
    calls: Mutex<Vec<ToolCallRequest>>,
    tool: ToolFn,
    first_delta: Notify,
    tool_started: Notify,
}

impl TestHost {
    fn new(tool: impl Fn(&ToolCallRequest) -> Option<Value> + Send + Sync + 'static) -> TestHost {
        TestHost {
            seen: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            tool: Box::new(tool),
            first_delta: Notify::new(),
            tool_started: Notify::new(),
        }
    }

    fn plain() -> TestHost {
        TestHost::new(|c| {
            Some(
                json!({"error": {"kind": "unknown_tool", "message": format!("no tool {}", c.name)}}),
            )
        })
    }

    /// Runs the session tools the way the engine will: parsed by `crate::tools`.
    fn session_tools(scope: ToolScope) -> TestHost {
        TestHost::new(move |c| {
            Some(match tools::parse_tool_call(&scope, &c.name, &c.arguments) {
                Err(e) => e.to_value(),
                Ok(parsed) => match &parsed.call {
                    SessionToolCall::Spawn(p) => parsed.result_value(json!({
                        "status": "accepted",
                        "sessionKey": format!("agent:{}:subagent:1", p.agent_id.as_deref().unwrap_or("?")),
                        "sessionId": "sid-1",
                        "runId": "run-1",
                    })),
                    SessionToolCall::Wait(p) => parsed.result_value(json!({
                        "runId": p.run_id,
                        "sessionKey": "agent:worker:subagent:1",
                        "status": "ok",
                        "runStatus": "ok",
                        "reply": "42 files",
                    })),
                    other => json!({"error": {"kind": "unexpected", "message": format!("{other:?}")}}),
                },
            })
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn deltas(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Delta(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    fn records(&self) -> Vec<(Role, Value)> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Record(r, v) => Some((r, v)),
                _ => None,
            })
            .collect()
    }

    fn tool_events(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Tool(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    fn lifecycles(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Lifecycle(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    fn calls(&self) -> Vec<ToolCallRequest> {
        self.calls.lock().unwrap().clone()
    }

    fn push(&self, s: Seen) {
        self.seen.lock().unwrap().push(s);
    }
}

impl TurnHost for TestHost {
    fn assistant_delta(&self, text: &str) {
        self.push(Seen::Delta(text.to_string()));
        self.first_delta.notify_one();
    }
    fn thought_delta(&self, text: &str) {
        self.push(Seen::Thought(text.to_string()));
    }
    fn tool_event(&self, event: &ToolEvent) {
        self.push(Seen::Tool(event.to_json()));
    }
    fn lifecycle(&self, data: Value) {
        self.push(Seen::Lifecycle(data));
    }
    fn usage(&self, usage: &Usage) {
        self.push(Seen::Usage(*usage));
    }
    fn record(&self, entry: TranscriptEntry) {
        self.push(Seen::Record(entry.role(), entry.content()));
    }
    fn call_tool(&self, call: &ToolCallRequest) -> impl Future<Output = Value> + Send {
        self.calls.lock().unwrap().push(call.clone());
        self.tool_started.notify_one();
        let out = (self.tool)(call);
        async move {
            match out {
                Some(v) => v,
                None => std::future::pending().await,
            }
        }
    }
}

/// The engine spawns turns on its runtime: a turn's future must be `Send`. (Checked when
/// this compiles.)
#[allow(dead_code)]
fn turns_can_be_spawned(
    backend: &OpenAiBackend,
    host: &TestHost,
    ctx: TurnContext,
    stop: &CancellationToken,
) {
    fn send<T: Send>(_: T) {}
    send(backend.run_turn(host, ctx, stop));
}

fn settings(base_url: &str) -> OpenAiSettings {
    OpenAiSettings {
        agent_id: "main".into(),
        base_url: base_url.to_string(),
        model: Some("test-model".into()),
        api_key: KeySource::None,
        system_prompt: None,
        temperature: None,
        max_tokens: None,
        tool_choice: None,
        max_tool_rounds: 8,
        max_context_messages: 200,
        request_timeout: Duration::from_secs(10),
        extra_body: Map::new(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
    }
}

fn no_acp_scope() -> ToolScope {
    ToolScope {
        allowed_agents: vec![
            ("main".into(), AgentRuntime::Native),
            ("worker".into(), AgentRuntime::Native),
        ],
        can_spawn: true,
        strict: false,
        enabled: None,
    }
}

fn openai_tools(scope: &ToolScope) -> Vec<Value> {
    tools::session_tools(scope)
        .iter()
        .map(|t| t.openai_tool())
        .collect()
}

fn ctx(text: &str, tools: Vec<Value>) -> TurnContext {
    TurnContext {
        history: Vec::new(),
        message: IncomingMessage::operator(text),
        model: None,
        thinking: None,
        tools,
    }
}

async fn run(
    settings: OpenAiSettings,
    host: &TestHost,
    ctx: TurnContext,
) -> Result<TurnReply, TurnFailure> {
    let backend = OpenAiBackend::new(settings).expect("backend");
    tokio::time::timeout(
        TURN_DEADLINE,
        backend.run_turn(host, ctx, &CancellationToken::new()),
    )
    .await
    .expect("the turn ended")
}

async fn failure(settings: OpenAiSettings) -> String {
    match run(settings, &TestHost::plain(), ctx("hi", Vec::new())).await {
        Err(TurnFailure::Failed(message)) => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn chat_url(server: &OpenAiServer) -> String {
    format!("{}/chat/completions", server.base_url())
}

/// Waits on the server from a blocking thread, so the runtime can go on closing sockets.
async fn disconnect_seen(server: &Arc<OpenAiServer>) -> bool {
    let server = server.clone();
    tokio::task::spawn_blocking(move || server.wait_for_disconnect(Duration::from_secs(10)))
        .await
        .expect("join")
}
