//! The `openai` backend's keys (SPEC §7), and the default agent an OpenAI-compatible
//! endpoint in the environment gives (SPEC §4).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AgentConfig, BackendKind};

/// `tool_choice`: `auto`, `none`, `required`, or the name of one tool to call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Tool(String),
}

impl From<String> for ToolChoice {
    fn from(s: String) -> Self {
        match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => ToolChoice::Tool(s),
        }
    }
}

/// One MCP tool server an `openai` agent starts (stdio).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    pub name: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Only these of the server's tools, when given.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
}

/// `[agents.X.subagents]`: what this agent's sessions may spawn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSubagentsConfig {
    /// Agent ids a spawn may target (`"*"`: any); default: only the agent itself.
    #[serde(default, alias = "allowAgents")]
    pub allow_agents: Option<Vec<String>>,
}

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MAX_TOOL_ROUNDS: u32 = 8;
pub const DEFAULT_MAX_CONTEXT_MESSAGES: u32 = 200;
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: f64 = 300.0;
/// The variable OpenAI's own tools read the key from.
pub const OPENAI_API_KEY_VAR: &str = "OPENAI_API_KEY";

/// Request-body fields openclaw sets itself, which `extra_body` may not override.
const OWNED_BODY_FIELDS: [(&str, &str); 8] = [
    ("model", "set model instead"),
    ("messages", "openclaw builds the conversation"),
    ("stream", "openclaw always streams"),
    ("stream_options", "openclaw sets it to get usage"),
    ("tools", "set tools (and mcp_servers) instead"),
    ("tool_choice", "set tool_choice instead"),
    ("temperature", "set temperature instead"),
    ("max_tokens", "set max_tokens instead"),
];

/// What the environment says about an OpenAI-compatible endpoint (SPEC §4). Empty values
/// count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenAiEnv {
    /// `$OPENAI_BASE_URL`
    pub base_url: Option<String>,
    /// `$OPENAI_MODEL`
    pub model: Option<String>,
    /// Whether `$OPENAI_API_KEY` is set (its value is never kept here).
    pub api_key_set: bool,
}

impl OpenAiEnv {
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> OpenAiEnv {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        OpenAiEnv {
            base_url: var("OPENAI_BASE_URL"),
            model: var("OPENAI_MODEL"),
            api_key_set: var(OPENAI_API_KEY_VAR).is_some(),
        }
    }

    pub fn from_process() -> OpenAiEnv {
        OpenAiEnv::from_vars(|k| std::env::var(k).ok())
    }

    /// Whether the environment names an endpoint at all.
    pub fn is_set(&self) -> bool {
        self.base_url.is_some() || self.api_key_set
    }
}

/// Where the default agent's configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAgentSource {
    /// config.toml has an `[agents.<default>]` table.
    Configured,
    /// `OPENAI_BASE_URL` / `OPENAI_API_KEY` name an endpoint.
    Environment,
    /// Nothing does: the built-in `echo`.
    Echo,
}

impl AgentConfig {
    /// The `openai` agent the environment describes (SPEC §4's default without a config).
    pub fn openai_from_env(env: &OpenAiEnv) -> AgentConfig {
        AgentConfig {
            base_url: env.base_url.clone(),
            model: env.model.clone(),
            api_key_env: env.api_key_set.then(|| OPENAI_API_KEY_VAR.to_string()),
            ..AgentConfig::new(BackendKind::OpenAi)
        }
    }

    /// The endpoint an `openai` agent talks to: `base_url`, else `$OPENAI_BASE_URL`, else
    /// the OpenAI API. Without a trailing slash.
    pub fn openai_base_url(&self, env: &OpenAiEnv) -> String {
        let url = self
            .base_url
            .as_deref()
            .or(env.base_url.as_deref())
            .unwrap_or(DEFAULT_OPENAI_BASE_URL);
        url.trim().trim_end_matches('/').to_string()
    }

    /// The model: `model`, else `$OPENAI_MODEL`; `None` means the first of `GET /models`.
    pub fn openai_model(&self, env: &OpenAiEnv) -> Option<String> {
        self.model.clone().or_else(|| env.model.clone())
    }

    /// The variable to read the API key from. `api_key_env` when set; otherwise
    /// `OPENAI_API_KEY`, but only when the endpoint too comes from the environment or is the
    /// OpenAI API, so that a key is never sent to a server it was not meant for.
    pub fn openai_api_key_env(&self, env: &OpenAiEnv) -> Option<String> {
        if let Some(var) = &self.api_key_env {
            return Some(var.clone());
        }
        (self.base_url.is_none() && env.api_key_set).then(|| OPENAI_API_KEY_VAR.to_string())
    }

    pub fn max_tool_rounds(&self) -> u32 {
        self.max_tool_rounds.unwrap_or(DEFAULT_MAX_TOOL_ROUNDS)
    }

    pub fn max_context_messages(&self) -> u32 {
        self.max_context_messages
            .unwrap_or(DEFAULT_MAX_CONTEXT_MESSAGES)
    }

