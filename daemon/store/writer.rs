//! The single writer: applies changes in arrival order and commits them in groups. Whatever is
//! waiting when a commit starts joins it, so N concurrent callers cost one sync, not N. Each
//! change runs in its own savepoint, so one that fails does not undo the others in its group;
//! its caller hears the outcome only once the group's commit is known.
//!
//! Checkpoints are the writer's too, and never on a commit's path: SQLite's own
//! auto-checkpoint (run inside the commit that crosses its threshold, holding that group's
//! callers) is off, and the writer checkpoints (PASSIVE) between groups, once every caller of
//! the last group has its answer and the WAL has passed `CHECKPOINT_PAGES`, so a sustained
//! load cannot grow the WAL without bound either.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::StoreError;
use super::queries;
use crate::daemon::events::{Event, EventBus};
use crate::protocol::{Message, Provenance};
use crate::timefmt::rfc3339_ms;

/// Most changes applied in one transaction; bounds the latency of the first caller in a group.
const MAX_GROUP: usize = 4096;
/// WAL pages (frames) after which the writer checkpoints between groups: SQLite's default
/// auto-checkpoint threshold, ~4 MiB of WAL.
const CHECKPOINT_PAGES: i64 = 1000;

/// One change, applied by the writer thread inside a savepoint of the group's transaction.
trait Change: Send {
    /// Applies the change; false when it failed (its savepoint is then rolled back).
    fn apply(&mut self, c: &Connection, emit: &mut Emit) -> bool;
    /// The change was applied but could not be kept (its savepoint did not release).
    fn abandon(&mut self, e: StoreError);
    /// Tells the caller how it went, once the group's commit is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// A change built from a closure, answering through a channel (or a log line).
struct Typed<T, F> {
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: Reply<T>,
    path: Arc<PathBuf>,
}

enum Reply<T> {
    To(oneshot::Sender<Result<T, StoreError>>),
    /// Nobody waits: a failure is logged, naming what failed.
    Log(&'static str),
}

impl<T, F> Change for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Connection, &mut Emit) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, c: &Connection, emit: &mut Emit) -> bool {
        let Some(f) = self.f.take() else { return false };
        let r = f(c, emit).map_err(|e| e.at(&self.path));
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn abandon(&mut self, e: StoreError) {
        self.result = Some(Err(e.at(&self.path)));
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let outcome = match (commit, self.result) {
            (Err(e), _) => Err(e.at(&self.path)),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::WriterGone),
        };
        match self.reply {
            Reply::To(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Log(what) => {
                if let Err(e) = outcome {
                    tracing::warn!("{what} failed: {e}");
                }
            }
        }
    }
}

enum Op {
    Change(Box<dyn Change>),
    /// Answered once every change queued before it is committed (and published).
    Barrier(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// Counters of the writer's work: `changes` applied in `commits` transactions.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub changes: AtomicU64,
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Op>,
    pub stats: Arc<WriterStats>,
    path: Arc<PathBuf>,
}

pub fn spawn(mut conn: Connection, bus: EventBus, path: &Path) -> std::io::Result<WriterHandle> {
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(WriterStats::default());
    let thread_stats = stats.clone();
    // The WAL's length after each commit, from SQLite's WAL hook (which also replaces its
    // auto-checkpoint on this connection).
    let wal_pages = Arc::new(AtomicI64::new(0));
    let hook_pages = wal_pages.clone();
    conn.wal_hook(Some(
        move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
            hook_pages.store(i64::from(pages), Ordering::Relaxed);
            Ok(())
        },
    ))
    .map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, rx, &thread_stats, &bus, &wal_pages))?;
    Ok(WriterHandle {
        tx,
        stats,
        path: Arc::new(path.to_path_buf()),
    })
}

