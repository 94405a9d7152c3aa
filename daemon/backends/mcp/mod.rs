//! The MCP tool servers of an `openai` agent (`mcp_servers`): started with the agent's first
//! run, kept while the daemon runs (restarted with backoff when one exits), and their tools
//! offered to the model beside the session tools. A name that clashes with a session tool
//! or with another server's tool is offered as `<server>__<tool>`.

mod server;

use std::collections::HashMap;
use std::sync::{Arc, Once};
use std::time::Duration;

use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::config::McpServerConfig;
use server::{ServerState, Supervised};

/// How long a turn waits for a server still starting before going on without its tools.
const TURN_WAIT: Duration = Duration::from_secs(30);
/// OpenAI's limit on a function name.
const MAX_NAME: usize = 64;

/// The servers of one agent.
pub struct McpServers {
    servers: Vec<Arc<Supervised>>,
    started: Once,
    tasks: TaskTracker,
    stop: CancellationToken,
    /// Stops them when the agent is let go of (a reload that replaced it).
    _stop_on_drop: DropGuard,
}

impl McpServers {
    pub fn new(agent_id: &str, configs: &[McpServerConfig], kill_grace: Duration) -> McpServers {
        let stop = CancellationToken::new();
        McpServers {
            servers: configs
                .iter()
                .map(|c| Arc::new(Supervised::new(agent_id, c.clone(), kill_grace)))
                .collect(),
            started: Once::new(),
            tasks: TaskTracker::new(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        }
    }

    /// The tools offered this turn, their names chosen around `taken` (the session tools).
    /// The servers start on the first call; a server still starting is waited for, one
    /// that is down is left out until it is back.
    pub async fn catalog(&self, taken: &[&str]) -> McpCatalog {
        if self.servers.is_empty() {
            return McpCatalog::default();
        }
        self.started.call_once(|| {
            for server in &self.servers {
                self.tasks
                    .spawn(server.clone().supervise(self.stop.clone()));
            }
        });
        let mut ready = Vec::new();
        for server in &self.servers {
            if let ServerState::Ready(live) = server.settled(TURN_WAIT).await {
                ready.push((server.clone(), live.tools.clone()));
            }
        }
        // Names are chosen over every server's last known tools, so a tool keeps its name
        // while another server is down.
        let known: Vec<(String, Vec<Tool>)> = self
            .servers
            .iter()
            .map(|s| (s.name.clone(), s.known_tools()))
            .collect();
        let names = offered_names(taken, &known);
        let tools = ready
            .into_iter()
            .flat_map(|(server, tools)| {
                let names = &names;
                tools.into_iter().filter_map(move |tool| {
                    let offered = names.get(&(server.name.clone(), tool.name.to_string()))?;
                    Some(OfferedTool {
                        name: offered.clone(),
                        server: server.clone(),
                        tool,
                    })
                })
            })
            .collect();
        McpCatalog { tools }
    }

    /// The daemon is stopping: stop every server (SIGTERM, then SIGKILL after the grace)
    /// and wait until they are gone.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The MCP tools of one turn.
#[derive(Default)]
pub struct McpCatalog {
    tools: Vec<OfferedTool>,
}

pub struct OfferedTool {
    /// As the model sees it.
    pub name: String,
    server: Arc<Supervised>,
    tool: Tool,
}

impl McpCatalog {
    /// Chat Completions `tools[]` entries.
    pub fn openai_tools(&self) -> Vec<Value> {
        self.tools
            .iter()
            .map(|t| {
                let mut function = json!({
                    "name": t.name,
                    "parameters": Value::Object((*t.tool.input_schema).clone()),
                });
                if let Some(d) = &t.tool.description {
                    function["description"] = json!(d);
                }
                json!({ "type": "function", "function": function })
            })
            .collect()
    }

    pub fn find(&self, name: &str) -> Option<&OfferedTool> {
        self.tools.iter().find(|t| t.name == name)
    }
}

impl OfferedTool {
    /// Runs the call; `arguments` is the model's JSON object text (possibly empty), already
    /// checked to be an object.
    pub async fn call(&self, arguments: &str) -> Value {
        let arguments = match serde_json::from_str::<Value>(arguments.trim()) {
            Ok(Value::Object(map)) => Some(map),
            _ => Some(JsonObject::new()),
        };
        self.server.call(&self.tool.name, arguments).await
    }
}

/// The offered name of each `(server, tool)`: the tool's own (made safe for OpenAI) unless
/// it clashes with a session tool or another server's tool, then `<server>__<tool>`.
fn offered_names(
    taken: &[&str],
    servers: &[(String, Vec<Tool>)],
) -> HashMap<(String, String), String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for (_, tools) in servers {
        for tool in tools {
            *count.entry(safe_name(&tool.name)).or_default() += 1;
        }
    }
    let mut names = HashMap::new();
    for (server, tools) in servers {
        for tool in tools {
            let own = safe_name(&tool.name);
            let clashes = taken.contains(&own.as_str()) || count.get(&own).copied() > Some(1);
            let offered = if clashes {
                safe_name(&format!("{server}__{}", tool.name))
            } else {
                own
            };
            names.insert((server.clone(), tool.name.to_string()), offered);
        }
    }
    names
}

/// Letters, digits, `_` and `-`, at most 64 characters: what function names may hold.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc as StdArc;

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_string(), "d", StdArc::new(JsonObject::new()))
    }

    #[test]
    fn only_clashing_names_are_prefixed() {
        let servers = vec![
            (
                "fs".to_string(),
                vec![tool("read"), tool("sessions_list"), tool("search")],
            ),
            ("web".to_string(), vec![tool("search"), tool("fetch.page")]),
        ];
        let names = offered_names(&["sessions_list", "sessions_spawn"], &servers);
        let name = |s: &str, t: &str| names[&(s.to_string(), t.to_string())].clone();
        assert_eq!(name("fs", "read"), "read");
        assert_eq!(name("fs", "sessions_list"), "fs__sessions_list");
        assert_eq!(name("fs", "search"), "fs__search");
        assert_eq!(name("web", "search"), "web__search");
        assert_eq!(name("web", "fetch.page"), "fetch_page");
        assert_eq!(safe_name(&"x".repeat(80)).len(), 64);
    }
}
