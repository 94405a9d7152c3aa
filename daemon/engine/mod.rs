//! The session engine: submits turns (durably, before answering), runs one turn at a time per
//! session in FIFO order, caps concurrency with global lanes, stops runs on kill, timeout or
//! shutdown, and wakes waiters when a run ends (an event, never a poll). It knows nothing of
//! callers or policy: the session service decides who may do what, then asks the engine.
//!
//! - `submit.rs`: a message and its run committed, then queued in commit order;
//! - `run.rs`: one admitted run, from its start to its stored end (and the parent's announce);
//! - `control.rs`: waiting for runs, kill, shutdown, the archiver.

mod announce;
mod control;
mod keys;
mod lanes;
mod run;
mod submit;
mod tokens;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::daemon::backends::{Backend, RunEvents, RunProgress, RunTools, StreamedSoFar};
use crate::daemon::events::EventBus;
use crate::daemon::store::{SessionRecord, Store, StoreError};
use crate::protocol::{Lane, RunStatus};
pub use announce::ANNOUNCE_SKIP;
pub use keys::{agent_of_main, kind_of, named_key, normalize, subagent_key, task_key};
use lanes::Lanes;
pub use submit::{PreparedAttachment, SubmitRequest, SubmitTarget, Submitted};
pub use tokens::Acting;
use tokens::RunTokens;

/// How a run ended, as waiters see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub reply: Option<String>,
    pub error: Option<String>,
}

/// What the engine refuses, and why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("agent \"{0}\" is not configured; `openclaw agents list` shows the agents there are")]
    UnknownAgent(String),
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_ms: u64,
    },
    #[error("the daemon is shutting down; retry once it is back (`openclaw daemon start`)")]
    ShuttingDown,
    #[error("no run \"{0}\" (it may belong to a session that was deleted)")]
    NoRun(String),
    #[error("session {0} has no runs yet")]
    NoRuns(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    lane: Lane,
    /// The content of the message that starts the run.
    content: Value,
    model: Option<String>,
    thinking: Option<String>,
    timeout: Option<Duration>,
    delete_after: bool,
    /// Numbers this run's events and keeps the text it streams, for followers.
    progress: Arc<RunProgress>,
    /// The session that spawned this one: it hears how each run ended (announce).
    parent_key: Option<String>,
    spawn_depth: i64,
    /// The session's first run (its agent session, if named at spawn, must be loaded).
    first_run: bool,
    /// Progress is relayed to the parent's subscribers (`streamTo: "parent"`).
    relay_to_parent: bool,
}

struct LiveRun {
    session_key: String,
    running: bool,
    stop: CancellationToken,
    reason: Arc<AtomicU8>,
    done: watch::Sender<Option<RunOutcome>>,
    /// Set once the run has started.
    progress: Option<Arc<RunProgress>>,
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
    /// By session key, so a session being created is found before it has a row id.
    sessions: HashMap<String, SessionQueue>,
    lanes: Lanes<Turn>,
    /// By session key (a session being created has no row id yet).
    tickets: HashMap<String, Tickets>,
    /// Tokens of the runs executing now.
    tokens: RunTokens,
}

/// The configuration in force and the backends built from it. Replaced whole on reload;
/// a run keeps the backend it started with.
pub struct Settings {
    pub config: Arc<Config>,
    backends: HashMap<String, Arc<Backend>>,
}

impl Settings {
    pub fn new(config: Arc<Config>, socket: &std::path::Path) -> Settings {
        let grace = Duration::from_millis(config.limits.kill_grace_ms);
        let backends = config
            .all_agents()
            .into_iter()
            .map(|(id, agent)| {
                let backend = Backend::from_config(&id, &agent, socket, grace);
                (id, Arc::new(backend))
            })
            .collect();
        Settings { config, backends }
    }
}

/// What the session service gives each run: its session tools, acting as that run.
pub trait ToolHost: Send + Sync {
    fn tools_for(&self, run: &Acting) -> Arc<dyn RunTools>;
}

pub struct Engine {
    pub store: Store,
    pub bus: EventBus,
    settings: RwLock<Arc<Settings>>,
    socket: PathBuf,
    workspaces: PathBuf,
    state: Mutex<State>,
    tasks: TaskTracker,
    shutting_down: AtomicBool,
    /// Wakes the archiver when a run ends.
    archive_wake: tokio::sync::Notify,
    last_trim_ms: std::sync::atomic::AtomicI64,
    tool_host: RwLock<Option<Weak<dyn ToolHost>>>,
}

