//! Filling a store offline (no daemon running), through the same changes a running daemon
//! makes — a submit per turn, its run's start and end — in one transaction: how benchmarks
//! build stores of a million messages without writing SQL of their own against the schema.

use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use super::changes::{
    self, FinishedRun, NewMessage, NewRun, NewSession, Receipt, Submit, SubmitOutcome, Target,
};
use super::emit::Emit;
use super::{DB_FILE, StoreError, schema};
use crate::protocol::{Cleanup, ProvenanceKind, Role, RunStatus, SessionKind, SpawnMode};

/// An open store being filled; everything is committed by [`Loader::finish`].
pub struct Loader {
    conn: Connection,
}

/// One session to load: its key, agent, label and turns (each a message and its reply).
pub struct LoadSession<'a> {
    pub key: &'a str,
    pub agent_id: &'a str,
    pub label: Option<&'a str>,
}

impl Loader {
    /// Opens (creating and migrating) the store in `data_dir`. No daemon may use it meanwhile.
    pub fn open(data_dir: &Path) -> Result<Loader, StoreError> {
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        // Durable at the end, by the checkpoint in `finish`: nothing is acknowledged before.
        conn.pragma_update(None, "synchronous", "OFF")?;
        schema::migrate(&mut conn)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Loader { conn })
    }

    /// Adds a session whose turns have all run and ended `ok`, as the daemon would have
    /// stored them; `turns` yields (message, reply) pairs, oldest first, 1 ms apart from
    /// `start_ms`.
    pub fn session(
        &mut self,
        s: &LoadSession<'_>,
        start_ms: i64,
        turns: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), StoreError> {
        let mut emit = Emit::disabled();
        let mut sid = None;
        for (i, (message, reply)) in turns.into_iter().enumerate() {
            let ts = start_ms + i as i64;
            let run_id = crate::daemon::ids::new_run_id().to_string();
            let target = match sid {
                Some(sid) => Target::Existing(sid),
                None => Target::New(Box::new(NewSession {
                    id: crate::daemon::ids::new_session_uuid().to_string(),
                    key: s.key.to_string(),
                    agent_id: s.agent_id.to_string(),
                    kind: crate::daemon::engine::kind_of(s.key),
                    label: s.label.map(str::to_string),
                    parent_key: None,
                    model: None,
                    cleanup: Cleanup::Keep,
                    mode: SpawnMode::Run,
                    agent_session_id: None,
                    stream_to: None,
                    spawn_depth: 0,
                    owner: None,
                })),
            };
            let kind = crate::daemon::engine::kind_of(s.key);
            let submit = Submit {
                target,
                message: NewMessage {
                    ts,
                    role: Role::User,
                    content: Value::String(message),
                    run_id: Some(run_id.clone()),
                    provenance: if sid.is_none() && kind == SessionKind::Subagent {
                        ProvenanceKind::SpawnTask
                    } else {
                        ProvenanceKind::Operator
                    },
                    from: None,
                    usage: None,
                },
                run: NewRun {
                    id: run_id.clone(),
                    lane: kind.lane(),
                    timeout_ms: None,
                },
                idempotency_key: None,
                method: "",
                receipt: Receipt {
                    run_id: run_id.clone(),
                    session_key: s.key.to_string(),
                    session_id: String::new(),
                    params: None,
                    attachments: Vec::new(),
                },
            };
            let SubmitOutcome::Created { sid: created } =
                changes::submit(&self.conn, &submit, &mut emit)?
            else {
                return Err(StoreError::Corrupt(format!("{} exists already", s.key)));
            };
            sid = Some(created);
            changes::run_started(&self.conn, &run_id, created, ts, &mut emit)?;
            let finished = FinishedRun {
                run_id: run_id.clone(),
                sid: created,
                status: RunStatus::Ok,
                reply: Some(NewMessage {
                    ts,
                    role: Role::Assistant,
                    content: Value::String(reply.clone()),
                    run_id: Some(run_id),
                    provenance: ProvenanceKind::Agent,
                    from: None,
                    usage: None,
                }),
                reply_text: Some(reply),
                error: None,
                ended_at: ts,
                runtime_ms: Some(0),
                tokens: None,
            };
            changes::run_finished(&self.conn, &finished, &mut emit)?;
        }
        Ok(())
    }

    /// Commits everything and writes it into the database file.
    pub fn finish(self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}
