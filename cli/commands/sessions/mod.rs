//! `openclaw sessions ...`: one module per command, plus what several share: waiting for a
//! run and reading its outcome (`wait`), and following a transcript (`follow`, which `spawn
//! --follow` also uses).

mod follow;
mod follow_plan;
mod history;
mod list;
mod manage;
mod send;
mod send_stream;
mod show;
mod spawn;
mod subscribe;
mod wait;

use clap::Subcommand;

pub use follow_plan::FollowArgs;
pub use history::HistoryArgs;
pub use list::ListArgs;
pub use manage::{DeleteArgs, KillArgs, PatchArgs};
pub use send::SendArgs;
pub use show::ShowArgs;
pub use spawn::SpawnArgs;
pub use subscribe::SubscribeArgs;
pub use wait::WaitArgs;

use super::Context;
use crate::failure::Failure;

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Start a session on a task and print its key at once (never waits for the agent)
    #[command(
        long_about = "Start a session on a task and print its key at once.\n\nThe session and its first message are stored before this returns, so the key can be used right away (for example with `openclaw sessions history`). The agent runs in the background; --wait waits for it and prints its reply instead, and --follow prints the key on stderr and then the session's transcript as it grows, until the run ends (exit status as `follow --until-done`; on a terminal the reply streams as it is written).\n\nPrints the session key alone on a line, so `key=$(openclaw sessions spawn --task ...)` works; with --json, the whole result (sessionKey, sessionId, runId, ignoredFields). --quiet prints the key and nothing else (with --wait it still waits, and exits with the run's status).\n\nCtrl-C during --wait or --follow stops waiting, not the run: it says the run's id on stderr and exits 130."
    )]
    // Boxed: its many flags would make every command value as large as a spawn.
    Spawn(Box<SpawnArgs>),
    /// Send a message to a session, wait for the reply and print it
    #[command(
        long_about = "Send a message to a session, wait for the reply and print it.\n\nWaits up to --timeout seconds (default 30). When the wait ends first the run goes on: the exit status is 124 and `openclaw sessions wait RUN_ID` waits again; Ctrl-C does the same with exit 130. --no-wait prints the run id at once instead; --quiet prints only the run id (after waiting, unless --no-wait); --stream prints the run's progress while waiting: the assistant's text as it is written, and a line per tool call on stderr (with --json, one JSON line per event, then the result). An empty message is refused (exit 2). Sending to `main` (or agent:ID:main) creates that session on first use."
    )]
    Send(SendArgs),
    /// Wait for a run to end and print its reply
    #[command(
        long_about = "Wait for a run to end and print its reply (exit 0), or its error on stderr (exit 1). When the wait ends first the run goes on and the exit status is 124; Ctrl-C stops waiting (exit 130) and the run goes on too.\n\nWith --session KEY instead of RUN_ID: wait for the session's active run, or report its last run if none is active (exit 4 if the session never ran)."
    )]
    Wait(WaitArgs),
    /// Print a session's messages as they land, like `tail -f`
    #[command(
        long_about = "Print a session's messages as they land, like `tail -f`, until Ctrl-C (exit 130).\n\nBy default only new messages; --from-start prints the whole transcript first and --since SEQ everything after message SEQ, then the live ones: each message exactly once, in order, with no gap. Lines look like those of `openclaw sessions history`. --events adds live run events: the assistant's text as it streams (printed inline, standing for the reply it becomes), tool calls, usage and lifecycle lines. With --json: one JSON object per line (NDJSON), each the daemon's notification with an \"event\" field naming it (session.message, run.event, sessions.changed, subscription.lagged, subscription.ended).\n\n--until-done exits when the session's active run ends: 0 if it ended ok, 1 if it failed, timed out, was aborted or interrupted (the error on stderr). With no active run it exits once the transcript is printed, with the last run's outcome. On a terminal it shows the assistant's text as it streams, and a spinner while nothing does.\n\nIf the daemon stops or restarts, follow says so on stderr and exits 3; with --retry it reconnects (starting the daemon if needed) and resumes after the last message it printed. A deleted session ends it with exit 4. When the reader of stdout goes away (`| head`), it exits 0 at once."
    )]
    Follow(FollowArgs),
    /// Print live events of every session (or one) as they happen
    #[command(
        long_about = "Print live events of every session, or of one with --session, or of one run with --run, as they happen, until Ctrl-C (exit 130): sessions created, started, ended, patched and deleted; runs queued, started and ended; transcript messages; the assistant's text as it streams; tool calls; usage. --events picks the kinds. One compact line per event, starting with the session key; with --json, one JSON object per line (NDJSON), each the daemon's notification with an \"event\" field naming it. Nothing is replayed: only what happens from now on. With --run it exits when that run ends. If the daemon stops, it exits 3."
    )]
    Subscribe(SubscribeArgs),
    /// Print a session's transcript, oldest message first
    #[command(
        long_about = "Print a session's transcript, oldest message first: the newest --limit messages, one group of lines per message (`#SEQ ROLE  CONTENT`). Older messages are reached with --cursor, using the nextCursor of the previous page (shown with --json, and on stderr on a terminal). A message too large for a page is shown cut, with a note; `--seq N --full` prints message N whole (read in chunks), its content alone, with nothing added."
    )]
    History(HistoryArgs),
    /// List sessions, most recently updated first
    #[command(
        long_about = "List sessions, most recently updated first: the newest 50 unless --limit or --all says otherwise; when there are more, a note on stderr says how many. On a terminal: a table that fits its width, with short ids (a unique prefix names a session anywhere), relative times and each session's parent; --wide shows full keys, times and every column. Otherwise the same columns as --wide, tab-separated, header line first, for scripts; --json gives the whole result, with every field of every session."
    )]
    List(ListArgs),
    /// Show one session: its key, agent, status, parent, children, run, times, last message
    #[command(
        long_about = "Show one session: its key and id, agent, kind, status, label, parent, children, active run, model, message count, times (as `3m ago`, exact with --json) and its last message. With --json: the session's row as the daemon sent it."
    )]
    Show(ShowArgs),
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

pub fn run(ctx: &Context, command: SessionsCommand) -> Result<(), Failure> {
    match command {
        SessionsCommand::Spawn(args) => spawn::spawn(ctx, *args),
        SessionsCommand::Send(args) => send::send(ctx, args),
        SessionsCommand::Wait(args) => wait::wait(ctx, args),
        SessionsCommand::Follow(args) => follow::follow(ctx, args),
        SessionsCommand::Subscribe(args) => subscribe::subscribe(ctx, args),
        SessionsCommand::History(args) => history::history(ctx, args),
        SessionsCommand::List(args) => list::list(ctx, args),
        SessionsCommand::Show(args) => show::show(ctx, args),
        SessionsCommand::Kill(args) => manage::kill(ctx, args),
        SessionsCommand::Patch(args) => manage::patch(ctx, args),
        SessionsCommand::Delete(args) => manage::delete(ctx, args),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::SessionsCommand;
    use clap::Parser;

    /// Parses `openclaw sessions ARGS...` with the real clap tree.
    pub fn parse(args: &[&str]) -> SessionsCommand {
        let argv = ["openclaw", "sessions"].iter().chain(args);
        match crate::Cli::try_parse_from(argv).unwrap().command {
            crate::Command::Sessions(cmd) => cmd,
            other => panic!("not a sessions command: {other:?}"),
        }
    }

    /// The exit status of a command line clap refuses.
    pub fn refused(args: &[&str]) -> i32 {
        let argv = ["openclaw", "sessions"].iter().chain(args);
        crate::Cli::try_parse_from(argv).unwrap_err().exit_code()
    }
}
