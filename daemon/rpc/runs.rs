use crate::protocol::{DEFAULT_WAIT_SECONDS, RpcError, WaitParams};
use serde_json::Value;

use super::{Ctx, to_value, wait_duration};

/// `runs.wait`: waits (on the run's end event) up to `timeoutSeconds`, for a run named by id
/// or for a session's active (else last) run.
pub async fn wait(ctx: &Ctx, p: WaitParams) -> Result<Value, RpcError> {
    let timeout = wait_duration(p.timeout_seconds, DEFAULT_WAIT_SECONDS)?;
    let result = match (p.run_id, p.session_key) {
        (Some(run_id), None) => {
            if ctx.acting().is_some() || ctx.owner_filter().is_some() {
                // From inside a run, only runs of sessions it can see.
                let key = ctx.engine.run_session_key(&run_id).await?;
                let visible = match key {
                    Some(k) => ctx.session(&k).await.is_ok(),
                    None => false,
                };
                if !visible {
                    return Err(RpcError::not_found(format!("no run \"{run_id}\"")));
                }
            }
            ctx.engine.wait(&run_id, timeout).await?
        }
        (None, Some(key)) => {
            let session = ctx.session(&key).await?;
            ctx.engine.wait_session(&session, timeout).await?
        }
        _ => {
            return Err(RpcError::invalid_params(
                "give exactly one of runId and sessionKey",
            ));
        }
    };
    to_value(&result)
}
