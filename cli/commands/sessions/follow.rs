//! `sessions follow`, and `spawn --follow` once the spawn has answered: a transcript as it
//! grows, until Ctrl-C, the end of a run, or the reader of stdout going away. Nothing here
//! polls or sleeps: the wait is poll(2) on the socket, the Ctrl-C pipe and stdout together.

use std::time::Duration;

use openclaw::client::blocking::Wait;
use openclaw::protocol::{
    DaemonStatus, EventKind, HistoryParams, HistoryResult, NoParams, RunResult, SpawnResult,
    SubscribeParams, SubscribeResult, WaitParams, methods,
};
use serde_json::Value;

use super::super::{Context, typed};
use super::follow_plan::{Follow, FollowArgs, Output, Until};
use super::wait::{Ended, WaitFor, interrupted};
use crate::autostart::process_exit_within;
use crate::connection::Connection;
use crate::failure::{Exit, Failure};
use crate::output::{Spinner, diagnostic, write_both, write_stdout};
use crate::stream::cursor::{Admit, RunSeqs, SeqCursor};
use crate::stream::events::{Kinds, LiveEvent, event_kind, json_line, subscription_of};
use crate::stream::message::LineStyle;
use crate::stream::outcome::{RunState, end_failure, ended_status, run_state};
use crate::stream::render::{Form, Renderer};
use crate::watch::{Watch, Woke};

/// How long a reconnecting follow waits for the old daemon to let go of its locks.
const RESTART_WAIT: Duration = Duration::from_secs(30);

fn output_of(ctx: &Context) -> Output {
    Output {
        json: ctx.json,
        tty: ctx.terminal.stdout_is_tty,
    }
}

pub fn follow(ctx: &Context, args: FollowArgs) -> Result<(), Failure> {
    let watch = Watch::ctrl_c().and_stdout();
    let follow = Follow::from_args(args, output_of(ctx));
    let client = ctx.client()?;
    match run_follow(ctx, client, follow, &watch) {
        Err(Ended::Woke(Woke::Interrupted)) => Err(Failure::interrupted()),
        Err(Ended::Woke(Woke::StdoutGone)) => Err(Failure::stdout_closed()),
        Err(Ended::Failed(failure)) => Err(failure),
        Ok(result) => result,
    }
}

/// `spawn --follow`, once the spawn has answered. Ctrl-C leaves the run going, and says so.
pub fn follow_spawned(
    ctx: &Context,
    client: Connection,
    spawned: SpawnResult,
    events: &[EventKind],
    watch: &Watch,
) -> Result<(), Failure> {
    write_both("", &format!("session {}\n", spawned.session_key))?;
    let run = spawned.run_id.clone();
    let follow = Follow::spawned(spawned.session_key, spawned.run_id, events, output_of(ctx));
    match run_follow(ctx, client, follow, watch) {
        Err(Ended::Woke(Woke::Interrupted)) => Err(interrupted(&WaitFor::Run(run))),
        Err(Ended::Woke(Woke::StdoutGone)) => Err(Failure::stdout_closed()),
        Err(Ended::Failed(failure)) => Err(failure),
        Ok(result) => result,
    }
}

/// What a follow waits for, as it learns more.
#[derive(Debug)]
enum Goal {
    /// Nothing: follow until interrupted.
    Forever,
    /// The run active at the first subscription (still to be learnt).
    ActiveRun,
    /// The lifecycle `ended` of this run.
    Run(String),
    /// The outcome is known: finish once every message up to `seq` is printed.
    Seq { seq: u64, failure: Option<Failure> },
}

