//! Which transcript messages and run events a follow has already printed.

use std::collections::HashMap;

use openclaw::protocol::RunEventParams;

use super::outcome::ended_status;

/// What a follow has printed of the transcript, so it resumes after a reconnect exactly where
/// it stopped and never prints a message twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqCursor {
    /// The newest seq printed (or skipped on purpose: everything before the start point).
    /// `None` until the first subscription tells where "now" is, when following from now on.
    last: Option<u64>,
}

/// What to do with a transcript message that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// New: print it.
    New,
    /// New, but messages between the last one and it never came (a daemon bug; print anyway).
    AfterGap { missing_from: u64 },
    /// Printed before (a reconnect's overlap): skip it.
    Duplicate,
}

impl SeqCursor {
    /// `after`: the start point from `--from-start` (0) or `--since SEQ`; `None` follows from
    /// the newest message at the time of subscribing.
    pub fn new(after: Option<u64>) -> SeqCursor {
        SeqCursor { last: after }
    }

    /// `afterSeq` for the next `sessions.subscribe`.
    pub fn after_seq(&self) -> Option<u64> {
        self.last
    }

    /// The newest seq printed so far (or the start point).
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// A subscription started; without a start point it began after `last_seq` (its result),
    /// which a reconnect must resume from.
    pub fn subscribed(&mut self, last_seq: Option<u64>) {
        if self.last.is_none() {
            self.last = Some(last_seq.unwrap_or(0));
        }
    }

    /// Records a message's arrival.
    pub fn admit(&mut self, seq: u64) -> Admit {
        match self.last.replace(seq) {
            Some(last) if seq <= last => {
                self.last = Some(last);
                Admit::Duplicate
            }
            Some(last) if seq > last + 1 => Admit::AfterGap {
                missing_from: last + 1,
            },
            _ => Admit::New,
        }
    }

    /// Whether every message up to `seq` has arrived.
    pub fn reached(&self, seq: u64) -> bool {
        self.last.unwrap_or(0) >= seq
    }
}

/// Run events seen, per run, so an overlap never shows one twice. Runs are forgotten when
/// they end.
#[derive(Debug, Default)]
pub struct RunSeqs(HashMap<String, u64>);

impl RunSeqs {
    /// Whether the event is new (and records it).
    pub fn admit(&mut self, event: &RunEventParams) -> bool {
        let last = self.0.entry(event.run_id.clone()).or_insert(0);
        if event.seq <= *last {
            return false;
        }
        *last = event.seq;
        if ended_status(event).is_some() {
            self.0.remove(&event.run_id);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::test_support::run_event;
    use serde_json::json;

    #[test]
    fn cursor_from_now_starts_after_the_newest_seq_at_subscribe() {
        let mut c = SeqCursor::new(None);
        assert_eq!(c.after_seq(), None);
        c.subscribed(Some(41));
        assert_eq!(c.after_seq(), Some(41));
        assert_eq!(c.admit(41), Admit::Duplicate);
        assert_eq!(c.admit(42), Admit::New);
        // A resubscription does not move the cursor: it resumes after what was printed.
        c.subscribed(Some(50));
        assert_eq!(c.after_seq(), Some(42));
        assert!(c.reached(42) && !c.reached(43));
    }

    #[test]
    fn cursor_of_an_empty_session_starts_at_zero() {
        let mut c = SeqCursor::new(None);
        c.subscribed(None);
        assert_eq!(c.after_seq(), Some(0));
        assert_eq!(c.admit(1), Admit::New);
    }

    #[test]
    fn cursor_from_start_and_since() {
        let mut c = SeqCursor::new(Some(0));
        assert_eq!(c.after_seq(), Some(0));
        c.subscribed(Some(3));
        assert_eq!(c.after_seq(), Some(0));
        assert!(!c.reached(3));
        for seq in 1..=3 {
            assert_eq!(c.admit(seq), Admit::New);
        }
        assert!(c.reached(3));

        let mut c = SeqCursor::new(Some(41));
        assert_eq!(c.admit(40), Admit::Duplicate);
        assert_eq!(c.admit(42), Admit::New);
    }

    #[test]
    fn resume_after_reconnect_prints_nothing_twice() {
        let mut c = SeqCursor::new(Some(0));
        let mut printed = vec![];
        for seq in 1..=5 {
            if c.admit(seq) != Admit::Duplicate {
                printed.push(seq);
            }
        }
        // The connection drops; the new subscription resumes after 5, and a daemon that
        // overlaps anyway is filtered.
        assert_eq!(c.after_seq(), Some(5));
        for seq in 4..=7 {
            if c.admit(seq) != Admit::Duplicate {
                printed.push(seq);
            }
        }
        assert_eq!(printed, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn cursor_reports_gaps() {
        let mut c = SeqCursor::new(Some(2));
        assert_eq!(c.admit(5), Admit::AfterGap { missing_from: 3 });
        assert_eq!(c.admit(6), Admit::New);
    }

    #[test]
    fn run_seqs_drop_repeats_and_forget_ended_runs() {
        let mut seen = RunSeqs::default();
        let delta = |seq| run_event("r1", "assistant", seq, json!({"delta": "x"}));
        assert!(seen.admit(&delta(1)));
        assert!(seen.admit(&delta(3)));
        assert!(!seen.admit(&delta(2)));
        assert!(!seen.admit(&delta(3)));
        assert!(seen.admit(&run_event("r2", "assistant", 1, json!({}))));
        assert!(seen.admit(&run_event(
            "r1",
            "lifecycle",
            4,
            json!({"phase": "ended", "status": "ok"})
        )));
        assert!(!seen.0.contains_key("r1"));
    }
}
