//! How domain values are stored: as their wire spelling, checked when read back, so a
//! damaged or foreign value is an error naming the column instead of a wrong guess.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::config::PolicyAction;
use crate::protocol::{
    Cleanup, Lane, ProvenanceKind, Role, RunStatus, SessionKind, SessionStatus, SpawnMode,
};

#[derive(Debug)]
struct Unknown {
    what: &'static str,
    value: String,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\" is not a {}", self.value, self.what)
    }
}

impl std::error::Error for Unknown {}

fn parse_text<T>(
    value: ValueRef<'_>,
    what: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> FromSqlResult<T> {
    let text = value.as_str()?;
    parse(text).ok_or_else(|| {
        FromSqlError::Other(Box::new(Unknown {
            what,
            value: text.chars().take(64).collect(),
        }))
    })
}

macro_rules! text_column {
    ($ty:ty, $what:literal, $as_str:expr, $parse:expr) => {
        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                parse_text(value, $what, $parse)
            }
        }
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                let text: &'static str = $as_str(*self);
                Ok(ToSqlOutput::from(text))
            }
        }
    };
}

text_column!(
    SessionKind,
    "session kind",
    SessionKind::as_str,
    SessionKind::parse
);
text_column!(
    SessionStatus,
    "session status",
    SessionStatus::as_str,
    SessionStatus::parse
);
text_column!(RunStatus, "run status", RunStatus::as_str, RunStatus::parse);
text_column!(Lane, "lane", Lane::as_str, Lane::parse);
text_column!(Role, "role", Role::as_str, Role::parse);
text_column!(
    ProvenanceKind,
    "provenance",
    ProvenanceKind::as_str,
    ProvenanceKind::parse
);
text_column!(Cleanup, "cleanup", cleanup_str, cleanup_parse);
text_column!(PolicyAction, "send policy", policy_str, policy_parse);
text_column!(SpawnMode, "spawn mode", mode_str, mode_parse);

fn mode_str(m: SpawnMode) -> &'static str {
    match m {
        SpawnMode::Run => "run",
        SpawnMode::Session => "session",
    }
}

fn mode_parse(s: &str) -> Option<SpawnMode> {
    match s {
        "run" => Some(SpawnMode::Run),
        "session" => Some(SpawnMode::Session),
        _ => None,
    }
}

pub fn cleanup_str(c: Cleanup) -> &'static str {
    match c {
        Cleanup::Keep => "keep",
        Cleanup::Delete => "delete",
    }
}

fn cleanup_parse(s: &str) -> Option<Cleanup> {
    match s {
        "keep" => Some(Cleanup::Keep),
        "delete" => Some(Cleanup::Delete),
        _ => None,
    }
}

pub fn policy_str(p: PolicyAction) -> &'static str {
    match p {
        PolicyAction::Allow => "allow",
        PolicyAction::Deny => "deny",
    }
}

fn policy_parse(s: &str) -> Option<PolicyAction> {
    match s {
        "allow" => Some(PolicyAction::Allow),
        "deny" => Some(PolicyAction::Deny),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn values_round_trip_and_unknown_ones_are_named() {
        let c = Connection::open_in_memory().unwrap();
        let kind: SessionKind = c
            .query_row("SELECT ?1", [SessionKind::Cron], |r| r.get(0))
            .unwrap();
        assert_eq!(kind, SessionKind::Cron);
        let status: SessionStatus = c
            .query_row("SELECT 'interrupted'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(status, SessionStatus::Run(RunStatus::Interrupted));
        let err = c
            .query_row("SELECT 'sideways'", [], |r| r.get::<_, Lane>(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"sideways\" is not a lane"), "{err}");
    }
}
