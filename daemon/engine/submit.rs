//! Submitting a turn: its message and run are committed (the session too, when new), then
//! the run joins its session's queue in commit order and starts when its turn and a lane
//! slot come.

use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Engine, EngineError, LiveRun, State, StopReason, Turn};
use crate::daemon::store::{
    NewMessage, NewRun, NewSession, PendingRun, Receipt, SessionRecord, Submit, SubmitOutcome,
    Target,
};
use crate::protocol::{AttachmentReceipt, Cleanup, Lane};

/// A file to put into the session's workspace once its spawn is committed.
#[derive(Debug, Clone)]
pub struct PreparedAttachment {
    pub receipt: AttachmentReceipt,
    pub bytes: Vec<u8>,
}

/// What a caller asks for when submitting a turn.
pub struct SubmitRequest {
    pub target: SubmitTarget,
    pub message: NewMessage,
    /// Chosen by the caller, so it can listen for the run's events before it exists.
    pub run_id: String,
    pub run_timeout: Option<Duration>,
    /// (key already scoped to its caller, method): a retry returns the first receipt.
    pub idempotency: Option<(String, &'static str)>,
    /// A digest of the call's params, stored in the receipt.
    pub params_digest: Option<String>,
    /// Written into the workspace after the commit, before the run can start.
    pub attachments: Vec<PreparedAttachment>,
    /// `thinking` as given, for backends that use it.
    pub thinking: Option<String>,
}

pub enum SubmitTarget {
    Existing(Box<SessionRecord>),
    New(Box<NewSession>),
}

pub enum Submitted {
    /// A new run was committed and queued.
    New(Receipt),
    /// The idempotency key was used before: the first call's receipt.
    Existing(Receipt),
}

impl Engine {
    /// Queues again the runs a previous daemon acknowledged but never started.
    pub async fn requeue(self: &Arc<Self>, pending: Vec<PendingRun>) -> Result<(), EngineError> {
        for p in pending {
            let Some(session) = self.store.session_by_sid(p.sid).await? else {
                continue;
            };
            let turn = Turn {
                run_id: p.run_id,
                sid: p.sid,
                session_key: session.key.clone(),
                session_id: session.id.clone(),
                agent_id: session.agent_id.clone(),
                lane: p.lane,
                content: p.content,
                model: session.model.clone(),
                thinking: None,
                timeout: p
                    .timeout_ms
                    .map(|ms| Duration::from_millis(ms.max(1) as u64)),
                delete_after: session.cleanup == Cleanup::Delete,
                progress: Arc::default(),
                parent_key: session.parent_key.clone(),
                spawn_depth: session.spawn_depth,
                first_run: false,
                relay_to_parent: session.stream_to.as_deref() == Some("parent"),
            };
            self.enqueue(turn);
        }
        Ok(())
    }

