//! The session service: the one door into the engine. Every transport (JSON-RPC on the
//! socket, HTTP, the in-process tools of native agents) turns a request into a [`Caller`] and
//! typed params, calls a method here, and encodes the typed result or [`ServiceError`]. All
//! policy lives here — scopes, visibility, parent and depth, send policy, who may patch what
//! — checked where the action happens; the engine below only runs sessions.
//!
//! - `spawn.rs`: `spawn` (and its attachments);
//! - `send.rs`: `send`, `wait`, and sends that stream their run's progress;
//! - `read.rs`: `history`, `message`, `list`, `get`;
//! - `manage.rs`: `kill`, `patch`, `delete`;
//! - `follow.rs`: `subscribe` / follow as a stream of typed events;
//! - `pairing.rs`: another user's device proving itself, and the owner managing devices;
//! - `admin.rs`: `hello`, status, agents, shutdown;
//! - `tools.rs`: the session tools of a run, executed in-process;
//! - `ping_pong.rs`: the agent-to-agent reply-back after a run's `sessions_send`;
//! - `policy.rs`: the policies as pure functions;
//! - `strangers.rs`: what a connection may do before it is trusted or authenticated;
//! - `subscription_slots.rs`: the caps on live subscriptions, per uid and in total.

mod admin;
mod caller;
mod error;
mod follow;
pub mod hooks;
pub mod http_token;
mod manage;
mod pairing;
mod ping_pong;
pub mod policy;
mod read;
mod send;
mod spawn;
pub mod strangers;
mod subscription_slots;
mod tool_list;
mod tools;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::daemon::engine::{Acting, Engine, normalize};
use crate::daemon::store::{Scope, SessionRecord};
use crate::paths::Paths;

pub use admin::PeerFacts;
pub use caller::{Caller, DeviceAuth};
pub use error::ServiceError;
pub use follow::{EventStream, StreamItem, Subscription};
pub use pairing::Authenticated;
pub use send::{Progress, ProgressItem, SendOutcome};

pub type Result<T> = std::result::Result<T, ServiceError>;

/// Shortest unique prefix of an id or key accepted for a session.
const MIN_PREFIX: usize = 6;
/// Candidates listed in an "ambiguous" error.
const MAX_CANDIDATES: u32 = 5;

/// What the daemon knows about itself, for `hello` and `daemon.status`. Transports keep its
/// counters.
pub struct DaemonInfo {
    pub daemon_id: String,
    pub started_at_ms: i64,
    pub started: Instant,
    pub paths: Paths,
    pub interrupted_at_startup: u64,
    /// Cancelled to stop the daemon (`daemon.shutdown`, SIGTERM).
    pub shutdown: CancellationToken,
    /// Open client connections, over every transport.
    pub connections: AtomicU32,
    /// Frames queued for clients and not yet written, over all connections.
    pub buffered: Arc<AtomicI64>,
    /// Live subscriptions, over all connections.
    pub subscriptions: AtomicU64,
    /// How the daemon was started (`autostart`, `foreground`, `systemd`).
    pub started_by: Option<String>,
    pub log_file: Option<String>,
    /// When `config.toml` was last read (start-up or reload), ms since the epoch.
    pub config_loaded_at_ms: AtomicI64,
}

impl DaemonInfo {
    pub fn new(paths: Paths, interrupted_at_startup: u64, shutdown: CancellationToken) -> Self {
        DaemonInfo {
            daemon_id: uuid::Uuid::new_v4().to_string(),
            started_at_ms: crate::timefmt::now_ms(),
            started: Instant::now(),
            paths,
            interrupted_at_startup,
            shutdown,
            connections: AtomicU32::new(0),
            buffered: Arc::default(),
            subscriptions: AtomicU64::new(0),
            started_by: None,
            log_file: None,
            config_loaded_at_ms: AtomicI64::new(crate::timefmt::now_ms()),
        }
    }
}

/// The live connections of paired devices, so revoking a device drops them at once.
#[derive(Default)]
struct DeviceLinks {
    next: AtomicU64,
    links: Mutex<HashMap<u64, (String, CancellationToken)>>,
}

/// A device's connection, registered until dropped.
pub struct DeviceLink {
    id: u64,
    service: Weak<SessionService>,
}

impl Drop for DeviceLink {
    fn drop(&mut self) {
        if let Some(s) = self.service.upgrade() {
            s.devices
                .links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.id);
        }
    }
}

