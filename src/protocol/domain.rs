//! Domain values with a fixed set of spellings: session kinds, session statuses and lanes.
//! One definition for the daemon (which stores them as text) and for clients (which filter
//! and display them). Wire rows keep them as strings, so an older client reads a kind or a
//! status a newer daemon adds.

use serde::{Deserialize, Serialize};

use super::RunStatus;

/// What a session is, from its key (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// `agent:<id>:main`, an agent's own session.
    Main,
    /// `agent:<id>:subagent:<uuid>`, spawned by another session.
    Subagent,
    /// `agent:<id>:task:<uuid>`, spawned with no parent (from a shell, a script, cron).
    Task,
    /// `cron:<job>`, named by a scheduled job.
    Cron,
    /// `hook:<uuid>`, created by a webhook.
    Hook,
    /// Anything else (a key an operator made up).
    Other,
}

impl SessionKind {
    pub const ALL: [SessionKind; 6] = [
        SessionKind::Main,
        SessionKind::Subagent,
        SessionKind::Task,
        SessionKind::Cron,
        SessionKind::Hook,
        SessionKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Main => "main",
            SessionKind::Subagent => "subagent",
            SessionKind::Task => "task",
            SessionKind::Cron => "cron",
            SessionKind::Hook => "hook",
            SessionKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<SessionKind> {
        SessionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The lane its runs execute in: sub-agents and cron jobs have their own.
    pub fn lane(self) -> Lane {
        match self {
            SessionKind::Subagent => Lane::Subagent,
            SessionKind::Cron => Lane::Cron,
            _ => Lane::Main,
        }
    }
}

/// Where a session is: before its first run, or where its last run is or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// No run yet.
    Idle,
    /// The status of its newest run (`queued`, `running`, or how it ended).
    #[serde(untagged)]
    Run(RunStatus),
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Idle => "idle",
            SessionStatus::Run(r) => r.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<SessionStatus> {
        if s == "idle" {
            return Some(SessionStatus::Idle);
        }
        RunStatus::parse(s).map(SessionStatus::Run)
    }
}

/// A global lane: caps how many runs execute at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    Main,
    Subagent,
    Cron,
}

impl Lane {
    pub const ALL: [Lane; 3] = [Lane::Main, Lane::Subagent, Lane::Cron];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Main => "main",
            Lane::Subagent => "subagent",
            Lane::Cron => "cron",
        }
    }

    pub fn parse(s: &str) -> Option<Lane> {
        Lane::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Position in `Lane::ALL`, for arrays indexed by lane.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_string_and_serde() {
        for k in SessionKind::ALL {
            assert_eq!(SessionKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for l in Lane::ALL {
            assert_eq!(Lane::parse(l.as_str()), Some(l));
            assert_eq!(Lane::ALL[l.index()], l);
        }
        for s in ["idle", "queued", "running", "ok", "error", "interrupted"] {
            let status = SessionStatus::parse(s).unwrap();
            assert_eq!(status.as_str(), s);
            assert_eq!(serde_json::to_value(status).unwrap(), s);
            assert_eq!(
                serde_json::from_value::<SessionStatus>(s.into()).unwrap(),
                status
            );
        }
        assert_eq!(SessionStatus::parse("bogus"), None);
    }

    #[test]
    fn kinds_run_in_their_lanes() {
        assert_eq!(SessionKind::Subagent.lane(), Lane::Subagent);
        assert_eq!(SessionKind::Cron.lane(), Lane::Cron);
        assert_eq!(SessionKind::Main.lane(), Lane::Main);
        assert_eq!(SessionKind::Hook.lane(), Lane::Main);
    }
}
