//! Read queries. They run on read-only connections and see the last committed state.

use crate::protocol::{Message, RunStatus};
use crate::timefmt::now_ms;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value as Sql};

use super::{RunRecord, SessionRecord, StoreError, names};
use crate::protocol::{Provenance, ProvenanceKind, Role};
use crate::timefmt::rfc3339_ms;
use serde_json::Value;

const SESSION_COLUMNS: &str = "sid, id, key, agent_id, kind, label, parent_key, model, status, active_run_id, created_at, updated_at, started_at, ended_at, runtime_ms, tokens, message_count, last_preview, archived, send_policy, cleanup, spawn_depth, owner, (SELECT count(*) FROM sessions c WHERE c.parent_key = sessions.key) AS children, agent_session_id, stream_to";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        sid: r.get(0)?,
        id: r.get(1)?,
        key: r.get(2)?,
        agent_id: r.get(3)?,
        kind: r.get(4)?,
        label: r.get(5)?,
        parent_key: r.get(6)?,
        model: r.get(7)?,
        status: r.get(8)?,
        active_run_id: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        started_at: r.get(12)?,
        ended_at: r.get(13)?,
        runtime_ms: r.get(14)?,
        tokens: r.get(15)?,
        message_count: r.get(16)?,
        last_preview: r.get(17)?,
        archived: r.get(18)?,
        send_policy: r.get(19)?,
        cleanup: r.get(20)?,
        spawn_depth: r.get(21)?,
        owner: r.get(22)?,
        children: r.get(23)?,
        agent_session_id: r.get(24)?,
        stream_to: r.get(25)?,
    })
}

/// The session with this key (through its index; see `names`).
pub fn session_with_key(c: &Connection, key: &str) -> Result<Option<SessionRecord>, StoreError> {
    session_where(c, names::key_is_param(), names::key_order(key))
}

/// The session with this id (through its index; see `names`).
pub fn session_with_id(c: &Connection, id: &str) -> Result<Option<SessionRecord>, StoreError> {
    session_where(c, names::id_is_param(), names::id_order(id))
}

/// `condition` is one of `names`' own, with one parameter, never input.
fn session_where(
    c: &Connection,
    condition: &str,
    value: String,
) -> Result<Option<SessionRecord>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE {condition}");
    Ok(c.prepare_cached(&sql)?
        .query_row([value], session_from_row)
        .optional()?)
}

/// The session with this row id, for the writer (inside its transaction).
pub fn session_row(c: &Connection, sid: i64) -> rusqlite::Result<Option<SessionRecord>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = ?1");
    c.prepare_cached(&sql)?
        .query_row([sid], session_from_row)
        .optional()
}

pub fn run(c: &Connection, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT s.key, r.status, r.reply, r.error FROM runs r JOIN sessions s ON s.sid = r.sid WHERE r.id = ?1 AND s.key NOT GLOB 'deleted:*'",
        )?
        .query_row([run_id], |r| {
            Ok(RunRecord {
                session_key: r.get(0)?,
                status: r.get::<_, RunStatus>(1)?,
                reply: r.get(2)?,
                error: r.get(3)?,
            })
        })
        .optional()?;
    Ok(row)
}

#[derive(Debug)]
pub struct HistoryPage {
    /// Oldest first.
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// A stored message row (seq, ts, role, content, run_id, provenance, prov_from, usage) in its
/// wire shape, with the size of its stored content.
fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Result<(Message, usize), StoreError>> {
    let role: Role = r.get(2)?;
    let content: String = r.get(3)?;
    let kind: ProvenanceKind = r.get(5)?;
    let usage: Option<String> = r.get(7)?;
    let (seq, ts, run_id, from): (i64, i64, Option<String>, Option<String>) =
        (r.get(0)?, r.get(1)?, r.get(4)?, r.get(6)?);
    let len = content.len();
    Ok((|| {
        let content: Value = serde_json::from_str(&content)
            .map_err(|e| StoreError::Corrupt(format!("the content of message {seq}: {e}")))?;
        let usage = usage
            .map(|u| serde_json::from_str(&u))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("the usage of message {seq}: {e}")))?;
        Ok(Message {
            seq: seq.max(0) as u64,
            ts: rfc3339_ms(ts),
            role,
            content,
            run_id,
            provenance: Provenance { kind, from },
            usage,
            truncated: None,
            bytes: None,
        })
    })()
    .map(|m| (m, len)))
}

