//! Following as a stream: `subscribe` returns a stream of typed events that any transport
//! forwards (JSON-RPC notifications, SSE). A follow of one session yields every message
//! after its starting seq exactly once and in order, reading from the store whatever it did
//! not get live (the catch-up at the start, a gap, or events dropped while its consumer was
//! slow), so memory stays bounded however slowly the consumer reads.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::subscription_slots::SubscriptionSlot;
use super::{Caller, Result, ServiceError, SessionService, no_session};
use crate::daemon::engine::Engine;
use crate::daemon::events::{Event, Listener, Received, Route};
use crate::daemon::shared_encoding::SharedEncoding;
use crate::protocol::{EventKind, Message, SessionRow, SubscribeParams, methods, scopes};

/// Messages read from the store per catch-up query.
const CATCH_UP_PAGE: u32 = 1000;

/// Which event kinds a stream carries, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub fn of(kinds: Option<&[EventKind]>) -> Kinds {
        match kinds {
            None => Kinds::all(),
            Some(list) => Kinds(list.iter().fold(0, |acc, k| acc | Kinds::bit(*k))),
        }
    }

    pub fn all() -> Kinds {
        Kinds::of(Some(&EventKind::ALL))
    }

    /// Every run stream, no transcript or session changes (a send's own progress).
    pub fn run_streams() -> Kinds {
        Kinds(Kinds::all().0 & !Kinds::bit(EventKind::Message))
    }

    fn bit(kind: EventKind) -> u8 {
        1 << (kind as u8)
    }

    pub fn has(self, kind: EventKind) -> bool {
        self.0 & Kinds::bit(kind) != 0
    }

    fn has_stream(self, stream: &str) -> bool {
        EventKind::parse(stream).is_some_and(|k| self.has(k))
    }
}

/// One thing a stream yields.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// A committed transcript message.
    Message {
        session_key: Arc<str>,
        message: Arc<Message>,
    },
    /// A session was created, started or ended a run, got a message, was patched, archived
    /// or deleted.
    Changed {
        phase: &'static str,
        session_key: Arc<str>,
        session: Option<Arc<SessionRow>>,
    },
    /// Progress of a run.
    Run {
        session_key: Arc<str>,
        run_id: Arc<str>,
        stream: &'static str,
        seq: u64,
        data: Arc<Value>,
    },
    /// Live events were skipped because the consumer fell behind (transcript messages never
    /// are: they come from the store).
    Lagged { skipped: u64 },
    /// The stream is over: `deleted`, `shutdown`, `run_ended`, `error`. Nothing follows.
    Ended { reason: &'static str },
}

/// What `subscribe` answers: where the session was when the stream started, and the stream.
pub struct Subscription {
    pub session_key: Option<String>,
    pub last_seq: Option<u64>,
    pub active_run_id: Option<String>,
    pub stream: EventStream,
}

