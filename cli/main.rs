//! `openclaw`: the command line of the openclaw daemon (SPEC §9). Runs agent sessions from
//! shells, scripts and cron: every command is one call on the daemon's socket, data on
//! stdout, diagnostics on stderr, and an exit status a script can branch on.

mod autostart;
mod base64;
mod commands;
mod connection;
mod failure;
mod manpage;
mod output;
mod stream;

use std::process::ExitCode;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};

use crate::commands::Context;
use crate::commands::agents::AgentsCommand;
use crate::commands::daemon::DaemonCommand;
use crate::commands::pairing::PairingCommand;
use crate::commands::sessions::SessionsCommand;
use crate::failure::{Exit, Failure};
use crate::output::{Terminal, diagnostic, write_stdout};

const ABOUT: &str =
    "Run AI agent sessions on this host and drive them from scripts, cron and agents";

const LONG_ABOUT: &str = "\
Run AI agent sessions on this host and drive them from scripts, cron and agents.

A small daemon, openclawd, owns every session, its transcript and its runs; this command talks to it over a Unix socket and starts it on demand. `openclaw sessions spawn --task TEXT` returns the new session's key at once, so a cron job never waits for an agent; `openclaw sessions send KEY MESSAGE` waits for the reply.

Output: data on stdout (one JSON object per command with --json), diagnostics on stderr as `error: ...`. Tables and colour only on a terminal, never with NO_COLOR.";

const AFTER_LONG_HELP: &str = "\
Exit status: 0 ok, 1 run failed or other error, 2 usage, 3 daemon unreachable, 4 not found, 5 not permitted or pairing required, 124 the wait timed out (the run goes on), 130 interrupted by Ctrl-C.

Environment: OPENCLAW_HOME puts config, data and socket under one directory; OPENCLAW_SOCKET overrides the socket path; OPENCLAW_NO_AUTOSTART=1 stops commands from starting the daemon; OPENCLAWD names the daemon binary; NO_COLOR turns colour off.

See `man openclaw` for the whole reference.";

#[derive(Debug, Parser)]
#[command(
    name = "openclaw",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print the result as JSON: one object on one line, exactly as the daemon sent it
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// Log what openclaw does on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Spawn sessions, send them messages, read and manage them
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Start, stop, inspect or run the daemon
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Show the agents the daemon knows
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Admit other local users' devices: list, approve, reject or revoke them
    #[command(
        subcommand,
        long_about = "Admit other local users' devices. When the daemon's owner opens its socket to others ([socket] mode and group in config.toml), another user's openclaw proves a device key (kept 0600 in that user's config directory) by itself; an unknown device gets a pending request, which the owner approves with scopes, or rejects. A paired device can be revoked at any time. These commands need the admin scope, which the owner has."
    )]
    Pairing(PairingCommand),
    Mcp(commands::mcp::McpArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        long_about = "Print a shell completion script on stdout. For bash: `openclaw completions bash > ~/.local/share/bash-completion/completions/openclaw`."
    )]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the openclaw(1) man page (roff), generated from this command tree
    #[command(name = "__man", hide = true)]
    Man,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version end here too (exit 0, on stdout); a closed pipe is fine.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(Exit::Usage.code()));
        }
    };
    if cli.verbose > 0 {
        init_logging(cli.verbose);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = &failure.message {
                diagnostic("error", message);
            }
            ExitCode::from(failure.exit.code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let ctx = Context {
        json: cli.json,
        verbose: cli.verbose,
        terminal: Terminal::detect(),
    };
    match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "openclaw", &mut script);
            write_stdout(&String::from_utf8_lossy(&script))
        }
        Command::Man => write_stdout(&manpage::render(Cli::command())),
        Command::Sessions(command) => block_on(commands::sessions::run(&ctx, command)),
        Command::Daemon(command) => block_on(commands::daemon::run(&ctx, command)),
        Command::Agents(command) => block_on(commands::agents::run(&ctx, command)),
        Command::Pairing(command) => block_on(commands::pairing::run(&ctx, command)),
        Command::Mcp(args) => block_on(commands::mcp::run(&ctx, args)),
    }
}

/// One command is one short conversation with the daemon: a single-threaded runtime starts
/// in microseconds, where a thread pool would cost more than the call itself.
fn block_on<F: Future<Output = Result<(), Failure>>>(command: F) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(command)
}

fn init_logging(verbosity: u8) {
    use std::io::IsTerminal;
    let color = output::color_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    );
    let level = match verbosity {
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(color)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_and_verbose_are_accepted_after_any_command() {
        let cli = Cli::try_parse_from(["openclaw", "agents", "list", "--json", "-vv"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.verbose, 2);
        let cli = Cli::try_parse_from(["openclaw", "--json", "daemon", "status"]).unwrap();
        assert!(cli.json);
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        let err = Cli::try_parse_from(["openclaw", "sessions", "spawn"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["openclaw", "sessions", "frobnicate"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["openclaw", "--help"]).unwrap_err();
        assert_eq!(err.exit_code(), 0);
    }
}
