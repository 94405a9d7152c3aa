//! Params and results of every method. Params reject unknown fields (naming the field), so a
//! typo never silently does nothing; results are open for additions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------- hello

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelloParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A run's token (`OPENCLAW_RUN_TOKEN`): this connection then acts as that run's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub uid: Option<u32>,
    pub pid: Option<u32>,
    pub trusted: bool,
    pub scopes: Vec<String>,
    /// The session this connection acts as, once a run token was presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<ActingAs>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActingAs {
    pub session_key: String,
    pub run_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloResult {
    pub daemon_version: String,
    pub protocol_version: u32,
    pub daemon_id: String,
    pub peer: PeerInfo,
}

// ---------------------------------------------------------------- spawn

// The enums a command line also takes implement `clap::ValueEnum` with the `cli` feature:
// the flag's values are the wire's (clap's kebab-case of a one-word variant is its lowercase
// name, as serde's), and the `value(help)` texts are what `--help` and the man page show.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SpawnMode {
    /// One run, then the session stays (or is deleted with `cleanup: delete`).
    #[default]
    #[cfg_attr(feature = "cli", value(help = "One run (the default)"))]
    Run,
    /// A session meant to receive further sends.
    #[cfg_attr(
        feature = "cli",
        value(help = "A session meant to receive further sends")
    )]
    Session,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Cleanup {
    #[default]
    #[cfg_attr(
        feature = "cli",
        value(help = "Keep the session after its run (the default)")
    )]
    Keep,
    #[cfg_attr(
        feature = "cli",
        value(help = "Delete the session once its run has ended and been announced")
    )]
    Delete,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    #[default]
    #[cfg_attr(
        feature = "cli",
        value(help = "The session's agent backend (the default)")
    )]
    Subagent,
    #[cfg_attr(feature = "cli", value(help = "An ACP agent (Agent Client Protocol)"))]
    Acp,
}

/// A file handed to the session: written into its workspace before the first run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attachment {
    pub name: String,
    pub content: String,
    /// `utf8` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpawnParams {
    pub task: String,
    /// Name the session (`cron:NAME`, `hook:NAME`): its kind and lane come from the prefix,
    /// and a later spawn or send with the same key goes to the same session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_timeout_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SpawnMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Cleanup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_key: Option<String>,
    /// ACP only: dropped (and reported in `ignoredFields`) for other runtimes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_to: Option<Value>,
    /// ACP only: dropped (and reported in `ignoredFields`) for other runtimes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_session_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Where an attachment was put: `path` is relative to the session's workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentReceipt {
    pub name: String,
    pub path: String,
    pub bytes: u64,
    /// Hex SHA-256 of the bytes written.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnResult {
    /// Always `accepted`: spawn never waits for the run.
    pub status: String,
    pub session_key: String,
    pub session_id: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentReceipt>,
}

// ---------------------------------------------------------------- send / wait

/// Default wait of `sessions.send` and `runs.wait`, in seconds.
pub const DEFAULT_WAIT_SECONDS: f64 = 30.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendParams {
    pub session_key: String,
    pub message: String,
    /// How long to wait for the reply; 0 returns at once with `accepted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_progress: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitParams {
    /// The run to wait for; or give `sessionKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Wait for this session's active run (or report its last one) instead of naming a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

/// Where a run is in its life. The last five are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Ok,
    Error,
    Timeout,
    Aborted,
    Interrupted,
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
            RunStatus::Aborted => "aborted",
            RunStatus::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "ok" => RunStatus::Ok,
            "error" => RunStatus::Error,
            "timeout" => RunStatus::Timeout,
            "aborted" => RunStatus::Aborted,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }
}

