//! Global lanes: each caps how many runs execute at once (`main`, `subagent`, `cron`) and holds
//! the turns that are next in their session but wait for a free slot. Lanes are plain state,
//! changed only under the engine's lock, so admission and release can never race; a run gets
//! a task only once it is admitted, so a deep queue costs a queue entry, not a task.

use std::collections::VecDeque;

use crate::config::LanesConfig;
use crate::protocol::LaneStatus;

pub const LANE_NAMES: [&str; 3] = ["main", "subagent", "cron"];

struct Lane<T> {
    cap: u32,
    active: u32,
    /// Runs registered in this lane and not yet executing (in a session queue or `ready`).
    queued: u32,
    ready: VecDeque<T>,
}

pub struct Lanes<T> {
    lanes: [Lane<T>; 3],
}

/// The lane for a session kind: sub-agents and cron jobs have their own, the rest share `main`.
pub fn lane_for_kind(kind: &str) -> &'static str {
    match kind {
        "subagent" => "subagent",
        "cron" => "cron",
        _ => "main",
    }
}

/// A lane name as stored, mapped back to ours (unknown names fall back to `main`).
pub fn lane_named(name: &str) -> &'static str {
    LANE_NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or("main")
}

impl<T> Lanes<T> {
    pub fn new(config: &LanesConfig) -> Lanes<T> {
        let lane = |cap| Lane {
            cap,
            active: 0,
            queued: 0,
            ready: VecDeque::new(),
        };
        Lanes {
            lanes: [lane(config.main), lane(config.subagent), lane(config.cron)],
        }
    }

    fn lane(&mut self, name: &str) -> &mut Lane<T> {
        let i = LANE_NAMES.iter().position(|n| *n == name).unwrap_or(0);
        &mut self.lanes[i]
    }

    pub fn queued(&self, name: &str) -> u32 {
        let i = LANE_NAMES.iter().position(|n| *n == name).unwrap_or(0);
        self.lanes[i].queued
    }

    /// A run was registered in the lane.
    pub fn add_queued(&mut self, name: &str) {
        self.lane(name).queued += 1;
    }

    /// A registered run left without executing (cleared from its session's queue).
    pub fn remove_queued(&mut self, name: &str) {
        let lane = self.lane(name);
        lane.queued = lane.queued.saturating_sub(1);
    }

    /// The item is next in its session: returns it when it may execute now, else keeps it.
    pub fn admit(&mut self, name: &str, item: T) -> Option<T> {
        let lane = self.lane(name);
        if lane.active < lane.cap {
            lane.active += 1;
            lane.queued = lane.queued.saturating_sub(1);
            Some(item)
        } else {
            lane.ready.push_back(item);
            None
        }
    }

    /// A run finished: frees its slot and returns the next item to execute, if one waits.
    pub fn release(&mut self, name: &str) -> Option<T> {
        let lane = self.lane(name);
        lane.active = lane.active.saturating_sub(1);
        let next = lane.ready.pop_front()?;
        lane.active += 1;
        lane.queued = lane.queued.saturating_sub(1);
        Some(next)
    }

    /// Takes a waiting item out (it is being killed before it ran).
    pub fn remove_ready(&mut self, name: &str, matches: impl Fn(&T) -> bool) -> Option<T> {
        let lane = self.lane(name);
        let i = lane.ready.iter().position(matches)?;
        lane.queued = lane.queued.saturating_sub(1);
        lane.ready.remove(i)
    }

    pub fn status(&self) -> Vec<LaneStatus> {
        LANE_NAMES
            .iter()
            .zip(&self.lanes)
            .map(|(name, l)| LaneStatus {
                name: name.to_string(),
                cap: l.cap,
                active: l.active,
                queued: l.queued,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(main: u32) -> Lanes<u32> {
        Lanes::new(&LanesConfig {
            main,
            subagent: 8,
            cron: 8,
        })
    }

    #[test]
    fn kinds_map_to_their_lanes() {
        assert_eq!(lane_for_kind("subagent"), "subagent");
        assert_eq!(lane_for_kind("cron"), "cron");
        assert_eq!(lane_for_kind("main"), "main");
        assert_eq!(lane_for_kind("hook"), "main");
        assert_eq!(lane_named("cron"), "cron");
        assert_eq!(lane_named("bogus"), "main");
    }

    #[test]
    fn admits_up_to_the_cap_then_queues_in_order() {
        let mut l = lanes(2);
        for i in 1..=4 {
            l.add_queued("main");
            let _ = l.admit("main", i);
        }
        let s = &l.status()[0];
        assert_eq!((s.active, s.queued), (2, 2));
        assert_eq!(l.release("main"), Some(3));
        assert_eq!(l.release("main"), Some(4));
        assert_eq!(l.release("main"), None);
        assert_eq!(l.release("main"), None);
        let s = &l.status()[0];
        assert_eq!((s.active, s.queued), (0, 0));
    }

    #[test]
    fn a_waiting_item_can_be_taken_out() {
        let mut l = lanes(1);
        for i in 1..=3 {
            l.add_queued("main");
            let _ = l.admit("main", i);
        }
        assert_eq!(l.remove_ready("main", |i| *i == 3), Some(3));
        assert_eq!(l.remove_ready("main", |i| *i == 3), None);
        assert_eq!(l.status()[0].queued, 1);
        assert_eq!(l.release("main"), Some(2));
    }

    #[test]
    fn lanes_are_independent() {
        let mut l = Lanes::new(&LanesConfig {
            main: 1,
            subagent: 1,
            cron: 1,
        });
        l.add_queued("main");
        l.add_queued("cron");
        assert_eq!(l.admit("main", 1), Some(1));
        assert_eq!(l.admit("cron", 2), Some(2));
    }
}
