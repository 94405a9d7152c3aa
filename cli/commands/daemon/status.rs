//! `daemon status`: where the daemon runs, how it was started, what it is doing.

use openclaw::protocol::{DaemonStatus, NoParams, methods};

use super::super::{Context, call_raw, typed};
use crate::autostart::Autostart;
use crate::failure::Failure;
use crate::output::{print_json, write_stdout};

pub fn status(ctx: &Context) -> Result<(), Failure> {
    let mut client = ctx.client_with(Autostart::Never)?;
    let raw = call_raw(&mut client, methods::DAEMON_STATUS, &NoParams {})?;
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
    ];
    if let Some(loaded) = &status.config_loaded_at {
        fields.push(("config loaded".into(), loaded.clone()));
    }
    if let Some(by) = &status.started_by {
        fields.push(("started by".into(), by.clone()));
    }
    if let Some(log) = &status.log_file {
        fields.push(("log file".into(), log.clone()));
    }
    if let Some(listen) = &status.http_listen {
        fields.push(("http".into(), listen.clone()));
    }
    fields.push(("connections".into(), status.connections.to_string()));
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
    if status.log_lines_lost > 0 {
        fields.push((
            "log".into(),
            format!(
                "{} lines lost (the log could not be written, e.g. its disk was full)",
                status.log_lines_lost
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
            started_by: Some("autostart".into()),
            log_file: Some("/h/data/openclawd.log".into()),
            config_loaded_at: None,
            http_listen: None,
            log_lines_lost: 0,
            unauthenticated: Default::default(),
        };
        let expected = "\
pid          42
version      0.1.0 (protocol 1)
uptime       1m 5s (since 2026-11-21T23:00:00Z)
socket       /h/openclaw.sock
data dir     /h/data
config file  /h/config.toml
started by   autostart
log file     /h/data/openclawd.log
connections  1
lane main    1 running of 8, 0 queued
store        3 commits, 7 changes
live         0 subscriptions, 0 notifications buffered
";
        assert_eq!(render_status(&status), expected);
    }
}
