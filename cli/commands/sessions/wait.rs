//! `sessions wait`, and waiting for a run wherever a command does (`send`, `spawn --wait`):
//! a spinner on a terminal, Ctrl-C that stops the wait and not the run, and the outcome as the
//! exit status.

use std::time::{Duration, Instant};

use clap::Args;
use openclaw::client::blocking::Wait;
use openclaw::protocol::{DEFAULT_WAIT_SECONDS, RunResult, WaitParams, WaitStatus, methods};
use serde::Serialize;
use serde_json::Value;

use super::super::{Context, format_seconds, parse_seconds, typed};
use crate::connection::{CallError, Connection};
use crate::failure::{Exit, Failure};
use crate::output::{Spinner, escape_controls, print_json, write_stdout};
use crate::stream::outcome::run_failure;
use crate::watch::{Watch, Woke};

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("target").required(true).args(["run_id", "session"])
))]
pub struct WaitArgs {
    /// The run, as printed by `send --no-wait` or in a spawn's runId
    #[arg(value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Instead of a run: the session's active run, else its last one
    #[arg(long, value_name = "KEY")]
    pub session: Option<String>,
    /// How long to wait; the run goes on after the wait ends
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, default_value_t = DEFAULT_WAIT_SECONDS)]
    pub timeout: f64,
}

/// What a wait waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    Run(String),
    /// The session's active run, else its last one.
    Session(String),
}

impl WaitFor {
    fn from_args(args: &WaitArgs) -> WaitFor {
        match (&args.run_id, &args.session) {
            (_, Some(key)) => WaitFor::Session(key.clone()),
            (Some(run), None) => WaitFor::Run(run.clone()),
            // clap requires one of them.
            (None, None) => WaitFor::Run(String::new()),
        }
    }

    /// The command that waits again.
    fn again(&self) -> String {
        match self {
            WaitFor::Run(run) => format!("openclaw sessions wait {run}"),
            WaitFor::Session(key) => format!("openclaw sessions wait --session {key}"),
        }
    }
}

/// What a finished wait prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Print {
    /// The reply (the run id for `accepted`).
    Reply,
    /// Only the run id (`send --quiet`).
    RunId,
    /// Nothing (`spawn --quiet --wait`: the key is printed already).
    Nothing,
}

pub fn wait(ctx: &Context, args: WaitArgs) -> Result<(), Failure> {
    // Caught from the start: Ctrl-C at any point only ends the wait.
    let watch = Watch::ctrl_c();
    let mut client = ctx.client()?;
    wait_for_run(
        ctx,
        &mut client,
        WaitFor::from_args(&args),
        args.timeout,
        Print::Reply,
        &watch,
    )
}

/// Waits up to `timeout` seconds for the run, then prints and exits as its outcome says.
/// `watch` (Ctrl-C) was set up by the command before its first call, so that a Ctrl-C at any
/// point after the run exists is reported as "the run goes on".
pub fn wait_for_run(
    ctx: &Context,
    client: &mut Connection,
    target: WaitFor,
    timeout: f64,
    print: Print,
    watch: &Watch,
) -> Result<(), Failure> {
    let spinner = Spinner::start(
        &ctx.terminal,
        match &target {
            WaitFor::Run(run) => format!("waiting for run {run}"),
            WaitFor::Session(key) => format!("waiting for the run of {key}"),
        },
    );
    let params = wait_params(&target, timeout);
    let raw = call_waiting(client, methods::RUNS_WAIT, &params, timeout, watch);
    drop(spinner);
    match raw {
        Ok(raw) => finish_run(ctx, methods::RUNS_WAIT, raw, timeout, print),
        Err(Ended::Woke(_)) => Err(interrupted(&target)),
        Err(Ended::Failed(failure)) => Err(failure),
    }
}

/// Ctrl-C during a wait: the run is not touched.
pub fn interrupted(target: &WaitFor) -> Failure {
    let what = match target {
        WaitFor::Run(run) => format!("run {run} goes on"),
        WaitFor::Session(key) => format!("the run of {key} goes on"),
    };
    Failure::new(
        Exit::Interrupted,
        format!(
            "stopped waiting; {what}: `{}` waits for it again",
            target.again()
        ),
    )
}

