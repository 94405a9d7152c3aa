//! [`AcpClient`]: one agent process and its ACP session — start it, run turns on it, cancel
//! a turn, stop it. Every failure stops the process, so the next run starts a fresh one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AcpPermissions, AgentConfig};
use agent_client_protocol_schema::ProtocolVersion;
use agent_client_protocol_schema::v1::{
    CancelNotification, ClientCapabilities, ContentBlock, FileSystemCapabilities, Implementation,
    InitializeRequest, InitializeResponse, LoadSessionRequest, McpServer, NewSessionRequest,
    NewSessionResponse, PromptRequest, PromptResponse, StopReason, TextContent,
};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::connection::{CallError, Closed, Connection, MAX_REPLY_BYTES, Turn};
use super::error::{AcpError, AcpFailure};
use super::events::AcpHost;
use super::fs::Workspace;
use super::process::AgentProcess;
use super::wire::MAX_LINE_BYTES;

/// How long a dead agent's stderr gets to drain into the error message.
const STDERR_DRAIN: Duration = Duration::from_millis(500);
/// How long an agent whose stdout closed gets to exit, so its status can be reported.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// How to run an agent: from its `[agents.X]` table.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub permissions: AcpPermissions,
    pub initialize_timeout: Duration,
    /// How long a cancelled prompt has to end, and SIGTERM to work, before SIGKILL.
    pub kill_grace: Duration,
}

impl AgentSpec {
    pub fn from_config(agent: &AgentConfig, kill_grace: Duration) -> AgentSpec {
        AgentSpec {
            command: agent.command.clone().unwrap_or_default(),
            env: agent.env.clone(),
            permissions: agent.acp_permissions(),
            initialize_timeout: agent.acp_initialize_timeout(),
            kill_grace,
        }
    }

    fn command_line(&self) -> String {
        self.command.join(" ")
    }
}

/// One session's start: where, with what, and whether to pick up an earlier ACP session.
#[derive(Debug, Clone, Default)]
pub struct SessionSetup {
    /// The session workspace: the agent's cwd, created if missing; file requests are
    /// confined to it.
    pub workspace: PathBuf,
    /// Added to the agent's configured environment.
    pub env: BTreeMap<String, String>,
    /// Given to the agent in `session/new` / `session/load` (the lead passes `openclaw mcp`
    /// with the run's identity).
    pub mcp_servers: Vec<McpServer>,
    pub resume: Option<Resume>,
}

/// An ACP session to load instead of starting a new one.
#[derive(Debug, Clone)]
pub struct Resume {
    pub session_id: String,
    /// Asked for by the user (`resumeSessionId`): failing to load is an error. Otherwise
    /// (a restart after idle time) a new session is started and [`Started::note`] says so.
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub session_id: String,
    /// True when `session/load` picked up [`Resume::session_id`].
    pub loaded: bool,
    /// Whether the agent advertises `loadSession`.
    pub can_load: bool,
    /// Something the user should hear (a resume that fell back to a new session).
    pub note: Option<String>,
    /// The agent's name and version, when it says.
    pub agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    Ok,
    /// Cancelled: through the stop token, [`AcpClient::cancel`], or by the agent.
    Aborted,
    /// The agent ended the turn refusing; the text says so.
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TurnResult {
    pub outcome: TurnOutcome,
    /// The turn's `agent_message_chunk`s, concatenated.
    pub reply: String,
    /// As the agent sent it (`end_turn`, `max_tokens`, ...), if it answered the prompt.
    pub stop_reason: Option<String>,
    /// Why an ok turn may look short, or what happened on cancel.
    pub note: Option<String>,
    /// Total tokens, when the agent reports them with its answer.
    pub tokens: Option<i64>,
}

pub struct AcpClient {
    command_line: String,
    kill_grace: Duration,
    process: AgentProcess,
    conn: Connection,
    session_id: String,
    started: Started,
    /// One turn at a time, whatever the caller does.
    turn: tokio::sync::Mutex<()>,
}

impl AcpClient {
    /// Starts the agent and its ACP session. `host` hears updates that come before the first
    /// turn (agents send usage and command lists early).
    pub async fn start(
        spec: &AgentSpec,
        setup: SessionSetup,
        host: Arc<dyn AcpHost>,
    ) -> Result<AcpClient, AcpError> {
        let command_line = spec.command_line();
        let early = |failure: AcpFailure| AcpError {
            command: command_line.clone(),
            failure,
            stderr_tail: String::new(),
        };
        crate::daemon::backends::ensure_workspace(&setup.workspace).map_err(|e| {
            early(AcpFailure::Spawn(format!(
                "cannot create the session workspace {}: {e}",
                setup.workspace.display()
            )))
        })?;
        let workspace = Workspace::new(&setup.workspace)
            .map_err(|e| early(AcpFailure::Spawn(format!("session workspace: {e}"))))?;
        let mut env = spec.env.clone();
        env.extend(setup.env.clone());
        let (process, pipes) = AgentProcess::spawn(&spec.command, workspace.root(), &env)
            .map_err(|e| early(AcpFailure::Spawn(e.to_string())))?;
        let conn = Connection::open(pipes.stdin, pipes.stdout, workspace, spec.permissions, host);
        let mut client = AcpClient {
            command_line: command_line.clone(),
            kill_grace: spec.kill_grace,
            process,
            conn,
            session_id: String::new(),
            started: Started {
                session_id: String::new(),
                loaded: false,
                can_load: false,
                note: None,
                agent: None,
            },
            turn: tokio::sync::Mutex::new(()),
        };
        match client.open_session(spec.initialize_timeout, setup).await {
            Ok(started) => {
                client.session_id = started.session_id.clone();
                client.started = started;
                Ok(client)
            }
            Err(failure) => Err(client.fail(failure).await),
        }
    }

