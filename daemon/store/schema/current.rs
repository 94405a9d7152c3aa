//! The schema as the last migration leaves it, for a store that has none yet: a new store is
//! made with it in one step instead of replaying every migration (which rebuilds the sessions
//! table along the way), and so starts sooner. A test holds it equal to the migrations'
//! result; a change to the schema is a new migration and the same change here.

pub const CURRENT: &str = r#"
    CREATE TABLE sessions (
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
    CREATE INDEX sessions_by_update ON sessions(updated_at DESC, sid DESC);
    CREATE INDEX sessions_by_parent ON sessions(parent_key) WHERE parent_key IS NOT NULL;
    CREATE INDEX sessions_archivable ON sessions(ended_at)
        WHERE kind = 'subagent' AND archived = 0;
    CREATE UNIQUE INDEX sessions_by_id ON sessions((substr(id, 10) || substr(id, 1, 9)));
    CREATE UNIQUE INDEX sessions_by_key ON sessions((CASE WHEN length(key) > 36 AND substr(key, -37, 1) = ':' THEN substr(key, 1, length(key) - 36) || substr(key, -27) || substr(key, -36, 9) ELSE key END));

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
        error       TEXT,
        timeout_ms  INTEGER
    );
    CREATE INDEX runs_by_session ON runs(sid);
    CREATE INDEX runs_unfinished ON runs(status) WHERE status IN ('queued', 'running');

    CREATE TABLE idempotency (
        key         TEXT PRIMARY KEY,
        method      TEXT NOT NULL,
        result      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );

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
"#;
