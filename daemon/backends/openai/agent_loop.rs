//! One turn: ask the model, run the tools it calls, give it their results, and again, until
//! it answers without tool calls or `max_tool_rounds` rounds of tools have run.

use crate::protocol::Message;
use serde_json::{Map, Value, json};

use super::OpenAiBackend;
use super::conversation::{self, ChatMessage, ChatToolCall, IncomingMessage};
use super::errors::{ChatError, ErrorContext};
use super::host::{ToolCallRequest, ToolEvent, ToolStatus, TranscriptEntry, TurnHost, Usage};
use super::request::{RoundRequest, chat_body};
use super::stream::{AssembledCall, Delta, MAX_TOOL_ARGUMENTS};

/// What a turn starts from.
#[derive(Debug, Clone)]
pub struct TurnContext {
    /// The session's transcript before this turn's message, oldest first.
    pub history: Vec<Message>,
    /// This turn's message.
    pub message: IncomingMessage,
    /// The session's own model (`--model` on spawn, `sessions patch --model`), if set.
    pub model: Option<String>,
    /// The session's `thinking`, sent as `reasoning_effort` where it maps onto it.
    pub thinking: Option<String>,
    /// The tools offered, as Chat Completions `tools[]` entries (the session tools'
    /// `ToolDefinition::openai_tool()`, later MCP servers' tools too).
    pub tools: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TurnReply {
    /// The final assistant text (the last response's text when max_tool_rounds was hit).
    pub reply: String,
    /// Summed over the turn's responses; `None` when the server reported none.
    pub usage: Option<Usage>,
    /// Rounds of tool calls that ran.
    pub tool_rounds: u32,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TurnFailure {
    /// A sentence naming the agent, the URL and what to check.
    #[error("{0}")]
    Failed(String),
    /// The stop token fired (kill, timeout, shutdown); the HTTP request was dropped.
    #[error("the turn was stopped")]
    Stopped,
}

impl OpenAiBackend {
    pub(super) async fn drive<H: TurnHost>(
        &self,
        host: &H,
        ctx: TurnContext,
    ) -> Result<TurnReply, TurnFailure> {
        let settings = &*self.settings;
        let model = self
            .model(ctx.model.as_deref())
            .await
            .map_err(|e| self.failure(&e, ctx.model.as_deref()))?;
        let mut messages = conversation::build(
            settings.system_prompt.as_deref(),
            &ctx.history,
            &ctx.message,
            settings.max_context_messages,
        );
        let mut usage: Option<Usage> = None;
        let mut last_text = String::new();
        for round in 1..=settings.max_tool_rounds {
            let body = chat_body(
                settings,
                &RoundRequest {
                    model: &model,
                    messages: &messages,
                    tools: &ctx.tools,
                    round,
                    thinking: ctx.thinking.as_deref(),
                },
            );
            let completion = self
                .client
                .complete(&body.to_bytes(), host, |delta| match delta {
                    Delta::Text(t) => host.assistant_delta(&t),
                    Delta::Reasoning(t) => host.thought_delta(&t),
                })
                .await
                .map_err(|e| self.failure(&e, Some(&model)))?;
            if let Some(u) = &completion.usage {
                host.usage(u);
                usage.get_or_insert_with(Usage::default).add(u);
            }
            if completion.tool_calls.is_empty() {
                return Ok(TurnReply {
                    reply: completion.text,
                    usage,
                    tool_rounds: round - 1,
                    model,
                });
            }
            let mut calls = completion.tool_calls;
            let limit = self.client.argument_limit.unwrap_or(MAX_TOOL_ARGUMENTS);
            let cut = completion
                .cut_call
                .map(|i| shorten_cut_call(&mut calls, i, limit));
            run_tools(host, &mut messages, &completion.text, calls, cut).await;
            last_text = completion.text;
        }
        let max = settings.max_tool_rounds;
        host.record(TranscriptEntry::Note(format!(
            "the turn stopped after {max} rounds of tool calls (max_tool_rounds = {max}) with the model still calling tools; send a message to let it go on"
        )));
        Ok(TurnReply {
            reply: last_text,
            usage,
            tool_rounds: max,
            model,
        })
    }

    async fn model(&self, session_model: Option<&str>) -> Result<String, ChatError> {
        if let Some(m) = session_model.or(self.settings.model.as_deref()) {
            return Ok(m.to_string());
        }
        self.discovered_model
            .get_or_try_init(|| async {
                let mut ids = self.client.list_models().await?;
                tracing::info!(
                    agent = %self.settings.agent_id,
                    model = %ids[0],
                    "no model configured; using the server's first"
                );
                Ok(ids.swap_remove(0))
            })
            .await
            .cloned()
    }

    fn failure(&self, e: &ChatError, model: Option<&str>) -> TurnFailure {
        let s = &self.settings;
        let sentence = e.sentence(&ErrorContext {
            agent_id: &s.agent_id,
            model: model.or(s.model.as_deref()),
            base_url: &s.base_url,
            key_var: s.api_key.var(),
            request_timeout: s.request_timeout,
            key: s.api_key.key(),
        });
        tracing::debug!(agent = %s.agent_id, "{sentence}");
        TurnFailure::Failed(sentence)
    }
}

/// One round of tool calls: recorded, run one after another (a later call may depend on an
/// earlier one, e.g. sessions_wait on a run sessions_spawn just started), and given back to
/// the model. A failing tool gives the model an error result; the turn goes on.
async fn run_tools<H: TurnHost>(
    host: &H,
    messages: &mut Vec<ChatMessage>,
    text: &str,
    calls: Vec<AssembledCall>,
    cut: Option<CutCall>,
) {
    if !text.is_empty() {
        host.record(TranscriptEntry::AssistantText(text.to_string()));
    }
    messages.push(ChatMessage::Assistant {
        content: text.to_string(),
        tool_calls: calls
            .iter()
            .map(|c| ChatToolCall {
                id: c.id.clone(),
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            })
            .collect(),
    });
    let checked: Vec<(AssembledCall, Result<Value, Value>)> = calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let input = match &cut {
                Some(cut) if cut.index == i => Err(cut.error(&c.name)),
                _ => check_arguments(&c),
            };
            (c, input)
        })
        .collect();
    // The round's calls go into the transcript together, as the model made them.
    for (call, input) in &checked {
        let mut content = json!({ "id": call.id, "name": call.name });
        match input {
            Ok(input) => content["input"] = input.clone(),
            Err(_) => {
                content["input"] = Value::Null;
                content["rawArguments"] = json!(call.arguments);
            }
        }
        host.record(TranscriptEntry::ToolCall(content));
    }
    for (call, input) in checked {
        host.tool_event(&ToolEvent::Start {
            id: call.id.clone(),
            name: call.name.clone(),
            input: input
                .clone()
                .unwrap_or_else(|_| Value::String(call.arguments.clone())),
        });
        let output = match input {
            Ok(_) => {
                host.call_tool(&ToolCallRequest {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                })
                .await
            }
            Err(error) => error,
        };
        let status = ToolStatus::of(&output);
        host.tool_event(&ToolEvent::End {
            id: call.id.clone(),
            name: call.name.clone(),
            output: output.clone(),
            status,
        });
        host.record(TranscriptEntry::ToolResult(json!({
            "id": call.id,
            "name": call.name,
            "output": output,
            "status": status.as_str(),
        })));
        messages.push(ChatMessage::Tool {
            tool_call_id: call.id,
            content: conversation::tool_output_text(&output),
        });
    }
}

