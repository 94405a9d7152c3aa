//! `tools.list`: the session tools a caller gets, built exactly as the `openai` backend
//! builds them for a run, so `openclaw mcp` shows an MCP client what a native agent of the
//! same session would be offered.

use super::tools::tool_scope;
use super::{Caller, Result, SessionService};
use crate::config::{BackendKind, Config};
use crate::protocol::{ToolScopeInfo, ToolsListResult, methods, scopes};
use crate::tools::{AgentRuntime, ToolScope, session_tools};

impl SessionService {
    /// The session tools for `caller`: a run's are those of its agent at its depth; the
    /// operator and devices may target every agent (a device spawns only with
    /// `sessions.write`).
    pub fn tool_list(&self, caller: &Caller) -> Result<ToolsListResult> {
        self.authorize(caller, methods::TOOLS_LIST, scopes::SESSIONS_READ)?;
        let config = self.engine.config();
        let mut scope = match caller.acting() {
            Some(run) => tool_scope(&config, &run.agent_id, run.spawn_depth),
            None => outside_scope(&config, caller.has_scope(scopes::SESSIONS_WRITE)),
        };
        // `strict` is OpenAI's structured-outputs form (every field required, nullable);
        // MCP clients get the plain schemas.
        scope.strict = false;
        let tools = session_tools(&scope).iter().map(|t| t.mcp_tool()).collect();
        Ok(ToolsListResult {
            tools,
            scope: ToolScopeInfo::from(&scope),
        })
    }
}

/// A caller outside any run: every agent, the default one first (a spawn that names none
/// goes to the default agent, as over the CLI).
fn outside_scope(config: &Config, can_spawn: bool) -> ToolScope {
    let default = config.default_agent_id().to_string();
    let mut agents = config.all_agents();
    agents.sort_by_key(|(id, _)| *id != default);
    ToolScope {
        allowed_agents: agents
            .into_iter()
            .map(|(id, agent)| {
                let runtime = match agent.backend {
                    BackendKind::Acp => AgentRuntime::Acp,
                    BackendKind::Echo | BackendKind::Exec | BackendKind::OpenAi => {
                        AgentRuntime::Native
                    }
                };
                (id, runtime)
            })
            .collect(),
        can_spawn,
        strict: false,
        enabled: None,
    }
}
