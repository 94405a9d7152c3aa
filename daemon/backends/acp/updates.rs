//! `session/update` → [`AcpEvent`]s. Tool calls are tracked so that every tool event carries
//! the call's whole state; kinds the daemon has no use for (commands, modes, session info,
//! the echo of the user's own message) map to nothing.

use std::collections::HashMap;

use agent_client_protocol_schema::v1::{
    ContentBlock, SessionUpdate, ToolCall, ToolCallUpdate, ToolKind,
};
use serde::Serialize;
use serde_json::Value;

use super::events::{AcpEvent, Cost, PlanItem, ToolCallState, UsageInfo};

/// Tool calls open at once before the oldest are forgotten: an agent that never finishes
/// its calls must not grow the daemon.
const MAX_OPEN_TOOL_CALLS: usize = 256;

#[derive(Debug, Default)]
pub struct ToolTracker {
    open: HashMap<String, ToolCallState>,
    /// Insertion order of `open`, to forget the oldest first.
    order: Vec<String>,
}

impl ToolTracker {
    /// An open call, for permission requests that leave out its kind or title.
    pub fn get(&self, id: &str) -> Option<&ToolCallState> {
        self.open.get(id)
    }

    #[cfg(test)]
    fn kind_of(&self, id: &str) -> Option<&str> {
        self.open.get(id).map(|s| s.kind.as_str())
    }

    pub fn clear(&mut self) {
        self.open.clear();
        self.order.clear();
    }

    fn start(&mut self, call: ToolCall) -> Vec<AcpEvent> {
        let state = ToolCallState {
            id: call.tool_call_id.0.to_string(),
            title: call.title,
            kind: wire_name(&call.kind),
            status: wire_name(&call.status),
            content: call.content.iter().map(to_value).collect(),
            locations: call.locations.iter().map(to_value).collect(),
            raw_input: call.raw_input,
            raw_output: call.raw_output,
        };
        let mut events = vec![AcpEvent::ToolStart(state.clone())];
        if state.is_finished() {
            events.push(AcpEvent::ToolEnd(state));
        } else {
            self.remember(state);
        }
        events
    }

    fn update(&mut self, update: ToolCallUpdate) -> Vec<AcpEvent> {
        let id = update.tool_call_id.0.to_string();
        let mut events = Vec::new();
        let mut state = match self.open.remove(&id) {
            Some(s) => {
                self.order.retain(|o| o != &id);
                s
            }
            // An update for a call we never saw start: it starts now.
            None => {
                let s = ToolCallState {
                    id: id.clone(),
                    kind: wire_name(&ToolKind::Other),
                    status: "pending".into(),
                    ..ToolCallState::default()
                };
                events.push(AcpEvent::ToolStart(s.clone()));
                s
            }
        };
        let f = update.fields;
        if let Some(kind) = f.kind {
            state.kind = wire_name(&kind);
        }
        if let Some(status) = f.status {
            state.status = wire_name(&status);
        }
        if let Some(title) = f.title {
            state.title = title;
        }
        // ACP: a collection in an update replaces the one before.
        if let Some(content) = f.content {
            state.content = content.iter().map(to_value).collect();
        }
        if let Some(locations) = f.locations {
            state.locations = locations.iter().map(to_value).collect();
        }
        if f.raw_input.is_some() {
            state.raw_input = f.raw_input;
        }
        if f.raw_output.is_some() {
            state.raw_output = f.raw_output;
        }
        if state.is_finished() {
            events.push(AcpEvent::ToolEnd(state));
        } else {
            events.push(AcpEvent::ToolUpdate(state.clone()));
            self.remember(state);
        }
        events
    }

    fn remember(&mut self, state: ToolCallState) {
        if self.order.len() >= MAX_OPEN_TOOL_CALLS {
            let oldest = self.order.remove(0);
            self.open.remove(&oldest);
        }
        self.order.push(state.id.clone());
        self.open.insert(state.id.clone(), state);
    }
}

/// The events for one update; assistant text is also what the caller adds to the reply.
pub fn map_update(update: SessionUpdate, tools: &mut ToolTracker) -> Vec<AcpEvent> {
    match update {
        SessionUpdate::AgentMessageChunk(chunk) => text_of(&chunk.content)
            .map(|text| vec![AcpEvent::AssistantDelta { text }])
            .unwrap_or_default(),
        SessionUpdate::AgentThoughtChunk(chunk) => text_of(&chunk.content)
            .map(|text| vec![AcpEvent::ThoughtDelta { text }])
            .unwrap_or_default(),
        SessionUpdate::ToolCall(call) => tools.start(call),
        SessionUpdate::ToolCallUpdate(update) => tools.update(update),
        SessionUpdate::Plan(plan) => vec![AcpEvent::Plan {
            entries: plan
                .entries
                .into_iter()
                .map(|e| PlanItem {
                    content: e.content,
                    priority: wire_name(&e.priority),
                    status: wire_name(&e.status),
                })
                .collect(),
        }],
        SessionUpdate::UsageUpdate(u) => vec![AcpEvent::Usage(UsageInfo {
            used: u.used,
            size: u.size,
            cost: u.cost.map(|c| Cost {
                amount: c.amount,
                currency: c.currency,
            }),
        })],
        // The echo of our own prompt, and session metadata: nothing to report.
        _ => Vec::new(),
    }
}

