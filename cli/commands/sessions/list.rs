//! `sessions list`: sessions, newest first, one page (`--limit`, default 50) or all of them
//! (`--all`), with a note on stderr whenever more are left out.

use clap::Args;
use openclaw::protocol::{ListParams, ListResult, SessionRow, methods};
use serde_json::{Value, json};

use super::super::{Context, call_raw, typed};
use crate::failure::Failure;
use crate::output::{Column, Table, diagnostic, print_json, relative_time, write_stdout};

/// The daemon's largest page: what `--all` asks for each time.
const MAX_PAGE: u32 = 1000;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only sessions of this kind: main, subagent, cron, hook (repeatable)
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Only sessions active in the last MINUTES minutes
    #[arg(long, value_name = "MINUTES")]
    pub active: Option<u64>,
    /// At most N sessions (at most 1000 a page)
    #[arg(long, value_name = "N", default_value_t = 50, conflicts_with = "all", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Every session, however many (read page by page)
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
    /// Continue after the previous page: its nextCursor
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Only sessions spawned by this session
    #[arg(long, value_name = "KEY")]
    pub parent: Option<String>,
    /// Include archived sessions
    #[arg(long)]
    pub include_archived: bool,
    /// With --json: include each session's last N messages
    #[arg(long, value_name = "N")]
    pub message_limit: Option<u32>,
    /// Full keys and times, and every column, however wide the terminal
    #[arg(long)]
    pub wide: bool,
}

fn list_params(args: &ListArgs) -> ListParams {
    ListParams {
        kinds: (!args.kinds.is_empty()).then(|| args.kinds.clone()),
        limit: Some(if args.all { MAX_PAGE } else { args.limit }),
        cursor: args.cursor.clone(),
        active_minutes: args.active,
        message_limit: args.message_limit,
        parent_key: args.parent.clone(),
        include_archived: args.include_archived.then_some(true),
    }
}

pub fn list(ctx: &Context, args: ListArgs) -> Result<(), Failure> {
    let mut params = list_params(&args);
    let mut client = ctx.client()?;
    let mut raw = call_raw(&mut client, methods::SESSIONS_LIST, &params)?;
    if args.all {
        // Page after page into one result, as if the daemon had sent it whole.
        let mut rows: Vec<Value> = Vec::new();
        loop {
            let page: ListResult = typed(methods::SESSIONS_LIST, raw.clone())?;
            if let Some(Value::Array(sessions)) = raw.get_mut("sessions").map(Value::take) {
                rows.extend(sessions);
            }
            match page.next_cursor {
                Some(cursor) => {
                    params.cursor = Some(cursor);
                    raw = call_raw(&mut client, methods::SESSIONS_LIST, &params)?;
                }
                None => break,
            }
        }
        let total = rows.len();
        raw = json!({ "sessions": rows, "nextCursor": null, "total": total });
    }
    let page: ListResult = typed(methods::SESSIONS_LIST, raw.clone())?;
    if ctx.json {
        print_json(&raw)?;
    } else {
        let wide = args.wide || !ctx.terminal.stdout_is_tty;
        let table = sessions_table(&page.sessions, wide);
        // --wide on a terminal: every value whole, however long the lines get.
        let text = if args.wide && ctx.terminal.stdout_is_tty {
            table.aligned(ctx.terminal.color)
        } else {
            table.render(&ctx.terminal)
        };
        write_stdout(&text)?;
    }
    if let Some(note) = more_note(&page) {
        diagnostic("note", &note);
    }
    Ok(())
}

/// What to say when the page is not everything (scripts stopping at 50 silently was a trap).
fn more_note(page: &ListResult) -> Option<String> {
    let cursor = page.next_cursor.as_deref()?;
    let shown = page.sessions.len();
    let at_least = if page.total_is_lower_bound {
        "at least "
    } else {
        ""
    };
    Some(match page.total {
        Some(total) => format!(
            "showing {shown} of {at_least}{total} sessions; --limit N or --all for more (next page: --cursor {cursor})"
        ),
        None => format!(
            "showing {shown} sessions, and there are more; --limit N or --all for more (next page: --cursor {cursor})"
        ),
    })
}

