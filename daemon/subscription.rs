//! One subscription: forwards bus events that match its filter to its connection. A
//! subscription on one session is a follow: it sends every message after its starting seq
//! exactly once and in order, reading from the store whatever it did not get live (the
//! catch-up at the start, a gap, or events lost while its consumer was slow).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::protocol::{EventKind, Message, SessionRow, notifications};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::daemon::events::Event;
use crate::daemon::rpc::Ctx;

/// Messages read from the store per catch-up query.
const CATCH_UP_PAGE: u32 = 1000;

#[derive(Debug, Clone, Copy, Default)]
pub struct Kinds(u8);

impl Kinds {
    pub fn of(kinds: Option<&[EventKind]>) -> Kinds {
        match kinds {
            None => Kinds(0b11111),
            Some(list) => Kinds(list.iter().fold(0, |acc, k| acc | Kinds::bit(*k))),
        }
    }
    fn bit(kind: EventKind) -> u8 {
        match kind {
            EventKind::Message => 1,
            EventKind::Lifecycle => 2,
            EventKind::Assistant => 4,
            EventKind::Tool => 8,
            EventKind::Usage => 16,
        }
    }
    pub fn has(self, kind: EventKind) -> bool {
        self.0 & Kinds::bit(kind) != 0
    }
    fn has_stream(self, stream: &str) -> bool {
        EventKind::parse(stream).is_some_and(|k| self.has(k))
    }
}

pub struct Subscription {
    pub id: String,
    /// Only this session's events.
    pub sid: Option<i64>,
    /// Only this run's events.
    pub run_id: Option<String>,
    pub kinds: Kinds,
    /// For a follow: the last seq sent; messages come gapless from here.
    pub follow_from: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageNote<'a> {
    subscription: &'a str,
    session_key: &'a str,
    message: &'a Message,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangedNote<'a> {
    subscription: &'a str,
    phase: &'a str,
    session_key: &'a str,
    session: Option<&'a SessionRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunNote<'a> {
    pub subscription: &'a str,
    pub session_key: &'a str,
    pub run_id: &'a str,
    pub stream: &'a str,
    pub seq: u64,
    pub data: &'a Value,
}

#[derive(Serialize)]
struct IdNote<'a> {
    subscription: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u64>,
}

enum Flow {
    Continue,
    /// The connection is gone or the subscription is over.
    Stop,
}

/// Runs a subscription until it is cancelled (unsubscribe), its connection closes, its
/// session is deleted, or the daemon stops. `rx` was subscribed before the starting seq was
/// read, so nothing falls between the store and the live stream.
pub async fn run(
    ctx: Arc<Ctx>,
    mut sub: Subscription,
    mut rx: broadcast::Receiver<Event>,
    cancel: CancellationToken,
    reply_sent: tokio::sync::oneshot::Receiver<()>,
) {
    ctx.daemon.subscriptions.fetch_add(1, Ordering::Relaxed);
    let shutdown = ctx.daemon.shutdown.clone();
    // Nothing before the reply that names this subscription (events wait in `rx`).
    let replied = tokio::select! {
        _ = reply_sent => true,
        _ = cancel.cancelled() => false,
        _ = ctx.conn.closed.cancelled() => false,
    };
    if replied && matches!(catch_up(&ctx, &mut sub).await, Flow::Continue) {
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                _ = cancel.cancelled() => break,
                _ = ctx.conn.closed.cancelled() => break,
                _ = shutdown.cancelled() => {
                    end(&ctx, &sub, "shutdown").await;
                    break;
                }
            };
            if ctx.check_acting().is_err() {
                // Opened with a run's token: it ends with the run.
                end(&ctx, &sub, "run_ended").await;
                break;
            }
            let flow = match event {
                Ok(event) => forward(&ctx, &mut sub, &event).await,
                Err(RecvError::Lagged(skipped)) => {
                    let note = IdNote {
                        subscription: &sub.id,
                        reason: None,
                        skipped: Some(skipped),
                    };
                    if !ctx
                        .conn
                        .out
                        .notify(notifications::SUBSCRIPTION_LAGGED, &note)
                        .await
                    {
                        break;
                    }
                    catch_up(&ctx, &mut sub).await
                }
                Err(RecvError::Closed) => {
                    end(&ctx, &sub, "shutdown").await;
                    break;
                }
            };
            if matches!(flow, Flow::Stop) {
                break;
            }
        }
    }
    ctx.conn
        .subscriptions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&sub.id);
    ctx.daemon.subscriptions.fetch_sub(1, Ordering::Relaxed);
}

