//! The session tools: what a model (the `openai` backend) or an MCP client (`openclaw mcp`)
//! is offered to list, read, message, spawn and wait for sessions. One definition serves both,
//! so the two can never drift apart.
//!
//! Schemas are built per agent from a [`ToolScope`] (report 004's fix): `sessions_spawn`
//! shows only what applies to the native runtimes, with `agentId` limited to the agents the
//! caller may target; the ACP-only fields live in a separate `sessions_spawn_acp` that exists
//! only when an ACP agent is allowed. A model may still send fields the schema never showed;
//! [`parse_tool_call`] drops them and reports them as `ignoredFields` instead of failing the
//! call, and turns what cannot be used into an error value the model can read and act on.

use serde_json::{Value, json};

use crate::protocol::{
    HistoryParams, ListParams, RpcError, SendParams, SpawnParams, WaitParams, codes,
};

mod parse;
mod schema;
#[cfg(test)]
mod tests;

use parse::{parse_with, with_ignored_fields};
use schema::object_schema;

pub const SESSIONS_LIST: &str = "sessions_list";
pub const SESSIONS_HISTORY: &str = "sessions_history";
pub const SESSIONS_SEND: &str = "sessions_send";
pub const SESSIONS_SPAWN: &str = "sessions_spawn";
pub const SESSIONS_SPAWN_ACP: &str = "sessions_spawn_acp";
pub const SESSIONS_WAIT: &str = "sessions_wait";

/// Every session tool, in the order they are offered.
pub const SESSION_TOOL_NAMES: [&str; 6] = [
    SESSIONS_LIST,
    SESSIONS_HISTORY,
    SESSIONS_SEND,
    SESSIONS_SPAWN,
    SESSIONS_SPAWN_ACP,
    SESSIONS_WAIT,
];

/// How an agent runs, as far as spawning it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRuntime {
    /// Run by openclawd itself (`echo`, `exec`, `openai`): spawned with `sessions_spawn`.
    Native,
    /// An Agent Client Protocol agent: spawned with `sessions_spawn_acp`.
    Acp,
}

/// What one caller may do, from which its tools and their schemas are built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolScope {
    /// The agents a spawn may target, with their runtime. The first native one is used when a
    /// `sessions_spawn` call names no agent (put the caller's own agent first), the first ACP
    /// one likewise for `sessions_spawn_acp`.
    pub allowed_agents: Vec<(String, AgentRuntime)>,
    /// Whether spawning is allowed at all (e.g. not at the sub-agent depth limit).
    pub can_spawn: bool,
    /// Build OpenAI's `strict: true` form: every property required, optional ones nullable.
    pub strict: bool,
    /// The agent's `tools = [...]`: only these tools, when given.
    pub enabled: Option<Vec<String>>,
}

/// One tool as offered: its name, what it is for, and the JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: &'static str,
    pub description: String,
    pub input_schema: Value,
    /// The schema is in strict form (see [`ToolScope::strict`]).
    pub strict: bool,
}

impl ToolDefinition {
    /// The Chat Completions `tools[]` entry.
    pub fn openai_tool(&self) -> Value {
        let mut function = json!({
            "name": self.name,
            "description": self.description,
            "parameters": self.input_schema,
        });
        if self.strict {
            function["strict"] = Value::Bool(true);
        }
        json!({ "type": "function", "function": function })
    }

    /// The MCP `tools/list` entry.
    pub fn mcp_tool(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        })
    }
}

/// The tools `scope` gets, with schemas built for it.
pub fn session_tools(scope: &ToolScope) -> Vec<ToolDefinition> {
    offered(scope)
        .into_iter()
        .map(|tool| ToolDefinition {
            name: tool.name(),
            description: tool.description(scope),
            input_schema: object_schema(&tool.fields(), scope),
            strict: scope.strict,
        })
        .collect()
}

/// A session tool call with its arguments parsed into the protocol's params.
#[derive(Debug, Clone)]
pub enum SessionToolCall {
    List(ListParams),
    History(HistoryParams),
    Send(SendParams),
    /// `sessions_spawn` (runtime absent) or `sessions_spawn_acp` (runtime `acp`).
    Spawn(Box<SpawnParams>),
    Wait(WaitParams),
}

