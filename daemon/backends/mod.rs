//! Backends execute one turn: a message in, a reply out. The engine owns everything around a
//! turn (queueing, lanes, timeouts, storage) and hands a backend a [`TurnContext`]: the
//! session, the model to use, its history on demand, typed events to report progress, the
//! session tools acting as the run, and the stop token.

pub mod acp;
mod echo;
mod exec;
mod mcp;
mod mcp_config;
pub mod openai;
mod run_events;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, BackendKind};
use crate::daemon::store::{Store, StoreError};
use crate::protocol::Message;
use crate::tools::{SessionToolCall, ToolError, ToolScope};

pub use exec::ExecBackend;
pub use run_events::{RunEvents, RunProgress, StreamedSoFar, ToolPhase, Usage};

/// A future a trait object can return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The session tools (`sessions_spawn`, `sessions_send`, ...), executed by the session
/// service acting as one run: the same attribution, visibility and policy as a run token
/// gives a child process, with no socket in between.
pub trait RunTools: Send + Sync {
    /// Which tools this run has and what they may target: their schemas are built from it,
    /// and a model's calls are parsed against it.
    fn scope(&self) -> &ToolScope;
    /// Runs one parsed call; the result as JSON, or why not.
    fn call(&self, call: SessionToolCall) -> BoxFuture<'_, Result<Value, ToolError>>;
}

/// The session's transcript, read when a backend asks (most never do).
#[derive(Clone)]
pub struct History {
    store: Store,
    sid: i64,
}

impl History {
    pub fn new(store: Store, sid: i64) -> History {
        History { store, sid }
    }

    /// The newest `limit` messages, oldest first, tool calls included, within `budget`
    /// bytes (a larger message comes truncated).
    pub async fn load(&self, limit: u32, budget: usize) -> Result<Vec<Message>, StoreError> {
        Ok(self
            .store
            .history(self.sid, limit, None, true, budget)
            .await?
            .messages)
    }

    /// The messages after `after_seq`, oldest first, at most `limit` within `budget` bytes;
    /// the flag says whether more were left.
    pub async fn load_after(
        &self,
        after_seq: u64,
        limit: u32,
        budget: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        self.store
            .messages_after(self.sid, after_seq, limit, budget)
            .await
    }

    /// The session's row id.
    pub fn sid(&self) -> i64 {
        self.sid
    }
}

/// The session as a backend that keeps sessions of its own (ACP) sees it: the agent's id
/// for it, read and recorded.
#[derive(Clone)]
pub struct SessionHandle {
    store: Store,
    sid: i64,
}

impl SessionHandle {
    pub fn new(store: Store, sid: i64) -> SessionHandle {
        SessionHandle { store, sid }
    }

    /// The agent's own id for this session, if one was recorded (or named at spawn).
    pub async fn agent_session_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .session_by_sid(self.sid)
            .await?
            .and_then(|s| s.agent_session_id))
    }

    /// Records the agent's own id for this session, to resume it in a later process.
    pub async fn save_agent_session_id(&self, id: &str) -> Result<(), StoreError> {
        let patch = crate::daemon::store::Patch {
            agent_session_id: Some(Some(id.to_string())),
            ..Default::default()
        };
        self.store.patch_session(self.sid, patch).await
    }
}

/// Everything a backend gets for one turn.
pub struct TurnContext {
    pub session_key: String,
    pub session_id: String,
    pub agent_id: String,
    pub run_id: String,
    /// Lets the run's own processes act as its session (`OPENCLAW_RUN_TOKEN`).
    pub run_token: String,
    /// The message of this turn, as text (attachments are files in the workspace).
    pub message: String,
    /// The model for this session: its own (`--model`, `sessions patch --model`), else the
    /// agent's.
    pub model: Option<String>,
    /// `thinking` as given at spawn, for backends that have a reasoning setting.
    pub thinking: Option<String>,
    pub workspace: PathBuf,
    pub history: History,
    pub session: SessionHandle,
    /// This is the session's first run: an agent session named at spawn must be loaded.
    pub first_run: bool,
    /// For a process that outlives this run (an ACP agent's MCP server): acts as whichever
    /// run of this session is active. Only backends that keep a process get one.
    pub session_token: Option<String>,
    pub events: RunEvents,
    /// The session tools acting as this run.
    pub tools: Arc<dyn RunTools>,
    /// Cancelled on kill, timeout or shutdown: stop at once and return `TurnError::Stopped`.
    pub stop: CancellationToken,
}

