//! Run ids.
//!
//! They are UUID v7: time-ordered, so a new run's id sorts after every older one and its
//! insert lands on the rightmost page of the runs' primary-key index, where a random (v4) id
//! lands on a random leaf page (with a million runs, one the cache seldom holds; issue 16).
//! They are not secrets: a run is reached by who asks, never by knowing its id.
//!
//! Session ids and the uuid in a generated session key stay random (v4): a session is named by
//! a short prefix of either (`openclaw sessions history 3f2a9c`), and time-ordered ids made
//! close together share their first digits.

/// A new time-ordered run id, e.g. `0193c6a2-7f1e-7b3a-9c4d-5e6f7a8b9c0d`.
pub fn new_run_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
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
}
