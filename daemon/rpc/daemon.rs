//! Handlers of `hello`, `agents.list` and the `daemon.*` methods.

use serde_json::Value;

use super::{Ctx, parse};
use crate::protocol::{HelloParams, NoParams, RpcError, ShutdownParams};

/// With a run token, binds the connection to that run's session.
pub fn hello(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: HelloParams = parse(params)?;
    let caller = ctx.caller();
    ctx.service.check_alive(&caller).map_err(|e| ctx.error(e))?;
    let (result, caller) = ctx
        .service
        .hello(&caller, ctx.conn.peer, p)
        .map_err(|e| ctx.error(e))?;
    ctx.conn.set_caller(caller);
    ctx.encode(Ok(result))
}

pub fn status(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let NoParams {} = parse(params)?;
    ctx.encode(ctx.service.status(&ctx.caller()))
}

pub fn agents(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let NoParams {} = parse(params)?;
    ctx.encode(ctx.service.agents(&ctx.caller()))
}

/// Answers, then the daemon stops (runs are stopped and recorded).
pub fn shutdown(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ShutdownParams = parse(params)?;
    ctx.encode(ctx.service.shutdown(&ctx.caller(), p))
}

pub fn reload(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let NoParams {} = parse(params)?;
    ctx.encode(ctx.service.reload(&ctx.caller()))
}

/// The HTTP surface's bearer token (created when missing; replaced with `rotate`).
pub fn http_token(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.http_token(&ctx.caller(), parse(params)?))
}