pub struct EventStream {
    engine: Arc<Engine>,
    caller: Caller,
    listener: Listener,
    sid: Option<i64>,
    session_key: Option<Arc<str>>,
    run_id: Option<String>,
    kinds: Kinds,
    /// For a follow: the last seq yielded; messages come gapless from here.
    follow_from: Option<u64>,
    /// Items ready to yield, each with the encoding it shares with other subscribers of
    /// the same event (none for what only this stream yields: catch-up, lag, end).
    pending: VecDeque<(StreamItem, Option<SharedEncoding>)>,
    catch_up: bool,
    /// The assistant text the active run had streamed when the stream started, yielded
    /// once after the catch-up (so it lands where the run's reply will).
    joined: Option<StreamItem>,
    /// Assistant deltas of this run numbered up to this seq are in `joined`: skipped live.
    joined_through: Option<(Arc<str>, u64)>,
    /// End once this run's `ended` lifecycle event has been yielded.
    end_with_run: bool,
    ended: bool,
    shutdown: CancellationToken,
    counted: Arc<super::DaemonInfo>,
    /// The subscription slot this stream holds against the caps, released with it (a
    /// send's own progress stream holds none: it lasts one run).
    _slot: Option<SubscriptionSlot>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.counted.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionService {
    /// Events of one session (a gapless follow, with `afterSeq`), of one run, or of every
    /// session the caller may see.
    pub async fn subscribe(&self, caller: &Caller, p: SubscribeParams) -> Result<Subscription> {
        self.authorize(caller, methods::SESSIONS_SUBSCRIBE, scopes::SESSIONS_READ)?;
        let session = match &p.session_key {
            Some(k) => Some(self.session(caller, k).await?),
            None => None,
        };
        if session.is_none()
            && p.run_id.is_none()
            && self.scope(caller) != crate::daemon::store::Scope::All
        {
            let why = if caller.owner_filter().is_some() {
                "this device sees only the sessions it created: subscribe to one of them (sessionKey); all sessions need the admin scope"
            } else {
                "from inside a session, subscribe to one session (sessionKey) that it can see; all sessions need session.visibility = \"all\""
            };
            return Err(ServiceError::forbidden(why));
        }
        if p.after_seq.is_some() && session.is_none() {
            return Err(ServiceError::InvalidParams(
                "afterSeq needs a sessionKey to follow".into(),
            ));
        }
        // Taken before anything is set up, so a refusal costs nothing; released when the
        // stream (and so the connection's or response's hold on it) drops.
        let slot = self
            .subscription_slots
            .take(caller, &self.engine.config().limits)?;
        let route = match (&session, &p.run_id) {
            (Some(s), _) => Route::Session(s.sid),
            (None, Some(run)) => Route::Run(run.clone()),
            (None, None) => Route::All,
        };
        // Listen first, then read where things are: whatever lands in between arrives both
        // ways and is yielded once.
        let listener = self.engine.bus.listen(route);
        // A group already being committed when we started listening may carry no events
        // (they are built only when someone listens); once it is committed, the state read
        // below includes it.
        self.engine.store.barrier().await;
        let mut run_over = false;
        if let Some(run) = &p.run_id {
            let key = self.engine.run_session_key(run).await?;
            let visible = match &key {
                Some(k) => self.find_visible(caller, k).await?.is_some(),
                None => false,
            };
            let in_session = match (&session, &key) {
                (Some(s), Some(k)) => &s.key == k,
                _ => true,
            };
            if !visible || !in_session {
                return Err(ServiceError::NotFound(format!(
                    "no run \"{run}\"{}",
                    session
                        .as_ref()
                        .map(|s| format!(" in session {}", s.key))
                        .unwrap_or_default()
                )));
            }
            run_over = !self.engine.is_live(run);
        }
        let kinds = Kinds::of(p.events.as_deref());
        let (last_seq, active_run_id) = match &session {
            Some(s) => {
                // Read after listening: a session deleted in between is gone here too, and
                // its delete event can no longer be missed.
                let last = self
                    .engine
                    .store
                    .last_seq(s.sid)
                    .await?
                    .ok_or_else(|| no_session(&s.key))?;
                (Some(last), self.engine.active_run(&s.key))
            }
            None => (None, None),
        };
        let follow_from = match (&session, kinds.has(EventKind::Message)) {
            (Some(_), true) => Some(p.after_seq.unwrap_or(last_seq.unwrap_or(0))),
            _ => None,
        };
        self.daemon.subscriptions.fetch_add(1, Ordering::Relaxed);
        let mut stream = EventStream {
            engine: self.engine.clone(),
            caller: caller.clone(),
            listener,
            sid: session.as_ref().map(|s| s.sid),
            session_key: session.as_ref().map(|s| s.key.as_str().into()),
            run_id: p.run_id.clone(),
            kinds,
            catch_up: follow_from.is_some_and(|from| Some(from) < last_seq),
            follow_from,
            pending: VecDeque::new(),
            joined: None,
            joined_through: None,
            end_with_run: p.run_id.is_some(),
            ended: false,
            shutdown: self.daemon.shutdown.clone(),
            counted: self.daemon.clone(),
            _slot: Some(slot),
        };
        if run_over {
            stream.end("run_ended");
        } else if kinds.has(EventKind::Assistant) {
            // Read last: what the run streams from now on arrives live, numbered after it.
            let run = p.run_id.clone().or_else(|| active_run_id.clone());
            let key = match &session {
                Some(s) => Some(s.key.clone()),
                None => match &p.run_id {
                    Some(r) => self.engine.run_session_key(r).await?,
                    None => None,
                },
            };
            if let (Some(run), Some(key)) = (run, key) {
                stream.join_run(&key, &run);
            }
        }
        Ok(Subscription {
            session_key: session.map(|s| s.key),
            last_seq,
            active_run_id,
            stream,
        })
    }

    /// The progress of one run, for a send that streams it.
    pub(super) fn run_stream(&self, caller: &Caller, run_id: &str) -> EventStream {
        self.daemon.subscriptions.fetch_add(1, Ordering::Relaxed);
        EventStream {
            engine: self.engine.clone(),
            caller: caller.clone(),
            listener: self.engine.bus.listen(Route::Run(run_id.to_string())),
            sid: None,
            session_key: None,
            run_id: Some(run_id.to_string()),
            kinds: Kinds::run_streams(),
            follow_from: None,
            pending: VecDeque::new(),
            catch_up: false,
            joined: None,
            joined_through: None,
            end_with_run: false,
            ended: false,
            shutdown: self.daemon.shutdown.clone(),
            counted: self.daemon.clone(),
            _slot: None,
        }
    }
}

impl EventStream {
    /// Starts the stream with what `run` has streamed so far, as one assistant delta
    /// marked `joined` (and `cut` when only its tail was kept).
    fn join_run(&mut self, session_key: &str, run: &str) {
        let Some(so_far) = self.engine.streamed_so_far(run) else {
            return;
        };
        let run: Arc<str> = run.into();
        self.joined_through = Some((run.clone(), so_far.seq));
        if so_far.text.is_empty() {
            return;
        }
        let mut data = serde_json::json!({ "delta": so_far.text, "joined": true });
        if so_far.cut {
            data["cut"] = true.into();
        }
        self.joined = Some(StreamItem::Run {
            session_key: session_key.into(),
            run_id: run,
            stream: "assistant",
            seq: so_far.seq,
            data: Arc::new(data),
        });
    }

