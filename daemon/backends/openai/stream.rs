//! A streamed chat completion, put together chunk by chunk. Real servers differ (see
//! NOTES.md), so parsing is lenient about everything that still has one clear meaning: no
//! usage chunk, `usage: {}`, `choices: null`, `finish_reason: ""` before the end, tool-call
//! fragments that repeat `id`/`type`/`name` (the name is set once, never appended), a
//! missing `index`, index 0 reused for parallel calls, and the deprecated `function_call`.
//! What has no clear meaning is an error: a chunk that is not JSON, or a stream that ends
//! before the model finished.

use serde_json::Value;

use super::host::Usage;

/// One response of the model, whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<AssembledCall>,
    /// `stop`, `length`, `tool_calls`, … as the server said (or inferred, see `finish`).
    pub finish_reason: String,
    pub usage: Option<Usage>,
    /// The index in `tool_calls` of a call whose arguments grew past the limit: the stream
    /// was cut there, and the call keeps only the start of its arguments.
    pub cut_call: Option<usize>,
}

/// Bytes of arguments one tool call may stream; a model that goes on past them (a runaway
/// generation) has its response cut there instead of only at the run's timeout.
pub const MAX_TOOL_ARGUMENTS: usize = 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssembledCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Text as it arrives, for the host to stream on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    Text(String),
    Reasoning(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("a chunk that is not JSON: {0}")]
    NotJson(String),
    #[error("the server reported an error: {0}")]
    Server(String),
    /// The stream ended with neither a finish_reason nor `[DONE]`.
    #[error("the stream ended before the model finished")]
    Unfinished,
}

#[derive(Debug, Default)]
struct PartialCall {
    index: Option<u64>,
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

#[derive(Debug, Default)]
pub struct StreamAssembler {
    text: String,
    reasoning: String,
    calls: Vec<PartialCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
    /// Arguments bytes a call may have (`MAX_TOOL_ARGUMENTS` unless set).
    max_arguments: Option<usize>,
    /// The call that went past it.
    cut_call: Option<usize>,
}

impl StreamAssembler {
    pub fn new() -> StreamAssembler {
        StreamAssembler::default()
    }

    /// An assembler that cuts a tool call's arguments at `max` bytes.
    pub fn with_argument_limit(max: usize) -> StreamAssembler {
        StreamAssembler {
            max_arguments: Some(max),
            ..StreamAssembler::default()
        }
    }

    /// Whether a tool call's arguments went past the limit: nothing more is read.
    pub fn is_cut(&self) -> bool {
        self.cut_call.is_some()
    }