/// For people: short ids, relative times, fitted to the terminal. `wide`: every value whole
/// (also what scripts get, tab-separated).
fn sessions_table(rows: &[SessionRow], wide: bool) -> Table {
    let mut table = Table::with_columns(vec![
        Column::shrinks("KEY", 8),
        Column::shrinks("AGENT", 5),
        Column::fixed("KIND"),
        Column::fixed("STATUS"),
        Column::shrinks("PARENT", 8),
        Column::fixed(if wide { "MESSAGES" } else { "MSGS" }),
        Column::fixed("UPDATED"),
        Column::shrinks("LABEL", 5),
    ]);
    let short = ShortKeys::new(rows);
    for row in rows {
        // An archived session has no run going: that it is archived is the news.
        let status = match (row.archived, wide) {
            (true, true) => format!("{} (archived)", row.status),
            (true, false) => "archived".to_string(),
            (false, _) => row.status.clone(),
        };
        let parent = row.parent_key.clone().unwrap_or_default();
        table.push(vec![
            if wide {
                row.key.clone()
            } else {
                short.of(&row.key)
            },
            row.agent_id.clone(),
            row.kind.clone(),
            status,
            if wide { parent } else { short.of(&parent) },
            row.message_count.to_string(),
            if wide {
                row.updated_at.clone()
            } else {
                relative_time(&row.updated_at)
            },
            row.label.clone().unwrap_or_default(),
        ]);
    }
    table
}

/// Keys as a table shows them: a key ending in a uuid (a spawned session) by the first
/// characters of its uuid, enough of them to tell the rows apart (8 at least) — a unique
/// prefix the daemon accepts wherever a session is named. Other keys in full.
struct ShortKeys {
    len: usize,
}

const SHORT_ID: usize = 8;
const UUID_LEN: usize = 36;

impl ShortKeys {
    fn new(rows: &[SessionRow]) -> ShortKeys {
        let mut ids: Vec<&str> = rows
            .iter()
            .flat_map(|r| [Some(r.key.as_str()), r.parent_key.as_deref()])
            .flatten()
            .filter_map(uuid_of)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // Sorted ids have sorted prefixes: equal ones are neighbours.
        let len = (SHORT_ID..UUID_LEN)
            .find(|&len| ids.windows(2).all(|w| w[0][..len] != w[1][..len]))
            .unwrap_or(UUID_LEN);
        ShortKeys { len }
    }

    fn of(&self, key: &str) -> String {
        match uuid_of(key) {
            Some(id) => id[..self.len].to_string(),
            None => key.to_string(),
        }
    }
}