#[derive(Debug, Clone)]
pub struct ParsedToolCall {
    pub call: SessionToolCall,
    /// Argument names the tool does not take for this caller: dropped, to be reported.
    pub ignored_fields: Vec<String>,
}

impl ParsedToolCall {
    /// The tool result for a successful call: `result` with this call's `ignoredFields`
    /// merged into any the service reported.
    pub fn result_value(&self, result: Value) -> Value {
        with_ignored_fields(result, &self.ignored_fields)
    }

    /// The tool result for a failed call, still saying what was ignored.
    pub fn error_value(&self, error: &ToolError) -> Value {
        with_ignored_fields(error.to_value(), &self.ignored_fields)
    }
}

/// A tool call that cannot be carried out, as the model sees it:
/// `{"error": {"kind": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ToolError {
    /// `invalid_params`, `unknown_tool`, or a protocol error kind (`not_found`, `forbidden`…).
    pub kind: String,
    pub message: String,
}

impl ToolError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ToolError {
        ToolError {
            kind: kind.into(),
            message: message.into(),
        }
    }

    pub fn invalid_params(message: impl Into<String>) -> ToolError {
        ToolError::new("invalid_params", message)
    }

    /// A service error as a tool error: its kind, or `invalid_params` / `internal` by code.
    pub fn from_rpc(e: &RpcError) -> ToolError {
        let kind = match e.kind() {
            Some(kind) => kind.as_str().to_string(),
            None if e.code == codes::INVALID_PARAMS => "invalid_params".into(),
            None => e
                .data
                .as_ref()
                .and_then(|d| d.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or("internal")
                .to_string(),
        };
        ToolError::new(kind, e.message.clone())
    }

    pub fn to_value(&self) -> Value {
        json!({ "error": { "kind": self.kind, "message": self.message } })
    }
}

/// Parses a model's tool call: `arguments` is the JSON text it produced (possibly empty,
/// possibly broken).
pub fn parse_tool_call(
    scope: &ToolScope,
    name: &str,
    arguments: &str,
) -> Result<ParsedToolCall, ToolError> {
    let tool = find_offered(scope, name)?;
    let text = arguments.trim();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).map_err(|e| {
            ToolError::invalid_params(format!(
                "the arguments of {name} are not valid JSON ({e}); send one JSON object, e.g. {}",
                tool.example()
            ))
        })?
    };
    parse_with(scope, tool, value)
}

/// Like [`parse_tool_call`], for arguments that arrive as JSON already (MCP `tools/call`).
pub fn parse_tool_arguments(
    scope: &ToolScope,
    name: &str,
    arguments: Value,
) -> Result<ParsedToolCall, ToolError> {
    let tool = find_offered(scope, name)?;
    parse_with(scope, tool, arguments)
}

// ---------------------------------------------------------------- the tools

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    List,
    History,
    Send,
    Spawn,
    SpawnAcp,
    Wait,
}

const SESSION_KINDS: &[&str] = &["main", "subagent", "cron", "hook", "other"];
const THINKING_LEVELS: &[&str] = &["minimal", "low", "medium", "high"];

/// What a field holds; drives both its schema and how a call's value is checked.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Number {
        min: f64,
    },
    Integer {
        min: u64,
    },
    Bool,
    Choice(&'static [&'static str]),
    /// An agent of this runtime among the scope's allowed agents.
    Agent(AgentRuntime),
    Texts(&'static [&'static str]),
    Attachments,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
    doc: &'static str,
}

const fn field(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        doc,
    }
}

const fn required(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        doc,
    }
}

const SESSION_KEY_DOC: &str = "The session's key, as sessions_list or sessions_spawn returned it (e.g. agent:main:subagent:…).";
const TASK_DOC: &str = "What the new session should do: its first message, complete on its own (the new session sees nothing of your conversation).";
const LABEL_DOC: &str = "A short human-readable name for the new session.";
const RUN_TIMEOUT_DOC: &str = "Abort the new session's run after this many seconds.";
const MODE_DOC: &str = "run (default): one run, then the session stays readable; session: a session meant to receive further sessions_send messages.";
const CLEANUP_DOC: &str =
    "keep (default) or delete: delete removes the session once its result has been announced.";
