//! The durable store: SQLite in WAL mode. One writer thread applies every change and commits
//! them in groups (one transaction and one sync per group, however many callers are waiting);
//! reads go through a small pool of read-only connections on the blocking thread pool.

mod changes;
mod emit;
mod error;
mod fresh;
mod loader;
mod names;
pub mod pairing;
mod queries;
mod recovery;
mod schema;
mod sql_types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::config::PolicyAction;
use crate::daemon::events::EventBus;
use crate::protocol::{Cleanup, Lane, RunStatus, SessionKind, SessionRow, SessionStatus};
use crate::timefmt::rfc3339_ms;

pub use changes::{
    FinishedRun, NewMessage, NewRun, NewSession, Patch, Receipt, Submit, SubmitOutcome, Target,
};
pub use error::StoreError;
pub use loader::{LoadSession, Loader};
pub use pairing::PairingError;
pub use queries::{COUNT_CAP, HistoryPage, ListFilter, ListPage, Scope, stored_len, truncated};
pub use writer::Durability;

pub const DB_FILE: &str = "openclaw.db";
const READERS: usize = 2;
/// The writer's page cache, KiB: about the interior pages of every index at a million
/// sessions, so a lookup reads at most its leaf. Not more: SQLite walks the writer's whole
/// cache at the end of any commit in which a b-tree split swapped page numbers (it swaps
/// through the pending-byte page, far past the end of the file), which random session ids
/// make nearly every commit. A warm 256 MiB cache took ~70% more writer time per spawn
/// (100,000 sessions, 8 HTTP connections or one pipelined) than this one.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
/// Each reader's page cache, KiB.
const READER_CACHE_KIB: i64 = 32 * 1024;
/// What the WAL is cut back to when it starts over after a checkpoint. Above the writer's
/// checkpoint threshold (~4 MiB), so in steady state the WAL is rewritten in place (a sync of
/// data, not of a growing file's size) and only a burst's extra length is given back.
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;
/// Rows of a deleted session removed per commit.
const PURGE_CHUNK: i64 = 5000;

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub sid: i64,
    pub id: String,
    pub key: String,
    pub agent_id: String,
    pub kind: SessionKind,
    pub label: Option<String>,
    pub parent_key: Option<String>,
    pub model: Option<String>,
    pub status: SessionStatus,
    pub active_run_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub runtime_ms: Option<i64>,
    pub tokens: Option<i64>,
    pub message_count: i64,
    pub last_preview: Option<String>,
    pub archived: bool,
    /// The session's own override of the send policy; `None` inherits the configured rules.
    pub send_policy: Option<PolicyAction>,
    pub cleanup: Cleanup,
    pub spawn_depth: i64,
    /// The paired device that created it; `None` for the daemon's owner.
    pub owner: Option<String>,
    pub children: i64,
    /// The agent's own id for this session (ACP), to resume it in a new process.
    pub agent_session_id: Option<String>,
    /// `parent`: progress is relayed to the parent's subscribers.
    pub stream_to: Option<String>,
}

