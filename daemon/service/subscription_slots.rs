//! Caps on live subscriptions, whatever carries them (socket subscriptions, HTTP event
//! streams): per holder (`[limits] max_subscriptions_per_uid`) and over everyone
//! (`max_subscriptions`), with the last slots of the total kept for the owner so another
//! user's subscriptions never lock the owner out. A stream holds its slot and gives it back
//! when it drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Caller, ServiceError};
use crate::config::LimitsConfig;

/// How long a refused subscriber is told to wait.
const RETRY_AFTER_MS: u64 = 1000;

/// Whose slots a subscription counts against. The owner's runs act for the owner's uid; a
/// paired device is counted on its own (it is what another uid was let in as).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    Owner,
    Device(String),
    Stranger(Option<u32>),
}

impl Holder {
    fn of(caller: &Caller) -> Holder {
        match caller {
            Caller::Operator | Caller::Run(_) => Holder::Owner,
            Caller::Device(d) => Holder::Device(d.fingerprint.clone()),
            Caller::Stranger { uid } => Holder::Stranger(*uid),
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Held by everyone but the owner.
    others: usize,
    held: HashMap<Holder, usize>,
}

#[derive(Default)]
pub struct SubscriptionSlots {
    counts: Mutex<Counts>,
}

/// One subscription's slot, released when dropped.
pub struct SubscriptionSlot {
    slots: Arc<SubscriptionSlots>,
    holder: Holder,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut c = self.slots.counts();
        c.total = c.total.saturating_sub(1);
        if self.holder != Holder::Owner {
            c.others = c.others.saturating_sub(1);
        }
        if let Some(n) = c.held.get_mut(&self.holder) {
            *n -= 1;
            if *n == 0 {
                c.held.remove(&self.holder);
            }
        }
    }
}

impl SubscriptionSlots {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscriptions holding a slot now, over everyone.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.counts().total
    }

    /// A slot for `caller`'s new subscription, or `busy` saying which cap was reached.
    pub fn take(
        self: &Arc<Self>,
        caller: &Caller,
        limits: &LimitsConfig,
    ) -> Result<SubscriptionSlot, ServiceError> {
        let holder = Holder::of(caller);
        let mut c = self.counts();
        let held = c.held.get(&holder).copied().unwrap_or(0);
        let owner = holder == Holder::Owner;
        admit(c.total, c.others, held, owner, limits).map_err(|message| ServiceError::Busy {
            message,
            retry_after_ms: RETRY_AFTER_MS,
        })?;
        c.total += 1;
        if !owner {
            c.others += 1;
        }
        *c.held.entry(holder.clone()).or_default() += 1;
        drop(c);
        Ok(SubscriptionSlot {
            slots: self.clone(),
            holder,
        })
    }
}

/// The slots of the total that only the owner may take: one uid's worth, at most half.
fn reserved(limits: &LimitsConfig) -> usize {
    limits
        .max_subscriptions_per_uid
        .min(limits.max_subscriptions / 2)
}

/// Whether one more subscription is allowed, given `total` held over everyone, `others`
/// held by all but the owner, and `held` by this holder; the refusal says what to do.
pub fn admit(
    total: usize,
    others: usize,
    held: usize,
    owner: bool,
    limits: &LimitsConfig,
) -> Result<(), String> {
    if held >= limits.max_subscriptions_per_uid {
        return Err(format!(
            "you already hold {held} subscriptions, the most one user may ([limits] max_subscriptions_per_uid); unsubscribe or close streams you no longer read, or raise the limit in config.toml"
        ));
    }
    if total >= limits.max_subscriptions {
        return Err(format!(
            "the daemon holds {total} subscriptions, its limit ([limits] max_subscriptions); unsubscribe or close streams you no longer read, or raise the limit in config.toml"
        ));
    }
    let reserve = reserved(limits);
    if !owner && others >= limits.max_subscriptions - reserve {
        return Err(format!(
            "other users hold {others} subscriptions; the last {reserve} of the daemon's {} are kept for its owner ([limits] max_subscriptions); retry later or ask the owner to raise the limit",
            limits.max_subscriptions
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_uid: usize, total: usize) -> LimitsConfig {
        LimitsConfig {
            max_subscriptions_per_uid: per_uid,
            max_subscriptions: total,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn others_stop_short_of_the_owners_reserve() {
        let l = limits(3, 10);
        assert!(admit(6, 6, 0, false, &l).is_ok());
        let err = admit(7, 7, 0, false, &l).unwrap_err();
        assert!(err.contains("last 3") && err.contains("owner"), "{err}");
        assert!(
            admit(9, 7, 2, true, &l).is_ok(),
            "the owner takes the reserve"
        );
        let err = admit(10, 7, 2, true, &l).unwrap_err();
        assert!(err.contains("max_subscriptions"), "{err}");
        // What the owner holds does not count against the others' share.
        assert!(admit(8, 5, 0, false, &l).is_ok());
    }

    #[test]
    fn one_holder_stops_at_its_own_cap() {
        let l = limits(3, 10);
        let err = admit(3, 0, 3, true, &l).unwrap_err();
        assert!(err.contains("max_subscriptions_per_uid"), "{err}");
    }

    #[test]
    fn the_reserve_is_at_most_half() {
        let l = limits(100, 10);
        assert!(admit(4, 4, 0, false, &l).is_ok());
        assert!(admit(5, 5, 0, false, &l).is_err());
    }

    #[test]
    fn a_dropped_slot_is_given_back() {
        let slots = Arc::new(SubscriptionSlots::default());
        let l = limits(2, 10);
        let a = slots.take(&Caller::Operator, &l).unwrap();
        let _b = slots.take(&Caller::Operator, &l).unwrap();
        assert!(matches!(
            slots.take(&Caller::Operator, &l),
            Err(ServiceError::Busy { .. })
        ));
        drop(a);
        assert_eq!(slots.total(), 1);
        assert!(slots.take(&Caller::Operator, &l).is_ok());
    }
}