/// The uuid a key ends with (`agent:main:subagent:<uuid>`), if it does.
fn uuid_of(key: &str) -> Option<&str> {
    let last = key.rsplit(':').next()?;
    let hyphens = [8, 13, 18, 23];
    let is_uuid = last.len() == UUID_LEN
        && last.char_indices().all(|(i, c)| {
            if hyphens.contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    is_uuid.then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::{parse, refused};

    const UUID_A: &str = "12a7aac7-5c19-4569-a277-5e185af47bc6";
    const UUID_B: &str = "3ec5f650-efd0-4a6b-9d6c-2b1f0f6a8e11";

    fn list_args(args: &[&str]) -> ListArgs {
        let mut argv = vec!["list"];
        argv.extend_from_slice(args);
        match parse(&argv) {
            SessionsCommand::List(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_flags_map_onto_list_params() {
        let args = list_args(&[
            "--kind",
            "main",
            "--kind",
            "subagent",
            "--active",
            "15",
            "--limit",
            "5",
            "--cursor",
            "c",
            "--parent",
            "p",
            "--include-archived",
        ]);
        assert_eq!(
            serde_json::to_value(list_params(&args)).unwrap(),
            json!({
                "kinds": ["main", "subagent"], "activeMinutes": 15, "limit": 5,
                "cursor": "c", "parentKey": "p", "includeArchived": true
            })
        );
        assert_eq!(
            serde_json::to_value(list_params(&list_args(&[]))).unwrap(),
            json!({"limit": 50})
        );
        assert_eq!(
            serde_json::to_value(list_params(&list_args(&["--all"]))).unwrap(),
            json!({"limit": 1000})
        );
        assert_eq!(refused(&["list", "--all", "--limit", "3"]), 2);
        assert_eq!(refused(&["list", "--limit", "0"]), 2);
    }

    fn row(key: &str, parent: Option<&str>) -> SessionRow {
        serde_json::from_value(json!({
            "key": key, "sessionId": "s", "agentId": "main", "kind": "subagent",
            "label": "the nightly report for the whole team", "parentKey": parent,
            "status": "interrupted", "activeRunId": null, "model": null, "createdAt": "c",
            "updatedAt": "2026-11-21T23:19:23.000Z", "startedAt": null, "endedAt": null,
            "runtimeMs": null, "tokens": null, "messageCount": 12, "lastMessagePreview": "hi",
            "archived": true, "sendPolicy": null
        }))
        .unwrap()
    }

    #[test]
    fn scripts_get_every_value_whole() {
        let rows = [row(
            &format!("agent:main:subagent:{UUID_A}"),
            Some("agent:main:main"),
        )];
        assert_eq!(
            sessions_table(&rows, true).tab_separated(),
            format!(
                "KEY\tAGENT\tKIND\tSTATUS\tPARENT\tMESSAGES\tUPDATED\tLABEL\n\
                 agent:main:subagent:{UUID_A}\tmain\tsubagent\tinterrupted (archived)\tagent:main:main\t12\t2026-11-21T23:19:23.000Z\tthe nightly report for the whole team\n"
            )
        );
    }

    #[test]
    fn the_table_for_people_fits_80_columns_with_short_ids() {
        let rows = [
            row(
                &format!("agent:main:subagent:{UUID_A}"),
                Some("agent:main:main"),
            ),
            row(
                &format!("agent:main:subagent:{UUID_B}"),
                Some(&format!("agent:main:subagent:{UUID_A}")),
            ),
            row("agent:main:cron:nightly-report", None),
        ];
        let out = sessions_table(&rows, false).fitted(false, 80);
        for line in out.lines() {
            assert!(
                line.chars().count() <= 80,
                "{} chars: {line}\n{out}",
                line.chars().count()
            );
        }
        assert!(out.contains("12a7aac7  "), "{out}");
        assert!(out.contains("3ec5f650"), "{out}");
        assert!(!out.contains(UUID_A), "{out}");
        assert!(out.contains("PARENT"), "{out}");
    }

    #[test]
    fn short_ids_grow_until_the_rows_differ() {
        let a = format!("agent:main:subagent:{UUID_A}");
        let b = format!("agent:main:subagent:{}", UUID_A.replace("bc6", "bc7"));
        let rows = [row(&a, None), row(&b, None)];
        let short = ShortKeys::new(&rows);
        assert_ne!(short.of(&a), short.of(&b));
        assert!(a.contains(&short.of(&a)) && short.of(&a).len() > 8);
        assert_eq!(ShortKeys::new(&rows[..1]).of(&a), &UUID_A[..8]);
        assert_eq!(ShortKeys::new(&[]).of("agent:main:main"), "agent:main:main");
        assert_eq!(uuid_of("agent:main:main"), None);
        assert_eq!(uuid_of(&a), Some(UUID_A));
    }

    #[test]
    fn a_partial_page_says_how_many_are_left_out() {
        let page = ListResult {
            sessions: vec![row("agent:main:main", None)],
            next_cursor: Some("17.3".into()),
            total: Some(120),
            total_is_lower_bound: false,
        };
        assert_eq!(
            more_note(&page).unwrap(),
            "showing 1 of 120 sessions; --limit N or --all for more (next page: --cursor 17.3)"
        );
        let capped = ListResult {
            sessions: page.sessions.clone(),
            next_cursor: page.next_cursor.clone(),
            total: Some(10_000),
            total_is_lower_bound: true,
        };
        assert!(
            more_note(&capped)
                .unwrap()
                .contains("of at least 10000 sessions")
        );
        let uncounted = ListResult {
            sessions: page.sessions.clone(),
            next_cursor: page.next_cursor.clone(),
            total: None,
            total_is_lower_bound: false,
        };
        assert!(more_note(&uncounted).unwrap().contains("there are more"));
        let whole = ListResult {
            next_cursor: None,
            ..page
        };
        assert_eq!(more_note(&whole), None);
    }
}