impl SessionRecord {
    pub fn to_row(&self) -> SessionRow {
        SessionRow {
            key: self.key.clone(),
            session_id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            kind: self.kind.as_str().to_string(),
            label: self.label.clone(),
            parent_key: self.parent_key.clone(),
            status: self.status.as_str().to_string(),
            active_run_id: self.active_run_id.clone(),
            model: self.model.clone(),
            created_at: rfc3339_ms(self.created_at),
            updated_at: rfc3339_ms(self.updated_at),
            started_at: self.started_at.map(rfc3339_ms),
            ended_at: self.ended_at.map(rfc3339_ms),
            runtime_ms: self.runtime_ms.map(|v| v.max(0) as u64),
            tokens: self.tokens.map(|v| v.max(0) as u64),
            message_count: self.message_count.max(0) as u64,
            last_message_preview: self.last_preview.clone(),
            archived: self.archived,
            send_policy: self
                .send_policy
                .map(|p| sql_types::policy_str(p).to_string()),
            spawn_depth: self.spawn_depth.max(0) as u32,
            children: self.children.max(0) as u64,
            agent_session_id: self.agent_session_id.clone(),
            messages: None,
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub session_key: String,
    pub status: RunStatus,
    pub reply: Option<String>,
    pub error: Option<String>,
}

/// A run that was acknowledged but had not started when the daemon last stopped.
#[derive(Debug, Clone)]
pub struct PendingRun {
    pub run_id: String,
    pub sid: i64,
    pub lane: Lane,
    /// The content of the message that starts it.
    pub content: Value,
    pub timeout_ms: Option<i64>,
}

/// What start-up found and repaired.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Runs that were running when the daemon died, now `interrupted`.
    pub interrupted: u64,
    /// Runs that were queued and never started: to be queued again.
    pub requeue: Vec<PendingRun>,
}

#[derive(Clone)]
pub struct Store {
    writer: writer::WriterHandle,
    readers: Arc<Vec<std::sync::Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    path: Arc<PathBuf>,
}

/// How long start-up waits for `PRAGMA quick_check` before it answers anyone: a small store is
/// checked whole within it; the check of a larger one goes on in the background (it would
/// otherwise cost every start a quarter second and fill a page cache with the whole file).
const QUICK_CHECK_AT_START: std::time::Duration = std::time::Duration::from_millis(5);

/// The check's own page cache, KiB: it reads every page once, so a big cache only costs memory.
const QUICK_CHECK_CACHE_KIB: i64 = 2 * 1024;

/// How far the start-up check got.
enum Checked {
    Whole,
    /// Interrupted at the time limit: to be finished in the background.
    Unfinished,
}

/// A read-only connection of its own for the check, with a small cache.
fn check_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::from(e).at(path))?;
    conn.pragma_update(None, "cache_size", -QUICK_CHECK_CACHE_KIB)
        .map_err(|e| StoreError::from(e).at(path))?;
    Ok(conn)
}

/// `PRAGMA quick_check`, for at most `limit` when one is given: a damaged store is refused
/// with a sentence, rather than failing call by call later.
fn quick_check(
    conn: &Connection,
    path: &Path,
    limit: Option<std::time::Duration>,
) -> Result<Checked, StoreError> {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let timer = limit.map(|limit| {
        let interrupt = conn.get_interrupt_handle();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
                interrupt.interrupt();
            }
        })
    });
    let result: rusqlite::Result<String> =
        conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0));
    drop(done);
    if let Some(timer) = timer {
        let _ = timer.join();
    }
    match result {
        Ok(ok) if ok == "ok" => Ok(Checked::Whole),
        Ok(problem) => Err(StoreError::Damaged {
            path: path.to_path_buf(),
            detail: problem,
        }),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
            Ok(Checked::Unfinished)
        }
        Err(e) => Err(StoreError::from(e).at(path)),
    }
}