const ATTACHMENTS_DOC: &str = "Files written into the new session's workspace before it starts.";

impl Tool {
    const ALL: [Tool; 6] = [
        Tool::List,
        Tool::History,
        Tool::Send,
        Tool::Spawn,
        Tool::SpawnAcp,
        Tool::Wait,
    ];

    fn name(self) -> &'static str {
        match self {
            Tool::List => SESSIONS_LIST,
            Tool::History => SESSIONS_HISTORY,
            Tool::Send => SESSIONS_SEND,
            Tool::Spawn => SESSIONS_SPAWN,
            Tool::SpawnAcp => SESSIONS_SPAWN_ACP,
            Tool::Wait => SESSIONS_WAIT,
        }
    }

    fn runtime(self) -> Option<AgentRuntime> {
        match self {
            Tool::Spawn => Some(AgentRuntime::Native),
            Tool::SpawnAcp => Some(AgentRuntime::Acp),
            _ => None,
        }
    }

    fn fields(self) -> Vec<Field> {
        use Kind::*;
        match self {
            Tool::List => vec![
                field(
                    "kinds",
                    Texts(SESSION_KINDS),
                    "Only sessions of these kinds.",
                ),
                field(
                    "limit",
                    Integer { min: 1 },
                    "At most this many sessions, most recently active first.",
                ),
                field(
                    "cursor",
                    Text,
                    "The nextCursor of a previous page, to get the next one.",
                ),
                field(
                    "activeMinutes",
                    Integer { min: 1 },
                    "Only sessions active within this many minutes.",
                ),
                field(
                    "messageLimit",
                    Integer { min: 0 },
                    "Also return each session's last N messages.",
                ),
                field("parentKey", Text, "Only the sessions this session spawned."),
                field(
                    "includeArchived",
                    Bool,
                    "Also list archived sessions (sub-agents archive an hour after their last run).",
                ),
            ],
            Tool::History => vec![
                required("sessionKey", Text, SESSION_KEY_DOC),
                field(
                    "limit",
                    Integer { min: 1 },
                    "At most this many messages: the newest ones, returned oldest first.",
                ),
                field(
                    "cursor",
                    Text,
                    "The nextCursor of a previous page, to get older messages.",
                ),
                field(
                    "includeTools",
                    Bool,
                    "Also return tool_call and tool_result messages.",
                ),
            ],
            Tool::Send => vec![
                required("sessionKey", Text, SESSION_KEY_DOC),
                required("message", Text, "The message to send."),
                field(
                    "timeoutSeconds",
                    Number { min: 0.0 },
                    "How long to wait for the reply (default 30); 0 returns at once with a runId to pass to sessions_wait.",
                ),
            ],
            Tool::Spawn => vec![
                required("task", Text, TASK_DOC),
                field(
                    "agentId",
                    Agent(AgentRuntime::Native),
                    "The agent to run the new session.",
                ),
                field("label", Text, LABEL_DOC),
                field(
                    "model",
                    Text,
                    "A model for the new session instead of its agent's configured one.",
                ),
                field(
                    "thinking",
                    Choice(THINKING_LEVELS),
                    "Reasoning effort, for models that support it.",
                ),
                field("runTimeoutSeconds", Number { min: 1.0 }, RUN_TIMEOUT_DOC),
                field("mode", Choice(&["run", "session"]), MODE_DOC),
                field("cleanup", Choice(&["keep", "delete"]), CLEANUP_DOC),
                field("attachments", Attachments, ATTACHMENTS_DOC),
            ],
            Tool::SpawnAcp => vec![
                required("task", Text, TASK_DOC),
                field(
                    "agentId",
                    Agent(AgentRuntime::Acp),
                    "The ACP agent to run the new session.",
                ),
                field("label", Text, LABEL_DOC),
                field("runTimeoutSeconds", Number { min: 1.0 }, RUN_TIMEOUT_DOC),
                field("mode", Choice(&["run", "session"]), MODE_DOC),
                field("cleanup", Choice(&["keep", "delete"]), CLEANUP_DOC),
                field(
                    "streamTo",
                    Choice(&["parent"]),
                    "parent: relay the new session's progress to your session's followers as it happens.",
                ),
                field(
                    "resumeSessionId",
                    Text,
                    "Resume this earlier ACP session of the agent instead of starting a new one.",
                ),
                field("attachments", Attachments, ATTACHMENTS_DOC),
            ],
            Tool::Wait => vec![
                field(
                    "runId",
                    Text,
                    "The run to wait for (sessions_spawn and sessions_send return it).",
                ),
                field(
                    "sessionKey",
                    Text,
                    "Or: wait for this session's current run (or get its last one).",
                ),
                field(
                    "timeoutSeconds",
                    Number { min: 0.0 },
                    "How long to wait (default 30). When it runs out the result says timeout and the run goes on: wait again later.",
                ),
            ],
        }
    }

    fn description(self, scope: &ToolScope) -> String {
        match self {
            Tool::List => "List the sessions you can see (by default yourself and the sessions you spawned): key, agent, status, label and last message. Pass a session's key to sessions_history, sessions_send or sessions_wait.".into(),
            Tool::History => "Read a session's transcript: its messages oldest first (user, assistant, announce, and with includeTools the tool calls and results). Use it to see what a session you spawned did.".into(),
            Tool::Send => "Send a message to another session and wait for its reply (up to timeoutSeconds). The result has status ok with the reply, error, or timeout (the session is still working: call sessions_wait with the runId).".into(),
            Tool::Spawn => format!(
                "Start a new sub-agent session on a task, in the background. Returns at once with its sessionKey and runId; when its run ends, a message with its status and result arrives in your session. Call sessions_wait with the runId to wait for it now. Agents you may use: {}.",
                agent_list(scope, AgentRuntime::Native)
            ),
            Tool::SpawnAcp => format!(
                "Start a new session on an ACP (Agent Client Protocol) coding agent, in the background. Returns at once with its sessionKey and runId; its result is announced to your session when it ends. ACP agents you may use: {}.",
                agent_list(scope, AgentRuntime::Acp)
            ),
            Tool::Wait => "Wait for a run to end, named by runId or by sessionKey (that session's current run). Returns its status (ok or error) and its reply, or timeout if it is still running when timeoutSeconds pass.".into(),
        }
    }

    /// A minimal valid call, quoted in error messages so the model can copy its shape.
    fn example(self) -> &'static str {
        match self {
            Tool::List => "{}",
            Tool::History => r#"{"sessionKey": "agent:main:subagent:…"}"#,
            Tool::Send => r#"{"sessionKey": "agent:main:subagent:…", "message": "…"}"#,
            Tool::Spawn | Tool::SpawnAcp => r#"{"task": "…"}"#,
            Tool::Wait => r#"{"runId": "…"}"#,
        }
    }
}