pub struct SessionService {
    engine: Arc<Engine>,
    pub daemon: Arc<DaemonInfo>,
    devices: DeviceLinks,
    exchanges: Arc<ping_pong::Exchanges>,
    strangers: Arc<strangers::Strangers>,
    subscription_slots: Arc<subscription_slots::SubscriptionSlots>,
    this: Weak<SessionService>,
}

impl SessionService {
    pub fn new(engine: Arc<Engine>, daemon: Arc<DaemonInfo>) -> Arc<SessionService> {
        let service = Arc::new_cyclic(|this| SessionService {
            engine,
            daemon,
            devices: DeviceLinks::default(),
            exchanges: Arc::default(),
            strangers: Arc::default(),
            subscription_slots: Arc::default(),
            this: this.clone(),
        });
        let host: Weak<dyn crate::daemon::engine::ToolHost> = service.this.clone();
        service.engine.set_tool_host(host);
        service
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Admits a connection from `peer`: a trusted peer needs nothing; another user's is
    /// counted among its uid's unauthenticated connections (the pass gives its place back
    /// when it authenticates or closes), or refused `busy` past the cap.
    pub fn admit_connection(&self, peer: PeerFacts) -> Result<Option<strangers::StrangerPass>> {
        if peer.trusted {
            return Ok(None);
        }
        let cap = self.engine.config().limits.max_unauthenticated_per_uid;
        self.strangers
            .admit(peer.uid, cap)
            .map(Some)
            .map_err(|message| ServiceError::Busy {
                message,
                retry_after_ms: 1000,
            })
    }

    /// How a transport serves a connection speaking for `caller` now.
    pub fn connection_rules(&self, caller: &Caller) -> strangers::ConnectionRules {
        strangers::connection_rules(caller, &self.engine.config().limits)
    }

    /// Before an unauthenticated connection of `uid` reads its next request: how long to
    /// wait first, if its uid is past its pace.
    pub fn unauthenticated_pause(&self, uid: Option<u32>) -> Option<Duration> {
        self.strangers.pace(uid, Instant::now()).err()
    }

    /// Records how many requests an unauthenticated connection had in flight.
    pub fn note_unauthenticated_in_flight(&self, n: u64) {
        self.strangers.note_in_flight(n);
    }

    /// The caller a run token stands for, while its run is active.
    pub fn caller_for_token(&self, token: &str) -> Option<Caller> {
        self.engine.check_token(token).map(Caller::Run)
    }

    /// Registers a connection of a proven device, closed by `close` if the device is revoked.
    pub fn link_device(&self, fingerprint: &str, close: CancellationToken) -> DeviceLink {
        let id = self.devices.next.fetch_add(1, Ordering::Relaxed);
        self.devices
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (fingerprint.to_string(), close));
        DeviceLink {
            id,
            service: self.this.clone(),
        }
    }

    /// Refuses a caller without `scope` (or whose run has ended).
    pub fn authorize(&self, caller: &Caller, method: &str, scope: &'static str) -> Result<()> {
        self.check_alive(caller)?;
        if caller.has_scope(scope) {
            return Ok(());
        }
        Err(match caller {
            Caller::Stranger { uid } => ServiceError::PairingRequired {
                message: self.pairing_required(*uid),
                request: None,
            },
            Caller::Device(d) => ServiceError::Forbidden {
                message: format!(
                    "this device ({}…) is not allowed {method}: it needs the scope `{scope}`, and the owner granted {}",
                    &d.fingerprint[..8.min(d.fingerprint.len())],
                    if d.scopes.is_empty() {
                        "none".to_string()
                    } else {
                        d.scopes.join(", ")
                    }
                ),
                scope: Some(scope),
            },
            Caller::Run(a) => ServiceError::Forbidden {
                message: format!(
                    "{method} needs the `{scope}` scope, which a run's token ({} of {}) does not carry; the operator can do it",
                    a.run_id, a.session_key
                ),
                scope: Some(scope),
            },
            Caller::Operator => ServiceError::forbidden(format!("{method} is not allowed")),
        })
    }

    /// What an unpaired caller is told.
    fn pairing_required(&self, uid: Option<u32>) -> String {
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        let who = uid
            .map(|u| format!("uid {u}"))
            .unwrap_or_else(|| "an unknown user".into());
        format!(
            "this client ({who}) is not paired with the openclaw daemon owned by uid {euid}; the openclaw CLI proves its device key and asks for pairing by itself — run it to get a request the owner can approve"
        )
    }