    pub fn request_timeout_seconds(&self) -> f64 {
        self.request_timeout_seconds
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECONDS)
    }

    /// The agents this agent's sessions may spawn: `allow_agents`, default only itself.
    /// `"*"` stands for every agent.
    pub fn allowed_spawn_targets(&self, own_id: &str) -> Vec<String> {
        match self
            .subagents
            .as_ref()
            .and_then(|s| s.allow_agents.as_ref())
        {
            Some(list) => list.clone(),
            None => vec![own_id.to_string()],
        }
    }

    /// The keys set that only the `openai` backend reads.
    pub(super) fn openai_only_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut check = |set: bool, key: &'static str| {
            if set {
                keys.push(key);
            }
        };
        check(self.base_url.is_some(), "base_url");
        check(self.api_key_env.is_some(), "api_key_env");
        check(self.system_prompt.is_some(), "system_prompt");
        check(self.temperature.is_some(), "temperature");
        check(self.max_tokens.is_some(), "max_tokens");
        check(self.tool_choice.is_some(), "tool_choice");
        check(self.tools.is_some(), "tools");
        check(self.max_tool_rounds.is_some(), "max_tool_rounds");
        check(self.max_context_messages.is_some(), "max_context_messages");
        check(self.strict_tools, "strict_tools");
        check(
            self.request_timeout_seconds.is_some(),
            "request_timeout_seconds",
        );
        check(self.extra_body.is_some(), "extra_body");
        check(!self.mcp_servers.is_empty(), "mcp_servers");
        keys
    }
}

/// Checks an `openai` agent's keys; the error is (key under the agent's table, message).
pub(super) fn validate_openai(agent: &AgentConfig) -> Result<(), (String, String)> {
    let err = |key: &str, message: String| Err((key.to_string(), message));
    if let Some(url) = &agent.base_url {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            return err(
                "base_url",
                format!(
                    "\"{url}\" is not an http:// or https:// URL like \"http://127.0.0.1:11434/v1\""
                ),
            );
        }
    }
    if let Some(var) = &agent.api_key_env {
        let is_name = var
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name {
            // Never echo the value: it may well be the key itself.
            return err(
                "api_key_env",
                "must be the NAME of an environment variable holding the key (like OPENAI_API_KEY), never the key itself".into(),
            );
        }
    }
    if let Some(model) = &agent.model
        && model.trim().is_empty()
    {
        return err(
            "model",
            "must not be empty; leave it out to use the server's first model".into(),
        );
    }
    if let Some(t) = agent.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return err("temperature", format!("must be between 0 and 2, not {t}"));
    }
    if agent.max_tokens == Some(0) {
        return err("max_tokens", "must be at least 1".into());
    }
    if let Some(tools) = &agent.tools
        && let Some(bad) = tools
            .iter()
            .find(|t| !crate::tools::SESSION_TOOL_NAMES.contains(&t.as_str()))
    {
        return err(
            "tools",
            format!(
                "\"{bad}\" is not a session tool; the session tools are {} (MCP servers' tools are picked with mcp_servers' own tools list)",
                crate::tools::SESSION_TOOL_NAMES.join(", ")
            ),
        );
    }
    if let Some(ToolChoice::Tool(name)) = &agent.tool_choice {
        let session_tool = crate::tools::SESSION_TOOL_NAMES.contains(&name.as_str());
        let mcp_tool = agent
            .mcp_servers
            .iter()
            .any(|m| m.tools.as_ref().is_none_or(|t| t.iter().any(|t| t == name)));
        if !session_tool && !mcp_tool {
            return err(
                "tool_choice",
                format!("\"{name}\" is not auto, none, required or a tool this agent has"),
            );
        }
        if session_tool && agent.tools.as_ref().is_some_and(|t| !t.contains(name)) {
            return err(
                "tool_choice",
                format!("\"{name}\" is not in this agent's tools list"),
            );
        }
    }
    if agent.max_tool_rounds == Some(0) {
        return err("max_tool_rounds", "must be at least 1".into());
    }
    if agent.max_context_messages.is_some_and(|n| n < 2) {
        return err(
            "max_context_messages",
            "must be at least 2 (the session's task and the new message)".into(),
        );
    }
    if let Some(t) = agent.request_timeout_seconds
        && !(t.is_finite() && t > 0.0)
    {
        return err(
            "request_timeout_seconds",
            "must be a number of seconds above 0".into(),
        );
    }
    if let Some(extra) = &agent.extra_body
        && let Some((key, why)) = OWNED_BODY_FIELDS
            .iter()
            .find(|(k, _)| extra.contains_key(*k))
    {
        return err("extra_body", format!("may not set \"{key}\": {why}"));
    }
    let mut names = std::collections::BTreeSet::new();
    for server in &agent.mcp_servers {
        let name = &server.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return err(
                "mcp_servers",
                format!("server name \"{name}\" must be non-empty letters, digits, '_' or '-'"),
            );
        }
        if !names.insert(name.as_str()) {
            return err("mcp_servers", format!("two servers are named \"{name}\""));
        }
        if server.command.first().is_none_or(|c| c.is_empty()) {
            return err(
                "mcp_servers",
                format!(
                    "server \"{name}\" needs a command, e.g. command = [\"mcp-server-filesystem\", \".\"]"
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