impl WriterHandle {
    /// Queues a change now, so its place in the commit order is fixed when this returns; the
    /// future resolves once it is committed (or failed).
    pub fn change<T, F>(&self, f: F) -> impl Future<Output = Result<T, StoreError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Emit) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(f, Reply::To(tx));
        async move {
            if !sent {
                return Err(StoreError::WriterGone);
            }
            rx.await.map_err(|_| StoreError::WriterGone)?
        }
    }

    /// Queues a change nobody waits for; a failure is logged as "`what` failed".
    pub fn change_unawaited<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&Connection, &mut Emit) -> Result<(), StoreError> + Send + 'static,
    {
        if !self.send(f, Reply::Log(what)) {
            tracing::warn!("{what} failed: the store's writer has stopped");
        }
    }

    fn send<T, F>(&self, f: F, reply: Reply<T>) -> bool
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Emit) -> Result<T, StoreError> + Send + 'static,
    {
        let change = Typed {
            f: Some(f),
            result: None,
            reply,
            path: self.path.clone(),
        };
        self.tx.send(Op::Change(Box::new(change))).is_ok()
    }

    pub async fn barrier(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Barrier(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn run(
    mut conn: Connection,
    rx: mpsc::Receiver<Op>,
    stats: &WriterStats,
    bus: &EventBus,
    wal_pages: &AtomicI64,
) {
    let mut group: Vec<Op> = Vec::with_capacity(64);
    // The WAL length at which to try again after a checkpoint a reader held short.
    let mut checkpoint_at = CHECKPOINT_PAGES;
    loop {
        let Ok(first) = rx.recv() else { return };
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let mut changes = Vec::with_capacity(group.len());
        let mut waiters = Vec::new();
        let mut closing = None;
        for op in group.drain(..) {
            match op {
                Op::Change(c) => changes.push(c),
                Op::Barrier(tx) => waiters.push(tx),
                Op::Close(tx) => closing = Some(tx),
            }
        }
        if !changes.is_empty() {
            stats
                .changes
                .fetch_add(changes.len() as u64, Ordering::Relaxed);
            stats.commits.fetch_add(1, Ordering::Relaxed);
            let (commit, events) = apply_group(&mut conn, &mut changes, bus.has_listeners());
            // Published after the commit, in commit order: a listener never sees what a crash
            // could still take back, and sees each session's messages in seq order.
            for event in events {
                bus.publish(event);
            }
            for change in changes {
                change.finish(commit.clone());
            }
        }
        for tx in waiters {
            let _ = tx.send(());
        }
        if let Some(tx) = closing {
            // Checkpoint so the next start opens a small WAL; failure here loses nothing.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            let _ = tx.send(());
            return;
        }
        let pages = wal_pages.load(Ordering::Relaxed);
        if pages >= checkpoint_at {
            checkpoint_at = checkpoint(&conn, pages);
        }
    }
}

/// A PASSIVE checkpoint between groups (it never waits for readers, and copies what no
/// reader still needs); returns the WAL length at which to try the next one. A failure loses
/// nothing: the WAL still holds every commit.
fn checkpoint(conn: &Connection, pages: i64) -> i64 {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    }) {
        // All of it copied: the next commit starts the WAL over, at its front.
        Ok((log, done)) if done >= log => CHECKPOINT_PAGES,
        // A reader still needs part of it: try again once the WAL has grown some more.
        Ok(_) => pages + CHECKPOINT_PAGES / 2,
        Err(e) => {
            tracing::debug!("checkpoint between commits failed: {e}");
            pages + CHECKPOINT_PAGES / 2
        }
    }
}

/// Applies a group in one transaction; returns the commit's outcome and the events of the
/// changes that were kept.
fn apply_group(
    conn: &mut Connection,
    changes: &mut [Box<dyn Change>],
    emit_events: bool,
) -> (Result<(), StoreError>, Vec<Event>) {
    let mut events = Vec::new();
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return (Err(StoreError::from(e)), events),
    };
    for change in changes.iter_mut() {
        let mut emit = Emit {
            on: emit_events,
            events: Vec::new(),
        };
        let kept = match tx.savepoint() {
            // Dropping the savepoint without commit rolls the change back.
            Ok(sp) => {
                change.apply(&sp, &mut emit)
                    && match sp.commit() {
                        Ok(()) => true,
                        Err(e) => {
                            change.abandon(e.into());
                            false
                        }
                    }
            }
            Err(e) => {
                change.abandon(StoreError::from(e));
                false
            }
        };
        if kept {
            events.append(&mut emit.events);
        }
    }
    match tx.commit() {
        Ok(()) => (Ok(()), events),
        Err(e) => (Err(StoreError::from(e)), Vec::new()),
    }
}

/// Collects the events of one change; they are published only if the change is kept.
pub struct Emit {
    on: bool,
    events: Vec<Event>,
}

impl Emit {
    /// Collects nothing (offline loading, tests).
    pub fn disabled() -> Emit {
        Emit {
            on: false,
            events: Vec::new(),
        }
    }

    pub fn session_changed(
        &mut self,
        c: &Connection,
        sid: i64,
        phase: &'static str,
    ) -> Result<(), StoreError> {
        if !self.on {
            return Ok(());
        }
        if let Some(rec) = queries::session_row(c, sid)? {
            self.events.push(Event::Changed {
                sid,
                session_key: rec.key.as_str().into(),
                phase,
                row: Some(Arc::new(rec.to_row())),
                shared: Default::default(),
            });
        }
        Ok(())
    }

    pub fn deleted(&mut self, sid: i64, key: &str) {
        if self.on {
            self.events.push(Event::Changed {
                sid,
                session_key: key.into(),
                phase: "delete",
                row: None,
                shared: Default::default(),
            });
        }
    }

