//! What a follow shows and when it is over, from the flags of `follow` or of `spawn
//! --follow` and from what the output is (a terminal, JSON).

use clap::Args;
use openclaw::protocol::EventKind;

use crate::stream::events::Kinds;

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Session: key, id, unique prefix (6+ characters) or label
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Print the whole transcript first, then new messages
    #[arg(long, conflicts_with = "since")]
    pub from_start: bool,
    /// Print every message after seq SEQ first, then new ones
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
    /// Exit when the session's active run ends, with its outcome as exit status (no active run: once caught up, with the last run's)
    #[arg(long)]
    pub until_done: bool,
    /// What to print, comma-separated (default: message; with --until-done also assistant on a terminal, lifecycle with --json)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub events: Vec<EventKind>,
    /// Show each message's time (RFC 3339, UTC)
    #[arg(long)]
    pub timestamps: bool,
    /// When the daemon goes away, reconnect (starting it if needed) and resume after the last message printed
    #[arg(long)]
    pub retry: bool,
}

/// When a follow is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// Ctrl-C, a closed stdout, the session's deletion, or the daemon's end.
    Interrupted,
    /// The run active when following starts ends (`--until-done`).
    ActiveRunEnds,
    /// This run ends (`spawn --follow`).
    RunEnds(String),
}

/// A follow, from the flags of `follow` or of `spawn --follow`.
#[derive(Debug, Clone)]
pub struct Follow {
    pub key: String,
    /// Where to start: `None` from now on, `Some(0)` from the start, `Some(n)` after seq n.
    pub after_seq: Option<u64>,
    pub until: Until,
    /// What to print.
    pub shown: Kinds,
    pub timestamps: bool,
    pub retry: bool,
    /// Show a spinner while nothing streams (a follow that waits for a run, on a terminal).
    pub spinner: bool,
}

/// What the output is, for the defaults that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub json: bool,
    /// stdout is a terminal: show the assistant's text as it streams.
    pub tty: bool,
}

impl Follow {
    pub fn from_args(args: FollowArgs, output: Output) -> Follow {
        let until = if args.until_done {
            Until::ActiveRunEnds
        } else {
            Until::Interrupted
        };
        let shown = if args.events.is_empty() {
            default_shown(&until, output)
        } else {
            Kinds::of(&args.events)
        };
        Follow {
            key: args.key,
            after_seq: if args.from_start { Some(0) } else { args.since },
            spinner: until != Until::Interrupted && output.tty && !output.json,
            until,
            shown,
            timestamps: args.timestamps,
            retry: args.retry,
        }
    }

    /// `spawn --follow`: the new session's whole transcript until the spawn's run ends.
    pub fn spawned(key: String, run_id: String, events: &[EventKind], output: Output) -> Follow {
        let until = Until::RunEnds(run_id);
        Follow {
            key,
            after_seq: Some(0),
            shown: if events.is_empty() {
                default_shown(&until, output)
            } else {
                Kinds::of(events)
            },
            until,
            timestamps: false,
            retry: false,
            spinner: output.tty && !output.json,
        }
    }

    /// What to subscribe to: what is printed, plus what the follow itself needs: messages to
    /// know where it is (to stop or to resume), lifecycle to see a run end (and to end a line
    /// of streamed text).
    pub fn subscribed(&self, json: bool) -> Kinds {
        let mut kinds = self.shown;
        if self.until != Until::Interrupted || self.retry {
            kinds = kinds.with(EventKind::Message);
        }
        if self.until != Until::Interrupted || (!json && self.shown.contains(EventKind::Assistant))
        {
            kinds = kinds.with(EventKind::Lifecycle);
        }
        kinds
    }
}