impl Goal {
    /// The command's result, if the goal is reached.
    fn reached(&mut self, cursor: &SeqCursor) -> Option<Result<(), Failure>> {
        match self {
            Goal::Seq { seq, .. } if cursor.reached(*seq) => {
                match std::mem::replace(self, Goal::Forever) {
                    Goal::Seq { failure, .. } => Some(failure.map_or(Ok(()), Err)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// How one subscription ended.
enum End {
    Done(Result<(), Failure>),
    /// The connection closed (`shutdown`: the daemon said it was stopping).
    Lost {
        shutdown: bool,
    },
}

/// Everything a follow keeps across events and reconnections.
struct FollowState<'w> {
    key: String,
    cursor: SeqCursor,
    run_seqs: RunSeqs,
    renderer: Renderer,
    spinner: Spinner,
    goal: Goal,
    shown: Kinds,
    json: bool,
    watch: &'w Watch,
}

impl FollowState<'_> {
    /// Writes what a rendered event produced, out of the spinner's way.
    fn print(&self, stdout: &str, stderr: &str) -> Result<(), Failure> {
        self.spinner
            .print(stdout, stderr, !self.renderer.at_line_start())
    }

    /// A call made while following: bounded by the same watch.
    fn call(
        &self,
        client: &mut Connection,
        method: &str,
        params: &impl serde::Serialize,
    ) -> Result<Value, Ended> {
        let wakes = self.watch.wakes();
        let wait = Wait {
            deadline: None,
            wake: &wakes,
        };
        client
            .call_value_with(method, params, &wait)
            .map_err(|e| Ended::of(e, self.watch))
    }
}

/// `Ok(result)`: the follow is over with this result; `Err(Woke)`: it was cut short.
fn run_follow(
    ctx: &Context,
    mut client: Connection,
    follow: Follow,
    watch: &Watch,
) -> Result<Result<(), Failure>, Ended> {
    let subscribed = follow.subscribed(ctx.json);
    let mut state = FollowState {
        key: follow.key.clone(),
        cursor: SeqCursor::new(follow.after_seq),
        run_seqs: RunSeqs::default(),
        renderer: Renderer::new(
            Form::Transcript,
            line_style(ctx, follow.timestamps),
            follow.shown,
            shared_terminal(ctx),
        ),
        spinner: if follow.spinner {
            Spinner::start(&ctx.terminal, "waiting for the run".into())
        } else {
            Spinner::none()
        },
        goal: match &follow.until {
            Until::Interrupted => Goal::Forever,
            Until::ActiveRunEnds => Goal::ActiveRun,
            Until::RunEnds(run) => Goal::Run(run.clone()),
        },
        shown: follow.shown,
        json: ctx.json,
        watch,
    };
    loop {
        let daemon_pid = if follow.retry {
            daemon_pid(&mut client)
        } else {
            None
        };
        let end = subscribe_and_pump(&mut client, &mut state, subscribed);
        // A line of streamed text left open gets its end, whatever happens next.
        let tail = state.renderer.finish();
        let _ = state.print(&tail.stdout, &tail.stderr);
        let end = match end {
            // A call that found the connection gone: the same as seeing it close.
            Err(Ended::Failed(failure)) if follow.retry && failure.exit == Exit::Unreachable => {
                tracing::debug!(?failure, "connection lost during a call");
                End::Lost { shutdown: false }
            }
            Err(Ended::Failed(failure)) => return Ok(Err(failure)),
            Err(woke) => return Err(woke),
            Ok(end) => end,
        };
        match end {
            End::Done(result) => return Ok(result),
            End::Lost { shutdown } => {
                if !follow.retry {
                    let what = if shutdown {
                        "the daemon stopped"
                    } else {
                        client.lost_reason()
                    };
                    return Ok(Err(lost(&state.key, &state.cursor, what)));
                }
                diagnostic(
                    "note",
                    &format!(
                        "{}; reconnecting to follow {} after #{}",
                        if shutdown {
                            "the daemon stopped"
                        } else {
                            "lost the connection to the daemon"
                        },
                        state.key,
                        state.cursor.last().unwrap_or(0)
                    ),
                );
                // Another user's device loses its connection when the owner revokes it, and the
                // daemon stays up: reconnect at once, which then reports the refusal.
                let await_exit = shutdown || !client.device_proven();
                drop(client);
                // A restart can only start once the old daemon has let go of its locks.
                if let Some(pid) = daemon_pid
                    && await_exit
                {
                    process_exit_within(pid, RESTART_WAIT);
                }
                client = ctx.client().map_err(Ended::Failed)?;
            }
        }
    }
}

fn subscribe_and_pump(
    client: &mut Connection,
    state: &mut FollowState<'_>,
    subscribed: Kinds,
) -> Result<End, Ended> {
    let params = SubscribeParams {
        session_key: Some(state.key.clone()),
        after_seq: state.cursor.after_seq(),
        run_id: None,
        events: Some(subscribed.to_vec()),
    };
    let raw = state
        .call(client, methods::SESSIONS_SUBSCRIBE, &params)
        .map_err(|e| match e {
            Ended::Failed(f) => Ended::Failed(in_flag_terms(f)),
            woke => woke,
        })?;
    let sub: SubscribeResult = typed(methods::SESSIONS_SUBSCRIBE, raw).map_err(Ended::Failed)?;
    tracing::debug!(?sub, "subscribed");
    if let Some(key) = &sub.session_key {
        state.key.clone_from(key);
    }
    state.cursor.subscribed(sub.last_seq);
    settle(client, state, &sub)?;
    if let Some(done) = state.goal.reached(&state.cursor) {
        return Ok(End::Done(done));
    }
    pump(client, &sub.subscription, state)
}

/// The daemon's parameter names are not the user's: an error about `afterSeq` is about
/// `--since`.
fn in_flag_terms(mut failure: Failure) -> Failure {
    if let Some(message) = &mut failure.message {
        *message = message.replace("afterSeq", "--since");
    }
    failure
}

/// Reads the subscription's events until the follow is over or the connection closes.
fn pump(
    client: &mut Connection,
    subscription: &str,
    st: &mut FollowState<'_>,
) -> Result<End, Ended> {
    let mut shutdown = false;
    loop {
        let next = {
            let wakes = st.watch.wakes();
            let wait = Wait {
                deadline: None,
                wake: &wakes,
            };
            client.next_notification(&wait)
        };
        let notification = match next {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => return Err(Ended::of(e, st.watch)),
        };
        if subscription_of(&notification.params) != Some(subscription) {
            continue;
        }
        let method = notification.method;
        let kind = event_kind(&method, &notification.params);
        let event = match LiveEvent::parse(&method, &notification.params) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%method, %err, "cannot read a notification; skipped");
                None
            }
        };
        // Read from the raw params, so a message this CLI cannot fully decode still counts.
        let seq = match kind {
            Some(EventKind::Message) => notification.params.pointer("/message/seq"),
            _ => None,
        }
        .and_then(Value::as_u64);
        if let Some(seq) = seq {
            match st.cursor.admit(seq) {
                Admit::Duplicate => continue,
                Admit::AfterGap { missing_from } => {
                    tracing::warn!(missing_from, seq, "the daemon skipped transcript messages");
                }
                Admit::New => {}
            }
        }
        if let Some(LiveEvent::Run(e)) = &event
            && !st.run_seqs.admit(e)
        {
            continue;
        }
        if st.json {
            if kind.is_none_or(|k| st.shown.contains(k)) {
                write_stdout(&json_line(&method, notification.params)).map_err(Ended::Failed)?;
            }
        } else if let Some(event) = &event {
            let out = st.renderer.render(event);
            st.print(&out.stdout, &out.stderr).map_err(Ended::Failed)?;
        }
        if seq.is_some()
            && let Some(done) = st.goal.reached(&st.cursor)
        {
            return Ok(End::Done(done));
        }
        match event {
            Some(LiveEvent::Run(e)) => {
                if let Goal::Run(run) = &st.goal
                    && e.run_id == *run
                    && let Some(end) = ended_status(&e)
                {
                    return Ok(End::Done(end_failure(run, &end).map_or(Ok(()), Err)));
                }
            }
            Some(LiveEvent::Lagged(_)) => {
                // The run's end may have been among the events skipped: ask.
                if let Goal::Run(run) = &st.goal {
                    let target = WaitTarget::Run(run.clone());
                    st.goal = check(client, st, target)?;
                    if let Some(done) = st.goal.reached(&st.cursor) {
                        return Ok(End::Done(done));
                    }
                }
            }
            Some(LiveEvent::Ended(ended)) => match ended.reason.as_str() {
                "deleted" => {
                    return Ok(End::Done(Err(Failure::new(
                        Exit::NotFound,
                        format!("session {} was deleted", st.key),
                    ))));
                }
                // The connection closes next; what to do then depends on --retry.
                "shutdown" => shutdown = true,
                "unsubscribed" => return Ok(End::Done(Ok(()))),
                other => {
                    return Ok(End::Done(Err(Failure::failed(format!(
                        "the daemon ended the follow of {} ({other})",
                        st.key
                    )))));
                }
            },
            Some(LiveEvent::Message(_) | LiveEvent::Changed(_)) | None => {}
        }
    }
    Ok(End::Lost { shutdown })
}

/// Updates the goal once a subscription has told which run is active.
fn settle(
    client: &mut Connection,
    st: &mut FollowState<'_>,
    sub: &SubscribeResult,
) -> Result<(), Ended> {
    let settled = match &st.goal {
        Goal::ActiveRun => match &sub.active_run_id {
            Some(run) => Goal::Run(run.clone()),
            None => check(client, st, WaitTarget::Session(st.key.clone()))?,
        },
        // Active when the subscription started: its end is among the events to come.
        Goal::Run(run) if sub.active_run_id.as_deref() == Some(run.as_str()) => return Ok(()),
        // Over already, or queued behind another run: ask.
        Goal::Run(run) => check(client, st, WaitTarget::Run(run.clone()))?,
        Goal::Forever | Goal::Seq { .. } => return Ok(()),
    };
    st.goal = settled;
    Ok(())
}

enum WaitTarget {
    Run(String),
    /// The session's active run, else its last one.
    Session(String),
}

/// Asks the daemon, without waiting, whether the run is over. If it is, the follow finishes
/// once the transcript as it is now has been printed: the run's messages were stored before it
/// ended, and the subscription delivers each of them.
fn check(client: &mut Connection, st: &FollowState<'_>, target: WaitTarget) -> Result<Goal, Ended> {
    let (run_id, session_key) = match &target {
        WaitTarget::Run(run) => (Some(run.clone()), None),
        WaitTarget::Session(session) => (None, Some(session.clone())),
    };
    let params = WaitParams {
        run_id,
        session_key,
        timeout_seconds: Some(0.0),
    };
    let state = match st.call(client, methods::RUNS_WAIT, &params) {
        Ok(raw) => run_state(&typed::<RunResult>(methods::RUNS_WAIT, raw).map_err(Ended::Failed)?),
        // A session that never ran: done once caught up.
        Err(Ended::Failed(f))
            if matches!(target, WaitTarget::Session(_)) && f.exit == Exit::NotFound =>
        {
            RunState::Over(None)
        }
        Err(other) => return Err(other),
    };
    Ok(match state {
        RunState::Going { run_id } => Goal::Run(run_id),
        RunState::Over(failure) => Goal::Seq {
            seq: newest_seq(client, st)?,
            failure,
        },
    })
}

/// The session's newest seq now (tool messages included).
fn newest_seq(client: &mut Connection, st: &FollowState<'_>) -> Result<u64, Ended> {
    let params = HistoryParams {
        session_key: st.key.clone(),
        limit: Some(1),
        cursor: None,
        include_tools: Some(true),
    };
    let raw = st.call(client, methods::SESSIONS_HISTORY, &params)?;
    let page: HistoryResult = typed(methods::SESSIONS_HISTORY, raw).map_err(Ended::Failed)?;
    Ok(page.messages.last().map_or(0, |m| m.seq))
}

fn daemon_pid(client: &mut Connection) -> Option<u32> {
    client
        .call::<_, DaemonStatus>(methods::DAEMON_STATUS, &NoParams {})
        .ok()
        .map(|s| s.pid)
}

/// The connection closed under a follow without --retry: exit 3, saying how to resume.
fn lost(key: &str, cursor: &SeqCursor, what: &str) -> Failure {
    let resume = match cursor.last() {
        Some(seq) if seq > 0 => format!(
            "; it had followed {key} up to message #{seq}: resume with `openclaw sessions follow {key} --since {seq}`"
        ),
        _ => format!("; resume with `openclaw sessions follow {key} --from-start`"),
    };
    Failure::new(Exit::Unreachable, format!("{what}{resume}"))
}

pub fn line_style(ctx: &Context, timestamps: bool) -> LineStyle {
    LineStyle {
        color: ctx.terminal.color,
        escape: ctx.terminal.stdout_is_tty,
        timestamps,
    }
}

/// stdout and stderr are both the terminal: their lines share the screen.
pub fn shared_terminal(ctx: &Context) -> bool {
    ctx.terminal.stdout_is_tty && ctx.terminal.stderr_is_tty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_of_a_known_outcome_waits_for_its_seq() {
        let mut cursor = SeqCursor::new(Some(0));
        let mut goal = Goal::Seq {
            seq: 2,
            failure: Some(Failure::failed("run r1 failed")),
        };
        assert!(goal.reached(&cursor).is_none());
        cursor.admit(1);
        assert!(goal.reached(&cursor).is_none());
        cursor.admit(2);
        let err = goal.reached(&cursor).unwrap().unwrap_err();
        assert_eq!(err.exit, Exit::Failed);
        assert!(Goal::Forever.reached(&cursor).is_none());
        assert!(Goal::Run("r".into()).reached(&cursor).is_none());
        assert!(matches!(
            (Goal::Seq {
                seq: 0,
                failure: None
            })
            .reached(&SeqCursor::new(None)),
            Some(Ok(()))
        ));
    }

    #[test]
    fn lost_connection_is_exit_3_with_the_resume_command() {
        let mut cursor = SeqCursor::new(Some(0));
        cursor.admit(1);
        cursor.admit(2);
        let f = lost(
            "agent:main:main",
            &cursor,
            "lost the connection to the daemon",
        );
        assert_eq!(f.exit, Exit::Unreachable);
        let message = f.message.unwrap();
        assert!(
            message.contains("openclaw sessions follow agent:main:main --since 2"),
            "{message}"
        );
        let f = lost("k", &SeqCursor::new(None), "the daemon stopped");
        assert!(f.message.unwrap().starts_with("the daemon stopped"));
    }

    #[test]
    fn daemon_parameter_names_become_flag_names() {
        let f = in_flag_terms(Failure::usage(
            "afterSeq 100 is past the end of the transcript (its newest seq is 3)",
        ));
        assert_eq!(
            f.message.unwrap(),
            "--since 100 is past the end of the transcript (its newest seq is 3)"
        );
    }
}
