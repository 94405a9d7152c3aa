//! The openai backend as the engine runs it: one [`OpenAiAgent`] per configured agent; each
//! turn loads the session's history, offers the run's session tools, and reports through
//! the run's events. Tool calls go to the session service acting as the run.

use serde_json::Value;

use super::{
    IncomingMessage, OpenAiBackend, OpenAiSettings, ToolCallRequest, ToolEvent, TranscriptEntry,
    TurnFailure, TurnHost, Usage,
};
use crate::config::{AgentConfig, OpenAiEnv};
use crate::daemon::backends::{self, RunEvents, RunTools, TurnError, TurnOutput};
use crate::protocol::{Message, Role};
use crate::tools::{parse_tool_call, session_tools};

/// History read for a turn beyond the context budget, so the budget has room to choose.
const HISTORY_SLACK: u32 = 64;

pub struct OpenAiAgent {
    backend: OpenAiBackend,
}

impl OpenAiAgent {
    pub fn new(agent_id: &str, agent: &AgentConfig) -> Result<OpenAiAgent, String> {
        // The agent's environment (its env, env_file and the daemon's) before the daemon's
        // own: keys do not depend on whoever started the daemon.
        let var = |v: &str| agent.env.get(v).cloned().or_else(|| std::env::var(v).ok());
        let settings =
            OpenAiSettings::from_config(agent_id, agent, &OpenAiEnv::from_vars(var), var);
        Ok(OpenAiAgent {
            backend: OpenAiBackend::new(settings)?,
        })
    }

    pub async fn run_turn(&self, ctx: backends::TurnContext) -> Result<TurnOutput, TurnError> {
        let limit = self.backend.settings().max_context_messages as u32 + HISTORY_SLACK;
        // Within a budget a request can carry: a huge old message comes truncated.
        let budget = 4 * 1024 * 1024;
        let loaded =
            ctx.history.load(limit, budget).await.map_err(|e| {
                TurnError::Failed(format!("cannot read the session's history: {e}"))
            })?;
        let (history, message) = split_turn(loaded, &ctx.run_id, &ctx.message);
        let tools = session_tools(ctx.tools.scope())
            .iter()
            .map(|t| t.openai_tool())
            .collect();
        let host = EngineHost {
            events: &ctx.events,
            tools: ctx.tools.as_ref(),
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

/// The loop's host: the run's events, and its session tools.
struct EngineHost<'a> {
    events: &'a RunEvents,
    tools: &'a dyn RunTools,
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
        let parsed = parse_tool_call(self.tools.scope(), &call.name, &call.arguments);
        async move {
            match parsed {
                Err(e) => e.to_value(),
                Ok(parsed) => match self.tools.call(parsed.call.clone()).await {
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
    use crate::protocol::{Provenance, ProvenanceKind};

    fn message(seq: u64, role: Role, run: &str, text: &str) -> Message {
        Message {
            seq,
            ts: String::new(),
            role,
            content: Value::String(text.into()),
            run_id: Some(run.into()),
            provenance: Provenance {
                kind: ProvenanceKind::Operator,
                from: None,
            },
            usage: None,
            truncated: None,
            bytes: None,
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
