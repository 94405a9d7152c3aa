//! An `openai` agent with an MCP tool server: the protocol's reference server
//! (`server-everything`, from npm) given in `mcp_servers`, the model scripted by the replay
//! server. Its tools are offered beside the session tools, a call of one is recorded like a
//! session tool's, a server killed mid-call fails that call only (and is restarted), and
//! killing the run cancels the call in flight without touching the server.

mod common;
#[path = "mcp/support.rs"]
mod support;

use std::time::Duration;

use common::openai_server::{OpenAiServer, Reply};
use common::*;
use serde_json::{Value, json};
use support::{children_matching, everything_server};

const LONG_CALL: &str = "trigger-long-running-operation";

struct Setup {
    d: Daemon,
    model: OpenAiServer,
    client: openclaw::Client,
    /// Everything the server read on its stdin (the wrapper tees it here).
    stdin_log: std::path::PathBuf,
    _scratch: tempfile::TempDir,
}

impl Setup {
    /// `main` with one server, `ev`, whose stdin is logged.
    async fn start() -> Setup {
        Setup::start_with(|stdin_log| {
            let server = everything_server()
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ");
            let wrapped = format!("tee -a '{}' | exec {server}", stdin_log.display());
            format!(
                "[ {{ name = \"ev\", command = [\"sh\", \"-c\", {}] }} ]",
                json!(wrapped)
            )
        })
        .await
    }

    /// `main` with the `mcp_servers` array `servers` writes (given the stdin log's path).
    async fn start_with(servers: impl FnOnce(&std::path::Path) -> String) -> Setup {
        let model = OpenAiServer::start();
        let scratch = tempfile::tempdir().expect("tempdir");
        let stdin_log = scratch.path().join("server-stdin.log");
        let config = format!(
            "[agents.main]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"test-model\"\nmcp_servers = {}\n",
            model.base_url(),
            servers(&stdin_log)
        );
        let d = Daemon::start_with_config(&config);
        let client = d.client().await;
        Setup {
            d,
            model,
            client,
            stdin_log,
            _scratch: scratch,
        }
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        self.client
            .call_value(method, &params)
            .await
            .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
    }

    /// Sends a message and waits for its run's result.
    async fn turn(&self, key: &str, message: &str) -> Value {
        let run = self.send(key, message).await;
        self.wait(&run).await
    }

    async fn send(&self, key: &str, message: &str) -> String {
        let sent = self
            .call(
                "sessions.send",
                json!({"sessionKey": key, "message": message, "timeoutSeconds": 0}),
            )
            .await;
        sent["runId"].as_str().expect("runId").to_string()
    }

    async fn wait(&self, run: &str) -> Value {
        self.call("runs.wait", json!({"runId": run, "timeoutSeconds": 60}))
            .await
    }

