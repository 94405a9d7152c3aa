//! The session tools of a run, executed in-process: a native agent's tool call goes straight
//! into the service as [`Caller::Run`], with the same attribution, visibility, send policy
//! and idempotency as a run token gives a child process — no socket, no handshake. Which
//! tools a run gets, and what `sessions_spawn` may target, is decided here from the config.

use std::sync::{Arc, Weak};

use serde::Serialize;
use serde_json::Value;

use super::{Caller, ProgressItem, SendOutcome, ServiceError, SessionService};
use crate::config::{BackendKind, Config};
use crate::daemon::backends::{BoxFuture, RunTools};
use crate::daemon::engine::{Acting, ToolHost};
use crate::tools::{AgentRuntime, SessionToolCall, ToolError, ToolScope};

impl ToolHost for SessionService {
    fn tools_for(&self, run: &Acting) -> Arc<dyn RunTools> {
        Arc::new(SessionTools {
            service: self.this.clone(),
            scope: tool_scope(&self.engine.config(), &run.agent_id, run.spawn_depth),
            caller: Caller::Run(run.clone()),
        })
    }
}

/// What a run of `agent_id` at `depth` may do with the session tools: the agents its spawns
/// may target (its own first), whether it may spawn at all, and the agent's own choices.
/// A sub-agent that may not spawn gets no session tools (nothing it could orchestrate).
pub fn tool_scope(config: &Config, agent_id: &str, depth: i64) -> ToolScope {
    let agent = config.agent(agent_id);
    let can_spawn = depth < config.subagents.max_depth as i64;
    let targets = agent.as_ref().map_or_else(
        || vec![agent_id.to_string()],
        |a| a.allowed_spawn_targets(agent_id),
    );
    let mut ids: Vec<String> = if targets.iter().any(|t| t == "*") {
        config.all_agents().into_iter().map(|(id, _)| id).collect()
    } else {
        targets
    };
    // Its own agent first: the default of a spawn that names none.
    ids.sort_by_key(|id| id != agent_id);
    let allowed_agents = ids
        .into_iter()
        .filter_map(|id| {
            let runtime = match config.agent(&id)?.backend {
                BackendKind::Acp => AgentRuntime::Acp,
                BackendKind::Echo | BackendKind::Exec | BackendKind::OpenAi => AgentRuntime::Native,
            };
            Some((id, runtime))
        })
        .collect();
    let enabled = if !can_spawn && depth > 0 {
        Some(Vec::new())
    } else {
        agent.as_ref().and_then(|a| a.tools.clone())
    };
    ToolScope {
        allowed_agents,
        can_spawn,
        strict: agent.as_ref().is_some_and(|a| a.strict_tools),
        enabled,
    }
}

/// The session tools bound to one run.
pub struct SessionTools {
    service: Weak<SessionService>,
    scope: ToolScope,
    caller: Caller,
}

impl RunTools for SessionTools {
    fn scope(&self) -> &ToolScope {
        &self.scope
    }

    fn call(&self, call: SessionToolCall) -> BoxFuture<'_, Result<Value, ToolError>> {
        Box::pin(async move {
            let Some(service) = self.service.upgrade() else {
                return Err(ToolError::new(
                    "shutting_down",
                    "the daemon is shutting down",
                ));
            };
            service
                .call_tool(&self.caller, call)
                .await
                .map_err(|e| tool_error(&e))
        })
    }
}

impl SessionService {
    /// Runs one session tool call as `caller`.
    pub async fn call_tool(
        &self,
        caller: &Caller,
        call: SessionToolCall,
    ) -> Result<Value, ServiceError> {
        match call {
            SessionToolCall::List(p) => encode(self.list(caller, p).await),
            SessionToolCall::History(p) => encode(self.history(caller, p).await),
            SessionToolCall::Spawn(p) => encode(self.spawn(caller, *p).await),
            SessionToolCall::Wait(p) => encode(self.wait(caller, p).await),
            SessionToolCall::Send(p) => {
                let message = p.message.clone();
                let result = match self.send(caller, p).await? {
                    SendOutcome::Done(r) => r,
                    // A tool call has nobody to stream to: wait for the result.
                    SendOutcome::Streaming(mut progress) => loop {
                        match progress.next().await {
                            Some(ProgressItem::Done(r)) => break r?,
                            Some(ProgressItem::Event(_)) => continue,
                            None => {
                                return Err(ServiceError::Internal(
                                    "the send ended without a result".into(),
                                ));
                            }
                        }
                    },
                };
                self.reply_back(caller, &message, &result);
                encode(Ok(result))
            }
        }
    }
}

fn encode<T: Serialize>(r: Result<T, ServiceError>) -> Result<Value, ServiceError> {
    serde_json::to_value(r?).map_err(|e| ServiceError::Internal(format!("encoding: {e}")))
}

/// A service error as the model reads it: its kind and its sentence.
pub fn tool_error(e: &ServiceError) -> ToolError {
    let kind = match (e.kind(), e) {
        (Some(k), _) => k.as_str(),
        (None, ServiceError::InvalidParams(_)) => "invalid_params",
        (None, _) => "internal",
    };
    ToolError::new(kind, e.to_string())
}
