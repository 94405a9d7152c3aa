//! One admitted run, from its start to its stored end: the backend runs the turn in a task
//! of its own (so a panic there is a failed run, not a lost lane slot), the end is committed
//! before anyone is told `ok`, the parent hears how it went, and the session's next turn
//! starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::announce;
use super::tokens::{self, Acting};
use super::{Engine, EngineError, RunOutcome, State, StopReason, Turn, input_text};
use crate::daemon::backends::{History, RunTools, SessionHandle, TurnContext, TurnError};
use crate::daemon::store::{Durability, FinishedRun, NewMessage, SessionRecord, StoreError};
use crate::protocol::{ProvenanceKind, Role, RunStatus, SessionKind};
use crate::timefmt::now_ms;

/// How long storing a run's end is retried for between attempts, at most (a full disk).
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

impl Engine {
    pub(super) fn start(self: &Arc<Self>, st: &mut State, turn: Turn) {
        // Stopping: a turn that has not started stays queued in the store, for the next start.
        if self.is_shutting_down() {
            return;
        }
        let Some(live) = st.runs.get_mut(&turn.run_id) else {
            return;
        };
        live.running = true;
        live.progress = Some(turn.progress.clone());
        let (stop, reason) = (live.stop.clone(), live.reason.clone());
        let acting = Acting {
            run_id: turn.run_id.clone(),
            sid: turn.sid,
            session_key: turn.session_key.clone(),
            agent_id: turn.agent_id.clone(),
            spawn_depth: turn.spawn_depth,
        };
        let token = st.tokens.issue(acting.clone());
        let engine = self.clone();
        self.tasks
            .spawn(async move { engine.drive(turn, acting, token, stop, reason).await });
    }

