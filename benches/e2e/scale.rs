//! Section `scale`: pre-built stores of 1,000 and 100,000 sessions: start-up, `sessions.list`
//! on the socket and through the CLI, and RSS, each large figure against the small store's.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::RawConn;
use super::{
    Opts, Row, Table, insert_sessions, lat, ms, prebuilt, ratio_lat, restarts, rss_text, stats,
    store_size, time_cmd, verdict,
};

pub fn section(o: &Opts, t: &mut Table) {
    t.section("scale: sessions in the store (pre-built stores)");
    let mut results = Vec::new();
    for n in [o.sessions_small, o.sessions_large] {
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
        let rss = rss_text(d.pid());
        results.push((
            n,
            stats(&ready),
            stats(&first),
            stats(&list),
            stats(&cli),
            rss,
        ));
    }
    let (small, large) = (&results[0], &results[1]);
    for r in [small, large] {
        let (n, ready, first, ..) = r;
        t.push(Row {
            metric: format!("daemon start → first reply, {n} sessions"),
            value: lat(first),
            baseline: if *n == small.0 {
                format!("→ ready {}", ms(ready.median))
            } else {
                format!("{} sessions {}", small.0, ms(small.2.median))
            },
            ratio: if *n == small.0 {
                ratio_lat(first.median, ready.median)
            } else {
                ratio_lat(first.median, small.2.median)
            },
            target: verdict("< 20 ms", first.median < Duration::from_millis(20)),
        });
    }
    for r in [small, large] {
        let (n, _, _, list, ..) = r;
        t.push(Row {
            metric: format!("`sessions.list` limit 50 (socket), {n} sessions"),
            value: lat(list),
            baseline: if *n == small.0 {
                String::new()
            } else {
                format!("{} sessions {}", small.0, ms(small.3.median))
            },
            ratio: if *n == small.0 {
                String::new()
            } else {
                ratio_lat(list.median, small.3.median)
            },
            target: String::new(),
        });
    }
    for r in [small, large] {
        let (n, _, _, _, cli, rss) = r;
        t.push(Row {
            metric: format!("`openclaw sessions list --limit 50 --json`, {n} sessions"),
            value: lat(cli),
            baseline: if *n == small.0 {
                String::new()
            } else {
                format!("{} sessions {}", small.0, ms(small.4.median))
            },
            ratio: if *n == small.0 {
                String::new()
            } else {
                ratio_lat(cli.median, small.4.median)
            },
            target: String::new(),
        });
        t.add(
            format!("daemon RSS, {n} sessions, after the list calls"),
            rss.clone(),
        );
    }
}
