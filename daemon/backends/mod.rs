//! Backends execute one turn: a message in, a reply out. The engine owns everything around a
//! turn (queueing, lanes, timeouts, storage); a backend only runs it and stops when told.

pub mod acp;
mod echo;
mod exec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use openclaw::config::{AgentConfig, BackendKind};
use tokio_util::sync::CancellationToken;

use crate::events::RunEvents;

pub use exec::ExecBackend;

#[derive(Debug, Clone)]
pub struct TurnInput {
    pub session_key: String,
    pub session_id: String,
    pub run_id: String,
    /// Lets the run's own processes act as its session (`OPENCLAW_RUN_TOKEN`).
    pub run_token: String,
    pub message: String,
    pub workspace: PathBuf,
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
    /// A backend the configuration knows and this engine does not run yet (`acp` until the
    /// lead wires `acp::AcpClient` in): every turn fails saying so.
    NotWired(BackendKind),
}

impl Backend {
    pub fn from_config(agent: &AgentConfig, socket: &Path, kill_grace: Duration) -> Backend {
        match agent.backend {
            BackendKind::Echo => Backend::Echo,
            BackendKind::Exec => Backend::Exec(ExecBackend::new(agent, socket, kill_grace)),
            BackendKind::Acp => Backend::NotWired(BackendKind::Acp),
        }
    }

    /// Runs one turn, reporting progress through `events`, until done or `stop` fires.
    pub async fn run_turn(
        &self,
        input: TurnInput,
        events: RunEvents,
        stop: CancellationToken,
    ) -> Result<TurnOutput, TurnError> {
        match self {
            Backend::Echo => echo::run_turn(input, events, stop).await,
            Backend::Exec(exec) => exec.run_turn(input, events, stop).await,
            Backend::NotWired(kind) => Err(TurnError::Failed(format!(
                "the {} backend is not wired into this daemon yet",
                kind.as_str()
            ))),
        }
    }
}