    /// Durably records a message and its run, then queues the run. Returns once committed.
    pub async fn submit(self: &Arc<Self>, req: SubmitRequest) -> Result<Submitted, EngineError> {
        if self.is_shutting_down() {
            return Err(EngineError::ShuttingDown);
        }
        let settings = self.settings();
        let (turn_of, target) = match req.target {
            SubmitTarget::Existing(s) => {
                let turn = TurnOf {
                    kind_lane: s.kind.lane(),
                    agent_id: s.agent_id.clone(),
                    session_key: s.key.clone(),
                    session_id: s.id.clone(),
                    parent_key: s.parent_key.clone(),
                    spawn_depth: s.spawn_depth,
                    model: s.model.clone(),
                    delete_after: s.cleanup == Cleanup::Delete,
                    first_run: false,
                    relay_to_parent: s.stream_to.as_deref() == Some("parent"),
                };
                (turn, Target::Existing(s.sid))
            }
            SubmitTarget::New(n) => {
                let turn = TurnOf {
                    kind_lane: n.kind.lane(),
                    agent_id: n.agent_id.clone(),
                    session_key: n.key.clone(),
                    session_id: n.id.clone(),
                    parent_key: n.parent_key.clone(),
                    spawn_depth: n.spawn_depth,
                    model: n.model.clone(),
                    delete_after: n.cleanup == Cleanup::Delete,
                    first_run: true,
                    relay_to_parent: n.stream_to.as_deref() == Some("parent"),
                };
                (turn, Target::New(n))
            }
        };
        if !settings.backends.contains_key(&turn_of.agent_id) {
            return Err(EngineError::UnknownAgent(turn_of.agent_id));
        }
        let lane = turn_of.kind_lane;
        let run_id = req.run_id;
        let receipt = Receipt {
            run_id: run_id.clone(),
            session_key: turn_of.session_key.clone(),
            session_id: turn_of.session_id.clone(),
            params: req.params_digest,
            attachments: req.attachments.iter().map(|a| a.receipt.clone()).collect(),
        };
        let mut message = req.message;
        message.run_id = Some(run_id.clone());
        let content = message.content.clone();
        let (idempotency_key, method) = match req.idempotency {
            Some((key, method)) => (Some(format!("{method}:{key}")), method),
            None => (None, ""),
        };
        let submit = Submit {
            target,
            message,
            run: NewRun {
                id: run_id.clone(),
                lane,
                timeout_ms: req.run_timeout.map(|t| t.as_millis() as i64),
            },
            idempotency_key,
            method,
            receipt: receipt.clone(),
        };
        let limits = settings.config.limits;
        let (ticket, committed) = {
            let mut st = self.state();
            // Checked under the lock that takes the ticket, counting submits still being
            // committed, so concurrent callers cannot overshoot the limits together.
            if st.lanes.queued(lane) as usize >= limits.max_queued_runs {
                return Err(EngineError::Busy {
                    message: format!(
                        "the {} lane has {} runs waiting; retry later",
                        lane.as_str(),
                        limits.max_queued_runs
                    ),
                    retry_after_ms: 1000,
                });
            }
            let waiting = st
                .sessions
                .get(&turn_of.session_key)
                .map_or(0, |q| q.waiting.len())
                + st.tickets
                    .get(&turn_of.session_key)
                    .map_or(0, |t| (t.issued - t.next) as usize);
            let max = limits.max_queued_per_session;
            if waiting >= max {
                return Err(EngineError::Busy {
                    message: format!(
                        "session {} already has {max} messages queued; retry when its runs have caught up",
                        turn_of.session_key
                    ),
                    retry_after_ms: 500,
                });
            }
            let committed = self.store.submit(submit);
            st.lanes.add_queued(lane);
            // Registered before the caller hears of the run, so a wait always finds it.
            register_run(&mut st, &run_id, &turn_of.session_key);
            let tickets = st.tickets.entry(turn_of.session_key.clone()).or_default();
            tickets.issued += 1;
            (tickets.issued - 1, committed)
        };
        let outcome = committed.await;
        if let Ok(SubmitOutcome::Created { .. }) = &outcome
            && !req.attachments.is_empty()
        {
            // Before the run is queued, so its agent finds them; a failure here fails the
            // run, not the spawn, which is already committed.
            if let Err(e) = self
                .write_attachments(&turn_of.session_id, req.attachments)
                .await
            {
                tracing::error!(run_id, "writing attachments failed: {e}");
            }
        }
        let turn = match &outcome {
            Ok(SubmitOutcome::Created { sid }) => Some(Turn {
                run_id: run_id.clone(),
                sid: *sid,
                session_key: turn_of.session_key.clone(),
                session_id: turn_of.session_id,
                agent_id: turn_of.agent_id,
                lane,
                content,
                model: turn_of.model,
                thinking: req.thinking,
                timeout: req.run_timeout,
                delete_after: turn_of.delete_after,
                progress: Arc::default(),
                parent_key: turn_of.parent_key,
                spawn_depth: turn_of.spawn_depth,
                first_run: turn_of.first_run,
                relay_to_parent: turn_of.relay_to_parent,
            }),
            _ => None,
        };
        self.release_ticket(&turn_of.session_key, ticket, turn, &run_id, lane);
        match outcome? {
            SubmitOutcome::Existing(first) => Ok(Submitted::Existing(first)),
            SubmitOutcome::Created { .. } => Ok(Submitted::New(receipt)),
        }
    }

