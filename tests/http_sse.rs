//! Follows as SSE (issue 13): while messages are appended concurrently, a client that drops
//! its connection mid-stream and reconnects with `Last-Event-ID` gets every seq exactly once,
//! in order; a client that stops reading does not grow the daemon's memory; `/api/events`
//! carries what the live list needs; a deleted session ends its follow.

mod common;
mod http_client;

use std::time::{Duration, Instant};

use common::{Daemon, FifoGate, JSONL_SCRIPT, RawConn, proc_status_kb};
use http_client::{Conn, Sse, Target, daemon_with_http, token};
use serde_json::{Value, json};

fn enc(key: &str) -> String {
    key.replace(':', "%3A")
}

/// Spawns a session (echo) over JSON-RPC and waits for its first run: seqs 1 and 2 exist.
fn seeded_session(d: &Daemon) -> String {
    let mut rpc = RawConn::connect(&d.socket());
    let r = rpc.call_ok("sessions.spawn", json!({"task": "seed"}));
    let key = r["sessionKey"].as_str().unwrap().to_string();
    let w = rpc.call_ok(
        "runs.wait",
        json!({"runId": r["runId"], "timeoutSeconds": 20}),
    );
    assert_eq!(w["status"], "ok", "{w}");
    key
}

/// The next `session.message` of a follow, checked: its `id:` is its seq.
fn next_message(sse: &mut Sse) -> Option<u64> {
    loop {
        let e = sse.next_event()?;
        match e.event.as_str() {
            "session.message" => {
                let seq = e.json()["message"]["seq"].as_u64().expect("a seq");
                assert_eq!(e.id.as_deref(), Some(seq.to_string().as_str()), "{e:?}");
                return Some(seq);
            }
            "run.event" => assert!(e.id.is_none(), "run events carry no id: {e:?}"),
            "sessions.changed" => assert!(e.id.is_none(), "{e:?}"),
            "subscription.lagged" => {}
            other => panic!("unexpected event {other}: {e:?}"),
        }
    }
}

#[test]
fn a_follow_resumes_by_last_event_id_with_every_seq_once_in_order() {
    let (d, addr) = daemon_with_http("[limits]\nmax_queued_per_session = 100000\n", "", &[]);
    let tok = token(&d);
    let key = seeded_session(&d);
    const SENDS: u64 = 150;
    let last = 2 + 2 * SENDS;

    let path = format!("/api/sessions/{}/history?follow=1", enc(&key));
    let mut sse = Conn::connect(&Target::Tcp(addr))
        .with_token(Some(&tok))
        .sse(&format!("{path}&afterSeq=0"), &[]);
    let socket = d.socket();
    let sent_to = key.clone();
    let appender = std::thread::spawn(move || {
        let mut rpc = RawConn::connect(&socket);
        for i in 0..SENDS {
            let r = rpc.call_ok(
                "sessions.send",
                json!({"sessionKey": sent_to, "message": format!("m{i}"), "timeoutSeconds": 0}),
            );
            assert_eq!(r["status"], "accepted", "{r}");
        }
    });

    let mut seen: Vec<u64> = Vec::new();
    let mut reconnects = 0;
    while seen.last().copied().unwrap_or(0) < last {
        let Some(seq) = next_message(&mut sse) else {
            panic!("the follow ended at seq {:?}", seen.last());
        };
        seen.push(seq);
        // Every 40 messages the client goes away mid-stream and comes back, alternately by
        // Last-Event-ID (as EventSource does), by afterSeq, and over the socket.
        if seen.len().is_multiple_of(40) && seq < last {
            drop(sse);
            reconnects += 1;
            let from = seq.to_string();
            sse = match reconnects % 3 {
                0 => Conn::connect(&Target::Tcp(addr))
                    .with_token(Some(&tok))
                    .sse(&format!("{path}&afterSeq={from}"), &[]),
                1 => Conn::connect(&Target::Tcp(addr))
                    .with_token(Some(&tok))
                    .sse(&path, &[("Last-Event-ID", &from)]),
                _ => {
                    Conn::connect(&Target::Unix(d.socket())).sse(&path, &[("Last-Event-ID", &from)])
                }
            };
        }
    }
    appender.join().expect("the appender");
    let want: Vec<u64> = (1..=last).collect();
    assert_eq!(
        seen, want,
        "every seq exactly once, in order, across {reconnects} reconnects"
    );
    assert!(reconnects >= 5, "{reconnects}");

    // The streams left behind are gone once the daemon writes to them; the one still open
    // stays.
    drop(sse);
    let mut rpc = RawConn::connect(&d.socket());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        rpc.call_ok(
            "sessions.send",
            json!({"sessionKey": key, "message": "poke", "timeoutSeconds": 10}),
        );
        let open = rpc.call_ok("daemon.status", json!({}))["subscriptions"]
            .as_u64()
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} follows still open after every client left"
        );
    }
}

