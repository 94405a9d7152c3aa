//! Handlers of `sessions.subscribe` and `sessions.unsubscribe`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::protocol::{
    RpcError, SubscribeParams, SubscribeResult, UnsubscribeParams, UnsubscribeResult,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Ctx, to_value};
use crate::daemon::engine::internal;
use crate::daemon::subscription::{self, Kinds, Subscription};

/// Subscriptions one connection may hold: each is a task woken by every event.
const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 256;

/// `sessions.subscribe`: events of one session (a gapless follow) or of all sessions.
pub async fn subscribe(ctx: &Arc<Ctx>, p: SubscribeParams) -> Result<Value, RpcError> {
    let session = match &p.session_key {
        Some(k) => Some(ctx.session(k).await?),
        None => None,
    };
    if session.is_none() && ctx.scope() != crate::daemon::store::Scope::All {
        let why = if ctx.owner_filter().is_some() {
            "this device sees only the sessions it created: subscribe to one of them (sessionKey); all sessions need the admin scope"
        } else {
            "from inside a session, subscribe to one session (sessionKey) that it can see; all sessions need session.visibility = \"all\""
        };
        return Err(RpcError::app(crate::protocol::ErrorKind::Forbidden, why));
    }
    if p.after_seq.is_some() && session.is_none() {
        return Err(RpcError::invalid_params(
            "afterSeq needs a sessionKey to follow",
        ));
    }
    // Listen first, then read where the transcript is: whatever lands in between arrives
    // both ways and is sent once.
    let rx = ctx.engine.bus.subscribe();
    // A group already being committed when we started listening may carry no events (they are
    // built only when someone listens); once it is committed, the state read below includes it.
    ctx.engine.store.barrier().await;
    let kinds = Kinds::of(p.events.as_deref());
    let (last_seq, active_run_id) = match &session {
        Some(s) => {
            // Read after listening: a session deleted in between is gone here too, and its
            // delete event can no longer be missed.
            let last = ctx
                .engine
                .store
                .last_seq(s.sid)
                .await
                .map_err(internal)?
                .ok_or_else(|| super::no_session(&s.key))?;
            (Some(last), ctx.engine.active_run(s.sid))
        }
        None => (None, None),
    };
    if let (Some(after), Some(last)) = (p.after_seq, last_seq)
        && after > last
    {
        return Err(RpcError::invalid_params(format!(
            "afterSeq {after} is past the end of the transcript (its newest seq is {last})"
        )));
    }
    let open = ctx
        .conn
        .subscriptions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    if open >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
        return Err(RpcError::busy(
            format!(
                "this connection already has {open} subscriptions; unsubscribe some (or use another connection)"
            ),
            1000,
        ));
    }
    let n = ctx.conn.next_subscription.fetch_add(1, Ordering::Relaxed);
    let id = format!("sub-{n}");
    let follow_from = match (&session, kinds.has(crate::protocol::EventKind::Message)) {
        (Some(_), true) => Some(p.after_seq.unwrap_or(last_seq.unwrap_or(0))),
        _ => None,
    };
    let sub = Subscription {
        id: id.clone(),
        sid: session.as_ref().map(|s| s.sid),
        run_id: p.run_id.clone(),
        kinds,
        follow_from,
    };
    let cancel = CancellationToken::new();
    let (reply_sent, reply_gate) = tokio::sync::oneshot::channel();
    ctx.conn
        .reply_gates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(reply_sent);
    // Registered under the lock before the task can finish and remove itself.
    {
        let mut subs = ctx
            .conn
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let task = ctx.conn.tasks.spawn(subscription::run(
            ctx.clone(),
            sub,
            rx,
            cancel.clone(),
            reply_gate,
        ));
        subs.insert(id.clone(), (cancel, task));
    }
    to_value(&SubscribeResult {
        subscription: id,
        session_key: session.map(|s| s.key),
        last_seq,
        active_run_id,
    })
}

/// `sessions.unsubscribe`: answers once the subscription has stopped, so nothing of it
/// arrives after this reply.
pub async fn unsubscribe(ctx: &Arc<Ctx>, p: UnsubscribeParams) -> Result<Value, RpcError> {
    let entry = ctx
        .conn
        .subscriptions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&p.subscription);
    let Some((cancel, task)) = entry else {
        return Err(RpcError::not_found(format!(
            "no subscription \"{}\" on this connection",
            p.subscription
        )));
    };
    cancel.cancel();
    let _ = task.await;
    to_value(&UnsubscribeResult { unsubscribed: true })
}
