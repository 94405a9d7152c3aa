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

pub fn chat_body(settings: &OpenAiSettings, r: &RoundRequest<'_>) -> Value {
    let mut body = serde_json::Map::new();
    // extra_body first: the keys openclaw owns are refused by the config, and a session's
    // own `thinking` wins over the agent's reasoning_effort.
    for (k, v) in &settings.extra_body {
        body.insert(k.clone(), v.clone());
    }
    body.insert("model".into(), json!(r.model));
    body.insert(
        "messages".into(),
        Value::Array(r.messages.iter().map(ChatMessage::to_json).collect()),
    );
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({ "include_usage": true }));
    if !r.tools.is_empty() {
        body.insert("tools".into(), Value::Array(r.tools.to_vec()));
        if let Some(choice) = tool_choice(settings.tool_choice.as_ref(), r.tools, r.round) {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some(t) = settings.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(n) = settings.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if let Some(effort) = r.thinking.and_then(reasoning_effort) {
        body.insert("reasoning_effort".into(), json!(effort));
    }
    Value::Object(body)
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
