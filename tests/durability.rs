//! Durability of `openclawd` across `kill -9`: nothing acknowledged is lost, runs that were
//! going become `interrupted`, and their sessions stay usable.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{BlockingAgent, Daemon, RawConn};
use openclaw::protocol::{RunResult, SpawnParams, SpawnResult, WaitParams};
use openclaw::{Client, ClientError};
use serde_json::{Value, json};

/// One spawn the daemon acknowledged.
#[derive(Debug, Clone)]
struct Acked {
    key: String,
    session_id: Option<String>,
    run_id: Option<String>,
    task: String,
}

/// Transcript contents in the store, by session key, read with a read-only connection.
/// `content` may be stored as plain text or as JSON; a JSON string is unquoted.
fn stored_contents(d: &Daemon) -> HashMap<String, (String, Vec<String>)> {
    let db = rusqlite::Connection::open_with_flags(
        d.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {} read-only: {e}", d.db_path().display()));
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("PRAGMA integrity_check");
    assert_eq!(check, "ok", "the store is corrupt after kill -9");

    let mut out: HashMap<String, (String, Vec<String>)> = HashMap::new();
    // The contract documents `messages.session_id` referring to `sessions.id`; the store as
    // written joins on an integer `sid` instead. Accept either layout.
    let message_columns: Vec<String> = db
        .prepare("SELECT name FROM pragma_table_info('messages')")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("read the messages table's columns");
    let join = if message_columns.iter().any(|c| c == "session_id") {
        "m.session_id = s.id"
    } else if message_columns.iter().any(|c| c == "sid") {
        "m.sid = s.sid"
    } else {
        panic!("messages has neither session_id nor sid: {message_columns:?}")
    };
    let mut stmt = db
        .prepare(&format!(
            "SELECT s.key, s.id, m.content FROM sessions s LEFT JOIN messages m ON {join}"
        ))
        .expect("query sessions and messages");
    let rows = stmt
        .query_map([], |r| {
            let key: String = r.get(0)?;
            let id: String = r.get(1)?;
            let content = match r.get_ref(2)? {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    Some(String::from_utf8_lossy(t).to_string())
                }
                other => Some(format!("{other:?}")),
            };
            Ok((key, id, content))
        })
        .expect("read rows");
    for row in rows {
        let (key, id, content) = row.expect("row");
        let entry = out.entry(key).or_insert_with(|| (id, Vec::new()));
        if let Some(c) = content {
            let c = match serde_json::from_str::<Value>(&c) {
                Ok(Value::String(s)) => s,
                _ => c,
            };
            entry.1.push(c);
        }
    }
    out
}

