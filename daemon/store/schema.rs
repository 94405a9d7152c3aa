//! The schema and its migrations. `PRAGMA user_version` records how many have been applied;
//! the pending ones run in one transaction (one commit, one sync, however many there are), so
//! a crash mid-upgrade leaves the old version.

use rusqlite::Connection;

mod current;

/// Each entry upgrades the schema by one version. Never edit a shipped entry; append.
const MIGRATIONS: &[&str] = &[
    // 1: sessions, transcripts, runs, idempotency keys.
    r#"
    CREATE TABLE sessions (
        sid            INTEGER PRIMARY KEY,
        id             TEXT NOT NULL UNIQUE,
        key            TEXT NOT NULL UNIQUE,
        agent_id       TEXT NOT NULL,
        kind           TEXT NOT NULL,
        label          TEXT,
        parent_key     TEXT,
        model          TEXT,
        status         TEXT NOT NULL,
        active_run_id  TEXT,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        started_at     INTEGER,
        ended_at       INTEGER,
        runtime_ms     INTEGER,
        tokens         INTEGER,
        message_count  INTEGER NOT NULL DEFAULT 0,
        last_seq       INTEGER NOT NULL DEFAULT 0,
        last_preview   TEXT,
        archived       INTEGER NOT NULL DEFAULT 0,
        send_policy    TEXT,
        cleanup        TEXT NOT NULL DEFAULT 'keep',
        spawn_depth    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_by_update ON sessions(updated_at DESC, sid DESC);
    CREATE INDEX sessions_by_parent ON sessions(parent_key);

    CREATE TABLE messages (
        sid         INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        ts          INTEGER NOT NULL,
        role        TEXT NOT NULL,
        content     TEXT NOT NULL,
        run_id      TEXT,
        provenance  TEXT NOT NULL,
        prov_from   TEXT,
        usage       TEXT,
        PRIMARY KEY (sid, seq)
    ) WITHOUT ROWID;

    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        sid         INTEGER NOT NULL,
        status      TEXT NOT NULL,
        lane        TEXT NOT NULL,
        input_seq   INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        started_at  INTEGER,
        ended_at    INTEGER,
        reply       TEXT,
        error       TEXT
    );
    CREATE INDEX runs_by_session ON runs(sid);
    CREATE INDEX runs_unfinished ON runs(status) WHERE status IN ('queued', 'running');

    CREATE TABLE idempotency (
        key         TEXT PRIMARY KEY,
        method      TEXT NOT NULL,
        result      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    "#,
    // 2: finding the sub-agent sessions due for archiving without a scan.
    r#"
    CREATE INDEX sessions_archivable ON sessions(ended_at)
        WHERE kind = 'subagent' AND archived = 0;
    "#,
    // 3: other local users: pairing requests, paired devices, and who created each session.
    r#"
    CREATE TABLE pairing_requests (
        id            TEXT PRIMARY KEY,
        uid           INTEGER NOT NULL,
        user          TEXT,
        fingerprint   TEXT NOT NULL,
        public_key    TEXT NOT NULL,
        requested_at  INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL
    );
    CREATE INDEX pairing_requests_by_uid ON pairing_requests(uid);
    CREATE TABLE devices (
        fingerprint   TEXT PRIMARY KEY,
        public_key    TEXT NOT NULL,
        uid           INTEGER NOT NULL,
        user          TEXT,
        scopes        TEXT NOT NULL,
        approved_at   INTEGER NOT NULL,
        revoked_at    INTEGER
    );
    ALTER TABLE sessions ADD COLUMN owner TEXT;
    "#,
    // 4: a run's own time limit, so a run queued again after a restart keeps it.
    r#"
    ALTER TABLE runs ADD COLUMN timeout_ms INTEGER;
    "#,
    // 5: a spawn's mode: `session` children are kept listed (never archived).
    r#"
    ALTER TABLE sessions ADD COLUMN mode TEXT NOT NULL DEFAULT 'run';
    "#,
    // 6: what an agent that keeps sessions of its own (ACP) calls this one, and whether a
    // child's progress is relayed to its parent (`streamTo: "parent"`).
    r#"
    ALTER TABLE sessions ADD COLUMN agent_session_id TEXT;
    ALTER TABLE sessions ADD COLUMN stream_to TEXT;
    "#,
    // 7: most sessions have no parent; indexing only those that do saves a page per spawn.
    // Every query of it compares `parent_key = ...`, which SQLite knows implies NOT NULL.
    r#"
    DROP INDEX sessions_by_parent;
    CREATE INDEX sessions_by_parent ON sessions(parent_key) WHERE parent_key IS NOT NULL;
    "#,
    // 8: sessions are found by id and key through indexes on their rotated values (see
    // `store::names`), so a new session's entries land beside the last one's. SQLite cannot
    // drop the indexes of a column's UNIQUE, so the table is built again without them.
    r#"
    CREATE TABLE sessions_v8 (
        sid               INTEGER PRIMARY KEY,
        id                TEXT NOT NULL,
        key               TEXT NOT NULL,
        agent_id          TEXT NOT NULL,
        kind              TEXT NOT NULL,
        label             TEXT,
        parent_key        TEXT,
        model             TEXT,
        status            TEXT NOT NULL,
        active_run_id     TEXT,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        started_at        INTEGER,
        ended_at          INTEGER,
        runtime_ms        INTEGER,
        tokens            INTEGER,
        message_count     INTEGER NOT NULL DEFAULT 0,
        last_seq          INTEGER NOT NULL DEFAULT 0,
        last_preview      TEXT,
        archived          INTEGER NOT NULL DEFAULT 0,
        send_policy       TEXT,
        cleanup           TEXT NOT NULL DEFAULT 'keep',
        spawn_depth       INTEGER NOT NULL DEFAULT 0,
        owner             TEXT,
        mode              TEXT NOT NULL DEFAULT 'run',
        agent_session_id  TEXT,
        stream_to         TEXT
    );
    INSERT INTO sessions_v8 (sid, id, key, agent_id, kind, label, parent_key, model, status,
        active_run_id, created_at, updated_at, started_at, ended_at, runtime_ms, tokens,
        message_count, last_seq, last_preview, archived, send_policy, cleanup, spawn_depth,
        owner, mode, agent_session_id, stream_to)
    SELECT sid, id, key, agent_id, kind, label, parent_key, model, status,
        active_run_id, created_at, updated_at, started_at, ended_at, runtime_ms, tokens,
        message_count, last_seq, last_preview, archived, send_policy, cleanup, spawn_depth,
        owner, mode, agent_session_id, stream_to FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_v8 RENAME TO sessions;
    CREATE INDEX sessions_by_update ON sessions(updated_at DESC, sid DESC);
    CREATE INDEX sessions_by_parent ON sessions(parent_key) WHERE parent_key IS NOT NULL;
    CREATE INDEX sessions_archivable ON sessions(ended_at)
        WHERE kind = 'subagent' AND archived = 0;
    CREATE UNIQUE INDEX sessions_by_id ON sessions((substr(id, 10) || substr(id, 1, 9)));
    CREATE UNIQUE INDEX sessions_by_key ON sessions((CASE WHEN length(key) > 36 AND substr(key, -37, 1) = ':' THEN substr(key, 1, length(key) - 36) || substr(key, -27) || substr(key, -36, 9) ELSE key END));
    "#,
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the store was written by a newer openclaw (schema version {found}, this build knows {known}); upgrade openclaw or point OPENCLAW_HOME elsewhere"
    )]
    TooNew { found: i64, known: i64 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(MigrationError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    if found == 0 {
        // Every store openclaw wrote has a version; one without is new and empty.
        tx.execute_batch(current::CURRENT)?;
    } else {
        for sql in MIGRATIONS.iter().skip(found as usize) {
            tx.execute_batch(sql)?;
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests;
