//! The openai backend as the engine runs it: one [`OpenAiAgent`] per configured agent; each
//! turn loads the session's history, offers the run's session tools and the tools of the
//! agent's MCP servers, and reports through the run's events. Session tool calls go to the
//! session service acting as the run; MCP tool calls to their server.

use serde_json::Value;

use super::context_cache::{ContextCache, Window};
use super::{
    IncomingMessage, OpenAiBackend, OpenAiSettings, ToolCallRequest, ToolEvent, TranscriptEntry,
    TurnFailure, TurnHost, Usage,
};
use crate::config::{AgentConfig, OpenAiEnv};
use std::time::Duration;

use crate::daemon::backends::mcp::{McpCatalog, McpServers, OfferedTool};
use crate::daemon::backends::{self, RunEvents, RunTools, TurnError, TurnOutput};
use crate::protocol::{Message, Role};
use crate::tools::{ParsedToolCall, ToolError, parse_tool_call, session_tools};

/// History read for a turn beyond the context budget, so the budget has room to choose.
const HISTORY_SLACK: u32 = 64;
/// Content bytes of history read for a turn, within what a request can carry: a huge old
/// message comes truncated.
const HISTORY_BUDGET: usize = 4 * 1024 * 1024;

pub struct OpenAiAgent {
    backend: OpenAiBackend,
    /// Its `mcp_servers`, started with its first turn.
    mcp: McpServers,
    /// Each recent session's newest messages, so a turn reads only what is new.
    contexts: ContextCache,
}

impl OpenAiAgent {
    pub fn new(
        agent_id: &str,
        agent: &AgentConfig,
        kill_grace: Duration,
    ) -> Result<OpenAiAgent, String> {
        // The agent's environment (its env, env_file and the daemon's) before the daemon's
        // own: keys do not depend on whoever started the daemon.
        let var = |v: &str| agent.env.get(v).cloned().or_else(|| std::env::var(v).ok());
        let settings =
            OpenAiSettings::from_config(agent_id, agent, &OpenAiEnv::from_vars(var), var);
        Ok(OpenAiAgent {
            backend: OpenAiBackend::new(settings)?,
            mcp: McpServers::new(agent_id, &agent.mcp_servers, kill_grace),
            contexts: ContextCache::new(),
        })
    }

    /// The newest messages of the session up to now: what was kept from its last turn plus
    /// what was committed since, or a fresh read when nothing was kept (or too much came
    /// since).
    async fn context_window(
        &self,
        session_id: &str,
        history: &backends::History,
    ) -> Result<Window, crate::daemon::store::StoreError> {
        let limit = self.backend.settings().max_context_messages as u32 + HISTORY_SLACK;
        if let Some(mut window) = self.contexts.take(session_id, history.sid()) {
            let (newer, more) = history
                .load_after(window.read_to(), limit, HISTORY_BUDGET)
                .await?;
            if !more {
                window.extend(newer, limit as usize, HISTORY_BUDGET);
                return Ok(window);
            }
        }
        let loaded = history.load(limit, HISTORY_BUDGET).await?;
        Ok(Window::fresh(history.sid(), loaded))
    }

    /// The session was deleted: nothing of it is kept.
    pub fn close_session(&self, session_id: &str) {
        self.contexts.forget(session_id);
    }

    /// The daemon is stopping: its MCP servers stop too.
    pub async fn shutdown(&self) {
        self.mcp.shutdown().await;
    }

    pub async fn run_turn(&self, ctx: backends::TurnContext) -> Result<TurnOutput, TurnError> {
        let window = self
            .context_window(&ctx.session_id, &ctx.history)
            .await
            .map_err(|e| TurnError::Failed(format!("cannot read the session's history: {e}")))?;
        let loaded = window.messages();
        self.contexts.put(&ctx.session_id, window);
        let (history, message) = split_turn(loaded, &ctx.run_id, &ctx.message);
        let session = session_tools(ctx.tools.scope());
        let taken: Vec<&str> = session.iter().map(|t| t.name).collect();
        let mcp = self.mcp.catalog(&taken).await;
        let mut tools: Vec<Value> = session.iter().map(|t| t.openai_tool()).collect();
        tools.extend(mcp.openai_tools());
        let host = EngineHost {
            events: &ctx.events,
            tools: ctx.tools.as_ref(),
            mcp: &mcp,
        };
        let turn = super::TurnContext {
            history,
            message,
            model: ctx.model.clone(),
            thinking: ctx.thinking.clone(),
            tools,
        };
        match self.backend.run_turn(&host, turn, &ctx.stop).await {
            Ok(reply) => Ok(TurnOutput {
                reply: reply.reply,
                tokens: reply.usage.and_then(|u| u.total()).map(|t| t as i64),
            }),
            Err(TurnFailure::Stopped) => Err(TurnError::Stopped),
            Err(TurnFailure::Failed(why)) => Err(TurnError::Failed(why)),
        }
    }
}

