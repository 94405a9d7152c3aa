//! `openclaw sessions ...`: spawn, send, wait, history, list, kill, patch, delete; the
//! streaming ones (follow, subscribe, send --stream, spawn --follow) are in `live`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use openclaw::protocol::{
    Attachment, Cleanup, DEFAULT_WAIT_SECONDS, DeleteParams, HistoryParams, HistoryResult,
    KillParams, KillResult, ListParams, ListResult, Message, PatchParams, RunResult, Runtime,
    SendParams, SessionRow, SpawnMode, SpawnParams, SpawnResult, WaitParams, WaitStatus, methods,
};
use serde::Serialize;
use serde_json::Value;

use super::live::{self, FollowArgs, SubscribeArgs};
use super::{Context, call_raw, format_seconds, parse_seconds, text_or_stdin, typed};
use crate::base64;
use crate::connection::Connection;
use crate::failure::{Exit, Failure};
use crate::output::{
    Spinner, Table, diagnostic, escape_controls, print_json, print_line, write_stdout,
};
use crate::stream::{LineStyle, Widths, render_message, run_failure};

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Start a session on a task and print its key at once (never waits for the agent)
    #[command(
        long_about = "Start a session on a task and print its key at once.\n\nThe session and its first message are stored before this returns, so the key can be used right away (for example with `openclaw sessions history`). The agent runs in the background; --wait waits for it and prints its reply instead, and --follow prints the key on stderr and then the session's transcript as it grows, until the run ends (exit status as `follow --until-done`).\n\nPrints the session key alone on a line, so `key=$(openclaw sessions spawn --task ...)` works; with --json, the whole result (sessionKey, sessionId, runId, ignoredFields)."
    )]
    // Boxed: its many flags would make every command value as large as a spawn.
    Spawn(Box<SpawnArgs>),
    /// Send a message to a session, wait for the reply and print it
    #[command(
        long_about = "Send a message to a session, wait for the reply and print it.\n\nWaits up to --timeout seconds (default 30). When the wait ends first the run goes on: the exit status is 124 and `openclaw sessions wait RUN_ID` waits again. --no-wait prints the run id at once instead; --stream prints the run's progress while waiting: the assistant's text as it is written, and a line per tool call on stderr. Sending to `main` (or agent:ID:main) creates that session on first use."
    )]
    Send(SendArgs),
    /// Wait for a run to end and print its reply
    #[command(
        long_about = "Wait for a run to end and print its reply (exit 0), or its error on stderr (exit 1). When the wait ends first the run goes on and the exit status is 124.\n\nWith --session KEY instead of RUN_ID: wait for the session's active run, or report its last run if none is active (exit 4 if the session never ran)."
    )]
    Wait(WaitArgs),
    /// Print a session's messages as they land, like `tail -f`
    #[command(
        long_about = "Print a session's messages as they land, like `tail -f`, until Ctrl-C (exit 130).\n\nBy default only new messages; --from-start prints the whole transcript first and --since SEQ everything after message SEQ, then the live ones: each message exactly once, in order, with no gap. Lines look like those of `openclaw sessions history`. --events adds live run events: the assistant's text as it streams (printed inline, standing for the reply it becomes), tool calls, usage and lifecycle lines. With --json: one JSON object per line, each the daemon's notification with an \"event\" field naming it (session.message, run.event, sessions.changed, subscription.lagged, subscription.ended).\n\n--until-done exits when the session's active run ends: 0 if it ended ok, 1 if it failed, timed out, was aborted or interrupted (the error on stderr). With no active run it exits once the transcript is printed, with the last run's outcome.\n\nIf the daemon stops or restarts, follow says so on stderr and exits 3; with --retry it reconnects (starting the daemon if needed) and resumes after the last message it printed. A deleted session ends it with exit 4. When the reader of stdout goes away (`| head`), it exits 0 at once."
    )]
    Follow(FollowArgs),
    /// Print live events of every session (or one) as they happen
    #[command(
        long_about = "Print live events of every session, or of one with --session, as they happen, until Ctrl-C (exit 130): sessions created, started, ended, patched and deleted; runs queued, started and ended; transcript messages; the assistant's text as it streams; tool calls; usage. --events picks the kinds. One compact line per event, starting with the session key; with --json, one JSON object per line, each the daemon's notification with an \"event\" field naming it. Nothing is replayed: only what happens from now on. If the daemon stops, it exits 3."
    )]
    Subscribe(SubscribeArgs),
    /// Print a session's transcript, oldest message first
    #[command(
        long_about = "Print a session's transcript, oldest message first: the newest --limit messages, one group of lines per message (`#SEQ ROLE  CONTENT`). Older messages are reached with --cursor, using the nextCursor of the previous page (shown with --json, and on stderr on a terminal)."
    )]
    History(HistoryArgs),
    /// List sessions, most recently updated first
    #[command(
        long_about = "List sessions, most recently updated first. On a terminal: an aligned table. Otherwise the same columns tab-separated, header line first, for scripts; --json gives the whole result, with every field of every session."
    )]
    List(ListArgs),
    /// Stop a session's active run (and, with --clear-queued, the runs queued behind it)
    #[command(
        long_about = "Stop a session's active run; with --clear-queued, the runs queued behind it too. Returns once the run has really ended (for an exec agent: its process group is gone). Prints the ids of the runs it stopped, one per line."
    )]
    Kill(KillArgs),
    /// Change a session's label, archived flag or send policy
    Patch(PatchArgs),
    /// Delete a session and its transcript
    Delete(DeleteArgs),
}