fn wait_params(target: &WaitFor, timeout: f64) -> WaitParams {
    let (run_id, session_key) = match target {
        WaitFor::Run(run) => (Some(run.clone()), None),
        WaitFor::Session(key) => (None, Some(key.clone())),
    };
    WaitParams {
        run_id,
        session_key,
        timeout_seconds: Some(timeout),
    }
}

/// How long past the requested wait the daemon may take to answer. It bounds its own wait,
/// so this only fires when it is stuck, and then a cron job must not hang forever.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

/// How a watched call ended without a result.
#[derive(Debug)]
pub enum Ended {
    /// Ctrl-C, or stdout's reader went away.
    Woke(Woke),
    Failed(Failure),
}

impl Ended {
    pub fn of(err: CallError, watch: &Watch) -> Ended {
        match err.woken() {
            Some(i) => Ended::Woke(watch.woke(i)),
            None => Ended::Failed(err.into()),
        }
    }
}

/// A call in which the daemon waits up to `waited_secs` before answering; what `watch`
/// watches ends it early.
pub fn call_waiting<P: Serialize>(
    client: &mut Connection,
    method: &str,
    params: &P,
    waited_secs: f64,
    watch: &Watch,
) -> Result<Value, Ended> {
    let wait = Duration::try_from_secs_f64(waited_secs).unwrap_or(Duration::MAX);
    let patience = wait.saturating_add(ANSWER_GRACE);
    let wakes = watch.wakes();
    let bounded = Wait {
        deadline: Instant::now().checked_add(patience),
        wake: &wakes,
    };
    match client.call_value_with(method, params, &bounded) {
        Ok(value) => Ok(value),
        Err(CallError::Client(openclaw::ClientError::TimedOut)) => Err(Ended::Failed(Failure::new(
            Exit::Unreachable,
            format!(
                "the daemon did not answer {method} within {} (the wait was {}); it may be stuck or overloaded: `openclaw daemon status` shows whether it responds",
                format_seconds(patience.as_secs_f64()),
                format_seconds(waited_secs)
            ),
        )
        .with_kind("no_answer"))),
        Err(err) => Err(Ended::of(err, watch)),
    }
}

/// Prints a RunResult (raw with --json) and turns its status into the exit status.
pub fn finish_run(
    ctx: &Context,
    method: &str,
    raw: Value,
    waited_secs: f64,
    print: Print,
) -> Result<(), Failure> {
    let result: RunResult = typed(method, raw.clone())?;
    let outcome = run_outcome(&result, waited_secs);
    match print {
        // --quiet wins over --json: one id, as a script asked.
        Print::Nothing => {}
        Print::RunId => write_stdout(&format!("{}\n", result.run_id))?,
        Print::Reply if ctx.json => print_json(&raw)?,
        Print::Reply => {
            if let Some(text) = outcome.stdout {
                if ctx.terminal.stdout_is_tty {
                    write_stdout(&escape_controls(&text))?;
                } else {
                    write_stdout(&text)?;
                }
            }
        }
    }
    outcome.failure.map_or(Ok(()), Err)
}

/// What a send or wait result means: what to print on stdout, and whether it failed.
#[derive(Debug)]
pub struct RunOutcome {
    pub stdout: Option<String>,
    pub failure: Option<Failure>,
}

/// A reply as printed: with one line end.
pub fn reply_text(reply: &str) -> String {
    if reply.is_empty() || reply.ends_with('\n') {
        reply.to_string()
    } else {
        format!("{reply}\n")
    }
}