    async fn open_session(
        &self,
        deadline: Duration,
        setup: SessionSetup,
    ) -> Result<Started, AcpFailure> {
        let init = InitializeRequest::new(ProtocolVersion::V1)
            .client_capabilities(
                ClientCapabilities::new()
                    .fs(FileSystemCapabilities::new()
                        .read_text_file(true)
                        .write_text_file(true))
                    .terminal(false),
            )
            .client_info(Implementation::new("openclaw", env!("CARGO_PKG_VERSION")));
        let answer = self.setup_call("initialize", &init, deadline).await?;
        let init: InitializeResponse = serde_json::from_value(answer).map_err(|e| {
            AcpFailure::Protocol(format!("answered initialize with a malformed result: {e}"))
        })?;
        if init.protocol_version != ProtocolVersion::V1 {
            return Err(AcpFailure::Protocol(format!(
                "speaks ACP protocol version {}; openclaw speaks version 1",
                init.protocol_version.as_u16()
            )));
        }
        let can_load = init.agent_capabilities.load_session;
        let agent = init.agent_info.map(|i| format!("{} {}", i.name, i.version));
        let cwd = self.conn.workspace().root().to_path_buf();
        let mut note = None;
        if let Some(resume) = &setup.resume {
            if can_load {
                let load = LoadSessionRequest::new(resume.session_id.clone(), cwd.clone())
                    .mcp_servers(setup.mcp_servers.clone());
                self.conn.with_state(|st| {
                    st.replaying = true;
                    st.session_id = Some(resume.session_id.clone());
                });
                let loaded = self.setup_call("session/load", &load, deadline).await;
                self.conn.with_state(|st| st.replaying = false);
                match loaded {
                    Ok(_) => {
                        return Ok(Started {
                            session_id: resume.session_id.clone(),
                            loaded: true,
                            can_load,
                            note: None,
                            agent,
                        });
                    }
                    Err(failure @ AcpFailure::Rpc { .. }) if !resume.required => {
                        note = Some(format!(
                            "the agent could not load ACP session {} ({failure}); started a new ACP session",
                            resume.session_id
                        ));
                        self.conn.with_state(|st| st.session_id = None);
                    }
                    Err(failure) => return Err(failure),
                }
            } else if resume.required {
                return Err(AcpFailure::Protocol(format!(
                    "cannot load ACP session {}: the agent does not advertise loadSession",
                    resume.session_id
                )));
            } else {
                note = Some(
                    "the agent cannot load sessions (no loadSession capability); started a new ACP session"
                        .to_string(),
                );
            }
        }
        let new = NewSessionRequest::new(cwd).mcp_servers(setup.mcp_servers);
        let answer = self.setup_call("session/new", &new, deadline).await?;
        let session: NewSessionResponse = serde_json::from_value(answer).map_err(|e| {
            AcpFailure::Protocol(format!("answered session/new with a malformed result: {e}"))
        })?;
        let session_id = session.session_id.0.to_string();
        self.conn
            .with_state(|st| st.session_id = Some(session_id.clone()));
        Ok(Started {
            session_id,
            loaded: false,
            can_load,
            note,
            agent,
        })
    }

    async fn setup_call(
        &self,
        method: &str,
        params: &impl Serialize,
        deadline: Duration,
    ) -> Result<Value, AcpFailure> {
        match tokio::time::timeout(deadline, self.conn.call(method, params)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failure(e, method).await),
            Err(_) => Err(AcpFailure::Timeout {
                method: method.to_string(),
                ms: deadline.as_millis(),
            }),
        }
    }