/// Run status in the store.
fn stored_run_status(d: &Daemon, run_id: &str) -> Option<String> {
    let db = rusqlite::Connection::open_with_flags(
        d.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open store read-only");
    db.query_row("SELECT status FROM runs WHERE id = ?1", [run_id], |r| {
        r.get(0)
    })
    .ok()
}

/// Asserts every acknowledged spawn is in the store (read-only SQL) with its task message.
fn assert_all_in_store(d: &Daemon, acked: &[Acked]) {
    let stored = stored_contents(d);
    let mut missing = Vec::new();
    for a in acked {
        match stored.get(&a.key) {
            None => missing.push(format!("{}: no session row", a.key)),
            Some((id, contents)) => {
                if let Some(want) = &a.session_id
                    && id != want
                {
                    missing.push(format!(
                        "{}: session id {id}, acknowledged as {want}",
                        a.key
                    ));
                }
                if !contents.iter().any(|c| c == &a.task) {
                    missing.push(format!(
                        "{}: task message {:?} not stored (have {contents:?})",
                        a.key, a.task
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged spawns are missing or incomplete in the store after kill -9; first ones:\n{}",
        missing.len(),
        acked.len(),
        missing
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Asserts over the socket that every acknowledged spawn has its task as message 1, and that
/// its run (when known) has reached a final state.
async fn assert_all_served(d: &Daemon, acked: &[Acked]) {
    let client = Arc::new(d.client().await);
    let chunks: Vec<Vec<Acked>> = acked
        .chunks(acked.len().div_ceil(8).max(1))
        .map(|c| c.to_vec())
        .collect();
    let mut handles = Vec::new();
    for chunk in chunks {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut problems = Vec::new();
            let mut stuck = false;
            for a in chunk {
                match client.call_value("sessions.history", &json!({"sessionKey": a.key})).await {
                    Err(e) => problems.push(format!("history {}: {e}", a.key)),
                    Ok(h) => {
                        let m = &h["messages"][0];
                        if m["seq"] != 1 || m["role"] != "user" || m["content"] != a.task.as_str() || m["provenance"]["kind"] != "spawn_task" {
                            problems.push(format!("{}: first message is not the task {:?} (seq 1, user, spawn_task): {m}", a.key, a.task));
                        }
                    }
                }
                // After the first run that never ends, stop waiting on runs (bounded test time).
                if let Some(run_id) = a.run_id.as_ref().filter(|_| !stuck) {
                    let p = WaitParams {
                        run_id: Some(run_id.clone()),
                        session_key: None,
                        timeout_seconds: Some(15.0),
                    };
                    match client.call_value("runs.wait", &p).await {
                        Err(e) => problems.push(format!("runs.wait {run_id}: {e}")),
                        Ok(r) if r["status"] == "timeout" || r["status"] == "accepted" => {
                            stuck = true;
                            problems.push(format!(
                                "run {run_id} of {} never reached a final state after restart (queued runs must be resumed or marked interrupted): {r}",
                                a.key
                            ))
                        }
                        Ok(_) => {}
                    }
                }
            }
            problems
        }));
    }
    let mut problems = Vec::new();
    for h in handles {
        problems.extend(h.await.expect("checker task"));
    }
    assert!(
        problems.is_empty(),
        "{} problems with acknowledged spawns after restart; first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_a_spawn_burst_loses_no_acknowledged_spawn() {
    const CONNECTIONS: usize = 4;
    const CALLERS_PER_CONNECTION: usize = 8;
    const KILL_AFTER: usize = 1500;

    let mut d = Daemon::start();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut handles = Vec::new();

    for c in 0..CONNECTIONS {
        let client = Arc::new(d.client().await);
        for t in 0..CALLERS_PER_CONNECTION {
            let (client, acked, count, enough, unexpected) = (
                client.clone(),
                acked.clone(),
                count.clone(),
                enough.clone(),
                unexpected.clone(),
            );
            handles.push(tokio::spawn(async move {
                for i in 0.. {
                    let task = format!("burst task {c}-{t}-{i}");
                    let params = SpawnParams {
                        task: task.clone(),
                        ..Default::default()
                    };
                    match client
                        .call::<_, SpawnResult>("sessions.spawn", &params)
                        .await
                    {
                        Ok(r) => {
                            acked.lock().unwrap().push(Acked {
                                key: r.session_key,
                                session_id: Some(r.session_id),
                                run_id: Some(r.run_id),
                                task,
                            });
                            if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                                enough.notify_one();
                            }
                        }
                        Err(ClientError::Rpc(e)) => {
                            unexpected
                                .lock()
                                .unwrap()
                                .push(format!("spawn {task:?}: {e:?}"));
                            return;
                        }
                        // The daemon went away: this caller is done.
                        Err(_) => return,
                    }
                }
            }));
        }
    }

    tokio::time::timeout(Duration::from_secs(60), enough.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} spawns acknowledged within 60 s (errors: {:?})",
                count.load(Ordering::SeqCst),
                unexpected.lock().unwrap()
            )
        });
    d.kill9(); // mid-burst: every caller has a request in flight
    for h in handles {
        tokio::time::timeout(Duration::from_secs(20), h)
            .await
            .expect("a caller did not notice the daemon died")
            .expect("caller task");
    }
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "spawns failed with RPC errors during the burst: {unexpected:?}"
    );
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILL_AFTER, "{} acks", acked.len());
    let keys: HashSet<&str> = acked.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys.len(), acked.len(), "every spawn must get its own key");

    d.restart();
    let status = d
        .client()
        .await
        .call_value("daemon.status", &json!({}))
        .await
        .expect("daemon.status after restart");
    eprintln!(
        "{} spawns acknowledged before kill -9 (killed after {KILL_AFTER}); {} runs interrupted at restart",
        acked.len(),
        status["interruptedAtStartup"]
    );
    assert_all_in_store(&d, &acked);
    assert_all_served(&d, &acked).await;
}