pub fn run_outcome(result: &RunResult, waited_secs: f64) -> RunOutcome {
    let run = &result.run_id;
    match result.status {
        WaitStatus::Accepted => RunOutcome {
            stdout: Some(format!("{run}\n")),
            failure: None,
        },
        WaitStatus::Ok => RunOutcome {
            stdout: result
                .reply
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(reply_text),
            failure: None,
        },
        WaitStatus::Timeout => RunOutcome {
            stdout: None,
            failure: Some(Failure::new(
                Exit::TimedOut,
                format!(
                    "no reply within {}; run {run} goes on. Wait for it with `openclaw sessions wait {run}`, or follow its session with `openclaw sessions follow {} --until-done`",
                    format_seconds(waited_secs),
                    result.session_key
                ),
            )),
        },
        WaitStatus::Error => RunOutcome {
            stdout: None,
            failure: Some(run_failure(run, result.run_status, result.error.as_deref())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::{parse, refused};
    use openclaw::protocol::RunStatus;
    use serde_json::json;

    #[test]
    fn wait_takes_a_run_or_a_session() {
        let SessionsCommand::Wait(args) = parse(&["wait", "r1", "--timeout", "2"]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(wait_params(&WaitFor::from_args(&args), args.timeout)).unwrap(),
            json!({"runId": "r1", "timeoutSeconds": 2.0})
        );
        let SessionsCommand::Wait(args) = parse(&["wait", "--session", "main"]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(wait_params(&WaitFor::from_args(&args), args.timeout)).unwrap(),
            json!({"sessionKey": "main", "timeoutSeconds": 30.0})
        );
        assert_eq!(refused(&["wait"]), 2);
        assert_eq!(refused(&["wait", "r1", "--session", "main"]), 2);
    }

    #[test]
    fn an_interrupted_wait_says_the_run_goes_on_and_how_to_resume() {
        let f = interrupted(&WaitFor::Run("r1".into()));
        assert_eq!(f.exit, Exit::Interrupted);
        let message = f.message.unwrap();
        assert!(message.contains("run r1 goes on"), "{message}");
        assert!(message.contains("`openclaw sessions wait r1`"), "{message}");
        let f = interrupted(&WaitFor::Session("agent:main:main".into()));
        assert!(
            f.message
                .unwrap()
                .contains("openclaw sessions wait --session agent:main:main")
        );
    }

    fn run_result(status: WaitStatus, run_status: RunStatus) -> RunResult {
        RunResult {
            run_id: "r1".into(),
            session_key: "agent:main:main".into(),
            status,
            run_status,
            reply: None,
            error: None,
        }
    }

    #[test]
    fn ok_prints_the_reply_with_one_newline() {
        let mut r = run_result(WaitStatus::Ok, RunStatus::Ok);
        r.reply = Some("hello".into());
        let o = run_outcome(&r, 30.0);
        assert_eq!(o.stdout.as_deref(), Some("hello\n"));
        assert!(o.failure.is_none());
        r.reply = Some("two\nlines\n".into());
        assert_eq!(
            run_outcome(&r, 30.0).stdout.as_deref(),
            Some("two\nlines\n")
        );
        r.reply = None;
        assert_eq!(run_outcome(&r, 30.0).stdout, None);
    }

    #[test]
    fn accepted_prints_the_run_id() {
        let o = run_outcome(&run_result(WaitStatus::Accepted, RunStatus::Queued), 0.0);
        assert_eq!(o.stdout.as_deref(), Some("r1\n"));
        assert!(o.failure.is_none());
    }

    #[test]
    fn wait_timeout_is_124_and_says_how_to_wait_again() {
        let o = run_outcome(&run_result(WaitStatus::Timeout, RunStatus::Running), 5.0);
        let f = o.failure.unwrap();
        assert_eq!(f.exit, Exit::TimedOut);
        let msg = f.message.unwrap();
        assert!(msg.contains("within 5 s"), "{msg}");
        assert!(msg.contains("openclaw sessions wait r1"), "{msg}");
        assert_eq!(o.stdout, None);
    }

    #[test]
    fn failed_run_is_1_with_the_error_text() {
        let mut r = run_result(WaitStatus::Error, RunStatus::Error);
        r.error = Some("boom: line 1\nline 2\n".into());
        let f = run_outcome(&r, 30.0).failure.unwrap();
        assert_eq!(f.exit, Exit::Failed);
        assert_eq!(f.message.unwrap(), "run r1 failed:\nboom: line 1\nline 2");

        let mut r = run_result(WaitStatus::Error, RunStatus::Aborted);
        r.error = Some("killed".into());
        let f = run_outcome(&r, 30.0).failure.unwrap();
        assert_eq!(f.message.unwrap(), "run r1 was aborted: killed");

        let r = run_result(WaitStatus::Error, RunStatus::Timeout);
        let f = run_outcome(&r, 30.0).failure.unwrap();
        assert_eq!(f.exit, Exit::Failed);
        assert!(f.message.unwrap().contains("timed out"));
    }
}