    /// The run this stream is narrowed to, if any.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The next item; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<StreamItem> {
        self.next_shared().await.map(|(item, _)| item)
    }

    /// The next item with the encoding it shares with every other subscriber of the same
    /// event, for transports to encode it once (`notify::params_shared`).
    pub async fn next_shared(&mut self) -> Option<(StreamItem, Option<SharedEncoding>)> {
        loop {
            if let Some(item) = self.take_pending() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            if self.catch_up {
                self.catch_up = false;
                if let Err(e) = self.read_missed().await {
                    tracing::error!("follow catch-up failed: {e}");
                    self.end("error");
                }
                continue;
            }
            if let Some(joined) = self.joined.take() {
                self.pending.push_back((joined, None));
                continue;
            }
            let received = tokio::select! {
                r = self.listener.recv() => r,
                _ = self.shutdown.cancelled() => {
                    self.end("shutdown");
                    continue;
                }
            };
            self.take(received);
        }
    }

    /// The next item if one is ready without waiting (what was published before now).
    pub fn try_next(&mut self) -> Option<StreamItem> {
        loop {
            if let Some((item, _)) = self.take_pending() {
                return Some(item);
            }
            if self.ended || self.catch_up {
                return None;
            }
            if let Some(joined) = self.joined.take() {
                self.pending.push_back((joined, None));
                continue;
            }
            let received = self.listener.try_recv()?;
            self.take(received);
        }
    }

    fn take_pending(&mut self) -> Option<(StreamItem, Option<SharedEncoding>)> {
        let item = self.pending.pop_front()?;
        if matches!(item.0, StreamItem::Ended { .. }) {
            self.ended = true;
            self.pending.clear();
        }
        Some(item)
    }

    fn end(&mut self, reason: &'static str) {
        self.pending.push_back((StreamItem::Ended { reason }, None));
    }