    /// Writes a spawn's attachments under `.openclaw/attachments/` of its workspace, private
    /// to the owner.
    async fn write_attachments(
        &self,
        session_id: &str,
        attachments: Vec<PreparedAttachment>,
    ) -> std::io::Result<()> {
        let workspace = self.workspace(session_id);
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            for a in attachments {
                let path = workspace.join(&a.receipt.path);
                if let Some(dir) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                std::io::Write::write_all(&mut f, &a.bytes)?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Marks a ticket committed and queues, in ticket order, every turn no longer waiting for
    /// an earlier one.
    fn release_ticket(
        self: &Arc<Self>,
        session_key: &str,
        ticket: u64,
        turn: Option<Turn>,
        run_id: &str,
        lane: Lane,
    ) {
        let mut st = self.state();
        if turn.is_none() {
            st.runs.remove(run_id); // nothing was queued under this run id
            st.lanes.remove_queued(lane);
        }
        let Some(tickets) = st.tickets.get_mut(session_key) else {
            return;
        };
        tickets.parked.insert(ticket, turn);
        let mut ready = Vec::new();
        while let Some(entry) = tickets.parked.remove(&tickets.next) {
            tickets.next += 1;
            ready.extend(entry);
        }
        if tickets.next == tickets.issued {
            st.tickets.remove(session_key);
        }
        for turn in ready {
            self.enqueue_locked(&mut st, turn);
        }
    }

    /// Registers a committed turn and starts it if its session is idle.
    fn enqueue(self: &Arc<Self>, turn: Turn) {
        let mut st = self.state();
        register_run(&mut st, &turn.run_id, &turn.session_key);
        st.lanes.add_queued(turn.lane);
        self.enqueue_locked(&mut st, turn);
    }

    /// Queues a committed turn (already counted in its lane) in its session.
    fn enqueue_locked(self: &Arc<Self>, st: &mut State, turn: Turn) {
        self.run_events(&turn)
            .lifecycle(|| json!({ "phase": "queued" }));
        let queue = st.sessions.entry(turn.session_key.clone()).or_default();
        if queue.active.is_none() {
            queue.active = Some(turn.run_id.clone());
            self.admit(st, turn);
        } else {
            queue.waiting.push_back(turn);
        }
    }

    /// The turn is next in its session: it runs now if its lane has room, else waits there.
    pub(super) fn admit(self: &Arc<Self>, st: &mut State, turn: Turn) {
        let lane = turn.lane;
        if let Some(turn) = st.lanes.admit(lane, turn) {
            self.start(st, turn);
        }
    }

    /// Starts every turn waiting for a lane that now has room (after a reload raised caps).
    pub(super) fn start_admissible(self: &Arc<Self>) {
        let mut st = self.state();
        while let Some(turn) = st.lanes.next_admissible() {
            self.start(&mut st, turn);
        }
    }
}

/// What a submit learns about the session it goes to.
struct TurnOf {
    kind_lane: Lane,
    agent_id: String,
    session_key: String,
    session_id: String,
    parent_key: Option<String>,
    spawn_depth: i64,
    model: Option<String>,
    delete_after: bool,
    first_run: bool,
    relay_to_parent: bool,
}

/// Makes a run known to waiters and to kill, before it is queued.
pub(super) fn register_run(st: &mut State, run_id: &str, session_key: &str) {
    st.runs.insert(
        run_id.to_string(),
        LiveRun {
            session_key: session_key.to_string(),
            running: false,
            stop: CancellationToken::new(),
            reason: Arc::new(AtomicU8::new(StopReason::None as u8)),
            done: watch::channel(None).0,
            progress: None,
        },
    );
}
