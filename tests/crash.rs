//! Crash consistency under load (issue 5, part 3): 8 async clients, each with a spawner and a
//! sender calling concurrently, while the daemon is `kill -9`ed several times at points
//! chosen at random (a seeded count of acknowledgements, never a sleep) and restarted. After
//! every restart the store must hold every acknowledged spawn and send with its content,
//! nothing that was refused, nothing twice, contiguous seqs in every session and pass
//! `PRAGMA integrity_check`; at the end, once the requeued runs have been waited for, no run
//! may be left `queued` or `running`.
//!
//! The seed is printed; `OPENCLAW_CRASH_SEED=N cargo test --test crash` replays its choices
//! (thread scheduling still varies). `OPENCLAW_CRASH_ROUNDS` sets the number of kills.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Daemon;
use openclaw::{Client, ClientError};
use serde_json::{Value, json};

const CLIENTS: usize = 8;
const DEFAULT_ROUNDS: usize = 8;
/// The default agent is the built-in echo; `t` is an exec agent running `true`, so some runs
/// are real processes that a kill can catch mid-run.
const CONFIG: &str = "[agents.t]\nbackend = \"exec\"\ncommand = [\"true\"]\n";

/// splitmix64: a small seeded generator (the test must not depend on `rand`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Spawn,
    Send,
}

#[derive(Debug, Clone)]
enum Outcome {
    /// Sent; the daemon died before answering: may or may not be stored.
    Unknown,
    /// Answered with a run: must be stored.
    Acked {
        run_id: String,
        /// For a spawn: the new session's key and id.
        session: Option<(String, String)>,
    },
    /// Answered with an error: must not be stored.
    Refused(String),
}

#[derive(Debug, Clone)]
struct Intent {
    kind: Kind,
    /// For a send: the session it went to, as given.
    target: Option<String>,
    outcome: Outcome,
}

/// Everything the clients asked for, by content (each content is unique).
#[derive(Default)]
struct Ledger {
    intents: HashMap<String, Intent>,
    /// Keys of acknowledged spawns: where senders send.
    keys: Vec<String>,
}

struct Round {
    ledger: Arc<Mutex<Ledger>>,
    acks: Arc<AtomicUsize>,
    kill_at: usize,
    trigger: Arc<tokio::sync::Notify>,
}

/// One caller: spawns (or sends) one call at a time until the daemon goes away.
async fn caller(client: Arc<Client>, kind: Kind, name: String, mut rng: Rng, round: Arc<Round>) {
    for i in 0.. {
        let content = format!("{name} #{i}");
        let (method, params, target) = match kind {
            Kind::Spawn => {
                let mut p = json!({ "task": content });
                if rng.next().is_multiple_of(2) {
                    p["agentId"] = "t".into();
                }
                ("sessions.spawn", p, None)
            }
            Kind::Send => {
                let target = {
                    let l = round.ledger.lock().unwrap();
                    if l.keys.is_empty() || rng.next().is_multiple_of(5) {
                        "main".to_string()
                    } else {
                        l.keys[rng.next() as usize % l.keys.len()].clone()
                    }
                };
                let p = json!({ "sessionKey": target, "message": content, "timeoutSeconds": 0 });
                ("sessions.send", p, Some(target))
            }
        };
        round.ledger.lock().unwrap().intents.insert(
            content.clone(),
            Intent {
                kind,
                target,
                outcome: Outcome::Unknown,
            },
        );
        let outcome = match client.call_value(method, &params).await {
            Ok(r) => {
                let run_id = r["runId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} answered without a runId: {r}"))
                    .to_string();
                let session = (kind == Kind::Spawn).then(|| {
                    (
                        r["sessionKey"].as_str().expect("sessionKey").to_string(),
                        r["sessionId"].as_str().expect("sessionId").to_string(),
                    )
                });
                Outcome::Acked { run_id, session }
            }
            Err(ClientError::Rpc(e)) => Outcome::Refused(format!("{e:?}")),
            // The daemon went away (kill -9): this caller's round is over.
            Err(_) => return,
        };
        let acked = matches!(outcome, Outcome::Acked { .. });
        {
            let mut l = round.ledger.lock().unwrap();
            if let Outcome::Acked {
                session: Some((key, _)),
                ..
            } = &outcome
            {
                l.keys.push(key.clone());
            }
            l.intents.get_mut(&content).expect("intent").outcome = outcome;
        }
        if acked && round.acks.fetch_add(1, Ordering::SeqCst) + 1 == round.kill_at {
            round.trigger.notify_one();
        }
    }
}

