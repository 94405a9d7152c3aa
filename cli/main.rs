//! `openclaw`: the command line of the openclaw daemon (SPEC §9). Runs agent sessions from
//! shells, scripts and cron: every command is one call on the daemon's socket, data on
//! stdout, diagnostics on stderr, and an exit status a script can branch on.

#![cfg_attr(not(test), no_main)]

mod autostart;
mod commands;
mod completions;
mod connection;
mod failure;
mod manpage;
mod output;
mod parse;
mod start;
mod stream;
mod watch;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};

use crate::commands::Context;
use crate::commands::agents::AgentsCommand;
use crate::commands::daemon::DaemonCommand;
use crate::commands::http::HttpCommand;
use crate::commands::pairing::PairingCommand;
use crate::commands::sessions::SessionsCommand;
use crate::failure::{Exit, Failure};
use crate::output::{Terminal, diagnostic, write_stderr, write_stdout};

const ABOUT: &str =
    "Run AI agent sessions on this host and drive them from scripts, cron and agents";

const LONG_ABOUT: &str = "\
Run AI agent sessions on this host and drive them from scripts, cron and agents.

A small daemon, openclawd, owns every session, its transcript and its runs; this command talks to it over a Unix socket and starts it on demand. `openclaw sessions spawn --task TEXT` returns the new session's key at once, so a cron job never waits for an agent; `openclaw sessions send KEY MESSAGE` waits for the reply.

Output: data on stdout (one JSON object per command with --json, one per line for the commands that stream), diagnostics on stderr as `error: ...` (with --json, as one JSON line: {\"error\": {\"kind\", \"message\", \"exitCode\"}}). Tables, colour and spinners only on a terminal, never colour with NO_COLOR.

A session is named by its key, its id, a unique prefix of either (6 characters or more), or its label.";

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
    #[command(flatten)]
    pub globals: Globals,

    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Globals {
    /// Print the result as JSON: one object on one line, exactly as the daemon sent it; errors as one JSON line on stderr
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// Log what openclaw does on stderr: connecting, starting the daemon, each call and its time (-v); with the calls' params and results (-vv); everything (-vvv)
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,
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
    /// The daemon's HTTP surface: its bearer token
    #[command(subcommand)]
    Http(HttpCommand),
    /// Serve the session tools to an MCP client on stdin/stdout
    Mcp(commands::mcp::McpArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        long_about = "Print a shell completion script on stdout. Besides commands and flags, bash, zsh and fish complete session keys and agent ids by asking the running daemon (never starting one).\n\nbash: `openclaw completions bash > ~/.local/share/bash-completion/completions/openclaw`\nzsh: `openclaw completions zsh > ~/.zfunc/_openclaw` (with `fpath+=~/.zfunc` before `compinit` in ~/.zshrc)\nfish: `openclaw completions fish > ~/.config/fish/completions/openclaw.fish`"
    )]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Commands that are not part of the tree users see (nor of the completions): handled
/// before parsing.
enum Internal {
    /// `openclaw __man`: the openclaw(1) page (roff), generated from the command tree.
    Man,
    /// `openclaw __complete sessions|agents`: words for dynamic completion.
    Complete(String),
    /// `openclaw --version` alone: answered without building the command tree.
    Version,
}

fn internal(args: &[std::ffi::OsString]) -> Option<Internal> {
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str())
        .collect::<Option<_>>()?;
    match words.as_slice() {
        ["__man"] => Some(Internal::Man),
        ["__complete", what] => Some(Internal::Complete((*what).to_string())),
        ["--version" | "-V"] => Some(Internal::Version),
        _ => None,
    }
}

/// Whether `--json` is on the command line (before a `--`), for errors found before it is
/// parsed.
fn wants_json(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

// No `fn main`: std's start-up (which reads /proc/self/maps to place a stack guard, a tenth of
// a short command's instructions) is skipped, and the two things it does that this program
// relies on are done here: stdio descriptors that are open, and SIGPIPE ignored so that a
// closed stdout is an error to handle (`| head`), not death (issue 16).
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    start::prepare();
    let code = openclaw_main();
    start::finish();
    std::ffi::c_int::from(code)
}

// Reached from the C `main`, which a test build replaces with the test harness.
#[cfg_attr(test, allow(dead_code))]
fn openclaw_main() -> u8 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = wants_json(&args);
    let result = match internal(&args) {
        Some(Internal::Version) => write_stdout(&format!("openclaw {}\n", openclaw::VERSION)),
        Some(Internal::Man) => write_stdout(&manpage::render(Cli::command())),
        Some(Internal::Complete(what)) => commands::complete::complete(&context(false, 0), &what),
        None => match parse::parse(&args) {
            Ok(cli) => {
                if cli.globals.verbose > 0 {
                    init_logging(cli.globals.verbose);
                }
                run(cli)
            }
            Err(err) => return usage_error(&err, json),
        },
    };
    match result {
        Ok(()) => Exit::Ok.code(),
        Err(failure) => {
            report(&failure, json);
            failure.exit.code()
        }
    }
}

