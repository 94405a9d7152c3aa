//! `openclaw daemon ...`: start, stop (now or draining), restart, reload, status, logs, run in
//! the foreground, and install systemd user units.

mod logs;
mod service;
mod status;

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use openclaw::ClientError;
use openclaw::client::blocking::Wait;
use openclaw::protocol::{
    DaemonStatus, ErrorKind, NoParams, ReloadResult, ShutdownParams, ShutdownResult, methods,
};
use serde_json::json;

use super::{Context, call_raw, parse_seconds, typed};
use crate::autostart::{self, Autostart, process_exit_within};
use crate::connection::{CallError, Connection};
use crate::failure::{Exit, Failure};
use crate::output::{diagnostic, print_json, write_stdout};
use crate::watch::Watch;

pub use logs::LogsArgs;
pub use service::ServiceArgs;

/// How long `daemon stop` waits for the daemon to finish its runs' shutdown and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start the daemon in the background, unless it is running already
    #[command(
        long_about = "Start the daemon in the background, unless it is running already. Prints nothing on success (with --json: the daemon's status); on a terminal, a note on stderr says where the daemon runs and where it logs. Works even with OPENCLAW_NO_AUTOSTART set, which only stops other commands from starting it. The daemon's output goes to openclawd.log in the data directory (`openclaw daemon logs`)."
    )]
    Start,
    /// Stop the daemon and wait until it has exited (nothing to do if it is not running)
    #[command(
        long_about = "Stop the daemon and wait until it has exited; nothing to do if it is not running. Runs still going are interrupted (their sessions say so, and `daemon stop` says how many); queued runs stay queued for the next start. With --drain the daemon first stops taking work and lets the running runs finish, up to --timeout seconds if given, then stops."
    )]
    Stop(StopArgs),
    /// Stop the daemon (if it runs) and start it again
    #[command(
        long_about = "Stop the daemon (as `daemon stop`, with the same --drain and --timeout) and start it again, with the config file as it is now. Use `daemon reload` to apply a changed config.toml without stopping anything."
    )]
    Restart(StopArgs),
    /// Read config.toml again: new runs use it, running ones keep theirs
    #[command(
        long_about = "Make the running daemon read config.toml again (as SIGHUP does): agents, lanes, policies and limits apply to new runs, running runs keep what they started with. Prints what changed, one line per change. A config file with an error is refused with the error (file, line, key), and the config in force stays as it was (exit 1)."
    )]
    Reload,
    /// Show the daemon's pid, version, uptime, paths and lanes; exit 3 if it is not running
    Status,
    /// Print the daemon's log; -f follows it as it grows
    Logs(LogsArgs),
    /// Run the daemon in the foreground (execs openclawd), e.g. under a service manager
    Run(RunArgs),
    /// Write systemd user units (openclawd.service, openclawd.socket) for this user
    #[command(
        name = "install-service",
        long_about = "Write systemd user units for this user's daemon into $XDG_CONFIG_HOME/systemd/user/ (~/.config/systemd/user/): openclawd.socket, listening on the socket this openclaw uses, and openclawd.service, which runs the installed openclawd with the socket handed over by systemd (Type=notify; `systemctl --user reload openclawd` runs `openclaw daemon reload`). Then prints the command that enables them. Existing units with other contents are left alone unless --force."
    )]
    InstallService(ServiceArgs),
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Stop taking work and let running runs finish before stopping
    #[arg(long)]
    pub drain: bool,
    /// With --drain: stop after this many seconds even if runs are still going (they are then interrupted)
    #[arg(long, value_name = "SECS", requires = "drain", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Further arguments for openclawd, after `--`
    #[arg(last = true, value_name = "ARGS")]
    pub daemon_args: Vec<OsString>,
}

pub fn run(ctx: &Context, command: DaemonCommand) -> Result<(), Failure> {
    match command {
        DaemonCommand::Start => start(ctx),
        DaemonCommand::Stop(args) => stop(ctx, &args).map(|_| ()),
        DaemonCommand::Restart(args) => restart(ctx, &args),
        DaemonCommand::Reload => reload(ctx),
        DaemonCommand::Status => status::status(ctx),
        DaemonCommand::Logs(args) => logs::logs(ctx, args),
        DaemonCommand::Run(args) => run_foreground(ctx, args),
        DaemonCommand::InstallService(args) => service::install(ctx, args),
    }
}

fn start(ctx: &Context) -> Result<(), Failure> {
    // Asking for it explicitly overrides OPENCLAW_NO_AUTOSTART.
    let mut client = ctx.client_with(Autostart::Allowed)?;
    if ctx.json {
        let raw = call_raw(&mut client, methods::DAEMON_STATUS, &NoParams {})?;
        print_json(&raw)?;
    }
    Ok(())
}