/// A session row: (sid, id, last_seq, message_count, active_run_id, status).
type SessionRow = (i64, String, i64, i64, Option<String>, String);
/// A message row: (seq, role, content, run_id, provenance).
type MessageRow = (i64, String, String, Option<String>, String);

/// What the store holds, read in one transaction.
struct Snapshot {
    integrity: String,
    /// By key.
    sessions: HashMap<String, SessionRow>,
    /// By sid, in seq order.
    messages: HashMap<i64, Vec<MessageRow>>,
    /// run id → (sid, status, input_seq)
    runs: HashMap<String, (i64, String, i64)>,
}

/// Reads the whole store in one transaction. Read-only while a daemon runs on it; once it
/// has stopped, read-write, since a read-only connection cannot rebuild the WAL index.
fn snapshot(d: &Daemon, daemon_running: bool) -> Snapshot {
    let flags = if daemon_running {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let mut db = rusqlite::Connection::open_with_flags(d.db_path(), flags)
        .unwrap_or_else(|e| panic!("open {}: {e}", d.db_path().display()));
    db.busy_timeout(Duration::from_secs(10)).expect("busy");
    let tx = db.transaction().expect("read transaction");
    let integrity: String = tx
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    let sessions = tx
        .prepare(
            "SELECT key, sid, id, last_seq, message_count, active_run_id, status FROM sessions",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ),
                ))
            })?
            .collect::<rusqlite::Result<HashMap<_, _>>>()
        })
        .expect("read sessions");
    let rows = tx
        .prepare(
            "SELECT sid, seq, role, content, run_id, provenance FROM messages ORDER BY sid, seq",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                    ),
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("read messages");
    let mut messages: HashMap<i64, Vec<_>> = HashMap::new();
    for (sid, (seq, role, content, run_id, prov)) in rows {
        // Content is stored as JSON; a plain string is what the clients sent.
        let content = match serde_json::from_str::<Value>(&content) {
            Ok(Value::String(s)) => s,
            _ => content,
        };
        messages
            .entry(sid)
            .or_default()
            .push((seq, role, content, run_id, prov));
    }
    let runs = tx
        .prepare("SELECT id, sid, status, input_seq FROM runs")
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })?
            .collect::<rusqlite::Result<HashMap<_, _>>>()
        })
        .expect("read runs");
    Snapshot {
        integrity,
        sessions,
        messages,
        runs,
    }
}

fn normalize(key: &str) -> String {
    if key.contains(':') {
        key.to_string()
    } else {
        format!("agent:main:{key}")
    }
}