/// The one diagnostic of a failed command: `error: ...` (or `interrupted: ...`), or with
/// --json one JSON line.
// Reached from the C `main`, which a test build replaces with the test harness.
#[cfg_attr(test, allow(dead_code))]
fn report(failure: &Failure, json: bool) {
    let Some(message) = &failure.message else {
        return;
    };
    if json {
        write_stderr(&failure.json_line());
    } else if failure.exit == Exit::Interrupted {
        diagnostic("interrupted", message);
    } else {
        diagnostic("error", message);
    }
}

/// clap's verdict on the command line. --help and --version end here too (exit 0, on
/// stdout; a closed pipe is fine).
// Reached from the C `main`, which a test build replaces with the test harness.
#[cfg_attr(test, allow(dead_code))]
fn usage_error(err: &clap::Error, json: bool) -> u8 {
    let code = u8::try_from(err.exit_code()).unwrap_or(Exit::Usage.code());
    if json && err.use_stderr() {
        let text = err.to_string();
        let message = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        let failure = Failure::new(Exit::Usage, message).with_kind("usage");
        write_stderr(&failure.json_line());
    } else {
        let _ = err.print();
    }
    code
}

fn context(json: bool, verbose: u8) -> Context {
    Context {
        json,
        verbose,
        terminal: Terminal::detect(),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let ctx = context(cli.globals.json, cli.globals.verbose);
    match cli.command {
        Command::Completions { shell } => write_stdout(&completions::script(shell, Cli::command())),
        Command::Sessions(command) => commands::sessions::run(&ctx, command),
        Command::Daemon(command) => commands::daemon::run(&ctx, command),
        Command::Agents(command) => commands::agents::run(&ctx, command),
        Command::Pairing(command) => commands::pairing::run(&ctx, command),
        Command::Http(command) => commands::http::run(&ctx, command),
        Command::Mcp(args) => commands::mcp::run(&ctx, args),
    }
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
        assert!(cli.globals.json);
        assert_eq!(cli.globals.verbose, 2);
        let cli = Cli::try_parse_from(["openclaw", "--json", "daemon", "status"]).unwrap();
        assert!(cli.globals.json);
    }

    #[test]
    fn internal_commands_are_not_in_the_tree() {
        let os = |words: &[&str]| -> Vec<std::ffi::OsString> {
            std::iter::once("openclaw")
                .chain(words.iter().copied())
                .map(Into::into)
                .collect()
        };
        assert!(matches!(internal(&os(&["__man"])), Some(Internal::Man)));
        assert!(
            matches!(internal(&os(&["__complete", "agents"])), Some(Internal::Complete(w)) if w == "agents")
        );
        assert!(matches!(
            internal(&os(&["--version"])),
            Some(Internal::Version)
        ));
        assert!(internal(&os(&["sessions", "list"])).is_none());
        assert!(Cli::try_parse_from(["openclaw", "__man"]).is_err());
        assert!(wants_json(&os(&["sessions", "list", "--json"])));
        assert!(!wants_json(&os(&["daemon", "run", "--", "--json"])));
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
