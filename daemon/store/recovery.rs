//! Start-up repair: what a crash left behind is made consistent before anything runs.

use std::collections::BTreeMap;

use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::Value;

use super::changes::{self, NewMessage};
use super::{PendingRun, Recovery, StoreError};
use crate::protocol::{Lane, ProvenanceKind, Role};
use crate::timefmt::now_ms;

/// Repairs what a crash left: runs that were running become `interrupted` (their sessions stay
/// usable, and their transcripts say so, with the leftover processes that were stopped:
/// `leftovers` by run id); runs that were queued and never started are returned to be queued
/// again.
pub fn recover(
    conn: &mut Connection,
    leftovers: &BTreeMap<Option<String>, Vec<i32>>,
) -> Result<Recovery, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    // `status IN (...)` lets SQLite use the partial index of unfinished runs, so start-up
    // costs the same with a million finished runs as with none.
    let interrupted_runs: Vec<(String, i64)> = tx
        .prepare(
            "UPDATE runs SET status = 'interrupted', ended_at = ?1,
                 error = 'the daemon stopped while this run was active'
             WHERE status IN ('queued', 'running') AND status = 'running'
             RETURNING id, sid",
        )?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let interrupted = interrupted_runs.len() as u64;
    for (run_id, sid) in &interrupted_runs {
        tx.execute(
            "UPDATE sessions SET status = 'interrupted', active_run_id = NULL, ended_at = ?2
             WHERE sid = ?1",
            params![sid, now],
        )?;
        let stopped = match leftovers.get(&Some(run_id.clone())) {
            Some(pids) => format!(
                "; {} of its processes were still running and were stopped at this start (pid {})",
                pids.len(),
                pids.iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let note = NewMessage {
            ts: now,
            role: Role::System,
            content: Value::String(format!(
                "run {run_id} ended interrupted: the daemon stopped while it was active{stopped}"
            )),
            run_id: Some(run_id.clone()),
            provenance: ProvenanceKind::Agent,
            from: None,
            usage: None,
        };
        changes::append_message(&tx, *sid, &note)?;
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
            // A lane name this version does not know runs in `main` rather than never.
            let lane = Lane::parse(&lane).unwrap_or(Lane::Main);
            let content = serde_json::from_str::<Value>(&content).map_err(|e| {
                StoreError::Corrupt(format!("the input message of queued run {run_id}: {e}"))
            })?;
            requeue.push(PendingRun {
                run_id,
                sid,
                lane,
                content,
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