/// Every invariant that must hold at any restart; returns the problems found.
fn check(snap: &Snapshot, ledger: &Ledger) -> Vec<String> {
    let mut p = Vec::new();
    if snap.integrity != "ok" {
        p.push(format!("PRAGMA integrity_check: {}", snap.integrity));
    }
    let sid_key: HashMap<i64, &str> = snap
        .sessions
        .iter()
        .map(|(k, v)| (v.0, k.as_str()))
        .collect();
    // Seqs contiguous, counters consistent.
    for (key, (sid, _, last_seq, count, _, _)) in &snap.sessions {
        let msgs = snap.messages.get(sid).map(Vec::as_slice).unwrap_or(&[]);
        for (i, m) in msgs.iter().enumerate() {
            if m.0 != i as i64 + 1 {
                p.push(format!(
                    "{key}: seq {} where {} was due (seqs {:?}…)",
                    m.0,
                    i + 1,
                    msgs.iter().map(|m| m.0).take(20).collect::<Vec<_>>()
                ));
                break;
            }
        }
        if *last_seq != msgs.len() as i64 || *count != msgs.len() as i64 {
            p.push(format!(
                "{key}: last_seq {last_seq}, message_count {count}, {} messages stored",
                msgs.len()
            ));
        }
    }
    for sid in snap.messages.keys() {
        if !sid_key.contains_key(sid) {
            p.push(format!("messages of sid {sid}, which has no session row"));
        }
    }
    // Every run points at its input message, in its session.
    for (run_id, (sid, _, input_seq)) in &snap.runs {
        let input = snap
            .messages
            .get(sid)
            .and_then(|m| m.get((*input_seq - 1).max(0) as usize));
        match input {
            Some(m) if m.0 == *input_seq && m.3.as_deref() == Some(run_id) => {}
            other => p.push(format!(
                "run {run_id}: input message (sid {sid}, seq {input_seq}) is {other:?}"
            )),
        }
    }
    // User messages: each one asked for, each once.
    let mut seen: HashSet<&str> = HashSet::new();
    for (sid, msgs) in &snap.messages {
        for m in msgs.iter().filter(|m| m.1 == "user") {
            if !seen.insert(m.2.as_str()) {
                p.push(format!("\"{}\" stored twice", m.2));
            }
            match ledger.intents.get(&m.2) {
                None => p.push(format!(
                    "{}: user message \"{}\" that no client sent",
                    sid_key.get(sid).unwrap_or(&"?"),
                    m.2
                )),
                Some(Intent {
                    outcome: Outcome::Refused(e),
                    ..
                }) => p.push(format!("\"{}\" was refused ({e}) but is stored", m.2)),
                Some(_) => {}
            }
        }
    }
    // Every acknowledged call is there, as acknowledged.
    for (content, intent) in &ledger.intents {
        let Outcome::Acked { run_id, session } = &intent.outcome else {
            continue;
        };
        let Some((sid, _, input_seq)) = snap.runs.get(run_id) else {
            p.push(format!(
                "acknowledged {:?} \"{content}\": run {run_id} is not stored",
                intent.kind
            ));
            continue;
        };
        let key = sid_key.get(sid).copied().unwrap_or("?");
        let want_key = match (&intent.kind, session, &intent.target) {
            (Kind::Spawn, Some((k, _)), _) => k.clone(),
            (_, _, Some(t)) => normalize(t),
            _ => String::new(),
        };
        if key != want_key {
            p.push(format!(
                "\"{content}\": run {run_id} is in session {key}, acknowledged for {want_key}"
            ));
        }
        if let Some((k, id)) = session
            && snap.sessions.get(k).map(|s| &s.1) != Some(id)
        {
            p.push(format!(
                "spawn \"{content}\": session {k} is missing or has another id than {id}"
            ));
        }
        let m = snap
            .messages
            .get(sid)
            .and_then(|m| m.get((*input_seq - 1).max(0) as usize));
        let (want_prov, first) = match intent.kind {
            Kind::Spawn => ("spawn_task", true),
            Kind::Send => ("operator", false),
        };
        match m {
            Some((seq, role, c, r, prov))
                if c == content
                    && role == "user"
                    && prov == want_prov
                    && r.as_deref() == Some(run_id)
                    && (!first || *seq == 1) => {}
            other => p.push(format!(
                "acknowledged {:?} \"{content}\" (run {run_id}): its message is {other:?}",
                intent.kind
            )),
        }
    }
    p
}

