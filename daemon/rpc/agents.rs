use crate::protocol::{AgentInfo, AgentsListResult, NoParams, RpcError};
use serde_json::Value;

use super::{Ctx, to_value};

/// `agents.list`: the configured agents, the implicit default included.
pub fn list(ctx: &Ctx, _: NoParams) -> Result<Value, RpcError> {
    let config = &ctx.engine.config;
    let default = config.default_agent_id().to_string();
    let agents = config
        .all_agents()
        .into_iter()
        .map(|(id, a)| AgentInfo {
            is_default: id == default,
            id,
            backend: a.backend.as_str().to_string(),
            command: a.command,
        })
        .collect();
    to_value(&AgentsListResult {
        default_agent: default,
        agents,
    })
}
