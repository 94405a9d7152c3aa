//! `config.toml` (SPEC §4). Every key is optional; unknown keys are errors, so a typo is caught
//! instead of silently doing nothing. Errors name the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::frame::DEFAULT_MAX_FRAME_BYTES;

pub mod env_file;
mod http;
mod openai;

use http::validate_http;
pub use http::{HookConfig, HttpConfig, TemplatePart, parse_listen, parse_template};
use openai::validate_openai;
pub use openai::{
    AgentSubagentsConfig, DEFAULT_MAX_CONTEXT_MESSAGES, DEFAULT_MAX_TOOL_ROUNDS,
    DEFAULT_OPENAI_BASE_URL, DEFAULT_REQUEST_TIMEOUT_SECONDS, DefaultAgentSource, McpServerConfig,
    OPENAI_API_KEY_VAR, OpenAiEnv, ToolChoice,
};

pub const DEFAULT_AGENT: &str = "main";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub default_agent: Option<String>,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
    #[serde(default)]
    pub lanes: LanesConfig,
    #[serde(default)]
    pub socket: SocketConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub subagents: SubagentsConfig,
    #[serde(default)]
    pub session: SessionConfig,
    #[serde(default)]
    pub pairing: PairingConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// The variables of `[daemon] env_file`, read at load.
    #[serde(skip)]
    pub daemon_env: BTreeMap<String, String>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub hooks: BTreeMap<String, HookConfig>,
}

/// The daemon itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// `KEY=VALUE` lines every agent gets (and the default agent's `OPENAI_*`), so keys do
    /// not depend on the environment of whoever started the daemon. Relative to config.toml.
    pub env_file: Option<PathBuf>,
}

/// Requests from other users' devices.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairingConfig {
    /// A pending request is dropped after this long.
    pub request_ttl_minutes: u64,
    /// Pending requests one uid may hold at once.
    pub max_pending_per_uid: u32,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            request_ttl_minutes: 60,
            max_pending_per_uid: 5,
        }
    }
}

/// Sessions spawned from inside other sessions.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubagentsConfig {
    /// How deep spawns may nest: 1 lets a session spawn children, not grandchildren.
    #[serde(alias = "maxDepth")]
    pub max_depth: u32,
    /// A sub-agent session is archived this long after its last run ended.
    #[serde(alias = "archiveAfterMinutes")]
    pub archive_after_minutes: u64,
}

impl Default for SubagentsConfig {
    fn default() -> Self {
        SubagentsConfig {
            max_depth: 1,
            archive_after_minutes: 60,
        }
    }
}

/// What a call made from inside a session (with its run token) may see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only its own session.
    #[serde(rename = "self")]
    Own,
    /// Itself and the sessions it spawned, recursively.
    #[default]
    Tree,
    /// Every session of the same agent.
    Agent,
    /// Everything.
    All,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub visibility: Visibility,
    #[serde(alias = "sendPolicy")]
    pub send_policy: SendPolicyConfig,
    /// Reply-back rounds between two sessions after a `sessions_send` (0–5, default 5).
    #[serde(alias = "maxPingPongTurns")]
    pub max_ping_pong_turns: Option<u32>,
}

/// Default and ceiling of `[session] max_ping_pong_turns`.
pub const MAX_PING_PONG_TURNS: u32 = 5;

impl SessionConfig {
    pub fn max_ping_pong_turns(&self) -> u32 {
        self.max_ping_pong_turns.unwrap_or(MAX_PING_PONG_TURNS)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    #[default]
    Allow,
    Deny,
}

/// Which sessions may receive messages from other sessions. The first rule whose every given
/// field matches the target session decides; otherwise `default` does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendPolicyConfig {
    pub default: PolicyAction,
    pub rules: Vec<SendRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRule {
    #[serde(default)]
    pub name: Option<String>,
    pub action: PolicyAction,
    #[serde(default, alias = "keyPrefix")]
    pub key_prefix: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default, alias = "agentId")]
    pub agent_id: Option<String>,
}

