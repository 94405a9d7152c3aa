//! `openclaw daemon start|stop|status|run`.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use clap::{Args, Subcommand};
use openclaw::protocol::{DaemonStatus, ErrorKind, NoParams, methods};
use openclaw::{Client, ClientError};
use serde_json::json;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{Context, call_raw, typed};
use crate::autostart::{self, Autostart};
use crate::connection::{CallError, Connection};
use crate::failure::Failure;
use crate::output::{print_json, write_stdout};

/// How long `daemon stop` waits for the daemon to finish its runs' shutdown and exit.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start the daemon in the background, unless it is running already
    #[command(
        long_about = "Start the daemon in the background, unless it is running already. Prints nothing on success (with --json: the daemon's status). Works even with OPENCLAW_NO_AUTOSTART set, which only stops other commands from starting it. The daemon's output goes to openclawd.log in the data directory."
    )]
    Start,
    /// Stop the daemon and wait until it has exited (nothing to do if it is not running)
    Stop,
    /// Show the daemon's pid, version, uptime, paths and lanes; exit 3 if it is not running
    Status,
    /// Run the daemon in the foreground (execs openclawd), e.g. under a service manager
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Further arguments for openclawd, after `--`
    #[arg(last = true, value_name = "ARGS")]
    pub daemon_args: Vec<OsString>,
}

pub async fn run(ctx: &Context, command: DaemonCommand) -> Result<(), Failure> {
    match command {
        DaemonCommand::Start => start(ctx).await,
        DaemonCommand::Stop => stop(ctx).await,
        DaemonCommand::Status => status(ctx).await,
        DaemonCommand::Run(args) => run_foreground(ctx, args),
    }
}

async fn start(ctx: &Context) -> Result<(), Failure> {
    // Asking for it explicitly overrides OPENCLAW_NO_AUTOSTART.
    let client = autostart::connect(&ctx.paths()?, Autostart::Allowed).await?;
    if ctx.json {
        let raw = call_raw(&client, methods::DAEMON_STATUS, &NoParams {}).await?;
        print_json(&raw)?;
    }
    Ok(())
}

async fn status(ctx: &Context) -> Result<(), Failure> {
    let client = autostart::connect(&ctx.paths()?, Autostart::Never).await?;
    let raw = call_raw(&client, methods::DAEMON_STATUS, &NoParams {}).await?;
    if ctx.json {
        return print_json(&raw);
    }
    let status: DaemonStatus = typed(methods::DAEMON_STATUS, raw)?;
    write_stdout(&render_status(&status))
}

