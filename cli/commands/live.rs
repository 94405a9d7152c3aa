//! The commands that stream: `sessions follow`, `sessions subscribe`, `sessions send --stream`
//! and `sessions spawn --follow`. They react to what the daemon pushes and to the connection's
//! end; nothing here polls or sleeps. Each ends quietly on Ctrl-C (exit 130) and at once, with
//! exit 0, when the reader of stdout goes away (`| head -n 3`).

use clap::{Args, ValueEnum};
use openclaw::protocol::{
    DaemonStatus, ErrorKind, EventKind, HistoryParams, HistoryResult, NoParams, RunResult,
    SendParams, SubscribeParams, SubscribeResult, WaitParams, WaitStatus, methods,
};
use serde_json::Value;

use super::{Context, call_raw, format_seconds, typed};
use crate::commands::daemon::{ProcessExit, STOP_TIMEOUT};
use crate::connection::Connection;
use crate::failure::{Exit, Failure};
use crate::output::{
    diagnostic, escape_controls, print_json, stdout_reader_gone, write_both, write_stdout,
};
use crate::stream::{
    Admit, Form, Kinds, LineStyle, LiveEvent, Renderer, ReplyTail, RunSeqs, RunState, SeqCursor,
    end_failure, end_line, ended_status, event_kind, json_line, reply_tail, run_state,
    subscription_of,
};

/// Event kinds for `--events` (comma-separated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    /// Transcript messages (session.message)
    Message,
    /// Sessions created, started, ended, patched, deleted; runs queued, started, ended
    Lifecycle,
    /// The assistant's text as it streams
    Assistant,
    /// Tool calls: start, update, end
    Tool,
    /// Token usage
    Usage,
    /// The agent's reasoning as it streams (not part of the reply)
    Thought,
    /// The agent's plan, whole, each time it changes
    Plan,
}

impl EventArg {
    fn kind(self) -> EventKind {
        match self {
            EventArg::Message => EventKind::Message,
            EventArg::Lifecycle => EventKind::Lifecycle,
            EventArg::Assistant => EventKind::Assistant,
            EventArg::Tool => EventKind::Tool,
            EventArg::Usage => EventKind::Usage,
            EventArg::Thought => EventKind::Thought,
            EventArg::Plan => EventKind::Plan,
        }
    }
}

fn kinds_of(events: &[EventArg]) -> Kinds {
    Kinds::of(&events.iter().map(|e| e.kind()).collect::<Vec<_>>())
}

// ---------------------------------------------------------------- follow

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Session key or id
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
    /// What to print, comma-separated (default: message; with --until-done and --json also lifecycle)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub events: Vec<EventArg>,
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
}

impl Follow {
    pub fn from_args(args: FollowArgs, json: bool) -> Follow {
        let until = if args.until_done {
            Until::ActiveRunEnds
        } else {
            Until::Interrupted
        };
        let shown = if args.events.is_empty() {
            default_shown(&until, json)
        } else {
            kinds_of(&args.events)
        };
        Follow {
            key: args.key,
            after_seq: if args.from_start { Some(0) } else { args.since },
            until,
            shown,
            timestamps: args.timestamps,
            retry: args.retry,
        }
    }

    /// `spawn --follow`: the new session's whole transcript until the spawn's run ends.
    pub fn spawned(key: String, run_id: String, json: bool) -> Follow {
        let until = Until::RunEnds(run_id);
        Follow {
            key,
            after_seq: Some(0),
            shown: default_shown(&until, json),
            until,
            timestamps: false,
            retry: false,
        }
    }