impl SendPolicyConfig {
    /// The decision for a target session, and the name of what decided it.
    pub fn decide(&self, key: &str, kind: &str, agent_id: &str) -> (PolicyAction, String) {
        for (i, rule) in self.rules.iter().enumerate() {
            let matches = rule
                .key_prefix
                .as_deref()
                .is_none_or(|p| key.starts_with(p))
                && rule.kind.as_deref().is_none_or(|k| k == kind)
                && rule.agent_id.as_deref().is_none_or(|a| a == agent_id);
            if matches {
                let name = rule
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("rule {}", i + 1));
                return (rule.action, format!("send policy rule \"{name}\""));
            }
        }
        (self.default, "the default send policy".to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Echo,
    Exec,
    /// A native agent loop over an OpenAI-compatible Chat Completions server.
    #[serde(rename = "openai")]
    OpenAi,
    /// An Agent Client Protocol agent over its stdio, one process per session.
    Acp,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Echo => "echo",
            BackendKind::Exec => "exec",
            BackendKind::OpenAi => "openai",
            BackendKind::Acp => "acp",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecFormat {
    /// stdout is the reply text.
    #[default]
    Text,
    /// stdout is one JSON object per line (structured events).
    Jsonl,
}

/// How an `acp` agent's `session/request_permission` is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcpPermissions {
    /// Every tool call is allowed.
    ApproveAll,
    /// Tool calls of kind read, search and fetch are allowed; the rest are rejected.
    #[default]
    ApproveReads,
    /// Every tool call is rejected.
    DenyAll,
}

impl AcpPermissions {
    pub fn as_str(self) -> &'static str {
        match self {
            AcpPermissions::ApproveAll => "approve-all",
            AcpPermissions::ApproveReads => "approve-reads",
            AcpPermissions::DenyAll => "deny-all",
        }
    }
}

/// `acp`: an idle agent process is stopped after this long.
pub const DEFAULT_ACP_IDLE_TIMEOUT_SECONDS: u64 = 600;
/// `acp`: how long an agent has to answer `initialize` (and then `session/new` or
/// `session/load`) before the run fails. Agents written in Python or Node take a few seconds
/// to start on a busy host.
pub const DEFAULT_ACP_INITIALIZE_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub backend: BackendKind,
    /// `exec`: the program and its arguments, run once per turn. `acp`: the agent, started
    /// once per session and kept between turns.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub format: ExecFormat,
    /// `exec`, `acp`: extra environment for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `KEY=VALUE` lines added to the agent's environment (`env` wins), read when the config
    /// is loaded; relative to config.toml.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    #[serde(default)]
    pub model: Option<String>,
    /// `openai`: the server, e.g. `http://127.0.0.1:11434/v1` (default: `$OPENAI_BASE_URL`,
    /// else the OpenAI API).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `openai`: the NAME of the environment variable holding the API key, never the key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// `openai`: which session tools the model gets (default: all that apply).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub max_tool_rounds: Option<u32>,
    #[serde(default)]
    pub max_context_messages: Option<u32>,
    /// `openai`: send tool schemas in OpenAI's `strict: true` form.
    #[serde(default)]
    pub strict_tools: bool,
    /// `openai`: how long to wait for the server's response, and then for each next chunk.
    #[serde(default)]
    pub request_timeout_seconds: Option<f64>,
    /// `openai`: extra fields merged into every request body (e.g. `top_p`, `seed`).
    #[serde(default)]
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    /// `openai`: MCP tool servers whose tools are offered to the model.
    #[serde(default)]
    pub mcp_servers: Vec<McpServerConfig>,
    #[serde(default)]
    pub subagents: Option<AgentSubagentsConfig>,
    /// `acp`: the permission policy (default approve-reads).
    #[serde(default)]
    pub permissions: Option<AcpPermissions>,
    /// `acp`: seconds an agent process may sit idle between turns before it is stopped.
    #[serde(default)]
    pub idle_timeout_seconds: Option<u64>,
    /// `acp`: deadline for the agent to answer `initialize`, `session/new` and `session/load`.
    #[serde(default)]
    pub initialize_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LanesConfig {
    pub main: u32,
    pub subagent: u32,
    pub cron: u32,
}

