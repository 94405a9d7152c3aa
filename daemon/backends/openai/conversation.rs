//! A session's transcript as Chat Completions messages.
//!
//! Roles map as: `user` → user; `assistant` → assistant (its `tool_call` messages become that
//! assistant message's `tool_calls`); `tool_result` → tool; announces, inter-session messages
//! and openclaw's own notes → user turns that say where they came from. Chat servers are
//! strict about the shape, so the mapping also keeps it valid: every tool call is followed by
//! exactly one result (a missing one becomes an error result, a stray one is dropped),
//! messages that landed between a call and its result (an announce arriving mid-round) move
//! after the results, and adjacent user turns are joined (several chat templates require
//! user and assistant to alternate).

use crate::protocol::{Message, Provenance, ProvenanceKind, Role};
use serde_json::{Value, json};

/// One message of the request's `messages`.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    System(String),
    User(String),
    Assistant {
        content: String,
        tool_calls: Vec<ChatToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatToolCall {
    pub id: String,
    pub name: String,
    /// The arguments text as the model sent it.
    pub arguments: String,
}

impl ChatMessage {
    /// The message as a JSON value (what the request body's serialisation writes).
    #[cfg(test)]
    pub fn to_json(&self) -> Value {
        match self {
            ChatMessage::System(text) => json!({ "role": "system", "content": text }),
            ChatMessage::User(text) => json!({ "role": "user", "content": text }),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                // Some servers refuse `content: null`; an empty string is accepted everywhere.
                let mut m = json!({ "role": "assistant", "content": content });
                if !tool_calls.is_empty() {
                    m["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| {
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": { "name": c.name, "arguments": c.arguments },
                            })
                        })
                        .collect();
                }
                m
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => json!({ "role": "tool", "tool_call_id": tool_call_id, "content": content }),
        }
    }
}

/// The same shape as [`ChatMessage::to_json`], written straight into the request body.
impl serde::Serialize for ChatMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            ChatMessage::System(text) | ChatMessage::User(text) => {
                let role = if matches!(self, ChatMessage::System(_)) {
                    "system"
                } else {
                    "user"
                };
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("role", role)?;
                m.serialize_entry("content", text)?;
                m.end()
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("role", "assistant")?;
                m.serialize_entry("content", content)?;
                if !tool_calls.is_empty() {
                    m.serialize_entry("tool_calls", &ToolCalls(tool_calls))?;
                }
                m.end()
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("role", "tool")?;
                m.serialize_entry("tool_call_id", tool_call_id)?;
                m.serialize_entry("content", content)?;
                m.end()
            }
        }
    }
}

struct ToolCalls<'a>(&'a [ChatToolCall]);

impl serde::Serialize for ToolCalls<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Function<'a>(&'a ChatToolCall);
        impl serde::Serialize for Function<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("name", &self.0.name)?;
                m.serialize_entry("arguments", &self.0.arguments)?;
                m.end()
            }
        }
        struct Call<'a>(&'a ChatToolCall);
        impl serde::Serialize for Call<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("id", &self.0.id)?;
                m.serialize_entry("type", "function")?;
                m.serialize_entry("function", &Function(self.0))?;
                m.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for c in self.0 {
            seq.serialize_element(&Call(c))?;
        }
        seq.end()
    }
}

/// The turn's own message: its text and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    pub text: String,
    pub provenance: Provenance,
}

impl IncomingMessage {
    pub fn operator(text: impl Into<String>) -> IncomingMessage {
        IncomingMessage {
            text: text.into(),
            provenance: Provenance {
                kind: ProvenanceKind::Operator,
                from: None,
            },
        }
    }

    pub fn from_message(m: &Message) -> IncomingMessage {
        IncomingMessage {
            text: content_text(&m.content),
            provenance: m.provenance.clone(),
        }
    }
}

/// The request's messages: the system prompt, the transcript (`history`, oldest first, not
/// including the turn's own message), then `incoming`, within `budget` messages besides the
/// system prompt (the session's task and the incoming message are always kept).
pub fn build(
    system_prompt: Option<&str>,
    history: &[Message],
    incoming: &IncomingMessage,
    budget: usize,
) -> Vec<ChatMessage> {
    let mut messages = map_transcript(history);
    messages.push(ChatMessage::User(labelled(
        &incoming.text,
        Role::User,
        &incoming.provenance,
    )));
    let messages = join_user_turns(apply_budget(messages, budget.max(2)));
    let mut out = Vec::with_capacity(messages.len() + 1);
    if let Some(prompt) = system_prompt.filter(|p| !p.trim().is_empty()) {
        out.push(ChatMessage::System(prompt.to_string()));
    }
    out.extend(messages);
    out
}

/// The text of a message's content: a string, or the text of its blocks.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).map(str::to_string),
                Some("attachment") => b
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|n| format!("[attachment: {n}, in the session's workspace]")),
                _ => b.as_str().map(str::to_string),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A user-side turn, saying where it came from when that was not the operator.
fn labelled(text: &str, role: Role, provenance: &Provenance) -> String {
    let from = provenance.from.as_deref().unwrap_or("another session");
    match (role, provenance.kind) {
        (Role::Announce, _) | (_, ProvenanceKind::Announce) => {
            format!("[result of sub-agent session {from}]\n{text}")
        }
        (_, ProvenanceKind::InterSession) => format!("[message from session {from}]\n{text}"),
        (Role::System, _) => format!("[openclaw note] {text}"),
        _ => text.to_string(),
    }
}

