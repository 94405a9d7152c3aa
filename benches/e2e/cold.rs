//! Section `cold`: daemon cold start in a fresh home (creates and migrates the store), to
//! "ready" and to the first answered request, against `/bin/true`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{Daemon, RawConn};
use super::{Opts, Row, Table, process_floor, stats, verdict};

pub fn section(o: &Opts, t: &mut Table) {
    t.section("cold start");
    let floor = &process_floor(o.cli.clamp(20, 100));
    eprintln!("cold start x{} ...", o.cold);
    let mut to_ready = Vec::new();
    let mut to_first = Vec::new();
    for _ in 0..o.cold.max(1) {
        let t0 = Instant::now();
        let d = Daemon::start();
        to_ready.push(t0.elapsed());
        RawConn::connect(&d.socket()).call_ok("hello", json!({}));
        to_first.push(t0.elapsed());
    }
    let ready = stats(&to_ready);
    let first = stats(&to_first);
    t.push(Row::latency(
        "daemon cold start → ready (fresh home: creates and migrates the store)",
        &ready,
        "`/bin/true`",
        floor,
    ));
    t.push(
        Row::latency(
            "daemon cold start → first reply (`hello`)",
            &first,
            "`/bin/true`",
            floor,
        )
        .target(verdict("< 20 ms", first.median < Duration::from_millis(20))),
    );
}
