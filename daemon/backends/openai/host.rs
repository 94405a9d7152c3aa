//! What the agent loop needs from whoever runs it (the engine): somewhere to report progress
//! and record transcript messages, and a way to execute tools. The loop holds no policy: a
//! session tool call goes to the host, which runs it through the session service as the run.

use std::future::Future;

use crate::protocol::Role;
use serde_json::{Value, json};

/// Token counts as the server reported them; absent when it sent none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        self.prompt_tokens.is_none()
            && self.completion_tokens.is_none()
            && self.total_tokens.is_none()
    }

    /// The total, or prompt + completion when the server left the total out.
    pub fn total(&self) -> Option<u64> {
        self.total_tokens
            .or(match (self.prompt_tokens, self.completion_tokens) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
            })
    }

    /// Adds another response's counts (a turn of several rounds costs their sum).
    pub fn add(&mut self, other: &Usage) {
        let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        let total = sum(self.total(), other.total());
        self.prompt_tokens = sum(self.prompt_tokens, other.prompt_tokens);
        self.completion_tokens = sum(self.completion_tokens, other.completion_tokens);
        self.total_tokens = total;
    }

    /// As stored on a run and a message: `{promptTokens, completionTokens, totalTokens}`.
    pub fn to_json(self) -> Value {
        let mut v = json!({});
        if let Some(p) = self.prompt_tokens {
            v["promptTokens"] = json!(p);
        }
        if let Some(c) = self.completion_tokens {
            v["completionTokens"] = json!(c);
        }
        if let Some(t) = self.total() {
            v["totalTokens"] = json!(t);
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolStatus {
    Ok,
    /// The result is an `{"error": ...}` value (the run goes on regardless).
    Error,
}

impl ToolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolStatus::Ok => "ok",
            ToolStatus::Error => "error",
        }
    }

    pub fn of(output: &Value) -> ToolStatus {
        if output.get("error").is_some_and(|e| !e.is_null()) {
            ToolStatus::Error
        } else {
            ToolStatus::Ok
        }
    }
}

/// A `tool` run event.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolEvent {
    Start {
        id: String,
        name: String,
        input: Value,
    },
    End {
        id: String,
        name: String,
        output: Value,
        status: ToolStatus,
    },
}

impl ToolEvent {
    /// The run event's data, in the shape `exec`'s jsonl tools use.
    pub fn to_json(&self) -> Value {
        match self {
            ToolEvent::Start { id, name, input } => {
                json!({ "phase": "start", "id": id, "name": name, "input": input })
            }
            ToolEvent::End {
                id,
                name,
                output,
                status,
            } => {
                json!({ "phase": "end", "id": id, "name": name, "output": output, "status": status.as_str() })
            }
        }
    }
}

/// A message the loop asks the host to append to the session's transcript (as the run,
/// provenance `agent`). The final reply is not one of them: it is the turn's result.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscriptEntry {
    /// Text the model wrote in a round that also called tools.
    AssistantText(String),
    /// Content `{"id", "name", "input"}`: `input` is the parsed arguments object; when the
    /// model's arguments were not a JSON object, `input` is null and `rawArguments` holds
    /// the text as sent.
    ToolCall(Value),
    /// Content `{"id", "name", "output", "status"}`: `output` is the JSON given back to the
    /// model (`{"error": {...}}` for a failure), `status` `ok` or `error`.
    ToolResult(Value),
    /// A note from openclaw, e.g. that `max_tool_rounds` was reached.
    Note(String),
}

impl TranscriptEntry {
    pub fn role(&self) -> Role {
        match self {
            TranscriptEntry::AssistantText(_) => Role::Assistant,
            TranscriptEntry::ToolCall(_) => Role::ToolCall,
            TranscriptEntry::ToolResult(_) => Role::ToolResult,
            TranscriptEntry::Note(_) => Role::System,
        }
    }

    pub fn content(&self) -> Value {
        match self {
            TranscriptEntry::AssistantText(t) | TranscriptEntry::Note(t) => {
                Value::String(t.clone())
            }
            TranscriptEntry::ToolCall(v) | TranscriptEntry::ToolResult(v) => v.clone(),
        }
    }
}

/// A tool call the model made, for the host to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallRequest {
    /// The model's id for the call (unique within the turn; usable as an idempotency key).
    pub id: String,
    pub name: String,
    /// The model's arguments: a JSON object as text, or empty. The loop has already answered
    /// text that is not JSON with an error result, so the host never sees it.
    pub arguments: String,
}

/// The engine's side of a turn.
pub trait TurnHost: Send + Sync {
    /// A piece of the assistant's text, as it streams.
    fn assistant_delta(&self, text: &str);
    /// A piece of the model's reasoning (`reasoning_content`), when the server streams it.
    fn thought_delta(&self, _text: &str) {}
    fn tool_event(&self, event: &ToolEvent);
    /// A `lifecycle` run event, e.g. `{"phase": "retrying", ...}`.
    fn lifecycle(&self, data: Value);
    /// Usage of one response, when the server reported it.
    fn usage(&self, usage: &Usage);
    fn record(&self, entry: TranscriptEntry);
    /// Runs a tool and gives its result as JSON; a failure is an `{"error": {"kind",
    /// "message"}}` value, never a failed turn. Dropped at once when the turn is stopped.
    fn call_tool(&self, call: &ToolCallRequest) -> impl Future<Output = Value> + Send;
}
