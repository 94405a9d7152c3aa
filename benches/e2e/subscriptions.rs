//! The `subscriptions` section: the owner's send rate (sequential `sessions.send` on an echo
//! agent, each waiting for the reply) with no subscriptions, then with 10,240 idle ones on
//! another, quiet session (40 connections × the per-connection cap of 256), in the same run.
//! Issue 15 found such subscriptions cut the rate from 348/s to 7/s, every subscription
//! waking for every event; with events routed by session the target is within 10% of none.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

use serde_json::json;

use super::common::{Daemon, RawConn};
use super::{Opts, Row, Table, per_s, rate, ratio_rate, verdict};

const CONNECTIONS: usize = 40;
/// The per-connection cap (daemon/rpc/subscriptions.rs).
const PER_CONNECTION: usize = 256;

/// `n` sends to `main` on one connection, each waiting for the echo reply; sends per second.
fn send_rate(socket: &Path, n: usize, tag: &str) -> f64 {
    let mut c = RawConn::connect(socket);
    let t0 = Instant::now();
    for i in 0..n {
        let r = c.call(
            i as i64,
            "sessions.send",
            json!({"sessionKey": "main", "message": format!("{tag} {i}"), "timeoutSeconds": 30}),
        );
        assert_eq!(r["result"]["status"], "ok", "owner send: {r}");
    }
    rate(n, t0.elapsed())
}

/// One connection holding `PER_CONNECTION` subscriptions to `key`, subscribed pipelined.
fn idle_subscriber(socket: &Path, key: &str) -> std::os::unix::net::UnixStream {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let mut batch = Vec::new();
    for i in 0..PER_CONNECTION {
        let req = json!({"jsonrpc": "2.0", "id": i, "method": "sessions.subscribe",
                         "params": {"sessionKey": key}});
        batch.extend_from_slice(req.to_string().as_bytes());
        batch.push(b'\n');
    }
    stream.write_all(&batch).expect("subscribe");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    for _ in 0..PER_CONNECTION {
        line.clear();
        reader.read_line(&mut line).expect("a reply");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert!(v["result"]["subscription"].is_string(), "subscribe: {v}");
    }
    stream
}

pub fn section(o: &Opts, t: &mut Table) {
    t.section("subscriptions: the owner's send rate with many idle subscriptions");
    let total = CONNECTIONS * PER_CONNECTION;
    let d = Daemon::start_with_config(&format!(
        "[limits]\nmax_subscriptions_per_uid = {total}\nmax_subscriptions = {}\n",
        total * 2
    ));
    let socket = d.socket();
    let mut owner = RawConn::connect(&socket);
    let quiet = owner.call_ok("sessions.spawn", json!({"task": "quiet"}));
    let quiet = quiet["sessionKey"].as_str().expect("a key").to_string();
    let n = o.send;
    send_rate(&socket, n.min(50), "warm");
    eprintln!("owner sends x{n}, no subscriptions ...");
    let none = send_rate(&socket, n, "none");
    eprintln!("{total} idle subscriptions on another session ...");
    let held: Vec<_> = (0..CONNECTIONS)
        .map(|_| idle_subscriber(&socket, &quiet))
        .collect();
    eprintln!("owner sends x{n} with them ...");
    let with = send_rate(&socket, n, "with");
    drop(held);
    t.push(Row {
        metric: "owner `sessions.send` + wait (echo), sequential, no subscriptions".into(),
        value: per_s(none),
        ..Row::default()
    });
    t.push(Row {
        metric: format!(
            "the same with {total} idle subscriptions to another session ({CONNECTIONS} connections)"
        ),
        value: per_s(with),
        baseline: per_s(none),
        ratio: ratio_rate(with, none),
        target: verdict("within 10% of none", with >= 0.9 * none),
    });
}
