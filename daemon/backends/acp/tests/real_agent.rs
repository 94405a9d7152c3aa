//! A manual check against a real ACP agent, e.g. mistral-vibe's `vibe-acp` (not run in CI,
//! which has none):
//!
//! ```sh
//! OPENCLAW_TEST_ACP_AGENT="vibe-acp" \
//! OPENCLAW_TEST_ACP_ENV="VIBE_HOME=$HOME/.vibe-endturn" \
//! OPENCLAW_TEST_ACP_LONG_ENV="VIBE_HOME=$HOME/.vibe-long" \
//!   cargo test --bin openclawd acp::tests::real_agent -- --ignored --nocapture
//! ```
//!
//! `..._ENV` is for a turn that ends by itself, `..._LONG_ENV` for one that streams until
//! cancelled (space-separated `NAME=value` pairs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::AcpPermissions;
use tokio_util::sync::CancellationToken;

use super::super::process::tests::wait_gone;
use super::super::{AcpClient, AcpEvent, Resume, TurnOutcome};
use super::{Recorder, setup, spec};

fn env_pairs(var: &str) -> BTreeMap<String, String> {
    std::env::var(var)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn summary(events: &[AcpEvent]) -> String {
    let mut counts = BTreeMap::<&str, usize>::new();
    for e in events {
        let kind = match e {
            AcpEvent::AssistantDelta { .. } => "assistant",
            AcpEvent::ThoughtDelta { .. } => "thought",
            AcpEvent::ToolStart(_) | AcpEvent::ToolUpdate(_) | AcpEvent::ToolEnd(_) => "tool",
            AcpEvent::Plan { .. } => "plan",
            AcpEvent::Usage(_) => "usage",
            AcpEvent::Permission(_) => "permission",
            AcpEvent::Retrying { .. } => "retrying",
        };
        *counts.entry(kind).or_default() += 1;
    }
    format!("{counts:?}")
}

#[tokio::test]
#[ignore = "needs a real ACP agent: set OPENCLAW_TEST_ACP_AGENT"]
async fn a_real_agent_turn_cancel_and_load() {
    let command: Vec<String> = std::env::var("OPENCLAW_TEST_ACP_AGENT")
        .expect("OPENCLAW_TEST_ACP_AGENT")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(command, AcpPermissions::ApproveReads);
    s.initialize_timeout = Duration::from_secs(120);
    s.kill_grace = Duration::from_millis(2000);
    s.env = env_pairs("OPENCLAW_TEST_ACP_ENV");

    let t = Instant::now();
    let early = Recorder::new();
    let client = AcpClient::start(&s, setup(dir.path()), early.clone())
        .await
        .unwrap();
    println!(
        "started in {:?}: {:?}; early events {}",
        t.elapsed(),
        client.started(),
        summary(&early.events())
    );
    let host = Recorder::new();
    let t = Instant::now();
    let r = client
        .prompt("say hi", host.clone(), &CancellationToken::new())
        .await
        .unwrap();
    println!(
        "turn in {:?}: {r:?}; events {}",
        t.elapsed(),
        summary(&host.events())
    );
    assert_ne!(r.outcome, TurnOutcome::Aborted);
    assert_eq!(host.deltas().concat(), r.reply);
    let session_id = client.session_id().to_string();
    client.shutdown().await;
    wait_gone(client.pid() as i32).await;

    let mut again = setup(dir.path());
    again.resume = Some(Resume {
        session_id,
        required: true,
    });
    let t = Instant::now();
    let replay = Recorder::new();
    let loaded = AcpClient::start(&s, again, replay.clone()).await.unwrap();
    println!(
        "loaded in {:?}: {:?}; events during load {}",
        t.elapsed(),
        loaded.started(),
        summary(&replay.events())
    );
    assert!(loaded.started().loaded);
    loaded.shutdown().await;

    s.env = env_pairs("OPENCLAW_TEST_ACP_LONG_ENV");
    let long = AcpClient::start(&s, setup(dir.path()), Recorder::new())
        .await
        .unwrap();
    let host = Recorder::new();
    let stop = CancellationToken::new();
    let mut stopped_at = None;
    let turn = long.prompt("write a very long story", host.clone(), &stop);
    let watch = async {
        host.wait_for("a chunk", |e| {
            e.iter()
                .any(|e| matches!(e, AcpEvent::AssistantDelta { .. }))
        })
        .await;
        stopped_at = Some(Instant::now());
        stop.cancel();
    };
    let (r, ()) = tokio::join!(turn, watch);
    let r = r.unwrap();
    println!(
        "cancelled turn ended {:?} after the stop: {:?} stop reason {:?} {:?} ({} reply bytes); events {}",
        stopped_at.map(|t| t.elapsed()),
        r.outcome,
        r.stop_reason,
        r.note,
        r.reply.len(),
        summary(&host.events())
    );
    assert_eq!(r.outcome, TurnOutcome::Aborted);
    wait_gone(long.pid() as i32).await;
}