pub async fn run(ctx: &Context, command: SessionsCommand) -> Result<(), Failure> {
    match command {
        SessionsCommand::Spawn(args) => spawn(ctx, *args).await,
        SessionsCommand::Send(args) => send(ctx, args).await,
        SessionsCommand::Wait(args) => wait(ctx, args).await,
        SessionsCommand::Follow(args) => live::follow(ctx, args).await,
        SessionsCommand::Subscribe(args) => live::subscribe(ctx, args).await,
        SessionsCommand::History(args) => history(ctx, args).await,
        SessionsCommand::List(args) => list(ctx, args).await,
        SessionsCommand::Kill(args) => kill(ctx, args).await,
        SessionsCommand::Patch(args) => patch(ctx, args).await,
        SessionsCommand::Delete(args) => delete(ctx, args).await,
    }
}

// ---------------------------------------------------------------- spawn

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CleanupArg {
    /// Keep the session after its run (the default)
    Keep,
    /// Delete the session once its run has ended and been announced
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// One run (the default)
    Run,
    /// A session meant to receive further sends
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    Subagent,
    Acp,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// The task, the session's first message; `-` reads it from stdin
    #[arg(long, value_name = "TEXT")]
    pub task: String,
    /// Agent to run the session (default: the configured default agent)
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// A label to recognise the session by
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Model for the agent to use, where its backend has a choice
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Thinking level, where the backend supports one
    #[arg(long, value_name = "LEVEL")]
    pub thinking: Option<String>,
    /// Abort the run after this many seconds (it then ends with status timeout)
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Put FILE into the session's workspace (repeatable); binary files are sent base64-encoded
    #[arg(long = "attach", value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Record KEY as the session's parent: it is told (announce) when this run ends
    #[arg(long, value_name = "KEY")]
    pub parent: Option<String>,
    /// What happens to the session after its run
    #[arg(long, value_enum, value_name = "WHEN")]
    pub cleanup: Option<CleanupArg>,
    /// One run, or a session that takes further sends
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<ModeArg>,
    /// Runtime of the session
    #[arg(long, value_enum, value_name = "RUNTIME")]
    pub runtime: Option<RuntimeArg>,
    /// ACP runtime only: relay the child's progress to TARGET (e.g. parent); ignored, with a notice, otherwise
    #[arg(long, value_name = "TARGET")]
    pub stream_to: Option<String>,
    /// ACP runtime only: resume this ACP session; ignored, with a notice, otherwise
    #[arg(long, visible_alias = "resume", value_name = "ID")]
    pub resume_session_id: Option<String>,
    /// Retrying with the same KEY returns the first spawn instead of spawning twice
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Wait for the run and print its reply, as `openclaw sessions wait` does
    #[arg(long, conflicts_with = "follow")]
    pub wait: bool,
    /// Print the key on stderr, then the session's transcript as it grows until the run ends; the exit status is the run's, as with `follow --until-done`
    #[arg(long)]
    pub follow: bool,
    /// With --wait: how long to wait (default 30)
    #[arg(long, value_name = "SECS", requires = "wait", value_parser = parse_seconds)]
    pub wait_timeout: Option<f64>,
}

