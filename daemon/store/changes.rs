//! What each change writes: the SQL of a submit, a run's start and end, an appended message,
//! a patch, a delete and an archive. Each runs inside the writer's transaction (in its own
//! savepoint) and collects the events it causes.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreError;
use super::emit::Emit;
use crate::config::PolicyAction;
use crate::protocol::{
    AttachmentReceipt, Cleanup, Lane, ProvenanceKind, Role, RunStatus, SessionKind, SpawnMode,
};
use crate::timefmt::now_ms;

/// Characters of a message kept as the session's preview.
const PREVIEW_CHARS: usize = 120;

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub key: String,
    pub agent_id: String,
    pub kind: SessionKind,
    pub label: Option<String>,
    pub parent_key: Option<String>,
    pub model: Option<String>,
    pub cleanup: Cleanup,
    /// `session` keeps a sub-agent out of automatic archiving.
    pub mode: SpawnMode,
    /// The agent's own session to resume (ACP `resumeSessionId`).
    pub agent_session_id: Option<String>,
    /// `parent`: the child's progress is relayed to its parent's subscribers.
    pub stream_to: Option<String>,
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
    pub lane: Lane,
    /// `runTimeoutSeconds`, kept so a run queued again after a restart still has it.
    pub timeout_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Target {
    Existing(i64),
    /// Created unless a session with this key exists, which is then used.
    New(Box<NewSession>),
}

/// What an accepted submit gave its caller; stored under its idempotency key so a retry
/// gets the same answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub run_id: String,
    pub session_key: String,
    /// Absent from receipts of sends stored by older versions.
    #[serde(default)]
    pub session_id: String,
    /// A digest of the call's params: the same key with other params is a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentReceipt>,
}

/// A message that starts a run: the first of a spawn, or a send.
#[derive(Debug, Clone)]
pub struct Submit {
    pub target: Target,
    pub message: NewMessage,
    pub run: NewRun,
    /// The key (already scoped to its caller and method) a retry is recognised by.
    pub idempotency_key: Option<String>,
    pub method: &'static str,
    pub receipt: Receipt,
}

#[derive(Debug, Clone)]
pub enum SubmitOutcome {
    /// Committed, in the session with this row id.
    Created { sid: i64 },
    /// The idempotency key was used before: the first call's receipt.
    Existing(Receipt),
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

fn preview(content: &Value) -> String {
    let text = match content {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(PREVIEW_CHARS).collect()
}

/// Appends a message at the session's next seq and updates its counters; returns the seq.
pub fn append_message(c: &Connection, sid: i64, m: &NewMessage) -> Result<u64, StoreError> {
    let seq: Option<i64> = c
        .prepare_cached("UPDATE sessions SET last_seq = last_seq + 1, message_count = message_count + 1, last_preview = ?2, updated_at = ?3 WHERE sid = ?1 RETURNING last_seq")?
        .query_row(params![sid, preview(&m.content), m.ts], |r| r.get(0))
        .optional()?;
    let seq = seq.ok_or(StoreError::SessionGone)?;
    let usage = m.usage.as_ref().map(Value::to_string);
    c.prepare_cached(
        "INSERT INTO messages (sid, seq, ts, role, content, run_id, provenance, prov_from, usage) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        sid,
        seq,
        m.ts,
        m.role,
        m.content.to_string(),
        m.run_id,
        m.provenance,
        m.from,
        usage
    ])?;
    Ok(seq as u64)
}

/// The receipt stored under an idempotency key, if it was used before. A row that cannot be
/// read is an error: answering a retry with nothing would make it spawn twice.
fn stored_receipt(c: &Connection, key: &str) -> Result<Option<Receipt>, StoreError> {
    let stored: Option<String> = c
        .prepare_cached("SELECT result FROM idempotency WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    stored
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                StoreError::Corrupt(format!("the idempotency record of \"{key}\": {e}"))
            })
        })
        .transpose()
}

