//! Section `follow`: append → receipt latency with 1 and with many followers of one session,
//! and the counting every follow benchmark shares (JSON-RPC here, SSE in `http.rs`): each
//! follower tallies the appender's `lat I` messages in seq order, the appender waits until
//! every follower has the previous reply, and nothing may be lost, reordered or repeated.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::Daemon;
use super::{Opts, Row, Table, rss_text, stats, status, verdict};

/// What one follower has seen of an appender's `lat I` messages (user message I, then its
/// echoed reply), whatever transport brought them.
pub struct FollowerTally {
    /// When this follower had append I's user message.
    got: Vec<Option<Instant>>,
    next_seq: u64,
    delivered: usize,
    gaps: usize,
    duplicates: usize,
    /// Assistant replies seen: the appender waits on these before its next append.
    replies: usize,
}

impl FollowerTally {
    /// A follower whose subscription starts after `last_seq`, waiting for `appends` appends.
    pub fn new(last_seq: u64, appends: usize) -> FollowerTally {
        FollowerTally {
            got: vec![None; appends],
            next_seq: last_seq + 1,
            delivered: 0,
            gaps: 0,
            duplicates: 0,
            replies: 0,
        }
    }

    /// Has every append's reply arrived?
    pub fn done(&self) -> bool {
        self.replies >= self.got.len()
    }

    /// Counts one `session.message`'s `message`, which arrived at `now`; true when it is an
    /// append's reply (the appender may go on).
    pub fn message(&mut self, m: &Value, now: Instant) -> bool {
        let seq = m["seq"].as_u64().unwrap_or(0);
        if seq < self.next_seq {
            self.duplicates += 1;
            return false;
        }
        self.gaps += (seq - self.next_seq) as usize;
        self.next_seq = seq + 1;
        self.delivered += 1;
        let i = m["content"]
            .as_str()
            .and_then(|c| c.strip_prefix("lat "))
            .and_then(|i| i.parse::<usize>().ok());
        match (m["role"].as_str(), i) {
            (Some("user"), Some(i)) if i < self.got.len() => {
                self.got[i] = Some(now);
                false
            }
            (Some("assistant"), Some(_)) => {
                self.replies += 1;
                true
            }
            _ => false,
        }
    }
}

/// Every follower's tally of one run, summed.
pub struct FollowRun {
    /// Append (request written) → a follower has the message.
    pub latency: Vec<Duration>,
    /// The append's own round trip (acknowledged = durable).
    pub ack: Vec<Duration>,
    expected: usize,
    delivered: usize,
    gaps: usize,
    duplicates: usize,
}

impl FollowRun {
    /// Sums the followers' tallies of appends sent at `sent` (acknowledged after `ack`).
    pub fn collect(
        tallies: impl IntoIterator<Item = FollowerTally>,
        sent: &[Instant],
        ack: Vec<Duration>,
    ) -> FollowRun {
        let mut run = FollowRun {
            latency: Vec::new(),
            ack,
            expected: 0,
            delivered: 0,
            gaps: 0,
            duplicates: 0,
        };
        for tally in tallies {
            // A user message and its reply per append.
            run.expected += sent.len() * 2;
            run.delivered += tally.delivered;
            run.gaps += tally.gaps;
            run.duplicates += tally.duplicates;
            for (i, at) in tally.got.into_iter().enumerate() {
                if let Some(at) = at {
                    run.latency.push(at.saturating_duration_since(sent[i]));
                }
            }
        }
        run
    }

    fn lost(&self) -> usize {
        self.expected.saturating_sub(self.delivered)
    }

    /// Nothing lost, out of order or duplicated.
    pub fn is_complete(&self) -> bool {
        self.lost() == 0 && self.gaps == 0 && self.duplicates == 0
    }

    pub fn losses(&self) -> String {
        format!(
            "{} lost, {} out of order, {} duplicated of {} deliveries",
            self.lost(),
            self.gaps,
            self.duplicates,
            self.expected
        )
    }
}