fn spawn_params(args: &SpawnArgs, task: String, attachments: Vec<Attachment>) -> SpawnParams {
    SpawnParams {
        task,
        agent_id: args.agent.clone(),
        label: args.label.clone(),
        model: args.model.clone(),
        thinking: args.thinking.clone(),
        run_timeout_seconds: args.timeout,
        mode: args.mode.map(|m| match m {
            ModeArg::Run => SpawnMode::Run,
            ModeArg::Session => SpawnMode::Session,
        }),
        cleanup: args.cleanup.map(|c| match c {
            CleanupArg::Keep => Cleanup::Keep,
            CleanupArg::Delete => Cleanup::Delete,
        }),
        runtime: args.runtime.map(|r| match r {
            RuntimeArg::Subagent => Runtime::Subagent,
            RuntimeArg::Acp => Runtime::Acp,
        }),
        attachments,
        parent_key: args.parent.clone(),
        stream_to: args.stream_to.clone().map(Value::String),
        resume_session_id: args.resume_session_id.clone().map(Value::String),
        idempotency_key: args.idempotency_key.clone(),
    }
}

/// A file for the session's workspace, named after the file: UTF-8 text as is, anything else
/// base64-encoded.
fn read_attachment(path: &Path) -> Result<Attachment, Failure> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Failure::usage(format!(
                "cannot attach {}: an attachment needs a file name in UTF-8",
                path.display()
            ))
        })?
        .to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::failed(format!("cannot read attachment {}: {e}", path.display())))?;
    Ok(attachment_from_bytes(name, bytes))
}

fn attachment_from_bytes(name: String, bytes: Vec<u8>) -> Attachment {
    match String::from_utf8(bytes) {
        Ok(content) => Attachment {
            name,
            content,
            encoding: None,
        },
        Err(not_utf8) => Attachment {
            name,
            content: base64::encode(not_utf8.as_bytes()),
            encoding: Some("base64".to_string()),
        },
    }
}

async fn spawn(ctx: &Context, args: SpawnArgs) -> Result<(), Failure> {
    let task = text_or_stdin(&args.task, "task")?;
    let attachments = args
        .attach
        .iter()
        .map(|path| read_attachment(path))
        .collect::<Result<Vec<_>, _>>()?;
    let params = spawn_params(&args, task, attachments);
    let client = ctx.client().await?;
    let raw = call_raw(&client, methods::SESSIONS_SPAWN, &params).await?;
    let spawned: SpawnResult = typed(methods::SESSIONS_SPAWN, raw.clone())?;
    if !spawned.ignored_fields.is_empty() {
        diagnostic(
            "note",
            &format!(
                "the daemon ignored {}: {} only to the acp runtime",
                spawned.ignored_fields.join(", "),
                if spawned.ignored_fields.len() == 1 {
                    "it applies"
                } else {
                    "they apply"
                }
            ),
        );
    }
    if args.wait {
        return wait_for_run(
            ctx,
            &client,
            WaitFor::Run(spawned.run_id),
            args.wait_timeout,
        )
        .await;
    }
    if args.follow {
        return live::follow_spawned(ctx, client, spawned.session_key, spawned.run_id).await;
    }
    if ctx.json {
        print_json(&raw)
    } else {
        print_line(&spawned.session_key)
    }
}

// ---------------------------------------------------------------- send / wait

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Session key or id (a key without a prefix is under the default agent: `main`)
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The message; `-` reads it from stdin
    #[arg(value_name = "MESSAGE")]
    pub message: String,
    /// How long to wait for the reply (default 30); the run goes on after the wait ends
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, conflicts_with = "no_wait")]
    pub timeout: Option<f64>,
    /// Do not wait: print the run id at once
    #[arg(long)]
    pub no_wait: bool,
    /// Print the run's progress as it comes: the assistant's text on stdout, one line per tool call on stderr (with --json: each event as a JSON line, then the result)
    #[arg(long, conflicts_with = "no_wait")]
    pub stream: bool,
    /// Retrying with the same KEY returns the first send instead of sending twice
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

fn send_params(args: &SendArgs, message: String) -> SendParams {
    SendParams {
        session_key: args.key.clone(),
        message,
        // The daemon's "return at once" is a zero wait.
        timeout_seconds: if args.no_wait {
            Some(0.0)
        } else {
            args.timeout
        },
        stream_progress: args.stream.then_some(true),
        idempotency_key: args.idempotency_key.clone(),
    }
}

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
    /// How long to wait (default 30); the run goes on after the wait ends
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
}

