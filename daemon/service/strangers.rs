//! What a connection may do before it is trusted (the kernel says its peer is the owner or
//! root) or authenticated (a paired device, or a run token): the rules that keep another
//! local user from denying the owner service. Transports apply them; they are decided here.
//!
//! Such a connection is served one request at a time, without batches, with small frames;
//! one uid holds only a few of them at once, its signature checks are rate limited, and the
//! last connection slots of the daemon are kept for trusted peers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Caller, ServiceError};
use crate::config::LimitsConfig;

/// Largest frame read from a connection that is neither trusted nor authenticated: enough for
/// `hello` and `pairing.authenticate` many times over.
pub const UNAUTHENTICATED_MAX_FRAME: usize = 64 * 1024;

/// Requests one uid's unauthenticated connections are read at, together, at most: proving a
/// device takes two or three, so a client that pairs never waits, while a flood is paced
/// (its next frame is simply not read yet) instead of taking the daemon's CPU from the owner.
pub const UNAUTHENTICATED_REQUESTS_PER_SECOND: u32 = 100;

/// How a transport serves a connection, given who it speaks for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionRules {
    /// Read one request, answer it, wait until the answer is written, then read the next:
    /// a peer cannot have more than one request of its own in the daemon.
    pub one_at_a_time: bool,
    /// Whether a batch (a JSON array of requests) is served.
    pub batches: bool,
    /// The largest frame read.
    pub max_frame: usize,
    /// Whether a frame over `max_frame` closes the connection after its error (else it is
    /// skipped and the connection goes on).
    pub close_on_oversize: bool,
}

/// The rules for a connection speaking for `caller`.
pub fn connection_rules(caller: &Caller, limits: &LimitsConfig) -> ConnectionRules {
    match caller {
        Caller::Stranger { .. } => ConnectionRules {
            one_at_a_time: true,
            batches: false,
            max_frame: limits.max_frame_bytes.min(UNAUTHENTICATED_MAX_FRAME),
            close_on_oversize: true,
        },
        _ => ConnectionRules {
            one_at_a_time: false,
            batches: true,
            max_frame: limits.max_frame_bytes,
            close_on_oversize: false,
        },
    }
}

/// What a batch from a connection without batches is told.
pub const BATCH_REFUSED: &str = "batches are not served before this connection is authenticated: prove a paired device (pairing.authenticate) first, and send one request at a time until then";

/// What a frame over the limit is told; `closing` when the connection ends with it.
pub fn frame_too_large_message(limit: usize, closing: bool) -> String {
    if closing {
        format!(
            "a request larger than {limit} bytes, the limit before this connection is authenticated; the connection is closed. Prove a paired device (pairing.authenticate) with a small request first"
        )
    } else {
        format!(
            "a request larger than the limit of {limit} bytes was skipped; send less per request or raise [limits] max_frame_bytes in config.toml"
        )
    }
}

/// The connection slots an untrusted peer may take: all but the reserve (which is at most
/// half of them, so a small `max_connections` still admits other users).
pub fn untrusted_share(limits: &LimitsConfig) -> u32 {
    let reserve = limits.reserved_connections.min(limits.max_connections / 2);
    limits.max_connections - reserve
}

/// Whether an untrusted peer may take another slot when `total` are open; the refusal as a
/// sentence.
pub fn reserve_admission(total: u32, limits: &LimitsConfig) -> Result<(), String> {
    let share = untrusted_share(limits);
    if total >= share {
        return Err(format!(
            "the daemon has {total} connections open; its last {} are kept for its owner ([limits] reserved_connections of max_connections {}); retry shortly",
            limits.max_connections - share,
            limits.max_connections
        ));
    }
    Ok(())
}

/// Whether one uid may open another unauthenticated connection while it has `open`; the
/// refusal as a sentence.
pub fn unauthenticated_admission(open: u32, uid: Option<u32>, cap: u32) -> Result<(), String> {
    if open >= cap {
        let who = uid
            .map(|u| format!("uid {u}"))
            .unwrap_or_else(|| "this user".into());
        return Err(format!(
            "{who} already has {open} connections that have not authenticated, the limit ([limits] max_unauthenticated_per_uid); authenticate one (pairing.authenticate) or close some, then retry"
        ));
    }
    Ok(())
}

