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
    let mut set_aside = Vec::new();
    {
        // LEFT JOIN: a queued run whose message cannot be found is named, not skipped.
        let mut stmt = tx.prepare(
            "SELECT r.id, r.sid, r.lane, r.input_seq, m.content, r.timeout_ms FROM runs r
             LEFT JOIN messages m ON m.sid = r.sid AND m.seq = r.input_seq
             WHERE r.status IN ('queued', 'running') AND r.status = 'queued'
             ORDER BY r.sid, r.input_seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let run_id: String = r.get(0)?;
            let sid: i64 = r.get(1)?;
            let seq: i64 = r.get(3).unwrap_or(0);
            let read = (|| -> Result<PendingRun, String> {
                // A lane name this version does not know runs in `main` rather than never.
                let lane = r
                    .get::<_, String>(2)
                    .ok()
                    .and_then(|l| Lane::parse(&l))
                    .unwrap_or(Lane::Main);
                let text: Option<String> = r.get(4).map_err(|e| e.to_string())?;
                let text = text.ok_or("the message is missing")?;
                let content = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())?;
                Ok(PendingRun {
                    run_id: run_id.clone(),
                    sid,
                    lane,
                    content,
                    timeout_ms: r.get(5).unwrap_or(None),
                })
            })();
            match read {
                Ok(p) => requeue.push(p),
                Err(why) => set_aside.push((run_id, sid, seq, why)),
            }
        }
    }
    // A row that cannot be read must not stop the daemon, nor run: its run ends `error`,
    // naming the row, and everything else starts as usual.
    for (run_id, sid, seq, why) in &set_aside {
        let error = format!(
            "its message (messages row sid {sid} seq {seq}) could not be read at start-up ({why}); the run was set aside"
        );
        tracing::warn!(run_id, sid, seq, "queued run set aside: {why}");
        tx.execute(
            "UPDATE runs SET status = 'error', ended_at = ?2, error = ?3 WHERE id = ?1",
            params![run_id, now, error],
        )?;
        tx.execute(
            "UPDATE sessions SET status = 'error', ended_at = ?2 WHERE sid = ?1 AND active_run_id IS NULL",
            params![sid, now],
        )?;
    }
    tx.commit()?;
    Ok(Recovery {
        interrupted,
        requeue,
    })
}