fn fail_if(problems: Vec<String>, when: &str, seed: u64) {
    assert!(
        problems.is_empty(),
        "{when} (seed {seed}): {} problems; first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_points_under_load_loses_nothing_acknowledged() {
    let seed = std::env::var("OPENCLAW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let rounds = std::env::var("OPENCLAW_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    eprintln!("crash test seed: {seed} (replay with OPENCLAW_CRASH_SEED={seed}); {rounds} kills");
    let mut rng = Rng(seed);
    let mut d = Daemon::start_with_config(CONFIG);
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut total_acks = 0;

    for r in 0..rounds {
        // Most kills come after a few hundred acknowledgements; some right after a restart,
        // while the runs requeued from the previous crash are starting.
        let kill_at = if rng.next().is_multiple_of(4) {
            rng.range(1, 20)
        } else {
            rng.range(100, 1500)
        } as usize;
        let round = Arc::new(Round {
            ledger: ledger.clone(),
            acks: Arc::new(AtomicUsize::new(0)),
            kill_at,
            trigger: Arc::new(tokio::sync::Notify::new()),
        });
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let client = Arc::new(d.client().await);
            for kind in [Kind::Spawn, Kind::Send] {
                let name = format!(
                    "r{r} c{c} {}",
                    if kind == Kind::Spawn { "spawn" } else { "send" }
                );
                tasks.push(tokio::spawn(caller(
                    client.clone(),
                    kind,
                    name,
                    Rng(rng.next()),
                    round.clone(),
                )));
            }
        }
        tokio::time::timeout(Duration::from_secs(60), round.trigger.notified())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "round {r}: only {} of {kill_at} acknowledgements within 60 s (seed {seed})",
                    round.acks.load(Ordering::SeqCst)
                )
            });
        d.kill9();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("a caller did not notice the daemon died")
                .expect("caller task");
        }
        let acks = round.acks.load(Ordering::SeqCst);
        total_acks += acks;
        d.spawn_daemon()
            .unwrap_or_else(|e| panic!("restart after kill {r} (seed {seed}): {e}"));
        let status = d
            .client()
            .await
            .call_value("daemon.status", &json!({}))
            .await
            .expect("daemon.status");
        eprintln!(
            "kill {r}: after {acks} acknowledgements (asked for {kill_at}); {} runs interrupted at restart",
            status["interruptedAtStartup"]
        );
        let problems = {
            let snap = snapshot(&d, true);
            let l = ledger.lock().unwrap();
            check(&snap, &l)
        };
        fail_if(problems, &format!("after kill {r}"), seed);
    }

    // Let the daemon finish what it requeued: wait on every run still queued or running.
    let pending: Vec<String> = snapshot(&d, true)
        .runs
        .iter()
        .filter(|(_, v)| v.1 == "queued" || v.1 == "running")
        .map(|(k, _)| k.clone())
        .collect();
    eprintln!("waiting for {} requeued runs", pending.len());
    let client = Arc::new(d.client().await);
    let mut waits = Vec::new();
    for chunk in pending.chunks(pending.len().div_ceil(8).max(1)) {
        let (client, chunk) = (client.clone(), chunk.to_vec());
        waits.push(tokio::spawn(async move {
            let mut stuck = Vec::new();
            for run in chunk {
                let r = client
                    .call_value("runs.wait", &json!({"runId": run, "timeoutSeconds": 30}))
                    .await;
                match r {
                    Ok(v) if v["status"] == "timeout" => stuck.push(format!("{run}: {v}")),
                    Ok(_) => {}
                    Err(e) => stuck.push(format!("{run}: runs.wait failed: {e}")),
                }
            }
            stuck
        }));
    }
    let mut stuck = Vec::new();
    for w in waits {
        stuck.extend(w.await.expect("waiter"));
    }
    fail_if(stuck, "runs still unfinished 30 s after restart", seed);
    d.stop().expect("clean stop");

    let snap = snapshot(&d, false);
    let l = ledger.lock().unwrap();
    let mut problems = check(&snap, &l);
    for (run, (sid, status, _)) in &snap.runs {
        if !matches!(status.as_str(), "ok" | "interrupted") {
            problems.push(format!("run {run} (sid {sid}) ended {status}"));
        }
        if status == "ok"
            && !snap.messages.get(sid).is_some_and(|m| {
                m.iter()
                    .any(|m| m.1 == "assistant" && m.3.as_ref() == Some(run))
            })
        {
            problems.push(format!("run {run} ended ok but its reply is not stored"));
        }
    }
    for (key, s) in &snap.sessions {
        if s.4.is_some() || s.5 == "running" || s.5 == "queued" {
            problems.push(format!(
                "session {key} left {} with active run {:?}",
                s.5, s.4
            ));
        }
    }
    fail_if(problems, "at the end", seed);
    let acked = l
        .intents
        .values()
        .filter(|i| matches!(i.outcome, Outcome::Acked { .. }))
        .count();
    let refused: Vec<&String> = l
        .intents
        .values()
        .filter_map(|i| match &i.outcome {
            Outcome::Refused(e) => Some(e),
            _ => None,
        })
        .collect();
    eprintln!(
        "{rounds} kills, {total_acks} acknowledged calls ({acked} in the ledger), {} unanswered, {} refused; {} sessions, {} runs in the store",
        l.intents.len() - acked - refused.len(),
        refused.len(),
        snap.sessions.len(),
        snap.runs.len()
    );
    // Busy is the only refusal a healthy daemon gives under this load.
    let unexpected: Vec<&&String> = refused.iter().filter(|e| !e.contains("busy")).collect();
    assert!(
        unexpected.is_empty(),
        "calls refused with unexpected errors (seed {seed}): {unexpected:?}"
    );
}