/// The transcript before this turn's message, and the message itself (stored already, with
/// this run's id). Messages queued behind it belong to later turns and are left out.
fn split_turn(loaded: Vec<Message>, run_id: &str, text: &str) -> (Vec<Message>, IncomingMessage) {
    let input = loaded
        .iter()
        .position(|m| m.role == Role::User && m.run_id.as_deref() == Some(run_id));
    match input {
        Some(i) => {
            let message = IncomingMessage::from_message(&loaded[i]);
            let mut history = loaded;
            history.truncate(i);
            (history, message)
        }
        None => (loaded, IncomingMessage::operator(text)),
    }
}

/// The loop's host: the run's events, its session tools, and this turn's MCP tools.
struct EngineHost<'a> {
    events: &'a RunEvents,
    tools: &'a dyn RunTools,
    mcp: &'a McpCatalog,
}

/// Where a model's tool call goes.
enum Route<'a> {
    Mcp(&'a OfferedTool),
    Session(Result<ParsedToolCall, ToolError>),
}

impl TurnHost for EngineHost<'_> {
    fn assistant_delta(&self, text: &str) {
        self.events.assistant_delta(text);
    }

    fn thought_delta(&self, text: &str) {
        self.events.thought_delta(text);
    }

    fn tool_event(&self, event: &ToolEvent) {
        self.events.tool_data(event.to_json());
    }

    fn lifecycle(&self, data: Value) {
        self.events.lifecycle(|| data);
    }

    fn usage(&self, usage: &Usage) {
        self.events.usage(&backends::Usage {
            prompt: usage.prompt_tokens.map(|t| t as i64),
            completion: usage.completion_tokens.map(|t| t as i64),
            total: usage.total().map(|t| t as i64),
        });
    }

    fn record(&self, entry: TranscriptEntry) {
        self.events.transcript(entry.role(), entry.content());
    }

    fn call_tool(&self, call: &ToolCallRequest) -> impl Future<Output = Value> + Send {
        let route = match self.mcp.find(&call.name) {
            Some(tool) => Route::Mcp(tool),
            None => Route::Session(parse_tool_call(
                self.tools.scope(),
                &call.name,
                &call.arguments,
            )),
        };
        let arguments = call.arguments.clone();
        async move {
            match route {
                Route::Mcp(tool) => tool.call(&arguments).await,
                Route::Session(Err(e)) => e.to_value(),
                Route::Session(Ok(parsed)) => match self.tools.call(parsed.call.clone()).await {
                    Ok(v) => parsed.result_value(v),
                    Err(e) => parsed.error_value(&e),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, role: Role, run: &str, text: &str) -> Message {
        Message {
            run_id: Some(run.into()),
            ..crate::daemon::test_support::text_message(seq, role, text)
        }
    }

    #[test]
    fn the_turns_message_and_what_follows_it_are_not_history() {
        let loaded = vec![
            message(1, Role::User, "r1", "first"),
            message(2, Role::Assistant, "r1", "answer"),
            message(3, Role::User, "r2", "this turn"),
            message(4, Role::User, "r3", "queued behind"),
        ];
        let (history, now) = split_turn(loaded, "r2", "this turn");
        assert_eq!(history.len(), 2);
        assert_eq!(now.text, "this turn");
        let (history, now) = split_turn(vec![message(1, Role::User, "r1", "x")], "gone", "y");
        assert_eq!((history.len(), now.text.as_str()), (1, "y"));
    }
}