#[derive(Debug, Clone, Default)]
pub struct TurnOutput {
    pub reply: String,
    pub tokens: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TurnError {
    /// The turn ran and failed; the text says why (for `exec`, the exit status and stderr tail).
    Failed(String),
    /// The turn was stopped through its token (kill, timeout or shutdown).
    Stopped,
}

pub enum Backend {
    Echo,
    Exec(ExecBackend),
    OpenAi(Box<openai::OpenAiAgent>),
    Acp(acp::AcpAgent),
    /// An agent whose backend could not be set up: every turn fails with this sentence.
    Unavailable(String),
}

impl Backend {
    pub fn from_config(
        agent_id: &str,
        agent: &AgentConfig,
        socket: &Path,
        kill_grace: Duration,
    ) -> Backend {
        match agent.backend {
            BackendKind::Echo => Backend::Echo,
            BackendKind::Exec => Backend::Exec(ExecBackend::new(agent, socket, kill_grace)),
            BackendKind::OpenAi => match openai::OpenAiAgent::new(agent_id, agent, kill_grace) {
                Ok(a) => Backend::OpenAi(Box::new(a)),
                Err(why) => Backend::Unavailable(format!(
                    "the openai agent \"{agent_id}\" cannot be set up: {why}"
                )),
            },
            BackendKind::Acp => {
                Backend::Acp(acp::AcpAgent::new(agent_id, agent, socket, kill_grace))
            }
        }
    }

    /// Which spawn fields this backend uses; the others are reported as ignored.
    pub fn uses_thinking(&self) -> bool {
        matches!(self, Backend::OpenAi(_))
    }

    /// Runs one turn, reporting progress through `ctx.events`, until done or `ctx.stop` fires.
    pub async fn run_turn(&self, ctx: TurnContext) -> Result<TurnOutput, TurnError> {
        match self {
            Backend::Echo => echo::run_turn(ctx).await,
            Backend::Exec(exec) => exec.run_turn(ctx).await,
            Backend::OpenAi(agent) => agent.run_turn(ctx).await,
            Backend::Acp(agent) => agent.run_turn(ctx).await,
            Backend::Unavailable(why) => Err(TurnError::Failed(why.clone())),
        }
    }

    /// Whether this backend keeps a process per session between turns (it then gets a
    /// session token for what that process starts).
    pub fn keeps_processes(&self) -> bool {
        matches!(self, Backend::Acp(_))
    }

    /// The session is gone (deleted): let go of anything kept for it between turns.
    pub async fn close_session(&self, session_id: &str) {
        match self {
            Backend::Acp(agent) => agent.close_session(session_id).await,
            Backend::OpenAi(agent) => agent.close_session(session_id),
            _ => {}
        }
    }

    /// The daemon is stopping: let go of everything kept between turns.
    pub async fn shutdown(&self) {
        match self {
            Backend::Acp(agent) => agent.shutdown().await,
            Backend::OpenAi(agent) => agent.shutdown().await,
            _ => {}
        }
    }
}

/// The daemon's own `OPENCLAW*` variables, from whoever started it (`OPENCLAW_HOME`,
/// `OPENCLAWD`, a terminal's `OPENCLAW_NO_AUTOSTART`...), and what systemd handed the daemon
/// (`NOTIFY_SOCKET`, `LISTEN_*`: an agent using them would speak for the daemon): agents do
/// not inherit them unless their `env` names them; they get the ones made for their run
/// instead.
pub fn inherited_openclaw_vars() -> Vec<String> {
    const SERVICE_MANAGER: [&str; 4] = [
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    ];
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("OPENCLAW") || SERVICE_MANAGER.contains(&k.as_str()))
        .collect()
}

/// Creates a session's workspace (and the directories above it) private to the owner.
pub fn ensure_workspace(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The `openclaw` command, for what runs should start of it (`openclaw mcp`): `OPENCLAW_CLI`,
/// else the `openclaw` beside this daemon's binary, else `openclaw` on `PATH`.
pub fn cli_path() -> String {
    if let Some(p) = std::env::var_os("OPENCLAW_CLI").filter(|p| !p.is_empty()) {
        return p.to_string_lossy().into_owned();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("openclaw")))
        .filter(|p| p.exists())
        .map_or_else(|| "openclaw".to_string(), |p| p.display().to_string())
}