async fn send(ctx: &Context, args: SendArgs) -> Result<(), Failure> {
    let message = text_or_stdin(&args.message, "message")?;
    let params = send_params(&args, message);
    let client = ctx.client().await?;
    let waited = params.timeout_seconds.unwrap_or(DEFAULT_WAIT_SECONDS);
    if args.stream {
        return live::send_streaming(ctx, &client, params, waited).await;
    }
    let spinner =
        (waited > 0.0).then(|| Spinner::start(&ctx.terminal, "waiting for the reply".into()));
    let raw = call_waiting(&client, methods::SESSIONS_SEND, &params, waited).await;
    drop(spinner);
    finish_run(ctx, methods::SESSIONS_SEND, raw?, waited)
}

/// What `wait` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WaitFor {
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
}

async fn wait(ctx: &Context, args: WaitArgs) -> Result<(), Failure> {
    let client = ctx.client().await?;
    wait_for_run(ctx, &client, WaitFor::from_args(&args), args.timeout).await
}

async fn wait_for_run(
    ctx: &Context,
    client: &Connection,
    target: WaitFor,
    timeout: Option<f64>,
) -> Result<(), Failure> {
    let spinner = Spinner::start(
        &ctx.terminal,
        match &target {
            WaitFor::Run(run) => format!("waiting for run {run}"),
            WaitFor::Session(key) => format!("waiting for the run of {key}"),
        },
    );
    let params = wait_params(target, timeout);
    let waited = timeout.unwrap_or(DEFAULT_WAIT_SECONDS);
    let raw = call_waiting(client, methods::RUNS_WAIT, &params, waited).await;
    drop(spinner);
    finish_run(ctx, methods::RUNS_WAIT, raw?, waited)
}

/// How long past the requested wait the daemon may take to answer. It bounds its own wait,
/// so this only fires when it is stuck, and then a cron job must not hang forever.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

fn wait_params(target: WaitFor, timeout: Option<f64>) -> WaitParams {
    let (run_id, session_key) = match target {
        WaitFor::Run(run) => (Some(run), None),
        WaitFor::Session(key) => (None, Some(key)),
    };
    WaitParams {
        run_id,
        session_key,
        timeout_seconds: timeout,
    }
}

/// A call in which the daemon waits up to `waited_secs` before answering.
pub(super) async fn call_waiting<P: Serialize>(
    client: &Connection,
    method: &str,
    params: &P,
    waited_secs: f64,
) -> Result<Value, Failure> {
    let wait = Duration::try_from_secs_f64(waited_secs).unwrap_or(Duration::MAX);
    let deadline = wait.saturating_add(ANSWER_GRACE);
    match tokio::time::timeout(deadline, call_raw(client, method, params)).await {
        Ok(answer) => answer,
        Err(_) => Err(Failure::new(
            Exit::Unreachable,
            format!(
                "the daemon did not answer {method} within {} (the wait was {}); it may be stuck or overloaded: `openclaw daemon status` shows whether it responds",
                format_seconds(deadline.as_secs_f64()),
                format_seconds(waited_secs)
            ),
        )),
    }
}

/// Prints a RunResult (raw with --json) and turns its status into the exit status.
fn finish_run(ctx: &Context, method: &str, raw: Value, waited_secs: f64) -> Result<(), Failure> {
    let result: RunResult = typed(method, raw.clone())?;
    let outcome = run_outcome(&result, waited_secs);
    if ctx.json {
        print_json(&raw)?;
    } else if let Some(text) = outcome.stdout {
        if ctx.terminal.stdout_is_tty {
            write_stdout(&escape_controls(&text))?;
        } else {
            write_stdout(&text)?;
        }
    }
    outcome.failure.map_or(Ok(()), Err)
}

/// What a send or wait result means: what to print on stdout, and whether it failed.
#[derive(Debug)]
pub(super) struct RunOutcome {
    pub stdout: Option<String>,
    pub failure: Option<Failure>,
}

/// A reply as printed: with one line end.
pub(super) fn reply_text(reply: &str) -> String {
    if reply.is_empty() || reply.ends_with('\n') {
        reply.to_string()
    } else {
        format!("{reply}\n")
    }
}

pub(super) fn run_outcome(result: &RunResult, waited_secs: f64) -> RunOutcome {
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

// ---------------------------------------------------------------- history

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Session key or id
    #[arg(value_name = "KEY")]
    pub key: String,
    /// How many of the newest messages (default 50, at most 1000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Continue with older messages: the nextCursor of the previous page
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Include tool results (left out by default)
    #[arg(long)]
    pub include_tools: bool,
    /// Show each message's time (RFC 3339, UTC)
    #[arg(long)]
    pub timestamps: bool,
}

