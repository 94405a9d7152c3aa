//! Handlers of `sessions.subscribe` and `sessions.unsubscribe`. A subscription is the
//! service's event stream forwarded as notifications; it starts only once its reply is
//! queued, so nothing of it ever arrives before the reply that names it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::conn::Conn;
use super::{Answer, Ctx, parse, to_value};
use crate::daemon::service::{EventStream, StreamItem};
use crate::protocol::{
    RpcError, SubscribeParams, SubscribeResult, UnsubscribeParams, UnsubscribeResult,
};

/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 256;

pub async fn subscribe(ctx: &Arc<Ctx>, params: Option<Value>) -> Answer {
    let p: SubscribeParams = match parse(params) {
        Ok(p) => p,
        Err(e) => return Err(e).into(),
    };
    let sub = match ctx.service.subscribe(&ctx.caller(), p).await {
        Ok(s) => s,
        Err(e) => return Err(ctx.error(e)).into(),
    };
    let conn = &ctx.conn;
    let open = conn.subscription_count();
    if open >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
        return Err(RpcError::busy(
            format!(
                "this connection already has {open} subscriptions; unsubscribe some (or use another connection)"
            ),
            1000,
        ))
        .into();
    }
    let n = conn.next_subscription.fetch_add(1, Ordering::Relaxed);
    let id = format!("sub-{n}");
    let (cancel, done) = conn.register_subscription(&id);
    let result = to_value(&SubscribeResult {
        subscription: id.clone(),
        session_key: sub.session_key,
        last_seq: sub.last_seq,
        active_run_id: sub.active_run_id,
    });
    Answer {
        result,
        then: Some(Box::pin(forward(
            conn.clone(),
            id,
            sub.stream,
            cancel,
            done,
        ))),
    }
}

/// Pushes a subscription's stream until it ends, is cancelled, or the connection closes.
async fn forward(
    conn: Arc<Conn>,
    id: String,
    mut stream: EventStream,
    cancel: CancellationToken,
    done: tokio::sync::watch::Sender<bool>,
) {
    loop {
        let item = tokio::select! {
            item = stream.next_shared() => item,
            _ = cancel.cancelled() => break,
            _ = conn.closed.cancelled() => break,
        };
        let Some((item, shared)) = item else { break };
        let last = matches!(item, StreamItem::Ended { .. });
        if !conn.push(&id, &item, shared.as_ref()).await || last {
            break;
        }
    }
    conn.forget_subscription(&id);
    let _ = done.send(true);
}

/// Answers once the subscription has stopped, so nothing of it arrives after this reply.
pub async fn unsubscribe(ctx: &Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: UnsubscribeParams = parse(params)?;
    let Some((cancel, mut done)) = ctx.conn.take_subscription(&p.subscription) else {
        return Err(RpcError::not_found(format!(
            "no subscription \"{}\" on this connection",
            p.subscription
        )));
    };
    cancel.cancel();
    let _ = done.wait_for(|stopped| *stopped).await;
    to_value(&UnsubscribeResult { unsubscribed: true })
}