#[test]
fn kill9_during_a_burst_of_cli_spawns_loses_no_printed_key() {
    const THREADS: usize = 4;
    const KILL_AFTER: usize = 40;

    let mut d = Daemon::start();
    let pid = d.pid() as i32;
    let acked: Mutex<Vec<Acked>> = Mutex::default();
    let unexpected: Mutex<Vec<String>> = Mutex::default();
    let killed = AtomicBool::new(false);
    let count = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<()>();

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let tx = tx.clone();
            let (d, acked, unexpected, killed, count) = (&d, &acked, &unexpected, &killed, &count);
            s.spawn(move || {
                for i in 0.. {
                    let task = format!("cli burst {t}-{i}");
                    let out = d.run(&["sessions", "spawn", "--task", &task]);
                    if !out.status.success() {
                        if !killed.load(Ordering::SeqCst) {
                            unexpected.lock().unwrap().push(format!(
                                "spawn {task:?} failed before the kill: {:?}\n{}",
                                out.status,
                                common::stderr(&out)
                            ));
                        }
                        return;
                    }
                    let stdout = common::stdout(&out);
                    let key = stdout.trim_end().to_string();
                    if key.lines().count() != 1 || !key.starts_with("agent:main:task:") {
                        unexpected
                            .lock()
                            .unwrap()
                            .push(format!("spawn printed {stdout:?}, not one session key"));
                        return;
                    }
                    acked.lock().unwrap().push(Acked {
                        key,
                        session_id: None,
                        run_id: None,
                        task,
                    });
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                        let _ = tx.send(());
                    }
                }
            });
        }
        drop(tx);
        let reached = rx.recv_timeout(Duration::from_secs(60));
        killed.store(true, Ordering::SeqCst);
        // SAFETY: plain kill(2) on our own daemon child; it is reaped below by kill9().
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert!(
            reached.is_ok(),
            "only {} CLI spawns succeeded within 60 s: {:?}",
            count.load(Ordering::SeqCst),
            unexpected.lock().unwrap()
        );
    });
    d.kill9(); // reap

    let unexpected = unexpected.into_inner().unwrap();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() >= KILL_AFTER);

    d.restart();
    assert_all_in_store(&d, &acked);
    let mut c = RawConn::connect(&d.socket());
    for a in &acked {
        let h = c.call_ok("sessions.history", json!({"sessionKey": a.key}));
        assert_eq!(
            h["messages"][0]["content"],
            a.task.as_str(),
            "{}: {h}",
            a.key
        );
    }
    // And through the CLI, as a script would read it back.
    let first = &acked[0];
    let hist = d.ok(&["sessions", "history", &first.key]);
    assert!(
        hist.contains(&first.task),
        "`openclaw sessions history {}` lacks the task {:?}:\n{hist}",
        first.key,
        first.task
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_active_at_kill9_is_interrupted_and_its_session_stays_usable() {
    let agent = BlockingAgent::new();
    let mut d = Daemon::start_with_config(&agent.config("blocker"));

    let spawned: SpawnResult = {
        let client = d.client().await;
        client
            .call(
                "sessions.spawn",
                &SpawnParams {
                    task: "block until killed".into(),
                    agent_id: Some("blocker".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("spawn on the blocking exec agent")
    };
    agent.wait_started(); // the run is really running now
    d.kill9();
    d.restart();

    let client: Client = d.client().await;
    let waited: RunResult = client
        .call(
            "runs.wait",
            &WaitParams {
                run_id: Some(spawned.run_id.clone()),
                session_key: None,
                timeout_seconds: Some(10.0),
            },
        )
        .await
        .expect("runs.wait after restart");
    assert_eq!(
        waited.run_status,
        openclaw::protocol::RunStatus::Interrupted,
        "a run active at kill -9 must read `interrupted` after restart: {waited:?}"
    );
    assert_eq!(
        waited.status,
        openclaw::protocol::WaitStatus::Error,
        "{waited:?}"
    );
    assert_eq!(
        stored_run_status(&d, &spawned.run_id).as_deref(),
        Some("interrupted"),
        "runs.status in the store"
    );

    let status = client
        .call_value("daemon.status", &json!({}))
        .await
        .expect("daemon.status");
    assert_eq!(status["interruptedAtStartup"], 1, "{status}");

    let list = client
        .call_value("sessions.list", &json!({}))
        .await
        .expect("sessions.list");
    let row = list["sessions"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["key"] == spawned.session_key.as_str())
        })
        .unwrap_or_else(|| panic!("{} missing from sessions.list: {list}", spawned.session_key))
        .clone();
    assert_eq!(
        row["status"], "interrupted",
        "the session shows its last run's status: {row}"
    );
    assert!(
        row["activeRunId"].is_null(),
        "no run is active any more: {row}"
    );

    let hist = client
        .call_value(
            "sessions.history",
            &json!({"sessionKey": spawned.session_key}),
        )
        .await
        .expect("history");
    assert_eq!(
        hist["messages"][0]["content"], "block until killed",
        "{hist}"
    );

    // The session takes new work.
    let sent: RunResult = client
        .call(
            "sessions.send",
            &json!({"sessionKey": spawned.session_key, "message": "after restart", "timeoutSeconds": 20}),
        )
        .await
        .expect("send to the interrupted session");
    assert_eq!(sent.status, openclaw::protocol::WaitStatus::Ok, "{sent:?}");
    assert_eq!(
        sent.reply.as_deref(),
        Some("reply:after restart"),
        "{sent:?}"
    );

    // The CLI reports the interrupted run as a failed one.
    let out = d.run(&["sessions", "wait", &spawned.run_id, "--timeout", "5"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "`openclaw sessions wait` on an interrupted run exits 1; stdout {:?} stderr {:?}",
        common::stdout(&out),
        common::stderr(&out)
    );
}

#[test]
fn acknowledged_fire_and_forget_sends_survive_kill9() {
    // `agent:<id>:main` sessions are created by their first send: ten echo agents, ten of them.
    let config: String = (0..10)
        .map(|i| format!("[agents.e{i}]\nbackend = \"echo\"\n"))
        .collect();
    let mut d = Daemon::start_with_config(&config);
    let mut c = RawConn::connect(&d.socket());
    let mut burst = String::new();
    const N: i64 = 300;
    for i in 0..N {
        let key = format!("agent:e{}:main", i % 10);
        burst.push_str(
            &json!({"jsonrpc": "2.0", "id": i, "method": "sessions.send",
                    "params": {"sessionKey": key, "message": format!("note {i}"), "timeoutSeconds": 0}})
            .to_string(),
        );
        burst.push('\n');
    }
    c.send_raw(burst.as_bytes());
    let mut acked = Vec::new();
    for _ in 0..N {
        let r = c.read_json();
        let i = r["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("reply without a numeric id: {r}"));
        assert_eq!(
            r["result"]["status"], "accepted",
            "send with timeoutSeconds 0 is fire-and-forget: {r}"
        );
        acked.push(Acked {
            key: format!("agent:e{}:main", i % 10),
            session_id: None,
            run_id: r["result"]["runId"].as_str().map(String::from),
            task: format!("note {i}"),
        });
    }
    d.kill9();
    d.restart();
    assert_all_in_store(&d, &acked);
}

#[test]
fn a_run_queued_again_after_a_crash_keeps_its_time_limit() {
    // One main lane slot (top-level spawns run in main): the first spawn runs (blocked on a FIFO nobody writes), the
    // second waits for the slot with a 1 s time limit. After kill -9 and a restart the first
    // is interrupted and the second, queued again, must still stop after its 1 s — not block
    // forever on the FIFO.
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = common::fifo(dir.path(), "never");
    let config = format!(
        "[lanes]\nmain = 1\n\n[agents.block]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"cat {} >/dev/null; echo done\"]\n",
        gate.display()
    );
    let mut d = Daemon::start_with_config(&config);
    let mut c = RawConn::connect(&d.socket());
    let first = c.call_ok("sessions.spawn", json!({"task": "a", "agentId": "block"}));
    let second = c.call_ok(
        "sessions.spawn",
        json!({"task": "b", "agentId": "block", "runTimeoutSeconds": 1}),
    );
    let state = |c: &mut RawConn, run: &Value| {
        c.call_ok("runs.wait", json!({"runId": run, "timeoutSeconds": 0}))["runStatus"].clone()
    };
    assert_eq!(
        state(&mut c, &first["runId"]),
        "running",
        "the first spawn holds the lane's one slot"
    );
    assert_eq!(
        state(&mut c, &second["runId"]),
        "queued",
        "the second waits for the slot"
    );
    drop(c);

    d.restart();
    let mut c = RawConn::connect(&d.socket());
    let first_end = c.call_ok(
        "runs.wait",
        json!({"runId": first["runId"], "timeoutSeconds": 20}),
    );
    assert_eq!(first_end["runStatus"], "interrupted", "{first_end}");
    let second_end = c.call_ok(
        "runs.wait",
        json!({"runId": second["runId"], "timeoutSeconds": 20}),
    );
    assert_eq!(
        second_end["runStatus"], "timeout",
        "a run queued again after the restart must keep its runTimeoutSeconds: {second_end}"
    );
}
