use openclaw::protocol::{DEFAULT_WAIT_SECONDS, RpcError, WaitParams};
use serde_json::Value;

use super::{Ctx, to_value, wait_duration};

/// `runs.wait`: waits (on the run's end event) up to `timeoutSeconds`.
pub async fn wait(ctx: &Ctx, p: WaitParams) -> Result<Value, RpcError> {
    let timeout = wait_duration(p.timeout_seconds, DEFAULT_WAIT_SECONDS)?;
    to_value(&ctx.engine.wait(&p.run_id, timeout).await?)
}
