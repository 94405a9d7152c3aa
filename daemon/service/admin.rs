//! The daemon itself: `hello`, `daemon.status`, `agents.list`, `daemon.shutdown` and
//! `daemon.reload`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Caller, Result, ServiceError, SessionService};
use crate::config::Config;
use crate::protocol::{
    ActingAs, AgentInfo, AgentsListResult, DaemonStatus, HelloParams, HelloResult,
    PROTOCOL_VERSION, PeerInfo, ReloadResult, ShutdownParams, ShutdownResult, methods, scopes,
};
use crate::timefmt::rfc3339_ms;

/// What the kernel said about a socket peer (HTTP over TCP has none).
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerFacts {
    pub uid: Option<u32>,
    pub pid: Option<u32>,
    /// Same uid as the daemon, or root.
    pub trusted: bool,
}

impl SessionService {
    /// Versions, and what the daemon knows about the caller. With a run token, the caller
    /// becomes that run's session (returned for the transport to keep).
    pub fn hello(
        &self,
        caller: &Caller,
        peer: PeerFacts,
        p: HelloParams,
    ) -> Result<(HelloResult, Caller)> {
        let caller = match &p.run_token {
            Some(token) => self.caller_for_token(token).ok_or_else(|| {
                ServiceError::forbidden(
                    "this run token is not valid here: its run has ended, or it was issued by another openclawd (a token lives only as long as its run, in the daemon that started it)",
                )
            })?,
            None => caller.clone(),
        };
        let result = HelloResult {
            daemon_version: crate::VERSION.to_string(),
            protocol_version: PROTOCOL_VERSION,
            daemon_id: self.daemon.daemon_id.clone(),
            peer: PeerInfo {
                uid: peer.uid,
                pid: peer.pid,
                trusted: peer.trusted,
                scopes: if peer.trusted {
                    scopes::ALL.iter().map(|s| s.to_string()).collect()
                } else {
                    Vec::new()
                },
                acting_as: caller.acting().map(|a| ActingAs {
                    session_key: a.session_key.clone(),
                    run_id: a.run_id.clone(),
                }),
            },
        };
        Ok((result, caller))
    }

    /// Where things live and how busy the daemon is.
    pub fn status(&self, caller: &Caller) -> Result<DaemonStatus> {
        self.authorize(caller, methods::DAEMON_STATUS, scopes::SESSIONS_READ)?;
        let d = &self.daemon;
        let (store_commits, store_changes) = self.engine.store.write_stats();
        Ok(DaemonStatus {
            pid: std::process::id(),
            version: crate::VERSION.to_string(),
            protocol_version: PROTOCOL_VERSION,
            daemon_id: d.daemon_id.clone(),
            started_at: rfc3339_ms(d.started_at_ms),
            uptime_ms: d.started.elapsed().as_millis() as u64,
            socket: d.paths.socket.display().to_string(),
            data_dir: d.paths.data_dir.display().to_string(),
            config_file: d.paths.config_file.display().to_string(),
            connections: d.connections.load(Ordering::Relaxed),
            lanes: self.engine.lane_status(),
            interrupted_at_startup: d.interrupted_at_startup,
            store_commits,
            store_changes,
            subscriptions: d.subscriptions.load(Ordering::Relaxed),
            buffered_notifications: d.buffered.load(Ordering::Relaxed).max(0) as u64,
            started_by: d.started_by.clone(),
            log_file: d.log_file.clone(),
            config_loaded_at: Some(rfc3339_ms(d.config_loaded_at_ms.load(Ordering::Relaxed))),
            http_listen: None,
            log_lines_lost: crate::daemon::log_writer::lines_lost(),
            unauthenticated: crate::protocol::UnauthenticatedStatus {
                connections: self.strangers.open(),
                in_flight_peak: self.strangers.in_flight_peak(),
            },
        })
    }

    /// The configured agents, the implicit default included.
    pub fn agents(&self, caller: &Caller) -> Result<AgentsListResult> {
        self.authorize(caller, methods::AGENTS_LIST, scopes::SESSIONS_READ)?;
        let config = self.engine.config();
        let default = config.default_agent_id().to_string();
        let agents = config
            .all_agents()
            .into_iter()
            .map(|(id, a)| {
                let env = config.openai_env();
                let openai = a.backend == crate::config::BackendKind::OpenAi;
                AgentInfo {
                    is_default: id == default,
                    id,
                    backend: a.backend.as_str().to_string(),
                    endpoint: openai.then(|| a.openai_base_url(&env)),
                    model: if openai {
                        a.openai_model(&env)
                    } else {
                        a.model.clone()
                    },
                    command: a.command,
                }
            })
            .collect();
        Ok(AgentsListResult {
            default_agent: default,
            agents,
        })
    }