/// Bytes of tool progress the flooding agent reports in one turn, in events of `LINE` bytes.
const FLOOD_BYTES: u64 = 320 << 20;
const LINE: u64 = 16 << 10;

#[test]
fn a_reader_that_stops_reading_does_not_grow_the_daemons_memory() {
    let scratch = tempfile::tempdir().unwrap();
    let mut gate = FifoGate::new(scratch.path(), "go");
    // The turn "flood" waits for the test to open the gate, then reports 320 MiB of tool
    // progress (run events only: nothing of it is stored); any other turn replies "ok".
    let script = format!(
        "msg=$(cat); if [ \"$msg\" = flood ]; then read go < '{gate}'; \
         line='{{\"type\":\"tool_update\",\"id\":\"t1\",\"output\":\"'$(head -c {LINE} /dev/zero | tr '\\0' x)'\"}}'; \
         yes \"$line\" | head -n {lines}; else echo '{{\"text\":\"ok\"}}'; fi",
        gate = gate.path.display(),
        lines = FLOOD_BYTES / LINE,
    );
    let config = format!(
        "[agents.flood]\nbackend = \"exec\"\nformat = \"jsonl\"\ncommand = [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(&script).unwrap()
    );
    let d = Daemon::start_with_config(&config);
    let pid = d.pid();
    let mut rpc = RawConn::connect(&d.socket());
    // A first flood with nobody following: what the daemon needs for such a run itself (the
    // stored reply and its copies) is in the baseline.
    let r = rpc.call_ok(
        "sessions.spawn",
        json!({"task": "warm up", "agentId": "flood"}),
    );
    let key = r["sessionKey"].as_str().unwrap().to_string();
    let w = rpc.call_ok(
        "runs.wait",
        json!({"runId": r["runId"], "timeoutSeconds": 60}),
    );
    assert_eq!(w["runStatus"], "ok", "{w}");

    // A follower that reads its answer's head, then nothing: its socket fills, and the daemon
    // must stop taking events for it rather than hold them.
    let mut stalled = Conn::connect(&Target::Unix(d.socket()));
    let path = format!("/api/sessions/{}/history?follow=1&afterSeq=0", enc(&key));
    let head = stalled.head("GET", &path, &[], 0);
    stalled.write_raw(head.as_bytes());
    assert_eq!(stalled.read_head().0, 200);

    let r = rpc.call_ok(
        "sessions.send",
        json!({"sessionKey": key, "message": "flood", "timeoutSeconds": 0}),
    );
    let run = r["runId"].clone();
    let baseline = proc_status_kb(pid, "VmRSS").expect("the daemon's RSS");
    gate.release();
    let mut peak = baseline;
    loop {
        let w = rpc.call_ok("runs.wait", json!({"runId": run, "timeoutSeconds": 0.1}));
        peak = peak.max(proc_status_kb(pid, "VmRSS").expect("the daemon's RSS"));
        if w["status"] != "timeout" {
            assert_eq!(w["runStatus"], "ok", "{w}");
            break;
        }
    }
    // Held for the stalled follower, the run's events would be 320 MiB; what the daemon may
    // keep for it is its bounded inbox on the event bus (4096 events, 16 KiB each here).
    let grown_mb = peak.saturating_sub(baseline) / 1024;
    eprintln!("daemon RSS {baseline} kB before, {peak} kB at most while a follower stalled");
    assert!(
        grown_mb < 128,
        "the daemon grew by {grown_mb} MB while a follower did not read {} MiB of run events",
        FLOOD_BYTES >> 20
    );

    // When it reads again it is told it missed live events, and gets every message once, in
    // order, from the store.
    let mut sse = Sse::resume(stalled);
    let (mut seqs, mut lagged) = (Vec::new(), false);
    while seqs.last() != Some(&4) {
        let e = sse.next_event().expect("the follow ended");
        match e.event.as_str() {
            "session.message" => seqs.push(e.json()["message"]["seq"].as_u64().unwrap()),
            "subscription.lagged" => lagged = true,
            _ => {}
        }
    }
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert!(lagged, "a follower that fell behind is told so");
}

