//! The acp backend as the engine runs it: one agent process per session, started with the
//! session's first turn (in its workspace, with `openclaw mcp` acting as the session among
//! its MCP servers), kept between turns, stopped after `idle_timeout_seconds` idle, on
//! delete and at shutdown. The agent's session id is recorded on the session, so a later
//! process (after idle time or a daemon restart) loads it when the agent can.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    AcpClient, AcpEvent, AcpFailure, AcpHost, AgentSpec, EnvVariable, McpServer, McpServerStdio,
    PermissionDecision, PermissionOutcome, Resume, SessionSetup, TurnOutcome,
};
use crate::config::AgentConfig;
use crate::daemon::backends::{RunEvents, ToolPhase, TurnContext, TurnError, TurnOutput, Usage};
use crate::protocol::Role;

/// Permission decisions kept per turn for tool calls that have not ended yet.
const MAX_PENDING_DECISIONS: usize = 256;

/// A session's agent process, and how many turns it has served (the idle timer of an older
/// turn does not stop a process a newer turn is using).
struct Live {
    client: Arc<AcpClient>,
    turns: u64,
    busy: bool,
}

pub struct AcpAgent {
    agent_id: String,
    spec: AgentSpec,
    idle: Duration,
    socket: PathBuf,
    sessions: Arc<Mutex<HashMap<String, Live>>>,
}

