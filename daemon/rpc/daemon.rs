use crate::protocol::{
    ActingAs, DaemonStatus, ErrorKind, HelloParams, HelloResult, NoParams, PROTOCOL_VERSION,
    PeerInfo, RpcError, ShutdownResult,
};
use crate::timefmt::rfc3339_ms;
use serde_json::Value;

use super::{Ctx, to_value};

/// `hello`: versions, and what the daemon knows about the caller. With a run token, binds
/// the connection to that run's session.
pub fn hello(ctx: &Ctx, p: HelloParams) -> Result<Value, RpcError> {
    if let Some(token) = &p.run_token {
        let acting = ctx.engine.check_token(token).ok_or_else(|| {
            RpcError::app(
                ErrorKind::Forbidden,
                "this run token is not valid here: its run has ended, or it was issued by another openclawd (a token lives only as long as its run, in the daemon that started it)",
            )
        })?;
        *ctx.conn.acting.lock().unwrap_or_else(|p| p.into_inner()) = Some(acting);
    }
    to_value(&HelloResult {
        daemon_version: crate::VERSION.to_string(),
        protocol_version: PROTOCOL_VERSION,
        daemon_id: ctx.daemon.daemon_id.clone(),
        peer: PeerInfo {
            uid: ctx.peer.uid,
            pid: ctx.peer.pid,
            trusted: ctx.peer.trust.is_trusted(),
            scopes: ctx
                .peer
                .trust
                .scopes()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            acting_as: ctx.acting().map(|a| ActingAs {
                session_key: a.session_key,
                run_id: a.run_id,
            }),
        },
    })
}

/// `daemon.status`: where things live and how busy the daemon is.
pub fn status(ctx: &Ctx, _: NoParams) -> Result<Value, RpcError> {
    let d = &ctx.daemon;
    let (store_commits, store_changes) = ctx.engine.store.write_stats();
    to_value(&DaemonStatus {
        pid: std::process::id(),
        version: crate::VERSION.to_string(),
        protocol_version: PROTOCOL_VERSION,
        daemon_id: d.daemon_id.clone(),
        started_at: rfc3339_ms(d.started_at_ms),
        uptime_ms: d.started.elapsed().as_millis() as u64,
        socket: d.paths.socket.display().to_string(),
        data_dir: d.paths.data_dir.display().to_string(),
        config_file: d.paths.config_file.display().to_string(),
        connections: d.connections.load(std::sync::atomic::Ordering::Relaxed),
        lanes: ctx.engine.lane_status(),
        interrupted_at_startup: d.interrupted_at_startup,
        store_commits,
        store_changes,
        subscriptions: d.subscriptions.load(std::sync::atomic::Ordering::Relaxed),
        buffered_notifications: d.buffered.load(std::sync::atomic::Ordering::Relaxed).max(0) as u64,
        started_by: None,
        log_file: None,
        config_loaded_at: None,
        http_listen: None,
    })
}

/// `daemon.shutdown`: answers, then the daemon stops (runs are stopped and recorded).
pub fn shutdown(ctx: &Ctx, _: NoParams) -> Result<Value, RpcError> {
    ctx.daemon.shutdown.cancel();
    to_value(&ShutdownResult {
        stopping: true,
        active_runs: 0,
        queued_runs: 0,
    })
}
