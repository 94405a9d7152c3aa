//! The service's policies as pure functions of what they decide on, so each is tested
//! without a daemon: visibility from inside a session, the send policy, sub-agent depth.

use crate::config::{PolicyAction, SendPolicyConfig, Visibility};
use crate::daemon::engine::Acting;
use crate::daemon::store::{Scope, SessionRecord};

/// What a run may see, as a store filter.
pub fn scope_of(me: Option<&Acting>, owner: Option<&str>, visibility: Visibility) -> Scope {
    if let Some(fp) = owner {
        return Scope::Owner(fp.to_string());
    }
    match (me, visibility) {
        (None, _) | (Some(_), Visibility::All) => Scope::All,
        (Some(me), Visibility::Own) => Scope::Only(me.session_key.clone()),
        (Some(me), Visibility::Tree) => Scope::Tree(me.session_key.clone()),
        (Some(me), Visibility::Agent) => Scope::Agent(me.agent_id.clone()),
    }
}

/// Whether a run sees a session, given whether the session is in the run's tree (asked
/// only when the answer depends on it: see [`needs_tree`]).
pub fn run_sees(
    me: &Acting,
    visibility: Visibility,
    target: &SessionRecord,
    in_tree: bool,
) -> bool {
    match visibility {
        Visibility::All => true,
        Visibility::Own => target.key == me.session_key,
        Visibility::Agent => target.agent_id == me.agent_id,
        Visibility::Tree => target.key == me.session_key || in_tree,
    }
}

/// Whether deciding [`run_sees`] needs the tree walk (a store read).
pub fn needs_tree(me: &Acting, visibility: Visibility, target: &SessionRecord) -> bool {
    visibility == Visibility::Tree && target.key != me.session_key
}

/// Sends between sessions follow the target's own override, else the configured rules.
/// The refusal names what decided it.
pub fn check_send(
    policy: &SendPolicyConfig,
    from: &str,
    target: &SessionRecord,
) -> Result<(), String> {
    let (action, why) = match target.send_policy {
        Some(PolicyAction::Allow) => (PolicyAction::Allow, String::new()),
        Some(PolicyAction::Deny) => (
            PolicyAction::Deny,
            "the session's own sendPolicy override (deny)".to_string(),
        ),
        None => policy.decide(&target.key, target.kind.as_str(), &target.agent_id),
    };
    if action == PolicyAction::Deny {
        return Err(format!(
            "session {from} may not send to {}: denied by {why}; the operator can allow it with `openclaw sessions patch {} --send-policy allow`",
            target.key, target.key
        ));
    }
    Ok(())
}

/// The depth a new child gets under a parent of `parent_depth`, or the refusal.
pub fn child_depth(parent_depth: Option<i64>, max_depth: u32) -> Result<i64, String> {
    let depth = parent_depth.map_or(0, |d| d + 1);
    let max = max_depth as i64;
    if depth > max {
        return Err(format!(
            "this spawn would nest sub-agents {depth} deep, and subagents.max_depth is {max}; set max_depth = {depth} under [subagents] in config.toml to allow it"
        ));
    }
    Ok(depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SendRule;
    use crate::protocol::{Cleanup, SessionStatus};

    pub fn record(key: &str, agent: &str) -> SessionRecord {
        SessionRecord {
            sid: 1,
            id: "id".into(),
            key: key.into(),
            agent_id: agent.into(),
            kind: crate::daemon::engine::kind_of(key),
            label: None,
            parent_key: None,
            model: None,
            status: SessionStatus::Idle,
            active_run_id: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            ended_at: None,
            runtime_ms: None,
            tokens: None,
            message_count: 0,
            last_preview: None,
            archived: false,
            send_policy: None,
            cleanup: Cleanup::Keep,
            spawn_depth: 0,
            owner: None,
            children: 0,
            agent_session_id: None,
            stream_to: None,
        }
    }

    fn me() -> Acting {
        Acting {
            run_id: "r".into(),
            sid: 1,
            session_key: "agent:main:main".into(),
            agent_id: "main".into(),
            spawn_depth: 0,
        }
    }

    #[test]
    fn visibility_from_inside_a_session() {
        let me = me();
        let own = record("agent:main:main", "main");
        let other = record("agent:w:main", "w");
        let sibling = record("agent:main:subagent:x", "main");
        assert!(run_sees(&me, Visibility::Own, &own, false));
        assert!(!run_sees(&me, Visibility::Own, &sibling, true));
        assert!(run_sees(&me, Visibility::Agent, &sibling, false));
        assert!(!run_sees(&me, Visibility::Agent, &other, true));
        assert!(run_sees(&me, Visibility::Tree, &sibling, true));
        assert!(!run_sees(&me, Visibility::Tree, &sibling, false));
        assert!(run_sees(&me, Visibility::All, &other, false));
        assert!(!needs_tree(&me, Visibility::Tree, &own));
        assert!(needs_tree(&me, Visibility::Tree, &sibling));
        assert!(!needs_tree(&me, Visibility::Agent, &sibling));
    }

    #[test]
    fn scopes_for_each_caller() {
        let me = me();
        assert_eq!(scope_of(None, None, Visibility::Own), Scope::All);
        assert_eq!(
            scope_of(Some(&me), None, Visibility::Tree),
            Scope::Tree("agent:main:main".into())
        );
        assert_eq!(
            scope_of(Some(&me), None, Visibility::Agent),
            Scope::Agent("main".into())
        );
        assert_eq!(
            scope_of(None, Some("fp"), Visibility::All),
            Scope::Owner("fp".into())
        );
    }

    #[test]
    fn send_policy_override_beats_the_rules() {
        let policy = SendPolicyConfig {
            default: PolicyAction::Allow,
            rules: vec![SendRule {
                name: Some("no cron".into()),
                action: PolicyAction::Deny,
                key_prefix: Some("cron:".into()),
                kind: None,
                agent_id: None,
            }],
        };
        let mut cron = record("cron:nightly", "main");
        let err = check_send(&policy, "agent:main:main", &cron).unwrap_err();
        assert!(err.contains("send policy rule \"no cron\""), "{err}");
        cron.send_policy = Some(PolicyAction::Allow);
        assert!(check_send(&policy, "agent:main:main", &cron).is_ok());
        let mut main = record("agent:w:main", "w");
        assert!(check_send(&policy, "x", &main).is_ok());
        main.send_policy = Some(PolicyAction::Deny);
        let err = check_send(&policy, "x", &main).unwrap_err();
        assert!(err.contains("own sendPolicy override"), "{err}");
    }

    #[test]
    fn depth_is_limited() {
        assert_eq!(child_depth(None, 1), Ok(0));
        assert_eq!(child_depth(Some(0), 1), Ok(1));
        let err = child_depth(Some(1), 1).unwrap_err();
        assert!(err.contains("max_depth = 2"), "{err}");
        assert_eq!(child_depth(Some(1), 2), Ok(2));
    }
}