impl AcpAgent {
    pub fn new(
        agent_id: &str,
        agent: &AgentConfig,
        socket: &std::path::Path,
        kill_grace: Duration,
    ) -> AcpAgent {
        AcpAgent {
            agent_id: agent_id.to_string(),
            spec: AgentSpec::from_config(agent, kill_grace),
            idle: agent.acp_idle_timeout(),
            socket: socket.to_path_buf(),
            sessions: Arc::default(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn run_turn(&self, ctx: TurnContext) -> Result<TurnOutput, TurnError> {
        let host: Arc<dyn AcpHost> = Arc::new(EventsHost {
            events: ctx.events.clone(),
            decisions: Mutex::default(),
        });
        // A start can take up to the initialize deadline; a kill must not wait for it.
        // Dropping the start stops the half-started process (its group is killed).
        let client = tokio::select! {
            client = self.client_for(&ctx, host.clone()) => client?,
            _ = ctx.stop.cancelled() => {
                // Nothing to cancel yet; without this a run timeout during a slow start
                // would end with no word of where the time went.
                ctx.events.transcript(
                    Role::System,
                    Value::String(
                        "acp: stopped while the agent was starting; no prompt was sent".into(),
                    ),
                );
                return Err(TurnError::Stopped);
            }
        };
        let result = client.prompt(&ctx.message, host, &ctx.stop).await;
        let turns = {
            let mut live = self.live();
            match live.get_mut(&ctx.session_id) {
                Some(l) if Arc::ptr_eq(&l.client, &client) => {
                    l.busy = false;
                    l.turns += 1;
                    Some(l.turns)
                }
                _ => None,
            }
        };
        match result {
            Ok(r) => {
                if let Some(note) = &r.note {
                    ctx.events
                        .transcript(Role::System, Value::String(format!("acp: {note}")));
                }
                if client.is_alive() {
                    if let Some(turns) = turns {
                        self.stop_when_idle(&ctx.session_id, turns);
                    }
                } else {
                    self.forget(&ctx.session_id, &client);
                }
                match r.outcome {
                    TurnOutcome::Ok => Ok(TurnOutput {
                        reply: r.reply,
                        tokens: r.tokens,
                    }),
                    TurnOutcome::Aborted if ctx.stop.is_cancelled() => Err(TurnError::Stopped),
                    TurnOutcome::Aborted => Err(TurnError::Failed(format!(
                        "the ACP agent `{}` cancelled the turn on its own",
                        self.spec.command.join(" ")
                    ))),
                    TurnOutcome::Error(why) => Err(TurnError::Failed(why)),
                }
            }
            Err(e) => {
                if !client.is_alive() {
                    self.forget(&ctx.session_id, &client);
                } else if let Some(turns) = turns {
                    // It refused the prompt but lives on (say, it wants a login first).
                    self.stop_when_idle(&ctx.session_id, turns);
                }
                Err(TurnError::Failed(e.to_string()))
            }
        }
    }

    /// The session's live agent, or a new one: loading the agent session recorded for it
    /// when there is one (required when it was named at spawn).
    async fn client_for(
        &self,
        ctx: &TurnContext,
        host: Arc<dyn AcpHost>,
    ) -> Result<Arc<AcpClient>, TurnError> {
        {
            let mut live = self.live();
            if let Some(l) = live.get_mut(&ctx.session_id)
                && l.client.is_alive()
            {
                l.busy = true;
                return Ok(l.client.clone());
            }
            live.remove(&ctx.session_id);
        }
        let saved = ctx
            .session
            .agent_session_id()
            .await
            .map_err(|e| TurnError::Failed(format!("cannot read the session: {e}")))?;
        let resume = saved.map(|session_id| Resume {
            session_id,
            required: ctx.first_run,
        });
        let named = resume
            .as_ref()
            .filter(|r| r.required)
            .map(|r| r.session_id.clone());
        let setup = SessionSetup {
            workspace: ctx.workspace.clone(),
            env: self.agent_env(ctx),
            mcp_servers: self.mcp_servers(ctx),
            resume,
        };
        let client = AcpClient::start(&self.spec, setup, host)
            .await
            .map_err(|e| match (&e.failure, named) {
                // The agent's own words ("Resource not found") do not say which session.
                (AcpFailure::Rpc { method, .. }, Some(id)) if method == "session/load" => {
                    TurnError::Failed(format!(
                        "cannot resume ACP session {id} (resumeSessionId): {e}"
                    ))
                }
                _ => TurnError::Failed(e.to_string()),
            })?;
        let started = client.started().clone();
        if let Err(e) = ctx.session.save_agent_session_id(&started.session_id).await {
            tracing::warn!(session = %ctx.session_key, "recording the ACP session id failed: {e}");
        }
        if let Some(note) = &started.note {
            ctx.events
                .transcript(Role::System, Value::String(format!("acp: {note}")));
        }
        let client = Arc::new(client);
        self.live().insert(
            ctx.session_id.clone(),
            Live {
                client: client.clone(),
                turns: 0,
                busy: true,
            },
        );
        Ok(client)
    }

    fn agent_env(&self, ctx: &TurnContext) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("OPENCLAW_SOCKET".into(), self.socket.display().to_string());
        env.insert("OPENCLAW_SESSION_KEY".into(), ctx.session_key.clone());
        env.insert("OPENCLAW_SESSION_ID".into(), ctx.session_id.clone());
        env.insert("OPENCLAW_NO_AUTOSTART".into(), "1".into());
        env
    }

    /// `openclaw mcp`, acting as this session (its token speaks for whichever run of the
    /// session is active: the agent process outlives each run).
    fn mcp_servers(&self, ctx: &TurnContext) -> Vec<McpServer> {
        let mut env = vec![
            EnvVariable::new("OPENCLAW_SOCKET", self.socket.display().to_string()),
            EnvVariable::new("OPENCLAW_NO_AUTOSTART", "1"),
        ];
        if let Some(token) = &ctx.session_token {
            env.push(EnvVariable::new("OPENCLAW_RUN_TOKEN", token.clone()));
        }
        vec![McpServer::Stdio(
            McpServerStdio::new("openclaw", crate::daemon::backends::cli_path())
                .args(vec!["mcp".into()])
                .env(env),
        )]
    }

    /// Stops the session's process once it has been idle for `idle`, unless a turn used it
    /// meanwhile.
    fn stop_when_idle(&self, session_id: &str, turns: u64) {
        let (sessions, idle, id) = (self.sessions.clone(), self.idle, session_id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(idle).await;
            let client = {
                let mut live = sessions.lock().unwrap_or_else(|p| p.into_inner());
                match live.get(&id) {
                    Some(l) if l.turns == turns && !l.busy => live.remove(&id).map(|l| l.client),
                    _ => None,
                }
            };
            if let Some(client) = client {
                tracing::debug!(session = %id, "stopping an idle ACP agent");
                client.shutdown().await;
            }
        });
    }

    fn forget(&self, session_id: &str, client: &Arc<AcpClient>) {
        let mut live = self.live();
        if live
            .get(session_id)
            .is_some_and(|l| Arc::ptr_eq(&l.client, client))
        {
            live.remove(session_id);
        }
    }

    pub async fn close_session(&self, session_id: &str) {
        let client = self.live().remove(session_id).map(|l| l.client);
        if let Some(client) = client {
            client.shutdown().await;
        }
    }

    pub async fn shutdown(&self) {
        let all: Vec<_> = self.live().drain().map(|(_, l)| l.client).collect();
        for client in all {
            client.shutdown().await;
        }
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

/// The run's events, as the agent's updates map onto them.
struct EventsHost {
    events: RunEvents,
    /// Permission decisions by tool call id, until the call's result is stored with its own.
    decisions: Mutex<HashMap<String, Value>>,
}

/// A permission decision as the transcript keeps it: which policy, what it decided.
fn decision_record(d: &PermissionDecision) -> Value {
    let mut record = serde_json::to_value(&d.outcome).unwrap_or_else(|_| json!({}));
    record["policy"] = Value::String(d.policy.as_str().to_string());
    record
}

impl AcpHost for EventsHost {
    fn event(&self, event: AcpEvent) {
        let e = &self.events;
        match event {
            AcpEvent::AssistantDelta { text } => e.assistant_delta(&text),
            AcpEvent::ThoughtDelta { text } => e.thought_delta(&text),
            AcpEvent::ToolStart(call) => {
                let input = tool_input(&call);
                e.tool(
                    &call.id,
                    ToolPhase::Start {
                        name: &call.title,
                        input: &input,
                    },
                );
                e.transcript(
                    Role::ToolCall,
                    json!({ "id": call.id, "name": call.title, "kind": call.kind, "input": input, "locations": call.locations }),
                );
            }
            AcpEvent::ToolUpdate(call) => {
                let output = tool_output(&call);
                e.tool(&call.id, ToolPhase::Update { output: &output });
            }
            AcpEvent::ToolEnd(call) => {
                let output = tool_output(&call);
                let status = if call.status == "failed" {
                    "error"
                } else {
                    "ok"
                };
                e.tool(
                    &call.id,
                    ToolPhase::End {
                        output: &output,
                        status,
                    },
                );
                let mut result = json!({ "id": call.id, "name": call.title, "output": output, "status": status });
                let decision = self
                    .decisions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&call.id);
                if let Some(decision) = decision {
                    result["permission"] = decision;
                }
                e.transcript(Role::ToolResult, result);
            }
            AcpEvent::Plan { entries } => {
                e.plan(&serde_json::to_value(entries).unwrap_or(Value::Null));
            }
            AcpEvent::Retrying { reason } => e.transcript(
                Role::System,
                Value::String(format!(
                    "acp: the agent is retrying its model request ({reason}); the run goes on until it answers, is killed or times out"
                )),
            ),
            AcpEvent::Usage(u) => e.usage(&Usage {
                total: Some(u.used as i64),
                ..Usage::default()
            }),
            AcpEvent::Permission(d) => {
                let allowed = matches!(d.outcome, PermissionOutcome::Allowed { .. });
                let mut decisions = self.decisions.lock().unwrap_or_else(|p| p.into_inner());
                // Decisions for calls that never end must not grow the daemon.
                if decisions.len() < MAX_PENDING_DECISIONS {
                    decisions.insert(d.tool_call_id.clone(), decision_record(&d));
                }
                drop(decisions);
                e.tool_data(json!({
                    "phase": "permission",
                    "id": d.tool_call_id,
                    "name": d.title,
                    "kind": d.kind,
                    "decision": d,
                    "status": if allowed { "allowed" } else { "denied" },
                }));
            }
        }
    }
}

fn tool_input(call: &super::ToolCallState) -> Value {
    call.raw_input
        .clone()
        .unwrap_or_else(|| json!({ "kind": call.kind }))
}

fn tool_output(call: &super::ToolCallState) -> Value {
    call.raw_output.clone().unwrap_or_else(|| {
        if call.content.is_empty() {
            Value::Null
        } else {
            Value::Array(call.content.clone())
        }
    })
}