async fn history(ctx: &Context, args: HistoryArgs) -> Result<(), Failure> {
    let params = HistoryParams {
        session_key: args.key,
        limit: args.limit,
        cursor: args.cursor,
        include_tools: args.include_tools.then_some(true),
    };
    let client = ctx.client().await?;
    let raw = call_raw(&client, methods::SESSIONS_HISTORY, &params).await?;
    if ctx.json {
        return print_json(&raw);
    }
    let page: HistoryResult = typed(methods::SESSIONS_HISTORY, raw)?;
    let style = LineStyle {
        color: ctx.terminal.color,
        escape: ctx.terminal.stdout_is_tty,
        timestamps: args.timestamps,
    };
    write_stdout(&render_history(&page.messages, style))?;
    if page.has_more
        && ctx.terminal.stderr_is_tty
        && let Some(cursor) = &page.next_cursor
    {
        diagnostic(
            "note",
            &format!(
                "older messages: openclaw sessions history {} --cursor {cursor}",
                page.session_key
            ),
        );
    }
    Ok(())
}

/// One group of lines per message (`#SEQ [TS ]ROLE  CONTENT`), columns lined up over the page.
fn render_history(messages: &[Message], style: LineStyle) -> String {
    let widths = Widths {
        seq: messages
            .iter()
            .map(|m| m.seq.to_string().len() + 1)
            .max()
            .unwrap_or(0),
        ts: messages.iter().map(|m| m.ts.len()).max().unwrap_or(0),
        role: messages
            .iter()
            .map(|m| m.role.as_str().len())
            .max()
            .unwrap_or(0),
    };
    messages
        .iter()
        .map(|m| render_message(m, style, widths))
        .collect()
}

// ---------------------------------------------------------------- list

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only sessions of this kind: main, subagent, cron, hook (repeatable)
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Only sessions active in the last MINUTES minutes
    #[arg(long, value_name = "MINUTES")]
    pub active: Option<u64>,
    /// At most N sessions
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue after the previous page: its nextCursor
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Only sessions spawned by this session
    #[arg(long, value_name = "KEY")]
    pub parent: Option<String>,
    /// Include archived sessions
    #[arg(long)]
    pub include_archived: bool,
    /// With --json: include each session's last N messages
    #[arg(long, value_name = "N")]
    pub message_limit: Option<u32>,
}

fn list_params(args: ListArgs) -> ListParams {
    ListParams {
        kinds: (!args.kinds.is_empty()).then_some(args.kinds),
        limit: args.limit,
        cursor: args.cursor,
        active_minutes: args.active,
        message_limit: args.message_limit,
        parent_key: args.parent,
        include_archived: args.include_archived.then_some(true),
    }
}

async fn list(ctx: &Context, args: ListArgs) -> Result<(), Failure> {
    let params = list_params(args);
    let client = ctx.client().await?;
    let raw = call_raw(&client, methods::SESSIONS_LIST, &params).await?;
    if ctx.json {
        return print_json(&raw);
    }
    let page: ListResult = typed(methods::SESSIONS_LIST, raw)?;
    write_stdout(&sessions_table(&page.sessions).render(&ctx.terminal))?;
    if ctx.terminal.stderr_is_tty
        && let Some(cursor) = &page.next_cursor
    {
        diagnostic(
            "note",
            &format!("more sessions: openclaw sessions list --cursor {cursor}"),
        );
    }
    Ok(())
}

fn sessions_table(rows: &[SessionRow]) -> Table {
    let mut table = Table::new(vec![
        "KEY", "AGENT", "KIND", "STATUS", "MESSAGES", "UPDATED", "LABEL",
    ]);
    for row in rows {
        let status = if row.archived {
            format!("{} (archived)", row.status)
        } else {
            row.status.clone()
        };
        table.push(vec![
            row.key.clone(),
            row.agent_id.clone(),
            row.kind.clone(),
            status,
            row.message_count.to_string(),
            row.updated_at.clone(),
            row.label.clone().unwrap_or_default(),
        ]);
    }
    table
}

// ---------------------------------------------------------------- kill / patch / delete

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Session key or id
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Also abort the runs queued behind the active one
    #[arg(long)]
    pub clear_queued: bool,
}

