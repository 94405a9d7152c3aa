//! `openclaw __complete sessions|agents`: the values shells complete dynamically, one per
//! line, asked of a running daemon (never started for it). Quiet on any failure: a shell
//! completing a word must not print errors into the command line.

use openclaw::protocol::{AgentsListResult, ListParams, ListResult, NoParams, methods};

use super::Context;
use crate::autostart::Autostart;
use crate::output::write_stdout;

/// How many sessions a completion offers at most.
const MAX_SESSIONS: u32 = 200;

pub fn complete(ctx: &Context, what: &str) -> Result<(), crate::failure::Failure> {
    let Ok(mut client) = ctx.client_with(Autostart::Never) else {
        return Ok(());
    };
    let words: Vec<String> = match what {
        "sessions" => client
            .call::<_, ListResult>(
                methods::SESSIONS_LIST,
                &ListParams {
                    limit: Some(MAX_SESSIONS),
                    ..ListParams::default()
                },
            )
            .map(|list| list.sessions.into_iter().map(|s| s.key).collect())
            .unwrap_or_default(),
        "agents" => client
            .call::<_, AgentsListResult>(methods::AGENTS_LIST, &NoParams {})
            .map(|list| list.agents.into_iter().map(|a| a.id).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let text: String = words
        .iter()
        // A word with white space would split into several in the shell.
        .filter(|w| !w.chars().any(char::is_whitespace))
        .map(|w| format!("{w}\n"))
        .collect();
    write_stdout(&text)
}