/// The rest of a check that did not finish at start-up, on a thread of its own while the
/// daemon serves; damage found is logged as an error that says how to recover.
fn finish_check_in_background(path: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("store-check".into())
        .spawn(move || {
            // Reading the whole file must not slow the daemon's serving: lowest priority.
            // SAFETY: setpriority on this thread's own id, no memory is passed.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
            }
            let outcome = check_connection(&path).and_then(|c| quick_check(&c, &path, None));
            match outcome {
                Ok(_) => tracing::info!("{}: quick_check ok", path.display()),
                // Not the start-up refusal's sentence: this daemon is already using the file.
                Err(StoreError::Damaged { path, detail }) => tracing::error!(
                    "the store at {} is damaged ({detail}), found by the check that goes on after start-up; stop the daemon, keep a copy of the file (with its -wal and -shm files), and run `openclawd --check` to see what is damaged",
                    path.display()
                ),
                Err(e) => tracing::error!(
                    "{e}; stop the daemon, keep a copy of the file, and run `openclawd --check` to see what is damaged"
                ),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(
            "cannot check the store in the background ({e}); `openclawd --check` checks it whole"
        );
    }
}

/// The full `PRAGMA integrity_check` of the store in `data_dir` (read-only): "ok", or what is
/// wrong, one line each.
pub fn integrity_check(data_dir: &Path) -> Result<Vec<String>, StoreError> {
    let path = data_dir.join(DB_FILE);
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::from(e).at(&path))?;
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| StoreError::from(e).at(&path))?;
    let lines = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StoreError::from(e).at(&path))?;
    Ok(lines)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating and migrating) the store in `data_dir`, repairs what a crash left, and
    /// starts the writer thread.
    /// `leftovers` gives the processes a previous daemon left running, killed before this
    /// (by run id): the interrupted runs' transcripts say so. It is called only when the
    /// store is open and about to be repaired, so finding them (a sweep of every process on
    /// the host) can overlap opening it.
    pub fn open(
        data_dir: &Path,
        bus: EventBus,
        leftovers: impl FnOnce() -> std::collections::BTreeMap<Option<String>, Vec<i32>>,
    ) -> Result<(Store, Recovery), StoreError> {
        let path = data_dir.join(DB_FILE);
        let open_err = |e: rusqlite::Error| StoreError::from(e).at(&path);
        if fresh::is_new(&path) {
            fresh::build(&path)?;
        }
        // Created 0600 before SQLite opens it: the WAL and shared-memory files take the
        // database file's mode, so the whole store stays private to its owner.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| StoreError::Open {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
        }
        let mut conn = Connection::open(&path).map_err(open_err)?;
        configure(&conn).map_err(open_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path,
                detail: format!("journal_mode is {mode}, WAL was asked for"),
            });
        }
        // FULL: every commit syncs the WAL, so an acknowledged write survives power loss too;
        // group commit keeps that to one sync per batch.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        // Each change runs in a savepoint; its statement journal in memory rather than a temp
        // file is most of the writer's throughput under load.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(open_err)?;
        // Checkpoints are the writer thread's, between group commits (writer.rs), never
        // inside one.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(open_err)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(open_err)?;
        let checked = quick_check(&check_connection(&path)?, &path, Some(QUICK_CHECK_AT_START))?;
        schema::migrate(&mut conn).map_err(|e| StoreError::from(e).at(&path))?;
        let recovery = recovery::recover(&mut conn, &leftovers()).map_err(|e| e.at(&path))?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?;
            configure(&r).map_err(open_err)?;
            r.pragma_update(None, "cache_size", -READER_CACHE_KIB)
                .map_err(open_err)?;
            readers.push(std::sync::Mutex::new(r));
        }
        let writer = writer::spawn(conn, bus, &path).map_err(|e| StoreError::Open {
            path: path.clone(),
            detail: format!("cannot start the writer thread: {e}"),
        })?;
        if let Checked::Unfinished = checked {
            finish_check_in_background(path.clone());
        }
        let store = Store {
            writer,
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            path: Arc::new(path),
        };
        Ok((store, recovery))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a read connection on the blocking pool.
    async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static + From<StoreError>,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i].lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| E::from(StoreError::Corrupt(format!("a store read failed: {e}"))))?
    }

    async fn read_store<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let path = self.path.clone();
        self.read(f).await.map_err(|e: StoreError| e.at(&path))
    }

    // ------------------------------------------------------------ writes

    /// Queues a new message and its run (and the session, when new) for commit. The commit
    /// order, and so the message's seq, is fixed when this returns; the future resolves once
    /// the change is durable.
    pub fn submit(
        &self,
        submit: Submit,
    ) -> impl Future<Output = Result<SubmitOutcome, StoreError>> + use<> {
        self.writer
            .change(move |c, emit| changes::submit(c, &submit, emit))
    }

    /// Appends a message produced during a run (a tool call or result). Not awaited; stored
    /// in order with the run's other changes.
    pub fn append(&self, sid: i64, message: NewMessage) {
        self.writer
            .change_unawaited("storing a message of a run", move |c, emit| {
                let seq = changes::append_message(c, sid, &message)?;
                emit.message(c, sid, seq, &message)
            });
    }

    /// Appends a message and resolves once it is durable; returns its seq.
    pub async fn append_durable(&self, sid: i64, message: NewMessage) -> Result<u64, StoreError> {
        self.writer
            .change(move |c, emit| {
                let seq = changes::append_message(c, sid, &message)?;
                emit.message(c, sid, seq, &message)?;
                Ok(seq)
            })
            .await
    }

    /// Records that a run started. Not awaited: the writer applies changes in order, so the
    /// run's end (which is awaited) is always stored after it.
    pub fn run_started(&self, run_id: &str, sid: i64, at: i64) {
        let run_id = run_id.to_string();
        self.writer
            .change_unawaited("recording a run's start", move |c, emit| {
                changes::run_started(c, &run_id, sid, at, emit)
            });
    }

    /// Commits a run's end and its reply message; returns the reply's seq. `Durability::Soon`
    /// when nobody waits on the run: its end may then join the next commit.
    pub async fn run_finished(
        &self,
        finished: FinishedRun,
        durability: Durability,
    ) -> Result<Option<u64>, StoreError> {
        self.writer
            .change_with(durability, move |c, emit| {
                changes::run_finished(c, &finished, emit)
            })
            .await
    }

    pub async fn patch_session(&self, sid: i64, patch: Patch) -> Result<(), StoreError> {
        self.writer
            .change(move |c, emit| changes::patch(c, sid, &patch, emit))
            .await
    }

    /// Deletes a session; `Conflict` while one of its runs is unfinished. Its transcript is
    /// then removed in the background, a bounded chunk per commit.
    pub async fn delete_session(&self, sid: i64) -> Result<(), StoreError> {
        self.writer
            .change(move |c, emit| changes::delete(c, sid, emit))
            .await?;
        self.purge(sid);
        Ok(())
    }

    /// Removes a deleted session's rows, `PURGE_CHUNK` at a time, each step its own change so
    /// other writes go between.
    fn purge(&self, sid: i64) {
        let writer = self.writer.clone();
        tokio::spawn(async move {
            loop {
                match writer
                    .change(move |c, _| changes::purge_chunk(c, sid, PURGE_CHUNK))
                    .await
                {
                    Ok(true) => break,
                    Ok(false) => continue,
                    Err(e) => {
                        // Picked up again at the next start.
                        tracing::warn!(sid, "purging a deleted session paused: {e}");
                        break;
                    }
                }
            }
        });
    }

    /// Finishes the purges a previous daemon left unfinished.
    pub async fn resume_purges(&self) -> Result<(), StoreError> {
        for sid in self.read_store(queries::retired).await? {
            self.purge(sid);
        }
        Ok(())
    }

    /// Archives the sub-agent sessions whose last run ended before `before_ms`.
    pub async fn archive_ended_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.writer
            .change(move |c, emit| changes::archive(c, before_ms, emit))
            .await
    }

    /// A pairing change, through the one writer like every other write.
    pub async fn pairing<T, F>(&self, mut f: F) -> Result<T, PairingError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, PairingError> + Send + 'static,
    {
        // A store failure rolls the change back; a refusal (no such request...) has
        // written nothing worth undoing and is the caller's answer.
        let outcome = self
            .writer
            .change(move |c, _| match f(c) {
                Err(PairingError::Store(e)) => Err(e),
                other => Ok(other),
            })
            .await;
        outcome.map_err(PairingError::Store)?
    }

    /// A pairing read.
    pub async fn pairing_read<T, F>(&self, f: F) -> Result<T, PairingError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, PairingError> + Send + 'static,
    {
        self.read(f).await
    }

    /// (transactions committed, changes applied) since start-up.
    pub fn write_stats(&self) -> (u64, u64) {
        let s = &self.writer.stats;
        (
            s.commits.load(Ordering::Relaxed),
            s.changes.load(Ordering::Relaxed),
        )
    }

    /// Resolves once every change queued before this call is committed and its events are
    /// published: a new listener that waits here misses nothing committed after it listened.
    pub async fn barrier(&self) {
        self.writer.barrier().await;
    }

    /// Stops the writer after everything queued so far is committed.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    // ------------------------------------------------------------ reads

    pub async fn session_by_key(&self, key: String) -> Result<Option<SessionRecord>, StoreError> {
        self.read_store(move |c| queries::session_with_key(c, &key))
            .await
    }

    pub async fn session_by_id(&self, id: String) -> Result<Option<SessionRecord>, StoreError> {
        self.read_store(move |c| queries::session_with_id(c, &id))
            .await
    }

    pub async fn session_by_sid(&self, sid: i64) -> Result<Option<SessionRecord>, StoreError> {
        self.read_store(move |c| Ok(queries::session_row(c, sid)?))
            .await
    }

    /// Sessions whose key or id starts with `prefix`, or whose label is `label` (at most
    /// `limit`): what a short name could mean.
    pub async fn sessions_matching(
        &self,
        prefix: String,
        label: String,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.read_store(move |c| queries::sessions_matching(c, &prefix, &label, limit))
            .await
    }

    pub async fn run(&self, run_id: String) -> Result<Option<RunRecord>, StoreError> {
        self.read_store(move |c| queries::run(c, &run_id)).await
    }

    /// A page of history within `budget` bytes (see `queries::history`).
    pub async fn history(
        &self,
        sid: i64,
        limit: u32,
        before_seq: Option<u64>,
        include_tools: bool,
        budget: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.read_store(move |c| queries::history(c, sid, limit, before_seq, include_tools, budget))
            .await
    }

    /// Messages after a seq, within `budget` bytes; the flag says whether more were left.
    pub async fn messages_after(
        &self,
        sid: i64,
        after_seq: u64,
        limit: u32,
        budget: usize,
    ) -> Result<(Vec<crate::protocol::Message>, bool), StoreError> {
        self.read_store(move |c| queries::messages_after(c, sid, after_seq, limit, budget))
            .await
    }

    /// One message, whole.
    pub async fn message_at(
        &self,
        sid: i64,
        seq: u64,
    ) -> Result<Option<crate::protocol::Message>, StoreError> {
        self.read_store(move |c| queries::message_at(c, sid, seq))
            .await
    }

    pub async fn in_tree(&self, root: String, key: String) -> Result<bool, StoreError> {
        self.read_store(move |c| queries::in_tree(c, &root, &key))
            .await
    }

    pub async fn last_tool_output(
        &self,
        sid: i64,
        run_id: String,
    ) -> Result<Option<String>, StoreError> {
        self.read_store(move |c| queries::last_tool_output(c, sid, &run_id))
            .await
    }

    pub async fn oldest_archivable(&self) -> Result<Option<i64>, StoreError> {
        self.read_store(queries::oldest_archivable).await
    }

    pub async fn last_run_id(&self, sid: i64) -> Result<Option<String>, StoreError> {
        self.read_store(move |c| queries::last_run_id(c, sid)).await
    }

    pub async fn last_seq(&self, sid: i64) -> Result<Option<u64>, StoreError> {
        self.read_store(move |c| queries::last_seq(c, sid)).await
    }

    pub async fn list(&self, filter: ListFilter) -> Result<ListPage, StoreError> {
        self.read_store(move |c| queries::list(c, &filter)).await
    }
}