async fn kill(ctx: &Context, args: KillArgs) -> Result<(), Failure> {
    let params = KillParams {
        session_key: args.key,
        clear_queued: args.clear_queued.then_some(true),
    };
    let client = ctx.client().await?;
    let raw = call_raw(&client, methods::SESSIONS_KILL, &params).await?;
    if ctx.json {
        return print_json(&raw);
    }
    let killed: KillResult = typed(methods::SESSIONS_KILL, raw)?;
    let stopped: String = killed
        .aborted_run_id
        .iter()
        .chain(&killed.cleared_run_ids)
        .map(|run| format!("{run}\n"))
        .collect();
    write_stdout(&stopped)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SendPolicyArg {
    /// Accept sends whatever the rules say
    Allow,
    /// Refuse sends whatever the rules say
    Deny,
    /// Follow the configured rules (remove the override)
    Inherit,
}

impl SendPolicyArg {
    fn as_str(self) -> &'static str {
        match self {
            SendPolicyArg::Allow => "allow",
            SendPolicyArg::Deny => "deny",
            SendPolicyArg::Inherit => "inherit",
        }
    }
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Session key or id
    #[arg(value_name = "KEY")]
    pub key: String,
    /// New label; an empty string removes it
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Archive (true) or unarchive (false) the session
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub archived: Option<bool>,
    /// Whether the session accepts sends
    #[arg(long, value_enum, value_name = "POLICY")]
    pub send_policy: Option<SendPolicyArg>,
}

fn patch_params(args: PatchArgs) -> Result<PatchParams, Failure> {
    if args.label.is_none() && args.archived.is_none() && args.send_policy.is_none() {
        return Err(Failure::usage(
            "nothing to change: give --label, --archived or --send-policy",
        ));
    }
    Ok(PatchParams {
        session_key: args.key,
        label: args.label,
        send_policy: args.send_policy.map(|p| p.as_str().to_string()),
        archived: args.archived,
        model: None,
    })
}

async fn patch(ctx: &Context, args: PatchArgs) -> Result<(), Failure> {
    let params = patch_params(args)?;
    let client = ctx.client().await?;
    let raw = call_raw(&client, methods::SESSIONS_PATCH, &params).await?;
    if ctx.json { print_json(&raw) } else { Ok(()) }
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Session key or id
    #[arg(value_name = "KEY")]
    pub key: String,
}

