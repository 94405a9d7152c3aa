//! `sessions send --stream`: the run's events as they come (text on stdout, tools on stderr,
//! a spinner while nothing streams), then its result. Ctrl-C stops watching, not the run.

use std::time::{Duration, Instant};

use openclaw::client::blocking::Wait;
use openclaw::protocol::{EventKind, RunResult, SendParams, WaitStatus, methods};

use super::super::{Context, format_seconds, typed};
use super::follow::{line_style, shared_terminal};
use super::wait::{Ended, WaitFor, interrupted, reply_text, run_outcome};
use crate::connection::{CallError, Connection, StreamEnd};
use crate::failure::{Exit, Failure};
use crate::output::{Spinner, diagnostic, escape_controls, print_json, write_stdout};
use crate::stream::events::{Kinds, LiveEvent, json_line, subscription_of};
use crate::stream::render::{Form, Renderer};
use crate::stream::reply::{ReplyTail, end_line, reply_tail};
use crate::watch::Watch;

/// How long past the requested wait the daemon may take to answer (see `wait`).
const ANSWER_GRACE: Duration = Duration::from_secs(30);

pub fn send_streaming(
    ctx: &Context,
    client: &mut Connection,
    params: SendParams,
    waited: f64,
    // Only Ctrl-C: a command with an effect must not be cut before the daemon has it; a
    // closed stdout ends it at its next write.
    watch: &Watch,
) -> Result<(), Failure> {
    let wakes = watch.wakes();
    let patience = Duration::try_from_secs_f64(waited)
        .unwrap_or(Duration::MAX)
        .saturating_add(ANSWER_GRACE);
    let wait = Wait {
        deadline: Instant::now().checked_add(patience),
        wake: &wakes,
    };
    let mut renderer = Renderer::new(
        Form::Reply,
        line_style(ctx, false),
        Kinds::of(&EventKind::ALL),
        shared_terminal(ctx),
    );
    let spinner = if ctx.json {
        Spinner::none()
    } else {
        Spinner::start(&ctx.terminal, "waiting for the reply".into())
    };
    let mut run_id: Option<String> = None;
    let answer = client.call_streaming(methods::SESSIONS_SEND, &params, &wait, |n| {
        // The send's own run events come on a subscription named after the run.
        let Some(run) = subscription_of(&n.params).and_then(|s| s.strip_prefix("run:")) else {
            return Ok(());
        };
        run_id.get_or_insert_with(|| run.to_string());
        if ctx.json {
            return write_stdout(&json_line(&n.method, n.params));
        }
        if let Ok(Some(event)) = LiveEvent::parse(&n.method, &n.params) {
            let out = renderer.render(&event);
            spinner.print(&out.stdout, &out.stderr, !renderer.at_line_start())?;
        }
        Ok(())
    });
    drop(spinner);
    let raw = match answer {
        Ok(raw) => raw,
        Err(end) => {
            // The error goes to stderr on a line of its own.
            let close = renderer.finish();
            let _ = write_stdout(&close.stdout);
            return Err(match end {
                StreamEnd::Output(failure) => failure,
                StreamEnd::Call(CallError::Client(openclaw::ClientError::TimedOut)) => {
                    Failure::new(
                        Exit::Unreachable,
                        format!(
                            "the daemon did not answer the send within {}; it may be stuck or overloaded: `openclaw sessions wait --session {}` waits for its run",
                            format_seconds(patience.as_secs_f64()),
                            params.session_key
                        ),
                    )
                    .with_kind("no_answer")
                }
                StreamEnd::Call(err) => match Ended::of(err, watch) {
                    Ended::Woke(_) => interrupted(&match run_id {
                        Some(run) => WaitFor::Run(run),
                        None => WaitFor::Session(params.session_key.clone()),
                    }),
                    Ended::Failed(failure) => failure,
                },
            });
        }
    };
    let result: RunResult = typed(methods::SESSIONS_SEND, raw.clone())?;
    if ctx.json {
        print_json(&raw)?;
        return streamed_failure(&result, waited).map_or(Ok(()), Err);
    }
    let tools = renderer.unfinished_tools();
    crate::output::write_both(&tools.stdout, &tools.stderr)?;
    let reply = result.reply.as_deref().unwrap_or("");
    if result.status == WaitStatus::Ok {
        let streamed = renderer.streamed(&result.run_id).map(str::to_string);
        let text = match reply_tail(streamed.as_deref(), reply) {
            ReplyTail::Rest(rest) => end_line(rest, renderer.at_line_start()),
            ReplyTail::Whole => reply_text(reply),
            ReplyTail::Again => {
                let close = renderer.finish();
                write_stdout(&close.stdout)?;
                diagnostic(
                    "note",
                    "some of the streamed text was skipped; the whole reply follows",
                );
                reply_text(reply)
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
    write_stdout(&close.stdout)?;
    streamed_failure(&result, waited).map_or(Ok(()), Err)
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
    run_outcome(result, waited).failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclaw::protocol::RunStatus;

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
}