/// The newest `limit` messages before `before_seq` (all when `None`), returned oldest first,
/// within `budget` bytes of content: the page stops early (`has_more`) rather than grow past
/// it, and a message larger than the budget alone comes truncated.
pub fn history(
    c: &Connection,
    sid: i64,
    limit: u32,
    before_seq: Option<u64>,
    include_tools: bool,
    budget: usize,
) -> Result<HistoryPage, StoreError> {
    let before = before_seq.map(|s| s as i64).unwrap_or(i64::MAX);
    let sql = if include_tools {
        "SELECT seq, ts, role, content, run_id, provenance, prov_from, usage FROM messages WHERE sid = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
    } else {
        "SELECT seq, ts, role, content, run_id, provenance, prov_from, usage FROM messages WHERE sid = ?1 AND seq < ?2 AND role NOT IN ('tool_call', 'tool_result') ORDER BY seq DESC LIMIT ?3"
    };
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params![sid, before, limit as i64 + 1])?;
    let (mut messages, full) = within_budget(&mut rows, limit, budget)?;
    messages.reverse();
    Ok(HistoryPage {
        messages,
        has_more: full,
    })
}

/// Reads rows until `limit` messages or `budget` bytes; returns them and whether more rows
/// were left.
fn within_budget(
    rows: &mut rusqlite::Rows<'_>,
    limit: u32,
    budget: usize,
) -> Result<(Vec<Message>, bool), StoreError> {
    let mut messages = Vec::new();
    let mut used = 0usize;
    while let Some(row) = rows.next()? {
        if messages.len() >= limit as usize {
            return Ok((messages, true));
        }
        let (mut message, len) = message_from_row(row)??;
        if !messages.is_empty() && used + len > budget {
            return Ok((messages, true));
        }
        if len > budget {
            message = truncated(&message, len, budget);
        }
        used += len;
        messages.push(message);
    }
    Ok((messages, false))
}

/// The message with its content cut to about `budget` bytes, marked with its whole size
/// `len` (the bytes of its stored content). The one cut every reply uses: history pages,
/// catch-up and live deliveries alike.
pub fn truncated(message: &Message, len: usize, budget: usize) -> Message {
    let text: std::borrow::Cow<'_, str> = match &message.content {
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    };
    let mut end = budget.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Message {
        seq: message.seq,
        ts: message.ts.clone(),
        role: message.role,
        content: Value::String(text[..end].to_string()),
        run_id: message.run_id.clone(),
        provenance: message.provenance.clone(),
        usage: message.usage.clone(),
        truncated: Some(true),
        bytes: Some(len as u64),
    }
}

/// The bytes a message's content takes stored (its compact JSON), counted without building it.
pub fn stored_len(content: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, content);
    count.0
}

/// One message, whole.
pub fn message_at(c: &Connection, sid: i64, seq: u64) -> Result<Option<Message>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, ts, role, content, run_id, provenance, prov_from, usage FROM messages WHERE sid = ?1 AND seq = ?2",
    )?;
    let mut rows = stmt.query(rusqlite::params![sid, seq as i64])?;
    match rows.next()? {
        Some(row) => Ok(Some(message_from_row(row)??.0)),
        None => Ok(None),
    }
}

/// Up to `limit` messages after `after_seq`, oldest first, within `budget` bytes (a
/// follower's catch-up); the flag says whether more were left.
pub fn messages_after(
    c: &Connection,
    sid: i64,
    after_seq: u64,
    limit: u32,
    budget: usize,
) -> Result<(Vec<Message>, bool), StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, ts, role, content, run_id, provenance, prov_from, usage FROM messages WHERE sid = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(rusqlite::params![sid, after_seq as i64, limit as i64 + 1])?;
    within_budget(&mut rows, limit, budget)
}

