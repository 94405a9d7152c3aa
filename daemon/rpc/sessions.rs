//! Handlers of the `sessions.*` methods and `runs.wait`.

use std::sync::Arc;

use serde_json::Value;

use super::{Ctx, parse};
use crate::daemon::service::{ProgressItem, SendOutcome, StreamItem};
use crate::protocol::{RpcError, SendParams, notifications};

pub async fn spawn(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.spawn(&ctx.caller(), parse(params)?).await)
}

/// With `streamProgress`, the run's events are pushed on this connection (as subscription
/// `run:<runId>`) until the final result, which is the reply.
pub async fn send(ctx: &Arc<Ctx>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: SendParams = parse(params)?;
    let outcome = ctx
        .service
        .send(&ctx.caller(), p)
        .await
        .map_err(|e| ctx.error(e))?;
    let mut progress = match outcome {
        SendOutcome::Done(result) => return ctx.encode(Ok(result)),
        SendOutcome::Streaming(progress) => progress,
    };
    let subscription = format!("run:{}", progress.run_id);
    while let Some(step) = progress.next().await {
        match step {
            ProgressItem::Event(item) => {
                let pushed = match &item {
                    StreamItem::Lagged { skipped } => {
                        let note =
                            serde_json::json!({ "subscription": subscription, "skipped": skipped });
                        ctx.conn
                            .out
                            .notify(notifications::SUBSCRIPTION_LAGGED, &note)
                            .await
                    }
                    item => ctx.conn.push(&subscription, item, None).await,
                };
                if !pushed {
                    break;
                }
            }
            ProgressItem::Done(result) => return ctx.encode(result),
        }
    }
    Err(RpcError::internal(
        "the connection closed before the run's result",
    ))
}

pub async fn wait(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.wait(&ctx.caller(), parse(params)?).await)
}

pub async fn history(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.history(&ctx.caller(), parse(params)?).await)
}

pub async fn message(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.message(&ctx.caller(), parse(params)?).await)
}

pub async fn list(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.list(&ctx.caller(), parse(params)?).await)
}

pub async fn get(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.get(&ctx.caller(), parse(params)?).await)
}

pub async fn kill(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.kill(&ctx.caller(), parse(params)?).await)
}

pub async fn patch(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let row = ctx.service.patch(&ctx.caller(), parse(params)?).await;
    ctx.encode(row.map(|session| serde_json::json!({ "session": session })))
}

pub async fn delete(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(ctx.service.delete(&ctx.caller(), parse(params)?).await)
}