    /// What a failed call means, in the agent's terms.
    async fn failure(&self, e: CallError, during: &str) -> AcpFailure {
        match e {
            CallError::Rpc(err) => AcpFailure::Rpc {
                method: during.to_string(),
                code: err.code,
                message: err.message,
            },
            CallError::Closed => self.closed_failure(during).await,
        }
    }

    async fn closed_failure(&self, during: &str) -> AcpFailure {
        match self.conn.closed().unwrap_or(Closed::Eof) {
            Closed::Eof => AcpFailure::Exited {
                how: self
                    .process
                    .wait_exit(EXIT_WAIT)
                    .await
                    .unwrap_or_else(|| "closed its stdout".to_string()),
                during: during.to_string(),
            },
            Closed::Garbage(excerpt) => AcpFailure::Garbage {
                excerpt,
                during: during.to_string(),
            },
            Closed::TooLong => AcpFailure::LineTooLong {
                limit: MAX_LINE_BYTES,
            },
            Closed::Io(e) => AcpFailure::Protocol(format!("could not be read: {e}")),
            Closed::Stalled => AcpFailure::Stalled,
            Closed::Stopped => AcpFailure::Stopped,
        }
    }

    /// Stops the process and names the failure with the agent's last words.
    async fn fail(&self, failure: AcpFailure) -> AcpError {
        self.shutdown().await;
        AcpError {
            command: self.command_line.clone(),
            failure,
            stderr_tail: self.process.stderr_tail(STDERR_DRAIN).await,
        }
    }

