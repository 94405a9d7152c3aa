//! Replies keep to their byte budget in memory too: clients reading history pages of large
//! messages at the same time leave the daemon's peak RSS bounded by the budget, not by the
//! size of the transcript (a page built whole would hold every message of it, per client).

mod common;

use std::sync::{Arc, Barrier};

use common::{Daemon, RawConn, proc_status_kb};
use serde_json::json;

/// Messages of this size are sent; the echo agent answers each with a copy.
const MESSAGE_BYTES: usize = 6 << 20;
const SENDS: usize = 4;
const CLIENTS: usize = 4;
/// Times each client pages through the whole transcript.
const ROUNDS: usize = 3;
/// What the readers may add to the daemon's peak RSS. A page builds its rows, their
/// parsed content and its encoded reply: with a 1 MiB budget a page holds two rows read
/// (one cut, one seen to be over), about 50 MiB for four clients with the allocator's slack.
/// Built whole, each page would hold all eight 6 MiB messages three times over, ~150 MiB
/// per client, ~600 MiB in all.
const ALLOWED_GROWTH_KB: u64 = 200 * 1024;

#[test]
fn concurrent_pages_of_large_messages_keep_the_daemon_s_memory_bounded() {
    let mut d = Daemon::start_with_config("[limits]\nmax_reply_bytes = 1048576\n");
    let mut owner = RawConn::connect(&d.socket());
    let spawned = owner.call_ok("sessions.spawn", json!({"task": "first"}));
    let key = spawned["sessionKey"].as_str().unwrap().to_string();
    for i in 0..SENDS {
        let text: String = std::iter::repeat_n(char::from(b'a' + i as u8), MESSAGE_BYTES).collect();
        owner.call_ok(
            "sessions.send",
            json!({"sessionKey": key, "message": text, "timeoutSeconds": 60}),
        );
    }
    drop(owner);
    // The sends' own peak is not what is measured: a fresh daemon over the same store.
    d.restart();
    let pid = d.pid();
    let mut warm = RawConn::connect(&d.socket());
    warm.call_ok("sessions.history", json!({"sessionKey": key, "limit": 1}));
    let before = proc_status_kb(pid, "VmHWM").expect("the daemon's VmHWM");

    let start = Arc::new(Barrier::new(CLIENTS));
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = d.socket();
            let key = key.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut conn = RawConn::connect(&socket);
                start.wait();
                let mut messages = 0;
                for _ in 0..ROUNDS {
                    let mut cursor: Option<String> = None;
                    loop {
                        let mut params = json!({"sessionKey": key, "limit": 1000});
                        if let Some(c) = &cursor {
                            params["cursor"] = c.as_str().into();
                        }
                        let page = conn.call_ok("sessions.history", params);
                        messages += page["messages"].as_array().unwrap().len();
                        cursor = page["nextCursor"].as_str().map(str::to_string);
                        if page["hasMore"] != true || cursor.is_none() {
                            break;
                        }
                    }
                }
                messages
            })
        })
        .collect();
    let read: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    // Every round saw at least every large message (and the first task and its reply).
    assert!(read >= CLIENTS * ROUNDS * (2 * SENDS + 2), "read {read}");
    let after = proc_status_kb(pid, "VmHWM").expect("the daemon's VmHWM");
    assert!(
        after.saturating_sub(before) < ALLOWED_GROWTH_KB,
        "the daemon's peak RSS grew from {before} kB to {after} kB under {CLIENTS} readers"
    );
}
