//! What the handlers of one JSON-RPC connection share: who it speaks for, its write side,
//! and its subscriptions. It knows nothing of dispatch (`connection.rs` serves the socket).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::service::strangers::StrangerPass;
use crate::daemon::service::{Caller, DeviceLink, PeerFacts, StreamItem};
use crate::daemon::shared_encoding::SharedEncoding;

/// The write side of a connection, shared by request handlers and subscriptions. Bounded:
/// when the peer stops reading, senders wait (and subscriptions fall back to the store)
/// rather than the daemon buffering without limit.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Vec<u8>>,
    /// Frames queued and not yet written, over all connections (for `daemon.status`).
    buffered: Arc<AtomicI64>,
    /// Cancelled to drop the connection (here: when its reader stalls too long).
    close: CancellationToken,
    stall_limit: Duration,
    /// Frames this connection queued, and (from the writer) frames written: their
    /// difference is what `flushed` waits out.
    queued: Arc<AtomicU64>,
    written: watch::Receiver<u64>,
}

impl Outbound {
    pub fn new(
        tx: mpsc::Sender<Vec<u8>>,
        buffered: Arc<AtomicI64>,
        close: CancellationToken,
        stall_limit: Duration,
        written: watch::Receiver<u64>,
    ) -> Outbound {
        Outbound {
            tx,
            buffered,
            close,
            stall_limit,
            queued: Arc::default(),
            written,
        }
    }

    /// Waits until every frame queued so far is written (false if the connection ends
    /// first): a connection served one request at a time reads its next request only then.
    pub async fn flushed(&self) -> bool {
        let want = self.queued.load(Ordering::SeqCst);
        let mut written = self.written.clone();
        tokio::select! {
            r = written.wait_for(|n| *n >= want) => r.is_ok(),
            _ = self.close.cancelled() => false,
        }
    }

    /// Queues a frame; false once the connection is gone. A peer that leaves its queue full
    /// for `stall_limit` is disconnected rather than allowed to hold the daemon's memory.
    pub async fn send(&self, frame: Vec<u8>) -> bool {
        self.buffered.fetch_add(1, Ordering::Relaxed);
        let sent = tokio::select! {
            r = tokio::time::timeout(self.stall_limit, self.tx.send(frame)) => match r {
                Ok(r) => r.is_ok(),
                Err(_) => {
                    tracing::warn!("a client left its replies unread for {:?}; disconnecting it", self.stall_limit);
                    self.close.cancel();
                    false
                }
            },
            _ = self.close.cancelled() => false,
        };
        if sent {
            self.queued.fetch_add(1, Ordering::SeqCst);
        } else {
            self.buffered.fetch_sub(1, Ordering::Relaxed);
        }
        sent
    }

    /// Queues a notification whose params serialize from `params`.
    pub async fn notify<P: serde::Serialize>(&self, method: &str, params: &P) -> bool {
        match serde_json::to_vec(params) {
            Ok(p) => self.send(crate::daemon::notify::frame(method, &p)).await,
            Err(e) => {
                tracing::error!("encoding a {method} notification: {e}");
                true
            }
        }
    }
}

/// What the handlers of one connection share.
pub struct Conn {
    pub out: Outbound,
    /// Fresh per connection: what another user's device signs, so a signature is worth
    /// nothing on any other connection.
    pub nonce: String,
    /// What the kernel said about the peer at accept.
    pub peer: PeerFacts,
    /// Who this connection speaks for: set at accept from the peer's credentials, changed
    /// only by `hello` with a run token or a proven device.
    caller: Mutex<Caller>,
    /// Kept while a proven device is connected, so its revocation drops this connection.
    device_link: Mutex<Option<DeviceLink>>,
    /// This connection's place among its uid's unauthenticated ones, until it authenticates.
    stranger_pass: Mutex<Option<StrangerPass>>,
    subscriptions: Mutex<HashMap<String, (CancellationToken, watch::Receiver<bool>)>>,
    pub next_subscription: AtomicU64,
    /// Cancelled to drop the connection at once (revocation, handshake deadline, stalled
    /// reader): reads and writes stop, nothing more is sent.
    pub kill: CancellationToken,
    /// Cancelled when the connection ends, gracefully or not (a child of `kill`): its
    /// subscriptions stop.
    pub closed: CancellationToken,
    /// Subscription tasks, waited for before the connection closes.
    pub tasks: TaskTracker,
}

impl Conn {
    /// A connection's state at accept: it speaks for the operator when the kernel says the
    /// peer is trusted, else for a stranger who may only prove a device.
    pub fn new(out: Outbound, peer: PeerFacts, kill: CancellationToken) -> Conn {
        let caller = if peer.trusted {
            Caller::Operator
        } else {
            Caller::Stranger { uid: peer.uid }
        };
        Conn {
            out,
            nonce: crate::daemon::auth::nonce(),
            peer,
            caller: Mutex::new(caller),
            device_link: Mutex::default(),
            stranger_pass: Mutex::default(),
            subscriptions: Mutex::default(),
            next_subscription: AtomicU64::new(1),
            closed: kill.child_token(),
            kill,
            tasks: TaskTracker::new(),
        }
    }

    pub fn caller(&self) -> Caller {
        self.caller
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_caller(&self, caller: Caller) {
        let authenticated = !matches!(caller, Caller::Stranger { .. });
        *self.caller.lock().unwrap_or_else(|p| p.into_inner()) = caller;
        if authenticated {
            self.stranger_pass
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
    }

    pub fn hold_stranger_pass(&self, pass: Option<StrangerPass>) {
        *self.stranger_pass.lock().unwrap_or_else(|p| p.into_inner()) = pass;
    }

    pub fn keep_device_link(&self, link: DeviceLink) {
        *self.device_link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
    }

    /// Pushes one stream item as a notification of `subscription`; false once the
    /// connection is gone.
    /// `shared` is the encoding the item's event shares with other subscribers.
    pub async fn push(
        &self,
        subscription: &str,
        item: &StreamItem,
        shared: Option<&SharedEncoding>,
    ) -> bool {
        let (method, params) = crate::daemon::notify::params_shared(subscription, item, shared);
        self.out
            .send(crate::daemon::notify::frame(method, &params))
            .await
    }

    fn subs(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (CancellationToken, watch::Receiver<bool>)>>
    {
        self.subscriptions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscription_count(&self) -> usize {
        self.subs().len()
    }

    /// Registers a subscription: its cancel token, and the flag its task raises when done.
    pub fn register_subscription(&self, id: &str) -> (CancellationToken, watch::Sender<bool>) {
        let cancel = CancellationToken::new();
        let (tx, rx) = watch::channel(false);
        self.subs().insert(id.to_string(), (cancel.clone(), rx));
        (cancel, tx)
    }

    pub fn take_subscription(
        &self,
        id: &str,
    ) -> Option<(CancellationToken, watch::Receiver<bool>)> {
        self.subs().remove(id)
    }

    pub fn forget_subscription(&self, id: &str) {
        self.subs().remove(id);
    }
}