    pub fn started(&self) -> &Started {
        &self.started
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// False once the agent died, broke the protocol or was stopped: start a new client.
    pub fn is_alive(&self) -> bool {
        self.conn.closed().is_none() && !self.process.has_exited()
    }

    pub fn stderr_tail(&self) -> String {
        self.process.stderr_now()
    }

    /// Runs one turn. When `stop` fires (kill, run timeout, shutdown) the turn is cancelled
    /// (`session/cancel`), gets `kill_grace` to end, and then the process is stopped either
    /// way: the turn ends `Aborted`. An `Err` means the agent failed; its process is gone.
    pub async fn prompt(
        &self,
        text: &str,
        host: Arc<dyn AcpHost>,
        stop: &CancellationToken,
    ) -> Result<TurnResult, AcpError> {
        let _one_at_a_time = self.turn.lock().await;
        if self.conn.closed().is_some() {
            let failure = self.closed_failure("session/prompt").await;
            return Err(self.fail(failure).await);
        }
        self.conn.with_state(|st| {
            st.host = host;
            st.turn = Some(Turn::default());
            st.tools.clear();
        });
        let request = PromptRequest::new(
            self.session_id.clone(),
            vec![ContentBlock::Text(TextContent::new(text))],
        );
        let call = self.conn.call("session/prompt", &request);
        tokio::pin!(call);
        let (answer, stopped) = tokio::select! {
            answer = &mut call => (Some(answer), false),
            _ = stop.cancelled() => {
                self.cancel();
                (tokio::time::timeout(self.kill_grace, &mut call).await.ok(), true)
            }
        };
        let turn = self
            .conn
            .with_state(|st| st.turn.take())
            .unwrap_or_default();
        let mut reply = turn.reply;
        if turn.reply_truncated {
            reply.push_str(&format!(
                "\n[reply truncated: the agent wrote more than {} MiB]",
                MAX_REPLY_BYTES >> 20
            ));
        }
        if stopped {
            self.shutdown().await;
            let (stop_reason, note) = match &answer {
                Some(Ok(v)) => (
                    stop_reason_of(v),
                    "cancelled; the agent ended the prompt and its process was stopped".to_string(),
                ),
                _ => (
                    None,
                    format!(
                        "cancelled; the agent did not end the prompt within {} ms, so its process was stopped",
                        self.kill_grace.as_millis()
                    ),
                ),
            };
            return Ok(TurnResult {
                outcome: TurnOutcome::Aborted,
                reply,
                stop_reason,
                note: Some(note),
                tokens: None,
            });
        }
        match answer {
            Some(Ok(v)) => Ok(turn_result(&v, reply, turn.cancelled)),
            Some(Err(CallError::Rpc(e))) if turn.cancelled => Ok(TurnResult {
                outcome: TurnOutcome::Aborted,
                reply,
                stop_reason: None,
                note: Some(format!(
                    "cancelled; the agent answered {}: {}",
                    e.code, e.message
                )),
                tokens: None,
            }),
            // The agent is alive and said no (e.g. it wants authentication): the process
            // stays for the next turn.
            Some(Err(CallError::Rpc(e))) => Err(AcpError {
                command: self.command_line.clone(),
                failure: AcpFailure::Rpc {
                    method: "session/prompt".into(),
                    code: e.code,
                    message: e.message,
                },
                stderr_tail: self.process.stderr_now(),
            }),
            Some(Err(CallError::Closed)) | None => {
                let failure = self.closed_failure("session/prompt").await;
                Err(self.fail(failure).await)
            }
        }
    }

    /// Asks the agent to end the current turn (`session/cancel`); permission requests that
    /// come after are answered `cancelled`. The turn then ends `Aborted`, whatever stop
    /// reason the agent gives (opencode answers a cancel with `end_turn`).
    pub fn cancel(&self) {
        let first = self.conn.with_state(|st| match st.turn.as_mut() {
            Some(turn) if !turn.cancelled => {
                turn.cancelled = true;
                true
            }
            _ => false,
        });
        if first {
            self.conn.notify(
                "session/cancel",
                &CancelNotification::new(self.session_id.clone()),
            );
        }
    }

    /// Closes the agent's stdin, SIGTERMs its process group and SIGKILLs it after the grace
    /// period.
    pub async fn shutdown(&self) {
        self.conn.close(Closed::Stopped);
        self.process.stop(self.kill_grace).await;
    }
}

fn stop_reason_of(v: &Value) -> Option<String> {
    v.get("stopReason")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Maps the answer to `session/prompt`; a turn we cancelled is aborted whatever it says.
pub(super) fn turn_result(answer: &Value, reply: String, cancelled: bool) -> TurnResult {
    let stop_reason = stop_reason_of(answer);
    let tokens = answer
        .get("usage")
        .and_then(|u| u.get("totalTokens"))
        .and_then(Value::as_i64);
    let parsed = serde_json::from_value::<PromptResponse>(answer.clone())
        .ok()
        .map(|r| r.stop_reason);
    let (outcome, note) = match (cancelled, parsed) {
        (true, _) | (false, Some(StopReason::Cancelled)) => (TurnOutcome::Aborted, None),
        (false, Some(StopReason::EndTurn)) => (TurnOutcome::Ok, None),
        (false, Some(StopReason::MaxTokens)) => (
            TurnOutcome::Ok,
            Some("the agent stopped at its token limit (max_tokens)".to_string()),
        ),
        (false, Some(StopReason::MaxTurnRequests)) => (
            TurnOutcome::Ok,
            Some(
                "the agent stopped at its limit of model requests for one turn (max_turn_requests)"
                    .to_string(),
            ),
        ),
        (false, Some(StopReason::Refusal)) => (
            TurnOutcome::Error("the agent refused to continue (stop reason refusal)".to_string()),
            None,
        ),
        (false, _) => (
            TurnOutcome::Ok,
            Some(format!(
                "the agent ended the turn with an unknown stop reason {}",
                stop_reason.as_deref().unwrap_or("(none)")
            )),
        ),
    };
    TurnResult {
        outcome,
        reply,
        stop_reason,
        note,
        tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(answer: Value, cancelled: bool) -> (TurnOutcome, Option<String>) {
        let r = turn_result(&answer, "r".into(), cancelled);
        (r.outcome, r.note)
    }

    #[test]
    fn stop_reasons_map_to_outcomes() {
        assert_eq!(
            map(json!({"stopReason":"end_turn"}), false),
            (TurnOutcome::Ok, None)
        );
        assert_eq!(
            map(json!({"stopReason":"cancelled"}), false).0,
            TurnOutcome::Aborted
        );
        let (o, note) = map(json!({"stopReason":"max_tokens"}), false);
        assert_eq!(o, TurnOutcome::Ok);
        assert!(note.unwrap().contains("max_tokens"));
        let (o, note) = map(json!({"stopReason":"max_turn_requests"}), false);
        assert_eq!(o, TurnOutcome::Ok);
        assert!(note.unwrap().contains("max_turn_requests"));
        assert!(
            matches!(map(json!({"stopReason":"refusal"}), false).0, TurnOutcome::Error(m) if m.contains("refus"))
        );
        let (o, note) = map(json!({"stopReason":"went_fishing"}), false);
        assert_eq!(o, TurnOutcome::Ok);
        assert!(note.unwrap().contains("went_fishing"));
    }

    #[test]
    fn a_cancelled_turn_is_aborted_whatever_the_agent_says() {
        for reason in ["end_turn", "max_tokens", "refusal", "cancelled"] {
            assert_eq!(
                map(json!({"stopReason": reason}), true).0,
                TurnOutcome::Aborted,
                "{reason}"
            );
        }
    }

    #[test]
    fn tokens_come_from_the_answer_when_given() {
        let r = turn_result(
            &json!({"stopReason":"end_turn","usage":{"totalTokens":42,"inputTokens":40,"outputTokens":2}}),
            String::new(),
            false,
        );
        assert_eq!(r.tokens, Some(42));
        assert_eq!(r.stop_reason.as_deref(), Some("end_turn"));
    }
}