    /// What to subscribe to: what is printed, plus what the follow itself needs: messages to
    /// know where it is (to stop or to resume), lifecycle to see a run end (and to end a line
    /// of streamed text).
    fn subscribed(&self, json: bool) -> Kinds {
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

/// Messages; with --until-done the lifecycle events too, for a script reading JSON (people
/// read the outcome in the exit status and on stderr).
fn default_shown(until: &Until, json: bool) -> Kinds {
    let kinds = Kinds::of(&[EventKind::Message]);
    if json && *until != Until::Interrupted {
        kinds.with(EventKind::Lifecycle)
    } else {
        kinds
    }
}

pub async fn follow(ctx: &Context, args: FollowArgs) -> Result<(), Failure> {
    let follow = Follow::from_args(args, ctx.json);
    until_interrupted(Watch::Stdout, async {
        let client = ctx.client().await?;
        run_follow(ctx, client, follow).await
    })
    .await
}

/// `spawn --follow`, once the spawn has answered.
pub async fn follow_spawned(
    ctx: &Context,
    client: Connection,
    key: String,
    run_id: String,
) -> Result<(), Failure> {
    write_both("", &format!("session {key}\n"))?;
    let follow = Follow::spawned(key, run_id, ctx.json);
    until_interrupted(Watch::Stdout, run_follow(ctx, client, follow)).await
}

/// Ends `work` early on Ctrl-C (exit 130, quietly) or, with `Watch::Stdout`, as soon as
/// nobody reads stdout any more (exit 0, quietly).
async fn until_interrupted(
    watch: Watch,
    work: impl Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let reader_gone = async {
        match watch {
            Watch::Stdout => stdout_reader_gone().await,
            Watch::CtrlC => std::future::pending().await,
        }
    };
    tokio::select! {
        result = work => result,
        () = ctrl_c => Err(Failure::interrupted()),
        () = reader_gone => Err(Failure::stdout_closed()),
    }
}

/// What may end a streaming command before its work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Ctrl-C, and the reader of stdout going away: for commands that only watch.
    Stdout,
    /// Only Ctrl-C: a command with an effect (a send) must not be cut before the daemon has
    /// it; a closed stdout then ends it at its next write.
    CtrlC,
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
struct FollowState {
    key: String,
    cursor: SeqCursor,
    run_seqs: RunSeqs,
    renderer: Renderer,
    goal: Goal,
    shown: Kinds,
    json: bool,
}

async fn run_follow(ctx: &Context, mut client: Connection, follow: Follow) -> Result<(), Failure> {
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
        goal: match &follow.until {
            Until::Interrupted => Goal::Forever,
            Until::ActiveRunEnds => Goal::ActiveRun,
            Until::RunEnds(run) => Goal::Run(run.clone()),
        },
        shown: follow.shown,
        json: ctx.json,
    };
    loop {
        let daemon_pid = if follow.retry {
            daemon_pid(&client).await
        } else {
            None
        };
        let params = SubscribeParams {
            session_key: Some(state.key.clone()),
            after_seq: state.cursor.after_seq(),
            run_id: None,
            events: Some(subscribed.to_vec()),
        };
        let sub: SubscribeResult = typed(
            methods::SESSIONS_SUBSCRIBE,
            call_raw(&client, methods::SESSIONS_SUBSCRIBE, &params).await?,
        )?;
        tracing::debug!(?sub, "subscribed");
        if let Some(key) = &sub.session_key {
            state.key.clone_from(key);
        }
        state.cursor.subscribed(sub.last_seq);
        let end = match settle(&client, &mut state.goal, &sub, &state.key).await {
            Ok(()) => match state.goal.reached(&state.cursor) {
                Some(done) => Ok(End::Done(done)),
                None => pump(&client, &sub.subscription, &mut state).await,
            },
            Err(failure) => Err(failure),
        };
        // A line of streamed text left open gets its end, whatever happens next.
        let tail = state.renderer.finish();
        let _ = write_both(&tail.stdout, &tail.stderr);
        let end = match end {
            // A call that found the connection gone: the same as seeing it close.
            Err(failure) if follow.retry && failure.exit == Exit::Unreachable => {
                tracing::debug!(?failure, "connection lost during a call");
                End::Lost { shutdown: false }
            }
            other => other?,
        };
        match end {
            End::Done(result) => return result,
            End::Lost { shutdown } => {
                if !follow.retry {
                    let what = if shutdown {
                        "the daemon stopped"
                    } else {
                        client.lost_reason()
                    };
                    return Err(lost(&state.key, &state.cursor, what));
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
                    && let Ok(watch) = ProcessExit::watch(pid)
                {
                    let _ = tokio::time::timeout(STOP_TIMEOUT, watch.exited()).await;
                }
                client = ctx.client().await?;
            }
        }
    }
}

/// Reads the subscription's events until the follow is over or the connection closes.
async fn pump(
    client: &Connection,
    subscription: &str,
    st: &mut FollowState,
) -> Result<End, Failure> {
    let mut shutdown = false;
    while let Some(notification) = client.next_notification().await {
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
                write_stdout(&json_line(&method, notification.params))?;
            }
        } else if let Some(event) = &event {
            let out = st.renderer.render(event);
            write_both(&out.stdout, &out.stderr)?;
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
                    st.goal = check(client, &st.key, target).await?;
                    if let Some(done) = st.goal.reached(&st.cursor) {
                        return Ok(End::Done(done));
                    }
                }
            }
            Some(LiveEvent::Ended(ended)) => match ended.reason.as_str() {
                "deleted" => {
                    return Err(Failure::new(
                        Exit::NotFound,
                        format!("session {} was deleted", st.key),
                    ));
                }
                // The connection closes next; what to do then depends on --retry.
                "shutdown" => shutdown = true,
                "unsubscribed" => return Ok(End::Done(Ok(()))),
                other => {
                    return Err(Failure::failed(format!(
                        "the daemon ended the follow of {} ({other})",
                        st.key
                    )));
                }
            },
            Some(LiveEvent::Message(_) | LiveEvent::Changed(_)) | None => {}
        }
    }
    Ok(End::Lost { shutdown })
}

