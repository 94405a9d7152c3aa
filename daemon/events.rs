//! The event bus: everything that happens, delivered to the listeners that want it. A
//! listener names a route — one session, one run, or everything — and has its own bounded
//! inbox, so an event costs nothing for listeners of other sessions, and a listener that
//! falls behind learns how many events it missed (transcript followers then re-read what
//! they missed from the store), while memory stays bounded whatever the listeners do.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Notify;

use crate::daemon::shared_encoding::SharedEncoding;
use crate::protocol::{Message, SessionRow};

/// Events kept for one listener before it starts to lag.
const INBOX: usize = 4096;

#[derive(Debug, Clone)]
pub enum Event {
    /// A committed transcript message.
    Message {
        sid: i64,
        session_key: Arc<str>,
        message: Arc<Message>,
        /// Its encoding, made once for every subscriber.
        shared: SharedEncoding,
    },
    /// A committed change to a session (create, start, message, end, patch, archive, delete).
    Changed {
        sid: i64,
        session_key: Arc<str>,
        phase: &'static str,
        row: Option<Arc<SessionRow>>,
        shared: SharedEncoding,
    },
    /// Progress of a run: lifecycle, assistant text, thoughts, plans, tool calls, usage.
    Run {
        sid: i64,
        session_key: Arc<str>,
        run_id: Arc<str>,
        stream: &'static str,
        seq: u64,
        data: Arc<Value>,
        shared: SharedEncoding,
    },
}

impl Event {
    pub fn sid(&self) -> i64 {
        match self {
            Event::Message { sid, .. } | Event::Changed { sid, .. } | Event::Run { sid, .. } => {
                *sid
            }
        }
    }

    /// The run the event belongs to, if any.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Event::Message { message, .. } => message.run_id.as_deref(),
            Event::Run { run_id, .. } => Some(run_id),
            Event::Changed { .. } => None,
        }
    }
}

/// What a listener listens to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    Session(i64),
    /// A run's events and the messages it stores.
    Run(String),
    All,
}

#[derive(Default)]
struct InboxState {
    events: VecDeque<Event>,
    /// Events dropped since the listener last heard, because its inbox was full.
    skipped: u64,
    closed: bool,
}

struct Inbox {
    id: u64,
    state: Mutex<InboxState>,
    ready: Notify,
}

impl Inbox {
    fn push(&self, event: &Event) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.events.len() >= INBOX {
            st.skipped += 1;
        } else {
            st.events.push_back(event.clone());
        }
        drop(st);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.ready.notify_one();
    }
}

#[derive(Default)]
struct Routes {
    sessions: HashMap<i64, Vec<Arc<Inbox>>>,
    runs: HashMap<String, Vec<Arc<Inbox>>>,
    all: Vec<Arc<Inbox>>,
    closed: bool,
}

impl Routes {
    fn list(&mut self, route: &Route) -> &mut Vec<Arc<Inbox>> {
        match route {
            Route::Session(sid) => self.sessions.entry(*sid).or_default(),
            Route::Run(run) => self.runs.entry(run.clone()).or_default(),
            Route::All => &mut self.all,
        }
    }
}

#[derive(Default)]
struct Bus {
    routes: Mutex<Routes>,
    listeners: AtomicUsize,
    next_id: AtomicU64,
}

#[derive(Clone, Default)]
pub struct EventBus {
    bus: Arc<Bus>,
}

/// What a listener gets next.
#[derive(Debug)]
pub enum Received {
    Event(Event),
    /// This many events were dropped because the listener was slow.
    Lagged(u64),
    /// The bus was closed (the daemon is stopping).
    Closed,
}

impl EventBus {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.bus.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when someone listens: events are only built then.
    pub fn has_listeners(&self) -> bool {
        self.bus.listeners.load(Ordering::Relaxed) > 0
    }

    /// Listeners registered now, over all routes.
    pub fn listeners(&self) -> usize {
        self.bus.listeners.load(Ordering::Relaxed)
    }

    /// Delivers an event to the listeners of its session, of its run, and of everything.
    pub fn publish(&self, event: Event) {
        if !self.has_listeners() {
            return;
        }
        let routes = self.routes();
        if let Some(list) = routes.sessions.get(&event.sid()) {
            list.iter().for_each(|i| i.push(&event));
        }
        if let Some(list) = event.run_id().and_then(|r| routes.runs.get(r)) {
            list.iter().for_each(|i| i.push(&event));
        }
        routes.all.iter().for_each(|i| i.push(&event));
    }

    /// Delivers an event to the listeners of session `sid` only: a copy relayed into another
    /// session (a child's progress shown to its parent's followers) must not reach the run's
    /// or everything's listeners a second time.
    pub fn publish_to_session(&self, sid: i64, event: Event) {
        if !self.has_listeners() {
            return;
        }
        if let Some(list) = self.routes().sessions.get(&sid) {
            list.iter().for_each(|i| i.push(&event));
        }
    }

