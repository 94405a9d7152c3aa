//! Handlers of `pairing.*`.

use serde_json::{Value, json};

use super::{Ctx, parse};
use crate::protocol::{NoParams, RpcError};

/// A paired device's proof changes who this connection is; the revocation link lives as long
/// as the connection.
pub async fn authenticate(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let conn = &ctx.conn;
    let done = ctx
        .service
        .authenticate(
            &ctx.caller(),
            conn.peer.uid,
            &conn.nonce,
            conn.kill.clone(),
            parse(params)?,
        )
        .await
        .map_err(|e| ctx.error(e))?;
    conn.set_caller(done.caller);
    if let Some(link) = done.link {
        conn.keep_device_link(link);
    }
    ctx.encode(Ok(done.result))
}

pub async fn list(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let NoParams {} = parse(params)?;
    ctx.encode(ctx.service.pairing_list(&ctx.caller()).await)
}

pub async fn approve(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let device = ctx
        .service
        .pairing_approve(&ctx.caller(), parse(params)?)
        .await;
    ctx.encode(
        device.map(|d| json!({ "fingerprint": d.fingerprint, "uid": d.uid, "scopes": d.scopes })),
    )
}

pub async fn reject(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let removed = ctx
        .service
        .pairing_reject(&ctx.caller(), parse(params)?)
        .await;
    ctx.encode(removed.map(|id| json!({ "requestId": id, "rejected": true })))
}

pub async fn revoke(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    ctx.encode(
        ctx.service
            .pairing_revoke(&ctx.caller(), parse(params)?)
            .await,
    )
}