    /// Whether `[DONE]` arrived: nothing after it counts.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the model said it finished (a finish_reason arrived).
    pub fn has_finished(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// Takes the data of one server-sent event.
    pub fn feed(&mut self, data: &str) -> Result<Vec<Delta>, StreamError> {
        let data = data.trim();
        if self.done || self.cut_call.is_some() || data.is_empty() {
            return Ok(Vec::new());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|_| StreamError::NotJson(snippet(data)))?;
        if let Some(message) = error_message(&chunk) {
            return Err(StreamError::Server(message));
        }
        if let Some(usage) = chunk.get("usage").and_then(parse_usage) {
            // Servers that repeat usage send running totals: the last one counts.
            self.usage = Some(usage);
        }
        let mut deltas = Vec::new();
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Ok(deltas);
        };
        for choice in choices {
            // With n > 1 only the first choice is the answer.
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice
                .get("delta")
                .or_else(|| choice.get("message"))
                .unwrap_or(&Value::Null);
            if let Some(text) = delta.get("content").and_then(Value::as_str)
                && !text.is_empty()
            {
                self.text.push_str(text);
                deltas.push(Delta::Text(text.to_string()));
            }
            // Servers name it one way or the other; some send both with the same text.
            if let Some(text) = ["reasoning_content", "reasoning"].iter().find_map(|k| {
                delta
                    .get(*k)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
            }) {
                self.reasoning.push_str(text);
                deltas.push(Delta::Reasoning(text.to_string()));
            }
            let fragments = delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .filter(|f| !f.is_empty());
            match fragments {
                Some(fragments) => fragments.iter().for_each(|f| self.merge(f)),
                // Only when there is no tool_calls beside it: servers that send both mean
                // the same call twice.
                None => {
                    if let Some(call) = delta.get("function_call").filter(|c| c.is_object()) {
                        self.merge(&serde_json::json!({ "index": 0, "function": call }));
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str)
                && !reason.is_empty()
            {
                self.finish_reason = Some(reason.to_string());
            }
        }
        Ok(deltas)
    }

    fn merge(&mut self, fragment: &Value) {
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let id = text(fragment.get("id"));
        let index = fragment.get("index").and_then(Value::as_u64);
        let function = fragment.get("function").unwrap_or(&Value::Null);
        let name = text(function.get("name"));
        let arguments = match function.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            // A few servers send the arguments as an object rather than JSON text.
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => String::new(),
        };
        let slot = match &id {
            Some(id) => self
                .calls
                .iter()
                .position(|c| c.id.as_deref() == Some(id))
                .or_else(|| {
                    // An id that arrives after the first fragment of its call.
                    self.calls
                        .iter()
                        .rposition(|c| c.id.is_none() && index.is_some() && c.index == index)
                }),
            None => match index {
                Some(_) => self.calls.iter().rposition(|c| c.index == index),
                None => self.calls.len().checked_sub(1),
            }
            // Index 0 reused for a second call without ids: a new name after complete
            // arguments starts a new call.
            .filter(|&i| {
                let c = &self.calls[i];
                !(name.is_some() && c.name.is_some() && is_complete_json(&c.arguments))
            }),
        };
        let slot = slot.unwrap_or_else(|| {
            self.calls.push(PartialCall {
                index,
                ..PartialCall::default()
            });
            self.calls.len() - 1
        });
        let max = self.max_arguments.unwrap_or(MAX_TOOL_ARGUMENTS);
        let call = &mut self.calls[slot];
        if call.id.is_none() {
            call.id = id;
        }
        if call.name.is_none() {
            call.name = name;
        }
        if call.arguments.len() + arguments.len() > max {
            let mut end = max - call.arguments.len().min(max);
            while !arguments.is_char_boundary(end) {
                end -= 1;
            }
            call.arguments.push_str(&arguments[..end]);
            self.cut_call = Some(slot);
            return;
        }
        call.arguments.push_str(&arguments);
    }

    /// The whole response, once the stream has ended. A stream that ended with `[DONE]` but
    /// no finish_reason is taken as finished (the server said it was done): the reason is
    /// inferred. One that ended with neither was cut.
    pub fn finish(self) -> Result<Completion, StreamError> {
        let finish_reason = match self.finish_reason {
            Some(reason) => reason,
            // Cut by openclaw, not by the server: the response ends with its tool calls.
            None if self.cut_call.is_some() => "tool_calls".to_string(),
            None if self.done && !self.calls.is_empty() => "tool_calls".to_string(),
            None if self.done => "stop".to_string(),
            None => return Err(StreamError::Unfinished),
        };
        let tool_calls = self
            .calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| AssembledCall {
                id: c.id.unwrap_or_else(|| format!("call_{i}")),
                name: c.name.unwrap_or_default(),
                arguments: c.arguments,
            })
            .collect();
        Ok(Completion {
            text: self.text,
            reasoning: self.reasoning,
            tool_calls,
            finish_reason,
            usage: self.usage,
            cut_call: self.cut_call,
        })
    }
}

/// A non-streamed `chat.completion` (a server that ignored `stream: true`).
pub fn completion_from_json(body: &str) -> Result<Completion, StreamError> {
    let mut assembler = StreamAssembler::new();
    assembler.feed(body)?;
    if assembler.finish_reason.is_none() {
        assembler.done = true;
    }
    assembler.finish()
}

fn is_complete_json(text: &str) -> bool {
    !text.trim().is_empty() && serde_json::from_str::<Value>(text).is_ok()
}

fn parse_usage(v: &Value) -> Option<Usage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let usage = Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        total_tokens: n("total_tokens"),
    };
    (!usage.is_empty()).then_some(usage)
}

/// An error object in a chunk (`{"error": {"message": ...}}` or `{"error": "..."}`).
fn error_message(chunk: &Value) -> Option<String> {
    let error = chunk.get("error").filter(|e| !e.is_null())?;
    let message = match error {
        Value::String(s) => s.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    };
    Some(if message.is_empty() {
        "(no message)".to_string()
    } else {
        message
    })
}

/// The start of a text, for quoting in an error.
pub fn snippet(text: &str) -> String {
    snippet_of(text, 120)
}

/// The first `max` characters of a text (trimmed), marked when cut.
pub fn snippet_of(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() > max {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