fn restart(ctx: &Context, args: &StopArgs) -> Result<(), Failure> {
    let was_running = stop(ctx, args)?;
    if !was_running && !ctx.json {
        diagnostic("note", "the daemon was not running; starting it");
    }
    start(ctx)
}

fn reload(ctx: &Context) -> Result<(), Failure> {
    let mut client = ctx.client_with(Autostart::Never)?;
    let raw = call_raw(&mut client, methods::DAEMON_RELOAD, &NoParams {})?;
    if ctx.json {
        return print_json(&raw);
    }
    let reloaded: ReloadResult = typed(methods::DAEMON_RELOAD, raw)?;
    write_stdout(&reload_text(&reloaded))
}

fn reload_text(reloaded: &ReloadResult) -> String {
    if reloaded.changed.is_empty() {
        return format!("reloaded {}: nothing changed\n", reloaded.config_file);
    }
    let mut out = format!("reloaded {}:\n", reloaded.config_file);
    for change in &reloaded.changed {
        out.push_str("  ");
        out.push_str(change);
        out.push('\n');
    }
    out
}

/// Stops the daemon if it runs; whether it was running.
fn stop(ctx: &Context, args: &StopArgs) -> Result<bool, Failure> {
    let mut client = match ctx.client_with(Autostart::Never) {
        Ok(client) => client,
        Err(failure) if failure.exit == Exit::Unreachable => {
            // Not running is what the caller wants: nothing to do.
            if ctx.json {
                print_json(&json!({ "stopping": false }))?;
            }
            return Ok(false);
        }
        Err(failure) => return Err(failure),
    };
    // Knowing the pid lets us wait for the process itself to be gone (socket file removed),
    // not just for the connection to close, so `daemon stop && daemon start` is safe.
    let status = client
        .call::<_, DaemonStatus>(methods::DAEMON_STATUS, &NoParams {})
        .ok();
    let pid = status.as_ref().map(|s| s.pid);
    let running_before: u32 = status
        .as_ref()
        .map_or(0, |s| s.lanes.iter().map(|l| l.active).sum());
    let params = ShutdownParams {
        drain: args.drain.then_some(true),
        timeout_seconds: args.timeout,
    };
    let raw = match client.call_value(methods::DAEMON_SHUTDOWN, &params) {
        Ok(raw) => raw,
        // Already on its way out: the same outcome as asking.
        Err(CallError::Client(ClientError::Disconnected)) => json!({ "stopping": true }),
        Err(err) if err.rpc().and_then(|e| e.kind()) == Some(ErrorKind::ShuttingDown) => {
            json!({ "stopping": true })
        }
        Err(err) => return Err(err.into()),
    };
    let result: ShutdownResult = typed(methods::DAEMON_SHUTDOWN, raw.clone())?;
    if !ctx.json
        && let Some(note) = stop_note(&result, running_before, args)
    {
        diagnostic("note", &note);
    }
    // A drain lasts as long as the runs do; Ctrl-C stops waiting, not the drain.
    let patience = match (args.drain, args.timeout) {
        (false, _) => Some(STOP_TIMEOUT),
        (true, Some(secs)) => {
            Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX) + STOP_TIMEOUT)
        }
        (true, None) => None,
    };
    wait_gone(&mut client, pid, patience)?;
    if ctx.json {
        print_json(&raw)?;
    }
    Ok(true)
}

/// What a stop does to the runs, when it does anything to them.
/// `running_before`: what the lanes said just before the stop, for a daemon that does not
/// count them in its answer.
fn stop_note(result: &ShutdownResult, running_before: u32, args: &StopArgs) -> Option<String> {
    let active = result.active_runs.max(running_before);
    let runs = |n: u32| {
        if n == 1 {
            "1 run".to_string()
        } else {
            format!("{n} runs")
        }
    };
    let queued = match result.queued_runs {
        0 => String::new(),
        n => format!("; {} queued stay queued for the next start", runs(n)),
    };
    match (active, args.drain) {
        (0, _) if queued.is_empty() => None,
        (0, _) => Some(format!("stopping the daemon{queued}")),
        (n, false) => Some(format!(
            "stopping the daemon interrupts {} still going{queued} (`daemon stop --drain` lets them finish)",
            runs(n)
        )),
        (n, true) => Some(format!(
            "the daemon takes no new work and stops once {} finished{queued}",
            if n == 1 {
                "the running run has".to_string()
            } else {
                format!("the {n} running runs have")
            }
        )),
    }
}