fn agent_list(scope: &ToolScope, runtime: AgentRuntime) -> String {
    agents_of(scope, runtime).join(", ")
}

fn agents_of(scope: &ToolScope, runtime: AgentRuntime) -> Vec<&str> {
    scope
        .allowed_agents
        .iter()
        .filter(|(_, r)| *r == runtime)
        .map(|(id, _)| id.as_str())
        .collect()
}

fn offered(scope: &ToolScope) -> Vec<Tool> {
    Tool::ALL
        .into_iter()
        .filter(|tool| match tool.runtime() {
            Some(runtime) => scope.can_spawn && !agents_of(scope, runtime).is_empty(),
            None => true,
        })
        .filter(|tool| {
            scope
                .enabled
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == tool.name()))
        })
        .collect()
}

fn find_offered(scope: &ToolScope, name: &str) -> Result<Tool, ToolError> {
    let tools = offered(scope);
    if let Some(tool) = tools.iter().copied().find(|t| t.name() == name) {
        return Ok(tool);
    }
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    let hint = if name == SESSIONS_SPAWN_ACP || name == SESSIONS_SPAWN {
        " (spawning is not allowed here, or no agent of that kind may be used)"
    } else {
        ""
    };
    Err(ToolError::new(
        "unknown_tool",
        format!(
            "there is no tool \"{name}\"{hint}; the session tools you have are: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    ))
}
