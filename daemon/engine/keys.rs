//! Session keys: `agent:<agentId>:main`, `agent:<agentId>:subagent:<uuid>`, `cron:<jobId>`,
//! `hook:<uuid>`. A key a user types without a prefix lives under the default agent.

use crate::protocol::SessionKind;

/// The full key for what a user typed.
pub fn normalize(input: &str, default_agent: &str) -> String {
    if input.starts_with("agent:") || input.starts_with("cron:") || input.starts_with("hook:") {
        input.to_string()
    } else {
        format!("agent:{default_agent}:{input}")
    }
}

/// The kind of session a key names.
pub fn kind_of(key: &str) -> SessionKind {
    let mut parts = key.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("agent"), Some(_), Some("main")) if parts.next().is_none() => SessionKind::Main,
        (Some("agent"), Some(_), Some("subagent")) => SessionKind::Subagent,
        (Some("agent"), Some(_), Some("task")) => SessionKind::Task,
        (Some("cron"), _, _) => SessionKind::Cron,
        (Some("hook"), _, _) => SessionKind::Hook,
        _ => SessionKind::Other,
    }
}

/// The agent a key belongs to, for `agent:<id>:...` keys.
pub fn agent_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("agent:")?;
    rest.split(':').next().filter(|id| !id.is_empty())
}

/// The agent whose main session a key names (`agent:<id>:main`).
pub fn agent_of_main(key: &str) -> Option<&str> {
    if kind_of(key) == SessionKind::Main {
        agent_of(key)
    } else {
        None
    }
}

pub fn subagent_key(agent_id: &str, uuid: &str) -> String {
    format!("agent:{agent_id}:subagent:{uuid}")
}

/// The key of a session spawned with no parent.
pub fn task_key(agent_id: &str, uuid: &str) -> String {
    format!("agent:{agent_id}:task:{uuid}")
}

/// A key a script names its session by (`cron:<job>`, `hook:<name>`): checked, with its kind.
pub fn named_key(key: &str) -> Result<SessionKind, String> {
    let (kind, name) = match key.split_once(':') {
        Some(("cron", name)) => (SessionKind::Cron, name),
        Some(("hook", name)) => (SessionKind::Hook, name),
        _ => {
            return Err(format!(
                "key \"{}\" must be cron:NAME or hook:NAME (the session's kind and lane come from its prefix)",
                key.chars().take(64).collect::<String>()
            ));
        }
    };
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
    if !ok {
        return Err(format!(
            "key \"{}\": the name after the prefix must be 1 to 128 letters, digits or - _ . : @",
            key.chars().take(64).collect::<String>()
        ));
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_live_under_the_default_agent() {
        assert_eq!(normalize("main", "main"), "agent:main:main");
        assert_eq!(normalize("agent:w:main", "main"), "agent:w:main");
        assert_eq!(normalize("cron:daily", "main"), "cron:daily");
    }

    #[test]
    fn kinds_and_agents() {
        assert_eq!(kind_of("agent:main:main"), SessionKind::Main);
        assert_eq!(kind_of("agent:w:subagent:123"), SessionKind::Subagent);
        assert_eq!(kind_of("cron:daily"), SessionKind::Cron);
        assert_eq!(kind_of("hook:1"), SessionKind::Hook);
        assert_eq!(kind_of("agent:w:task:9"), SessionKind::Task);
        assert_eq!(named_key("cron:nightly"), Ok(SessionKind::Cron));
        assert_eq!(named_key("hook:github-1"), Ok(SessionKind::Hook));
        assert!(named_key("agent:main:main").is_err());
        assert!(named_key("cron:").is_err());
        assert!(named_key("cron:two words").is_err());
        assert_eq!(kind_of("agent:main:main:x"), SessionKind::Other);
        assert_eq!(agent_of("agent:w:main"), Some("w"));
        assert_eq!(agent_of("cron:x"), None);
    }
}
