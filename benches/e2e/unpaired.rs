//! The `unpaired` section: the owner's `sessions.send` (echo agent, waiting for the reply)
//! idle, then while another local user (`nobody`, never paired) floods the daemon at full
//! speed on as many connections as it is allowed: pipelined `hello`s, `pairing.authenticate`
//! with signatures that fail, and batches (each connection writes without ever waiting, and
//! reconnects when the handshake deadline closes it). Issue 15 asks that the owner's latency
//! stay within 2× of idle. Needs root and setpriv (to be
//! `nobody`); otherwise the section says so and measures nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{Daemon, RawConn, connect_as_nobody, nobody_unavailable, open_home_to_others};
use super::{Opts, Row, Table, lat, ms, per_s, rate, ratio_lat, stats, verdict};

/// Flooding connections: the default `[limits] max_unauthenticated_per_uid`.
const FLOODERS: usize = 8;

/// `n` sends on one owner connection, each waiting for the echo reply.
fn owner_sends(socket: &Path, n: usize, tag: &str) -> Vec<Duration> {
    let mut c = RawConn::connect(socket);
    (0..n)
        .map(|i| {
            let t0 = Instant::now();
            let r = c.call(
                i as i64,
                "sessions.send",
                json!({"sessionKey": "main", "message": format!("{tag} {i}"), "timeoutSeconds": 30}),
            );
            let el = t0.elapsed();
            assert_eq!(r["result"]["status"], "ok", "owner send: {r}");
            el
        })
        .collect()
}

/// What one flooding connection sends, over and over.
fn flood_payload() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..64 {
        let line = match i % 4 {
            0 | 1 => json!({"jsonrpc": "2.0", "id": i, "method": "hello"}),
            2 => json!({"jsonrpc": "2.0", "id": i, "method": "pairing.authenticate",
                        "params": {"publicKey": "ab".repeat(32), "signature": "cd".repeat(64)}}),
            _ => json!([{"jsonrpc": "2.0", "id": i, "method": "hello"},
                        {"jsonrpc": "2.0", "id": i + 1000, "method": "sessions.list"}]),
        };
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// One flooding connection after another until `stop`: a writer that never waits, a
/// reader counting answers. Returns the connections made.
fn flood(socket: &Path, stop: &AtomicBool, answers: &AtomicU64) -> u64 {
    let payload = flood_payload();
    let mut made = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = connect_as_nobody(socket) else {
            continue;
        };
        made += 1;
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let Ok(mut w) = stream.try_clone() else {
            continue;
        };
        let writer_stop = Arc::new(AtomicBool::new(false));
        let ws = writer_stop.clone();
        let payload = payload.clone();
        let writer = std::thread::spawn(move || {
            while !ws.load(Ordering::Relaxed) {
                if w.write_all(&payload).is_err() {
                    break;
                }
            }
        });
        let mut reader = BufReader::new(&stream);
        let mut line = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    answers.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        writer_stop.store(true, Ordering::Relaxed);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
    }
    made
}

pub fn section_unpaired(o: &Opts, t: &mut Table) {
    t.section("unpaired: the owner's send while another user floods");
    if let Some(why) = nobody_unavailable() {
        t.add(
            "owner `sessions.send` under an unpaired flood",
            format!("not measured: {why}"),
        );
        return;
    }
    let d = Daemon::start_with_config("[socket]\nmode = \"0666\"\n");
    open_home_to_others(&d);
    let socket = d.socket();
    let n = o.send;
    eprintln!("owner sends x{n}, idle ...");
    owner_sends(&socket, n.min(50), "warm");
    let idle = stats(&owner_sends(&socket, n, "idle"));

    eprintln!("owner sends x{n} while nobody floods on {FLOODERS} connections ...");
    let stop = AtomicBool::new(false);
    let answers = AtomicU64::new(0);
    let (loaded, flood_time, made) = std::thread::scope(|sc| {
        let flooders: Vec<_> = (0..FLOODERS)
            .map(|_| sc.spawn(|| flood(&socket, &stop, &answers)))
            .collect();
        // The flood is under way once every flooder has been answered at least once.
        let t0 = Instant::now();
        while answers.load(Ordering::Relaxed) < (FLOODERS * 10) as u64
            && t0.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        let before = answers.load(Ordering::Relaxed);
        let loaded = owner_sends(&socket, n, "loaded");
        let flood_time = started.elapsed();
        let flood_answers = answers.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        let made: u64 = flooders
            .into_iter()
            .map(|h| h.join().expect("flooder"))
            .sum();
        (loaded, (flood_time, flood_answers), made)
    });
    let loaded = stats(&loaded);
    let status = RawConn::connect(&socket).call_ok("daemon.status", json!({}));
    let (median_x, p99_x) = (
        loaded.median.as_secs_f64() / idle.median.as_secs_f64().max(1e-9),
        loaded.p99.as_secs_f64() / idle.p99.as_secs_f64().max(1e-9),
    );
    t.push(Row {
        metric: "owner `sessions.send` + wait (echo), idle".into(),
        value: lat(&idle),
        ..Row::default()
    });
    t.push(Row {
        metric: format!(
            "owner `sessions.send` + wait (echo), while nobody floods on {FLOODERS} connections"
        ),
        value: lat(&loaded),
        baseline: format!("idle median {}, p99 {}", ms(idle.median), ms(idle.p99)),
        ratio: format!(
            "median {}, p99 {}",
            ratio_lat(loaded.median, idle.median),
            ratio_lat(loaded.p99, idle.p99)
        ),
        target: verdict("median within 2× of idle", median_x <= 2.0),
    });
    t.add(
        "the flood meanwhile",
        format!(
            "{} answers to nobody ({} connections made); unauthenticated in-flight peak {}; p99 ratio {p99_x:.2}×",
            per_s(rate(flood_time.1 as usize, flood_time.0)),
            made,
            status["unauthenticated"]["inFlightPeak"]
        ),
    );
}