fn render_status(status: &DaemonStatus) -> String {
    let mut fields: Vec<(String, String)> = vec![
        ("pid".into(), status.pid.to_string()),
        (
            "version".into(),
            format!("{} (protocol {})", status.version, status.protocol_version),
        ),
        (
            "uptime".into(),
            format!(
                "{} (since {})",
                format_duration_ms(status.uptime_ms),
                status.started_at
            ),
        ),
        ("socket".into(), status.socket.clone()),
        ("data dir".into(), status.data_dir.clone()),
        ("config file".into(), status.config_file.clone()),
        ("connections".into(), status.connections.to_string()),
    ];
    for lane in &status.lanes {
        fields.push((
            format!("lane {}", lane.name),
            format!(
                "{} running of {}, {} queued",
                lane.active, lane.cap, lane.queued
            ),
        ));
    }
    fields.push((
        "store".into(),
        format!(
            "{} commits, {} changes",
            status.store_commits, status.store_changes
        ),
    ));
    fields.push((
        "live".into(),
        format!(
            "{} subscriptions, {} notifications buffered",
            status.subscriptions, status.buffered_notifications
        ),
    ));
    if status.interrupted_at_startup > 0 {
        fields.push((
            "interrupted".into(),
            format!(
                "{} runs were interrupted by the previous daemon's end",
                status.interrupted_at_startup
            ),
        ));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    fields
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}

/// `1h 2m 3s`, `4m 0s`, `12s`: uptime at a glance.
fn format_duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

async fn stop(ctx: &Context) -> Result<(), Failure> {
    let paths = ctx.paths()?;
    let client = match Client::connect(&paths.socket).await {
        Ok(client) => Connection::new(client, &paths),
        Err(err) if err.is_unreachable() => {
            // Not running is what the caller wants: nothing to do.
            if ctx.json {
                print_json(&json!({ "stopping": false }))?;
            }
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    // Knowing the pid lets us wait for the process itself to be gone (socket file removed),
    // not just for the connection to close, so `daemon stop && daemon start` is safe.
    let pid = client
        .call::<_, DaemonStatus>(methods::DAEMON_STATUS, &NoParams {})
        .await
        .ok()
        .map(|s| s.pid);
    let exit_watch = pid.and_then(|pid| ProcessExit::watch(pid).ok());

    let raw = match client
        .call_value(methods::DAEMON_SHUTDOWN, &NoParams {})
        .await
    {
        Ok(raw) => raw,
        // Already on its way out: the same outcome as asking.
        Err(CallError::Client(ClientError::Disconnected)) => json!({ "stopping": true }),
        Err(err) if err.rpc().and_then(|e| e.kind()) == Some(ErrorKind::ShuttingDown) => {
            json!({ "stopping": true })
        }
        Err(err) => return Err(err.into()),
    };
    let gone = async {
        // The daemon closes every connection as it stops: end of file wakes us.
        while client.next_notification().await.is_some() {}
        if let Some(watch) = &exit_watch {
            let _ = watch.exited().await;
        }
    };
    if tokio::time::timeout(STOP_TIMEOUT, gone).await.is_err() {
        let who = pid.map_or("the daemon".to_string(), |pid| {
            format!("the daemon (pid {pid})")
        });
        return Err(Failure::failed(format!(
            "{who} was asked to stop but has not exited after {} s; it may be waiting for runs to end. `openclaw daemon status` shows whether it is still there",
            STOP_TIMEOUT.as_secs()
        )));
    }
    if ctx.json {
        print_json(&raw)?;
    }
    Ok(())
}

/// A process we can wait for without being its parent: a pidfd becomes readable when the
/// process exits (Linux 5.3+), so there is nothing to poll.
pub(crate) struct ProcessExit {
    pidfd: AsyncFd<OwnedFd>,
}

impl ProcessExit {
    pub(crate) fn watch(pid: u32) -> io::Result<ProcessExit> {
        let pidfd = autostart::pidfd_open(pid)?;
        // SAFETY: the AsyncFd takes ownership of the pidfd; nothing else closes or replaces it.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }?;
        Ok(ProcessExit { pidfd })
    }

    pub(crate) async fn exited(&self) -> io::Result<()> {
        self.pidfd.readable().await.map(|_| ())
    }
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
    use openclaw::protocol::LaneStatus;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(format_duration_ms(999), "0s");
        assert_eq!(format_duration_ms(12_000), "12s");
        assert_eq!(format_duration_ms(240_000), "4m 0s");
        assert_eq!(format_duration_ms(3_723_000), "1h 2m 3s");
        assert_eq!(format_duration_ms(2 * 86_400_000 + 3_600_000), "2d 1h 0m");
    }

    #[test]
    fn status_lists_paths_and_lanes() {
        let status = DaemonStatus {
            pid: 42,
            version: "0.1.0".into(),
            protocol_version: 1,
            daemon_id: "d".into(),
            started_at: "2026-11-21T23:00:00Z".into(),
            uptime_ms: 65_000,
            socket: "/h/openclaw.sock".into(),
            data_dir: "/h/data".into(),
            config_file: "/h/config.toml".into(),
            connections: 1,
            lanes: vec![LaneStatus {
                name: "main".into(),
                cap: 8,
                active: 1,
                queued: 0,
            }],
            interrupted_at_startup: 0,
            store_commits: 3,
            store_changes: 7,
            subscriptions: 0,
            buffered_notifications: 0,
            started_by: None,
            log_file: None,
            config_loaded_at: None,
            http_listen: None,
        };
        let expected = "\
pid          42
version      0.1.0 (protocol 1)
uptime       1m 5s (since 2026-11-21T23:00:00Z)
socket       /h/openclaw.sock
data dir     /h/data
config file  /h/config.toml
connections  1
lane main    1 running of 8, 0 queued
store        3 commits, 7 changes
live         0 subscriptions, 0 notifications buffered
";
        assert_eq!(render_status(&status), expected);
    }

    #[tokio::test]
    async fn a_process_exit_is_seen_without_polling() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let watch = ProcessExit::watch(child.id()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), watch.exited())
            .await
            .expect("pidfd never became readable")
            .unwrap();
        child.wait().unwrap();
    }
}
