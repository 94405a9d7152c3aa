//! `openclaw agents list`.

use clap::Subcommand;
use openclaw::protocol::{AgentsListResult, NoParams, methods};

use super::{Context, call_raw, typed};
use crate::failure::Failure;
use crate::output::{Table, print_json, write_stdout};

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List the configured agents and their backends; the default one is marked
    List,
}

pub fn run(ctx: &Context, command: AgentsCommand) -> Result<(), Failure> {
    match command {
        AgentsCommand::List => list(ctx),
    }
}

fn list(ctx: &Context) -> Result<(), Failure> {
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::AGENTS_LIST, &NoParams {})?;
    if ctx.json {
        return print_json(&raw);
    }
    let agents: AgentsListResult = typed(methods::AGENTS_LIST, raw)?;
    write_stdout(&agents_table(&agents).render(&ctx.terminal))
}

fn agents_table(agents: &AgentsListResult) -> Table {
    let mut table = Table::new(vec!["AGENT", "BACKEND", "DEFAULT", "COMMAND"]);
    for agent in &agents.agents {
        table.push(vec![
            agent.id.clone(),
            agent.backend.clone(),
            if agent.is_default { "yes" } else { "" }.to_string(),
            agent
                .command
                .as_deref()
                .map(shell_words)
                .unwrap_or_default(),
        ]);
    }
    table
}

/// A command line as a shell would need it typed: words with spaces or quotes single-quoted.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclaw::protocol::AgentInfo;

    #[test]
    fn agents_table_marks_the_default_and_quotes_commands() {
        let agents = AgentsListResult {
            default_agent: "main".into(),
            agents: vec![
                AgentInfo {
                    id: "main".into(),
                    backend: "echo".into(),
                    command: None,
                    is_default: true,
                },
                AgentInfo {
                    id: "worker".into(),
                    backend: "exec".into(),
                    command: Some(vec!["sh".into(), "-c".into(), "my-agent --stdin".into()]),
                    is_default: false,
                },
            ],
        };
        assert_eq!(
            agents_table(&agents).aligned(false),
            "\
AGENT   BACKEND  DEFAULT  COMMAND
main    echo     yes
worker  exec              sh -c 'my-agent --stdin'
"
        );
    }

    #[test]
    fn shell_words_quote_only_when_needed() {
        let words =
            |ws: &[&str]| shell_words(&ws.iter().map(|w| w.to_string()).collect::<Vec<_>>());
        assert_eq!(words(&["cat"]), "cat");
        assert_eq!(words(&["echo", "it's", ""]), r"echo 'it'\''s' ''");
    }
}
