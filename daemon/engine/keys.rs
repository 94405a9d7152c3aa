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
        assert_eq!(kind_of("agent:main:main:x"), SessionKind::Other);
        assert_eq!(agent_of("agent:w:main"), Some("w"));
        assert_eq!(agent_of("cron:x"), None);
    }
}
