//! The session engine: submits turns (durably, before answering), runs one turn at a time per
//! session in FIFO order, caps concurrency with global lanes, stops runs on kill, timeout or
//! shutdown, and wakes waiters when a run ends (an event, never a poll).

mod announce;
mod keys;
mod lanes;
mod tokens;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::protocol::{
    ErrorKind, KillResult, ProvenanceKind, Role, RpcError, RunResult, RunStatus, WaitStatus,
};
use crate::timefmt::now_ms;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::backends::{Backend, TurnError, TurnInput};
use crate::daemon::events::{EventBus, RunEvents};
use crate::daemon::store::{
    FinishedRun, NewMessage, NewRun, NewSession, PendingRun, SessionRecord, Store, StoreError,
    Submit, SubmitOutcome, Target,
};
pub use keys::{agent_of_main, kind_of, normalize, subagent_key};
use lanes::{Lanes, lane_for_kind, lane_named};
pub use tokens::Acting;
use tokens::RunTokens;

/// How a run ended, as waiters see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub reply: Option<String>,
    pub error: Option<String>,
}

/// Why a run's stop token was cancelled.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum StopReason {
    None = 0,
    Kill = 1,
    Timeout = 2,
    Shutdown = 3,
}

impl StopReason {
    fn from_u8(v: u8) -> StopReason {
        match v {
            1 => StopReason::Kill,
            2 => StopReason::Timeout,
            3 => StopReason::Shutdown,
            _ => StopReason::None,
        }
    }
}

/// A turn waiting to run or running.
#[derive(Clone)]
struct Turn {
    run_id: String,
    sid: i64,
    session_key: String,
    session_id: String,
    agent_id: String,
    lane: &'static str,
    input: String,
    timeout: Option<Duration>,
    delete_after: bool,
    /// Numbers this run's events.
    event_seq: Arc<AtomicU64>,
    /// The session that spawned this one: it hears how each run ended (announce).
    parent_key: Option<String>,
    spawn_depth: i64,
}

struct LiveRun {
    session_key: String,
    running: bool,
    stop: CancellationToken,
    reason: Arc<AtomicU8>,
    done: watch::Sender<Option<RunOutcome>>,
}

#[derive(Default)]
struct SessionQueue {
    active: Option<String>,
    waiting: VecDeque<Turn>,
}

/// Orders the turns of one session by commit order. Submits take a ticket while queueing
/// their commit (under the engine lock, so ticket order is commit order and seq order); a
/// committed turn joins its session's queue only after every earlier ticket has, so runs
/// execute in transcript order however the committing tasks are scheduled.
#[derive(Default)]
struct Tickets {
    issued: u64,
    next: u64,
    /// Committed tickets waiting for an earlier one; `None` for a submit that made no run.
    parked: std::collections::BTreeMap<u64, Option<Turn>>,
}

struct State {
    runs: HashMap<String, LiveRun>,
    sessions: HashMap<i64, SessionQueue>,
    lanes: Lanes<Turn>,
    /// By session key (a session being created has no row id yet).
    tickets: HashMap<String, Tickets>,
    /// Tokens of the runs executing now.
    tokens: RunTokens,
}

/// Builds a submit's result from (run id, session key, session id), once they are known.
pub type MakeResult = Box<dyn FnOnce(&str, &str, &str) -> Value + Send>;

/// What a caller asks for when submitting a turn.
pub struct SubmitRequest {
    pub target: SubmitTarget,
    pub message: NewMessage,
    pub run_timeout: Option<Duration>,
    pub delete_after: bool,
    /// (key, method, result to return on a retry: built from the run id and session)
    pub idempotency_key: Option<String>,
    pub method: &'static str,
    pub make_result: MakeResult,
}

pub enum SubmitTarget {
    Existing(Box<SessionRecord>),
    New(Box<NewSession>),
}

pub enum Submitted {
    /// A new run was committed and queued; `result` is what the caller answers.
    New(Value),
    /// The idempotency key was used before: the first call's result.
    Existing(Value),
}

pub struct Engine {
    pub store: Store,
    pub bus: EventBus,
    pub config: Arc<Config>,
    backends: HashMap<String, Arc<Backend>>,
    workspaces: PathBuf,
    state: Mutex<State>,
    tasks: TaskTracker,
    shutting_down: AtomicBool,
    /// Wakes the archiver when a run ends.
    archive_wake: tokio::sync::Notify,
    last_trim_ms: std::sync::atomic::AtomicI64,
}