/// Messages; a follow that waits for a run also shows, to a person on a terminal, the reply
/// as it is written, and gives a script reading JSON the lifecycle events (people read the
/// outcome in the exit status and on stderr).
fn default_shown(until: &Until, output: Output) -> Kinds {
    let kinds = Kinds::of(&[EventKind::Message]);
    match until {
        Until::Interrupted => kinds,
        _ if output.json => kinds.with(EventKind::Lifecycle),
        _ if output.tty => kinds.with(EventKind::Assistant),
        _ => kinds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::{parse, refused};

    const PIPE: Output = Output {
        json: false,
        tty: false,
    };
    const JSON: Output = Output {
        json: true,
        tty: false,
    };
    const TTY: Output = Output {
        json: false,
        tty: true,
    };

    fn follow_args(args: &[&str]) -> FollowArgs {
        let mut argv = vec!["follow"];
        argv.extend_from_slice(args);
        match parse(&argv) {
            SessionsCommand::Follow(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn follow_start_points() {
        let f = Follow::from_args(follow_args(&["k"]), PIPE);
        assert_eq!((f.after_seq, f.until.clone()), (None, Until::Interrupted));
        assert_eq!(
            Follow::from_args(follow_args(&["k", "--from-start"]), PIPE).after_seq,
            Some(0)
        );
        assert_eq!(
            Follow::from_args(follow_args(&["k", "--since", "41"]), PIPE).after_seq,
            Some(41)
        );
        assert_eq!(refused(&["follow", "k", "--from-start", "--since", "3"]), 2);
    }

    #[test]
    fn events_default_to_messages_plus_what_the_follow_needs() {
        let f = Follow::from_args(follow_args(&["k"]), PIPE);
        assert_eq!(f.shown.to_vec(), [EventKind::Message]);
        assert_eq!(f.subscribed(false).to_vec(), [EventKind::Message]);

        let f = Follow::from_args(follow_args(&["k", "--until-done"]), PIPE);
        assert_eq!(f.shown.to_vec(), [EventKind::Message]);
        assert_eq!(
            f.subscribed(false).to_vec(),
            [EventKind::Message, EventKind::Lifecycle]
        );
        assert!(!f.spinner);
        let f = Follow::from_args(follow_args(&["k", "--until-done", "--json"]), JSON);
        assert_eq!(f.shown.to_vec(), [EventKind::Message, EventKind::Lifecycle]);

        // Asked-for kinds are shown; the follow adds what it needs without showing it.
        let f = Follow::from_args(
            follow_args(&["k", "--events", "assistant,tool", "--until-done"]),
            JSON,
        );
        assert_eq!(f.shown.to_vec(), [EventKind::Assistant, EventKind::Tool]);
        assert_eq!(
            f.subscribed(true).to_vec(),
            [
                EventKind::Message,
                EventKind::Lifecycle,
                EventKind::Assistant,
                EventKind::Tool
            ]
        );
        let f = Follow::from_args(follow_args(&["k", "--events", "assistant"]), JSON);
        assert_eq!(f.subscribed(true).to_vec(), [EventKind::Assistant]);
        // People get a line of streamed text closed when its run ends.
        assert_eq!(
            f.subscribed(false).to_vec(),
            [EventKind::Lifecycle, EventKind::Assistant]
        );
        let f = Follow::from_args(follow_args(&["k", "--events", "usage", "--retry"]), PIPE);
        assert_eq!(
            f.subscribed(false).to_vec(),
            [EventKind::Message, EventKind::Usage]
        );
    }

    #[test]
    fn on_a_terminal_a_follow_that_waits_for_a_run_streams_the_reply_with_a_spinner() {
        let f = Follow::from_args(follow_args(&["k", "--until-done"]), TTY);
        assert_eq!(f.shown.to_vec(), [EventKind::Message, EventKind::Assistant]);
        assert!(f.spinner);
        // A plain follow stays as it was.
        let f = Follow::from_args(follow_args(&["k"]), TTY);
        assert_eq!(f.shown.to_vec(), [EventKind::Message]);
        assert!(!f.spinner);
        let f = Follow::spawned("k".into(), "r".into(), &[], TTY);
        assert_eq!(f.shown.to_vec(), [EventKind::Message, EventKind::Assistant]);
        assert!(f.spinner);
        let f = Follow::spawned("k".into(), "r".into(), &[EventKind::Tool], TTY);
        assert_eq!(f.shown.to_vec(), [EventKind::Tool]);
    }

    #[test]
    fn unknown_event_kind_is_a_usage_error() {
        assert_eq!(refused(&["follow", "k", "--events", "message,nope"]), 2);
    }

    #[test]
    fn spawn_follow_reads_from_the_start_until_its_run_ends() {
        let f = Follow::spawned("k".into(), "r1".into(), &[], PIPE);
        assert_eq!(f.after_seq, Some(0));
        assert_eq!(f.until, Until::RunEnds("r1".into()));
        assert_eq!(f.shown.to_vec(), [EventKind::Message]);
    }
}
