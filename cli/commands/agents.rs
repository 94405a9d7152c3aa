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
    let mut table = Table::new(vec!["AGENT", "BACKEND", "DEFAULT", "RUNS"]);
    for agent in &agents.agents {
        table.push(vec![
            agent.id.clone(),
            agent.backend.clone(),
            if agent.is_default { "yes" } else { "" }.to_string(),
            runs(agent),
        ]);
    }
    table
}

/// What an agent runs: its command, or its endpoint and model.
fn runs(agent: &openclaw::protocol::AgentInfo) -> String {
    if let Some(command) = &agent.command {
        return openclaw::shell::quote_words(command);
    }
    match (&agent.endpoint, &agent.model) {
        (Some(e), Some(m)) => format!("{e} (model {m})"),
        (Some(e), None) => format!("{e} (its first model)"),
        (None, Some(m)) => format!("model {m}"),
        (None, None) => String::new(),
    }
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
                    endpoint: None,
                    model: None,
                },
                AgentInfo {
                    id: "worker".into(),
                    backend: "exec".into(),
                    command: Some(vec!["sh".into(), "-c".into(), "my-agent --stdin".into()]),
                    is_default: false,
                    endpoint: None,
                    model: None,
                },
                AgentInfo {
                    id: "llm".into(),
                    backend: "openai".into(),
                    command: None,
                    is_default: false,
                    endpoint: Some("http://127.0.0.1:8080/v1".into()),
                    model: Some("tiny".into()),
                },
            ],
        };
        assert_eq!(
            agents_table(&agents).aligned(false),
            "\
AGENT   BACKEND  DEFAULT  RUNS
main    echo     yes
worker  exec              sh -c 'my-agent --stdin'
llm     openai            http://127.0.0.1:8080/v1 (model tiny)
"
        );
    }
}