impl Engine {
    pub fn new(
        store: Store,
        bus: EventBus,
        config: Arc<Config>,
        data_dir: PathBuf,
        socket: PathBuf,
    ) -> Arc<Engine> {
        let settings = Settings::new(config, &socket);
        Arc::new(Engine {
            store,
            bus,
            state: Mutex::new(State {
                runs: HashMap::new(),
                sessions: HashMap::new(),
                lanes: Lanes::new(&settings.config.lanes),
                tickets: HashMap::new(),
                tokens: RunTokens::default(),
            }),
            settings: RwLock::new(Arc::new(settings)),
            socket,
            workspaces: data_dir.join("workspaces"),
            tasks: TaskTracker::new(),
            shutting_down: AtomicBool::new(false),
            archive_wake: tokio::sync::Notify::new(),
            last_trim_ms: Default::default(),
            tool_host: RwLock::new(None),
        })
    }

    /// Who runs get their session tools from (the session service, which sits above).
    pub fn set_tool_host(&self, host: Weak<dyn ToolHost>) {
        *self.tool_host.write().unwrap_or_else(|p| p.into_inner()) = Some(host);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.settings().config.clone()
    }

    /// Puts a new configuration in force for new runs; running ones keep theirs.
    pub fn reconfigure(self: &Arc<Self>, config: Arc<Config>) {
        let settings = Settings::new(config, &self.socket);
        self.state().lanes.set_caps(&settings.config.lanes);
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
        // Lanes with more room may start what waited.
        self.start_admissible();
    }

    pub fn default_agent(&self) -> String {
        self.config().default_agent_id().to_string()
    }

    pub fn has_agent(&self, id: &str) -> bool {
        self.settings().backends.contains_key(id)
    }

    fn backend(&self, id: &str) -> Option<Arc<Backend>> {
        self.settings().backends.get(id).cloned()
    }

    /// Whether an agent's backend uses the `thinking` setting.
    pub fn agent_uses_thinking(&self, id: &str) -> bool {
        self.backend(id).is_some_and(|b| b.uses_thinking())
    }

    pub fn workspace(&self, session_id: &str) -> PathBuf {
        self.workspaces.join(session_id)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Finds a session by key (normalized) or by id.
    pub async fn find_session(&self, key_or_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        if uuid::Uuid::parse_str(key_or_id).is_ok()
            && let Some(s) = self.store.session_by_id(key_or_id.to_string()).await?
        {
            return Ok(Some(s));
        }
        let key = normalize(key_or_id, &self.default_agent());
        self.store.session_by_key(key).await
    }

    fn run_events(&self, turn: &Turn) -> RunEvents {
        RunEvents::new(
            self.bus.clone(),
            self.store.clone(),
            turn.sid,
            &turn.session_key,
            &turn.run_id,
            turn.progress.clone(),
        )
    }

    /// Who a run token speaks for, if it belongs to a run of this daemon that is active.
    pub fn check_token(&self, token: &str) -> Option<Acting> {
        self.state().tokens.check(token)
    }

    /// Who a run acts as while it executes (for its in-process tools, and tests).
    pub fn acting(&self, run_id: &str) -> Option<Acting> {
        self.state().tokens.acting(run_id)
    }

    pub fn token_alive(&self, run_id: &str) -> bool {
        self.state().tokens.is_live(run_id)
    }

    pub fn lane_status(&self) -> Vec<crate::protocol::LaneStatus> {
        self.state().lanes.status()
    }

    /// (runs executing, runs queued) now.
    pub fn run_counts(&self) -> (u32, u32) {
        let st = self.state();
        let running = st.runs.values().filter(|r| r.running).count() as u32;
        (running, st.runs.len() as u32 - running)
    }

    /// The run a session is executing or is about to (admitted, waiting for a lane).
    pub fn active_run(&self, session_key: &str) -> Option<String> {
        self.state()
            .sessions
            .get(session_key)
            .and_then(|q| q.active.clone())
    }

    /// The assistant text a running run has streamed since its last stored assistant
    /// message; `None` when the run is not running.
    pub fn streamed_so_far(&self, run_id: &str) -> Option<StreamedSoFar> {
        let progress = self.state().runs.get(run_id)?.progress.clone()?;
        Some(progress.streamed_so_far())
    }

    /// The key of the session a run belongs to.
    pub async fn run_session_key(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        if let Some(r) = self.state().runs.get(run_id) {
            return Ok(Some(r.session_key.clone()));
        }
        Ok(self
            .store
            .run(run_id.to_string())
            .await?
            .map(|r| r.session_key))
    }

    /// True while the session has a run active or queued, or a message being committed.
    pub fn is_busy(&self, session: &SessionRecord) -> bool {
        let st = self.state();
        st.sessions.contains_key(&session.key) || st.tickets.contains_key(&session.key)
    }

    /// Whether a run is known to the engine now (queued or running).
    pub fn is_live(&self, run_id: &str) -> bool {
        self.state().runs.contains_key(run_id)
    }
}

/// The text a backend gets for a message: a string as is; typed blocks by their text.
pub fn input_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}
