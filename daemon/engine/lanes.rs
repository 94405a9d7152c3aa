//! Global lanes: each caps how many runs execute at once (`main`, `subagent`, `cron`) and holds
//! the turns that are next in their session but wait for a free slot. Lanes are plain state,
//! changed only under the engine's lock, so admission and release can never race; a run gets
//! a task only once it is admitted, so a deep queue costs a queue entry, not a task.

use std::collections::VecDeque;

use crate::config::LanesConfig;
use crate::protocol::{Lane, LaneStatus};

struct Slots<T> {
    cap: u32,
    active: u32,
    /// Runs registered in this lane and not yet executing (in a session queue or `ready`).
    queued: u32,
    ready: VecDeque<T>,
}

pub struct Lanes<T> {
    lanes: [Slots<T>; 3],
}

fn caps(config: &LanesConfig) -> [u32; 3] {
    let mut caps = [0; 3];
    caps[Lane::Main.index()] = config.main;
    caps[Lane::Subagent.index()] = config.subagent;
    caps[Lane::Cron.index()] = config.cron;
    caps
}

impl<T> Lanes<T> {
    pub fn new(config: &LanesConfig) -> Lanes<T> {
        let lane = |cap| Slots {
            cap,
            active: 0,
            queued: 0,
            ready: VecDeque::new(),
        };
        Lanes {
            lanes: caps(config).map(lane),
        }
    }

    /// New caps (a reload); runs executing beyond a lowered cap finish as they are.
    pub fn set_caps(&mut self, config: &LanesConfig) {
        for (lane, cap) in self.lanes.iter_mut().zip(caps(config)) {
            lane.cap = cap;
        }
    }

    fn lane(&mut self, lane: Lane) -> &mut Slots<T> {
        &mut self.lanes[lane.index()]
    }

    pub fn queued(&self, lane: Lane) -> u32 {
        self.lanes[lane.index()].queued
    }

    /// A run was registered in the lane.
    pub fn add_queued(&mut self, lane: Lane) {
        self.lane(lane).queued += 1;
    }

    /// A registered run left without executing (cleared from its session's queue).
    pub fn remove_queued(&mut self, lane: Lane) {
        let lane = self.lane(lane);
        lane.queued = lane.queued.saturating_sub(1);
    }

    /// The item is next in its session: returns it when it may execute now, else keeps it.
    pub fn admit(&mut self, lane: Lane, item: T) -> Option<T> {
        let lane = self.lane(lane);
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
    pub fn release(&mut self, lane: Lane) -> Option<T> {
        let lane = self.lane(lane);
        lane.active = lane.active.saturating_sub(1);
        Self::take_ready(lane)
    }

    /// An item waiting in a lane that has room (after its cap was raised).
    pub fn next_admissible(&mut self) -> Option<T> {
        self.lanes.iter_mut().find_map(Self::take_ready)
    }

    fn take_ready(lane: &mut Slots<T>) -> Option<T> {
        if lane.active >= lane.cap {
            return None;
        }
        let next = lane.ready.pop_front()?;
        lane.active += 1;
        lane.queued = lane.queued.saturating_sub(1);
        Some(next)
    }

    /// Takes a waiting item out (it is being killed before it ran).
    pub fn remove_ready(&mut self, lane: Lane, matches: impl Fn(&T) -> bool) -> Option<T> {
        let lane = self.lane(lane);
        let i = lane.ready.iter().position(matches)?;
        lane.queued = lane.queued.saturating_sub(1);
        lane.ready.remove(i)
    }

    pub fn status(&self) -> Vec<LaneStatus> {
        Lane::ALL
            .iter()
            .zip(&self.lanes)
            .map(|(lane, l)| LaneStatus {
                name: lane.as_str().to_string(),
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
    fn admits_up_to_the_cap_then_queues_in_order() {
        let mut l = lanes(2);
        for i in 1..=4 {
            l.add_queued(Lane::Main);
            let _ = l.admit(Lane::Main, i);
        }
        let s = &l.status()[0];
        assert_eq!((s.active, s.queued), (2, 2));
        assert_eq!(l.release(Lane::Main), Some(3));
        assert_eq!(l.release(Lane::Main), Some(4));
        assert_eq!(l.release(Lane::Main), None);
        assert_eq!(l.release(Lane::Main), None);
        let s = &l.status()[0];
        assert_eq!((s.active, s.queued), (0, 0));
    }

    #[test]
    fn a_waiting_item_can_be_taken_out() {
        let mut l = lanes(1);
        for i in 1..=3 {
            l.add_queued(Lane::Main);
            let _ = l.admit(Lane::Main, i);
        }
        assert_eq!(l.remove_ready(Lane::Main, |i| *i == 3), Some(3));
        assert_eq!(l.remove_ready(Lane::Main, |i| *i == 3), None);
        assert_eq!(l.status()[0].queued, 1);
        assert_eq!(l.release(Lane::Main), Some(2));
    }

    #[test]
    fn lanes_are_independent() {
        let mut l = Lanes::new(&LanesConfig {
            main: 1,
            subagent: 1,
            cron: 1,
        });
        l.add_queued(Lane::Main);
        l.add_queued(Lane::Cron);
        assert_eq!(l.admit(Lane::Main, 1), Some(1));
        assert_eq!(l.admit(Lane::Cron, 2), Some(2));
    }

    #[test]
    fn a_raised_cap_lets_waiting_items_in() {
        let mut l = lanes(1);
        for i in 1..=3 {
            l.add_queued(Lane::Main);
            let _ = l.admit(Lane::Main, i);
        }
        assert_eq!(l.next_admissible(), None);
        l.set_caps(&LanesConfig {
            main: 3,
            subagent: 8,
            cron: 8,
        });
        assert_eq!(l.next_admissible(), Some(2));
        assert_eq!(l.next_admissible(), Some(3));
        assert_eq!(l.next_admissible(), None);
        assert_eq!(l.status()[0].active, 3);
    }
}