    fn tools_for(&self, acting: &Acting) -> Arc<dyn RunTools> {
        let host = self
            .tool_host
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|w| w.upgrade());
        match host {
            Some(host) => host.tools_for(acting),
            None => Arc::new(NoTools(crate::tools::ToolScope {
                enabled: Some(Vec::new()),
                ..Default::default()
            })),
        }
    }

    /// One admitted run, from its start to its stored end.
    async fn drive(
        self: Arc<Self>,
        turn: Turn,
        acting: Acting,
        token: Result<String, tokens::RandomFailed>,
        stop: CancellationToken,
        reason: Arc<AtomicU8>,
    ) {
        let started_ms = now_ms();
        let started = Instant::now();
        self.store.run_started(&turn.run_id, turn.sid, started_ms);
        let mut events = self.run_events(&turn);
        if turn.relay_to_parent
            && let Some(parent) = &turn.parent_key
            && let Ok(Some(p)) = self.store.session_by_key(parent.clone()).await
        {
            events = events.relay_to(p.sid);
        }
        events.lifecycle(|| json!({ "phase": "started" }));

        let backend = self.backend(&turn.agent_id);
        let result = match (backend, token) {
            (_, Err(e)) => Err(TurnError::Failed(format!(
                "cannot issue the run's token: {e}"
            ))),
            (None, _) => Err(TurnError::Failed(format!(
                "agent \"{}\" is no longer configured; add it back to config.toml",
                turn.agent_id
            ))),
            (Some(backend), Ok(run_token)) => {
                let model = turn.model.clone().or_else(|| {
                    self.config()
                        .agent(&turn.agent_id)
                        .and_then(|a| a.model.clone())
                });
                let ctx = TurnContext {
                    session_key: turn.session_key.clone(),
                    session_id: turn.session_id.clone(),
                    agent_id: turn.agent_id.clone(),
                    run_id: turn.run_id.clone(),
                    run_token,
                    message: input_text(&turn.content),
                    model,
                    thinking: turn.thinking.clone(),
                    workspace: self.workspace(&turn.session_id),
                    history: History::new(self.store.clone(), turn.sid),
                    session: SessionHandle::new(self.store.clone(), turn.sid),
                    first_run: turn.first_run,
                    session_token: if backend.keeps_processes() {
                        self.state().tokens.session_token(turn.sid).ok()
                    } else {
                        None
                    },
                    events,
                    tools: self.tools_for(&acting),
                    stop: stop.clone(),
                };
                // A task of its own: a backend that panics fails its run, and everything the
                // run holds (lane slot, session queue, waiters) is released below as usual.
                let mut run = tokio::spawn(async move { backend.run_turn(ctx).await });
                let joined = match turn.timeout {
                    Some(limit) => tokio::select! {
                        r = &mut run => r,
                        _ = tokio::time::sleep(limit) => {
                            let _ = reason.compare_exchange(0, StopReason::Timeout as u8, Ordering::Relaxed, Ordering::Relaxed);
                            stop.cancel();
                            run.await
                        }
                    },
                    None => run.await,
                };
                joined.unwrap_or_else(|e| {
                    tracing::error!(run_id = %turn.run_id, "the backend failed: {e}");
                    Err(TurnError::Failed(format!(
                        "the {} backend failed unexpectedly during this run; see the daemon's log",
                        turn.agent_id
                    )))
                })
            }
        };
        let runtime_ms = started.elapsed().as_millis() as i64;
        let (outcome, tokens) = match result {
            Ok(out) => (
                RunOutcome {
                    status: RunStatus::Ok,
                    reply: Some(out.reply),
                    error: None,
                },
                out.tokens,
            ),
            Err(TurnError::Failed(e)) => (
                RunOutcome {
                    status: RunStatus::Error,
                    reply: None,
                    error: Some(e),
                },
                None,
            ),
            Err(TurnError::Stopped) => (
                stopped_outcome(
                    StopReason::from_u8(reason.load(Ordering::Relaxed)),
                    turn.timeout,
                ),
                None,
            ),
        };
        self.finish(&turn, outcome, Some(runtime_ms), tokens).await;
    }

    /// Stores a run's end, wakes its waiters, and starts the session's next turn. A waiter
    /// is told `ok` only once the reply is committed; if that commit fails, waiters hear the
    /// error at once and the run's end is stored as `error` as soon as the store can.
    pub(super) async fn finish(
        self: &Arc<Self>,
        turn: &Turn,
        outcome: RunOutcome,
        runtime_ms: Option<i64>,
        tokens: Option<i64>,
    ) {
        // The run's processes are gone: its token dies with it.
        self.state().tokens.revoke(&turn.run_id);
        let ts = now_ms();
        let mut finished = FinishedRun {
            run_id: turn.run_id.clone(),
            sid: turn.sid,
            status: outcome.status,
            reply: Some(end_message(turn, &outcome, tokens, ts)),
            reply_text: outcome.reply.clone(),
            error: outcome.error.clone(),
            ended_at: ts,
            runtime_ms,
            tokens,
        };
        let durability = self.end_durability(turn);
        let mut outcome = outcome;
        let mut delay = Duration::from_millis(50);
        let mut told = false;
        loop {
            match self.store.run_finished(finished.clone(), durability).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(run_id = %turn.run_id, "storing the end of a run failed: {e}");
                    if !told {
                        // The reply is not durable: nobody may hear `ok`.
                        outcome = RunOutcome {
                            status: RunStatus::Error,
                            reply: None,
                            error: Some(format!("the run's end could not be stored: {e}")),
                        };
                        self.tell_waiters(&turn.run_id, outcome.clone());
                        finished.status = RunStatus::Error;
                        finished.reply = Some(end_message(turn, &outcome, None, now_ms()));
                        finished.reply_text = None;
                        finished.error = outcome.error.clone();
                        told = true;
                    }
                    // A full disk passes: retry until there is room. Anything else, or a
                    // daemon stopping, leaves the run to be marked `interrupted` at the next
                    // start.
                    if !e.is_transient() || self.is_shutting_down() {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(STORE_RETRY_MAX);
                }
            }
        }
        // Before waiters wake, so a parent waiting on its child finds the announce in place.
        if let Some(parent) = &turn.parent_key {
            self.announce(turn, parent, &outcome, runtime_ms, tokens)
                .await;
        }
        // Only a sub-agent session's end can make something due for archiving; waking the
        // archiver for every run cost each run a read of the store on the blocking pool.
        if super::kind_of(&turn.session_key) == SessionKind::Subagent {
            self.archive_wake.notify_one();
        }
        // After the reply is stored (and published), before waiters wake: a follower sees the
        // reply, then `ended`; a streaming `send` has every event before its result.
        self.run_events(turn).lifecycle(|| {
            let mut data = json!({ "phase": "ended", "status": outcome.status });
            if let Some(e) = &outcome.error {
                data["error"] = e.clone().into();
            }
            data
        });
        let session_done = {
            let mut st = self.state();
            if let Some(live) = st.runs.remove(&turn.run_id) {
                if live.running
                    && let Some(next) = st.lanes.release(turn.lane)
                {
                    self.start(&mut st, next);
                }
                live.done.send_replace(Some(outcome));
            }
            let next = st.sessions.get_mut(&turn.session_key).and_then(|q| {
                q.active = None;
                let next = q.waiting.pop_front();
                if let Some(n) = &next {
                    q.active = Some(n.run_id.clone());
                }
                next
            });
            match next {
                Some(n) => {
                    self.admit(&mut st, n);
                    false
                }
                None => {
                    st.sessions.remove(&turn.session_key);
                    // A send acknowledged but not yet queued keeps the session alive.
                    !st.tickets.contains_key(&turn.session_key)
                }
            }
        };
        self.give_back_memory_when_idle();
        if session_done
            && turn.delete_after
            && let Err(e) = self
                .delete_session_data(turn.sid, &turn.session_id, &turn.agent_id)
                .await
        {
            tracing::error!(session = %turn.session_key, "cleanup delete failed: {e}");
        }
    }

    /// How soon a run's end must be durable: at once when anyone is waiting for it (a
    /// `runs.wait` or a `send` with a timeout, the session's next turn, a parent to be told),
    /// else it may join the next commit, so a client spawning in a loop is not queued behind
    /// a commit of the previous run's end.
    fn end_durability(&self, turn: &Turn) -> Durability {
        if turn.parent_key.is_some() {
            return Durability::Now;
        }
        let st = self.state();
        let awaited = st
            .runs
            .get(&turn.run_id)
            .is_some_and(|live| live.done.receiver_count() > 0);
        let next_turn = st
            .sessions
            .get(&turn.session_key)
            .is_some_and(|q| !q.waiting.is_empty());
        if awaited || next_turn || st.tickets.contains_key(&turn.session_key) {
            Durability::Now
        } else {
            Durability::Soon
        }
    }

    fn tell_waiters(&self, run_id: &str, outcome: RunOutcome) {
        if let Some(live) = self.state().runs.get(run_id) {
            live.done.send_replace(Some(outcome));
        }
    }

    /// Removes a session with its workspace, and tells its backend. The store refuses (a
    /// conflict) while a run of it is queued or running.
    pub(super) async fn delete_session_data(
        &self,
        sid: i64,
        session_id: &str,
        agent_id: &str,
    ) -> Result<(), StoreError> {
        self.store.delete_session(sid).await?;
        self.state().tokens.revoke_session(sid);
        let _ = tokio::fs::remove_dir_all(self.workspace(session_id)).await;
        if let Some(backend) = self.backend(agent_id) {
            backend.close_session(session_id).await;
        }
        Ok(())
    }

    /// Deletes a session that has no run queued or running.
    pub async fn delete_session(&self, session: &SessionRecord) -> Result<(), EngineError> {
        Ok(self
            .delete_session_data(session.sid, &session.id, &session.agent_id)
            .await?)
    }

    /// After a burst, the memory of thousands of queued runs is free but kept by the
    /// allocator; once nothing is queued or running, hand it back to the system (at most
    /// every few seconds: the call walks the heap).
    fn give_back_memory_when_idle(&self) {
        if !self.state().runs.is_empty() {
            return;
        }
        let now = now_ms();
        let last = self.last_trim_ms.load(Ordering::Relaxed);
        if now - last < 5_000
            || self
                .last_trim_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
            unsafe { libc::malloc_trim(0) };
        });
    }

    /// Appends the announce of a child's ended run to its parent's transcript (durably).
    async fn announce(
        &self,
        turn: &Turn,
        parent_key: &str,
        outcome: &RunOutcome,
        runtime_ms: Option<i64>,
        tokens: Option<i64>,
    ) {
        let reply_empty = outcome.reply.as_deref().is_none_or(|r| r.trim().is_empty());
        let last_tool_output = if reply_empty {
            self.store
                .last_tool_output(turn.sid, turn.run_id.clone())
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let Some(text) = announce::announce_text(&announce::ChildRun {
            status: outcome.status,
            reply: outcome.reply.as_deref(),
            error: outcome.error.as_deref(),
            last_tool_output: last_tool_output.as_deref(),
            runtime_ms,
            tokens,
            session_key: &turn.session_key,
            session_id: &turn.session_id,
        }) else {
            return;
        };
        let parent = match self.store.session_by_key(parent_key.to_string()).await {
            Ok(Some(p)) => p,
            Ok(None) => return, // the parent was deleted: nobody to tell
            Err(e) => {
                tracing::error!(parent = parent_key, "announce: {e}");
                return;
            }
        };
        let message = NewMessage {
            ts: now_ms(),
            role: Role::Announce,
            content: Value::String(text),
            run_id: Some(turn.run_id.clone()),
            provenance: ProvenanceKind::Announce,
            from: Some(turn.session_key.clone()),
            usage: None,
        };
        if let Err(e) = self.store.append_durable(parent.sid, message).await {
            tracing::error!(parent = parent_key, "storing an announce failed: {e}");
        }
    }
}