/// What a waiter learns: `accepted` (did not wait), `ok`, `error` (the run ended in any other
/// way; `runStatus` says which), or `timeout` (the *wait* ended; the run goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitStatus {
    Accepted,
    Ok,
    Error,
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub run_id: String,
    pub session_key: String,
    pub status: WaitStatus,
    pub run_status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// ---------------------------------------------------------------- history

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryParams {
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From a previous page's `nextCursor`: continue with older messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_tools: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    ToolCall,
    ToolResult,
    System,
    Announce,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::ToolCall => "tool_call",
            Role::ToolResult => "tool_result",
            Role::System => "system",
            Role::Announce => "announce",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool_call" => Role::ToolCall,
            "tool_result" => Role::ToolResult,
            "system" => Role::System,
            "announce" => Role::Announce,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvenanceKind {
    Operator,
    SpawnTask,
    InterSession,
    Announce,
    /// Produced by the session's own agent (replies, tool calls).
    Agent,
}

impl ProvenanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProvenanceKind::Operator => "operator",
            ProvenanceKind::SpawnTask => "spawn_task",
            ProvenanceKind::InterSession => "inter_session",
            ProvenanceKind::Announce => "announce",
            ProvenanceKind::Agent => "agent",
        }
    }
    pub fn parse(s: &str) -> Option<ProvenanceKind> {
        Some(match s {
            "operator" => ProvenanceKind::Operator,
            "spawn_task" => ProvenanceKind::SpawnTask,
            "inter_session" => ProvenanceKind::InterSession,
            "announce" => ProvenanceKind::Announce,
            "agent" => ProvenanceKind::Agent,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub kind: ProvenanceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub ts: String,
    pub role: Role,
    /// A string, or an array of typed blocks where a backend gives them.
    pub content: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub provenance: Provenance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    /// Set when `content` was cut to fit a reply's byte budget; `sessions.message` reads the
    /// whole message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// With `truncated`: the size in bytes of the whole content (as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryResult {
    pub session_key: String,
    pub session_id: String,
    /// Oldest first.
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// `sessions.message`: one message, whole, read in chunks (for one too large for a page).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageParams {
    pub session_key: String,
    pub seq: u64,
    /// Byte offset into the content's text (a string content) or its JSON (blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Bytes to return at most (capped by the daemon's reply budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageChunkResult {
    pub session_key: String,
    /// The message with `content` replaced by this chunk (a string).
    pub message: Message,
    /// `text` when the content is a string (the chunk is part of it), `json` when the
    /// content is an array of blocks (the chunk is part of its JSON text).
    pub encoding: String,
    pub offset: u64,
    pub total_bytes: u64,
    pub has_more: bool,
}

// ---------------------------------------------------------------- list

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_archived: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRow {
    pub key: String,
    pub session_id: String,
    pub agent_id: String,
    pub kind: String,
    pub label: Option<String>,
    pub parent_key: Option<String>,
    /// `idle` (no run yet), `queued`, `running`, or the last run's final status.
    pub status: String,
    pub active_run_id: Option<String>,
    pub model: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub runtime_ms: Option<u64>,
    pub tokens: Option<u64>,
    pub message_count: u64,
    pub last_message_preview: Option<String>,
    pub archived: bool,
    pub send_policy: Option<String>,
    /// 0 for a session nobody spawned, 1 for a child, 2 for a grandchild...
    #[serde(default)]
    pub spawn_depth: u32,
    /// Sessions this one spawned (direct children).
    #[serde(default)]
    pub children: u64,
    /// An ACP session's id at its agent (what `resumeSessionId` takes to pick it up in
    /// another session); absent for other backends and before the agent first started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResult {
    pub sessions: Vec<SessionRow>,
    pub next_cursor: Option<String>,
    /// With more pages (`nextCursor`): how many sessions match in all, counted up to a cap
    /// so a huge store costs no more than a small one; see `totalIsLowerBound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// `total` hit the cap: at least that many match.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub total_is_lower_bound: bool,
}

/// `sessions.get`: one session's row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetParams {
    pub session_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetResult {
    pub session: SessionRow,
}

// ---------------------------------------------------------------- kill / patch / delete

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KillParams {
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_queued: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillResult {
    pub session_key: String,
    /// The run that was active and is now `aborted`, if there was one.
    pub aborted_run_id: Option<String>,
    /// Queued runs aborted too (with `clearQueued`).
    #[serde(default)]
    pub cleared_run_ids: Vec<String>,
    /// `aborted` when a run was stopped, `idle` when there was nothing to stop.
    pub status: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchParams {
    pub session_key: String,
    /// A new label; an empty string clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `allow`, `deny` or `inherit` ([`SendPolicy::as_str`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// The model this session's agent uses from its next run; an empty string goes back to
    /// the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A session's own send policy, overriding the configured rules (`sessions.patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SendPolicy {
    #[cfg_attr(feature = "cli", value(help = "Accept sends whatever the rules say"))]
    Allow,
    #[cfg_attr(feature = "cli", value(help = "Refuse sends whatever the rules say"))]
    Deny,
    #[cfg_attr(
        feature = "cli",
        value(help = "Follow the configured rules (remove the override)")
    )]
    Inherit,
}

impl SendPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SendPolicy::Allow => "allow",
            SendPolicy::Deny => "deny",
            SendPolicy::Inherit => "inherit",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteParams {
    pub session_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResult {
    pub session_key: String,
    pub session_id: String,
    pub deleted: bool,
}

// ---------------------------------------------------------------- agents / daemon

/// For methods that take no params: `{}` or absent, nothing else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub id: String,
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    pub is_default: bool,
    /// `openai`: the endpoint it talks to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The model it uses (`openai`: absent means the first of `GET /models`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentsListResult {
    pub default_agent: String,
    pub agents: Vec<AgentInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneStatus {
    pub name: String,
    pub cap: u32,
    pub active: u32,
    pub queued: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    pub pid: u32,
    pub version: String,
    pub protocol_version: u32,
    pub daemon_id: String,
    pub started_at: String,
    pub uptime_ms: u64,
    pub socket: String,
    pub data_dir: String,
    pub config_file: String,
    pub connections: u32,
    pub lanes: Vec<LaneStatus>,
    /// Runs found active at start-up and marked `interrupted`.
    pub interrupted_at_startup: u64,
    /// Store transactions committed since start-up.
    pub store_commits: u64,
    /// Changes those transactions applied (several per commit under load: group commit).
    pub store_changes: u64,
    /// Live subscriptions, over all connections.
    #[serde(default)]
    pub subscriptions: u64,
    /// Replies and notifications queued for clients and not yet written, over all
    /// connections. Bounded per connection: a client that stops reading holds back its own
    /// subscriptions (they catch up from the store later), never the daemon's memory.
    #[serde(default)]
    pub buffered_notifications: u64,
    /// How this daemon was started: `autostart` (by an openclaw command), `foreground`
    /// (`openclaw daemon run` / by hand), `systemd` (socket activation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    /// The daemon's log file, when it writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// When `config.toml` was last loaded (start-up or reload), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_loaded_at: Option<String>,
    /// Where the HTTP surface listens on TCP, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// Log lines lost since start-up: not written (e.g. a full disk under the log) or
    /// dropped because the log could not keep up.
    #[serde(default)]
    pub log_lines_lost: u64,
    /// Connections of other users that have not proven a paired device (or a run token).
    #[serde(default)]
    pub unauthenticated: UnauthenticatedStatus,
}

/// What connections not yet trusted or authenticated hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnauthenticatedStatus {
    /// Open now.
    pub connections: u32,
    /// The most requests one such connection had in flight at once since start-up (they are
    /// served one at a time: 1 once any was served).
    pub in_flight_peak: u64,
}

/// `daemon.shutdown`: stop now (runs are interrupted), or with `drain` stop taking work and
/// wait for the running runs first (up to `timeoutSeconds`, then interrupt what is left).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShutdownParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownResult {
    pub stopping: bool,
    /// Runs executing when the stop was asked for: interrupted now, or (with `drain`)
    /// waited for.
    #[serde(default)]
    pub active_runs: u32,
    /// Runs queued and not started: they stay queued for the next start.
    #[serde(default)]
    pub queued_runs: u32,
}

/// `daemon.reload`: `config.toml` read again; what changed (new runs use it, running ones
/// keep theirs). A bad file is an error and the old config stays in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadResult {
    pub config_file: String,
    /// One line per change, e.g. `agents.worker: added`.
    pub changed: Vec<String>,
}

/// `http.token`: the bearer token of the HTTP surface (created on first use).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTokenParams {
    /// Replace the token: the old one stops working at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTokenResult {
    pub token: String,
    /// The file that holds it (0600).
    pub path: String,
    /// Where HTTP listens on TCP, when `[http] listen` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_param_is_rejected_by_name() {
        let err = serde_json::from_value::<SendParams>(serde_json::json!({
            "sessionKey": "k", "message": "m", "tiemout": 3
        }))
        .unwrap_err();
        assert!(err.to_string().contains("tiemout"), "{err}");
    }

    #[test]
    fn spawn_accepts_acp_fields_so_the_handler_can_drop_them() {
        let p: SpawnParams = serde_json::from_value(serde_json::json!({
            "task": "t", "streamTo": "parent", "resumeSessionId": "x"
        }))
        .unwrap();
        assert!(p.stream_to.is_some() && p.resume_session_id.is_some());
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = serde_json::from_value::<SpawnParams>(serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("task"), "{err}");
    }

    #[test]
    fn run_status_strings_round_trip() {
        for s in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Ok,
            RunStatus::Error,
            RunStatus::Timeout,
            RunStatus::Aborted,
            RunStatus::Interrupted,
        ] {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
