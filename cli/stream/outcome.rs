//! What a run's end means for the exit status of a command that waited for it.

use openclaw::protocol::{RunEventParams, RunResult, RunStatus, WaitStatus};
use serde_json::Value;

use crate::failure::Failure;

/// The status a run ended with, if this event is its lifecycle `ended`.
pub fn ended_status(event: &RunEventParams) -> Option<RunEnd> {
    if event.stream != "lifecycle"
        || event.data.get("phase").and_then(Value::as_str) != Some("ended")
    {
        return None;
    }
    let status = event.data.get("status").and_then(Value::as_str);
    Some(RunEnd {
        status: status.and_then(RunStatus::parse),
        raw_status: status.unwrap_or("unknown").to_string(),
        error: event
            .data
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// How a run ended, from its lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub status: Option<RunStatus>,
    raw_status: String,
    pub error: Option<String>,
}

/// The exit status a run's end gives a command that waited for it: nothing for `ok`, exit 1
/// with the run's error for anything else (SPEC §9).
pub fn end_failure(run_id: &str, end: &RunEnd) -> Option<Failure> {
    match end.status {
        Some(RunStatus::Ok) => None,
        Some(status) => Some(run_failure(run_id, status, end.error.as_deref())),
        None => Some(Failure::failed(format!(
            "run {run_id} ended with status {}, which this openclaw does not know",
            end.raw_status
        ))),
    }
}

/// Exit 1 and what went wrong, for a run that ended in any way but `ok`.
pub fn run_failure(run: &str, status: RunStatus, error: Option<&str>) -> Failure {
    let detail = error.map(str::trim_end).filter(|d| !d.is_empty());
    let what = match status {
        RunStatus::Timeout => format!("run {run} timed out (its run timeout ran out)"),
        RunStatus::Aborted => format!("run {run} was aborted"),
        // The daemon's own note says why (it stopped, it was killed); only without one is the
        // cause given here, so the reason is never said twice.
        RunStatus::Interrupted if detail.is_some() => format!("run {run} was interrupted"),
        RunStatus::Interrupted => {
            format!("run {run} was interrupted: the daemon stopped while it was running")
        }
        RunStatus::Error => format!("run {run} failed"),
        other => format!("run {run} ended with status {}", other.as_str()),
    };
    let message = match detail {
        Some(detail) if detail.contains('\n') => format!("{what}:\n{detail}"),
        Some(detail) => format!("{what}: {detail}"),
        None => what,
    };
    Failure::failed(message).with_kind("run_failed")
}

/// What a `runs.wait` with no wait says about a run a command wants to see end.
#[derive(Debug)]
pub enum RunState {
    /// Still queued or running: its lifecycle `ended` is still to come.
    Going { run_id: String },
    /// Over; the failure to exit with, if it did not end `ok`.
    Over(Option<Failure>),
}

pub fn run_state(result: &RunResult) -> RunState {
    match result.status {
        WaitStatus::Accepted | WaitStatus::Timeout if !result.run_status.is_final() => {
            RunState::Going {
                run_id: result.run_id.clone(),
            }
        }
        _ => match result.run_status {
            RunStatus::Ok => RunState::Over(None),
            RunStatus::Queued | RunStatus::Running => RunState::Going {
                run_id: result.run_id.clone(),
            },
            status => RunState::Over(Some(run_failure(
                &result.run_id,
                status,
                result.error.as_deref(),
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Exit;
    use crate::stream::test_support::run_event;
    use serde_json::json;

    fn end(status: &str, error: Option<&str>) -> RunEnd {
        let mut data = json!({"phase": "ended", "status": status});
        if let Some(e) = error {
            data["error"] = json!(e);
        }
        ended_status(&run_event("r1", "lifecycle", 9, data)).unwrap()
    }

    #[test]
    fn run_end_maps_to_exit_status() {
        assert!(end_failure("r1", &end("ok", None)).is_none());
        for (status, needle) in [
            ("error", "run r1 failed: boom"),
            ("timeout", "timed out"),
            ("aborted", "was aborted"),
            ("interrupted", "interrupted"),
            ("strange", "status strange"),
        ] {
            let f = end_failure("r1", &end(status, Some("boom"))).unwrap();
            assert_eq!(f.exit, Exit::Failed, "{status}");
            let message = f.message.unwrap();
            assert!(message.contains(needle), "{status}: {message}");
        }
        let f = end_failure(
            "r1",
            &end(
                "interrupted",
                Some("the daemon stopped while this run was active"),
            ),
        )
        .unwrap();
        assert_eq!(
            f.message.unwrap(),
            "run r1 was interrupted: the daemon stopped while this run was active"
        );
        let f = end_failure("r1", &end("interrupted", None)).unwrap();
        assert!(f.message.unwrap().contains("the daemon stopped"));
        let f = end_failure("r1", &end("error", Some("line 1\nline 2\n"))).unwrap();
        assert_eq!(f.message.unwrap(), "run r1 failed:\nline 1\nline 2");
    }

    #[test]
    fn only_lifecycle_ended_is_an_end() {
        let started = run_event("r1", "lifecycle", 1, json!({"phase": "started"}));
        assert!(ended_status(&started).is_none());
        let tool = run_event("r1", "tool", 2, json!({"phase": "ended"}));
        assert!(ended_status(&tool).is_none());
    }

    fn result(status: WaitStatus, run_status: RunStatus) -> RunResult {
        RunResult {
            run_id: "r1".into(),
            session_key: "k".into(),
            status,
            run_status,
            reply: None,
            error: Some("boom".into()),
        }
    }

    #[test]
    fn a_zero_wait_tells_going_from_over() {
        assert!(matches!(
            run_state(&result(WaitStatus::Timeout, RunStatus::Running)),
            RunState::Going { run_id } if run_id == "r1"
        ));
        assert!(matches!(
            run_state(&result(WaitStatus::Accepted, RunStatus::Queued)),
            RunState::Going { .. }
        ));
        assert!(matches!(
            run_state(&result(WaitStatus::Ok, RunStatus::Ok)),
            RunState::Over(None)
        ));
        let RunState::Over(Some(f)) = run_state(&result(WaitStatus::Error, RunStatus::Aborted))
        else {
            panic!()
        };
        assert_eq!(f.exit, Exit::Failed);
        assert_eq!(f.message.unwrap(), "run r1 was aborted: boom");
    }
}