    pub fn message(
        &mut self,
        c: &Connection,
        sid: i64,
        seq: u64,
        m: &super::NewMessage,
    ) -> Result<(), StoreError> {
        if !self.on {
            return Ok(());
        }
        let Some(rec) = queries::session_row(c, sid)? else {
            return Ok(());
        };
        let key: Arc<str> = rec.key.as_str().into();
        let message = Message {
            seq,
            ts: rfc3339_ms(m.ts),
            role: m.role,
            content: m.content.clone(),
            run_id: m.run_id.clone(),
            provenance: Provenance {
                kind: m.provenance,
                from: m.from.clone(),
            },
            usage: m.usage.clone(),
            truncated: None,
            bytes: None,
        };
        self.events.push(Event::Message {
            sid,
            session_key: key.clone(),
            message: Arc::new(message),
            shared: Default::default(),
        });
        self.events.push(Event::Changed {
            sid,
            session_key: key,
            phase: "message",
            row: Some(Arc::new(rec.to_row())),
            shared: Default::default(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (WriterHandle, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut conn = Connection::open(&path).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        (spawn(conn, EventBus::default(), &path).unwrap(), dir)
    }

    #[tokio::test]
    async fn everything_waiting_is_committed_in_one_group() {
        let (w, _dir) = writer();
        // Hold the writer busy until all 50 are queued behind it.
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let first = w.change(move |_, _| {
            let _ = gate_rx.recv();
            Ok(())
        });
        let rest: Vec<_> = (0..50)
            .map(|i| {
                w.change(move |c, _| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i])?;
                    Ok(i)
                })
            })
            .collect();
        gate_tx.send(()).unwrap();
        first.await.unwrap();
        for (i, r) in rest.into_iter().enumerate() {
            assert_eq!(r.await.unwrap(), i as i32);
        }
        // The 50 queued behind the holder: they share one commit (the holder's own, if they
        // were queued before the writer woke for it).
        let commits = w.stats.commits.load(Ordering::Relaxed);
        assert!(
            (1..=2).contains(&commits),
            "{commits} commits for 51 changes"
        );
        assert_eq!(w.stats.changes.load(Ordering::Relaxed), 51);
        w.close().await;
    }

    #[tokio::test]
    async fn a_failing_change_does_not_undo_its_group() {
        let (w, dir) = writer();
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let hold = w.change(move |_, _| {
            let _ = gate_rx.recv();
            Ok(())
        });
        let ok = w.change(|c, _| Ok(c.execute("INSERT INTO t (v) VALUES (1)", [])?));
        // The unique constraint refuses the same value again, after the insert of its own.
        let bad = w.change(|c, _| {
            c.execute("INSERT INTO t (v) VALUES (2)", [])?;
            Ok(c.execute("INSERT INTO t (v) VALUES (1)", [])?)
        });
        gate_tx.send(()).unwrap();
        hold.await.unwrap();
        assert!(ok.await.is_ok());
        assert!(matches!(bad.await, Err(StoreError::Sqlite(_))));
        w.close().await;
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let values: Vec<i64> = conn
            .prepare("SELECT v FROM t ORDER BY v")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(values, [1], "the failed change was rolled back whole");
    }

    #[tokio::test]
    async fn the_writer_checkpoints_between_commits_so_the_wal_stops_growing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        // Off here too: only the writer's own checkpoints can keep the WAL short. No syncs,
        // to keep the test fast: what is measured is the WAL's length, not durability.
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = OFF;
             CREATE TABLE big (v BLOB)",
        )
        .unwrap();
        let w = spawn(conn, EventBus::default(), &path).unwrap();
        // About a page per change, one change per commit: 3 × the threshold in all.
        let changes = 3 * CHECKPOINT_PAGES as usize;
        let mut longest = 0;
        for _ in 0..changes {
            w.change(|c, _| Ok(c.execute("INSERT INTO big (v) VALUES (zeroblob(3000))", [])?))
                .await
                .unwrap();
            longest = longest.max(
                std::fs::metadata(dir.path().join("w.db-wal"))
                    .unwrap()
                    .len(),
            );
        }
        let frame = 4096 + 24;
        assert!(
            longest < 2 * CHECKPOINT_PAGES as u64 * frame,
            "the WAL reached {longest} bytes for {changes} one-page commits"
        );
        w.close().await;
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM big", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, changes as i64, "every commit is in the store");
    }

    #[tokio::test]
    async fn a_closed_writer_answers_writer_gone() {
        let (w, _dir) = writer();
        w.close().await;
        assert!(matches!(
            w.change(|_, _| Ok(())).await,
            Err(StoreError::WriterGone)
        ));
    }
}
