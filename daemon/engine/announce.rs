//! The announce: how a parent session hears that a child's run ended. Its Status comes from
//! the run's outcome, never from what the model wrote.

use crate::protocol::RunStatus;

/// A reply of exactly this (trimmed) asks for no announce.
pub const ANNOUNCE_SKIP: &str = "ANNOUNCE_SKIP";
/// Characters of the Result kept in the announce.
pub const MAX_RESULT_CHARS: usize = 4000;

pub struct ChildRun<'a> {
    pub status: RunStatus,
    pub reply: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Output of the run's last tool result, used when the reply is empty.
    pub last_tool_output: Option<&'a str>,
    pub runtime_ms: Option<i64>,
    pub tokens: Option<i64>,
    pub session_key: &'a str,
    pub session_id: &'a str,
}

/// The announce text, or `None` when the child asked for none.
pub fn announce_text(run: &ChildRun<'_>) -> Option<String> {
    let reply = run.reply.map(str::trim).unwrap_or("");
    if reply == ANNOUNCE_SKIP {
        return None;
    }
    let result = if reply.is_empty() {
        run.last_tool_output.unwrap_or("").trim()
    } else {
        reply
    };
    let mut notes = Vec::new();
    if let Some(e) = run.error.filter(|e| !e.is_empty()) {
        notes.push(e.to_string());
    }
    let result: String = if result.chars().count() > MAX_RESULT_CHARS {
        notes.push(format!("result truncated to {MAX_RESULT_CHARS} characters"));
        result.chars().take(MAX_RESULT_CHARS).collect()
    } else {
        result.to_string()
    };
    let mut stats = Vec::new();
    if let Some(ms) = run.runtime_ms {
        stats.push(format!("runtime {:.1}s", ms as f64 / 1000.0));
    }
    if let Some(t) = run.tokens {
        stats.push(format!("tokens {t}"));
    }
    stats.push(format!("sessionKey {}", run.session_key));
    stats.push(format!("sessionId {}", run.session_id));
    let mut text = format!("Status: {}\nResult: {result}\n", run.status.as_str());
    if !notes.is_empty() {
        text.push_str(&format!("Notes: {}\n", notes.join("; ")));
    }
    text.push_str(&format!("Stats: {}", stats.join(" · ")));
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(status: RunStatus, reply: Option<&'a str>, error: Option<&'a str>) -> ChildRun<'a> {
        ChildRun {
            status,
            reply,
            error,
            last_tool_output: None,
            runtime_ms: Some(1234),
            tokens: None,
            session_key: "agent:w:subagent:1",
            session_id: "sid-1",
        }
    }

    #[test]
    fn ok_run_with_a_reply() {
        let text = announce_text(&run(RunStatus::Ok, Some("HELLO\n"), None)).unwrap();
        assert_eq!(
            text,
            "Status: ok\nResult: HELLO\nStats: runtime 1.2s · sessionKey agent:w:subagent:1 · sessionId sid-1"
        );
    }

    #[test]
    fn status_comes_from_the_outcome_and_errors_go_to_notes() {
        let text = announce_text(&run(
            RunStatus::Error,
            None,
            Some("`x` exited with status 3: boom"),
        ))
        .unwrap();
        assert!(
            text.starts_with("Status: error\nResult: \nNotes: `x` exited with status 3: boom\n"),
            "{text}"
        );
        // A reply claiming success does not change the status.
        let text = announce_text(&run(
            RunStatus::Timeout,
            Some("Status: ok"),
            Some("too slow"),
        ))
        .unwrap();
        assert!(text.starts_with("Status: timeout\n"), "{text}");
    }

    #[test]
    fn empty_reply_falls_back_to_the_last_tool_result() {
        let mut r = run(RunStatus::Ok, Some(""), None);
        r.last_tool_output = Some("42 files");
        r.tokens = Some(9);
        let text = announce_text(&r).unwrap();
        assert!(text.contains("Result: 42 files\n"), "{text}");
        assert!(text.contains("tokens 9"), "{text}");
    }

    #[test]
    fn skip_suppresses_and_long_results_are_truncated_with_a_note() {
        assert!(announce_text(&run(RunStatus::Ok, Some(" ANNOUNCE_SKIP\n"), None)).is_none());
        let long = "x".repeat(MAX_RESULT_CHARS + 10);
        let text = announce_text(&run(RunStatus::Ok, Some(&long), None)).unwrap();
        assert!(text.contains(&format!(
            "Notes: result truncated to {MAX_RESULT_CHARS} characters"
        )));
        assert!(!text.contains(&"x".repeat(MAX_RESULT_CHARS + 1)));
    }
}