pub fn submit(c: &Connection, s: &Submit, emit: &mut Emit) -> Result<SubmitOutcome, StoreError> {
    if let Some(key) = &s.idempotency_key
        && let Some(first) = stored_receipt(c, key)?
    {
        return Ok(SubmitOutcome::Existing(first));
    }
    let now = s.message.ts;
    let sid = match &s.target {
        Target::Existing(sid) => *sid,
        Target::New(n) => {
            c.prepare_cached(
                "INSERT INTO sessions (id, key, agent_id, kind, label, parent_key, model, status, created_at, updated_at, cleanup, spawn_depth, owner, mode, agent_session_id, stream_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'idle', ?8, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                n.id,
                n.key,
                n.agent_id,
                n.kind,
                n.label,
                n.parent_key,
                n.model,
                now,
                n.cleanup,
                n.spawn_depth,
                n.owner,
                n.mode,
                n.agent_session_id,
                n.stream_to
            ])?;
            let created = c.changes() == 1;
            let sid = c
                .prepare_cached(&format!(
                    "SELECT sid FROM sessions WHERE {}",
                    super::names::key_is_param()
                ))?
                .query_row([super::names::key_order(&n.key)], |r| r.get(0))?;
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
    if let Some(key) = &s.idempotency_key {
        let receipt = serde_json::to_string(&s.receipt)
            .map_err(|e| StoreError::Corrupt(format!("encoding a receipt: {e}")))?;
        c.prepare_cached(
            "INSERT INTO idempotency (key, method, result, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![key, s.method, receipt, now])?;
    }
    Ok(SubmitOutcome::Created { sid })
}

pub fn run_started(
    c: &Connection,
    run_id: &str,
    sid: i64,
    at: i64,
    emit: &mut Emit,
) -> Result<(), StoreError> {
    c.prepare_cached("UPDATE runs SET status = 'running', started_at = ?2 WHERE id = ?1")?
        .execute(params![run_id, at])?;
    c.prepare_cached(
        "UPDATE sessions SET status = 'running', active_run_id = ?2, started_at = ?3, ended_at = NULL, updated_at = ?3 WHERE sid = ?1",
    )?
    .execute(params![sid, run_id, at])?;
    emit.session_changed(c, sid, "start")
}

pub fn run_finished(
    c: &Connection,
    f: &FinishedRun,
    emit: &mut Emit,
) -> Result<Option<u64>, StoreError> {
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
        f.status,
        f.ended_at,
        f.reply_text,
        f.error
    ])?;
    c.prepare_cached(
        "UPDATE sessions SET status = ?2, active_run_id = NULL, ended_at = ?3, updated_at = ?3,
             runtime_ms = ?4, tokens = CASE WHEN ?5 IS NULL THEN tokens ELSE COALESCE(tokens, 0) + ?5 END
         WHERE sid = ?1",
    )?
    .execute(params![f.sid, f.status, f.ended_at, f.runtime_ms, f.tokens])?;
    emit.session_changed(c, f.sid, "end")?;
    Ok(seq)
}

/// A change of a session's settings: each `Some` is applied.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub label: Option<Option<String>>,
    pub archived: Option<bool>,
    /// `Some(None)` clears the override (inherit).
    pub send_policy: Option<Option<PolicyAction>>,
    pub model: Option<Option<String>>,
    /// The agent's own id for the session (ACP), recorded when it starts one.
    pub agent_session_id: Option<Option<String>>,
}