/// Waits until the daemon has closed the connection and its process is gone.
fn wait_gone(
    client: &mut Connection,
    pid: Option<u32>,
    patience: Option<Duration>,
) -> Result<(), Failure> {
    let watch = Watch::ctrl_c();
    let wakes = watch.wakes();
    let deadline = patience.and_then(|p| Instant::now().checked_add(p));
    let wait = Wait {
        deadline,
        wake: &wakes,
    };
    let who = pid.map_or("the daemon".to_string(), |pid| {
        format!("the daemon (pid {pid})")
    });
    // The daemon closes every connection as it stops: end of file wakes us.
    loop {
        match client.next_notification(&wait) {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(CallError::Client(ClientError::TimedOut)) => {
                return Err(not_gone(&who, patience));
            }
            Err(err) if err.woken().is_some() => {
                return Err(Failure::new(
                    Exit::Interrupted,
                    format!(
                        "stopped waiting; {who} goes on stopping (`openclaw daemon status` shows whether it is still there)"
                    ),
                ));
            }
            // A reset connection is a closed one.
            Err(_) => break,
        }
    }
    if let Some(pid) = pid {
        let left = deadline.map_or(STOP_TIMEOUT, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if !process_exit_within(pid, left) {
            return Err(not_gone(&who, patience));
        }
    }
    Ok(())
}

fn not_gone(who: &str, patience: Option<Duration>) -> Failure {
    Failure::failed(format!(
        "{who} was asked to stop but has not exited after {} s; it may be waiting for runs to end. `openclaw daemon status` shows whether it is still there",
        patience.unwrap_or(STOP_TIMEOUT).as_secs()
    ))
}

/// Replaces this process with `openclawd` in the foreground.
fn run_foreground(ctx: &Context, args: RunArgs) -> Result<(), Failure> {
    let binary = autostart::daemon_binary();
    let mut command = std::process::Command::new(&binary);
    if ctx.verbose > 0 {
        command.arg(format!("-{}", "v".repeat(usize::from(ctx.verbose))));
    }
    command.args(&args.daemon_args);
    // exec only returns on failure.
    let err = command.exec();
    let hint = if err.kind() == io::ErrorKind::NotFound {
        "; install openclawd beside openclaw or set OPENCLAWD to its path"
    } else {
        ""
    };
    Err(Failure::failed(format!(
        "cannot run the daemon {}: {err}{hint}",
        binary.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shutdown(active: u32, queued: u32) -> ShutdownResult {
        ShutdownResult {
            stopping: true,
            active_runs: active,
            queued_runs: queued,
        }
    }

    const NOW: StopArgs = StopArgs {
        drain: false,
        timeout: None,
    };

    #[test]
    fn a_stop_says_how_many_runs_it_interrupts() {
        assert_eq!(stop_note(&shutdown(0, 0), 0, &NOW), None);
        let note = stop_note(&shutdown(2, 0), 0, &NOW).unwrap();
        assert!(note.contains("interrupts 2 runs still going"), "{note}");
        assert!(note.contains("--drain"), "{note}");
        let note = stop_note(&shutdown(1, 3), 0, &NOW).unwrap();
        assert!(
            note.contains("1 run still going; 3 runs queued stay queued"),
            "{note}"
        );
        // An older daemon does not count: the lanes' counts from its status stand in.
        let note = stop_note(&shutdown(0, 0), 4, &NOW).unwrap();
        assert!(note.contains("4 runs"), "{note}");
        let drain = StopArgs {
            drain: true,
            timeout: Some(60.0),
        };
        let note = stop_note(&shutdown(1, 0), 0, &drain).unwrap();
        assert!(note.contains("once the running run has finished"), "{note}");
    }

    #[test]
    fn a_reload_lists_what_changed() {
        let r = ReloadResult {
            config_file: "/h/config.toml".into(),
            changed: vec!["agents.worker: added".into(), "lanes.main: 8 -> 4".into()],
        };
        assert_eq!(
            reload_text(&r),
            "reloaded /h/config.toml:\n  agents.worker: added\n  lanes.main: 8 -> 4\n"
        );
        let none = ReloadResult {
            changed: vec![],
            ..r
        };
        assert_eq!(
            reload_text(&none),
            "reloaded /h/config.toml: nothing changed\n"
        );
    }

    #[test]
    fn drain_timeout_needs_drain() {
        use clap::Parser;
        let err = crate::Cli::try_parse_from(["openclaw", "daemon", "stop", "--timeout", "5"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            crate::Cli::try_parse_from(["openclaw", "daemon", "stop", "--drain", "--timeout", "5"])
                .is_ok()
        );
    }
}