    /// A run's token is good only while its run is active.
    pub fn check_alive(&self, caller: &Caller) -> Result<()> {
        match caller {
            Caller::Run(a) if !self.engine.token_alive(&a.run_id) => Err(run_ended(a)),
            _ => Ok(()),
        }
    }

    /// A session by key, id, unique prefix or label, if this caller may see it. One the
    /// caller may not see is `not_found`, the same answer as for one that does not exist, so
    /// existence never leaks.
    pub async fn session(&self, caller: &Caller, name: &str) -> Result<SessionRecord> {
        self.find_visible(caller, name)
            .await?
            .ok_or_else(|| no_session(name))
    }

    /// Like [`Self::session`], with `None` for no such (visible) session.
    async fn find_visible(&self, caller: &Caller, name: &str) -> Result<Option<SessionRecord>> {
        if let Some(s) = self.engine.find_session(name).await? {
            return Ok(if self.can_see(caller, &s).await? {
                Some(s)
            } else {
                None
            });
        }
        self.find_short(caller, name).await
    }

    /// A short name: a unique prefix (6 characters or more) of a session id or of the uuid
    /// of a key, or a label.
    async fn find_short(&self, caller: &Caller, name: &str) -> Result<Option<SessionRecord>> {
        // Ids and the uuids in keys are 36 characters: a longer "prefix" names nothing.
        let usable_prefix = (MIN_PREFIX..=36).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let prefix = if usable_prefix { name } else { "\u{0}" };
        let found = self
            .engine
            .store
            .sessions_matching(prefix.to_string(), name.to_string(), 64)
            .await?;
        let mut visible = Vec::new();
        for s in found {
            if self.can_see(caller, &s).await? {
                visible.push(s);
            }
        }
        match visible.len() {
            0 => Ok(None),
            1 => Ok(visible.pop()),
            n => {
                let shown: Vec<&str> = visible
                    .iter()
                    .take(MAX_CANDIDATES as usize)
                    .map(|s| s.key.as_str())
                    .collect();
                let more = if n > shown.len() {
                    format!(" and {} more", n - shown.len())
                } else {
                    String::new()
                };
                Err(ServiceError::InvalidParams(format!(
                    "ambiguous: \"{name}\" names {n} sessions: {}{more}; give more of the key or id",
                    shown.join(", ")
                )))
            }
        }
    }

    pub async fn can_see(&self, caller: &Caller, session: &SessionRecord) -> Result<bool> {
        if let Some(fp) = caller.owner_filter() {
            return Ok(session.owner.as_deref() == Some(fp));
        }
        let Some(me) = caller.acting() else {
            return Ok(true);
        };
        let visibility = self.engine.config().session.visibility;
        let in_tree = if policy::needs_tree(me, visibility, session) {
            self.engine
                .store
                .in_tree(me.session_key.clone(), session.key.clone())
                .await?
        } else {
            false
        };
        Ok(policy::run_sees(me, visibility, session, in_tree))
    }

    /// The sessions this caller may list.
    pub fn scope(&self, caller: &Caller) -> Scope {
        policy::scope_of(
            caller.acting(),
            caller.owner_filter(),
            self.engine.config().session.visibility,
        )
    }

    /// Idempotency key as stored: scoped to the caller.
    fn idempotency(&self, caller: &Caller, key: Option<String>) -> Option<String> {
        key.map(|k| format!("{}:{k}", caller.id()))
    }

    fn normalize(&self, key: &str) -> String {
        normalize(key, &self.engine.default_agent())
    }
}

/// The answer for a session that does not exist, or that the caller may not see.
pub fn no_session(key: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "no session \"{key}\"; `openclaw sessions list` shows the sessions there are"
    ))
}

fn run_ended(a: &Acting) -> ServiceError {
    ServiceError::forbidden(format!(
        "run {} of session {} has ended, and its token with it; this connection can no longer act for it",
        a.run_id, a.session_key
    ))
}

/// A wait given in seconds by a caller, checked and capped (a day) so it can't overflow.
pub fn wait_duration(seconds: Option<f64>, default: f64) -> Result<Duration> {
    let s = seconds.unwrap_or(default);
    if !s.is_finite() || s < 0.0 {
        return Err(ServiceError::InvalidParams(
            "timeoutSeconds must be a number of seconds, 0 or more".into(),
        ));
    }
    Ok(Duration::from_secs_f64(s.min(86_400.0)))
}

#[cfg(test)]
mod tests;