    /// Stops the daemon: at once (running runs are interrupted, queued ones stay queued for
    /// the next start), or with `drain` once the running runs have ended (new work is refused
    /// meanwhile; after `timeoutSeconds` what is left is interrupted).
    pub fn shutdown(&self, caller: &Caller, p: ShutdownParams) -> Result<ShutdownResult> {
        self.authorize(caller, methods::DAEMON_SHUTDOWN, scopes::ADMIN)?;
        let (active, queued) = self.engine.run_counts();
        let stop = self.daemon.shutdown.clone();
        if p.drain == Some(true) {
            let limit = super::wait_duration(p.timeout_seconds, 86_400.0)?;
            self.engine.stop_accepting();
            let engine = self.engine.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(limit, engine.drained()).await;
                stop.cancel();
            });
        } else {
            if p.timeout_seconds.is_some() {
                return Err(ServiceError::InvalidParams(
                    "timeoutSeconds applies only with drain: true".into(),
                ));
            }
            stop.cancel();
        }
        Ok(ShutdownResult {
            stopping: true,
            active_runs: active,
            queued_runs: queued,
        })
    }

    /// Reads `config.toml` again and puts it in force for new runs; running runs keep what
    /// they started with. A bad file changes nothing.
    pub fn reload(&self, caller: &Caller) -> Result<ReloadResult> {
        self.authorize(caller, methods::DAEMON_RELOAD, scopes::ADMIN)?;
        let path = &self.daemon.paths.config_file;
        crate::daemon::launch::tell_reloading();
        let reloaded = self.reload_from(path);
        crate::daemon::launch::tell_reloaded();
        reloaded
    }

    fn reload_from(&self, path: &std::path::Path) -> Result<ReloadResult> {
        // The request was fine; the file is what is wrong, and it stays in the way until it
        // is fixed — a conflict with the state on disk, not bad params.
        let mut new = Config::load(path).map_err(|e| {
            ServiceError::Conflict(format!("{e}; the daemon keeps the configuration it had"))
        })?;
        let env = new.openai_env();
        new.apply_default_agent(&env);
        let old = self.engine.config();
        let changed = describe_changes(&old, &new);
        self.engine.reconfigure(Arc::new(new));
        self.daemon
            .config_loaded_at_ms
            .store(crate::timefmt::now_ms(), Ordering::Relaxed);
        tracing::info!(changes = changed.len(), "configuration reloaded");
        Ok(ReloadResult {
            config_file: path.display().to_string(),
            changed,
        })
    }
}

impl SessionService {
    /// When config.toml was changed after the daemon last read it, the sentence to add to an
    /// error that a reload could explain (an agent not found, say).
    pub fn config_changed_note(&self) -> String {
        let loaded = self.daemon.config_loaded_at_ms.load(Ordering::Relaxed);
        let modified = std::fs::metadata(&self.daemon.paths.config_file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        match modified {
            Some(m) if m > loaded => {
                " (config.toml changed since the daemon loaded it; run `openclaw daemon reload`)"
                    .to_string()
            }
            _ => String::new(),
        }
    }
}

/// One line per change between two configurations.
fn describe_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let (old_agents, new_agents) = (old.all_agents(), new.all_agents());
    for (id, agent) in &new_agents {
        match old_agents.iter().find(|(o, _)| o == id) {
            None => changed.push(format!("agents.{id}: added ({})", agent.backend.as_str())),
            Some((_, before)) if format!("{before:?}") != format!("{agent:?}") => {
                changed.push(format!("agents.{id}: changed"));
            }
            _ => {}
        }
    }
    for (id, _) in &old_agents {
        if !new_agents.iter().any(|(n, _)| n == id) {
            changed.push(format!("agents.{id}: removed"));
        }
    }
    if old.default_agent_id() != new.default_agent_id() {
        changed.push(format!(
            "default_agent: {} -> {}",
            old.default_agent_id(),
            new.default_agent_id()
        ));
    }
    let sections: [(&str, String, String); 5] = [
        (
            "lanes",
            format!("{:?}", old.lanes),
            format!("{:?}", new.lanes),
        ),
        (
            "limits",
            format!("{:?}", old.limits),
            format!("{:?}", new.limits),
        ),
        (
            "session",
            format!("{:?}", old.session),
            format!("{:?}", new.session),
        ),
        (
            "subagents",
            format!("{:?}", old.subagents),
            format!("{:?}", new.subagents),
        ),
        (
            "pairing",
            format!("{:?}", old.pairing),
            format!("{:?}", new.pairing),
        ),
    ];
    for (name, before, after) in sections {
        if before != after {
            changed.push(format!("{name}: changed"));
        }
    }
    changed
}