/// The text of a content block; other kinds (images, resources) are not reply text.
fn text_of(block: &ContentBlock) -> Option<String> {
    match block {
        ContentBlock::Text(t) if !t.text.is_empty() => Some(t.text.clone()),
        _ => None,
    }
}

/// The protocol's own name for an enum value (`in_progress`, `read`, ...).
fn wire_name(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => "other".to_string(),
    }
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(v: Value) -> SessionUpdate {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tool_updates_carry_the_whole_call() {
        let mut tools = ToolTracker::default();
        let start = map_update(
            update(
                json!({"sessionUpdate":"tool_call","toolCallId":"t1","title":"Read x","kind":"read",
                          "locations":[{"path":"/w/x","line":2}],"rawInput":{"p":1}}),
            ),
            &mut tools,
        );
        assert_eq!(start.len(), 1);
        let AcpEvent::ToolStart(s) = &start[0] else {
            panic!("{start:?}")
        };
        assert_eq!((s.kind.as_str(), s.status.as_str()), ("read", "pending"));
        assert_eq!(s.locations, vec![json!({"path":"/w/x","line":2})]);
        assert_eq!(tools.kind_of("t1"), Some("read"));

        let mid = map_update(
            update(
                json!({"sessionUpdate":"tool_call_update","toolCallId":"t1","status":"in_progress"}),
            ),
            &mut tools,
        );
        let AcpEvent::ToolUpdate(m) = &mid[0] else {
            panic!("{mid:?}")
        };
        assert_eq!(
            (m.title.as_str(), m.status.as_str()),
            ("Read x", "in_progress")
        );

        let end = map_update(
            update(
                json!({"sessionUpdate":"tool_call_update","toolCallId":"t1","status":"completed",
                          "content":[{"type":"content","content":{"type":"text","text":"data"}}],"rawOutput":{"n":3}}),
            ),
            &mut tools,
        );
        let AcpEvent::ToolEnd(e) = &end[0] else {
            panic!("{end:?}")
        };
        assert_eq!(e.title, "Read x");
        assert_eq!(e.kind, "read");
        assert_eq!(e.raw_input, Some(json!({"p":1})));
        assert_eq!(e.raw_output, Some(json!({"n":3})));
        assert_eq!(
            e.content,
            vec![json!({"type":"content","content":{"type":"text","text":"data"}})]
        );
        assert_eq!(tools.kind_of("t1"), None);
    }

    #[test]
    fn an_update_for_an_unknown_call_starts_it_and_a_finished_start_ends_it() {
        let mut tools = ToolTracker::default();
        let ev = map_update(
            update(json!({"sessionUpdate":"tool_call_update","toolCallId":"x","status":"failed"})),
            &mut tools,
        );
        assert!(
            matches!(&ev[..], [AcpEvent::ToolStart(_), AcpEvent::ToolEnd(e)] if e.status == "failed")
        );
        let ev = map_update(
            update(
                json!({"sessionUpdate":"tool_call","toolCallId":"y","title":"t","status":"completed"}),
            ),
            &mut tools,
        );
        assert!(matches!(
            &ev[..],
            [AcpEvent::ToolStart(_), AcpEvent::ToolEnd(_)]
        ));
        assert_eq!(tools.kind_of("y"), None);
    }

    #[test]
    fn open_calls_are_bounded() {
        let mut tools = ToolTracker::default();
        for i in 0..MAX_OPEN_TOOL_CALLS + 10 {
            map_update(
                update(
                    json!({"sessionUpdate":"tool_call","toolCallId":format!("t{i}"),"title":"t"}),
                ),
                &mut tools,
            );
        }
        assert_eq!(tools.open.len(), MAX_OPEN_TOOL_CALLS);
        assert_eq!(tools.kind_of("t0"), None);
        assert!(
            tools
                .kind_of(&format!("t{}", MAX_OPEN_TOOL_CALLS + 9))
                .is_some()
        );
    }

    #[test]
    fn chunks_plans_usage_and_the_rest() {
        let mut tools = ToolTracker::default();
        let mut map = |v: Value| map_update(update(v), &mut tools);
        assert_eq!(
            map(
                json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hi"}})
            ),
            vec![AcpEvent::AssistantDelta { text: "hi".into() }]
        );
        assert_eq!(
            map(
                json!({"sessionUpdate":"agent_thought_chunk","content":{"type":"text","text":"hm"}})
            ),
            vec![AcpEvent::ThoughtDelta { text: "hm".into() }]
        );
        assert!(map(json!({"sessionUpdate":"user_message_chunk","content":{"type":"text","text":"echo"}})).is_empty());
        assert!(map(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"image","data":"AA==","mimeType":"image/png"}})).is_empty());
        assert_eq!(
            map(
                json!({"sessionUpdate":"plan","entries":[{"content":"a","priority":"high","status":"in_progress"}]})
            ),
            vec![AcpEvent::Plan {
                entries: vec![PlanItem {
                    content: "a".into(),
                    priority: "high".into(),
                    status: "in_progress".into()
                }]
            }]
        );
        assert_eq!(
            map(
                json!({"sessionUpdate":"usage_update","used":5,"size":10,"cost":{"amount":0.5,"currency":"EUR"}})
            ),
            vec![AcpEvent::Usage(UsageInfo {
                used: 5,
                size: 10,
                cost: Some(Cost {
                    amount: 0.5,
                    currency: "EUR".into()
                })
            })]
        );
        assert!(map(json!({"sessionUpdate":"session_info_update","title":"t"})).is_empty());
    }
}
