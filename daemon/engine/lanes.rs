//! Global lanes: each caps how many runs execute at once (`main`, `subagent`, `cron`) and how
//! many may wait for it before new work is refused with `busy`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use openclaw::config::LanesConfig;
use openclaw::protocol::LaneStatus;
use tokio::sync::Semaphore;

pub struct Lane {
    pub name: &'static str,
    cap: u32,
    permits: Arc<Semaphore>,
    active: AtomicU32,
    queued: AtomicU32,
}

impl Lane {
    fn new(name: &'static str, cap: u32) -> Lane {
        Lane {
            name,
            cap,
            permits: Arc::new(Semaphore::new(cap as usize)),
            active: AtomicU32::new(0),
            queued: AtomicU32::new(0),
        }
    }

    pub fn permits(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }

    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn add_queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn remove_queued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn started(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn status(&self) -> LaneStatus {
        LaneStatus {
            name: self.name.to_string(),
            cap: self.cap,
            active: self.active.load(Ordering::Relaxed),
            queued: self.queued(),
        }
    }
}

pub struct Lanes {
    main: Lane,
    subagent: Lane,
    cron: Lane,
}

impl Lanes {
    pub fn new(config: &LanesConfig) -> Lanes {
        Lanes {
            main: Lane::new("main", config.main),
            subagent: Lane::new("subagent", config.subagent),
            cron: Lane::new("cron", config.cron),
        }
    }

    /// The lane for a session kind: sub-agents and cron jobs have their own, everything else
    /// shares `main`.
    pub fn for_kind(&self, kind: &str) -> &Lane {
        match kind {
            "subagent" => &self.subagent,
            "cron" => &self.cron,
            _ => &self.main,
        }
    }

    pub fn by_name(&self, name: &str) -> &Lane {
        match name {
            "subagent" => &self.subagent,
            "cron" => &self.cron,
            _ => &self.main,
        }
    }

    pub fn status(&self) -> Vec<LaneStatus> {
        vec![self.main.status(), self.subagent.status(), self.cron.status()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_their_lanes() {
        let lanes = Lanes::new(&LanesConfig { main: 1, subagent: 2, cron: 3 });
        assert_eq!(lanes.for_kind("subagent").name, "subagent");
        assert_eq!(lanes.for_kind("cron").name, "cron");
        assert_eq!(lanes.for_kind("main").name, "main");
        assert_eq!(lanes.for_kind("hook").name, "main");
        assert_eq!(lanes.status()[1].cap, 2);
    }

    #[test]
    fn counters_follow_a_run() {
        let lanes = Lanes::new(&LanesConfig::default());
        let lane = lanes.by_name("main");
        lane.add_queued();
        assert_eq!(lane.status().queued, 1);
        lane.started();
        assert_eq!((lane.status().queued, lane.status().active), (0, 1));
        lane.ended();
        assert_eq!(lane.status().active, 0);
    }
}
