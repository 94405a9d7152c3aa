//! The schema and its migrations. `PRAGMA user_version` records how many have been applied;
//! the pending ones run in one transaction (one commit, one sync, however many there are), so
//! a crash mid-upgrade leaves the old version.

use rusqlite::Connection;

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
    for sql in MIGRATIONS.iter().skip(found as usize) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_fresh_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn queries_of_children_use_the_partial_parent_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for sql in [
            "SELECT (SELECT count(*) FROM sessions c WHERE c.parent_key = s.key) FROM sessions s",
            "SELECT sid FROM sessions WHERE parent_key = 'p'",
            "WITH RECURSIVE tree(k) AS (SELECT 'p' UNION SELECT s.key FROM sessions s JOIN tree ON s.parent_key = tree.k) SELECT k FROM tree",
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|l| l.contains("sessions_by_parent")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// A store as version 7 left it, holding `keys` (each with a v4-style id).
    fn store_at_version_7(keys: &[&str]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 7).unwrap();
        for (i, key) in keys.iter().enumerate() {
            conn.execute(
                "INSERT INTO sessions (id, key, agent_id, kind, status, created_at, updated_at, parent_key, label, owner, mode) VALUES (?1, ?2, 'main', 'task', 'done', ?3, ?3, ?4, ?5, 'fp', 'session')",
                rusqlite::params![
                    format!("{i:08x}-0000-4000-8000-000000000000"),
                    key,
                    i as i64,
                    (i > 0).then(|| keys[0]),
                    format!("label {i}"),
                ],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn version_8_keeps_every_session_and_still_refuses_a_second_key_or_id() {
        let keys = [
            "agent:main:main",
            "agent:main:task:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
            "hook:0c1d2e3f-0193-8c6a-b7f1-e5b3a9c4d5e6",
            "cron:nightly",
        ];
        let mut conn = store_at_version_7(&keys);
        let dump = |c: &Connection| -> Vec<(i64, String, String, Option<String>, String, String)> {
            c.prepare("SELECT sid, id, key, parent_key, label, mode FROM sessions ORDER BY sid")
                .unwrap()
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let before = dump(&conn);
        migrate(&mut conn).unwrap();
        assert_eq!(dump(&conn), before);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let insert = |id: &str, key: &str| {
            conn.execute(
                "INSERT INTO sessions (id, key, agent_id, kind, status, created_at, updated_at) VALUES (?1, ?2, 'main', 'task', 'idle', 0, 0)",
                [id, key],
            )
        };
        let taken_id = before[1].1.clone();
        for (id, key) in [
            (taken_id.as_str(), "cron:other"),
            ("fresh-id", keys[1]),
            ("fresh-id", keys[0]),
        ] {
            let err = insert(id, key).unwrap_err().to_string();
            assert!(err.contains("UNIQUE"), "{id} {key}: {err}");
        }
        insert("fresh-id", "cron:other").unwrap();
    }

    #[test]
    fn lookups_by_id_and_key_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let key = super::super::names::key_order_sql("key");
        let id = super::super::names::ID_ORDER;
        for (sql, index) in [
            (
                format!("SELECT sid FROM sessions WHERE {key} = 'x'"),
                "sessions_by_key",
            ),
            (
                format!("SELECT sid FROM sessions WHERE {id} = 'x'"),
                "sessions_by_id",
            ),
            (
                format!(
                    "SELECT sid FROM sessions WHERE {key} IN (SELECT {} FROM (SELECT 'a' AS k UNION SELECT 'b'))",
                    super::super::names::key_order_sql("k")
                ),
                "sessions_by_key",
            ),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(plan.iter().any(|l| l.contains(index)), "{sql}: {plan:?}");
        }
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer openclaw"), "{err}");
    }
}