/// The runtime the async followers run on: two workers, as the machine has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `followers` clients follow one session; the appender sends `appends` messages one at a
/// time (`timeoutSeconds: 0`), each after every follower has seen the previous one's reply.
pub fn follow_run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    followers: usize,
    appends: usize,
) -> FollowRun {
    use openclaw::Client;
    rt.block_on(async {
        let appender = Client::connect(socket).await.expect("connect");
        let spawned = appender
            .call_value("sessions.spawn", &json!({"task": "follow bench"}))
            .await
            .expect("spawn");
        let key = spawned["sessionKey"].as_str().expect("key").to_string();
        appender
            .call_value(
                "runs.wait",
                &json!({"runId": spawned["runId"], "timeoutSeconds": 30}),
            )
            .await
            .expect("wait");
        let progress = Arc::new(AtomicUsize::new(0));
        let notify = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::with_capacity(followers);
        for _ in 0..followers {
            let client = Client::connect(socket).await.expect("connect follower");
            let sub = client
                .call_value(
                    "sessions.subscribe",
                    &json!({"sessionKey": key, "events": ["message"]}),
                )
                .await
                .expect("subscribe");
            let start = sub["lastSeq"].as_u64().expect("lastSeq");
            let (progress, notify) = (progress.clone(), notify.clone());
            tasks.push(tokio::spawn(async move {
                let mut tally = FollowerTally::new(start, appends);
                while !tally.done() {
                    let Some(n) = client.next_notification().await else {
                        break;
                    };
                    if n.method != "session.message" {
                        continue;
                    }
                    if tally.message(&n.params["message"], Instant::now()) {
                        progress.fetch_add(1, Ordering::SeqCst);
                        notify.notify_waiters();
                    }
                }
                drop(client);
                tally
            }));
        }
        let mut sent = Vec::with_capacity(appends);
        let mut ack = Vec::with_capacity(appends);
        for i in 0..appends {
            let t0 = Instant::now();
            sent.push(t0);
            let r = appender
                .call_value(
                    "sessions.send",
                    &json!({"sessionKey": key, "message": format!("lat {i}"), "timeoutSeconds": 0}),
                )
                .await
                .expect("send");
            ack.push(t0.elapsed());
            assert_eq!(r["status"], "accepted", "{r}");
            let want = followers * (i + 1);
            loop {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if progress.load(Ordering::SeqCst) >= want {
                    break;
                }
                if tokio::time::timeout(Duration::from_secs(60), notified)
                    .await
                    .is_err()
                {
                    panic!(
                        "followers stalled: {} of {want} replies seen after 60 s",
                        progress.load(Ordering::SeqCst)
                    );
                }
            }
        }
        let mut tallies = Vec::with_capacity(followers);
        for task in tasks {
            tallies.push(task.await.expect("follower"));
        }
        FollowRun::collect(tallies, &sent, ack)
    })
}

pub fn section(o: &Opts, t: &mut Table) {
    t.section("follow: append-to-receipt latency");
    // One connection per follower, as `openclaw sessions follow` has: above the default
    // per-uid cap (512), so the caps are raised for this daemon.
    let d = Daemon::start_with_config(&format!(
        "[limits]\nmax_connections = {}\nmax_connections_per_uid = {}\n",
        o.followers * 2 + 64,
        o.followers * 2 + 64
    ));
    let socket = d.socket();
    let rt = runtime();
    eprintln!("1 follower x{} appends ...", o.follow_one);
    let one = follow_run(&rt, &socket, 1, o.follow_one);
    let one_lat = stats(&one.latency);
    let one_ack = stats(&one.ack);
    t.push(
        Row::latency(
            "append → receipt, 1 follower (append = `sessions.send`, durable)",
            &one_lat,
            "the append's own round trip",
            &one_ack,
        )
        .target(verdict(
            "< 1 ms median",
            one_lat.median < Duration::from_millis(1),
        )),
    );
    eprintln!("{} followers x{} appends ...", o.followers, o.follow_many);
    let many = follow_run(&rt, &socket, o.followers, o.follow_many);
    let many_lat = stats(&many.latency);
    t.push(Row::latency(
        format!("append → receipt, {} followers of one session", o.followers),
        &many_lat,
        "1 follower",
        &one_lat,
    ));
    t.push(Row {
        metric: format!("messages lost with {} followers", o.followers),
        value: many.losses(),
        target: verdict("none lost", many.is_complete() && one.is_complete()),
        ..Row::default()
    });
    let st = status(&socket);
    t.add(
        format!("daemon RSS after {} followers", o.followers),
        format!(
            "{}; {} buffered notifications",
            rss_text(d.pid()),
            st["bufferedNotifications"]
        ),
    );
    rt.shutdown_timeout(Duration::from_secs(5));
}
