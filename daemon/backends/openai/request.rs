//! The body of one Chat Completions request.

use crate::config::ToolChoice;
use serde_json::{Value, json};

use super::conversation::ChatMessage;
use super::settings::OpenAiSettings;

/// What one request of a turn carries besides the agent's settings.
pub struct RoundRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [ChatMessage],
    /// `tools[]` entries in Chat Completions form.
    pub tools: &'a [Value],
    /// 1 for the turn's first request.
    pub round: u32,
    /// The session's `thinking` (from its spawn), if any.
    pub thinking: Option<&'a str>,
}

/// The request body as the server gets it, serialised straight from the conversation (no
/// JSON tree of the whole context is built per request): the agent's `extra_body` first,
/// then the keys openclaw owns.
#[derive(serde::Serialize)]
pub struct ChatBody<'a> {
    #[serde(flatten)]
    extra: std::borrow::Cow<'a, serde_json::Map<String, Value>>,
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    stream_options: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
}

impl ChatBody<'_> {
    /// The body as JSON text.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising strings, numbers and JSON values into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub fn chat_body<'a>(settings: &'a OpenAiSettings, r: &RoundRequest<'a>) -> ChatBody<'a> {
    // extra_body first: the keys openclaw owns are refused by the config, and a session's
    // own `thinking` wins over the agent's reasoning_effort.
    let tools = (!r.tools.is_empty()).then_some(r.tools);
    let reasoning_effort = r.thinking.and_then(reasoning_effort);
    let mut extra = std::borrow::Cow::Borrowed(&settings.extra_body);
    if reasoning_effort.is_some() && extra.contains_key("reasoning_effort") {
        extra.to_mut().remove("reasoning_effort");
    }
    ChatBody {
        extra,
        model: r.model,
        messages: r.messages,
        stream: true,
        stream_options: json!({ "include_usage": true }),
        tools,
        tool_choice: tools.and_then(|t| tool_choice(settings.tool_choice.as_ref(), t, r.round)),
        temperature: settings.temperature.map(|t| json!(t)),
        max_tokens: settings.max_tokens.map(|n| json!(n)),
        reasoning_effort,
    }
}

/// `tool_choice` for one round. A forced choice (`required`, or a named tool) applies to
/// the turn's first request only: forcing every round would leave the model no way to
/// answer, and every turn would run into max_tool_rounds. A named tool the agent does not
/// have this turn (e.g. no sessions_spawn at the depth limit) is not forced at all.
fn tool_choice(configured: Option<&ToolChoice>, tools: &[Value], round: u32) -> Option<Value> {
    match configured? {
        ToolChoice::Auto => Some(json!("auto")),
        ToolChoice::None => Some(json!("none")),
        _ if round > 1 => Some(json!("auto")),
        ToolChoice::Required => Some(json!("required")),
        ToolChoice::Tool(name) => tools
            .iter()
            .any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name))
            .then(|| json!({ "type": "function", "function": { "name": name } })),
    }
}

/// A session's `thinking` as OpenAI's `reasoning_effort`, for the levels that API knows;
/// anything else (`off`, a budget in tokens…) sends nothing.
pub fn reasoning_effort(thinking: &str) -> Option<&'static str> {
    match thinking.trim().to_ascii_lowercase().as_str() {
        "minimal" => Some("minimal"),
        "low" => Some("low"),
        "medium" => Some("medium"),
        "high" => Some("high"),
        _ => None,
    }
}
