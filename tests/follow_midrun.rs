//! A follow that attaches while a run is already streaming (issue 14 item 5): it shows the
//! text the run streamed before it joined once, then the rest live, and never the reply
//! again — with the event set a terminal gets by default (messages and assistant text) and
//! with `--events assistant` alone.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, LineChild, deadline, fifo, fifo_write_within};

const SECS: u64 = 20;
const FIRST: &str = "ALPHA-PIECE";
const SECOND: &str = "OMEGA-PIECE";

fn subscriptions(d: &Daemon) -> u64 {
    d.json(&["daemon", "status"])["subscriptions"]
        .as_u64()
        .expect("daemon status --json has subscriptions")
}

fn wait_subscriptions(d: &Daemon, want: u64) {
    let end = deadline(SECS);
    loop {
        let now = subscriptions(d);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "daemon status never showed {want} subscriptions (last: {now})"
        );
        std::thread::yield_now();
    }
}

fn follower(d: &Daemon, key: &str, events: &str) -> LineChild {
    let what = format!("openclaw sessions follow {key} --until-done --events {events}");
    LineChild::spawn(
        d.cli().args([
            "sessions",
            "follow",
            key,
            "--until-done",
            "--events",
            events,
        ]),
        &what,
    )
}

/// Every piece of the reply appears exactly once in what the follower printed.
fn assert_each_piece_once(f: &mut LineChild, who: &str) {
    let (status, lines, err) = f.finish(SECS);
    assert_eq!(status.code(), Some(0), "{who}: {lines:?}\nstderr: {err}");
    let out = lines.join("\n");
    for piece in [FIRST, SECOND] {
        assert_eq!(
            out.matches(piece).count(),
            1,
            "{who} should print {piece} exactly once:\n{out}\nstderr: {err}"
        );
    }
}

#[test]
fn a_follower_that_joins_mid_run_prints_every_piece_once() {
    let dir = tempfile::Builder::new()
        .prefix("openclaw-follow-midrun-")
        .tempdir()
        .expect("tempdir");
    let start = fifo(dir.path(), "start");
    let gate = fifo(dir.path(), "gate");
    let script = format!(
        "cat >/dev/null; read x < '{}'; echo {FIRST}; read x < '{}'; echo {SECOND}",
        start.display(),
        gate.display()
    );
    let config = format!(
        "[agents.talker]\nbackend = \"exec\"\nformat = \"text\"\ncommand = [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(&script).expect("script as a TOML string")
    );
    let d = Daemon::start_with_config(&config);
    let spawned = d.json(&["sessions", "spawn", "--agent", "talker", "--task", "go"]);
    let key = spawned["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();

    // The first follower is there before the run prints anything.
    let mut first = follower(&d, &key, "message,assistant");
    wait_subscriptions(&d, 1);
    fifo_write_within(&start, "go\n", Duration::from_secs(SECS))
        .unwrap_or_else(|e| panic!("could not start the agent's output: {e}"));
    first.wait_line(SECS, |l| l.contains(FIRST));

    // Two more join while the run is blocked after its first piece.
    let mut second = follower(&d, &key, "message,assistant");
    let mut bare = follower(&d, &key, "assistant");
    wait_subscriptions(&d, 3);

    fifo_write_within(&gate, "go\n", Duration::from_secs(SECS))
        .unwrap_or_else(|e| panic!("could not release the agent: {e}"));

    assert_each_piece_once(&mut first, "the follower attached first");
    assert_each_piece_once(&mut second, "a follower that joined mid-run");
    assert_each_piece_once(
        &mut bare,
        "a follower of assistant text that joined mid-run",
    );
}