    /// Starts listening; events published from now on are delivered (until dropped).
    pub fn listen(&self, route: Route) -> Listener {
        let inbox = Arc::new(Inbox {
            id: self.bus.next_id.fetch_add(1, Ordering::Relaxed),
            state: Mutex::default(),
            ready: Notify::new(),
        });
        let mut routes = self.routes();
        if routes.closed {
            inbox.close();
        }
        routes.list(&route).push(inbox.clone());
        self.bus.listeners.fetch_add(1, Ordering::Relaxed);
        drop(routes);
        Listener {
            inbox,
            bus: self.clone(),
            route,
        }
    }

    /// Ends every listener (they receive `Closed`), now and for listeners added later.
    pub fn close(&self) {
        let mut routes = self.routes();
        routes.closed = true;
        let all = routes
            .sessions
            .values()
            .chain(routes.runs.values())
            .flatten()
            .chain(routes.all.iter());
        all.for_each(|i| i.close());
    }
}

/// One listener's end of the bus; unregistered when dropped.
pub struct Listener {
    inbox: Arc<Inbox>,
    bus: EventBus,
    route: Route,
}

impl Listener {
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The next event, waiting for one.
    pub async fn recv(&mut self) -> Received {
        loop {
            if let Some(r) = self.try_recv() {
                return r;
            }
            self.inbox.ready.notified().await;
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        let mut st = self.inbox.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.skipped > 0 {
            return Some(Received::Lagged(std::mem::take(&mut st.skipped)));
        }
        if let Some(e) = st.events.pop_front() {
            return Some(Received::Event(e));
        }
        st.closed.then_some(Received::Closed)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut routes = self.bus.routes();
        let list = routes.list(&self.route);
        list.retain(|i| i.id != self.inbox.id);
        let empty = list.is_empty();
        match (&self.route, empty) {
            (Route::Session(sid), true) => {
                routes.sessions.remove(sid);
            }
            (Route::Run(run), true) => {
                routes.runs.remove(run);
            }
            _ => {}
        }
        self.bus.bus.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sid: i64, seq: u64, run: Option<&str>) -> Event {
        Event::Message {
            sid,
            session_key: "k".into(),
            message: Arc::new(Message {
                seq,
                ts: String::new(),
                role: crate::protocol::Role::User,
                content: Value::Null,
                run_id: run.map(str::to_string),
                provenance: crate::protocol::Provenance {
                    kind: crate::protocol::ProvenanceKind::Operator,
                    from: None,
                },
                usage: None,
                truncated: None,
                bytes: None,
            }),
            shared: SharedEncoding::default(),
        }
    }

    fn seq_of(r: Option<Received>) -> Option<u64> {
        match r {
            Some(Received::Event(Event::Message { message, .. })) => Some(message.seq),
            _ => None,
        }
    }

    #[test]
    fn events_reach_only_the_routes_that_want_them() {
        let bus = EventBus::default();
        let mut one = bus.listen(Route::Session(1));
        let mut two = bus.listen(Route::Session(2));
        let mut all = bus.listen(Route::All);
        let mut run = bus.listen(Route::Run("r".into()));
        bus.publish(message(1, 1, Some("r")));
        assert_eq!(seq_of(one.try_recv()), Some(1));
        assert!(two.try_recv().is_none(), "another session hears nothing");
        assert_eq!(seq_of(all.try_recv()), Some(1));
        assert_eq!(seq_of(run.try_recv()), Some(1));
        bus.publish(message(1, 2, None));
        assert!(run.try_recv().is_none(), "not that run's");
        assert_eq!(bus.listeners(), 4);
        drop(two);
        assert_eq!(bus.listeners(), 3);
        assert!(
            !bus.routes().sessions.contains_key(&2),
            "empty routes go away"
        );
    }

    #[test]
    fn a_relayed_copy_reaches_that_session_only() {
        let bus = EventBus::default();
        let mut parent = bus.listen(Route::Session(2));
        let mut all = bus.listen(Route::All);
        let mut run = bus.listen(Route::Run("r".into()));
        bus.publish_to_session(2, message(1, 7, Some("r")));
        assert_eq!(seq_of(parent.try_recv()), Some(7));
        assert!(
            all.try_recv().is_none(),
            "everything's listeners hear the original only"
        );
        assert!(
            run.try_recv().is_none(),
            "the run's listeners hear the original only"
        );
    }

    #[test]
    fn a_full_inbox_counts_what_it_drops() {
        let bus = EventBus::default();
        let mut slow = bus.listen(Route::Session(1));
        for seq in 0..(INBOX as u64 + 5) {
            bus.publish(message(1, seq, None));
        }
        assert!(matches!(slow.try_recv(), Some(Received::Lagged(5))));
        assert_eq!(seq_of(slow.try_recv()), Some(0));
    }

    #[tokio::test]
    async fn close_ends_every_listener() {
        let bus = EventBus::default();
        let mut l = bus.listen(Route::All);
        let waiter = tokio::spawn(async move { matches!(l.recv().await, Received::Closed) });
        bus.close();
        assert!(waiter.await.unwrap());
        let mut late = bus.listen(Route::Session(3));
        assert!(matches!(late.recv().await, Received::Closed));
    }
}
