//! Waiting for runs (on their end, never by polling), stopping them (kill, shutdown), and
//! archiving sub-agent sessions that have been idle long enough.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::run::stopped_outcome;
use super::{Engine, EngineError, RunOutcome, StopReason, Turn};
use crate::daemon::store::{Durability, FinishedRun, SessionRecord};
use crate::protocol::{KillResult, RunResult, RunStatus, WaitStatus};
use crate::timefmt::now_ms;

impl Engine {
    /// Waits for a run to end, up to `timeout`. Zero means: report where it is now.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<RunResult, EngineError> {
        let live = {
            let st = self.state();
            st.runs
                .get(run_id)
                .map(|r| (r.done.subscribe(), r.session_key.clone(), r.running))
        };
        let Some((mut rx, session_key, running)) = live else {
            return self.stored_result(run_id).await;
        };
        let ended = tokio::time::timeout(timeout, async {
            rx.wait_for(Option::is_some).await.map(|o| o.clone())
        })
        .await;
        match ended {
            Ok(Ok(Some(outcome))) => Ok(result_of(run_id, &session_key, outcome)),
            // The run's sender went away without an outcome: the daemon is stopping.
            Ok(_) => self.stored_result(run_id).await,
            Err(_) => {
                let running = self.state().runs.get(run_id).map_or(running, |r| r.running);
                Ok(RunResult {
                    run_id: run_id.to_string(),
                    session_key,
                    status: WaitStatus::Timeout,
                    run_status: if running {
                        RunStatus::Running
                    } else {
                        RunStatus::Queued
                    },
                    reply: None,
                    error: None,
                })
            }
        }
    }

    /// Waits for the session's active run; with none, reports its last run.
    pub async fn wait_session(
        &self,
        session: &SessionRecord,
        timeout: Duration,
    ) -> Result<RunResult, EngineError> {
        if let Some(run_id) = self.active_run(&session.key) {
            return self.wait(&run_id, timeout).await;
        }
        match self.store.last_run_id(session.sid).await? {
            Some(run_id) => self.wait(&run_id, timeout).await,
            None => Err(EngineError::NoRuns(session.key.clone())),
        }
    }

    async fn stored_result(&self, run_id: &str) -> Result<RunResult, EngineError> {
        let rec = self
            .store
            .run(run_id.to_string())
            .await?
            .ok_or_else(|| EngineError::NoRun(run_id.to_string()))?;
        let outcome = RunOutcome {
            status: rec.status,
            reply: rec.reply,
            error: rec.error,
        };
        Ok(result_of(run_id, &rec.session_key, outcome))
    }

    /// Aborts the session's active run (and its queued ones with `clear_queued`); returns once
    /// the active run has really ended.
    pub async fn kill(
        self: &Arc<Self>,
        session: &SessionRecord,
        clear_queued: bool,
    ) -> Result<KillResult, EngineError> {
        // The active run is either executing (stop it and wait for its end) or still waiting
        // for a lane slot (take it out and end it here).
        let (active, unstarted, cleared) = {
            let mut st = self.state();
            let (active, cleared) = match st.sessions.get_mut(&session.key) {
                Some(q) => {
                    let cleared: Vec<Turn> = if clear_queued {
                        q.waiting.drain(..).collect()
                    } else {
                        Vec::new()
                    };
                    (q.active.clone(), cleared)
                }
                None => (None, Vec::new()),
            };
            for turn in &cleared {
                st.lanes.remove_queued(turn.lane);
            }
            let mut unstarted = None;
            let active = active.and_then(|id| {
                let r = st.runs.get(&id)?;
                let _ = r.reason.compare_exchange(
                    0,
                    StopReason::Kill as u8,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                r.stop.cancel();
                let (running, rx) = (r.running, r.done.subscribe());
                if !running {
                    unstarted = st
                        .lanes
                        .remove_ready(session.kind.lane(), |t| t.run_id == id);
                }
                Some((id, rx))
            });
            (active, unstarted, cleared)
        };
        let mut cleared_ids = Vec::new();
        for turn in cleared {
            cleared_ids.push(turn.run_id.clone());
            let outcome = RunOutcome {
                status: RunStatus::Aborted,
                reply: None,
                error: Some("cleared from the queue by `sessions kill --clear-queued`".into()),
            };
            self.store_unstarted_end(&turn, outcome).await;
        }
        if let Some(turn) = unstarted {
            self.finish(&turn, stopped_outcome(StopReason::Kill, None), None, None)
                .await;
        }
        let aborted = match active {
            Some((id, mut rx)) => {
                let _ = rx.wait_for(Option::is_some).await;
                Some(id)
            }
            None => None,
        };
        Ok(KillResult {
            session_key: session.key.clone(),
            status: if aborted.is_some() || !cleared_ids.is_empty() {
                "aborted"
            } else {
                "idle"
            }
            .to_string(),
            aborted_run_id: aborted,
            cleared_run_ids: cleared_ids,
        })
    }

    /// Ends a run that never started (it was cleared from its session's queue).
    async fn store_unstarted_end(&self, turn: &Turn, outcome: RunOutcome) {
        let finished = FinishedRun {
            run_id: turn.run_id.clone(),
            sid: turn.sid,
            status: outcome.status,
            reply: None,
            reply_text: None,
            error: outcome.error.clone(),
            ended_at: now_ms(),
            runtime_ms: None,
            tokens: None,
        };
        if let Err(e) = self.store.run_finished(finished, Durability::Now).await {
            tracing::error!(run_id = %turn.run_id, "storing a cleared run failed: {e}");
        }
        if let Some(live) = self.state().runs.remove(&turn.run_id) {
            live.done.send_replace(Some(outcome));
        }
    }

    /// Stops taking work: new submits are refused from now on.
    pub fn stop_accepting(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Resolves once no run is executing (queued ones may remain: they stay queued in the
    /// store for the next start).
    pub async fn drained(&self) {
        loop {
            let waiting: Vec<_> = {
                let st = self.state();
                st.runs
                    .values()
                    .filter(|r| r.running)
                    .map(|r| r.done.subscribe())
                    .collect()
            };
            if waiting.is_empty() {
                return;
            }
            for mut rx in waiting {
                let _ = rx.wait_for(Option::is_some).await;
            }
        }
    }

    /// Stops every run (recorded as `interrupted`; queued ones stay queued for the next start)
    /// and waits for them, then closes the store.
    pub async fn shutdown(&self) {
        self.stop_accepting();
        {
            let st = self.state();
            for run in st.runs.values() {
                let _ = run.reason.compare_exchange(
                    0,
                    StopReason::Shutdown as u8,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                run.stop.cancel();
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
        for backend in self.settings().backends.values() {
            backend.shutdown().await;
        }
        self.bus.close();
        self.store.close().await;
    }

    /// Archives sub-agent sessions `subagents.archive_after_minutes` after their last run
    /// ended. Sleeps until the next one falls due (or, with none pending, until a run ends).
    pub async fn run_archiver(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let minutes = self.config().subagents.archive_after_minutes;
            let ttl = (minutes.min(1 << 30) as i64) * 60_000;
            let next_due = match self.store.oldest_archivable().await {
                Ok(oldest) => oldest.map(|ended| ended + ttl),
                Err(e) => {
                    tracing::error!("archiver: {e}");
                    None
                }
            };
            let now = now_ms();
            match next_due {
                Some(due) if due <= now => {
                    if let Err(e) = self.store.archive_ended_before(now - ttl).await {
                        tracing::error!("archiving sub-agent sessions failed: {e}");
                        tokio::select! {
                            _ = self.archive_wake.notified() => {}
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
                Some(due) => {
                    let wait = Duration::from_millis((due - now) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.archive_wake.notified() => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

pub(super) fn result_of(run_id: &str, session_key: &str, outcome: RunOutcome) -> RunResult {
    let status = match outcome.status {
        RunStatus::Ok => WaitStatus::Ok,
        RunStatus::Queued | RunStatus::Running => WaitStatus::Timeout,
        _ => WaitStatus::Error,
    };
    RunResult {
        run_id: run_id.to_string(),
        session_key: session_key.to_string(),
        status,
        run_status: outcome.status,
        reply: outcome.reply,
        error: outcome.error,
    }
}
