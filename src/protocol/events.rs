//! Live events: what `sessions.subscribe` pushes, and what `sessions.send` with
//! `streamProgress` pushes for its run. Every push is a JSON-RPC notification whose params
//! carry the subscription id.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Message, SessionRow};

/// Notification method names.
pub mod notifications {
    /// A message appended to a transcript: [`super::SessionMessageParams`].
    pub const SESSION_MESSAGE: &str = "session.message";
    /// A session was created, started or ended a run, got a message, was patched, deleted or
    /// archived: [`super::SessionsChangedParams`].
    pub const SESSIONS_CHANGED: &str = "sessions.changed";
    /// Progress of a run (lifecycle, assistant text, tools, usage): [`super::RunEventParams`].
    pub const RUN_EVENT: &str = "run.event";
    /// Live events were skipped for a subscriber that fell behind (transcript messages never
    /// are: they are re-read from the store): [`super::SubscriptionLaggedParams`].
    pub const SUBSCRIPTION_LAGGED: &str = "subscription.lagged";
    /// The subscription is over (session deleted, unsubscribed, daemon stopping):
    /// [`super::SubscriptionEndedParams`].
    pub const SUBSCRIPTION_ENDED: &str = "subscription.ended";
}

/// What a subscription asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `session.message`
    #[cfg_attr(feature = "cli", value(help = "Transcript messages (session.message)"))]
    Message,
    /// `sessions.changed` and `run.event` with stream `lifecycle`
    #[cfg_attr(
        feature = "cli",
        value(
            help = "Sessions created, started, ended, patched, deleted; runs queued, started, ended"
        )
    )]
    Lifecycle,
    /// `run.event` with stream `assistant` (text deltas)
    #[cfg_attr(feature = "cli", value(help = "The assistant's text as it streams"))]
    Assistant,
    /// `run.event` with stream `tool`
    #[cfg_attr(feature = "cli", value(help = "Tool calls: start, update, end"))]
    Tool,
    /// `run.event` with stream `usage`
    #[cfg_attr(feature = "cli", value(help = "Token usage"))]
    Usage,
    /// `run.event` with stream `thought` (reasoning the agent shows; not part of the reply)
    Thought,
    /// `run.event` with stream `plan` (the agent's plan, whole, each time it changes)
    Plan,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Message,
        EventKind::Lifecycle,
        EventKind::Assistant,
        EventKind::Tool,
        EventKind::Usage,
        EventKind::Thought,
        EventKind::Plan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Message => "message",
            EventKind::Lifecycle => "lifecycle",
            EventKind::Assistant => "assistant",
            EventKind::Tool => "tool",
            EventKind::Usage => "usage",
            EventKind::Thought => "thought",
            EventKind::Plan => "plan",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscribeParams {
    /// One session (key or id); all sessions when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// With a session: first every stored message after this seq, then live ones (a follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    /// Only events of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Which events; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventKind>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeResult {
    pub subscription: String,
    /// The session followed, resolved to its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// The session's newest seq when the subscription started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// The session's active run then, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_run_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnsubscribeParams {
    pub subscription: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribeResult {
    pub unsubscribed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMessageParams {
    pub subscription: String,
    pub session_key: String,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsChangedParams {
    pub subscription: String,
    /// create, start, message, end, patch, delete, archive
    pub phase: String,
    pub session_key: String,
    /// The row after the change (absent for delete).
    pub session: Option<SessionRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEventParams {
    pub subscription: String,
    pub session_key: String,
    pub run_id: String,
    /// lifecycle, assistant, tool, usage
    pub stream: String,
    /// Per run, from 1: a gap tells a consumer that events were coalesced or skipped.
    pub seq: u64,
    /// lifecycle: `{phase: queued|started|ended|retrying, status?, error?}`; assistant and
    /// thought: `{delta}`; plan: `{entries}`; tool: `{phase: start|update|end, id, name?,
    /// input?, output?, status?}`; usage: `{tokens, promptTokens?, completionTokens?}`.
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionLaggedParams {
    pub subscription: String,
    /// Live events skipped (assistant deltas, tool updates, session changes).
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionEndedParams {
    pub subscription: String,
    /// deleted, shutdown, run_ended (it was opened with a run's token, and the run ended)
    pub reason: String,
}
