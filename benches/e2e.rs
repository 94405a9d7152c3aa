//! End-to-end benchmark: real `openclawd` daemons (release build) in temp `OPENCLAW_HOME`s,
//! driven by the real `openclaw` CLI, by raw NDJSON on the socket and by the async client.
//! Prints one Markdown table per section; BENCHMARKS.md holds the latest one.
//!
//!     cargo bench --bench e2e                     # everything but the peers (1–2 minutes)
//!     cargo bench --bench e2e -- --peers          # also pueue, side by side (builds it once)
//!     OPENCLAW_BENCH_QUICK=1 cargo bench --bench e2e   # small counts, well under a minute
//!     OPENCLAW_BENCH_UPDATE=1 cargo bench --bench e2e -- --peers   # and rewrite the table
//!                                                  # part of BENCHMARKS.md with the result
//!
//! Sections (`OPENCLAW_BENCH_ONLY=core,follow` runs some of them), each in its own file under
//! benches/e2e/; the harness they share is in options.rs, report.rs, machine.rs, clients.rs
//! and stores.rs:
//! - `floors`: the client floor (a static C client), the commit floor (one `fdatasync`) and
//!   the rows they bound, as ratios (benches/e2e/floors.rs);
//! - `cold`: daemon cold start in a fresh home, to "ready" and to the first answered request;
//! - `core`: idle RSS, CLI spawn and send round trips, spawn RPCs (sequential, pipelined, 8
//!   connections), group commit, RSS under load;
//! - `follow`: append-to-receipt latency with 1 and with 1,000 followers of one session;
//! - `history`: a pre-built 1,000,000-message transcript: history pages, follow catch-up;
//! - `scale`: pre-built stores of 1,000 and 100,000 sessions: start-up and `sessions list`;
//! - `http` (`http.rs`): the HTTP surface against the same calls over JSON-RPC, SSE followers
//!   against JSON-RPC followers;
//! - `openai`: the `openai` backend against a local instant server: what it adds to a turn
//!   beyond the HTTP exchange, turns/s across sessions, server's first chunk → a
//!   follower's first assistant event, RSS per idle openai session;
//! - `acp` (`acp.rs`): the acp backend with the SDK test agent (Node): warm turn overhead
//!   around the agent's own work, first turns with process start, N sessions with live agents
//!   and the daemon's RSS for them;
//! - `mcp`: `openclaw mcp` start → `initialize` answered, and `tools/call sessions_spawn`
//!   through it against `sessions.spawn` on the socket (OPENCLAW_BENCH_MCP_START_N,
//!   OPENCLAW_BENCH_MCP_CALL_N);
//! - `subscriptions` (`subscriptions.rs`): the owner's send rate with 10,240 idle
//!   subscriptions on another session against none;
//! - `unpaired` (`unpaired.rs`): an unpaired user flooding the socket while the owner works;
//! - `peers` (only with `--peers` or `OPENCLAW_BENCH_PEERS=1`): pueue, the closest Rust peer,
//!   installed with `cargo install pueue --locked` into `target/bench-peers/pueue` (once;
//!   later runs reuse it), its daemon in a temp dir: `pueue add -- true` against `openclaw
//!   sessions spawn` on an `exec` agent running `true`, and `pueue wait` against `openclaw
//!   sessions wait`.
//!
//! The 1M-message transcript and the session stores are not built through the socket (that
//! would take minutes): a daemon creates and migrates the store, stops, the store's own
//! offline loader (`openclaw::daemon::store::Loader`: the same changes a running daemon makes,
//! in one transaction) fills it, and the daemon is started on it. Start-up figures on those stores are with a warm page cache.
//!
//! On a shared machine, `OPENCLAW_BENCH_QUIET=15` makes each section first wait (up to 10
//! minutes) until the CPUs have been at most 15% busy for 3 seconds in a row (from
//! /proc/stat), and notes how long it waited.
//!
//! Counts, one by one: OPENCLAW_BENCH_CLI_N (CLI spawns), OPENCLAW_BENCH_CLI_SEND_N,
//! OPENCLAW_BENCH_RPC_N (sequential spawns on one connection), OPENCLAW_BENCH_PIPELINE_N,
//! OPENCLAW_BENCH_CONC_N (total over 8 connections), OPENCLAW_BENCH_SEND_N,
//! OPENCLAW_BENCH_COLD_N, OPENCLAW_BENCH_FOLLOW_N (appends seen by one follower),
//! OPENCLAW_BENCH_FOLLOWERS (the many-followers case), OPENCLAW_BENCH_FOLLOW_MANY_N (appends
//! seen by them), OPENCLAW_BENCH_TRANSCRIPT_N (messages), OPENCLAW_BENCH_HISTORY_N (history
//! calls), OPENCLAW_BENCH_SESSIONS_N (the large store), OPENCLAW_BENCH_LIST_N (list calls),
//! OPENCLAW_BENCH_STARTS_N (restarts per store), OPENCLAW_BENCH_PEER_N (round trips per side),
//! OPENCLAW_BENCH_PEER_WAIT_N (waits per side), OPENCLAW_BENCH_OPENAI_N (sequential openai
//! turns; 4× that across sessions), OPENCLAW_BENCH_OPENAI_IDLE_N (idle openai sessions),
//! OPENCLAW_BENCH_ACP_N (warm ACP turns),
//! OPENCLAW_BENCH_ACP_FIRST_N (first turns), OPENCLAW_BENCH_ACP_SESSIONS (sessions held).
//!
//! Cargo builds the binary targets for benchmarks and sets CARGO_BIN_EXE_*, so the shared test
//! harness (which locates the binaries that way) is used as is.

