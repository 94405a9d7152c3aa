//! Run ids and session uuids: what the store indexes them by decides where a new one's
//! insert lands.
//!
//! An index on random (v4) values puts each insert on a random leaf page: with a million
//! sessions, one the cache seldom holds, and every commit writes a page per spawn per index
//! (issue 16). Values that grow with time land on the rightmost page instead.
//!
//! - Run ids are UUID v7: time-ordered as they are. They are not secrets: a run is reached by
//!   who asks, never by knowing its id, and nobody names a run by a prefix.
//! - Session ids and the uuid in a generated session key are named by a short prefix
//!   (`openclaw sessions history 3f2a9c`), which time-ordered digits at the front would make
//!   useless: sessions made within a minute would share their first 8. So a session uuid
//!   (v8, [`new_session_uuid`]) begins with 32 random bits, its first group of 8 digits, and
//!   the milliseconds follow; the store indexes it with that group moved to the end
//!   (`store::names`), which is time-ordered again.

/// A new time-ordered run id, e.g. `0193c6a2-7f1e-7b3a-9c4d-5e6f7a8b9c0d`.
pub fn new_run_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// A new session uuid: 8 random hex digits, then the Unix time in milliseconds (48 bits, around
/// the version and variant digits), then 42 more random bits. 74 random bits in all, as many
/// as v7 has.
pub fn new_session_uuid() -> uuid::Uuid {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        & ((1 << 48) - 1);
    let random = uuid::Uuid::new_v4().as_u128();
    // Bits from the top: 32 random (the first group); the milliseconds' 48 bits in the 62
    // that follow, skipping the version (4 bits) and the variant (2) that `new_v8` sets, so
    // no random bit comes before the last of them; then 42 random.
    let bits = (random & (0xffff_ffff << 96))
        | (u128::from(ms >> 32) << 80)
        | (u128::from((ms >> 20) & 0xfff) << 64)
        | (u128::from((ms >> 18) & 0b11) << 60)
        | (u128::from((ms >> 6) & 0xfff) << 48)
        | (u128::from(ms & 0x3f) << 42)
        | (random & ((1 << 42) - 1));
    uuid::Uuid::new_v8(bits.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_run_id().to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "a later id must sort after an earlier one");
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(new_run_id().get_version_num(), 7);
    }

    /// The milliseconds a session uuid carries.
    fn millis_of(u: &uuid::Uuid) -> u64 {
        let b = u.as_u128();
        let field = |shift: u32, width: u32| ((b >> shift) as u64) & ((1 << width) - 1);
        (field(80, 16) << 32)
            | (field(64, 12) << 20)
            | (field(60, 2) << 18)
            | (field(48, 12) << 6)
            | field(42, 6)
    }

    #[test]
    fn session_uuids_begin_random_and_continue_in_time_order() {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
        };
        let before = now();
        let ids: Vec<uuid::Uuid> = (0..2000).map(|_| new_session_uuid()).collect();
        let after = now();
        for u in &ids {
            assert_eq!(u.get_version_num(), 8, "{u}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{u}");
            assert!(
                (before..=after).contains(&millis_of(u)),
                "{u}: {before}..{after}"
            );
        }
        // With the first group moved to the end (as the store indexes them) they sort by the
        // time they were made.
        let mut rotated: Vec<(String, u64)> = ids
            .iter()
            .map(|u| {
                let s = u.to_string();
                (format!("{}{}", &s[9..], &s[..9]), millis_of(u))
            })
            .collect();
        rotated.sort();
        assert!(
            rotated.windows(2).all(|w| w[0].1 <= w[1].1),
            "not in time order"
        );
        // The first group is random: 2,000 ids made within milliseconds of each other have
        // (almost surely) different 6-digit prefixes and start with every hex digit.
        let prefixes: std::collections::BTreeSet<String> =
            ids.iter().map(|u| u.to_string()[..6].to_string()).collect();
        assert!(prefixes.len() >= 1990, "{}", prefixes.len());
        let first: std::collections::BTreeSet<char> = ids
            .iter()
            .filter_map(|u| u.to_string().chars().next())
            .collect();
        assert_eq!(first.len(), 16);
    }
}
