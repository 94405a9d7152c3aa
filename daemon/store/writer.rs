//! The single writer: applies changes in arrival order and commits them in groups. Whatever is
//! waiting when a commit starts joins it, so N concurrent callers cost one sync, not N. A
//! change that fails does not undo the others in its group, and its caller hears the outcome
//! only once the group's commit is durable.
//!
//! Most failures are refusals found before anything is written (no such session, a
//! conflict), so a group is applied as it is, with no savepoint per change: a savepoint costs
//! a statement journal of every page the change touches, which at a dozen changes per commit
//! was about 7% of the writer's time. Only when a change fails after it has written (SQLite's
//! count of changed rows moved) is the group rolled back and applied again, each change in
//! a savepoint of its own, so the failed one is undone alone. Changes are therefore
//! closures that can run twice; only the run that is committed is answered and published.
//!
//! A change says how soon it must be durable. Most must be at once: a client is waiting for
//! its answer. A run's own bookkeeping (its start, the messages it stores, its end when
//! nobody waits on it) may wait: the writer holds such a change, unapplied, until the next
//! change that must be durable at once arrives, and applies both in one transaction, or
//! applies it by itself once about one commit's time has passed with nothing else to commit.
//! So a client spawning in a loop shares one commit, and one sync, with the previous run's
//! bookkeeping instead of queueing behind a commit of it; and the pages both touch (the
//! session's row and indexes) are written once. Order is kept: held changes are applied
//! before anything queued after them.
//!
//! Checkpoints are the writer's too, and never on a commit's path: SQLite's own
//! auto-checkpoint (run inside the commit that crosses its threshold, holding that group's
//! callers) is off, and the writer checkpoints (PASSIVE) between groups, once every caller of
//! the last group has its answer and the WAL has passed `CHECKPOINT_PAGES`, so a sustained
//! load cannot grow the WAL without bound either.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::StoreError;
use super::emit::Emit;
use crate::daemon::events::{Event, EventBus};

/// Most changes applied in one transaction; bounds the latency of the first caller in a group.
const MAX_GROUP: usize = 4096;
/// WAL pages (frames) after which the writer checkpoints between groups: SQLite's default
/// auto-checkpoint threshold, ~4 MiB of WAL.
const CHECKPOINT_PAGES: i64 = 1000;
/// Bounds of how long a change that may wait is held for the next group: about one commit's
/// time (measured as the writer goes), so waiting at most doubles its latency.
const HOLD_MIN: Duration = Duration::from_micros(50);
const HOLD_MAX: Duration = Duration::from_millis(2);

/// How soon a change must be durable once it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced before the writer takes anything else: someone is waiting for it.
    Now,
    /// May be held to join the next group (at most about one commit's time): a run's own
    /// bookkeeping that nobody is waiting on.
    Soon,
}

/// One change, applied by the writer thread inside the group's transaction.
trait Change: Send {
    /// Applies the change; false when it failed. It may be applied a second time, after its
    /// group was rolled back: the last application's outcome is the one that counts.
    fn apply(&mut self, c: &Connection, emit: &mut Emit) -> bool;
    /// The change was applied but could not be kept (its savepoint did not release).
    fn abandon(&mut self, e: StoreError);
    /// Why its last application failed, if it did.
    fn error(&self) -> Option<StoreError>;
    /// Tells the caller how it went, once the group's commit is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
    fn durability(&self) -> Durability;
}