#[path = "e2e/acp.rs"]
mod acp;
#[path = "e2e/clients.rs"]
mod clients;
#[path = "e2e/cold.rs"]
mod cold;
#[path = "e2e/commit_floors.rs"]
mod commit_floors;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "e2e/core.rs"]
mod core;
#[path = "e2e/floors.rs"]
mod floors;
#[path = "e2e/follow.rs"]
mod follow;
#[path = "e2e/history.rs"]
mod history;
#[path = "e2e/http.rs"]
mod http;
#[path = "../tests/http_client/mod.rs"]
mod http_client;
#[path = "e2e/machine.rs"]
mod machine;
#[path = "e2e/mcp.rs"]
mod mcp;
#[path = "e2e/openai.rs"]
mod openai;
#[path = "e2e/options.rs"]
mod options;
#[path = "e2e/peers.rs"]
mod peers;
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/scale.rs"]
mod scale;
#[path = "e2e/sse_follow.rs"]
mod sse_follow;
#[path = "e2e/stores.rs"]
mod stores;
#[path = "e2e/subscriptions.rs"]
mod subscriptions;
#[path = "e2e/syscalls.rs"]
mod syscalls;
#[path = "e2e/unpaired.rs"]
mod unpaired;

// The harness: every section imports what it needs of it as `super::NAME`.
use clients::*;
use machine::*;
use options::*;
use report::*;
use stores::*;

use std::time::Instant;

/// One section of the table: it measures and adds its rows.
type Section = fn(&Opts, &mut Table);

fn main() {
    let o = Opts::from_env_and_args();
    let sections: &[(&str, Section)] = &[
        ("floors", floors::section_floors),
        ("cold", cold::section),
        ("core", core::section),
        ("follow", follow::section),
        ("history", history::section),
        ("scale", scale::section),
        ("openai", openai::section_openai),
        ("http", http::section),
        ("acp", acp::section_acp),
        ("mcp", mcp::section),
        ("subscriptions", subscriptions::section),
        ("unpaired", unpaired::section_unpaired),
        ("peers", peers::section),
    ];
    let names: Vec<&str> = sections.iter().map(|&(name, _)| name).collect();
    o.warn_unknown_sections(&names);
    let machine = machine();
    let started = Instant::now();
    let mut t = Table::default();
    let mut ran = Vec::new();
    for &(name, section) in sections {
        if o.runs(name) {
            ran.push(name);
            wait_quiet(&mut t, name);
            section(&o, &mut t);
        }
    }
    t.note(format!(
        "whole run took {:.0} s; load average at the end {}",
        started.elapsed().as_secs_f64(),
        load_average()
    ));
    let report = format!("{}{}", report_head(&o, &machine, &ran), t.render());
    println!("{report}");
    if env_flag("OPENCLAW_BENCH_UPDATE") {
        update_benchmarks_md(&report, &names, o.only.is_some());
    }
}
