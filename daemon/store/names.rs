//! How the store finds a session by its id or key: unique indexes on the value with the first
//! group of its uuid moved to the end.
//!
//! A session uuid begins with 8 random hex digits, so that a short prefix names one session,
//! and continues with the time it was made (`crate::daemon::ids`). Indexed as they are, new
//! ids would land on random leaf pages; rotated, they land beside the last one made. A key is
//! rotated only in its trailing uuid (`agent:main:task:<uuid>`, `hook:<uuid>`); other keys
//! (`agent:main:main`, `cron:nightly`) are indexed as they are. Both rotations are one-to-one,
//! so a unique index on the rotated value is a unique index on the value.
//!
//! A lookup compares the indexed expression with the rotated value, computed here in Rust
//! (the same function as the SQL; a test holds them together).

/// The indexed expression for `sessions.id`: a rotation by 9 characters (the first group of a
/// uuid and its dash).
pub const ID_ORDER: &str = "(substr(id, 10) || substr(id, 1, 9))";

/// The indexed expression for `sessions.key`, written over `column` (the index is on `key`;
/// a query may apply it to another column holding keys).
pub fn key_order_sql(column: &str) -> String {
    format!(
        "(CASE WHEN length({column}) > 36 AND substr({column}, -37, 1) = ':' THEN substr({column}, 1, length({column}) - 36) || substr({column}, -27) || substr({column}, -36, 9) ELSE {column} END)"
    )
}

/// A condition matching `sessions.key` through its index to one parameter, which is bound to
/// [`key_order`] of the key.
pub fn key_is_param() -> &'static str {
    static CONDITION: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{} = ?", key_order_sql("key")));
    &CONDITION
}

/// A condition matching `sessions.id` through its index to one parameter, which is bound to
/// [`id_order`] of the id.
pub fn id_is_param() -> &'static str {
    static CONDITION: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{ID_ORDER} = ?"));
    &CONDITION
}

/// What [`ID_ORDER`] makes of `id`.
pub fn id_order(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let cut = chars.len().min(9);
    chars[cut..].iter().chain(&chars[..cut]).collect()
}

/// What [`key_order_sql`] makes of `key`.
pub fn key_order(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    if n > 36 && chars[n - 37] == ':' {
        let (head, uuid) = chars.split_at(n - 36);
        head.iter().chain(&uuid[9..]).chain(&uuid[..9]).collect()
    } else {
        key.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    const KEYS: &[&str] = &[
        "",
        "a",
        "agent:main:main",
        "cron:nightly",
        "agent:main:task:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
        "agent:ops:subagent:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
        "hook:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
        ":3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
        "3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
        "deleted:17:agent:main:task:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
        "cron:a-job-name-that-is-longer-than-thirty-six-characters",
        "cron:x:a-job-name-that-is-36-characters-long!",
        "agent:main:task:ünïcödé-und-mehr-zeichen-als-36-ja-wirklich",
        "agent:é:task:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6",
    ];

    #[test]
    fn the_rust_rotations_are_the_sql_ones() {
        let c = Connection::open_in_memory().unwrap();
        for key in KEYS {
            let (sql_key, sql_id): (String, String) = c
                .query_row(
                    &format!(
                        "SELECT {}, {ID_ORDER} FROM (SELECT ?1 AS key, ?1 AS id)",
                        key_order_sql("key")
                    ),
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(key_order(key), sql_key, "key {key:?}");
            assert_eq!(id_order(key), sql_id, "id {key:?}");
        }
    }

    #[test]
    fn rotations_are_one_to_one_and_put_the_time_first() {
        let rotated_keys: std::collections::BTreeSet<String> =
            KEYS.iter().map(|k| key_order(k)).collect();
        let rotated_ids: std::collections::BTreeSet<String> =
            KEYS.iter().map(|k| id_order(k)).collect();
        assert_eq!(rotated_keys.len(), KEYS.len());
        assert_eq!(rotated_ids.len(), KEYS.len());
        assert_eq!(
            key_order("agent:main:task:3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6"),
            "agent:main:task:0193-8c6a-b7f1-e5b3a9c4d5e63f2a9c41-"
        );
        assert_eq!(
            id_order("3f2a9c41-0193-8c6a-b7f1-e5b3a9c4d5e6"),
            "0193-8c6a-b7f1-e5b3a9c4d5e63f2a9c41-"
        );
    }
}
