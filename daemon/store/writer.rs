//! The single writer: applies changes in arrival order and commits them in groups. Whatever is
//! waiting when a commit starts joins it, so N concurrent callers cost one sync, not N.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use crate::protocol::{ProvenanceKind, Role, RunStatus};
use crate::timefmt::now_ms;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{PendingRun, Recovery, StoreError, queries};
use crate::daemon::events::{Event, EventBus};
use crate::protocol::{Message, Provenance};
use crate::timefmt::rfc3339_ms;

/// Most changes applied in one transaction; bounds the latency of the first caller in a group.
const MAX_GROUP: usize = 4096;
/// Characters of a message kept as the session's preview.
const PREVIEW_CHARS: usize = 120;

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub key: String,
    pub agent_id: String,
    pub kind: String,
    pub label: Option<String>,
    pub parent_key: Option<String>,
    pub model: Option<String>,
    pub cleanup: String,
    pub spawn_depth: i64,
    /// The paired device that created it; `None` for the daemon's owner.
    pub owner: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub ts: i64,
    pub role: Role,
    pub content: Value,
    pub run_id: Option<String>,
    pub provenance: ProvenanceKind,
    pub from: Option<String>,
    pub usage: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub lane: String,
    /// `runTimeoutSeconds`, kept so a run queued again after a restart still has it.
    pub timeout_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Target {
    Existing(i64),
    /// Created unless a session with this key exists, which is then used.
    New(Box<NewSession>),
}

/// A message that starts a run: the first of a spawn, or a send.
#[derive(Debug, Clone)]
pub struct Submit {
    pub target: Target,
    pub message: NewMessage,
    pub run: NewRun,
    /// (key, method, result to return on a retry)
    pub idempotency: Option<(String, String, Value)>,
}

#[derive(Debug, Clone)]
pub enum SubmitOutcome {
    /// Committed, in the session with this row id.
    Created { sid: i64 },
    /// The idempotency key was used before: the first call's result.
    Existing(Value),
}

#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub run_id: String,
    pub sid: i64,
    pub status: RunStatus,
    pub reply: Option<NewMessage>,
    pub reply_text: Option<String>,
    pub error: Option<String>,
    pub ended_at: i64,
    pub runtime_ms: Option<i64>,
    pub tokens: Option<i64>,
}

