//! Section `history`: a pre-built transcript of a million messages: start-up on it, history
//! pages (newest and at a cursor, against a 100-message transcript), the CLI's history, and
//! follow catch-up from seq 0 on the socket and through `openclaw sessions follow`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::RawConn;
use super::{
    Opts, Row, Stats, Table, insert_transcript, lat, ms, per_s, prebuilt, rate, ratio_lat,
    ratio_rate, restarts, rss_text, stats, status, stop_child, store_size, time_cmd, verdict,
};

/// received, in order).
pub fn catch_up(socket: &Path, key: &str, n: usize) -> (Duration, usize, bool) {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "sessions.subscribe",
                     "params": {"sessionKey": key, "afterSeq": 0, "events": ["message"]}});
    let t0 = Instant::now();
    w.write_all(format!("{req}\n").as_bytes()).expect("write");
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let (mut line, mut expect, mut got, mut ordered) = (Vec::new(), 1u64, 0usize, true);
    while got < n {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        let Some(seq) = seq_of(&line) else { continue };
        ordered &= seq == expect;
        expect = seq + 1;
        got += 1;
    }
    (t0.elapsed(), got, ordered)
}

/// The `"seq":N` of a `session.message` line, found without parsing the whole line.
pub fn seq_of(line: &[u8]) -> Option<u64> {
    let head = &line[..line.len().min(400)];
    let find = |pat: &[u8]| head.windows(pat.len()).position(|w| w == pat);
    find(b"session.message")?;
    let at = find(b"\"seq\":")? + 6;
    let digits: Vec<u8> = head[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

pub fn section(o: &Opts, t: &mut Table) {
    let n = o.transcript;
    t.section(&format!(
        "history and catch-up: a {n}-message transcript (pre-built store)"
    ));
    eprintln!("building a store with a {n}-message transcript ...");
    let mut keys = (String::new(), String::new());
    let (mut d, took) = prebuilt("", |loader| {
        keys.0 = insert_transcript(loader, n, "long");
        keys.1 = insert_transcript(loader, 100, "short");
    });
    let (big, small) = keys;
    t.note(format!(
        "history: inserting the {n}-message transcript took {}; store {}",
        ms(took),
        store_size(&d)
    ));
    let (ready, first) = restarts(&mut d, o.starts);
    let (ready, first) = (stats(&ready), stats(&first));
    t.push(
        Row::latency(
            format!("daemon start → first reply, store with a {n}-message transcript"),
            &first,
            "→ ready",
            &ready,
        )
        .target(verdict("< 20 ms", first.median < Duration::from_millis(20))),
    );
    let socket = d.socket();
    let page = |key: &str, cursor: Option<String>, calls: usize| -> Stats {
        let mut c = RawConn::connect(&socket);
        let mut params = json!({"sessionKey": key, "limit": 100});
        if let Some(cur) = cursor {
            params["cursor"] = cur.into();
        }
        let samples: Vec<Duration> = (0..calls)
            .map(|i| {
                let t0 = Instant::now();
                let r = c.call(i as i64, "sessions.history", params.clone());
                let el = t0.elapsed();
                assert_eq!(
                    r["result"]["messages"].as_array().map(Vec::len),
                    Some(100),
                    "{}",
                    r.to_string().chars().take(300).collect::<String>()
                );
                el
            })
            .collect();
        stats(&samples)
    };
    eprintln!("history pages x{} ...", o.history);
    let base = page(&small, None, o.history);
    let newest = page(&big, None, o.history);
    let middle = page(&big, Some((n / 2).to_string()), o.history);
    t.push(
        Row::latency(
            format!("`sessions.history` page of 100, newest, {n}-message transcript"),
            &newest,
            "same on a 100-message transcript",
            &base,
        )
        .target(verdict("< 2 ms", newest.median < Duration::from_millis(2))),
    );
    t.push(
        Row::latency(
            format!("`sessions.history` page of 100 at seq {} (cursor)", n / 2),
            &middle,
            "newest page",
            &newest,
        )
        .target(verdict("< 2 ms", middle.median < Duration::from_millis(2))),
    );
    let cli_hist = |key: &str| {
        let samples: Vec<Duration> = (0..o.cli_send.min(50))
            .map(|_| {
                time_cmd(
                    d.cli()
                        .args(["sessions", "history", key, "--limit", "100", "--json"]),
                    "openclaw sessions history",
                )
                .0
            })
            .collect();
        stats(&samples)
    };
    let cli_small = cli_hist(&small);
    let cli_big = cli_hist(&big);
    t.push(Row {
        metric: format!(
            "`openclaw sessions history KEY --limit 100 --json`, {n}-message transcript"
        ),
        value: lat(&cli_big),
        baseline: format!("100-message transcript {}", ms(cli_small.median)),
        ratio: ratio_lat(cli_big.median, cli_small.median),
        target: String::new(),
    });

    eprintln!("follow catch-up over {n} messages ...");
    let (el, got, ordered) = catch_up(&socket, &big, n);
    let r = rate(got, el);
    t.push(Row {
        metric: format!(
            "follow catch-up from seq 0 (`sessions.subscribe afterSeq 0`), {n} messages"
        ),
        value: format!(
            "{} ({} in {}{})",
            per_s(r),
            got,
            ms(el),
            if ordered && got == n {
                ""
            } else {
                ", **incomplete or out of order**"
            }
        ),
        target: verdict("> 200,000/s", r > 200_000.0 && ordered && got == n),
        ..Row::default()
    });
    let pid = d.pid();
    t.add(
        "daemon RSS after the catch-up",
        format!(
            "{}; {} buffered notifications",
            rss_text(pid),
            status(&socket)["bufferedNotifications"]
        ),
    );

    eprintln!("CLI follow --from-start over {n} messages ...");
    let err_path = d.home_path().join("follow.stderr");
    let mut child = d
        .cli()
        .args(["sessions", "follow", &big, "--from-start", "--json"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("openclaw sessions follow");
    let t0 = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    let (mut line, mut cgot) = (Vec::new(), 0usize);
    while cgot < n {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            break;
        }
        if seq_of(&line).is_some() {
            cgot += 1;
        }
    }
    let cel = t0.elapsed();
    stop_child(&mut child);
    if cgot < n {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        t.add(
            format!("`openclaw sessions follow KEY --from-start --json`, {n} messages"),
            format!(
                "not measured: {cgot} lines, then it stopped: {}",
                err.lines().next().unwrap_or("no message")
            ),
        );
        return;
    }
    let cr = rate(cgot, cel);
    t.push(Row {
        metric: format!("`openclaw sessions follow KEY --from-start --json`, {n} messages"),
        value: format!("{} ({cgot} lines in {})", per_s(cr), ms(cel)),
        baseline: format!("raw socket {}", per_s(r)),
        ratio: ratio_rate(cr, r),
        target: String::new(),
    });
}
