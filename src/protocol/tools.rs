//! `tools.list`: the session tools a caller gets, ready for an MCP `tools/list`, with the
//! scope they were built from so a transport outside the daemon (`openclaw mcp`) can parse
//! calls against exactly the schemas it showed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::{AgentRuntime, ToolScope};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolsListResult {
    /// MCP `tools/list` entries: `{name, description, inputSchema}`.
    pub tools: Vec<Value>,
    pub scope: ToolScopeInfo,
}

/// A [`ToolScope`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolScopeInfo {
    /// The agents a spawn may target, the default first.
    pub allowed_agents: Vec<AllowedAgent>,
    pub can_spawn: bool,
    #[serde(default)]
    pub strict: bool,
    /// Only these tools, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedAgent {
    pub id: String,
    /// `native` or `acp`.
    pub runtime: String,
}

impl From<&ToolScope> for ToolScopeInfo {
    fn from(scope: &ToolScope) -> ToolScopeInfo {
        ToolScopeInfo {
            allowed_agents: scope
                .allowed_agents
                .iter()
                .map(|(id, runtime)| AllowedAgent {
                    id: id.clone(),
                    runtime: match runtime {
                        AgentRuntime::Native => "native",
                        AgentRuntime::Acp => "acp",
                    }
                    .to_string(),
                })
                .collect(),
            can_spawn: scope.can_spawn,
            strict: scope.strict,
            enabled: scope.enabled.clone(),
        }
    }
}

impl ToolScopeInfo {
    /// The scope itself; an agent of a runtime this build does not know is left out (it
    /// could not be spawned through any tool this build offers).
    pub fn to_scope(&self) -> ToolScope {
        ToolScope {
            allowed_agents: self
                .allowed_agents
                .iter()
                .filter_map(|a| {
                    let runtime = match a.runtime.as_str() {
                        "native" => AgentRuntime::Native,
                        "acp" => AgentRuntime::Acp,
                        _ => return None,
                    };
                    Some((a.id.clone(), runtime))
                })
                .collect(),
            can_spawn: self.can_spawn,
            strict: self.strict,
            enabled: self.enabled.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_survives_the_wire() {
        let scope = ToolScope {
            allowed_agents: vec![
                ("main".into(), AgentRuntime::Native),
                ("coder".into(), AgentRuntime::Acp),
            ],
            can_spawn: true,
            strict: false,
            enabled: Some(vec!["sessions_list".into()]),
        };
        let wire = serde_json::to_value(ToolScopeInfo::from(&scope)).unwrap();
        assert_eq!(wire["allowedAgents"][1]["runtime"], "acp");
        let back: ToolScopeInfo = serde_json::from_value(wire).unwrap();
        assert_eq!(back.to_scope(), scope);
    }
}
