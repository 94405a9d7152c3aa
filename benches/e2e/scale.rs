//! Section `scale`: pre-built stores of 1,000, 100,000 and 1,000,000 sessions: start-up,
//! `sessions.list` on the socket and through the CLI, durable spawns/s from one pipelined
//! connection (the C load generator of `floors`), and RSS, each large figure against the small
//! store's.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::RawConn;
use super::{
    Opts, Row, Stats, Table, insert_sessions, lat, ms, per_s, prebuilt, rate, ratio_rate, restarts,
    rss_text, stats, store_size, time_cmd, verdict,
};

/// What one pre-built store measured.
struct Store {
    n: usize,
    ready: Stats,
    first: Stats,
    list: Stats,
    cli: Stats,
    /// Durable spawns/s, one pipelined connection; `None` when the generator could not run.
    spawns: Option<f64>,
    rss: String,
}

pub fn section(o: &Opts, t: &mut Table) {
    t.section("scale: sessions in the store (pre-built stores)");
    let generator = super::floors::build_floor("pipeline")
        .inspect_err(|e| t.note(format!("scale: no spawn throughput rows: {e}")))
        .ok();
    let mut results = Vec::new();
    for n in [o.sessions_small, o.sessions_large, o.sessions_huge] {
        eprintln!("building a store of {n} sessions ...");
        let (mut d, took) = prebuilt("", |loader| insert_sessions(loader, n));
        t.note(format!(
            "scale: inserting {n} sessions (2 messages and 1 run each) took {}; store {}",
            ms(took),
            store_size(&d)
        ));
        let (ready, first) = restarts(&mut d, o.starts);
        let socket = d.socket();
        let mut c = RawConn::connect(&socket);
        let list: Vec<Duration> = (0..o.list)
            .map(|i| {
                let t0 = Instant::now();
                let r = c.call(i as i64, "sessions.list", json!({"limit": 50}));
                let el = t0.elapsed();
                assert_eq!(r["result"]["sessions"].as_array().map(Vec::len), Some(50));
                el
            })
            .collect();
        let cli: Vec<Duration> = (0..o.cli_send.min(50))
            .map(|_| {
                time_cmd(
                    d.cli()
                        .args(["sessions", "list", "--limit", "50", "--json"]),
                    "openclaw sessions list",
                )
                .0
            })
            .collect();
        let checked = super::wait_thread_gone(d.pid(), "store-check");
        let spawns = generator.as_ref().and_then(|g| {
            eprintln!("  {} pipelined spawns into it ...", o.pipeline);
            super::floors::floor_pipeline(g, &socket, o.pipeline, 1, &format!("scale-{n}"))
                .inspect_err(|e| t.note(format!("scale: pipelined spawns, {n} sessions: {e}")))
                .ok()
                .map(|(elapsed, _)| rate(o.pipeline, elapsed))
        });
        if spawns.is_some() {
            t.note(format!(
                "scale: {n} sessions: the spawns began once the start-up store check had ended ({} after the calls above)",
                ms(checked)
            ));
        }
        results.push(Store {
            n,
            spawns,
            ready: stats(&ready),
            first: stats(&first),
            list: stats(&list),
            cli: stats(&cli),
            rss: rss_text(d.pid()),
        });
    }
    let small = &results[0];
    // The large store's figure against the small store's; the small store's own row has none.
    let row = |metric: String, i: usize, pick: fn(&Store) -> &Stats| {
        if i == 0 {
            Row {
                metric,
                value: lat(pick(small)),
                ..Row::default()
            }
        } else {
            let label = format!("{} sessions", small.n);
            Row::latency(metric, pick(&results[i]), &label, pick(small))
        }
    };
    for (i, s) in results.iter().enumerate() {
        let metric = format!("daemon start → first reply, {} sessions", s.n);
        let row = if i == 0 {
            Row::latency(metric, &s.first, "→ ready", &s.ready)
        } else {
            row(metric, i, |s| &s.first)
        };
        let fast = s.first.median < Duration::from_millis(20);
        t.push(row.target(verdict("< 20 ms", fast)));
    }
    for (i, s) in results.iter().enumerate() {
        let metric = format!("`sessions.list` limit 50 (socket), {} sessions", s.n);
        t.push(row(metric, i, |s| &s.list));
    }
    for (i, s) in results.iter().enumerate() {
        let Some(r) = s.spawns else { continue };
        let metric = format!(
            "durable spawns/s into a store of {} sessions, 1 connection pipelined (C load generator)",
            s.n
        );
        let row = match small.spawns.filter(|_| i > 0) {
            Some(base) => Row {
                metric,
                value: per_s(r),
                baseline: format!("{} sessions {}", small.n, per_s(base)),
                ratio: ratio_rate(r, base),
                target: verdict("flat within 15%", r >= 0.85 * base),
            },
            None => Row {
                metric,
                value: per_s(r),
                ..Row::default()
            },
        };
        t.push(row);
    }
    for (i, s) in results.iter().enumerate() {
        let metric = format!(
            "`openclaw sessions list --limit 50 --json`, {} sessions",
            s.n
        );
        t.push(row(metric, i, |s| &s.cli));
        t.add(
            format!("daemon RSS, {} sessions, after the list calls", s.n),
            s.rss.clone(),
        );
    }
}