/// The message a run's end leaves in the transcript: its reply, or a note of how it ended.
fn end_message(turn: &Turn, outcome: &RunOutcome, tokens: Option<i64>, ts: i64) -> NewMessage {
    match (&outcome.status, &outcome.reply) {
        (RunStatus::Ok, Some(reply)) => NewMessage {
            ts,
            role: Role::Assistant,
            content: Value::String(reply.clone()),
            run_id: Some(turn.run_id.clone()),
            provenance: ProvenanceKind::Agent,
            from: None,
            usage: tokens.map(|t| json!({ "totalTokens": t })),
        },
        (status, _) => NewMessage {
            ts,
            role: Role::System,
            content: Value::String(format!(
                "run {} ended {}{}",
                turn.run_id,
                status.as_str(),
                outcome
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
            run_id: Some(turn.run_id.clone()),
            provenance: ProvenanceKind::Agent,
            from: None,
            usage: None,
        },
    }
}

pub(super) fn stopped_outcome(reason: StopReason, timeout: Option<Duration>) -> RunOutcome {
    match reason {
        StopReason::Timeout => RunOutcome {
            status: RunStatus::Timeout,
            reply: None,
            error: Some(format!(
                "the run exceeded its timeout of {} s",
                timeout.map(|t| t.as_secs_f64()).unwrap_or_default()
            )),
        },
        StopReason::Shutdown => RunOutcome {
            status: RunStatus::Interrupted,
            reply: None,
            error: Some("the daemon shut down during this run".into()),
        },
        StopReason::Kill | StopReason::None => RunOutcome {
            status: RunStatus::Aborted,
            reply: None,
            error: Some("killed by `sessions kill`".into()),
        },
    }
}

/// The tools of a run when no session service is attached (engine tests): none.
struct NoTools(crate::tools::ToolScope);

impl RunTools for NoTools {
    fn scope(&self) -> &crate::tools::ToolScope {
        &self.0
    }

    fn call(
        &self,
        _call: crate::tools::SessionToolCall,
    ) -> crate::daemon::backends::BoxFuture<'_, Result<Value, crate::tools::ToolError>> {
        Box::pin(async {
            Err(crate::tools::ToolError::new(
                "not_found",
                "this run has no session tools",
            ))
        })
    }
}