    /// Turns what the bus delivered into what this stream yields.
    fn take(&mut self, received: Received) {
        if let Caller::Run(a) = &self.caller
            && !self.engine.token_alive(&a.run_id)
        {
            // Opened with a run's token: it ends with the run.
            self.end("run_ended");
            return;
        }
        match received {
            Received::Event(event) => self.filter(event),
            Received::Lagged(skipped) => {
                self.pending
                    .push_back((StreamItem::Lagged { skipped }, None));
                self.catch_up = self.follow_from.is_some();
            }
            Received::Closed => self.end("shutdown"),
        }
    }

    fn filter(&mut self, event: Event) {
        if self.sid.is_some_and(|sid| sid != event.sid()) {
            return;
        }
        let wrong_run = |run: Option<&str>| self.run_id.as_deref().is_some_and(|r| Some(r) != run);
        match event {
            Event::Message {
                session_key,
                message,
                shared,
                ..
            } => {
                if !self.kinds.has(EventKind::Message) || wrong_run(message.run_id.as_deref()) {
                    return;
                }
                match self.follow_from {
                    Some(last) if message.seq <= last => return, // already yielded (catch-up overlap)
                    Some(last) if message.seq > last + 1 => {
                        self.catch_up = true;
                        return;
                    }
                    Some(_) => self.follow_from = Some(message.seq),
                    None => {}
                }
                // Live deliveries keep to the reply budget as pages do: a message larger
                // than it comes truncated with its whole size (`sessions.message` reads it).
                let budget = self.engine.config().limits.max_reply_bytes;
                let (message, cached) = shared.fit(&message, budget);
                self.pending.push_back((
                    StreamItem::Message {
                        session_key,
                        message,
                    },
                    cached.then_some(shared),
                ));
            }
            Event::Changed {
                session_key,
                phase,
                row,
                shared,
                ..
            } => {
                if self.kinds.has(EventKind::Lifecycle) && self.run_id.is_none() {
                    self.pending.push_back((
                        StreamItem::Changed {
                            phase,
                            session_key,
                            session: row,
                        },
                        Some(shared),
                    ));
                }
                if phase == "delete" && self.sid.is_some() {
                    self.end("deleted");
                }
            }
            Event::Run {
                session_key,
                run_id,
                stream,
                seq,
                data,
                shared,
                ..
            } => {
                if !self.kinds.has_stream(stream) || wrong_run(Some(&run_id)) {
                    return;
                }
                if stream == "assistant"
                    && let Some((joined, through)) = &self.joined_through
                    && **joined == *run_id
                    && seq <= *through
                {
                    return; // part of the text given on joining
                }
                let run_ended = self.end_with_run
                    && stream == "lifecycle"
                    && data.get("phase").and_then(Value::as_str) == Some("ended");
                self.pending.push_back((
                    StreamItem::Run {
                        session_key,
                        run_id,
                        stream,
                        seq,
                        data,
                    },
                    Some(shared),
                ));
                if run_ended {
                    self.end("run_ended");
                }
            }
        }
    }

    /// Reads, from the store, the messages after the follow's last seq (a page at a time).
    async fn read_missed(&mut self) -> std::result::Result<(), ServiceError> {
        let (Some(sid), Some(last)) = (self.sid, self.follow_from) else {
            return Ok(());
        };
        let budget = self.engine.config().limits.max_reply_bytes;
        let (page, more) = self
            .engine
            .store
            .messages_after(sid, last, CATCH_UP_PAGE, budget)
            .await?;
        let key = self.session_key.clone().unwrap_or_else(|| "".into());
        self.catch_up = more;
        for message in page {
            if self
                .run_id
                .as_deref()
                .is_some_and(|r| message.run_id.as_deref() != Some(r))
            {
                self.follow_from = Some(message.seq);
                continue;
            }
            self.follow_from = Some(message.seq);
            self.pending.push_back((
                StreamItem::Message {
                    session_key: key.clone(),
                    message: Arc::new(message),
                },
                None,
            ));
        }
        Ok(())
    }
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
        let run = Kinds::run_streams();
        assert!(!run.has(EventKind::Message) && run.has(EventKind::Lifecycle));
    }
}