impl Default for LanesConfig {
    fn default() -> Self {
        LanesConfig {
            main: 8,
            subagent: 8,
            cron: 8,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketConfig {
    /// Octal file mode of the socket, e.g. "0600" (the default) or "0660".
    pub mode: Option<String>,
    /// Group to give the socket when opening it to other local users.
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest frame the daemon reads, in bytes.
    pub max_frame_bytes: usize,
    /// Runs waiting for a lane, per lane, before `busy`.
    pub max_queued_runs: usize,
    /// Runs queued behind one session's active run before `busy`.
    pub max_queued_per_session: usize,
    /// Grace between SIGTERM and SIGKILL when stopping an `exec` run or an `acp` agent (for
    /// `acp`, also how long a cancelled prompt has to end before its process is stopped).
    pub kill_grace_ms: u64,
    /// Open connections, over all users.
    pub max_connections: u32,
    /// Open connections of one uid.
    pub max_connections_per_uid: u32,
    /// Open connections of one other uid that has not yet proven a paired device (or a run
    /// token): past this its next connection is refused.
    pub max_unauthenticated_per_uid: u32,
    /// Connection slots only trusted peers (the owner, root) may take, so other users holding
    /// every other slot never lock the owner out. At most half of `max_connections`.
    pub reserved_connections: u32,
    /// Device signatures checked per second for one other uid (`pairing.authenticate`);
    /// past this it is told `busy` and when to retry.
    pub auth_attempts_per_second: u32,
    /// How long another user's client has to prove its device before it is disconnected.
    pub handshake_timeout_ms: u64,
    /// How long a client may leave replies unread (its queue full) before it is disconnected.
    pub stalled_reader_seconds: u64,
    /// Files one spawn may attach.
    pub max_attachments: usize,
    /// Bytes (decoded) all of one spawn's attachments may hold together.
    pub max_attachment_bytes: usize,
    /// Bytes of messages one reply (a history page, a catch-up batch) carries at most; a
    /// message larger than this alone comes truncated (`sessions.message` reads it whole).
    pub max_reply_bytes: usize,
    /// Live subscriptions (socket subscriptions and HTTP event streams) of one uid; the
    /// owner's runs count as the owner, each paired device on its own.
    pub max_subscriptions_per_uid: usize,
    /// Live subscriptions over everyone. Other users together may hold all but
    /// `max_subscriptions_per_uid` of them (at most half), kept for the owner, so they
    /// never lock the owner out.
    pub max_subscriptions: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_queued_runs: 100_000,
            max_queued_per_session: 1_000,
            kill_grace_ms: 2_000,
            max_connections: 4096,
            max_connections_per_uid: 2048,
            max_unauthenticated_per_uid: 8,
            reserved_connections: 64,
            auth_attempts_per_second: 20,
            handshake_timeout_ms: 10_000,
            stalled_reader_seconds: 60,
            max_attachments: 32,
            max_attachment_bytes: 10 * 1024 * 1024,
            max_reply_bytes: 8 * 1024 * 1024,
            max_subscriptions_per_uid: 4096,
            max_subscriptions: 16384,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

impl Config {
    /// Loads the file; a missing file is the default config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut config = Config::parse(&text, path)?;
                config.read_env_files(&text, path)?;
                Ok(config)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Reads `[daemon] env_file` and each agent's `env_file` (relative to the config file)
    /// into the environments agents get: the daemon's, then the agent's file, then `env`.
    fn read_env_files(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let load = |file: &Path, key: String| {
            let file = base.join(file);
            if env_file::readable_by_others(&file) {
                tracing::warn!(
                    "{} can be read by other users; it usually holds keys: chmod 600 it",
                    file.display()
                );
            }
            env_file::read(&file).map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: line_of(text, &key),
                message: format!("{}: {message}", file.display()),
                key,
            })
        };
        if let Some(file) = &self.daemon.env_file {
            self.daemon_env = load(file, "daemon.env_file".into())?;
        }
        for (id, agent) in self.agents.iter_mut() {
            let mut env = self.daemon_env.clone();
            if let Some(file) = &agent.env_file {
                env.extend(load(file, format!("agents.{id}.env_file"))?);
            }
            env.extend(std::mem::take(&mut agent.env));
            agent.env = env;
        }
        Ok(())
    }

    /// The `OPENAI_*` variables the implicit default agent is built from: `[daemon]
    /// env_file`'s, else the daemon's own environment.
    pub fn openai_env(&self) -> OpenAiEnv {
        OpenAiEnv::from_vars(|k| {
            self.daemon_env
                .get(k)
                .cloned()
                .or_else(|| std::env::var(k).ok())
        })
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        };
        let de = toml::Deserializer::parse(text).map_err(syntax)?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            let (key, message) = describe_value_error(&at, inner.message().trim());
            if key.is_empty() || key == "." {
                return syntax(inner);
            }
            let line = match inner.span() {
                Some(span) => text[..span.start.min(text.len())].matches('\n').count() + 1,
                None => line_of(text, &key),
            };
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                key,
                message,
            }
        })?;
        config.validate(text, path)?;
        Ok(config)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, &key),
            key,
            message,
        };
        for (id, agent) in &self.agents {
            if id.is_empty() || id.contains(':') || id.chars().any(char::is_whitespace) {
                return Err(invalid(
                    format!("agents.{id}"),
                    "an agent id must be non-empty, without ':' or spaces".into(),
                ));
            }
            if agent.backend != BackendKind::Acp {
                for (key, set) in [
                    ("permissions", agent.permissions.is_some()),
                    ("idle_timeout_seconds", agent.idle_timeout_seconds.is_some()),
                    (
                        "initialize_timeout_ms",
                        agent.initialize_timeout_ms.is_some(),
                    ),
                ] {
                    if set {
                        return Err(invalid(
                            format!("agents.{id}.{key}"),
                            format!(
                                "only the acp backend takes {key}; this agent's backend is {}",
                                agent.backend.as_str()
                            ),
                        ));
                    }
                }
            }
            match agent.backend {
                BackendKind::Acp => {
                    match &agent.command {
                        Some(cmd) if !cmd.is_empty() && !cmd[0].is_empty() => {}
                        _ => {
                            return Err(invalid(
                                format!("agents.{id}.command"),
                                "the acp backend needs the agent's command, e.g. command = [\"vibe-acp\"]".into(),
                            ));
                        }
                    }
                    if agent.format != ExecFormat::Text {
                        return Err(invalid(
                            format!("agents.{id}.format"),
                            "format is for the exec backend; an acp agent speaks ACP".into(),
                        ));
                    }
                    for (key, value) in [
                        ("idle_timeout_seconds", agent.idle_timeout_seconds),
                        ("initialize_timeout_ms", agent.initialize_timeout_ms),
                    ] {
                        if value == Some(0) {
                            return Err(invalid(
                                format!("agents.{id}.{key}"),
                                "must be at least 1".into(),
                            ));
                        }
                    }
                }
                BackendKind::Exec => match &agent.command {
                    Some(cmd) if !cmd.is_empty() && !cmd[0].is_empty() => {}
                    _ => {
                        return Err(invalid(
                            format!("agents.{id}.command"),
                            "the exec backend needs a command, e.g. command = [\"sh\", \"-c\", \"my-agent\"]".into(),
                        ));
                    }
                },
                BackendKind::Echo => {
                    if agent.command.is_some() {
                        return Err(invalid(
                            format!("agents.{id}.command"),
                            "the echo backend takes no command; set backend = \"exec\" to run one"
                                .into(),
                        ));
                    }
                }
                BackendKind::OpenAi => {
                    if agent.command.is_some() {
                        return Err(invalid(
                            format!("agents.{id}.command"),
                            "the openai backend takes no command; it talks to base_url (set backend = \"exec\" to run a command)".into(),
                        ));
                    }
                    validate_openai(agent)
                        .map_err(|(key, message)| invalid(format!("agents.{id}.{key}"), message))?;
                }
            }
            if agent.backend != BackendKind::OpenAi
                && let Some(key) = agent.openai_only_keys().first()
            {
                return Err(invalid(
                    format!("agents.{id}.{key}"),
                    format!(
                        "{key} applies to backend = \"openai\" only, and this agent's backend is \"{}\"",
                        agent.backend.as_str()
                    ),
                ));
            }
            if let Some(allowed) = agent
                .subagents
                .as_ref()
                .and_then(|s| s.allow_agents.as_ref())
                && let Some(unknown) = allowed.iter().find(|a| {
                    a.as_str() != "*"
                        && !self.agents.contains_key(a.as_str())
                        && a.as_str() != self.default_agent_id()
                })
            {
                return Err(invalid(
                    format!("agents.{id}.subagents.allow_agents"),
                    format!(
                        "no agent \"{unknown}\" is configured; name agents that have an [agents.NAME] table, or \"*\" for any"
                    ),
                ));
            }
        }
        if self.session.max_ping_pong_turns() > MAX_PING_PONG_TURNS {
            return Err(invalid(
                "session.max_ping_pong_turns".into(),
                format!("must be between 0 and {MAX_PING_PONG_TURNS}"),
            ));
        }
        if let Some(default) = &self.default_agent
            && default != DEFAULT_AGENT
            && !self.agents.contains_key(default)
        {
            return Err(invalid(
                "default_agent".into(),
                format!("no agent \"{default}\" is configured; add an [agents.{default}] table"),
            ));
        }
        for (name, cap) in [
            ("main", self.lanes.main),
            ("subagent", self.lanes.subagent),
            ("cron", self.lanes.cron),
        ] {
            if cap == 0 {
                return Err(invalid(
                    format!("lanes.{name}"),
                    "a lane needs a cap of at least 1".into(),
                ));
            }
        }
        if let Some(mode) = &self.socket.mode
            && parse_mode(mode).is_none()
        {
            return Err(invalid(
                "socket.mode".into(),
                format!("\"{mode}\" is not an octal file mode like \"0600\" or \"0660\""),
            ));
        }
        if self.subagents.max_depth == 0 {
            return Err(invalid(
                "subagents.max_depth".into(),
                "must be at least 1 (1 lets sessions spawn children but not grandchildren)".into(),
            ));
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_uid == 0 {
            return Err(invalid(
                "limits.max_connections".into(),
                "connection caps must be at least 1".into(),
            ));
        }
        validate_http(&self.http, &self.hooks, |a| {
            self.agents.contains_key(a) || a == self.default_agent_id()
        })
        .map_err(|(key, message)| invalid(key, message))?;
        if self.limits.max_unauthenticated_per_uid == 0 || self.limits.auth_attempts_per_second == 0
        {
            return Err(invalid(
                "limits.max_unauthenticated_per_uid".into(),
                "max_unauthenticated_per_uid and auth_attempts_per_second must be at least 1"
                    .into(),
            ));
        }
        if self.limits.max_subscriptions == 0 || self.limits.max_subscriptions_per_uid == 0 {
            return Err(invalid(
                "limits.max_subscriptions".into(),
                "subscription caps must be at least 1".into(),
            ));
        }
        if self.limits.max_frame_bytes < 1024 {
            return Err(invalid(
                "limits.max_frame_bytes".into(),
                "must be at least 1024 bytes".into(),
            ));
        }
        Ok(())
    }

    /// The agent new sessions use when none is named.
    pub fn default_agent_id(&self) -> &str {
        self.default_agent.as_deref().unwrap_or(DEFAULT_AGENT)
    }

    /// The configuration of an agent; the default agent exists even when not configured
    /// (it is then the built-in `echo`).
    pub fn agent(&self, id: &str) -> Option<AgentConfig> {
        match self.agents.get(id) {
            Some(a) => Some(a.clone()),
            None if id == self.default_agent_id() => Some(AgentConfig::echo()),
            None => None,
        }
    }

    /// Every agent, the implicit default included, sorted by id.
    pub fn all_agents(&self) -> Vec<(String, AgentConfig)> {
        let mut all: Vec<(String, AgentConfig)> = self
            .agents
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let default = self.default_agent_id();
        if !self.agents.contains_key(default) {
            all.push((default.to_string(), AgentConfig::echo()));
            all.sort_by(|a, b| a.0.cmp(&b.0));
        }
        all
    }

    /// The default agent's configuration when it has no table of its own (SPEC §4): an
    /// OpenAI-compatible endpoint when the environment names one, else `echo`. Pure: the
    /// caller reads the environment ([`OpenAiEnv::from_process`]).
    pub fn default_agent_from_env(&self, env: &OpenAiEnv) -> (AgentConfig, DefaultAgentSource) {
        if let Some(agent) = self.agents.get(self.default_agent_id()) {
            return (agent.clone(), DefaultAgentSource::Configured);
        }
        if env.is_set() {
            return (
                AgentConfig::openai_from_env(env),
                DefaultAgentSource::Environment,
            );
        }
        (AgentConfig::echo(), DefaultAgentSource::Echo)
    }

    /// Puts the implicit default agent in place (SPEC §4): the configured one; else an
    /// `openai` agent on the endpoint `env` names; else the built-in `echo`.
    pub fn apply_default_agent(&mut self, env: &OpenAiEnv) -> DefaultAgentSource {
        let (mut agent, source) = self.default_agent_from_env(env);
        if source == DefaultAgentSource::Environment {
            agent.env = self.daemon_env.clone();
            self.agents
                .insert(self.default_agent_id().to_string(), agent);
        }
        source
    }

    /// Socket file mode, default 0600.
    pub fn socket_mode(&self) -> u32 {
        self.socket
            .mode
            .as_deref()
            .and_then(parse_mode)
            .unwrap_or(0o600)
    }
}

