//! What an ACP session reports to its host, in the daemon's own terms rather than ACP's.

use crate::config::AcpPermissions;
use serde::Serialize;
use serde_json::Value;

/// Receives what the agent does, as it happens. Called from the connection's reader task, in
/// the order the agent wrote it: an implementation must not block (publish and return).
pub trait AcpHost: Send + Sync {
    fn event(&self, event: AcpEvent);
}

/// One thing the agent did. Tool events carry the call's whole state so far (an update is
/// merged into what the call started with), so a consumer never has to keep its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AcpEvent {
    /// Reply text (`agent_message_chunk`); the turn's reply is these, concatenated.
    AssistantDelta { text: String },
    /// Reasoning (`agent_thought_chunk`); never part of the reply.
    ThoughtDelta { text: String },
    /// A tool call began (`tool_call`).
    ToolStart(ToolCallState),
    /// A tool call changed and is still running (`tool_call_update`).
    ToolUpdate(ToolCallState),
    /// A tool call ended: its status is `completed` or `failed`.
    ToolEnd(ToolCallState),
    /// The agent's whole plan, replacing any earlier one (`plan`).
    Plan { entries: Vec<PlanItem> },
    /// Context window use (`usage_update`).
    Usage(UsageInfo),
    /// How a `session/request_permission` was answered, and by which policy.
    Permission(PermissionDecision),
    /// The agent keeps retrying its model (mistral-vibe's `_session/retrying`, e.g. its model
    /// server is down): said once a turn, so a caller who sees no progress knows why.
    Retrying { reason: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallState {
    pub id: String,
    pub title: String,
    /// read, edit, delete, move, search, execute, think, fetch, switch_mode or other.
    pub kind: String,
    /// pending, in_progress, completed or failed.
    pub status: String,
    /// ACP tool call content (content blocks, diffs, terminals), as the agent sent it.
    pub content: Vec<Value>,
    /// `{path, line?}` objects: the files the call touches.
    pub locations: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_output: Option<Value>,
}

impl ToolCallState {
    pub fn is_finished(&self) -> bool {
        self.status == "completed" || self.status == "failed"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanItem {
    pub content: String,
    /// high, medium or low.
    pub priority: String,
    /// pending, in_progress or completed.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageInfo {
    /// Tokens in the context window now.
    pub used: u64,
    /// The context window's size.
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    pub amount: f64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionDecision {
    pub tool_call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The tool kind the decision was based on (from the request, else from the call).
    pub kind: String,
    #[serde(serialize_with = "policy_name")]
    pub policy: AcpPermissions,
    pub outcome: PermissionOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum PermissionOutcome {
    Allowed {
        #[serde(rename = "optionId")]
        option_id: String,
    },
    Rejected {
        #[serde(rename = "optionId")]
        option_id: String,
    },
    /// Answered `cancelled`: the turn was being cancelled, or the agent offered no option
    /// matching the decision.
    Cancelled { reason: String },
}

fn policy_name<S: serde::Serializer>(p: &AcpPermissions, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_serialize_in_the_daemons_terms() {
        let e = AcpEvent::Permission(PermissionDecision {
            tool_call_id: "t1".into(),
            title: None,
            kind: "edit".into(),
            policy: AcpPermissions::ApproveReads,
            outcome: PermissionOutcome::Rejected {
                option_id: "no".into(),
            },
        });
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type":"permission","toolCallId":"t1","kind":"edit","policy":"approve-reads",
                   "outcome":{"decision":"rejected","optionId":"no"}})
        );
        let d = AcpEvent::AssistantDelta { text: "hi".into() };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"type":"assistant_delta","text":"hi"})
        );
    }
}