async fn end(ctx: &Ctx, sub: &Subscription, reason: &str) {
    let note = IdNote {
        subscription: &sub.id,
        reason: Some(reason),
        skipped: None,
    };
    ctx.conn
        .out
        .notify(notifications::SUBSCRIPTION_ENDED, &note)
        .await;
}

/// Sends, from the store, every message after the follow's last seq.
async fn catch_up(ctx: &Ctx, sub: &mut Subscription) -> Flow {
    let (Some(sid), Some(mut last)) = (sub.sid, sub.follow_from) else {
        return Flow::Continue;
    };
    let key = match ctx.engine.store.session_by_sid(sid).await {
        Ok(Some(s)) => s.key,
        _ => return Flow::Continue, // deleted: the delete event ends the subscription
    };
    loop {
        let page = match ctx
            .engine
            .store
            .messages_after(sid, last, CATCH_UP_PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("follow catch-up failed: {e}");
                return Flow::Stop;
            }
        };
        let full = page.len() == CATCH_UP_PAGE as usize;
        for message in &page {
            if !send_message(ctx, sub, &key, message).await {
                return Flow::Stop;
            }
            last = message.seq;
            sub.follow_from = Some(last);
        }
        if !full {
            return Flow::Continue;
        }
    }
}

async fn send_message(ctx: &Ctx, sub: &Subscription, key: &str, message: &Message) -> bool {
    let note = MessageNote {
        subscription: &sub.id,
        session_key: key,
        message,
    };
    ctx.conn
        .out
        .notify(notifications::SESSION_MESSAGE, &note)
        .await
}

async fn forward(ctx: &Ctx, sub: &mut Subscription, event: &Event) -> Flow {
    if sub.sid.is_some_and(|sid| sid != event.sid()) {
        return Flow::Continue;
    }
    let sent = match event {
        Event::Message {
            session_key,
            message,
            ..
        } => {
            if !sub.kinds.has(EventKind::Message)
                || sub
                    .run_id
                    .as_ref()
                    .is_some_and(|r| message.run_id.as_ref() != Some(r))
            {
                return Flow::Continue;
            }
            match sub.follow_from {
                Some(last) if message.seq <= last => true, // already sent (catch-up overlap)
                Some(last) if message.seq > last + 1 => return catch_up(ctx, sub).await,
                Some(_) => {
                    sub.follow_from = Some(message.seq);
                    send_message(ctx, sub, session_key, message).await
                }
                None => send_message(ctx, sub, session_key, message).await,
            }
        }
        Event::Changed {
            session_key,
            phase,
            row,
            ..
        } => {
            let deleted = *phase == "delete" && sub.sid.is_some();
            if sub.kinds.has(EventKind::Lifecycle) && sub.run_id.is_none() {
                let note = ChangedNote {
                    subscription: &sub.id,
                    phase,
                    session_key,
                    session: row.as_deref(),
                };
                if !ctx
                    .conn
                    .out
                    .notify(notifications::SESSIONS_CHANGED, &note)
                    .await
                {
                    return Flow::Stop;
                }
            }
            if deleted {
                end(ctx, sub, "deleted").await;
                return Flow::Stop;
            }
            true
        }
        Event::Run {
            session_key,
            run_id,
            stream,
            seq,
            data,
            ..
        } => {
            if !sub.kinds.has_stream(stream)
                || sub.run_id.as_deref().is_some_and(|r| r != &**run_id)
            {
                return Flow::Continue;
            }
            let note = RunNote {
                subscription: &sub.id,
                session_key,
                run_id,
                stream,
                seq: *seq,
                data,
            };
            ctx.conn.out.notify(notifications::RUN_EVENT, &note).await
        }
    };
    if sent { Flow::Continue } else { Flow::Stop }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_default_to_all_and_filter_streams() {
        let all = Kinds::of(None);
        assert!(EventKind::ALL.iter().all(|k| all.has(*k)));
        let some = Kinds::of(Some(&[EventKind::Assistant, EventKind::Tool]));
        assert!(some.has_stream("assistant") && some.has_stream("tool"));
        assert!(!some.has_stream("lifecycle") && !some.has(EventKind::Message));
        assert!(!some.has_stream("bogus"));
    }
}