pub fn patch(c: &Connection, sid: i64, p: &Patch, emit: &mut Emit) -> Result<(), StoreError> {
    let now = now_ms();
    let exists: Option<i64> = c
        .prepare_cached("SELECT sid FROM sessions WHERE sid = ?1")?
        .query_row([sid], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::SessionGone);
    }
    if let Some(label) = &p.label {
        c.execute(
            "UPDATE sessions SET label = ?2, updated_at = ?3 WHERE sid = ?1",
            params![sid, label, now],
        )?;
    }
    if let Some(archived) = p.archived {
        c.execute(
            "UPDATE sessions SET archived = ?2, updated_at = ?3 WHERE sid = ?1",
            params![sid, archived, now],
        )?;
    }
    if let Some(policy) = &p.send_policy {
        c.execute(
            "UPDATE sessions SET send_policy = ?2, updated_at = ?3 WHERE sid = ?1",
            params![sid, policy, now],
        )?;
    }
    if let Some(id) = &p.agent_session_id {
        c.execute(
            "UPDATE sessions SET agent_session_id = ?2 WHERE sid = ?1",
            params![sid, id],
        )?;
        if p.label.is_none() && p.archived.is_none() && p.send_policy.is_none() && p.model.is_none()
        {
            // Bookkeeping of the backend: no change a subscriber needs to hear about.
            return Ok(());
        }
    }
    if let Some(model) = &p.model {
        c.execute(
            "UPDATE sessions SET model = ?2, updated_at = ?3 WHERE sid = ?1",
            params![sid, model, now],
        )?;
    }
    let phase = if p.archived == Some(true) {
        "archive"
    } else {
        "patch"
    };
    emit.session_changed(c, sid, phase)
}

/// Keys of sessions deleted and not yet purged start with this.
pub const RETIRED: &str = "deleted:";

/// Deletes a session as its users see it: refused here, in the transaction that would
/// delete, while a run of it is queued or running (a send acknowledged just before can never
/// lose its session); otherwise its key and id are freed at once and its transcript is left
/// for [`purge_chunk`] to remove in bounded steps, so a huge transcript does not hold every
/// other write back.
pub fn delete(c: &Connection, sid: i64, emit: &mut Emit) -> Result<(), StoreError> {
    let key: Option<String> = c
        .prepare_cached("SELECT key FROM sessions WHERE sid = ?1")?
        .query_row([sid], |r| r.get(0))
        .optional()?;
    let key = key.ok_or(StoreError::SessionGone)?;
    let unfinished: Option<String> = c
        .prepare_cached(
            "SELECT id FROM runs WHERE sid = ?1 AND status IN ('queued', 'running') LIMIT 1",
        )?
        .query_row([sid], |r| r.get(0))
        .optional()?;
    if unfinished.is_some() {
        return Err(StoreError::Conflict(format!(
            "session {key} has a run active or queued; stop it first with `openclaw sessions kill {key} --clear-queued`"
        )));
    }
    emit.deleted(sid, &key);
    // The row stays until purged, so its sid is not reused while messages still carry it.
    c.execute(
        "UPDATE sessions SET key = ?2 || sid || ':' || key, id = ?2 || id, archived = 1, label = NULL WHERE sid = ?1",
        params![sid, RETIRED],
    )?;
    Ok(())
}

/// Removes up to `n` messages (then runs) of a deleted session, and the session itself once
/// nothing is left; true when it is gone.
pub fn purge_chunk(c: &Connection, sid: i64, n: i64) -> Result<bool, StoreError> {
    let gone = c.execute(
        "DELETE FROM messages WHERE sid = ?1 AND seq IN (SELECT seq FROM messages WHERE sid = ?1 LIMIT ?2)",
        params![sid, n],
    )?;
    if gone as i64 >= n {
        return Ok(false);
    }
    let gone = c.execute(
        "DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs WHERE sid = ?1 LIMIT ?2)",
        params![sid, n],
    )?;
    if gone as i64 >= n {
        return Ok(false);
    }
    c.execute(
        "DELETE FROM sessions WHERE sid = ?1 AND key GLOB ?2 || '*'",
        params![sid, RETIRED],
    )?;
    Ok(true)
}

