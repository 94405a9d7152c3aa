//! `openclawd`: the daemon that owns every session, transcript and run, and serves the
//! `openclaw` CLI (and any other client) over a Unix socket.

use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgAction, CommandFactory, Parser};
use openclaw::config::Config;
use openclaw::daemon::launch::{Launch, StartedBy};
use openclaw::paths::Paths;

// The daemon allocates on tokio's threads and frees on the store's writer thread (and the
// reverse) for every request; glibc's malloc serialises those cross-thread frees on its arena
// locks, a fifth of the daemon's CPU at 15,000 spawns/s (issue 16). mimalloc frees to the
// owning thread's heap without a shared lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The openclaw daemon: owns sessions, transcripts and runs
///
/// Serves the openclaw CLI (and any JSON-RPC client) over a Unix socket. The CLI starts it on
/// demand; run it yourself (`openclaw daemon run`) to watch its log.
#[derive(Parser, Debug)]
#[command(name = "openclawd", version)]
#[command(
    after_help = "ENVIRONMENT:\n  OPENCLAW_HOME    put config.toml, data/ and openclaw.sock under one directory\n  OPENCLAW_SOCKET  socket path (overrides the default)\n  RUST_LOG         log filter (overrides -v)"
)]
struct Args {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// Write "ready" to this file descriptor once listening, then close it.
    #[arg(long, value_name = "FD")]
    ready_fd: Option<i32>,
    /// Who started the daemon, as `openclaw daemon status` shows it (default: systemd when it
    /// passed a socket or a NOTIFY_SOCKET, else foreground)
    #[arg(long, value_name = "WHO", value_parser = ["autostart", "foreground", "systemd"])]
    started_by: Option<String>,
    /// Check the whole store (SQLite integrity_check) and exit: 0 when it is sound, 1 when not
    #[arg(long)]
    check: bool,
    /// Print the man page (roff) and exit.
    #[arg(long, hide = true)]
    print_man: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_man {
        use std::io::Write;
        return match man_page() {
            Some(page) => {
                let _ = std::io::stdout().write_all(page.as_bytes());
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        };
    }
    // Held to the end: queued log lines get a moment to be written.
    let _log = init_logging(args.verbose);
    if args.check {
        return check_store();
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("openclawd: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// A line on stderr that is lost, not fatal, when stderr cannot be written (a full disk).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A line of `--check`'s report on stdout (lost, not fatal, when stdout is gone).
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// The roff page, from the clap definition. The `.TH` line is written here: clap_mangen
/// leaves the date empty, which shifts the source into the date's place.
fn man_page() -> Option<String> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Args::command())
        .section("8")
        .render(&mut out)
        .ok()?;
    let page = String::from_utf8(out).ok()?;
    let th = format!(
        ".TH OPENCLAWD 8 \"\" \"openclawd {}\" \"System Manager's Manual\"",
        env!("CARGO_PKG_VERSION")
    );
    let mut lines: Vec<String> = page.lines().map(str::to_string).collect();
    if let Some(line) = lines.iter_mut().find(|l| l.starts_with(".TH ")) {
        *line = th;
    }
    lines.push(".SH EXIT STATUS".into());
    lines.push("0 after a clean stop (SIGTERM, SIGINT or daemon.shutdown); 1 when it cannot start (another daemon holds the socket or data directory, an unsafe socket directory, a bad config.toml), with one line on stderr saying why.".into());
    lines.push(".SH FILES".into());
    lines.push("config.toml, data/openclaw.db (the SQLite store), data/workspaces/ and openclaw.sock, under OPENCLAW_HOME or the XDG directories; see openclaw(1).".into());
    Some(lines.join("\n") + "\n")
}

/// `--check`: the whole store checked, its report on stdout.
fn check_store() -> ExitCode {
    let paths = match Paths::from_env() {
        Ok(p) => p,
        Err(e) => {
            say(&format!("openclawd: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match openclaw::daemon::store::integrity_check(&paths.data_dir) {
        Ok(lines) if lines == ["ok"] => {
            report(&format!(
                "ok: {} is sound",
                paths
                    .data_dir
                    .join(openclaw::daemon::store::DB_FILE)
                    .display()
            ));
            ExitCode::SUCCESS
        }
        Ok(lines) => {
            for l in lines {
                report(&l);
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            say(&format!("openclawd: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Lets the daemon hold as many connections as the system allows this user: the soft limit
/// on open files (often 1024) is raised to the hard one.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct for this process.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    raise_open_files_limit();
    // First, while this is the only thread: it takes what systemd passed out of the
    // environment.
    let launch = Launch::from_process(
        args.ready_fd,
        args.started_by.as_deref().and_then(StartedBy::parse),
    )?;
    let paths = Paths::from_env()?;
    let mut config = Config::load(&paths.config_file)?;
    let default_source = config.apply_default_agent(&config.openai_env());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(openclaw::daemon::server::run(
        paths,
        config,
        default_source,
        launch,
    ))?;
    // Don't wait for idle blocking threads: everything that matters has been stored.
    runtime.shutdown_background();
    Ok(())
}

/// Logs to stderr through a writer that never blocks the daemon or fails it (see
/// `openclaw::daemon::log_writer`).
fn init_logging(verbose: u8) -> openclaw::daemon::log_writer::FlushOnDrop {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let (writer, flush) = openclaw::daemon::log_writer::LogWriter::start(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    flush
}
