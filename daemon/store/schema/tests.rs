use super::*;

/// What `EXPLAIN QUERY PLAN` says SQLite will do for `sql`, one step a line.
fn plan_of(conn: &Connection, sql: &str) -> Vec<String> {
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map([], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

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
        let plan = plan_of(&conn, sql);
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
    // The lookups' own conditions, their parameter given.
    let given = |condition: &str| condition.replace('?', "'x'");
    for (sql, index) in [
        (
            format!(
                "SELECT sid FROM sessions WHERE {}",
                given(super::super::names::key_is_param())
            ),
            "sessions_by_key",
        ),
        (
            format!(
                "SELECT sid FROM sessions WHERE {}",
                given(super::super::names::id_is_param())
            ),
            "sessions_by_id",
        ),
        (super::super::queries::retired_sql(), "sessions_by_key"),
        (
            format!(
                "SELECT sid FROM sessions WHERE {key} IN (SELECT {} FROM (SELECT 'a' AS k UNION SELECT 'b'))",
                super::super::names::key_order_sql("k")
            ),
            "sessions_by_key",
        ),
    ] {
        let plan = plan_of(&conn, &sql);
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

/// What a schema is made of, in a form two ways of making it compare by: each table's columns
/// (name, type, not null, default, key) and whether it has rowids; each index's table, columns
/// or statement, and uniqueness.
fn shape(conn: &Connection) -> Vec<String> {
    let objects: Vec<(String, String, String, Option<String>)> = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let rows = |sql: String| -> Vec<String> {
        let mut stmt = conn.prepare(&sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join(" "))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let mut out = Vec::new();
    for (kind, name, table, sql) in objects {
        let sql = sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        match kind.as_str() {
            "table" => {
                let without_rowid = sql.as_deref().is_some_and(|s| s.contains("WITHOUT ROWID"));
                out.push(format!("table {name} without rowid: {without_rowid}"));
                for c in rows(format!("PRAGMA table_xinfo({name})")) {
                    out.push(format!("  column {c}"));
                }
            }
            _ => {
                let unique = rows(format!("PRAGMA index_list({table})"))
                    .into_iter()
                    .find(|l| l.contains(&format!("\"{name}\"")))
                    .unwrap_or_default();
                // An index a constraint made has no statement: its columns say what it is.
                let made = match sql {
                    Some(s) => s,
                    None => rows(format!("PRAGMA index_xinfo({name})")).join("; "),
                };
                out.push(format!("{kind} {name} on {table} ({unique}): {made}"));
            }
        }
    }
    out
}

#[test]
fn a_new_store_has_the_schema_the_migrations_make() {
    let mut made = Connection::open_in_memory().unwrap();
    migrate(&mut made).unwrap();
    let mut replayed = Connection::open_in_memory().unwrap();
    {
        let tx = replayed.transaction().unwrap();
        for sql in MIGRATIONS {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .unwrap();
        tx.commit().unwrap();
    }
    let (a, b) = (shape(&made), shape(&replayed));
    assert!(a.len() > 20, "{a:#?}");
    let only_current: Vec<&String> = a.iter().filter(|l| !b.contains(l)).collect();
    let only_migrated: Vec<&String> = b.iter().filter(|l| !a.contains(l)).collect();
    assert!(
        only_current.is_empty() && only_migrated.is_empty(),
        "current::CURRENT has {only_current:#?}\nwhere the migrations make {only_migrated:#?}"
    );
}

#[test]
fn deleted_sessions_are_found_through_the_key_index_whatever_their_key() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate(&mut conn).unwrap();
    let keys = [
        "deleted:1:agent:main:task:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
        "deleted:2:cron:x",
        "deleted:3:agent:main:main",
        "agent:main:task:0c1d2e3f-0193-8c6a-b7f1-e5b3a9c4d5e6",
        "cron:deleted:x",
        "deleted",
    ];
    for (i, key) in keys.iter().enumerate() {
        conn.execute(
            "INSERT INTO sessions (sid, id, key, agent_id, kind, status, created_at, updated_at) VALUES (?1, ?2, ?3, 'main', 'task', 'idle', 0, 0)",
            rusqlite::params![i as i64 + 1, format!("id-{i}"), key],
        )
        .unwrap();
    }
    let mut found = super::super::queries::retired(&conn).unwrap();
    found.sort();
    assert_eq!(found, [1, 2, 3]);
}
