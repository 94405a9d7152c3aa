//! `sessions show`: one session, as a person reads it (`sessions.get`).

use clap::Args;
use openclaw::protocol::{GetParams, GetResult, SessionRow, methods};

use super::super::{Context, call_raw, typed};
use crate::failure::Failure;
use crate::output::{escape_controls, print_json, relative_time, write_stdout};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Session: key, id, unique prefix (6+ characters) or label
    #[arg(value_name = "KEY")]
    pub key: String,
}

pub fn show(ctx: &Context, args: ShowArgs) -> Result<(), Failure> {
    let params = GetParams {
        session_key: args.key,
    };
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::SESSIONS_GET, &params)?;
    if ctx.json {
        return print_json(&raw);
    }
    let got: GetResult = typed(methods::SESSIONS_GET, raw)?;
    let text = render_session(&got.session, &relative_time);
    write_stdout(&if ctx.terminal.stdout_is_tty {
        escape_controls(&text)
    } else {
        text
    })
}

/// `key  value` lines; times as `3m ago (2026-...)` through `ago`.
fn render_session(row: &SessionRow, ago: &dyn Fn(&str) -> String) -> String {
    let when = |ts: &str| format!("{} ({ts})", ago(ts));
    let mut fields: Vec<(&str, String)> = vec![
        ("key", row.key.clone()),
        ("id", row.session_id.clone()),
        ("agent", row.agent_id.clone()),
        ("kind", row.kind.clone()),
        (
            "status",
            match (&row.active_run_id, row.archived) {
                (Some(run), _) => format!("{} (run {run})", row.status),
                (None, true) => format!("{} (archived)", row.status),
                (None, false) => row.status.clone(),
            },
        ),
    ];
    if let Some(label) = &row.label {
        fields.push(("label", label.clone()));
    }
    fields.push((
        "parent",
        row.parent_key.clone().unwrap_or_else(|| "-".into()),
    ));
    fields.push(("children", row.children.to_string()));
    if let Some(model) = &row.model {
        fields.push(("model", model.clone()));
    }
    fields.push(("messages", row.message_count.to_string()));
    fields.push(("created", when(&row.created_at)));
    fields.push(("updated", when(&row.updated_at)));
    if let Some(ts) = &row.started_at {
        fields.push(("started", when(ts)));
    }
    if let Some(ts) = &row.ended_at {
        fields.push(("ended", when(ts)));
    }
    if let Some(ms) = row.runtime_ms {
        fields.push(("runtime", format!("{:.1} s", ms as f64 / 1000.0)));
    }
    if let Some(tokens) = row.tokens {
        fields.push(("tokens", tokens.to_string()));
    }
    if let Some(policy) = &row.send_policy {
        fields.push(("send policy", policy.clone()));
    }
    if let Some(last) = &row.last_message_preview {
        fields.push(("last message", last.replace('\n', " ")));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    fields
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_session_reads_as_key_value_lines() {
        let row: SessionRow = serde_json::from_value(json!({
            "key": "agent:main:subagent:12a7", "sessionId": "s-1", "agentId": "main",
            "kind": "subagent", "label": "daily", "parentKey": "agent:main:main",
            "status": "running", "activeRunId": "r-9", "model": null,
            "createdAt": "2026-11-21T23:00:00.000Z", "updatedAt": "2026-11-21T23:19:23.000Z",
            "startedAt": "2026-11-21T23:19:00.000Z", "endedAt": null, "runtimeMs": 1500,
            "tokens": null, "messageCount": 3, "lastMessagePreview": "working on\nit",
            "archived": false, "sendPolicy": null, "children": 2
        }))
        .unwrap();
        let out = render_session(&row, &|_| "3m ago".to_string());
        assert_eq!(
            out,
            "\
key           agent:main:subagent:12a7
id            s-1
agent         main
kind          subagent
status        running (run r-9)
label         daily
parent        agent:main:main
children      2
messages      3
created       3m ago (2026-11-21T23:00:00.000Z)
updated       3m ago (2026-11-21T23:19:23.000Z)
started       3m ago (2026-11-21T23:19:00.000Z)
runtime       1.5 s
last message  working on it
"
        );
    }
}