/// Archives the sub-agent sessions idle since before `before_ms`; returns how many.
pub fn archive(c: &Connection, before_ms: i64, emit: &mut Emit) -> Result<u64, StoreError> {
    let sids: Vec<i64> = c
        .prepare_cached(
            "UPDATE sessions SET archived = 1 WHERE kind = 'subagent' AND archived = 0 AND mode = 'run' AND active_run_id IS NULL AND ended_at IS NOT NULL AND ended_at <= ?1 RETURNING sid",
        )?
        .query_map([before_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for sid in &sids {
        emit.session_changed(c, *sid, "archive")?;
    }
    Ok(sids.len() as u64)
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
            kind: SessionKind::Main,
            label: None,
            parent_key: None,
            model: None,
            cleanup: Cleanup::Keep,
            mode: SpawnMode::Run,
            agent_session_id: None,
            stream_to: None,
            spawn_depth: 0,
            owner: None,
        }))
    }

    fn submit_of(target: Target, run: &str, key: Option<&str>) -> Submit {
        Submit {
            target,
            message: message(run),
            run: NewRun {
                id: run.into(),
                lane: Lane::Main,
                timeout_ms: None,
            },
            idempotency_key: key.map(str::to_string),
            method: "sessions.send",
            receipt: Receipt {
                run_id: run.into(),
                session_key: "agent:main:main".into(),
                session_id: "id-agent:main:main".into(),
                params: Some("p1".into()),
                attachments: Vec::new(),
            },
        }
    }

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    #[test]
    fn a_retried_idempotency_key_returns_the_first_receipt() {
        let c = db();
        let first = submit_of(new_session("agent:main:main"), "run-1", Some("k"));
        assert!(matches!(
            submit(&c, &first, &mut Emit::disabled()).unwrap(),
            SubmitOutcome::Created { .. }
        ));
        let retry = submit_of(new_session("agent:main:main"), "run-2", Some("k"));
        match submit(&c, &retry, &mut Emit::disabled()).unwrap() {
            SubmitOutcome::Existing(r) => {
                assert_eq!(r.run_id, "run-1");
                assert_eq!(r.params.as_deref(), Some("p1"));
            }
            other => panic!("expected the first receipt, got {other:?}"),
        }
        let runs: i64 = c
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 1);
    }

    #[test]
    fn an_unreadable_idempotency_row_is_an_error_not_a_fresh_spawn() {
        let c = db();
        c.execute(
            "INSERT INTO idempotency (key, method, result, created_at) VALUES ('k', 'm', 'not json', 0)",
            [],
        )
        .unwrap();
        let s = submit_of(new_session("agent:main:main"), "run-1", Some("k"));
        let err = submit(&c, &s, &mut Emit::disabled()).unwrap_err();
        assert!(
            err.to_string().contains("idempotency record of \"k\""),
            "{err}"
        );
    }

    #[test]
    fn a_legacy_send_result_reads_as_a_receipt() {
        let r: Receipt = serde_json::from_str(r#"{"runId":"r","sessionKey":"k"}"#).unwrap();
        assert_eq!((r.run_id.as_str(), r.session_id.as_str()), ("r", ""));
    }

    #[test]
    fn a_submit_to_a_deleted_session_says_so() {
        let c = db();
        let s = submit_of(Target::Existing(42), "run-1", None);
        assert!(matches!(
            submit(&c, &s, &mut Emit::disabled()),
            Err(StoreError::SessionGone)
        ));
    }

    #[test]
    fn delete_is_refused_while_a_run_is_queued() {
        let c = db();
        let s = submit_of(new_session("agent:main:main"), "run-1", None);
        let SubmitOutcome::Created { sid } = submit(&c, &s, &mut Emit::disabled()).unwrap() else {
            panic!("not created");
        };
        let err = delete(&c, sid, &mut Emit::disabled()).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        let finished = FinishedRun {
            run_id: "run-1".into(),
            sid,
            status: RunStatus::Ok,
            reply: None,
            reply_text: None,
            error: None,
            ended_at: now_ms(),
            runtime_ms: None,
            tokens: None,
        };
        run_finished(&c, &finished, &mut Emit::disabled()).unwrap();
        delete(&c, sid, &mut Emit::disabled()).unwrap();
        let key: String = c
            .query_row("SELECT key FROM sessions WHERE sid = ?1", [sid], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            key.starts_with("deleted:"),
            "its key is freed at once: {key}"
        );
        let mut steps = 0;
        while !purge_chunk(&c, sid, 1).unwrap() {
            steps += 1;
        }
        assert!(steps >= 2, "one message and one run at a time");
        let left: i64 = c
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        let sessions: i64 = c
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sessions, 0);
    }
}
