//! `openai`: a native agent loop over any OpenAI-compatible Chat Completions server (Ollama,
//! llama.cpp, vLLM, LM Studio, OpenRouter, OpenAI). It streams the model's text, assembles
//! its tool calls, has the host run them, and goes on until the model answers.
//!
//! The engine drives it through [`TurnHost`]: progress events, transcript messages and tool
//! execution are the host's; the backend holds no session policy.
//!
//! ```ignore
//! let settings = OpenAiSettings::from_config(id, &agent, &OpenAiEnv::from_process(), |v| std::env::var(v).ok());
//! let backend = OpenAiBackend::new(settings)?;          // once per agent: keeps its connections
//! let reply = backend.run_turn(&host, TurnContext { .. }, &stop).await?;
//! ```
mod agent_loop;
mod context_cache;
mod conversation;
mod engine;
mod errors;
mod host;
mod http;
mod request;
mod settings;
mod stream;

#[cfg(test)]
#[path = "../../../tests/common/openai_server.rs"]
mod openai_server;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use agent_loop::{TurnContext, TurnFailure, TurnReply};
pub use conversation::IncomingMessage;
pub use engine::OpenAiAgent;
pub use host::{ToolCallRequest, ToolEvent, ToolStatus, TranscriptEntry, TurnHost, Usage};
pub use request::reasoning_effort;
pub use settings::{ApiKey, KeySource, OpenAiSettings, RetryPolicy};

pub struct OpenAiBackend {
    settings: Arc<OpenAiSettings>,
    client: http::ChatClient,
    /// The first model of `GET /models`, asked once, when no model is configured.
    discovered_model: tokio::sync::OnceCell<String>,
}

impl OpenAiBackend {
    pub fn new(settings: OpenAiSettings) -> Result<OpenAiBackend, String> {
        let settings = Arc::new(settings);
        Ok(OpenAiBackend {
            client: http::ChatClient::new(settings.clone())?,
            settings,
            discovered_model: tokio::sync::OnceCell::new(),
        })
    }

    pub fn settings(&self) -> &OpenAiSettings {
        &self.settings
    }

    /// Runs one turn until the model answers, the turn fails, or `stop` fires; then the
    /// HTTP request in flight (or the tool call) is dropped at once.
    pub async fn run_turn<H: TurnHost>(
        &self,
        host: &H,
        ctx: TurnContext,
        stop: &CancellationToken,
    ) -> Result<TurnReply, TurnFailure> {
        if stop.is_cancelled() {
            return Err(TurnFailure::Stopped);
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => Err(TurnFailure::Stopped),
            result = self.drive(host, ctx) => result,
        }
    }
}
