//! `sessions send`: a message to a session, then (unless `--no-wait`) its reply.

use clap::Args;
use openclaw::protocol::{DEFAULT_WAIT_SECONDS, RunResult, SendParams, WaitStatus, methods};

use super::super::{Context, call_raw, nonblank_text_or_stdin, parse_seconds, typed};
use super::send_stream::send_streaming;
use super::wait::{Print, WaitFor, finish_run, wait_for_run};
use crate::failure::Failure;
use crate::watch::Watch;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Session: key, id, unique prefix (6+ characters) or label; a key without a prefix is under the default agent (`main`)
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The message (not empty); `-` reads it from stdin
    #[arg(value_name = "MESSAGE")]
    pub message: String,
    /// How long to wait for the reply; the run goes on after the wait ends
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, conflicts_with = "no_wait", default_value_t = DEFAULT_WAIT_SECONDS)]
    pub timeout: f64,
    /// Do not wait: print the run id at once
    #[arg(long)]
    pub no_wait: bool,
    /// Print the run's progress as it comes: the assistant's text on stdout, one line per tool call on stderr (with --json: each event as a JSON line, then the result)
    #[arg(long, conflicts_with = "no_wait")]
    pub stream: bool,
    /// Retrying with the same KEY returns the first send instead of sending twice
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Print only the run id (after waiting, unless --no-wait; the exit status is the run's)
    #[arg(long, short, conflicts_with = "stream")]
    pub quiet: bool,
}

fn send_params(args: &SendArgs, message: String) -> SendParams {
    SendParams {
        session_key: args.key.clone(),
        message,
        // The daemon's "return at once" is a zero wait.
        timeout_seconds: Some(if args.no_wait { 0.0 } else { args.timeout }),
        stream_progress: args.stream.then_some(true),
        idempotency_key: args.idempotency_key.clone(),
    }
}

pub fn send(ctx: &Context, args: SendArgs) -> Result<(), Failure> {
    let message = nonblank_text_or_stdin(&args.message, "message")?;
    let mut params = send_params(&args, message);
    // Caught before the message is sent: from then on Ctrl-C only ends the wait.
    let watch = Watch::ctrl_c();
    let mut client = ctx.client()?;
    let print = if args.quiet {
        Print::RunId
    } else {
        Print::Reply
    };
    if args.stream {
        return send_streaming(ctx, &mut client, params, args.timeout, &watch);
    }
    // Accepted first, then waited for: the run id is known before the wait starts, so that
    // Ctrl-C can say which run goes on.
    params.timeout_seconds = Some(0.0);
    let raw = call_raw(&mut client, methods::SESSIONS_SEND, &params)?;
    let accepted: RunResult = typed(methods::SESSIONS_SEND, raw.clone())?;
    if args.no_wait || accepted.status != WaitStatus::Accepted {
        // An idempotent retry may answer with the first send's outcome.
        return finish_run(ctx, methods::SESSIONS_SEND, raw, args.timeout, print);
    }
    wait_for_run(
        ctx,
        &mut client,
        WaitFor::Run(accepted.run_id),
        args.timeout,
        print,
        &watch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::{parse, refused};
    use serde_json::json;

    fn send_args(args: &[&str]) -> SendArgs {
        let mut argv = vec!["send"];
        argv.extend_from_slice(args);
        match parse(&argv) {
            SessionsCommand::Send(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn send_no_wait_is_a_zero_timeout() {
        let args = send_args(&["main", "hi", "--no-wait"]);
        assert_eq!(
            serde_json::to_value(send_params(&args, "hi".into())).unwrap(),
            json!({"sessionKey": "main", "message": "hi", "timeoutSeconds": 0.0})
        );
        let args = send_args(&["k", "m", "--timeout", "5"]);
        assert_eq!(send_params(&args, "m".into()).timeout_seconds, Some(5.0));
        let args = send_args(&["k", "m"]);
        assert_eq!(send_params(&args, "m".into()).timeout_seconds, Some(30.0));
    }

    #[test]
    fn send_stream_asks_for_progress_and_cannot_skip_the_wait() {
        let args = send_args(&["k", "m", "--stream", "--timeout", "5"]);
        assert_eq!(
            serde_json::to_value(send_params(&args, "m".into())).unwrap(),
            json!({"sessionKey": "k", "message": "m", "timeoutSeconds": 5.0, "streamProgress": true})
        );
        assert_eq!(refused(&["send", "k", "m", "--stream", "--no-wait"]), 2);
    }

    #[test]
    fn send_timeout_and_no_wait_conflict() {
        assert_eq!(
            refused(&["send", "k", "m", "--timeout", "1", "--no-wait"]),
            2
        );
        assert!(send_args(&["k", "m", "-q"]).quiet);
    }
}
