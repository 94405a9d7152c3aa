//! What kind each notification is, and how it looks as a JSON line.

use openclaw::protocol::{
    EventKind, RunEventParams, SessionMessageParams, SubscriptionEndedParams,
    SubscriptionLaggedParams, notifications,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A notification the daemon pushed, decoded. The raw params are kept alongside by callers
/// that print JSON, so fields this CLI does not know survive.
#[derive(Debug)]
pub enum LiveEvent {
    Message(SessionMessageParams),
    /// `sessions.changed`, kept raw: only a few fields are shown, and a row this CLI cannot
    /// read fully must not hide the event.
    Changed(Value),
    Run(RunEventParams),
    Lagged(SubscriptionLaggedParams),
    Ended(SubscriptionEndedParams),
}

impl LiveEvent {
    /// The event, or `None` for a method this CLI does not know (newer daemon).
    pub fn parse(method: &str, params: &Value) -> Result<Option<LiveEvent>, serde_json::Error> {
        Ok(Some(match method {
            notifications::SESSION_MESSAGE => {
                LiveEvent::Message(SessionMessageParams::deserialize(params)?)
            }
            notifications::SESSIONS_CHANGED => LiveEvent::Changed(params.clone()),
            notifications::RUN_EVENT => LiveEvent::Run(RunEventParams::deserialize(params)?),
            notifications::SUBSCRIPTION_LAGGED => {
                LiveEvent::Lagged(SubscriptionLaggedParams::deserialize(params)?)
            }
            notifications::SUBSCRIPTION_ENDED => {
                LiveEvent::Ended(SubscriptionEndedParams::deserialize(params)?)
            }
            _ => return Ok(None),
        }))
    }
}

/// Which `--events` kind a notification belongs to; `None` for the subscription's own news
/// (lagged, ended) and for methods this CLI does not know, which are always passed on.
pub fn event_kind(method: &str, params: &Value) -> Option<EventKind> {
    match method {
        notifications::SESSION_MESSAGE => Some(EventKind::Message),
        notifications::SESSIONS_CHANGED => Some(EventKind::Lifecycle),
        notifications::RUN_EVENT => params
            .get("stream")
            .and_then(Value::as_str)
            .and_then(EventKind::parse),
        _ => None,
    }
}

/// The subscription a notification belongs to.
pub fn subscription_of(params: &Value) -> Option<&str> {
    params.get("subscription").and_then(Value::as_str)
}

/// The `--json` form of a notification: its params plus `"event": METHOD`, on one line.
pub fn json_line(method: &str, params: Value) -> String {
    let mut object = match params {
        Value::Object(fields) => fields,
        other => {
            let mut fields = Map::new();
            fields.insert("params".into(), other);
            fields
        }
    };
    object.insert("event".into(), Value::String(method.to_string()));
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// A set of event kinds (what is subscribed to, what is printed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub fn of(kinds: &[EventKind]) -> Kinds {
        kinds.iter().fold(Kinds::default(), |set, k| set.with(*k))
    }

    pub fn with(self, kind: EventKind) -> Kinds {
        Kinds(self.0 | Kinds::bit(kind))
    }

    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & Kinds::bit(kind) != 0
    }

    /// In the protocol's order, for `events` in `sessions.subscribe`.
    pub fn to_vec(self) -> Vec<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|k| self.contains(*k))
            .collect()
    }

    fn bit(kind: EventKind) -> u8 {
        1 << (kind as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notifications_parse_and_know_their_kind() {
        let params = json!({"subscription": "s1", "sessionKey": "k", "runId": "r", "stream": "tool",
            "seq": 3, "data": {"phase": "start", "id": "t1", "name": "grep"}});
        assert_eq!(event_kind("run.event", &params), Some(EventKind::Tool));
        assert!(matches!(
            LiveEvent::parse("run.event", &params).unwrap(),
            Some(LiveEvent::Run(e)) if e.seq == 3
        ));
        assert_eq!(
            event_kind("sessions.changed", &json!({})),
            Some(EventKind::Lifecycle)
        );
        assert_eq!(
            event_kind("session.message", &json!({})),
            Some(EventKind::Message)
        );
        assert_eq!(event_kind("subscription.lagged", &json!({})), None);
        assert!(
            LiveEvent::parse("something.new", &json!({}))
                .unwrap()
                .is_none()
        );
        assert!(LiveEvent::parse("session.message", &json!({"x": 1})).is_err());
        assert_eq!(subscription_of(&params), Some("s1"));
    }

    #[test]
    fn json_line_is_the_params_plus_the_method() {
        let line = json_line(
            "subscription.ended",
            json!({"subscription": "s1", "reason": "deleted", "future": [1]}),
        );
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back,
            json!({"event": "subscription.ended", "subscription": "s1", "reason": "deleted", "future": [1]})
        );
    }

    #[test]
    fn kinds_are_a_set_in_protocol_order() {
        let k = Kinds::of(&[EventKind::Tool, EventKind::Message]).with(EventKind::Tool);
        assert_eq!(k.to_vec(), [EventKind::Message, EventKind::Tool]);
        assert!(k.contains(EventKind::Message) && !k.contains(EventKind::Usage));
        assert_eq!(Kinds::default().to_vec(), []);
        assert_eq!(Kinds::of(&EventKind::ALL).to_vec(), EventKind::ALL);
    }
}