enum Op {
    Submit(
        Box<Submit>,
        oneshot::Sender<Result<SubmitOutcome, StoreError>>,
    ),
    RunStarted {
        run_id: String,
        sid: i64,
        at: i64,
    },
    RunFinished(
        FinishedRun,
        oneshot::Sender<Result<Option<u64>, StoreError>>,
    ),
    Patch {
        sid: i64,
        label: Option<Option<String>>,
        archived: Option<bool>,
        send_policy: Option<Option<String>>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Delete(i64, oneshot::Sender<Result<(), StoreError>>),
    /// A message produced during a run (tool calls and results), or an announce (awaited).
    Append {
        sid: i64,
        message: NewMessage,
        done: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    /// Archive sub-agent sessions whose last run ended before this time (ms).
    Archive {
        before_ms: i64,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
    Close(oneshot::Sender<()>),
    /// Answered once every change queued before it is committed (and published).
    Barrier(oneshot::Sender<()>),
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
}

pub fn spawn(conn: Connection, bus: EventBus) -> WriterHandle {
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(WriterStats::default());
    let thread_stats = stats.clone();
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, rx, &thread_stats, &bus))
        .expect("spawn the store writer thread");
    WriterHandle { tx, stats }
}

impl WriterHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues a submit now (so its place in the commit order is fixed when this returns);
    /// the returned future resolves once it is committed.
    pub fn submit(
        &self,
        s: Submit,
    ) -> Result<impl Future<Output = Result<SubmitOutcome, StoreError>> + use<>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Submit(Box::new(s), tx))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(async move { rx.await.map_err(|_| StoreError::WriterGone)? })
    }

    pub fn append(&self, sid: i64, message: NewMessage) {
        let _ = self.tx.send(Op::Append {
            sid,
            message,
            done: None,
        });
    }

    pub async fn append_durable(&self, sid: i64, message: NewMessage) -> Result<(), StoreError> {
        self.call(|tx| Op::Append {
            sid,
            message,
            done: Some(tx),
        })
        .await
    }

    pub async fn archive_ended_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.call(|done| Op::Archive { before_ms, done }).await
    }

    pub fn run_started(&self, run_id: &str, sid: i64, at: i64) {
        let _ = self.tx.send(Op::RunStarted {
            run_id: run_id.to_string(),
            sid,
            at,
        });
    }

    pub async fn run_finished(&self, f: FinishedRun) -> Result<Option<u64>, StoreError> {
        self.call(|tx| Op::RunFinished(f, tx)).await
    }

    pub async fn patch(
        &self,
        sid: i64,
        label: Option<Option<String>>,
        archived: Option<bool>,
        send_policy: Option<Option<String>>,
    ) -> Result<(), StoreError> {
        self.call(|done| Op::Patch {
            sid,
            label,
            archived,
            send_policy,
            done,
        })
        .await
    }

    pub async fn delete(&self, sid: i64) -> Result<(), StoreError> {
        self.call(|tx| Op::Delete(sid, tx)).await
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

/// A reply to send once the group is committed (or failed).
enum Reply {
    Submit(
        oneshot::Sender<Result<SubmitOutcome, StoreError>>,
        Result<SubmitOutcome, String>,
    ),
    Finished(
        oneshot::Sender<Result<Option<u64>, StoreError>>,
        Result<Option<u64>, String>,
    ),
    Unit(oneshot::Sender<Result<(), StoreError>>, Result<(), String>),
    Count(
        oneshot::Sender<Result<u64, StoreError>>,
        Result<u64, String>,
    ),
    Close(oneshot::Sender<()>),
    /// A change nobody waits on.
    Nothing,
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Op>, stats: &WriterStats, bus: &EventBus) {
    let mut group: Vec<Op> = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let closing = group.iter().any(|op| matches!(op, Op::Close(_)));
        stats
            .changes
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        let (replies, events) = apply_group(&mut conn, group.drain(..), bus.has_listeners());
        // Published after the commit, in commit order: a listener never sees what a crash
        // could still take back, and sees each session's messages in seq order.
        for event in events {
            bus.publish(event);
        }
        for reply in replies {
            match reply {
                Reply::Submit(tx, r) => {
                    let _ = tx.send(r.map_err(StoreError::Corrupt));
                }
                Reply::Finished(tx, r) => {
                    let _ = tx.send(r.map_err(StoreError::Corrupt));
                }
                Reply::Unit(tx, r) => {
                    let _ = tx.send(r.map_err(StoreError::Corrupt));
                }
                Reply::Count(tx, r) => {
                    let _ = tx.send(r.map_err(StoreError::Corrupt));
                }
                Reply::Close(tx) => {
                    let _ = tx.send(());
                }
                Reply::Nothing => {}
            }
        }
        if closing {
            break;
        }
    }
    // Checkpoint so the next start opens a small WAL; failure here loses nothing.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn apply_group(
    conn: &mut Connection,
    ops: impl Iterator<Item = Op>,
    emit_events: bool,
) -> (Vec<Reply>, Vec<Event>) {
    let mut replies = Vec::new();
    let mut events = Vec::new();
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            for op in ops {
                replies.push(fail(op, &msg));
            }
            return (replies, events);
        }
    };
    for op in ops {
        let mut emit = Emit {
            on: emit_events,
            events: Vec::new(),
        };
        let (reply, ok) = apply_one(&mut tx, op, &mut emit);
        if ok {
            events.append(&mut emit.events);
        }
        replies.push(reply);
    }
    if let Err(e) = tx.commit() {
        let msg = format!("commit failed: {e}");
        replies = replies.into_iter().map(|r| fail_reply(r, &msg)).collect();
        events.clear();
    }
    (replies, events)
}

/// Collects the events of one change; kept only if the change is.
struct Emit {
    on: bool,
    events: Vec<Event>,
}

impl Emit {
    fn session_changed(
        &mut self,
        c: &Connection,
        sid: i64,
        phase: &'static str,
    ) -> rusqlite::Result<()> {
        if !self.on {
            return Ok(());
        }
        if let Some(rec) = queries::session_row(c, sid)? {
            let key: Arc<str> = rec.key.as_str().into();
            self.events.push(Event::Changed {
                sid,
                session_key: key,
                phase,
                row: Some(Arc::new(rec.to_row())),
            });
        }
        Ok(())
    }