impl Engine {
    pub fn new(
        store: Store,
        bus: EventBus,
        config: Arc<Config>,
        data_dir: PathBuf,
        socket: PathBuf,
    ) -> Arc<Engine> {
        let grace = Duration::from_millis(config.limits.kill_grace_ms);
        let backends = config
            .all_agents()
            .into_iter()
            .map(|(id, agent)| (id, Arc::new(Backend::from_config(&agent, &socket, grace))))
            .collect();
        Arc::new(Engine {
            store,
            bus,
            state: Mutex::new(State {
                runs: HashMap::new(),
                sessions: HashMap::new(),
                lanes: Lanes::new(&config.lanes),
                tickets: HashMap::new(),
                tokens: RunTokens::default(),
            }),
            config,
            backends,
            workspaces: data_dir.join("workspaces"),
            tasks: TaskTracker::new(),
            shutting_down: AtomicBool::new(false),
            archive_wake: tokio::sync::Notify::new(),
            last_trim_ms: Default::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn default_agent(&self) -> &str {
        self.config.default_agent_id()
    }

    pub fn has_agent(&self, id: &str) -> bool {
        self.backends.contains_key(id)
    }

    pub fn workspace(&self, session_id: &str) -> PathBuf {
        self.workspaces.join(session_id)
    }

    /// Queues again the runs a previous daemon acknowledged but never started.
    pub async fn requeue(self: &Arc<Self>, pending: Vec<PendingRun>) -> Result<(), StoreError> {
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
                lane: lane_named(&p.lane),
                input: p.input,
                timeout: p
                    .timeout_ms
                    .map(|ms| Duration::from_millis(ms.max(1) as u64)),
                delete_after: session.cleanup == "delete",
                event_seq: Arc::default(),
                parent_key: session.parent_key.clone(),
                spawn_depth: session.spawn_depth,
            };
            self.enqueue(turn);
        }
        Ok(())
    }

    /// Finds a session by key (normalized) or by id.
    pub async fn find_session(&self, key_or_id: &str) -> Result<Option<SessionRecord>, RpcError> {
        if uuid::Uuid::parse_str(key_or_id).is_ok()
            && let Some(s) = self
                .store
                .session_by_id(key_or_id.to_string())
                .await
                .map_err(internal)?
        {
            return Ok(Some(s));
        }
        let key = normalize(key_or_id, self.default_agent());
        self.store.session_by_key(key).await.map_err(internal)
    }

    fn refuse_if_shutting_down(&self) -> Result<(), RpcError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(RpcError::app(
                ErrorKind::ShuttingDown,
                "the daemon is shutting down; retry once it is back (`openclaw daemon start`)",
            ));
        }
        Ok(())
    }

    /// Durably records a message and its run, then queues the run. Returns once committed.
    pub async fn submit(self: &Arc<Self>, req: SubmitRequest) -> Result<Submitted, RpcError> {
        self.refuse_if_shutting_down()?;
        let (
            kind,
            agent_id,
            session_key,
            session_id,
            (parent_key, spawn_depth),
            target,
            delete_after,
        ) = match req.target {
            SubmitTarget::Existing(s) => {
                let delete = s.cleanup == "delete";
                (
                    s.kind.clone(),
                    s.agent_id.clone(),
                    s.key.clone(),
                    s.id.clone(),
                    (s.parent_key.clone(), s.spawn_depth),
                    Target::Existing(s.sid),
                    delete,
                )
            }
            SubmitTarget::New(n) => (
                n.kind.clone(),
                n.agent_id.clone(),
                n.key.clone(),
                n.id.clone(),
                (n.parent_key.clone(), n.spawn_depth),
                Target::New(n),
                req.delete_after,
            ),
        };
        let backend_known = self.backends.contains_key(&agent_id);
        if !backend_known {
            return Err(RpcError::not_found(format!(
                "agent \"{agent_id}\" is not configured; `openclaw agents list` shows the agents there are"
            )));
        }
        let lane = lane_for_kind(&kind);
        let sid_now = match &target {
            Target::Existing(sid) => Some(*sid),
            Target::New(_) => None,
        };
        let run_id = uuid::Uuid::new_v4().to_string();
        let result = (req.make_result)(&run_id, &session_key, &session_id);
        let input = match &req.message.content {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        };
        let mut message = req.message;
        message.run_id = Some(run_id.clone());
        let submit = Submit {
            target,
            message,
            run: NewRun {
                id: run_id.clone(),
                lane: lane.to_string(),
                timeout_ms: req.run_timeout.map(|t| t.as_millis() as i64),
            },
            idempotency: req.idempotency_key.map(|k| {
                (
                    format!("{}:{k}", req.method),
                    req.method.to_string(),
                    result.clone(),
                )
            }),
        };
        let (ticket, committed) = {
            let mut st = self.state();
            // Checked under the lock that takes the ticket, counting submits still being
            // committed, so concurrent callers cannot overshoot the limits together.
            let max_lane = self.config.limits.max_queued_runs;
            if st.lanes.queued(lane) as usize >= max_lane {
                return Err(RpcError::busy(
                    format!("the {lane} lane has {max_lane} runs waiting; retry later"),
                    1000,
                ));
            }
            let waiting = sid_now
                .and_then(|sid| st.sessions.get(&sid))
                .map_or(0, |q| q.waiting.len())
                + st.tickets
                    .get(&session_key)
                    .map_or(0, |t| (t.issued - t.next) as usize);
            let max = self.config.limits.max_queued_per_session;
            if waiting >= max {
                return Err(RpcError::busy(
                    format!(
                        "session {session_key} already has {max} messages queued; retry when its runs have caught up"
                    ),
                    500,
                ));
            }
            let committed = self.store.submit(submit).map_err(internal)?;
            st.lanes.add_queued(lane);
            // Registered before the caller hears of the run, so a wait always finds it.
            register_run(&mut st, &run_id, &session_key);
            let tickets = st.tickets.entry(session_key.clone()).or_default();
            tickets.issued += 1;
            (tickets.issued - 1, committed)
        };
        let outcome = committed.await;
        let turn = match &outcome {
            Ok(SubmitOutcome::Created { sid }) => Some(Turn {
                run_id: run_id.clone(),
                sid: *sid,
                session_key: session_key.clone(),
                session_id: session_id.clone(),
                agent_id,
                lane,
                input,
                timeout: req.run_timeout,
                delete_after,
                event_seq: Arc::default(),
                parent_key,
                spawn_depth,
            }),
            _ => None,
        };
        self.release_ticket(&session_key, ticket, turn, &run_id, lane);
        match outcome.map_err(internal)? {
            SubmitOutcome::Existing(v) => Ok(Submitted::Existing(v)),
            SubmitOutcome::Created { .. } => Ok(Submitted::New(result)),
        }
    }

    /// Marks a ticket committed and queues, in ticket order, every turn no longer waiting for
    /// an earlier one.
    fn release_ticket(
        self: &Arc<Self>,
        session_key: &str,
        ticket: u64,
        turn: Option<Turn>,
        run_id: &str,
        lane: &'static str,
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
            .lifecycle(|| serde_json::json!({ "phase": "queued" }));
        let queue = st.sessions.entry(turn.sid).or_default();
        if queue.active.is_none() {
            queue.active = Some(turn.run_id.clone());
            self.admit(st, turn);
        } else {
            queue.waiting.push_back(turn);
        }
    }

    fn run_events(&self, turn: &Turn) -> RunEvents {
        RunEvents::new(
            self.bus.clone(),
            self.store.clone(),
            turn.sid,
            &turn.session_key,
            &turn.run_id,
            turn.event_seq.clone(),
        )
    }

    /// The turn is next in its session: it runs now if its lane has room, else waits there.
    fn admit(self: &Arc<Self>, st: &mut State, turn: Turn) {
        if let Some(turn) = st.lanes.admit(turn.lane, turn) {
            self.start(st, turn);
        }
    }

    fn start(self: &Arc<Self>, st: &mut State, turn: Turn) {
        // Stopping: a turn that has not started stays queued in the store, for the next start.
        if self.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        let Some(live) = st.runs.get_mut(&turn.run_id) else {
            return;
        };
        live.running = true;
        let (stop, reason) = (live.stop.clone(), live.reason.clone());
        let token = st.tokens.issue(Acting {
            run_id: turn.run_id.clone(),
            sid: turn.sid,
            session_key: turn.session_key.clone(),
            agent_id: turn.agent_id.clone(),
            spawn_depth: turn.spawn_depth,
        });
        let engine = self.clone();
        self.tasks
            .spawn(async move { engine.drive(turn, token, stop, reason).await });
    }

    /// One admitted run, from its start to its stored end.
    async fn drive(
        self: Arc<Self>,
        turn: Turn,
        token: Result<String, tokens::RandomFailed>,
        stop: CancellationToken,
        reason: Arc<AtomicU8>,
    ) {
        let started_ms = now_ms();
        let started = Instant::now();
        self.store.run_started(&turn.run_id, turn.sid, started_ms);
        let events = self.run_events(&turn);
        events.lifecycle(|| serde_json::json!({ "phase": "started" }));

        let backend = self.backends.get(&turn.agent_id).cloned();
        let result = match (backend, token) {
            (_, Err(e)) => Err(TurnError::Failed(format!(
                "cannot issue the run's token: {e}"
            ))),
            (None, _) => Err(TurnError::Failed(format!(
                "agent \"{}\" is no longer configured; add it back to config.toml",
                turn.agent_id
            ))),
            (Some(backend), Ok(run_token)) => {
                let input = TurnInput {
                    run_token,
                    session_key: turn.session_key.clone(),
                    session_id: turn.session_id.clone(),
                    run_id: turn.run_id.clone(),
                    message: turn.input.clone(),
                    workspace: self.workspace(&turn.session_id),
                };
                let run = backend.run_turn(input, events, stop.clone());
                tokio::pin!(run);
                match turn.timeout {
                    Some(limit) => tokio::select! {
                        r = &mut run => r,
                        _ = tokio::time::sleep(limit) => {
                            let _ = reason.compare_exchange(0, StopReason::Timeout as u8, Ordering::Relaxed, Ordering::Relaxed);
                            stop.cancel();
                            run.await
                        }
                    },
                    None => run.await,
                }
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

    /// Stores a run's end, wakes its waiters, and starts the session's next turn.
    async fn finish(
        self: &Arc<Self>,
        turn: &Turn,
        outcome: RunOutcome,
        runtime_ms: Option<i64>,
        tokens: Option<i64>,
    ) {
        // The run's processes are gone: its token dies with it.
        self.state().tokens.revoke(&turn.run_id);
        let ts = now_ms();
        let message = match (&outcome.status, &outcome.reply, &outcome.error) {
            (RunStatus::Ok, Some(reply), _) => Some(NewMessage {
                ts,
                role: Role::Assistant,
                content: Value::String(reply.clone()),
                run_id: Some(turn.run_id.clone()),
                provenance: ProvenanceKind::Agent,
                from: None,
                usage: tokens.map(|t| serde_json::json!({ "totalTokens": t })),
            }),
            (status, _, error) => Some(NewMessage {
                ts,
                role: Role::System,
                content: Value::String(format!(
                    "run {} ended {}{}",
                    turn.run_id,
                    status.as_str(),
                    error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )),
                run_id: Some(turn.run_id.clone()),
                provenance: ProvenanceKind::Agent,
                from: None,
                usage: None,
            }),
        };
        let finished = FinishedRun {
            run_id: turn.run_id.clone(),
            sid: turn.sid,
            status: outcome.status,
            reply: message,
            reply_text: outcome.reply.clone(),
            error: outcome.error.clone(),
            ended_at: ts,
            runtime_ms,
            tokens,
        };
        if let Err(e) = self.store.run_finished(finished).await {
            tracing::error!(run_id = %turn.run_id, "storing the end of a run failed: {e}");
        }
        // Before waiters wake, so a parent waiting on its child finds the announce in place.
        if let Some(parent) = &turn.parent_key {
            self.announce(turn, parent, &outcome, runtime_ms, tokens)
                .await;
        }
        self.archive_wake.notify_one();
        // After the reply is stored (and published), before waiters wake: a follower sees the
        // reply, then `ended`; a streaming `send` has every event before its result.
        let events = self.run_events(turn);
        events.lifecycle(|| {
            let mut data = serde_json::json!({ "phase": "ended", "status": outcome.status });
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
            let next = st.sessions.get_mut(&turn.sid).and_then(|q| {
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
                    st.sessions.remove(&turn.sid);
                    // A send acknowledged but not yet queued keeps the session alive.
                    !st.tickets.contains_key(&turn.session_key)
                }
            }
        };
        self.give_back_memory_when_idle();
        if session_done && turn.delete_after {
            match self.store.delete_session(turn.sid).await {
                Ok(()) => {
                    let _ = tokio::fs::remove_dir_all(self.workspace(&turn.session_id)).await;
                }
                Err(e) => {
                    tracing::error!(session = %turn.session_key, "cleanup delete failed: {e}");
                }
            }
        }
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

    /// Archives sub-agent sessions `subagents.archive_after_minutes` after their last run
    /// ended. Sleeps until the next one falls due (or, with none pending, until a run ends).
    pub async fn run_archiver(self: Arc<Self>, shutdown: CancellationToken) {
        let ttl = (self.config.subagents.archive_after_minutes.min(1 << 30) as i64) * 60_000;
        loop {
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

    /// Who a run token speaks for, if it belongs to a run of this daemon that is active.
    pub fn check_token(&self, token: &str) -> Option<Acting> {
        self.state().tokens.check(token)
    }

    pub fn token_alive(&self, run_id: &str) -> bool {
        self.state().tokens.is_live(run_id)
    }

    /// The key of the session a run belongs to.
    pub async fn run_session_key(&self, run_id: &str) -> Result<Option<String>, RpcError> {
        if let Some(r) = self.state().runs.get(run_id) {
            return Ok(Some(r.session_key.clone()));
        }
        Ok(self
            .store
            .run(run_id.to_string())
            .await
            .map_err(internal)?
            .map(|r| r.session_key))
    }

    pub fn lane_status(&self) -> Vec<crate::protocol::LaneStatus> {
        self.state().lanes.status()
    }

    /// Waits for a run to end, up to `timeout`. Zero means: report where it is now.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<RunResult, RpcError> {
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

    /// The run a session is executing or is about to (admitted, waiting for a lane).
    pub fn active_run(&self, sid: i64) -> Option<String> {
        self.state()
            .sessions
            .get(&sid)
            .and_then(|q| q.active.clone())
    }

    /// Waits for the session's active run; with none, reports its last run.
    pub async fn wait_session(
        &self,
        session: &SessionRecord,
        timeout: Duration,
    ) -> Result<RunResult, RpcError> {
        if let Some(run_id) = self.active_run(session.sid) {
            return self.wait(&run_id, timeout).await;
        }
        match self
            .store
            .last_run_id(session.sid)
            .await
            .map_err(internal)?
        {
            Some(run_id) => self.wait(&run_id, timeout).await,
            None => Err(RpcError::not_found(format!(
                "session {} has no runs yet",
                session.key
            ))),
        }
    }

    async fn stored_result(&self, run_id: &str) -> Result<RunResult, RpcError> {
        let rec = self
            .store
            .run(run_id.to_string())
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                RpcError::not_found(format!(
                    "no run \"{run_id}\" (it may belong to a session that was deleted)"
                ))
            })?;
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
    ) -> Result<KillResult, RpcError> {
        // The active run is either executing (stop it and wait for its end) or still waiting
        // for a lane slot (take it out and end it here).
        let (active, unstarted, cleared) = {
            let mut st = self.state();
            let (active, cleared) = match st.sessions.get_mut(&session.sid) {
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
                    let lane = lane_for_kind(&session.kind);
                    unstarted = st.lanes.remove_ready(lane, |t| t.run_id == id);
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
        if let Err(e) = self.store.run_finished(finished).await {
            tracing::error!(run_id = %turn.run_id, "storing a cleared run failed: {e}");
        }
        if let Some(live) = self.state().runs.remove(&turn.run_id) {
            live.done.send_replace(Some(outcome));
        }
    }

    /// True while the session has a run active or queued, or a message being committed.
    pub fn is_busy(&self, session: &SessionRecord) -> bool {
        let st = self.state();
        st.sessions.contains_key(&session.sid) || st.tickets.contains_key(&session.key)
    }

    /// Stops every run (recorded as `interrupted`; queued ones stay queued for the next start)
    /// and waits for them, then closes the store.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
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
        self.store.close().await;
    }
}

/// Makes a run known to waiters and to kill, before it is queued.
fn register_run(st: &mut State, run_id: &str, session_key: &str) {
    st.runs.insert(
        run_id.to_string(),
        LiveRun {
            session_key: session_key.to_string(),
            running: false,
            stop: CancellationToken::new(),
            reason: Arc::new(AtomicU8::new(StopReason::None as u8)),
            done: watch::channel(None).0,
        },
    );
}

fn stopped_outcome(reason: StopReason, timeout: Option<Duration>) -> RunOutcome {
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

fn result_of(run_id: &str, session_key: &str, outcome: RunOutcome) -> RunResult {
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

pub fn internal(e: StoreError) -> RpcError {
    tracing::error!("store: {e}");
    RpcError::internal(format!("the daemon's store failed: {e}"))
}
