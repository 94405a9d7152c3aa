//! Answers `session/request_permission` by the agent's configured policy.

use crate::config::AcpPermissions;
use agent_client_protocol_schema::v1::{
    PermissionOption, PermissionOptionKind, RequestPermissionOutcome, SelectedPermissionOutcome,
    ToolKind,
};

use super::events::PermissionOutcome;

/// Whether the policy lets a tool call of this kind run.
pub fn allows(policy: AcpPermissions, kind: ToolKind) -> bool {
    match policy {
        AcpPermissions::ApproveAll => true,
        AcpPermissions::DenyAll => false,
        AcpPermissions::ApproveReads => {
            matches!(kind, ToolKind::Read | ToolKind::Search | ToolKind::Fetch)
        }
    }
}

/// The answer to send and the decision to report. A turn being cancelled answers
/// `cancelled`, as ACP asks; otherwise the narrowest matching option is picked (once before
/// always), and `cancelled` when the agent offered none that matches.
pub fn decide(
    policy: AcpPermissions,
    kind: ToolKind,
    options: &[PermissionOption],
    turn_cancelled: bool,
) -> (RequestPermissionOutcome, PermissionOutcome) {
    if turn_cancelled {
        return (
            RequestPermissionOutcome::Cancelled,
            PermissionOutcome::Cancelled {
                reason: "the turn is being cancelled".into(),
            },
        );
    }
    let allow = allows(policy, kind);
    let preferred: [PermissionOptionKind; 2] = if allow {
        [
            PermissionOptionKind::AllowOnce,
            PermissionOptionKind::AllowAlways,
        ]
    } else {
        [
            PermissionOptionKind::RejectOnce,
            PermissionOptionKind::RejectAlways,
        ]
    };
    let chosen = preferred
        .iter()
        .find_map(|want| options.iter().find(|o| o.kind == *want));
    match chosen {
        Some(option) => {
            let option_id = option.option_id.0.to_string();
            let decision = if allow {
                PermissionOutcome::Allowed { option_id }
            } else {
                PermissionOutcome::Rejected { option_id }
            };
            (
                RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(
                    option.option_id.clone(),
                )),
                decision,
            )
        }
        None => (
            RequestPermissionOutcome::Cancelled,
            PermissionOutcome::Cancelled {
                reason: format!(
                    "the agent offered no {} option",
                    if allow { "allow" } else { "reject" }
                ),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Vec<PermissionOption> {
        vec![
            PermissionOption::new("always", "Always", PermissionOptionKind::AllowAlways),
            PermissionOption::new("once", "Once", PermissionOptionKind::AllowOnce),
            PermissionOption::new("no", "No", PermissionOptionKind::RejectOnce),
        ]
    }

    fn picked(policy: AcpPermissions, kind: ToolKind) -> PermissionOutcome {
        decide(policy, kind, &options(), false).1
    }

    #[test]
    fn approve_reads_allows_read_search_fetch_only() {
        for kind in [ToolKind::Read, ToolKind::Search, ToolKind::Fetch] {
            assert_eq!(
                picked(AcpPermissions::ApproveReads, kind),
                PermissionOutcome::Allowed {
                    option_id: "once".into()
                }
            );
        }
        for kind in [
            ToolKind::Edit,
            ToolKind::Execute,
            ToolKind::Delete,
            ToolKind::Other,
        ] {
            assert_eq!(
                picked(AcpPermissions::ApproveReads, kind),
                PermissionOutcome::Rejected {
                    option_id: "no".into()
                }
            );
        }
    }

    #[test]
    fn approve_all_and_deny_all() {
        assert_eq!(
            picked(AcpPermissions::ApproveAll, ToolKind::Execute),
            PermissionOutcome::Allowed {
                option_id: "once".into()
            }
        );
        assert_eq!(
            picked(AcpPermissions::DenyAll, ToolKind::Read),
            PermissionOutcome::Rejected {
                option_id: "no".into()
            }
        );
    }

    #[test]
    fn wire_answer_matches_the_decision() {
        let (answer, _) = decide(
            AcpPermissions::ApproveAll,
            ToolKind::Edit,
            &options(),
            false,
        );
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"outcome": "selected", "optionId": "once"})
        );
        let (answer, decision) =
            decide(AcpPermissions::ApproveAll, ToolKind::Edit, &options(), true);
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"outcome": "cancelled"})
        );
        assert!(matches!(decision, PermissionOutcome::Cancelled { .. }));
    }

    #[test]
    fn no_matching_option_answers_cancelled() {
        let only_allow = vec![PermissionOption::new(
            "ok",
            "OK",
            PermissionOptionKind::AllowAlways,
        )];
        let (answer, decision) =
            decide(AcpPermissions::DenyAll, ToolKind::Read, &only_allow, false);
        assert_eq!(answer, RequestPermissionOutcome::Cancelled);
        assert_eq!(
            decision,
            PermissionOutcome::Cancelled {
                reason: "the agent offered no reject option".into()
            }
        );
        let (_, decision) = decide(
            AcpPermissions::ApproveAll,
            ToolKind::Read,
            &only_allow,
            false,
        );
        assert_eq!(
            decision,
            PermissionOutcome::Allowed {
                option_id: "ok".into()
            }
        );
    }
}