/// A token bucket: `rate` tokens a second, holding at most `rate` (one second's worth).
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn full(rate: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(rate.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let rate = f64::from(rate.max(1));
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
    }

    /// Takes a token; when none is left, how long until one is.
    pub fn take(&mut self, rate: u32, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        // A hair under one is one: the wait handed out is rounded to microseconds.
        if self.tokens >= 1.0 - 1e-6 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        // Rounded up: retrying after exactly this long finds a whole token.
        let micros = (missing / f64::from(rate.max(1)) * 1e6).ceil() as u64;
        Err(Duration::from_micros(micros.max(1)))
    }

    /// Whether it would be full at `now` (nothing to remember about its uid).
    fn is_full(&self, rate: u32, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= f64::from(rate.max(1))
    }
}

#[derive(Default)]
struct UidState {
    /// Unauthenticated connections open.
    open: u32,
    /// Requests read from them.
    requests: Option<TokenBucket>,
    /// Signature checks; `None` until the first.
    checks: Option<TokenBucket>,
}

/// The unauthenticated connections and the signature checks of each other uid.
#[derive(Default)]
pub struct Strangers {
    per_uid: Mutex<HashMap<Option<u32>, UidState>>,
    in_flight_peak: AtomicU64,
}

/// An admitted unauthenticated connection's place in its uid's count, given back when
/// dropped (the connection authenticated or closed).
pub struct StrangerPass {
    strangers: Arc<Strangers>,
    uid: Option<u32>,
}

impl Drop for StrangerPass {
    fn drop(&mut self) {
        let mut map = self.strangers.lock();
        if let Some(state) = map.get_mut(&self.uid) {
            state.open = state.open.saturating_sub(1);
            if state.open == 0 && state.checks.is_none() && state.requests.is_none() {
                map.remove(&self.uid);
            }
        }
    }
}

impl Strangers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<u32>, UidState>> {
        self.per_uid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new unauthenticated connection of `uid`, or says why not.
    pub fn admit(self: &Arc<Self>, uid: Option<u32>, cap: u32) -> Result<StrangerPass, String> {
        let mut map = self.lock();
        let state = map.entry(uid).or_default();
        unauthenticated_admission(state.open, uid, cap)?;
        state.open += 1;
        Ok(StrangerPass {
            strangers: self.clone(),
            uid,
        })
    }

    /// Takes one signature check of `uid`'s allowance; when it is spent, how long until the
    /// next one is allowed.
    pub fn check_allowed(&self, uid: Option<u32>, rate: u32, now: Instant) -> Result<(), Duration> {
        let mut map = self.lock();
        // Forget uids whose allowance is whole again and which hold nothing: the map stays
        // as small as the set of users actually trying.
        map.retain(|u, s| {
            *u == uid
                || s.open > 0
                || s.checks.is_some_and(|b| !b.is_full(rate, now))
                || s.requests
                    .is_some_and(|b| !b.is_full(UNAUTHENTICATED_REQUESTS_PER_SECOND, now))
        });
        let state = map.entry(uid).or_default();
        state
            .checks
            .get_or_insert_with(|| TokenBucket::full(rate, now))
            .take(rate, now)
    }

    /// Takes one request of `uid`'s pace; when it is spent, how long the transport waits
    /// before reading the next frame.
    pub fn pace(&self, uid: Option<u32>, now: Instant) -> Result<(), Duration> {
        let rate = UNAUTHENTICATED_REQUESTS_PER_SECOND;
        let mut map = self.lock();
        let state = map.entry(uid).or_default();
        state
            .requests
            .get_or_insert_with(|| TokenBucket::full(rate, now))
            .take(rate, now)
    }

    /// Unauthenticated connections open, over all uids.
    pub fn open(&self) -> u32 {
        self.lock().values().map(|s| s.open).sum()
    }

    /// Records that one unauthenticated connection had `n` requests in flight.
    pub fn note_in_flight(&self, n: u64) {
        self.in_flight_peak.fetch_max(n, Ordering::Relaxed);
    }

    pub fn in_flight_peak(&self) -> u64 {
        self.in_flight_peak.load(Ordering::Relaxed)
    }
}