#[test]
fn the_events_stream_carries_what_a_live_list_needs() {
    let (d, addr) = daemon_with_http("", "", &[]);
    let tok = token(&d);
    let mut events =
        Conn::connect(&Target::Tcp(addr)).sse(&format!("/api/events?access_token={tok}"), &[]);
    let mut lifecycle =
        Conn::connect(&Target::Unix(d.socket())).sse("/api/events?events=lifecycle", &[]);
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&tok));
    let r = c.post("/api/sessions/spawn", r#"{"task":"watch me"}"#);
    let key = r.json()["sessionKey"].as_str().unwrap().to_string();
    let run = r.json()["runId"].as_str().unwrap().to_string();

    let (mut created, mut stored, mut reply_text, mut ended) = (None::<Value>, 0, false, false);
    while !(created.is_some() && stored == 2 && reply_text && ended) {
        let e = events.next_event().expect("the events stream ended");
        assert!(e.id.is_none(), "/api/events has no ids to resume by: {e:?}");
        let v = e.json();
        assert_eq!(v["sessionKey"], key.as_str(), "{e:?}");
        match e.event.as_str() {
            "sessions.changed" if v["phase"] == "create" => created = Some(v["session"].clone()),
            "sessions.changed" => {}
            "session.message" => stored += 1,
            "run.event" if v["stream"] == "assistant" => {
                assert_eq!(v["runId"], run.as_str());
                reply_text = true;
            }
            "run.event" => ended |= v["stream"] == "lifecycle" && v["data"]["phase"] == "ended",
            other => panic!("{other}: {e:?}"),
        }
    }
    let row = created.unwrap();
    assert_eq!(
        row["key"],
        key.as_str(),
        "a full row with the create: {row}"
    );
    assert!(
        row["agentId"].is_string() && row["status"].is_string(),
        "{row}"
    );
    // Only lifecycle events on the narrowed stream.
    let mut phases = Vec::new();
    while !phases.contains(&"end".to_string()) {
        let e = lifecycle.next_event().expect("the lifecycle stream ended");
        let v = e.json();
        match e.event.as_str() {
            "sessions.changed" => phases.push(v["phase"].as_str().unwrap().to_string()),
            "run.event" => assert_eq!(v["stream"], "lifecycle", "{e:?}"),
            other => panic!("events=lifecycle carried {other}: {e:?}"),
        }
    }
    assert_eq!(
        phases.first().map(String::as_str),
        Some("create"),
        "{phases:?}"
    );
}

#[test]
fn a_follow_leaves_out_tool_results_unless_asked_and_ends_when_its_session_goes() {
    let config = format!(
        "[agents.main]\nbackend = \"exec\"\nformat = \"jsonl\"\ncommand = [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(JSONL_SCRIPT).unwrap()
    );
    let (d, _) = daemon_with_http(&config, "", &[]);
    let key = seeded_session(&d);
    let h = RawConn::connect(&d.socket()).call_ok(
        "sessions.history",
        json!({"sessionKey": key, "includeTools": true}),
    );
    let roles: Vec<String> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert!(
        roles.contains(&"tool_result".to_string()),
        "the agent stores a tool result: {roles:?}"
    );
    let last = h["messages"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();

    let path = format!("/api/sessions/{}/history", enc(&key));
    let read_roles = |query: &str, accept: bool| {
        let headers: Vec<(&str, &str)> = if accept {
            vec![("Accept", "text/event-stream")]
        } else {
            vec![]
        };
        let mut sse =
            Conn::connect(&Target::Unix(d.socket())).sse(&format!("{path}?{query}"), &headers);
        let mut roles = Vec::new();
        loop {
            let e = sse.next_event().expect("the follow ended");
            if e.event == "session.message" {
                let m = &e.json()["message"];
                roles.push(m["role"].as_str().unwrap().to_string());
                if m["seq"].as_u64() == Some(last) {
                    return roles;
                }
            }
        }
    };
    let all = read_roles("follow=1&afterSeq=0&includeTools=1", false);
    assert_eq!(all, roles, "includeTools: every message");
    let without = read_roles("afterSeq=0", true);
    let want: Vec<String> = roles
        .iter()
        .filter(|r| *r != "tool_result")
        .cloned()
        .collect();
    assert_eq!(
        without, want,
        "Accept: text/event-stream follows too, without tool results"
    );

    let mut sse = Conn::connect(&Target::Unix(d.socket())).sse(&format!("{path}?follow=1"), &[]);
    let mut c = Conn::connect(&Target::Unix(d.socket()));
    assert_eq!(
        c.request("DELETE", &format!("/api/sessions/{}", enc(&key)), None)
            .status,
        200
    );
    let ended = loop {
        let e = sse
            .next_event()
            .expect("the follow closed without saying why");
        if e.event == "subscription.ended" {
            break e;
        }
    };
    assert_eq!(ended.json()["reason"], "deleted", "{ended:?}");
    assert!(
        sse.next_event().is_none(),
        "nothing after subscription.ended: the answer ends"
    );
}