async fn delete(ctx: &Context, args: DeleteArgs) -> Result<(), Failure> {
    let params = DeleteParams {
        session_key: args.key,
    };
    let client = ctx.client().await?;
    let raw = call_raw(&client, methods::SESSIONS_DELETE, &params).await?;
    if ctx.json { print_json(&raw) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::content_text;
    use clap::Parser;
    use openclaw::protocol::{Provenance, ProvenanceKind, Role, RunStatus};
    use serde_json::json;

    /// Parses `openclaw sessions ARGS...` with the real clap tree.
    fn parse(args: &[&str]) -> SessionsCommand {
        let argv = ["openclaw", "sessions"].iter().chain(args);
        match crate::Cli::try_parse_from(argv).unwrap().command {
            crate::Command::Sessions(cmd) => cmd,
            other => panic!("not a sessions command: {other:?}"),
        }
    }

    fn spawn_args(args: &[&str]) -> SpawnArgs {
        let mut argv = vec!["spawn"];
        argv.extend_from_slice(args);
        match parse(&argv) {
            SessionsCommand::Spawn(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spawn_flags_map_onto_spawn_params() {
        let args = spawn_args(&[
            "--task",
            "t",
            "--agent",
            "worker",
            "--label",
            "daily",
            "--model",
            "m",
            "--timeout",
            "2.5",
            "--parent",
            "agent:main:main",
            "--cleanup",
            "delete",
            "--mode",
            "session",
            "--idempotency-key",
            "abc",
            "--thinking",
            "high",
        ]);
        let wire = serde_json::to_value(spawn_params(&args, "t".into(), vec![])).unwrap();
        assert_eq!(
            wire,
            json!({
                "task": "t", "agentId": "worker", "label": "daily", "model": "m",
                "thinking": "high", "runTimeoutSeconds": 2.5, "mode": "session",
                "cleanup": "delete", "parentKey": "agent:main:main", "idempotencyKey": "abc"
            })
        );
    }

    #[test]
    fn minimal_spawn_sends_only_the_task() {
        let args = spawn_args(&["--task", "hi"]);
        let wire = serde_json::to_value(spawn_params(&args, "hi".into(), vec![])).unwrap();
        assert_eq!(wire, json!({"task": "hi"}));
        assert!(!args.wait);
    }

    #[test]
    fn acp_only_flags_are_sent_for_the_daemon_to_judge() {
        let args = spawn_args(&[
            "--task",
            "t",
            "--stream-to",
            "parent",
            "--resume-session-id",
            "r",
        ]);
        let wire = serde_json::to_value(spawn_params(&args, "t".into(), vec![])).unwrap();
        assert_eq!(wire["streamTo"], "parent");
        assert_eq!(wire["resumeSessionId"], "r");
    }

    #[test]
    fn wait_timeout_needs_wait() {
        let argv = [
            "openclaw",
            "sessions",
            "spawn",
            "--task",
            "t",
            "--wait-timeout",
            "3",
        ];
        let err = crate::Cli::try_parse_from(argv).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let args = spawn_args(&["--task", "t", "--wait", "--wait-timeout", "3"]);
        assert_eq!((args.wait, args.wait_timeout), (true, Some(3.0)));
    }

    #[test]
    fn attachments_are_utf8_or_base64() {
        let text = attachment_from_bytes("a.txt".into(), b"hello".to_vec());
        assert_eq!((text.content.as_str(), text.encoding), ("hello", None));
        let binary = attachment_from_bytes("b.bin".into(), vec![0xff, 0x00]);
        assert_eq!(binary.content, "/wA=");
        assert_eq!(binary.encoding.as_deref(), Some("base64"));
    }

    #[test]
    fn attachment_is_named_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.md");
        std::fs::write(&path, "# notes").unwrap();
        let a = read_attachment(&path).unwrap();
        assert_eq!(
            (a.name.as_str(), a.content.as_str()),
            ("notes.md", "# notes")
        );
        let missing = read_attachment(&dir.path().join("nope")).unwrap_err();
        assert!(missing.message.unwrap().contains("nope"));
    }

    #[test]
    fn send_no_wait_is_a_zero_timeout() {
        let SessionsCommand::Send(args) = parse(&["send", "main", "hi", "--no-wait"]) else {
            panic!()
        };
        let p = send_params(&args, "hi".into());
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            json!({"sessionKey": "main", "message": "hi", "timeoutSeconds": 0.0})
        );
        let SessionsCommand::Send(args) = parse(&["send", "k", "m", "--timeout", "5"]) else {
            panic!()
        };
        assert_eq!(send_params(&args, "m".into()).timeout_seconds, Some(5.0));
        let SessionsCommand::Send(args) = parse(&["send", "k", "m"]) else {
            panic!()
        };
        assert_eq!(send_params(&args, "m".into()).timeout_seconds, None);
    }

    #[test]
    fn send_stream_asks_for_progress_and_cannot_skip_the_wait() {
        let SessionsCommand::Send(args) = parse(&["send", "k", "m", "--stream", "--timeout", "5"])
        else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(send_params(&args, "m".into())).unwrap(),
            json!({"sessionKey": "k", "message": "m", "timeoutSeconds": 5.0, "streamProgress": true})
        );
        let argv = [
            "openclaw",
            "sessions",
            "send",
            "k",
            "m",
            "--stream",
            "--no-wait",
        ];
        assert_eq!(crate::Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn spawn_follow_and_wait_conflict() {
        assert!(spawn_args(&["--task", "t", "--follow"]).follow);
        let argv = [
            "openclaw", "sessions", "spawn", "--task", "t", "--follow", "--wait",
        ];
        assert_eq!(crate::Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn wait_takes_a_run_or_a_session() {
        let SessionsCommand::Wait(args) = parse(&["wait", "r1", "--timeout", "2"]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(wait_params(WaitFor::from_args(&args), args.timeout)).unwrap(),
            json!({"runId": "r1", "timeoutSeconds": 2.0})
        );
        let SessionsCommand::Wait(args) = parse(&["wait", "--session", "main"]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(wait_params(WaitFor::from_args(&args), args.timeout)).unwrap(),
            json!({"sessionKey": "main"})
        );
        for argv in [
            &["openclaw", "sessions", "wait"][..],
            &["openclaw", "sessions", "wait", "r1", "--session", "main"][..],
        ] {
            assert_eq!(crate::Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
        }
    }

    #[test]
    fn send_timeout_and_no_wait_conflict() {
        let argv = [
            "openclaw",
            "sessions",
            "send",
            "k",
            "m",
            "--timeout",
            "1",
            "--no-wait",
        ];
        assert_eq!(crate::Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
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

    fn message(seq: u64, role: Role, content: Value) -> Message {
        Message {
            seq,
            ts: "2026-11-21T23:19:23.123Z".into(),
            role,
            content,
            run_id: None,
            provenance: Provenance {
                kind: ProvenanceKind::Operator,
                from: None,
            },
            usage: None,
            truncated: None,
            bytes: None,
        }
    }

    #[test]
    fn history_groups_lines_per_message() {
        let messages = [
            message(9, Role::User, json!("run the report")),
            message(10, Role::Assistant, json!("line one\nline two")),
        ];
        let expected = "\
#9  user       run the report
#10 assistant  line one
               line two
";
        assert_eq!(render_history(&messages, LineStyle::default()), expected);
    }

    #[test]
    fn history_with_timestamps_and_escaping() {
        let messages = [message(1, Role::Assistant, json!("\x1b[2Jgone\n"))];
        let style = LineStyle {
            escape: true,
            timestamps: true,
            ..LineStyle::default()
        };
        assert_eq!(
            render_history(&messages, style),
            "#1 2026-11-21T23:19:23.123Z assistant  ^[[2Jgone\n"
        );
    }

    #[test]
    fn history_colours_the_role_but_keeps_alignment() {
        let messages = [message(1, Role::User, json!("hi"))];
        let style = LineStyle {
            color: true,
            ..LineStyle::default()
        };
        assert_eq!(
            render_history(&messages, style),
            "\x1b[2m#1\x1b[0m \x1b[36muser\x1b[0m  hi\n"
        );
    }

    #[test]
    fn empty_history_prints_nothing() {
        assert_eq!(render_history(&[], LineStyle::default()), "");
    }

    #[test]
    fn content_blocks_render_as_text() {
        assert_eq!(
            content_text(&json!([{"type": "text", "text": "a"}, {"type": "image", "url": "u"}])),
            "a\n{\"type\":\"image\",\"url\":\"u\"}"
        );
        assert_eq!(content_text(&json!(null)), "");
        assert_eq!(content_text(&json!({"k": 1})), "{\"k\":1}");
    }

    #[test]
    fn list_flags_map_onto_list_params() {
        let SessionsCommand::List(args) = parse(&[
            "list",
            "--kind",
            "main",
            "--kind",
            "subagent",
            "--active",
            "15",
            "--limit",
            "5",
            "--cursor",
            "c",
            "--parent",
            "p",
            "--include-archived",
        ]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(list_params(args)).unwrap(),
            json!({
                "kinds": ["main", "subagent"], "activeMinutes": 15, "limit": 5,
                "cursor": "c", "parentKey": "p", "includeArchived": true
            })
        );
        let SessionsCommand::List(args) = parse(&["list"]) else {
            panic!()
        };
        assert_eq!(serde_json::to_value(list_params(args)).unwrap(), json!({}));
    }

    #[test]
    fn session_rows_become_table_rows() {
        let row: SessionRow = serde_json::from_value(json!({
            "key": "agent:main:main", "sessionId": "s", "agentId": "main", "kind": "main",
            "label": null, "parentKey": null, "status": "ok", "activeRunId": null,
            "model": null, "createdAt": "c", "updatedAt": "2026-11-21T23:19:23Z",
            "startedAt": null, "endedAt": null, "runtimeMs": null, "tokens": null,
            "messageCount": 2, "lastMessagePreview": "hi", "archived": true, "sendPolicy": null
        }))
        .unwrap();
        assert_eq!(
            sessions_table(&[row]).tab_separated(),
            "KEY\tAGENT\tKIND\tSTATUS\tMESSAGES\tUPDATED\tLABEL\n\
             agent:main:main\tmain\tmain\tok (archived)\t2\t2026-11-21T23:19:23Z\t\n"
        );
    }

    #[test]
    fn patch_needs_something_to_change() {
        let SessionsCommand::Patch(args) = parse(&["patch", "k"]) else {
            panic!()
        };
        assert_eq!(patch_params(args).unwrap_err().exit, Exit::Usage);
        let SessionsCommand::Patch(args) = parse(&[
            "patch",
            "k",
            "--archived",
            "yes",
            "--send-policy",
            "deny",
            "--label",
            "",
        ]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(patch_params(args).unwrap()).unwrap(),
            json!({"sessionKey": "k", "label": "", "sendPolicy": "deny", "archived": true})
        );
    }

    #[test]
    fn history_limit_is_bounded() {
        let argv = ["openclaw", "sessions", "history", "k", "--limit", "1001"];
        assert_eq!(crate::Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
    }
}