    fn message(
        &mut self,
        c: &Connection,
        sid: i64,
        seq: u64,
        m: &NewMessage,
    ) -> rusqlite::Result<()> {
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
        });
        self.events.push(Event::Changed {
            sid,
            session_key: key,
            phase: "message",
            row: Some(Arc::new(rec.to_row())),
        });
        Ok(())
    }
}

/// Applies one change inside its own savepoint, so a failing change does not undo the others
/// in its group. Returns the reply and whether the change was kept.
fn apply_one(tx: &mut Transaction<'_>, op: Op, emit: &mut Emit) -> (Reply, bool) {
    fn in_savepoint<T>(
        tx: &mut Transaction<'_>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        let sp = tx.savepoint().map_err(|e| e.to_string())?;
        match f(&sp) {
            Ok(v) => {
                sp.commit().map_err(|e| e.to_string())?;
                Ok(v)
            }
            Err(e) => Err(e.to_string()), // dropping the savepoint rolls it back
        }
    }
    match op {
        Op::Submit(s, reply) => {
            let r = in_savepoint(tx, |c| submit(c, &s, emit));
            let ok = r.is_ok();
            (Reply::Submit(reply, r), ok)
        }
        Op::RunStarted { run_id, sid, at } => {
            let r = in_savepoint(tx, |c| run_started(c, &run_id, sid, at, emit));
            if let Err(e) = &r {
                tracing::warn!(run_id, "recording run start failed: {e}");
            }
            (Reply::Nothing, r.is_ok())
        }
        Op::RunFinished(f, reply) => {
            let r = in_savepoint(tx, |c| run_finished(c, &f, emit));
            let ok = r.is_ok();
            (Reply::Finished(reply, r), ok)
        }
        Op::Patch {
            sid,
            label,
            archived,
            send_policy,
            done,
        } => {
            let r = in_savepoint(tx, |c| patch(c, sid, &label, archived, &send_policy, emit));
            let ok = r.is_ok();
            (Reply::Unit(done, r), ok)
        }
        Op::Delete(sid, reply) => {
            let r = in_savepoint(tx, |c| delete(c, sid, emit));
            let ok = r.is_ok();
            (Reply::Unit(reply, r), ok)
        }
        Op::Append { sid, message, done } => {
            let r = in_savepoint(tx, |c| {
                let seq = append_message(c, sid, &message)?;
                emit.message(c, sid, seq, &message)
            });
            let ok = r.is_ok();
            match done {
                Some(done) => (Reply::Unit(done, r), ok),
                None => {
                    if let Err(e) = &r {
                        tracing::warn!(sid, "storing a message of a run failed: {e}");
                    }
                    (Reply::Nothing, ok)
                }
            }
        }
        Op::Archive { before_ms, done } => {
            let r = in_savepoint(tx, |c| archive(c, before_ms, emit));
            let ok = r.is_ok();
            (Reply::Count(done, r), ok)
        }
        Op::Close(reply) | Op::Barrier(reply) => (Reply::Close(reply), true),
    }
}

fn fail(op: Op, msg: &str) -> Reply {
    match op {
        Op::Submit(_, tx) => Reply::Submit(tx, Err(msg.to_string())),
        Op::RunFinished(_, tx) => Reply::Finished(tx, Err(msg.to_string())),
        Op::Patch { done, .. } => Reply::Unit(done, Err(msg.to_string())),
        Op::Delete(_, tx) => Reply::Unit(tx, Err(msg.to_string())),
        Op::Close(tx) | Op::Barrier(tx) => Reply::Close(tx),
        Op::Append { done: Some(tx), .. } => Reply::Unit(tx, Err(msg.to_string())),
        Op::Archive { done, .. } => Reply::Count(done, Err(msg.to_string())),
        Op::RunStarted { .. } | Op::Append { .. } => Reply::Nothing,
    }
}

fn fail_reply(r: Reply, msg: &str) -> Reply {
    match r {
        Reply::Submit(tx, _) => Reply::Submit(tx, Err(msg.to_string())),
        Reply::Finished(tx, _) => Reply::Finished(tx, Err(msg.to_string())),
        Reply::Unit(tx, _) => Reply::Unit(tx, Err(msg.to_string())),
        Reply::Count(tx, _) => Reply::Count(tx, Err(msg.to_string())),
        other => other,
    }
}