impl AgentConfig {
    pub fn echo() -> AgentConfig {
        AgentConfig::new(BackendKind::Echo)
    }

    /// An agent of `backend` with every other key at its default.
    pub fn new(backend: BackendKind) -> AgentConfig {
        AgentConfig {
            backend,
            command: None,
            format: ExecFormat::Text,
            env: BTreeMap::new(),
            env_file: None,
            model: None,
            base_url: None,
            api_key_env: None,
            system_prompt: None,
            temperature: None,
            max_tokens: None,
            tool_choice: None,
            tools: None,
            max_tool_rounds: None,
            max_context_messages: None,
            strict_tools: false,
            request_timeout_seconds: None,
            extra_body: None,
            mcp_servers: Vec::new(),
            subagents: None,
            permissions: None,
            idle_timeout_seconds: None,
            initialize_timeout_ms: None,
        }
    }

    /// `acp`: the permission policy, defaulted.
    pub fn acp_permissions(&self) -> AcpPermissions {
        self.permissions.unwrap_or_default()
    }

    /// `acp`: the idle timeout, defaulted.
    pub fn acp_idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.idle_timeout_seconds
                .unwrap_or(DEFAULT_ACP_IDLE_TIMEOUT_SECONDS),
        )
    }

    /// `acp`: the deadline for `initialize` and session set-up, defaulted.
    pub fn acp_initialize_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.initialize_timeout_ms
                .unwrap_or(DEFAULT_ACP_INITIALIZE_TIMEOUT_MS),
        )
    }
}

fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    let mode = u32::from_str_radix(digits, 8).ok()?;
    (mode <= 0o777).then_some(mode)
}

/// The 1-based line where a dotted key is defined: its table header or its `key =` line.
fn line_of(text: &str, dotted: &str) -> usize {
    let (table, leaf) = match dotted.rsplit_once('.') {
        Some((t, l)) => (Some(t), l),
        None => (None, dotted),
    };
    let mut in_table = table.is_none();
    let mut table_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // `[[array.of.tables]]` names its table like `[table]` does.
            let header = header.trim_start_matches('[').trim_end_matches(']').trim();
            in_table = Some(header) == table;
            if in_table {
                table_line = i + 1;
            }
            if Some(header) == Some(dotted) || header == format!("agents.{dotted}") {
                return i + 1;
            }
            continue;
        }
        if in_table
            && let Some((k, _)) = line.split_once('=')
            && k.trim() == leaf
        {
            return i + 1;
        }
    }
    table_line.max(1)
}

/// A value error as `(key, sentence)`: an unknown key named by its full path, a type error
/// as what was wanted and what was found.
fn describe_value_error(at: &str, message: &str) -> (String, String) {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
    {
        // The path already ends with the unknown key (at top level it is the key alone).
        let key = if at.is_empty() || at == "." {
            field.to_string()
        } else {
            at.to_string()
        };
        let hint = tail.trim_start_matches([',', ' ']);
        let message = if hint.is_empty() {
            "unknown key".to_string()
        } else {
            format!("unknown key; {hint}")
        };
        return (key, message);
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, wanted)) = rest.split_once(", expected ")
    {
        let got = got
            .strip_prefix("string ")
            .or_else(|| got.strip_prefix("integer "))
            .or_else(|| got.strip_prefix("floating point "))
            .unwrap_or(got);
        let wanted = match wanted {
            "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number",
            "f32" | "f64" => "a number",
            other => other,
        };
        return (at.to_string(), format!("expected {wanted}, got {got}"));
    }
    (at.to_string(), message.to_string())
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x/config.toml"))
    }

    #[test]
    fn empty_config_has_an_echo_main_agent() {
        let c = parse("").unwrap();
        assert_eq!(c.default_agent_id(), "main");
        assert_eq!(c.agent("main").unwrap().backend, BackendKind::Echo);
        assert!(c.agent("worker").is_none());
        assert_eq!(c.lanes.main, 8);
        assert_eq!(c.socket_mode(), 0o600);
    }

    #[test]
    fn exec_agent_parses() {
        let c = parse(
            "default_agent = \"worker\"\n[agents.worker]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"cat\"]\nformat = \"jsonl\"\n",
        )
        .unwrap();
        let w = c.agent("worker").unwrap();
        assert_eq!(w.backend, BackendKind::Exec);
        assert_eq!(w.format, ExecFormat::Jsonl);
        assert_eq!(c.all_agents().len(), 1);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("[agents.main]\nbackend = \"echo\"\nbakend = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/x/config.toml:3: agents.main.bakend: unknown key"),
            "{err}"
        );
    }

    #[test]
    fn a_type_error_names_file_line_and_key_in_the_same_format() {
        let err = parse("[lanes]\nmain = \"eight\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/etc/x/config.toml:2: lanes.main: expected a whole number, got \"eight\""
        );
    }

    #[test]
    fn exec_without_command_names_the_key_and_line() {
        let err = parse("\n[agents.w]\nbackend = \"exec\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/x/config.toml:2: agents.w.command:"),
            "{err}"
        );
    }

    #[test]
    fn bad_socket_mode_is_refused() {
        let err = parse("[socket]\nmode = \"rw\"\n").unwrap_err().to_string();
        assert!(err.contains(":2: socket.mode"), "{err}");
        assert_eq!(
            parse("[socket]\nmode = \"0660\"\n").unwrap().socket_mode(),
            0o660
        );
    }

    #[test]
    fn subagent_and_session_settings_parse_in_either_case() {
        let c = parse(
            "[subagents]\nmaxDepth = 2\narchive_after_minutes = 5\n[session]\nvisibility = \"self\"\n[session.sendPolicy]\ndefault = \"deny\"\n[[session.sendPolicy.rules]]\nname = \"cron ok\"\naction = \"allow\"\nkeyPrefix = \"cron:\"\n",
        )
        .unwrap();
        assert_eq!(c.subagents.max_depth, 2);
        assert_eq!(c.subagents.archive_after_minutes, 5);
        assert_eq!(c.session.visibility, Visibility::Own);
        let policy = &c.session.send_policy;
        assert_eq!(
            policy.decide("cron:x", "cron", "main"),
            (PolicyAction::Allow, "send policy rule \"cron ok\"".into())
        );
        assert_eq!(
            policy.decide("agent:main:main", "main", "main").0,
            PolicyAction::Deny
        );
    }

    #[test]
    fn send_rules_match_on_every_given_field_in_order() {
        let policy = SendPolicyConfig {
            default: PolicyAction::Allow,
            rules: vec![
                SendRule {
                    name: None,
                    action: PolicyAction::Deny,
                    key_prefix: Some("agent:main:".into()),
                    kind: Some("main".into()),
                    agent_id: None,
                },
                SendRule {
                    name: Some("workers".into()),
                    action: PolicyAction::Deny,
                    key_prefix: None,
                    kind: None,
                    agent_id: Some("worker".into()),
                },
            ],
        };
        assert_eq!(
            policy.decide("agent:main:main", "main", "main"),
            (PolicyAction::Deny, "send policy rule \"rule 1\"".into())
        );
        assert_eq!(
            policy.decide("agent:main:subagent:1", "subagent", "main").0,
            PolicyAction::Allow
        );
        assert_eq!(
            policy.decide("agent:worker:main", "main", "worker"),
            (PolicyAction::Deny, "send policy rule \"workers\"".into())
        );
    }

    #[test]
    fn acp_agent_parses_with_defaults_and_overrides() {
        let c = parse(
            "[agents.vibe]\nbackend = \"acp\"\ncommand = [\"vibe-acp\"]\nenv = { VIBE_HOME = \"/h\" }\n\n[agents.codex]\nbackend = \"acp\"\ncommand = [\"codex-acp\", \"--x\"]\npermissions = \"deny-all\"\nidle_timeout_seconds = 5\ninitialize_timeout_ms = 1500\n",
        )
        .unwrap();
        let vibe = c.agent("vibe").unwrap();
        assert_eq!(vibe.backend, BackendKind::Acp);
        assert_eq!(vibe.backend.as_str(), "acp");
        assert_eq!(vibe.env.get("VIBE_HOME").map(String::as_str), Some("/h"));
        assert_eq!(vibe.acp_permissions(), AcpPermissions::ApproveReads);
        assert_eq!(vibe.acp_idle_timeout().as_secs(), 600);
        assert_eq!(
            vibe.acp_initialize_timeout().as_millis(),
            u128::from(DEFAULT_ACP_INITIALIZE_TIMEOUT_MS)
        );
        let codex = c.agent("codex").unwrap();
        assert_eq!(codex.acp_permissions(), AcpPermissions::DenyAll);
        assert_eq!(codex.acp_idle_timeout().as_secs(), 5);
        assert_eq!(codex.acp_initialize_timeout().as_millis(), 1500);
        for (text, policy) in [
            ("approve-all", AcpPermissions::ApproveAll),
            ("approve-reads", AcpPermissions::ApproveReads),
        ] {
            let c = parse(&format!(
                "[agents.a]\nbackend = \"acp\"\ncommand = [\"a\"]\npermissions = \"{text}\"\n"
            ))
            .unwrap();
            assert_eq!(c.agent("a").unwrap().acp_permissions(), policy);
            assert_eq!(policy.as_str(), text);
        }
    }

    #[test]
    fn acp_errors_name_file_line_and_key() {
        let err = parse("[agents.v]\nbackend = \"acp\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/x/config.toml:1: agents.v.command:"),
            "{err}"
        );
        let err =
            parse("[agents.v]\nbackend = \"acp\"\ncommand = [\"a\"]\nidle_timeout_seconds = 0\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("/etc/x/config.toml:4: agents.v.idle_timeout_seconds:"),
            "{err}"
        );
        let err =
            parse("[agents.v]\nbackend = \"acp\"\ncommand = [\"a\"]\npermissions = \"maybe\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains(":4: agents.v.permissions:") && err.contains("maybe"),
            "{err}"
        );
        let err = parse("[agents.v]\nbackend = \"acp\"\ncommand = [\"a\"]\nformat = \"jsonl\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/x/config.toml:4: agents.v.format:"),
            "{err}"
        );
    }

    #[test]
    fn acp_keys_on_another_backend_are_refused() {
        let err = parse(
            "[agents.w]\nbackend = \"exec\"\ncommand = [\"cat\"]\npermissions = \"approve-all\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/etc/x/config.toml:4: agents.w.permissions:") && err.contains("exec"),
            "{err}"
        );
    }

    #[test]
    fn default_agent_must_exist() {
        let err = parse("default_agent = \"nope\"\n").unwrap_err().to_string();
        assert!(err.contains(":1: default_agent"), "{err}");
    }

    #[test]
    fn http_and_hooks_parse_and_are_checked() {
        let c = parse(
            "[http]\nlisten = \"127.0.0.1:7788\"\nallow_origins = [\"https://dash.example.com\"]\n[hooks.github]\nsecret_env = \"GH_SECRET\"\ntask = \"Triage:\\n{{body}}\"\n",
        )
        .unwrap();
        assert_eq!(
            c.http.listen_addr(),
            Some("127.0.0.1:7788".parse().unwrap())
        );
        assert_eq!(c.hooks["github"].secret_env.as_deref(), Some("GH_SECRET"));
        assert!(c.hooks["github"].agent.is_none());

        let err = parse("[http]\nlisten = \"0.0.0.0:7788\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2: http.listen") && err.contains("allow_remote = true"),
            "{err}"
        );
        assert!(parse("[http]\nlisten = \"0.0.0.0:7788\"\nallow_remote = true\n").is_ok());
        let err = parse("[hooks.gh]\ntask = \"{{bodyy}}\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hooks.gh.task") && err.contains("{{bodyy}}"),
            "{err}"
        );
        let err = parse("[hooks.gh]\nagent = \"nope\"\ntask = \"t\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: hooks.gh.agent"), "{err}");
        assert!(
            parse("[http]\nlistn = \"x\"\n").is_err(),
            "unknown keys are errors"
        );
    }
}
