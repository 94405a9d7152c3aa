//! The durable store: SQLite in WAL mode. One writer thread applies every change and commits
//! them in groups (one transaction and one sync per group, however many callers are waiting);
//! reads go through a small pool of read-only connections on the blocking thread pool.

pub mod pairing;
mod queries;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::protocol::{RunStatus, SessionRow};
use crate::timefmt::rfc3339_ms;
use rusqlite::{Connection, OpenFlags};

use crate::daemon::events::EventBus;

pub use queries::{HistoryPage, ListFilter, ListPage, Scope};
pub use writer::{FinishedRun, NewMessage, NewRun, NewSession, Submit, SubmitOutcome, Target};

pub const DB_FILE: &str = "openclaw.db";
const READERS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migration(#[from] schema::MigrationError),
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the store's writer has stopped (the daemon is shutting down)")]
    WriterGone,
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub sid: i64,
    pub id: String,
    pub key: String,
    pub agent_id: String,
    pub kind: String,
    pub label: Option<String>,
    pub parent_key: Option<String>,
    pub model: Option<String>,
    pub status: String,
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
    pub send_policy: Option<String>,
    pub cleanup: String,
    pub spawn_depth: i64,
    /// The paired device that created it; `None` for the daemon's owner.
    pub owner: Option<String>,
    pub children: i64,
}

impl SessionRecord {
    pub fn to_row(&self) -> SessionRow {
        SessionRow {
            key: self.key.clone(),
            session_id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            kind: self.kind.clone(),
            label: self.label.clone(),
            parent_key: self.parent_key.clone(),
            status: self.status.clone(),
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
            send_policy: self.send_policy.clone(),
            spawn_depth: self.spawn_depth.max(0) as u32,
            children: self.children.max(0) as u64,
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
    pub lane: String,
    pub input: String,
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
    /// For rare administrative writes (pairing), outside the group-commit writer.
    admin: Arc<std::sync::Mutex<Connection>>,
    readers: Arc<Vec<std::sync::Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating and migrating) the store in `data_dir`, repairs what a crash left, and
    /// starts the writer thread.
    pub fn open(data_dir: &Path, bus: EventBus) -> Result<(Store, Recovery), StoreError> {
        let path = data_dir.join(DB_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        // Created 0600 before SQLite opens it: the WAL and shared-memory files take the
        // database file's mode, so the whole store stays private to its owner.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| {
                    StoreError::Corrupt(format!("cannot create {}: {e}", path.display()))
                })?;
        }
        let mut conn = Connection::open(&path).map_err(open_err)?;
        configure(&conn)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "journal_mode is {mode}, WAL was asked for"
            )));
        }
        // FULL: every commit syncs the WAL, so an acknowledged write survives power loss too;
        // group commit keeps that to one sync per batch.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Each change runs in a savepoint; its statement journal in memory rather than a temp
        // file is most of the writer's throughput under load.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        schema::migrate(&mut conn)?;
        let recovery = writer::recover(&mut conn)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?;
            configure(&r)?;
            readers.push(std::sync::Mutex::new(r));
        }
        let admin = Connection::open(&path).map_err(open_err)?;
        configure(&admin)?;
        let store = Store {
            admin: Arc::new(std::sync::Mutex::new(admin)),
            writer: writer::spawn(conn, bus),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
        };
        Ok((store, recovery))
    }

    /// Runs `f` on a read connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i].lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
    }

    /// Runs `f` on the administrative connection (it may write) on the blocking pool.
    pub async fn admin<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static + From<StoreError>,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = admin.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(StoreError::Corrupt(format!("store task failed: {e}"))))?
    }

    // ------------------------------------------------------------ writes

    /// Queues a new message and its run (and the session, when new) for commit. The commit
    /// order, and so the message's seq, is fixed when this returns; the future resolves once
    /// the change is durable.
    pub fn submit(
        &self,
        submit: Submit,
    ) -> Result<impl Future<Output = Result<SubmitOutcome, StoreError>> + use<>, StoreError> {
        self.writer.submit(submit)
    }

    /// Appends a message produced during a run (a tool call or result). Not awaited; stored
    /// in order with the run's other changes.
    pub fn append(&self, sid: i64, message: NewMessage) {
        self.writer.append(sid, message);
    }

    /// Records that a run started. Not awaited: the writer applies changes in order, so the
    /// run's end (which is awaited) is always stored after it.
    pub fn run_started(&self, run_id: &str, sid: i64, at: i64) {
        self.writer.run_started(run_id, sid, at);
    }

    /// Commits a run's end and its reply message; returns the reply's seq.
    pub async fn run_finished(&self, finished: FinishedRun) -> Result<Option<u64>, StoreError> {
        self.writer.run_finished(finished).await
    }

    pub async fn patch_session(
        &self,
        sid: i64,
        label: Option<Option<String>>,
        archived: Option<bool>,
        send_policy: Option<Option<String>>,
    ) -> Result<(), StoreError> {
        self.writer.patch(sid, label, archived, send_policy).await
    }

    pub async fn delete_session(&self, sid: i64) -> Result<(), StoreError> {
        self.writer.delete(sid).await
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
        self.read(move |c| queries::session_where(c, "key", &key))
            .await
    }

    pub async fn session_by_id(&self, id: String) -> Result<Option<SessionRecord>, StoreError> {
        self.read(move |c| queries::session_where(c, "id", &id))
            .await
    }

    pub async fn session_by_sid(&self, sid: i64) -> Result<Option<SessionRecord>, StoreError> {
        self.read(move |c| queries::session_by_sid(c, sid)).await
    }

    pub async fn run(&self, run_id: String) -> Result<Option<RunRecord>, StoreError> {
        self.read(move |c| queries::run(c, &run_id)).await
    }

    pub async fn history(
        &self,
        sid: i64,
        limit: u32,
        before_seq: Option<u64>,
        include_tools: bool,
    ) -> Result<HistoryPage, StoreError> {
        self.read(move |c| queries::history(c, sid, limit, before_seq, include_tools))
            .await
    }

    pub async fn messages_after(
        &self,
        sid: i64,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<crate::protocol::Message>, StoreError> {
        self.read(move |c| queries::messages_after(c, sid, after_seq, limit))
            .await
    }

    pub async fn in_tree(&self, root: String, key: String) -> Result<bool, StoreError> {
        self.read(move |c| queries::in_tree(c, &root, &key)).await
    }

    pub async fn last_tool_output(
        &self,
        sid: i64,
        run_id: String,
    ) -> Result<Option<String>, StoreError> {
        self.read(move |c| queries::last_tool_output(c, sid, &run_id))
            .await
    }

    pub async fn oldest_archivable(&self) -> Result<Option<i64>, StoreError> {
        self.read(queries::oldest_archivable).await
    }

    /// Appends a message and resolves once it is durable.
    pub async fn append_durable(&self, sid: i64, message: NewMessage) -> Result<(), StoreError> {
        self.writer.append_durable(sid, message).await
    }

    /// Archives the sub-agent sessions whose last run ended before `before_ms`.
    pub async fn archive_ended_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.writer.archive_ended_before(before_ms).await
    }

    pub async fn last_run_id(&self, sid: i64) -> Result<Option<String>, StoreError> {
        self.read(move |c| queries::last_run_id(c, sid)).await
    }

    pub async fn last_seq(&self, sid: i64) -> Result<Option<u64>, StoreError> {
        self.read(move |c| queries::last_seq(c, sid)).await
    }

    pub async fn list(&self, filter: ListFilter) -> Result<ListPage, StoreError> {
        self.read(move |c| queries::list(c, &filter)).await
    }
}