    async fn tool_messages(&self, key: &str) -> Vec<Value> {
        let history = self
            .call(
                "sessions.history",
                json!({"sessionKey": key, "includeTools": true}),
            )
            .await;
        history["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["role"] == "tool_call" || m["role"] == "tool_result")
            .cloned()
            .collect()
    }

    /// Waits until the server has been sent its `n`th `tools/call` of `tool` (the wrapper
    /// logs a line once it has passed it on): before that, a kill would race the call
    /// rather than interrupt it, and the daemon rightly runs a call the old server never
    /// got on the restarted one.
    async fn server_got_calls(&self, tool: &str, n: usize) {
        self.server_got(&format!("{n} calls of {tool}"), |sent| {
            sent.iter()
                .filter(|m| m["method"] == "tools/call" && m["params"]["name"] == tool)
                .count()
                >= n
        })
        .await;
    }

    /// Waits until the messages the server was sent satisfy `enough`.
    async fn server_got(&self, what: &str, enough: impl Fn(&[Value]) -> bool) {
        let end = deadline(30);
        loop {
            let log = std::fs::read_to_string(&self.stdin_log).unwrap_or_default();
            let sent: Vec<Value> = log
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if enough(&sent) {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "the server was never sent {what}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process group of the server the daemon runs (the `sh` wrapper leads it).
    fn server_group(&self) -> i32 {
        let found = children_matching(self.d.pid() as i32, "server-everything");
        assert_eq!(found.len(), 1, "one MCP server under the daemon: {found:?}");
        found[0]
    }
}

/// The next `tool` run event with this phase and name, from a subscription.
async fn tool_event(client: &openclaw::Client, phase: &str, name: &str) -> Value {
    let wanted = async {
        loop {
            let n = client.next_notification().await.expect("subscription open");
            let data = &n.params["data"];
            if n.method == "run.event" && data["phase"] == phase && data["name"] == name {
                return data.clone();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wanted)
        .await
        .unwrap_or_else(|_| panic!("no tool {phase} event for {name}"))
}

fn result_of<'a>(messages: &'a [Value], id: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["role"] == "tool_result" && m["content"]["id"] == id)
        .unwrap_or_else(|| panic!("no tool_result {id} in {messages:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_agent_uses_an_mcp_servers_tools() {
    let s = Setup::start().await;
    s.call("sessions.subscribe", json!({"events": ["tool"]}))
        .await;

    // 1. A call of the server's tool, recorded like a session tool's.
    s.model.push(Reply::tool_calls(&[(
        "call_1",
        "get-sum",
        r#"{"a": 2, "b": 3}"#,
    )]));
    s.model.push(Reply::text(&["the sum is 5"]));
    let spawned = s
        .call(
            "sessions.spawn",
            json!({"task": "add 2 and 3", "mode": "session"}),
        )
        .await;
    let key = spawned["sessionKey"].as_str().expect("key").to_string();
    let first = spawned["runId"].as_str().expect("run").to_string();
    let start = tool_event(&s.client, "start", "get-sum").await;
    assert_eq!(start["input"], json!({"a": 2, "b": 3}));
    let end = tool_event(&s.client, "end", "get-sum").await;
    assert_eq!(end["status"], "ok", "{end}");
    let done = s.wait(&first).await;
    assert_eq!(
        (done["status"].as_str(), done["reply"].as_str()),
        (Some("ok"), Some("the sum is 5")),
        "{done}"
    );
    let requests = s.model.chat_requests();
    let offered: Vec<String> = requests[0].json.as_ref().expect("json")["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .collect();
    for name in [
        "sessions_spawn",
        "sessions_wait",
        "get-sum",
        LONG_CALL,
        "echo",
    ] {
        assert!(
            offered.iter().any(|o| o == name),
            "{name} not in {offered:?}"
        );
    }
    let messages = s.tool_messages(&key).await;
    let call = messages
        .iter()
        .find(|m| m["role"] == "tool_call")
        .expect("the call is in history");
    assert_eq!(
        call["content"],
        json!({"id": "call_1", "name": "get-sum", "input": {"a": 2, "b": 3}})
    );
    let result = result_of(&messages, "call_1");
    assert_eq!(result["content"]["status"], "ok", "{result}");
    assert!(
        result["content"]["output"]
            .as_str()
            .is_some_and(|o| o.contains('5')),
        "{result}"
    );
    // The model was given the same result.
    let second = requests[1].json.as_ref().expect("json");
    let tool_message = second["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("a tool message");
    assert_eq!(tool_message["content"], result["content"]["output"]);

    // 2. The server killed in the middle of a call: that call fails, the run goes on.
    let group = s.server_group();
    s.model.push(Reply::tool_calls(&[(
        "call_2",
        LONG_CALL,
        r#"{"duration": 120, "steps": 120}"#,
    )]));
    s.model.push(Reply::text(&["went on without it"]));
    let run = s.send(&key, "take your time").await;
    tool_event(&s.client, "start", LONG_CALL).await;
    s.server_got_calls(LONG_CALL, 1).await;
    // SAFETY: kill(2) on the server's own process group.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let done = s.wait(&run).await;
    assert_eq!(
        (done["status"].as_str(), done["reply"].as_str()),
        (Some("ok"), Some("went on without it")),
        "{done}"
    );
    let messages = s.tool_messages(&key).await;
    let failed = &result_of(&messages, "call_2")["content"];
    assert_eq!(failed["status"], "error", "{failed}");
    assert_eq!(failed["output"]["error"]["kind"], "mcp_server_exited");
    let why = failed["output"]["error"]["message"]
        .as_str()
        .expect("message");
    assert!(why.contains("\"ev\"") && why.contains("signal 9"), "{why}");

    // 3. It is back for the next call.
    s.model.push(Reply::tool_calls(&[(
        "call_3",
        "get-sum",
        r#"{"a": 1, "b": 1}"#,
    )]));
    s.model.push(Reply::text(&["two"]));
    let done = s.turn(&key, "again").await;
    assert_eq!(done["status"], "ok", "{done}");
    let messages = s.tool_messages(&key).await;
    let again = &result_of(&messages, "call_3")["content"];
    assert_eq!(again["status"], "ok", "{again}");
    assert!(
        again["output"].as_str().is_some_and(|o| o.contains('2')),
        "{again}"
    );
    let restarted = s.server_group();
    assert_ne!(restarted, group, "a new server process");

    // 4. Killing the run cancels the call in flight; the server stays.
    s.model.push(Reply::tool_calls(&[(
        "call_4",
        LONG_CALL,
        r#"{"duration": 120, "steps": 120}"#,
    )]));
    let run = s.send(&key, "slow again").await;
    tool_event(&s.client, "start", LONG_CALL).await;
    s.server_got_calls(LONG_CALL, 2).await;
    s.d.ok(&["sessions", "kill", &key]);
    let done = s.wait(&run).await;
    assert_eq!(done["runStatus"], "aborted", "{done}");
    s.server_got("notifications/cancelled", |sent| {
        sent.iter()
            .any(|m| m["method"] == "notifications/cancelled")
    })
    .await;
    assert_eq!(s.server_group(), restarted, "the server was not restarted");
    s.model.push(Reply::tool_calls(&[(
        "call_5",
        "get-sum",
        r#"{"a": 3, "b": 4}"#,
    )]));
    s.model.push(Reply::text(&["seven"]));
    let done = s.turn(&key, "once more").await;
    assert_eq!(done["status"], "ok", "{done}");
    let messages = s.tool_messages(&key).await;
    assert_eq!(result_of(&messages, "call_5")["content"]["status"], "ok");

    // The server lives as long as the daemon.
    let mut s = s;
    let status = s.d.stop().expect("the daemon stops");
    assert!(status.success(), "{status:?}");
    assert!(
        wait_pid_gone(restarted, 10),
        "the MCP server outlived the daemon"
    );
}

/// Two servers, each cut down by its `tools` list, one given `env`: only the listed tools are
/// offered, the name both list is offered once per server with its prefix, a prefixed name
/// reaches its own server, and the server sees the configured environment.
#[tokio::test(flavor = "multi_thread")]
async fn allow_lists_env_and_clashing_names() {
    let s = Setup::start_with(|_| {
        let command = json!(everything_server());
        format!(
            "[ {{ name = \"a\", command = {command}, env = {{ OC_MARK = \"set-for-a\" }}, tools = [\"get-env\", \"echo\"] }}, {{ name = \"b\", command = {command}, tools = [\"echo\", \"get-sum\"] }} ]"
        )
    })
    .await;
    s.model.push(Reply::tool_calls(&[
        ("call_env", "get-env", "{}"),
        ("call_echo", "b__echo", r#"{"message": "via b"}"#),
    ]));
    s.model.push(Reply::text(&["done"]));
    let spawned = s
        .call(
            "sessions.spawn",
            json!({"task": "look around", "mode": "session"}),
        )
        .await;
    let key = spawned["sessionKey"].as_str().expect("key").to_string();
    let done = s.wait(spawned["runId"].as_str().expect("run")).await;
    assert_eq!(done["status"], "ok", "{done}");

    let requests = s.model.chat_requests();
    let mut offered: Vec<String> = requests[0].json.as_ref().expect("json")["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .filter(|n| !n.starts_with("sessions_"))
        .collect();
    offered.sort();
    assert_eq!(offered, ["a__echo", "b__echo", "get-env", "get-sum"]);

    let messages = s.tool_messages(&key).await;
    let env = &result_of(&messages, "call_env")["content"];
    assert_eq!(env["status"], "ok", "{env}");
    let env_text = env["output"].as_str().expect("text output");
    assert!(
        env_text.contains("\"OC_MARK\": \"set-for-a\""),
        "{env_text}"
    );
    let echo = &result_of(&messages, "call_echo")["content"];
    assert_eq!(echo["status"], "ok", "{echo}");
    assert!(
        echo["output"].as_str().is_some_and(|o| o.contains("via b")),
        "{echo}"
    );
}
