//! The live view (issue 13, part 6) in a real browser: `tests/web/live_view.mjs` drives
//! headless Chromium (playwright-core) against a daemon serving HTTP here. It enters a wrong
//! token (refused, with the server's message) and then the right one, sees a session spawned
//! after load appear in the list, its task and reply appear without reload (equal to what the
//! store holds), sends through the page's box, sees that reply stream in and land, and checks
//! the phone-sized layout.
//!
//! Needs Node 20 with `npm ci` run in tests/web, and Chromium (`CHROMIUM`, default
//! /usr/bin/chromium); `.ci/run` installs both. Without them this test fails saying what is
//! missing, unless OPENCLAW_SKIP_BROWSER_TESTS=1 asks to skip it.

mod common;
mod http_client;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{output_within, stderr, stdout};
use http_client::{daemon_with_http, token};

/// An agent that streams its reply in several deltas, paced so that a page has time to show
/// the text while it grows (the pacing is the agent's, nothing here waits on it).
const STREAMING_AGENT: &str = r#"cat >/dev/null
for word in "streamed " "in " "several " "pieces"; do
  printf '{"type":"text","text":"%s"}\n' "$word"
  sleep 0.3
done"#;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("web")
}

/// What is missing to run the browser, if anything.
fn missing_tools() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium, or set CHROMIUM)"
        ));
    }
    if !web_dir()
        .join("node_modules")
        .join("playwright-core")
        .exists()
    {
        return Some("playwright-core is not installed (cd tests/web && npm ci)".into());
    }
    if common::system_tool("node").is_none() {
        return Some("no node on PATH (Node 20)".into());
    }
    None
}

#[test]
fn the_page_shows_sessions_and_replies_live_in_headless_chromium() {
    if let Some(missing) = missing_tools() {
        if std::env::var("OPENCLAW_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
            eprintln!("skipped (OPENCLAW_SKIP_BROWSER_TESTS=1): {missing}");
            return;
        }
        panic!(
            "the live view test needs a browser: {missing}; set OPENCLAW_SKIP_BROWSER_TESTS=1 to skip it"
        );
    }
    let config = format!(
        "[agents.main]\nbackend = \"exec\"\nformat = \"jsonl\"\ncommand = [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(STREAMING_AGENT).unwrap()
    );
    let (d, addr) = daemon_with_http(&config, "", &[]);
    let tok = token(&d);
    let shots = d.home_path().join("screenshots");
    let mut cmd = Command::new("node");
    cmd.current_dir(web_dir())
        .arg("live_view.mjs")
        .arg(format!("http://{addr}"))
        .arg(&tok)
        .env("LIVE_VIEW_SCREENSHOTS", &shots)
        .env("LIVE_VIEW_EXPECT_STREAMING", "1")
        .env("LIVE_VIEW_TIMEOUT_MS", "20000");
    let out = output_within(&mut cmd, 180, "node live_view.mjs");
    assert!(
        out.status.success(),
        "the browser test failed ({:?}):\n{}\n{}\ndaemon log:\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out),
        std::fs::read_to_string(d.log_path()).unwrap_or_default()
    );
    let report = stdout(&out);
    assert!(report.contains("live view: ok"), "{report}");
    assert!(
        report.contains("streamed in several pieces"),
        "the reply the page showed is the agent's: {report}"
    );
    for shot in ["desktop.png", "phone.png", "phone-list.png"] {
        let len = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(len > 1000, "{shot} was not written ({len} bytes)");
    }
    eprintln!("{report}");
}