/// A refusal of the signature check as the service's `busy`.
pub fn checks_exhausted(uid: Option<u32>, rate: u32, wait: Duration) -> ServiceError {
    let retry_after_ms = (wait.as_millis() as u64).max(1);
    let who = uid
        .map(|u| format!("uid {u}"))
        .unwrap_or_else(|| "this user".into());
    ServiceError::Busy {
        message: format!(
            "{who} has tried {rate} device signatures in the last second, the limit ([limits] auth_attempts_per_second); retry in {retry_after_ms} ms"
        ),
        retry_after_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig::default()
    }

    #[test]
    fn a_stranger_is_served_one_small_request_at_a_time() {
        let stranger = connection_rules(&Caller::Stranger { uid: Some(65534) }, &limits());
        assert!(stranger.one_at_a_time && !stranger.batches && stranger.close_on_oversize);
        assert_eq!(stranger.max_frame, UNAUTHENTICATED_MAX_FRAME);
        let owner = connection_rules(&Caller::Operator, &limits());
        assert!(!owner.one_at_a_time && owner.batches && !owner.close_on_oversize);
        assert_eq!(owner.max_frame, limits().max_frame_bytes);
    }

    #[test]
    fn a_smaller_configured_frame_limit_applies_to_strangers_too() {
        let l = LimitsConfig {
            max_frame_bytes: 2048,
            ..limits()
        };
        let r = connection_rules(&Caller::Stranger { uid: None }, &l);
        assert_eq!(r.max_frame, 2048);
    }

    #[test]
    fn the_reserve_keeps_the_last_slots_for_trusted_peers() {
        let l = LimitsConfig {
            max_connections: 10,
            reserved_connections: 3,
            ..limits()
        };
        assert!(reserve_admission(6, &l).is_ok());
        let err = reserve_admission(7, &l).unwrap_err();
        assert!(
            err.contains("last 3") && err.contains("reserved_connections"),
            "{err}"
        );
    }

    #[test]
    fn the_reserve_is_at_most_half() {
        let l = LimitsConfig {
            max_connections: 2,
            reserved_connections: 64,
            ..limits()
        };
        assert_eq!(untrusted_share(&l), 1);
        assert!(reserve_admission(0, &l).is_ok());
        assert!(reserve_admission(1, &l).is_err());
    }

    #[test]
    fn one_uid_holds_few_unauthenticated_connections() {
        let s = Arc::new(Strangers::default());
        let a = s.admit(Some(7), 2).unwrap();
        let _b = s.admit(Some(7), 2).unwrap();
        let err = s.admit(Some(7), 2).err().expect("the third is refused");
        assert!(
            err.contains("uid 7") && err.contains("max_unauthenticated_per_uid"),
            "{err}"
        );
        assert!(s.admit(Some(8), 2).is_ok(), "another uid has its own count");
        assert_eq!(s.open(), 2, "uid 8's pass was dropped at once");
        drop(a);
        assert!(
            s.admit(Some(7), 2).is_ok(),
            "a closed one gives its place back"
        );
    }

    #[test]
    fn signature_checks_are_bounded_per_second_and_come_back() {
        let s = Strangers::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(s.check_allowed(Some(7), 3, t0).is_ok());
        }
        let wait = s.check_allowed(Some(7), 3, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(334),
            "{wait:?}"
        );
        assert!(s.check_allowed(Some(8), 3, t0).is_ok(), "per uid");
        assert!(s.check_allowed(Some(7), 3, t0 + wait).is_ok());
        assert!(s.check_allowed(Some(7), 3, t0 + wait).is_err());
    }

    #[test]
    fn one_uid_is_read_at_a_bounded_pace_over_all_its_connections() {
        let s = Strangers::default();
        let t0 = Instant::now();
        for _ in 0..UNAUTHENTICATED_REQUESTS_PER_SECOND {
            assert!(s.pace(Some(7), t0).is_ok());
        }
        let wait = s.pace(Some(7), t0).unwrap_err();
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        assert!(s.pace(Some(8), t0).is_ok(), "per uid");
        assert!(s.pace(Some(7), t0 + wait).is_ok());
    }

    #[test]
    fn a_bucket_never_holds_more_than_a_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(2, t0);
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(2, later).is_ok());
        assert!(b.take(2, later).is_ok());
        assert!(b.take(2, later).is_err());
    }

    #[test]
    fn the_busy_says_when_to_retry() {
        let e = checks_exhausted(Some(7), 20, Duration::from_millis(40));
        match e {
            ServiceError::Busy {
                message,
                retry_after_ms,
            } => {
                assert_eq!(retry_after_ms, 40);
                assert!(message.contains("retry in 40 ms"), "{message}");
                assert!(message.contains("auth_attempts_per_second"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