/// The tool calls of one assistant message, while their results are still due.
struct OpenCalls {
    pending: Vec<String>,
    /// Messages that arrived before every result did; they go after the results.
    deferred: Vec<ChatMessage>,
}

fn map_transcript(history: &[Message]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(history.len());
    let mut open: Option<OpenCalls> = None;
    // The run of the last assistant message, while a tool call may still attach to it.
    let mut attach_run: Option<Option<&str>> = None;
    for m in history {
        match m.role {
            Role::Assistant => {
                close(&mut out, &mut open);
                out.push(ChatMessage::Assistant {
                    content: content_text(&m.content),
                    tool_calls: Vec::new(),
                });
                attach_run = Some(m.run_id.as_deref());
            }
            Role::ToolCall => {
                let call = tool_call_of(&m.content, out.len());
                let attaches = attach_run == Some(m.run_id.as_deref())
                    && open.as_ref().is_none_or(|o| o.deferred.is_empty());
                if !attaches {
                    close(&mut out, &mut open);
                    out.push(ChatMessage::Assistant {
                        content: String::new(),
                        tool_calls: Vec::new(),
                    });
                }
                if let Some(ChatMessage::Assistant { tool_calls, .. }) = out.last_mut() {
                    open.get_or_insert_with(|| OpenCalls {
                        pending: Vec::new(),
                        deferred: Vec::new(),
                    })
                    .pending
                    .push(call.id.clone());
                    tool_calls.push(call);
                }
                attach_run = Some(m.run_id.as_deref());
            }
            Role::ToolResult => {
                let id = m.content.get("id").and_then(Value::as_str).unwrap_or("");
                let Some(calls) = open.as_mut() else { continue };
                let Some(pos) = calls.pending.iter().position(|p| p == id) else {
                    continue; // a result without its call: nothing to attach it to
                };
                calls.pending.remove(pos);
                let output = m.content.get("output").cloned().unwrap_or(Value::Null);
                let result = ChatMessage::Tool {
                    tool_call_id: id.to_string(),
                    content: tool_output_text(&output),
                };
                // Deferred messages wait in `calls`, so the result lands right after its call.
                out.push(result);
                attach_run = None;
                if calls.pending.is_empty() {
                    close(&mut out, &mut open);
                }
            }
            Role::User | Role::Announce | Role::System => {
                let turn =
                    ChatMessage::User(labelled(&content_text(&m.content), m.role, &m.provenance));
                match open.as_mut() {
                    Some(calls) => calls.deferred.push(turn),
                    None => {
                        out.push(turn);
                        attach_run = None;
                    }
                }
            }
        }
    }
    close(&mut out, &mut open);
    out
}

/// Ends an assistant message's tool calls: a result for each call still without one, then
/// whatever arrived meanwhile.
fn close(out: &mut Vec<ChatMessage>, open: &mut Option<OpenCalls>) {
    let Some(calls) = open.take() else { return };
    for id in calls.pending {
        out.push(ChatMessage::Tool {
            tool_call_id: id,
            content: json!({"error": {"kind": "interrupted", "message": "no result was recorded for this call: the run ended before it finished"}}).to_string(),
        });
    }
    out.extend(calls.deferred);
}

fn tool_call_of(content: &Value, n: usize) -> ChatToolCall {
    let text = |k: &str| content.get(k).and_then(Value::as_str).map(str::to_string);
    let arguments = match (text("rawArguments"), content.get("input")) {
        (Some(raw), _) => raw,
        (None, Some(Value::String(s))) => s.clone(),
        (None, Some(v)) if !v.is_null() => v.to_string(),
        _ => "{}".to_string(),
    };
    ChatToolCall {
        id: text("id")
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{n}")),
        name: text("name").unwrap_or_default(),
        arguments,
    }
}

/// What a model gets back from a tool: strings as they are, anything else as JSON.
pub fn tool_output_text(output: &Value) -> String {
    match output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Keeps at most `budget` messages: the session's task (its first user message), then the
/// newest ones, starting at a message that is not a tool result so that no call is split
/// from its results. A note says how many were left out.
fn apply_budget(messages: Vec<ChatMessage>, budget: usize) -> Vec<ChatMessage> {
    if messages.len() <= budget {
        return messages;
    }
    let task = messages
        .iter()
        .position(|m| matches!(m, ChatMessage::User(_)));
    let first_kept = task.map_or(0, |t| t + 1);
    let mut start = messages
        .len()
        .saturating_sub(budget - usize::from(task.is_some()));
    start = start.max(first_kept);
    while start < messages.len() - 1 && matches!(messages[start], ChatMessage::Tool { .. }) {
        start += 1;
    }
    let mut out = Vec::with_capacity(budget + 1);
    let mut all = messages.into_iter();
    if let Some(t) = task {
        // Anything before the task (there should be nothing) is left out with the rest.
        out.extend(all.by_ref().take(t + 1).skip(t));
    }
    let left_out = start - usize::from(task.is_some());
    if left_out > 0 {
        out.push(ChatMessage::User(format!(
            "[openclaw note] {left_out} earlier messages of this session were left out to fit max_context_messages."
        )));
    }
    out.extend(all.skip(start - first_kept));
    out
}

fn join_user_turns(messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len());
    for m in messages {
        if let (ChatMessage::User(next), Some(ChatMessage::User(prev))) = (&m, out.last_mut()) {
            prev.push_str("\n\n");
            prev.push_str(next);
            continue;
        }
        out.push(m);
    }
    out
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