/// A change built from a closure, answering through a channel (or a log line).
struct Typed<T, F> {
    f: F,
    result: Option<Result<T, StoreError>>,
    reply: Reply<T>,
    durability: Durability,
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
    F: FnMut(&Connection, &mut Emit) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, c: &Connection, emit: &mut Emit) -> bool {
        let r = (self.f)(c, emit).map_err(|e| e.at(&self.path));
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn abandon(&mut self, e: StoreError) {
        self.result = Some(Err(e.at(&self.path)));
    }

    fn error(&self) -> Option<StoreError> {
        self.result.as_ref()?.as_ref().err().cloned()
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

    fn durability(&self) -> Durability {
        self.durability
    }
}

enum Op {
    Change(Box<dyn Change>),
    /// Answered once every change queued before it is committed (and published).
    Barrier(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// Counters of the writer's work: `changes` applied in `commits` transactions; `held`, the
/// changes that may wait and are waiting now.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub changes: AtomicU64,
    pub held: AtomicU64,
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Op>,
    pub stats: Arc<WriterStats>,
    path: Arc<PathBuf>,
}

pub fn spawn(conn: Connection, bus: EventBus, path: &Path) -> std::io::Result<WriterHandle> {
    spawn_holding(conn, bus, path, None)
}

/// `hold`: a fixed time to hold a change that may wait, instead of about one commit's time
/// (tests, which must not depend on how fast the disk is).
fn spawn_holding(
    mut conn: Connection,
    bus: EventBus,
    path: &Path,
    hold: Option<Duration>,
) -> std::io::Result<WriterHandle> {
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
    let mut writer = Writer {
        conn,
        stats: thread_stats,
        bus,
        wal_pages,
        held: Vec::new(),
        held_until: None,
        commit_time: Duration::from_micros(500),
        hold,
    };
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer.run(rx))?;
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
        F: FnMut(&Connection, &mut Emit) -> Result<T, StoreError> + Send + 'static,
    {
        self.change_with(Durability::Now, f)
    }

    /// As `change`, saying how soon the change must be durable.
    pub fn change_with<T, F>(
        &self,
        durability: Durability,
        f: F,
    ) -> impl Future<Output = Result<T, StoreError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut Emit) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(f, Reply::To(tx), durability);
        async move {
            if !sent {
                return Err(StoreError::WriterGone);
            }
            rx.await.map_err(|_| StoreError::WriterGone)?
        }
    }

    /// Queues a change nobody waits for, so it may wait to join the next group; a failure is
    /// logged as "`what` failed".
    pub fn change_unawaited<F>(&self, what: &'static str, f: F)
    where
        F: FnMut(&Connection, &mut Emit) -> Result<(), StoreError> + Send + 'static,
    {
        if !self.send(f, Reply::Log(what), Durability::Soon) {
            tracing::warn!("{what} failed: the store's writer has stopped");
        }
    }

    fn send<T, F>(&self, f: F, reply: Reply<T>, durability: Durability) -> bool
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut Emit) -> Result<T, StoreError> + Send + 'static,
    {
        let change = Typed {
            f,
            result: None,
            reply,
            durability,
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

struct Writer {
    conn: Connection,
    stats: Arc<WriterStats>,
    bus: EventBus,
    wal_pages: Arc<AtomicI64>,
    /// Changes that may wait, in arrival order, not applied yet.
    held: Vec<Box<dyn Change>>,
    /// When they are applied even if nothing else comes.
    held_until: Option<Instant>,
    /// About how long one commit takes here (a moving average of the writer's own).
    commit_time: Duration,
    /// A fixed time to hold instead of `commit_time` (tests).
    hold: Option<Duration>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Op>) {
        let mut group: Vec<Op> = Vec::with_capacity(64);
        // The WAL length at which to try again after a checkpoint a reader held short.
        let mut checkpoint_at = CHECKPOINT_PAGES;
        loop {
            let first = match self.held_until {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(until) => rx.recv_timeout(until.saturating_duration_since(Instant::now())),
            };
            let first = match first {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.commit(Vec::new());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit(Vec::new());
                    return;
                }
            };
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
            // Changes that may wait keep arriving (a run storing tool calls): once the first
            // held one has waited its time, they go too.
            let urgent = !waiters.is_empty()
                || closing.is_some()
                || changes.iter().any(|c| c.durability() == Durability::Now)
                || self.held_until.is_some_and(|t| Instant::now() >= t);
            if urgent {
                self.commit(changes);
            } else {
                self.hold_back(changes);
            }
            for tx in waiters {
                let _ = tx.send(());
            }
            if let Some(tx) = closing {
                // Checkpoint so the next start opens a small WAL; failure here loses nothing.
                let _ = self
                    .conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                let _ = tx.send(());
                return;
            }
            let pages = self.wal_pages.load(Ordering::Relaxed);
            if pages >= checkpoint_at {
                checkpoint_at = checkpoint(&self.conn, pages);
            }
        }
    }

    /// Holds changes that may wait, to join the next group.
    fn hold_back(&mut self, mut changes: Vec<Box<dyn Change>>) {
        if self.held_until.is_none() {
            // A test's fixed hold is taken as it is: an hour must not become 2 ms.
            let hold = self
                .hold
                .unwrap_or_else(|| self.commit_time.clamp(HOLD_MIN, HOLD_MAX));
            self.held_until = Some(Instant::now() + hold);
        }
        self.held.append(&mut changes);
        self.stats
            .held
            .store(self.held.len() as u64, Ordering::Relaxed);
    }

    /// Applies and commits what is held and then `more`, as one group; publishes their
    /// events and answers their callers. What was held goes first: it was queued first.
    fn commit(&mut self, mut more: Vec<Box<dyn Change>>) {
        self.held_until = None;
        self.stats.held.store(0, Ordering::Relaxed);
        let mut changes = std::mem::take(&mut self.held);
        changes.append(&mut more);
        if changes.is_empty() {
            return;
        }
        self.stats
            .changes
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let (commit, events) = apply_group(&mut self.conn, &mut changes, self.bus.has_listeners());
        // A moving average over about the last eight commits.
        self.commit_time = (self.commit_time * 7 + started.elapsed()) / 8;
        // Published after the commit, in commit order: a listener never sees what a crash
        // could still take back, and sees each session's messages in seq order.
        for event in events {
            self.bus.publish(event);
        }
        for change in changes {
            change.finish(commit.clone());
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
    match apply_together(conn, changes, emit_events) {
        Together::Committed(events) => (Ok(()), events),
        Together::Failed(e) => (Err(e), Vec::new()),
        Together::WroteAndFailed => apply_each_alone(conn, changes, emit_events),
    }
}

enum Together {
    Committed(Vec<Event>),
    /// The transaction could not begin or commit, or SQLite gave it up.
    Failed(StoreError),
    /// A change failed after writing; the group has been rolled back.
    WroteAndFailed,
}

/// The group with no savepoints: each change's writes stand unless one fails after writing.
fn apply_together(
    conn: &mut Connection,
    changes: &mut [Box<dyn Change>],
    emit_events: bool,
) -> Together {
    let mut events = Vec::new();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return Together::Failed(StoreError::from(e)),
    };
    for change in changes.iter_mut() {
        let mut emit = Emit::collecting(emit_events);
        // A failed statement leaves nothing behind (SQLite undoes it) and is not counted.
        let written = tx.total_changes();
        if change.apply(&tx, &mut emit) {
            events.append(&mut emit.events);
        } else if tx.is_autocommit() {
            return Together::Failed(lost(change.as_ref()));
        } else if tx.total_changes() != written {
            // Dropping the transaction rolls the whole group back.
            return Together::WroteAndFailed;
        }
    }
    match tx.commit() {
        Ok(()) => Together::Committed(events),
        Err(e) => Together::Failed(StoreError::from(e)),
    }
}

/// The group again, each change in a savepoint of its own, so one that fails is undone alone.
fn apply_each_alone(
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
        let mut emit = Emit::collecting(emit_events);
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
        } else if tx.is_autocommit() {
            return (Err(lost(change.as_ref())), Vec::new());
        }
    }
    match tx.commit() {
        Ok(()) => (Ok(()), events),
        Err(e) => (Err(StoreError::from(e)), Vec::new()),
    }
}

/// SQLite may give a whole transaction up when a statement fails (a full disk, an I/O error):
/// then nothing of the group stands, and every caller hears why, not only the failed change's.
/// Going on would run the rest outside the group, each committed on its own.
fn lost(failed: &dyn Change) -> StoreError {
    failed.error().unwrap_or_else(|| {
        StoreError::Sqlite(super::error::SqlError {
            code: None,
            message: "SQLite rolled the transaction back".into(),
        })
    })
}

#[cfg(test)]
mod tests;