/// Sessions whose key or id starts with `prefix` (its uuid part, for keys ending in one), or
/// whose label is `label`.
pub fn sessions_matching(
    c: &Connection,
    prefix: &str,
    label: &str,
    limit: u32,
) -> Result<Vec<SessionRecord>, StoreError> {
    // GLOB, not LIKE: case-sensitive and with no escape surprises once special characters
    // are refused by the caller.
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE (id GLOB ?1 || '*' OR key GLOB '*:' || ?1 || '*' OR label = ?2) AND key NOT GLOB 'deleted:*' ORDER BY updated_at DESC LIMIT ?3"
    );
    let rows = c
        .prepare_cached(&sql)?
        .query_map(
            rusqlite::params![prefix, label, limit as i64],
            session_from_row,
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Sessions deleted and not yet purged (a purge a crash interrupted).
pub fn retired(c: &Connection) -> Result<Vec<i64>, StoreError> {
    Ok(c.prepare_cached(&retired_sql())?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// A range of the key index: its rotation leaves a key's first characters as they are
/// (`names`), and no index serves a GLOB on an expression.
pub(super) fn retired_sql() -> String {
    format!(
        "SELECT sid FROM sessions WHERE {k} >= 'deleted:' AND {k} < 'deleted;'",
        k = names::key_order_sql("key")
    )
}

/// The newest run of a session.
pub fn last_run_id(c: &Connection, sid: i64) -> Result<Option<String>, StoreError> {
    Ok(
        c.prepare_cached("SELECT id FROM runs WHERE sid = ?1 ORDER BY rowid DESC LIMIT 1")?
            .query_row([sid], |r| r.get(0))
            .optional()?,
    )
}

/// The newest seq of a session (0 when it has no messages).
pub fn last_seq(c: &Connection, sid: i64) -> Result<Option<u64>, StoreError> {
    Ok(
        c.prepare_cached("SELECT last_seq FROM sessions WHERE sid = ?1")?
            .query_row([sid], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| v.max(0) as u64),
    )
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub kinds: Vec<crate::protocol::SessionKind>,
    pub limit: u32,
    /// (updated_at, sid) of the last row of the previous page.
    pub after: Option<(i64, i64)>,
    pub active_minutes: Option<u64>,
    pub parent_key: Option<String>,
    pub include_archived: bool,
    pub message_limit: u32,
    /// Bytes of messages each row may carry.
    pub message_budget: usize,
    /// What the caller may see.
    pub scope: Scope,
}

/// The sessions a caller may see (a run's token narrows it; the operator sees all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    /// Only the session with this key.
    Only(String),
    /// The session with this key and its descendants.
    Tree(String),
    /// Sessions of this agent.
    Agent(String),
    /// Sessions created by this paired device.
    Owner(String),
}

/// Whether `key` is `root` or one of its descendants (walks up the parent chain).
pub fn in_tree(c: &Connection, root: &str, key: &str) -> Result<bool, StoreError> {
    let mut current = key.to_string();
    // Bounded by the depth limit in practice; the cap only guards against a corrupt cycle.
    for _ in 0..64 {
        if current == root {
            return Ok(true);
        }
        let parent: Option<Option<String>> = c
            .prepare_cached(&format!(
                "SELECT parent_key FROM sessions WHERE {}",
                names::key_is_param()
            ))?
            .query_row([names::key_order(&current)], |r| r.get(0))
            .optional()?;
        match parent.flatten() {
            Some(p) => current = p,
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// The output of the last tool result of a run (an announce's fallback Result).
pub fn last_tool_output(
    c: &Connection,
    sid: i64,
    run_id: &str,
) -> Result<Option<String>, StoreError> {
    let content: Option<String> = c
        .prepare_cached(
            "SELECT content FROM messages WHERE sid = ?1 AND run_id = ?2 AND role = 'tool_result' ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(rusqlite::params![sid, run_id], |r| r.get(0))
        .optional()?;
    Ok(content.map(|c| match serde_json::from_str::<Value>(&c) {
        Ok(Value::Object(o)) => match o.get("output") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => Value::Object(o).to_string(),
        },
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => c,
    }))
}

/// When the next sub-agent session falls due for archiving (its last run's end).
pub fn oldest_archivable(c: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT min(ended_at) FROM sessions WHERE kind = 'subagent' AND archived = 0 AND mode = 'run' AND ended_at IS NOT NULL AND active_run_id IS NULL",
    )?
    .query_row([], |r| r.get(0))?)
}

#[derive(Debug)]
pub struct ListPage {
    pub sessions: Vec<(SessionRecord, Option<Vec<Message>>)>,
    /// (updated_at, sid) to continue after, when there are more.
    pub next: Option<(i64, i64)>,
    /// With more pages: how many match in all, up to `COUNT_CAP + 1`.
    pub total: Option<u64>,
}

/// Sessions a list counts at most for its `total`: counting is bounded like a page is.
pub const COUNT_CAP: u64 = 10_000;

/// The WHERE clause of a list's filters (its cursor aside), and its arguments.
fn list_filter(f: &ListFilter) -> (String, Vec<Sql>) {
    // Deleted sessions are archived until purged: `includeArchived` must not bring them back.
    let mut sql = String::from(" WHERE key NOT GLOB 'deleted:*'");
    let mut args: Vec<Sql> = Vec::new();
    if !f.include_archived {
        sql.push_str(" AND archived = 0");
    }
    if !f.kinds.is_empty() {
        sql.push_str(" AND kind IN (");
        for (i, k) in f.kinds.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(Sql::Text(k.as_str().to_string()));
        }
        sql.push(')');
    }
    if let Some(m) = f.active_minutes {
        sql.push_str(" AND updated_at >= ?");
        args.push(Sql::Integer(now_ms() - (m.min(1 << 40) as i64) * 60_000));
    }
    if let Some(p) = &f.parent_key {
        sql.push_str(" AND parent_key = ?");
        args.push(Sql::Text(p.clone()));
    }
    match &f.scope {
        Scope::All => {}
        Scope::Only(key) => {
            sql.push_str(" AND ");
            sql.push_str(names::key_is_param());
            args.push(Sql::Text(names::key_order(key)));
        }
        Scope::Owner(fp) => {
            sql.push_str(" AND owner = ?");
            args.push(Sql::Text(fp.clone()));
        }
        Scope::Agent(agent) => {
            sql.push_str(" AND agent_id = ?");
            args.push(Sql::Text(agent.clone()));
        }
        Scope::Tree(root) => {
            sql.push_str(&format!(
                " AND {} IN (WITH RECURSIVE tree(k) AS (SELECT ? UNION SELECT s.key FROM sessions s JOIN tree ON s.parent_key = tree.k) SELECT {} FROM tree)",
                names::key_order_sql("key"),
                names::key_order_sql("k"),
            ));
            args.push(Sql::Text(root.clone()));
        }
    }
    (sql, args)
}

/// Sessions, most recently updated first, one page at a time (keyset pagination on an index,
/// so a page costs the same at any depth and any store size).
pub fn list(c: &Connection, f: &ListFilter) -> Result<ListPage, StoreError> {
    let (filter, filter_args) = list_filter(f);
    let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions{filter}");
    let mut args = filter_args.clone();
    if let Some((updated, sid)) = f.after {
        sql.push_str(" AND (updated_at, sid) < (?, ?)");
        args.push(Sql::Integer(updated));
        args.push(Sql::Integer(sid));
    }
    sql.push_str(" ORDER BY updated_at DESC, sid DESC LIMIT ?");
    args.push(Sql::Integer(f.limit as i64 + 1));
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows: Vec<SessionRecord> = stmt
        .query_map(params_from_iter(args), session_from_row)?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > f.limit as usize;
    rows.truncate(f.limit as usize);
    let next = if more {
        rows.last().map(|r| (r.updated_at, r.sid))
    } else {
        None
    };
    let total = if more {
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM sessions{filter} LIMIT {})",
            COUNT_CAP + 1
        );
        let n: i64 = c
            .prepare_cached(&sql)?
            .query_row(params_from_iter(filter_args), |r| r.get(0))?;
        Some(n.max(0) as u64)
    } else {
        None
    };
    let mut sessions = Vec::with_capacity(rows.len());
    for rec in rows {
        let messages = if f.message_limit > 0 {
            Some(history(c, rec.sid, f.message_limit, None, false, f.message_budget)?.messages)
        } else {
            None
        };
        sessions.push((rec, messages));
    }
    Ok(ListPage {
        sessions,
        next,
        total,
    })
}