/// Updates the goal once a subscription has told which run is active (left as it was if
/// the daemon cannot be asked).
async fn settle(
    client: &Connection,
    goal: &mut Goal,
    sub: &SubscribeResult,
    key: &str,
) -> Result<(), Failure> {
    let settled = match goal {
        Goal::ActiveRun => match &sub.active_run_id {
            Some(run) => Goal::Run(run.clone()),
            None => check(client, key, WaitTarget::Session(key.to_string())).await?,
        },
        // Active when the subscription started: its end is among the events to come.
        Goal::Run(run) if sub.active_run_id.as_deref() == Some(run.as_str()) => return Ok(()),
        // Over already, or queued behind another run: ask.
        Goal::Run(run) => check(client, key, WaitTarget::Run(run.clone())).await?,
        Goal::Forever | Goal::Seq { .. } => return Ok(()),
    };
    *goal = settled;
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
async fn check(client: &Connection, key: &str, target: WaitTarget) -> Result<Goal, Failure> {
    let (run_id, session_key) = match &target {
        WaitTarget::Run(run) => (Some(run.clone()), None),
        WaitTarget::Session(session) => (None, Some(session.clone())),
    };
    let params = WaitParams {
        run_id,
        session_key,
        timeout_seconds: Some(0.0),
    };
    let answer = client.call_value(methods::RUNS_WAIT, &params).await;
    let state = match answer {
        Ok(raw) => run_state(&typed::<RunResult>(methods::RUNS_WAIT, raw)?),
        // A session that never ran: done once caught up.
        Err(err)
            if matches!(target, WaitTarget::Session(_))
                && err.rpc().and_then(|e| e.kind()) == Some(ErrorKind::NotFound) =>
        {
            RunState::Over(None)
        }
        Err(err) => return Err(err.into()),
    };
    Ok(match state {
        RunState::Going { run_id } => Goal::Run(run_id),
        RunState::Over(failure) => Goal::Seq {
            seq: newest_seq(client, key).await?,
            failure,
        },
    })
}

/// The session's newest seq now (tool messages included).
async fn newest_seq(client: &Connection, key: &str) -> Result<u64, Failure> {
    let params = HistoryParams {
        session_key: key.to_string(),
        limit: Some(1),
        cursor: None,
        include_tools: Some(true),
    };
    let raw = call_raw(client, methods::SESSIONS_HISTORY, &params).await?;
    let page: HistoryResult = typed(methods::SESSIONS_HISTORY, raw)?;
    Ok(page.messages.last().map_or(0, |m| m.seq))
}

async fn daemon_pid(client: &Connection) -> Option<u32> {
    client
        .call::<_, DaemonStatus>(methods::DAEMON_STATUS, &NoParams {})
        .await
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

fn line_style(ctx: &Context, timestamps: bool) -> LineStyle {
    LineStyle {
        color: ctx.terminal.color,
        escape: ctx.terminal.stdout_is_tty,
        timestamps,
    }
}

/// stdout and stderr are both the terminal: their lines share the screen.
fn shared_terminal(ctx: &Context) -> bool {
    ctx.terminal.stdout_is_tty && ctx.terminal.stderr_is_tty
}

// ---------------------------------------------------------------- subscribe

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Which events, comma-separated (default: all)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub events: Vec<EventArg>,
    /// Only this session's events (key or id)
    #[arg(long, value_name = "KEY")]
    pub session: Option<String>,
    /// Only this run's events
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
}

fn subscribe_params(args: &SubscribeArgs) -> SubscribeParams {
    SubscribeParams {
        session_key: args.session.clone(),
        after_seq: None,
        run_id: args.run.clone(),
        events: (!args.events.is_empty()).then(|| kinds_of(&args.events).to_vec()),
    }
}

pub async fn subscribe(ctx: &Context, args: SubscribeArgs) -> Result<(), Failure> {
    until_interrupted(Watch::Stdout, async {
        let client = ctx.client().await?;
        let params = subscribe_params(&args);
        let sub: SubscribeResult = typed(
            methods::SESSIONS_SUBSCRIBE,
            call_raw(&client, methods::SESSIONS_SUBSCRIBE, &params).await?,
        )?;
        let shown = if args.events.is_empty() {
            Kinds::of(&EventKind::ALL)
        } else {
            kinds_of(&args.events)
        };
        let mut renderer = Renderer::new(
            Form::Compact,
            line_style(ctx, false),
            shown,
            shared_terminal(ctx),
        );
        let mut shutdown = false;
        while let Some(notification) = client.next_notification().await {
            if subscription_of(&notification.params) != Some(sub.subscription.as_str()) {
                continue;
            }
            let method = notification.method;
            let event = LiveEvent::parse(&method, &notification.params).unwrap_or_else(|err| {
                tracing::warn!(%method, %err, "cannot read a notification; skipped");
                None
            });
            if ctx.json {
                write_stdout(&json_line(&method, notification.params))?;
            } else if let Some(event) = &event {
                let out = renderer.render(event);
                write_both(&out.stdout, &out.stderr)?;
            }
            if let Some(LiveEvent::Ended(ended)) = event {
                match ended.reason.as_str() {
                    "deleted" => {
                        return Err(Failure::new(
                            Exit::NotFound,
                            format!(
                                "session {} was deleted",
                                sub.session_key.as_deref().unwrap_or("?")
                            ),
                        ));
                    }
                    "shutdown" => shutdown = true,
                    "unsubscribed" => return Ok(()),
                    other => {
                        return Err(Failure::failed(format!(
                            "the daemon ended the subscription ({other})"
                        )));
                    }
                }
            }
        }
        Err(Failure::new(
            Exit::Unreachable,
            if shutdown {
                "the daemon stopped"
            } else {
                client.lost_reason()
            },
        ))
    })
    .await
}

// ---------------------------------------------------------------- send --stream

/// `sessions send --stream`: the run's events as they come, then its result.
pub async fn send_streaming(
    ctx: &Context,
    client: &Connection,
    params: SendParams,
    waited: f64,
) -> Result<(), Failure> {
    until_interrupted(Watch::CtrlC, async {
        let call = super::sessions::call_waiting(client, methods::SESSIONS_SEND, &params, waited);
        tokio::pin!(call);
        let mut renderer = Renderer::new(
            Form::Reply,
            line_style(ctx, false),
            Kinds::of(&EventKind::ALL),
            shared_terminal(ctx),
        );
        let raw = loop {
            tokio::select! {
                // Events first: the daemon sends them all before the result, and the client
                // queues them in that order.
                biased;
                Some(notification) = client.next_notification() => {
                    let method = notification.method;
                    let ours = subscription_of(&notification.params)
                        .is_some_and(|s| s.starts_with("run:"));
                    if !ours {
                        continue;
                    }
                    if ctx.json {
                        write_stdout(&json_line(&method, notification.params))?;
                    } else if let Ok(Some(event)) = LiveEvent::parse(&method, &notification.params) {
                        let out = renderer.render(&event);
                        write_both(&out.stdout, &out.stderr)?;
                    }
                }
                raw = &mut call => break raw,
            }
        };
        let raw = match raw {
            Ok(raw) => raw,
            Err(failure) => {
                // The error goes to stderr on a line of its own.
                let close = renderer.finish();
                let _ = write_both(&close.stdout, "");
                return Err(failure);
            }
        };
        let result: RunResult = typed(methods::SESSIONS_SEND, raw.clone())?;
        if ctx.json {
            print_json(&raw)?;
            return streamed_failure(&result, waited).map_or(Ok(()), Err);
        }
        let tools = renderer.unfinished_tools();
        write_both(&tools.stdout, &tools.stderr)?;
        let reply = result.reply.as_deref().unwrap_or("");
        if result.status == WaitStatus::Ok {
            let streamed = renderer.streamed(&result.run_id).map(str::to_string);
            let text = match reply_tail(streamed.as_deref(), reply) {
                ReplyTail::Rest(rest) => end_line(rest, renderer.at_line_start()),
                ReplyTail::Whole => super::sessions::reply_text(reply),
                ReplyTail::Again => {
                    let close = renderer.finish();
                    write_both(&close.stdout, "")?;
                    diagnostic(
                        "note",
                        "some of the streamed text was skipped; the whole reply follows",
                    );
                    super::sessions::reply_text(reply)
                }
            };
            let text = if ctx.terminal.stdout_is_tty {
                escape_controls(&text)
            } else {
                text
            };
            return write_stdout(&text);
        }
        let close = renderer.finish();
        write_both(&close.stdout, "")?;
        streamed_failure(&result, waited).map_or(Ok(()), Err)
    })
    .await
}

/// The failure of a streamed send: as `send`'s, and on timeout how to keep following.
fn streamed_failure(result: &RunResult, waited: f64) -> Option<Failure> {
    if result.status == WaitStatus::Timeout {
        let run = &result.run_id;
        return Some(Failure::new(
            Exit::TimedOut,
            format!(
                "no reply within {}; run {run} goes on. Keep following it with `openclaw sessions follow {} --until-done`, or wait for it with `openclaw sessions wait {run}`",
                format_seconds(waited),
                result.session_key
            ),
        ));
    }
    super::sessions::run_outcome(result, waited).failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use openclaw::protocol::RunStatus;
    use serde_json::json;

    fn follow_args(args: &[&str]) -> FollowArgs {
        let argv = ["openclaw", "sessions", "follow"].iter().chain(args);
        match crate::Cli::try_parse_from(argv).unwrap().command {
            crate::Command::Sessions(crate::commands::sessions::SessionsCommand::Follow(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn follow_start_points() {
        let f = Follow::from_args(follow_args(&["k"]), false);
        assert_eq!((f.after_seq, f.until.clone()), (None, Until::Interrupted));
        assert_eq!(
            Follow::from_args(follow_args(&["k", "--from-start"]), false).after_seq,
            Some(0)
        );
        assert_eq!(
            Follow::from_args(follow_args(&["k", "--since", "41"]), false).after_seq,
            Some(41)
        );
        let argv = [
            "openclaw",
            "sessions",
            "follow",
            "k",
            "--from-start",
            "--since",
            "3",
        ];
        assert_eq!(crate::Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn events_default_to_messages_plus_what_the_follow_needs() {
        let f = Follow::from_args(follow_args(&["k"]), false);
        assert_eq!(f.shown.to_vec(), [EventKind::Message]);
        assert_eq!(f.subscribed(false).to_vec(), [EventKind::Message]);

        let f = Follow::from_args(follow_args(&["k", "--until-done"]), false);
        assert_eq!(f.shown.to_vec(), [EventKind::Message]);
        assert_eq!(
            f.subscribed(false).to_vec(),
            [EventKind::Message, EventKind::Lifecycle]
        );
        let f = Follow::from_args(follow_args(&["k", "--until-done", "--json"]), true);
        assert_eq!(f.shown.to_vec(), [EventKind::Message, EventKind::Lifecycle]);

        // Asked-for kinds are shown; the follow adds what it needs without showing it.
        let f = Follow::from_args(
            follow_args(&["k", "--events", "assistant,tool", "--until-done"]),
            true,
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
        let f = Follow::from_args(follow_args(&["k", "--events", "assistant"]), true);
        assert_eq!(f.subscribed(true).to_vec(), [EventKind::Assistant]);
        // People get a line of streamed text closed when its run ends.
        assert_eq!(
            f.subscribed(false).to_vec(),
            [EventKind::Lifecycle, EventKind::Assistant]
        );
        let f = Follow::from_args(follow_args(&["k", "--events", "usage", "--retry"]), false);
        assert_eq!(
            f.subscribed(false).to_vec(),
            [EventKind::Message, EventKind::Usage]
        );
    }

    #[test]
    fn unknown_event_kind_is_a_usage_error() {
        let argv = [
            "openclaw",
            "sessions",
            "follow",
            "k",
            "--events",
            "message,nope",
        ];
        assert_eq!(crate::Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn spawn_follow_reads_from_the_start_until_its_run_ends() {
        let f = Follow::spawned("k".into(), "r1".into(), false);
        assert_eq!(f.after_seq, Some(0));
        assert_eq!(f.until, Until::RunEnds("r1".into()));
        assert_eq!(f.shown.to_vec(), [EventKind::Message]);
    }

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
    fn streamed_timeout_says_how_to_keep_following() {
        let result = RunResult {
            run_id: "r1".into(),
            session_key: "agent:main:main".into(),
            status: WaitStatus::Timeout,
            run_status: RunStatus::Running,
            reply: None,
            error: None,
        };
        let f = streamed_failure(&result, 5.0).unwrap();
        assert_eq!(f.exit, Exit::TimedOut);
        let message = f.message.unwrap();
        assert!(
            message.contains("openclaw sessions follow agent:main:main"),
            "{message}"
        );
        assert!(message.contains("openclaw sessions wait r1"), "{message}");
        let ok = RunResult {
            status: WaitStatus::Ok,
            run_status: RunStatus::Ok,
            ..result.clone()
        };
        assert!(streamed_failure(&ok, 5.0).is_none());
        let failed = RunResult {
            status: WaitStatus::Error,
            run_status: RunStatus::Error,
            error: Some("boom".into()),
            ..result
        };
        assert_eq!(streamed_failure(&failed, 5.0).unwrap().exit, Exit::Failed);
    }

    #[test]
    fn subscribe_flags_map_onto_params() {
        let argv = [
            "openclaw",
            "sessions",
            "subscribe",
            "--events",
            "message,lifecycle",
            "--session",
            "k",
            "--run",
            "r",
        ];
        let crate::Command::Sessions(crate::commands::sessions::SessionsCommand::Subscribe(args)) =
            crate::Cli::try_parse_from(argv).unwrap().command
        else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(subscribe_params(&args)).unwrap(),
            json!({"sessionKey": "k", "runId": "r", "events": ["message", "lifecycle"]})
        );
        let argv = ["openclaw", "sessions", "subscribe"];
        let crate::Command::Sessions(crate::commands::sessions::SessionsCommand::Subscribe(args)) =
            crate::Cli::try_parse_from(argv).unwrap().command
        else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(subscribe_params(&args)).unwrap(),
            json!({})
        );
    }
}
