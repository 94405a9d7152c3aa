//! What the `openai` end-to-end tests share: a daemon whose agents point at an in-test
//! OpenAI-compatible server, and the CLI calls they make.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use crate::common::openai_server::{OpenAiServer, Recorded};
use crate::common::{Daemon, describe, output_within};

/// Upper bound for one `openclaw` command (waits inside are shorter).
pub const CALL_SECS: u64 = 60;
/// How long a test waits for a run, a request or a disconnect.
pub const WAIT_SECS: u64 = 30;

/// `[agents.ID]` of an `openai` agent on `server`, with `extra` TOML lines.
pub fn openai_agent(id: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[agents.{id}]\nbackend = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"test-model\"\n{extra}\n"
    )
}

/// A daemon whose default agent `main` is an `openai` agent on a fresh test server.
pub struct OpenAi {
    pub server: OpenAiServer,
    pub d: Daemon,
}

impl OpenAi {
    pub fn start(extra_main: &str, more_config: &str) -> OpenAi {
        OpenAi::start_with_env(extra_main, more_config, &[])
    }

    pub fn start_with_env(extra_main: &str, more_config: &str, env: &[(&str, &str)]) -> OpenAi {
        let server = OpenAiServer::start();
        let config = format!(
            "{}{more_config}",
            openai_agent("main", &server.base_url(), extra_main)
        );
        let d = Daemon::start_with_env(&config, env);
        OpenAi { server, d }
    }

    /// `openclaw ARGS...` within the time limit.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        output_within(self.d.cli().args(args), CALL_SECS, &args.join(" "))
    }

    /// `openclaw ARGS... --json`, which must succeed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{}\n{}",
            describe(&all, &out),
            self.log()
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", describe(&all, &out)))
    }

    /// Spawns a session on `task` (more spawn flags in `flags`): (session key, run id).
    pub fn spawn(&self, task: &str, flags: &[&str]) -> (String, String) {
        let mut args = vec!["sessions", "spawn", "--task", task];
        args.extend_from_slice(flags);
        let r = self.json(&args);
        (
            r["sessionKey"].as_str().expect("sessionKey").to_string(),
            r["runId"].as_str().expect("runId").to_string(),
        )
    }

    /// Waits for a run to end: its result (`status`, `runStatus`, `reply`, `error`).
    pub fn wait(&self, run_id: &str) -> Value {
        let secs = WAIT_SECS.to_string();
        let args = ["sessions", "wait", run_id, "--timeout", &secs, "--json"];
        let out = self.run(&args);
        let r: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", describe(&args, &out)));
        assert_ne!(
            r["status"],
            "timeout",
            "run {run_id} did not end within {WAIT_SECS} s\n{}",
            self.log()
        );
        r
    }

    /// Waits for a run that must end `ok`; its reply.
    pub fn wait_ok(&self, run_id: &str) -> String {
        let r = self.wait(run_id);
        assert_eq!(r["runStatus"], "ok", "run {run_id}: {r}\n{}", self.log());
        r["reply"].as_str().unwrap_or("").to_string()
    }

    /// The session's whole transcript, tool calls included.
    pub fn history(&self, key: &str) -> Vec<Value> {
        self.json(&["sessions", "history", key, "--include-tools"])["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The transcript as `role: text` lines, for assertion messages and comparisons.
    pub fn transcript(&self, key: &str) -> Vec<String> {
        self.history(key).iter().map(line_of).collect()
    }

    /// Waits until the server has received `n` requests (any path).
    pub fn requests(&self, n: usize) -> Vec<Recorded> {
        self.server
            .wait_for_requests(n, Duration::from_secs(WAIT_SECS))
            .unwrap_or_else(|| {
                panic!(
                    "the server got {} requests, not {n}, within {WAIT_SECS} s\n{}",
                    self.server.requests().len(),
                    self.log()
                )
            })
    }

    /// Chat requests, once there are `n` of them.
    pub fn chats(&self, n: usize) -> Vec<Recorded> {
        self.server
            .wait_for_chat_requests(n, Duration::from_secs(WAIT_SECS))
            .unwrap_or_else(|| {
                panic!(
                    "the server got {} chat requests, not {n}, within {WAIT_SECS} s\n{}",
                    self.server.chat_requests().len(),
                    self.log()
                )
            })
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.d.log_path()).unwrap_or_default();
        let tail: String = log
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("daemon log (tail):\n{tail}")
    }
}

/// A transcript message as `role[<provenance from>]: text` (tool calls by name).
pub fn line_of(m: &Value) -> String {
    let role = m["role"].as_str().unwrap_or("?");
    let text = match &m["content"] {
        Value::String(s) => s.clone(),
        other => match role {
            "tool_call" => format!(
                "{} {}",
                other["name"].as_str().unwrap_or(""),
                other["input"]
            ),
            "tool_result" => format!(
                "{} {} {}",
                other["name"].as_str().unwrap_or(""),
                other["status"].as_str().unwrap_or(""),
                other["output"]
            ),
            _ => other.to_string(),
        },
    };
    let prov = &m["provenance"];
    let from = prov["from"]
        .as_str()
        .map(|f| format!(" from {f}"))
        .unwrap_or_default();
    format!(
        "{role}[{}{from}]: {text}",
        prov["kind"].as_str().unwrap_or("")
    )
}

/// The text a stream of the fixture `body` carries (its content deltas, joined).
pub fn fixture_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// A port on 127.0.0.1 nothing listens on (bound, then let go).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
