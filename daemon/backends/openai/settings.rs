//! An `openai` agent's configuration, resolved once: the endpoint, the model, the key (read
//! from the variable `api_key_env` names) and the limits of its loop.

use std::time::Duration;

use crate::config::{AgentConfig, OpenAiEnv, ToolChoice};
use serde_json::{Map, Value};

/// Longer than any answer is worth waiting for; keeps a huge configured value meaningful.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// An API key. Its `Debug` never shows it; only the Authorization header holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// No key is configured: none is sent.
    None,
    Set {
        var: String,
        key: ApiKey,
    },
    /// `api_key_env` names a variable that is not set: every request fails saying so.
    Missing {
        var: String,
    },
}

impl KeySource {
    pub fn var(&self) -> Option<&str> {
        match self {
            KeySource::None => None,
            KeySource::Set { var, .. } | KeySource::Missing { var } => Some(var),
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            KeySource::Set { key, .. } => Some(key.expose()),
            _ => None,
        }
    }
}

/// Retries of 429 and 5xx answers: `max_attempts` requests in all, waiting what the server
/// asked (at most `max_retry_after`) or `base_delay` doubled per attempt (at most
/// `max_delay`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    pub agent_id: String,
    /// Without a trailing slash, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// `None`: the first model `GET /models` lists.
    pub model: Option<String>,
    pub api_key: KeySource,
    pub system_prompt: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub tool_choice: Option<ToolChoice>,
    pub max_tool_rounds: u32,
    pub max_context_messages: usize,
    pub request_timeout: Duration,
    pub extra_body: Map<String, Value>,
    pub retry: RetryPolicy,
}

impl OpenAiSettings {
    /// `read_var` reads the daemon's environment (`std::env::var`), for the API key.
    pub fn from_config(
        agent_id: &str,
        agent: &AgentConfig,
        env: &OpenAiEnv,
        read_var: impl Fn(&str) -> Option<String>,
    ) -> OpenAiSettings {
        let api_key = match agent.openai_api_key_env(env) {
            None => KeySource::None,
            Some(var) => match read_var(&var).filter(|k| !k.trim().is_empty()) {
                Some(key) => KeySource::Set {
                    var,
                    key: ApiKey::new(key.trim()),
                },
                None => KeySource::Missing { var },
            },
        };
        OpenAiSettings {
            agent_id: agent_id.to_string(),
            base_url: agent.openai_base_url(env),
            model: agent.openai_model(env),
            api_key,
            system_prompt: agent.system_prompt.clone(),
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
            tool_choice: agent.tool_choice.clone(),
            max_tool_rounds: agent.max_tool_rounds(),
            max_context_messages: agent.max_context_messages() as usize,
            request_timeout: Duration::try_from_secs_f64(agent.request_timeout_seconds())
                .unwrap_or(MAX_REQUEST_TIMEOUT)
                .min(MAX_REQUEST_TIMEOUT),
            extra_body: agent.extra_body.clone().unwrap_or_default(),
            retry: RetryPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AgentConfig, BackendKind, OpenAiEnv};

    use super::*;

    fn agent() -> AgentConfig {
        AgentConfig {
            base_url: Some("http://127.0.0.1:11434/v1/".into()),
            api_key_env: Some("OLLAMA_KEY".into()),
            max_tool_rounds: Some(3),
            request_timeout_seconds: Some(1e30),
            ..AgentConfig::new(BackendKind::OpenAi)
        }
    }

    #[test]
    fn the_key_is_read_from_the_named_variable_only() {
        let env = OpenAiEnv::default();
        let s = OpenAiSettings::from_config("main", &agent(), &env, |v| {
            (v == "OLLAMA_KEY").then(|| " k-123 \n".to_string())
        });
        assert_eq!(s.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(s.api_key.key(), Some("k-123"));
        assert_eq!(s.api_key.var(), Some("OLLAMA_KEY"));
        assert_eq!(s.max_tool_rounds, 3);
        assert_eq!(s.request_timeout, Duration::from_secs(24 * 3600));
        assert!(!format!("{s:?}").contains("k-123"));

        let s = OpenAiSettings::from_config("main", &agent(), &env, |_| None);
        assert_eq!(
            s.api_key,
            KeySource::Missing {
                var: "OLLAMA_KEY".into()
            }
        );

        // The environment's key goes with the environment's endpoint, not with this one.
        let env = OpenAiEnv {
            api_key_set: true,
            ..OpenAiEnv::default()
        };
        let own = AgentConfig {
            api_key_env: None,
            ..agent()
        };
        let s = OpenAiSettings::from_config("main", &own, &env, |_| Some("sk-x".into()));
        assert_eq!(s.api_key, KeySource::None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let r = RetryPolicy::default();
        let waits: Vec<u64> = (1..=6).map(|a| r.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 20]);
    }
}
