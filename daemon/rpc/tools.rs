//! Handler of `tools.list`.

use serde_json::Value;

use super::{Ctx, parse};
use crate::protocol::{NoParams, RpcError};

pub fn list(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let NoParams {} = parse(params)?;
    ctx.encode(ctx.service.tool_list(&ctx.caller()))
}