/// A call whose arguments went past the limit, and how long they were when cut.
struct CutCall {
    index: usize,
    limit: usize,
}

impl CutCall {
    fn error(&self, name: &str) -> Value {
        json!({ "error": { "kind": "invalid_params", "message": format!(
            "the arguments of {name} were longer than {} bytes, so the response was cut there and the call not made. Call the tool again with shorter arguments",
            self.limit
        ) } })
    }
}

/// Characters of a cut call's arguments kept for the transcript and the model.
const CUT_ARGUMENTS_KEPT: usize = 256;

/// Keeps only the start of a cut call's arguments: a megabyte of a runaway generation is
/// not worth storing or sending back to the model.
fn shorten_cut_call(calls: &mut [AssembledCall], index: usize, limit: usize) -> CutCall {
    if let Some(c) = calls.get_mut(index)
        && let Some((end, _)) = c.arguments.char_indices().nth(CUT_ARGUMENTS_KEPT)
    {
        c.arguments.truncate(end);
        c.arguments.push('…');
    }
    CutCall { index, limit }
}

/// The call's arguments as a JSON object, or the error result the model gets instead (a
/// model cut off by max_tokens sends half an object).
fn check_arguments(call: &AssembledCall) -> Result<Value, Value> {
    let text = call.arguments.trim();
    if text.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let invalid =
        |message: String| json!({ "error": { "kind": "invalid_params", "message": message } });
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(invalid(format!(
            "the arguments of {} must be a JSON object",
            call.name
        ))),
        Err(e) => Err(invalid(format!(
            "the arguments of {} are not valid JSON ({e}); they may have been cut off by max_tokens. Call the tool again with one complete JSON object",
            call.name
        ))),
    }
}