fn preview(content: &Value) -> String {
    let text = match content {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(PREVIEW_CHARS).collect()
}

/// Archives the sub-agent sessions idle since before `before_ms`; returns how many.
fn archive(c: &Connection, before_ms: i64, emit: &mut Emit) -> rusqlite::Result<u64> {
    let sids: Vec<i64> = c
        .prepare_cached(
            "UPDATE sessions SET archived = 1 WHERE kind = 'subagent' AND archived = 0 AND active_run_id IS NULL AND ended_at IS NOT NULL AND ended_at <= ?1 RETURNING sid",
        )?
        .query_map([before_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for sid in &sids {
        emit.session_changed(c, *sid, "archive")?;
    }
    Ok(sids.len() as u64)
}

/// Appends a message at the session's next seq and updates its counters; returns the seq.
fn append_message(c: &Connection, sid: i64, m: &NewMessage) -> rusqlite::Result<u64> {
    let seq: i64 = c
        .prepare_cached("UPDATE sessions SET last_seq = last_seq + 1, message_count = message_count + 1, last_preview = ?2, updated_at = ?3 WHERE sid = ?1 RETURNING last_seq")?
        .query_row(params![sid, preview(&m.content), m.ts], |r| r.get(0))?;
    let usage = m.usage.as_ref().map(Value::to_string);
    c.prepare_cached(
        "INSERT INTO messages (sid, seq, ts, role, content, run_id, provenance, prov_from, usage) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        sid,
        seq,
        m.ts,
        m.role.as_str(),
        m.content.to_string(),
        m.run_id,
        m.provenance.as_str(),
        m.from,
        usage
    ])?;
    Ok(seq as u64)
}

fn submit(c: &Connection, s: &Submit, emit: &mut Emit) -> rusqlite::Result<SubmitOutcome> {
    if let Some((key, _, _)) = &s.idempotency {
        let existing: Option<String> = c
            .prepare_cached("SELECT result FROM idempotency WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        if let Some(result) = existing {
            let value = serde_json::from_str(&result).unwrap_or(Value::Null);
            return Ok(SubmitOutcome::Existing(value));
        }
    }
    let now = s.message.ts;
    let sid = match &s.target {
        Target::Existing(sid) => *sid,
        Target::New(n) => {
            c.prepare_cached(
                "INSERT INTO sessions (id, key, agent_id, kind, label, parent_key, model, status, created_at, updated_at, cleanup, spawn_depth, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'idle', ?8, ?8, ?9, ?10, ?11) ON CONFLICT(key) DO NOTHING",
            )?
            .execute(params![
                n.id, n.key, n.agent_id, n.kind, n.label, n.parent_key, n.model, now, n.cleanup,
                n.spawn_depth,
                n.owner
            ])?;
            let created = c.changes() == 1;
            let sid = c
                .prepare_cached("SELECT sid FROM sessions WHERE key = ?1")?
                .query_row([&n.key], |r| r.get(0))?;
            if created {
                emit.session_changed(c, sid, "create")?;
            }
            sid
        }
    };
    let seq = append_message(c, sid, &s.message)?;
    emit.message(c, sid, seq, &s.message)?;
    c.prepare_cached(
        "INSERT INTO runs (id, sid, status, lane, input_seq, created_at, timeout_ms) VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6)",
    )?
    .execute(params![s.run.id, sid, s.run.lane, seq as i64, now, s.run.timeout_ms])?;
    c.prepare_cached(
        "UPDATE sessions SET status = 'queued' WHERE sid = ?1 AND active_run_id IS NULL",
    )?
    .execute([sid])?;
    if let Some((key, method, result)) = &s.idempotency {
        c.prepare_cached(
            "INSERT INTO idempotency (key, method, result, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![key, method, result.to_string(), now])?;
    }
    Ok(SubmitOutcome::Created { sid })
}

fn run_started(
    c: &Connection,
    run_id: &str,
    sid: i64,
    at: i64,
    emit: &mut Emit,
) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE runs SET status = 'running', started_at = ?2 WHERE id = ?1")?
        .execute(params![run_id, at])?;
    c.prepare_cached(
        "UPDATE sessions SET status = 'running', active_run_id = ?2, started_at = ?3, ended_at = NULL, updated_at = ?3 WHERE sid = ?1",
    )?
    .execute(params![sid, run_id, at])?;
    emit.session_changed(c, sid, "start")
}

fn run_finished(c: &Connection, f: &FinishedRun, emit: &mut Emit) -> rusqlite::Result<Option<u64>> {
    let seq = match &f.reply {
        Some(m) => {
            let seq = append_message(c, f.sid, m)?;
            emit.message(c, f.sid, seq, m)?;
            Some(seq)
        }
        None => None,
    };
    c.prepare_cached(
        "UPDATE runs SET status = ?2, ended_at = ?3, reply = ?4, error = ?5 WHERE id = ?1",
    )?
    .execute(params![
        f.run_id,
        f.status.as_str(),
        f.ended_at,
        f.reply_text,
        f.error
    ])?;
    c.prepare_cached(
        "UPDATE sessions SET status = ?2, active_run_id = NULL, ended_at = ?3, updated_at = ?3,
             runtime_ms = ?4, tokens = CASE WHEN ?5 IS NULL THEN tokens ELSE COALESCE(tokens, 0) + ?5 END
         WHERE sid = ?1",
    )?
    .execute(params![f.sid, f.status.as_str(), f.ended_at, f.runtime_ms, f.tokens])?;
    emit.session_changed(c, f.sid, "end")?;
    Ok(seq)
}

fn patch(
    c: &Connection,
    sid: i64,
    label: &Option<Option<String>>,
    archived: Option<bool>,
    send_policy: &Option<Option<String>>,
    emit: &mut Emit,
) -> rusqlite::Result<()> {
    let now = now_ms();
    if let Some(label) = label {
        c.execute(
            "UPDATE sessions SET label = ?2, updated_at = ?3 WHERE sid = ?1",
            params![sid, label, now],
        )?;
    }
    if let Some(archived) = archived {
        c.execute(
            "UPDATE sessions SET archived = ?2, updated_at = ?3 WHERE sid = ?1",
            params![sid, archived, now],
        )?;
    }
    if let Some(policy) = send_policy {
        c.execute(
            "UPDATE sessions SET send_policy = ?2, updated_at = ?3 WHERE sid = ?1",
            params![sid, policy, now],
        )?;
    }
    let phase = if archived == Some(true) {
        "archive"
    } else {
        "patch"
    };
    emit.session_changed(c, sid, phase)
}

fn delete(c: &Connection, sid: i64, emit: &mut Emit) -> rusqlite::Result<()> {
    if emit.on
        && let Some(rec) = queries::session_row(c, sid)?
    {
        emit.events.push(Event::Changed {
            sid,
            session_key: rec.key.as_str().into(),
            phase: "delete",
            row: None,
        });
    }
    c.execute("DELETE FROM messages WHERE sid = ?1", [sid])?;
    c.execute("DELETE FROM runs WHERE sid = ?1", [sid])?;
    c.execute("DELETE FROM sessions WHERE sid = ?1", [sid])?;
    Ok(())
}

/// Repairs what a crash left: runs that were running become `interrupted` (their sessions stay
/// usable); runs that were queued and never started are returned to be queued again.
pub fn recover(conn: &mut Connection) -> Result<Recovery, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    // `status IN (...)` lets SQLite use the partial index of unfinished runs, so start-up
    // costs the same with a million finished runs as with none.
    let interrupted_sessions: Vec<i64> = tx
        .prepare(
            "UPDATE runs SET status = 'interrupted', ended_at = ?1,
                 error = 'the daemon stopped while this run was active'
             WHERE status IN ('queued', 'running') AND status = 'running'
             RETURNING sid",
        )?
        .query_map([now], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let interrupted = interrupted_sessions.len() as u64;
    for sid in &interrupted_sessions {
        tx.execute(
            "UPDATE sessions SET status = 'interrupted', active_run_id = NULL, ended_at = ?2
             WHERE sid = ?1",
            params![sid, now],
        )?;
    }
    let mut requeue = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT r.id, r.sid, r.lane, m.content, r.timeout_ms FROM runs r
             JOIN messages m ON m.sid = r.sid AND m.seq = r.input_seq
             WHERE r.status IN ('queued', 'running') AND r.status = 'queued'
             ORDER BY r.sid, r.input_seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        for row in rows {
            let (run_id, sid, lane, content, timeout_ms) = row?;
            let input = match serde_json::from_str::<Value>(&content) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => return Err(StoreError::Corrupt(format!("message content: {e}"))),
            };
            requeue.push(PendingRun {
                run_id,
                sid,
                lane,
                input,
                timeout_ms,
            });
        }
    }
    tx.commit()?;
    Ok(Recovery {
        interrupted,
        requeue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> NewMessage {
        NewMessage {
            ts: now_ms(),
            role: Role::User,
            content: Value::String(text.into()),
            run_id: None,
            provenance: ProvenanceKind::Operator,
            from: None,
            usage: None,
        }
    }

    fn new_session(key: &str) -> Target {
        Target::New(Box::new(NewSession {
            id: format!("id-{key}"),
            key: key.into(),
            agent_id: "main".into(),
            kind: "main".into(),
            label: None,
            parent_key: None,
            model: None,
            cleanup: "keep".into(),
            spawn_depth: 0,
            owner: None,
        }))
    }

    fn submit_op(
        target: Target,
        run: &str,
        idem: Option<&str>,
    ) -> (Op, oneshot::Receiver<Result<SubmitOutcome, StoreError>>) {
        let (tx, rx) = oneshot::channel();
        let s = Submit {
            target,
            message: message(run),
            run: NewRun {
                id: run.into(),
                lane: "main".into(),
                timeout_ms: None,
            },
            idempotency: idem.map(|k| {
                (
                    k.to_string(),
                    "m".to_string(),
                    serde_json::json!({ "runId": run }),
                )
            }),
        };
        (Op::Submit(Box::new(s), tx), rx)
    }

    #[test]
    fn everything_waiting_is_committed_in_one_group_with_contiguous_seqs() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut replies = Vec::new();
        for i in 0..50 {
            let (op, reply) = submit_op(new_session("agent:main:main"), &format!("r{i}"), None);
            tx.send(op).unwrap();
            replies.push(reply);
        }
        let (close_tx, _close_rx) = oneshot::channel();
        tx.send(Op::Close(close_tx)).unwrap();
        let stats = WriterStats::default();
        let seqs = std::thread::scope(|s| {
            s.spawn(|| run(conn, rx, &stats, &EventBus::default()))
                .join()
                .unwrap();
            replies
                .into_iter()
                .map(|r| match r.blocking_recv().unwrap().unwrap() {
                    SubmitOutcome::Created { sid } => sid,
                    other => panic!("unexpected {other:?}"),
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(
            stats.commits.load(Ordering::Relaxed),
            1,
            "one group for all 51 changes"
        );
        assert_eq!(stats.changes.load(Ordering::Relaxed), 51);
        assert!(
            seqs.iter().all(|sid| *sid == seqs[0]),
            "all went into the one session"
        );
    }

    #[test]
    fn a_retried_idempotency_key_returns_the_first_result() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let first = Submit {
            target: new_session("agent:main:main"),
            message: message("a"),
            run: NewRun {
                id: "run-1".into(),
                lane: "main".into(),
                timeout_ms: None,
            },
            idempotency: Some((
                "k".into(),
                "m".into(),
                serde_json::json!({ "runId": "run-1" }),
            )),
        };
        let mut emit = Emit {
            on: false,
            events: Vec::new(),
        };
        assert!(matches!(
            submit(&tx, &first, &mut emit).unwrap(),
            SubmitOutcome::Created { .. }
        ));
        let retry = Submit {
            run: NewRun {
                id: "run-2".into(),
                lane: "main".into(),
                timeout_ms: None,
            },
            ..first
        };
        match submit(&tx, &retry, &mut emit).unwrap() {
            SubmitOutcome::Existing(v) => assert_eq!(v["runId"], "run-1"),
            other => panic!("expected the first result, got {other:?}"),
        }
        let runs: i64 = tx
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 1);
    }

    #[test]
    fn a_failing_change_does_not_undo_its_group() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let (ok_op, ok_reply) = submit_op(new_session("agent:main:main"), "r1", None);
        // Same run id again: the runs primary key refuses it.
        let (bad_op, bad_reply) = submit_op(new_session("agent:main:main"), "r1", None);
        let (replies, _) = apply_group(&mut conn, vec![ok_op, bad_op].into_iter(), false);
        for r in replies {
            match r {
                Reply::Submit(tx, res) => {
                    let _ = tx.send(res.map_err(StoreError::Corrupt));
                }
                _ => unreachable!(),
            }
        }
        assert!(ok_reply.blocking_recv().unwrap().is_ok());
        assert!(bad_reply.blocking_recv().unwrap().is_err());
        let messages: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            messages, 1,
            "the failed change's message was rolled back, the good one kept"
        );
    }
}
