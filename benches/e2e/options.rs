//! What a run measures and how much: the sections chosen, the counts (each from its own
//! environment variable, smaller with OPENCLAW_BENCH_QUICK) and the agents the sections share.

use std::collections::HashSet;

pub const CONNECTIONS: usize = 8;
/// An `exec` agent whose turn is `true`: the counterpart of `pueue add -- true`.
pub const EXEC_AGENT: &str = "[agents.t]\nbackend = \"exec\"\ncommand = [\"true\"]\n";

pub const ENV_VARS: &[&str] = &[
    "OPENCLAW_BENCH_QUICK",
    "OPENCLAW_BENCH_ONLY",
    "OPENCLAW_BENCH_PEERS",
    "OPENCLAW_BENCH_CLI_N",
    "OPENCLAW_BENCH_CLI_SEND_N",
    "OPENCLAW_BENCH_RPC_N",
    "OPENCLAW_BENCH_PIPELINE_N",
    "OPENCLAW_BENCH_CONC_N",
    "OPENCLAW_BENCH_SEND_N",
    "OPENCLAW_BENCH_COLD_N",
    "OPENCLAW_BENCH_FOLLOW_N",
    "OPENCLAW_BENCH_FOLLOWERS",
    "OPENCLAW_BENCH_FOLLOW_MANY_N",
    "OPENCLAW_BENCH_TRANSCRIPT_N",
    "OPENCLAW_BENCH_HISTORY_N",
    "OPENCLAW_BENCH_SESSIONS_N",
    "OPENCLAW_BENCH_LIST_N",
    "OPENCLAW_BENCH_STARTS_N",
    "OPENCLAW_BENCH_PEER_N",
    "OPENCLAW_BENCH_PEER_WAIT_N",
    "OPENCLAW_BENCH_QUIET",
    "OPENCLAW_BENCH_OPENAI_N",
    "OPENCLAW_BENCH_OPENAI_IDLE_N",
    "OPENCLAW_BENCH_ACP_N",
    "OPENCLAW_BENCH_ACP_FIRST_N",
    "OPENCLAW_BENCH_ACP_SESSIONS",
    "OPENCLAW_BENCH_MCP_START_N",
    "OPENCLAW_BENCH_MCP_CALL_N",
];

pub struct Opts {
    pub quick: bool,
    pub peers: bool,
    pub only: Option<HashSet<String>>,
    pub cli: usize,
    pub cli_send: usize,
    pub rpc: usize,
    pub pipeline: usize,
    pub conc: usize,
    pub send: usize,
    pub cold: usize,
    pub follow_one: usize,
    pub followers: usize,
    pub follow_many: usize,
    pub transcript: usize,
    pub history: usize,
    pub sessions_small: usize,
    pub sessions_large: usize,
    pub sessions_huge: usize,
    pub list: usize,
    pub starts: usize,
    pub peer: usize,
    pub peer_wait: usize,
    pub openai_turns: usize,
    pub openai_idle: usize,
    pub acp_turns: usize,
    pub acp_first: usize,
    pub acp_sessions: usize,
}

pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

impl Opts {
    pub fn from_env_and_args() -> Opts {
        let mut peers = env_flag("OPENCLAW_BENCH_PEERS");
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--peers" => peers = true,
                "--bench" => {} // cargo bench passes it to every harness = false target
                other if other.starts_with('-') => {
                    eprintln!("e2e: ignoring unknown option {other} (known: --peers)")
                }
                _ => {} // a name filter from `cargo bench NAME`: there is only one benchmark
            }
        }
        let quick = env_flag("OPENCLAW_BENCH_QUICK");
        let q = |full: usize, small: usize| if quick { small } else { full };
        let only = std::env::var("OPENCLAW_BENCH_ONLY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
        Opts {
            quick,
            peers,
            only,
            cli: env_count("OPENCLAW_BENCH_CLI_N", q(300, 30)),
            cli_send: env_count("OPENCLAW_BENCH_CLI_SEND_N", q(100, 10)),
            rpc: env_count("OPENCLAW_BENCH_RPC_N", q(2_000, 200)),
            pipeline: env_count("OPENCLAW_BENCH_PIPELINE_N", q(20_000, 2_000)),
            conc: env_count("OPENCLAW_BENCH_CONC_N", q(20_000, 2_000)),
            send: env_count("OPENCLAW_BENCH_SEND_N", q(1_000, 100)),
            cold: env_count("OPENCLAW_BENCH_COLD_N", q(20, 3)),
            follow_one: env_count("OPENCLAW_BENCH_FOLLOW_N", q(1_000, 100)),
            followers: env_count("OPENCLAW_BENCH_FOLLOWERS", q(1_000, 100)),
            follow_many: env_count("OPENCLAW_BENCH_FOLLOW_MANY_N", q(100, 20)),
            transcript: env_count("OPENCLAW_BENCH_TRANSCRIPT_N", q(1_000_000, 100_000)),
            history: env_count("OPENCLAW_BENCH_HISTORY_N", q(1_000, 100)),
            sessions_small: 1_000,
            sessions_large: env_count("OPENCLAW_BENCH_SESSIONS_N", q(100_000, 10_000)),
            sessions_huge: env_count("OPENCLAW_BENCH_SESSIONS_HUGE_N", q(1_000_000, 20_000)),
            list: env_count("OPENCLAW_BENCH_LIST_N", q(500, 50)),
            starts: env_count("OPENCLAW_BENCH_STARTS_N", q(5, 2)),
            peer: env_count("OPENCLAW_BENCH_PEER_N", q(200, 20)),
            peer_wait: env_count("OPENCLAW_BENCH_PEER_WAIT_N", q(10, 3)),
            openai_turns: env_count("OPENCLAW_BENCH_OPENAI_N", q(1_000, 100)),
            openai_idle: env_count("OPENCLAW_BENCH_OPENAI_IDLE_N", q(10_000, 1_000)),
            acp_turns: env_count("OPENCLAW_BENCH_ACP_N", q(500, 50)),
            acp_first: env_count("OPENCLAW_BENCH_ACP_FIRST_N", q(20, 5)),
            acp_sessions: env_count("OPENCLAW_BENCH_ACP_SESSIONS", q(100, 20)),
        }
    }

    /// Says which names in OPENCLAW_BENCH_ONLY are no section (a typo would measure nothing).
    pub fn warn_unknown_sections(&self, sections: &[&str]) {
        for name in self.only.iter().flatten() {
            if !sections.contains(&name.as_str()) {
                eprintln!(
                    "e2e: OPENCLAW_BENCH_ONLY names no section {name:?} (sections: {})",
                    sections.join(",")
                );
            }
        }
    }

    /// The command that reproduces this run: the benchmark's variables that are set, and
    /// `--peers`.
    pub fn command(&self) -> String {
        let mut command = String::from("cargo bench --bench e2e");
        for var in ENV_VARS {
            if let Ok(v) = std::env::var(var) {
                command = format!("{var}={v} {command}");
            }
        }
        if self.peers && !command.contains("OPENCLAW_BENCH_PEERS") {
            command.push_str(" -- --peers");
        }
        command
    }

    pub fn runs(&self, section: &str) -> bool {
        if section == "peers" && !self.peers {
            return false;
        }
        self.only.as_ref().is_none_or(|o| o.contains(section))
    }
}
