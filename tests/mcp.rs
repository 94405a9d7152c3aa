//! `openclaw mcp` end to end: the official TypeScript SDK's client against the real binaries
//! (lists, spawns, waits, reads, errors, cancels), bad input on raw pipes, and the
//! `OPENCLAW_MCP_CONFIG` of an `exec` run acting as that run's session.

mod common;
#[path = "mcp/support.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::mcp::RawMcp;
use common::*;
use openclaw::tools::{AgentRuntime, ToolScope, session_tools};
use serde_json::{Value, json};
use support::{node, sdk_dir};

/// Exec agents: `ticker` keeps printing until it is killed (a run that goes on, with
/// progress); `talker` prints two lines a little apart and ends.
const AGENTS: &str = "[agents.ticker]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"while :; do echo tick; sleep 0.2; done\"]\n[agents.talker]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", \"echo one; sleep 0.2; echo two\"]\n";

/// The steps `tests/mcp/client.mjs` printed, by name.
struct Steps(Vec<Value>);

impl Steps {
    fn get(&self, step: &str) -> &Value {
        self.0
            .iter()
            .find(|s| s["step"] == step)
            .unwrap_or_else(|| panic!("no step {step:?} in {:#?}", self.0))
    }
}

fn numbers_as_f64(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_f64).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect())
        }
        other => other,
    }
}

fn connections(d: &Daemon) -> u64 {
    // `openclaw daemon status` is itself a connection.
    d.json(&["daemon", "status"])["connections"]
        .as_u64()
        .expect("connections")
        - 1
}

#[test]
fn the_official_sdk_client_lists_calls_errs_and_cancels() {
    let dir = sdk_dir();
    let d = Daemon::start_with_config(AGENTS);
    let mut cmd = Command::new(node());
    cmd.current_dir(&dir)
        .arg("client.mjs")
        .arg(OPENCLAW)
        .arg("ticker")
        .arg("talker")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", d.home_path())
        .env("OPENCLAW_HOME", d.home_path())
        .env("OPENCLAW_NO_AUTOSTART", "1")
        .stdin(Stdio::piped());
    let mut client = LineChild::spawn(&mut cmd, "client.mjs");
    let mut steps = Vec::new();
    loop {
        let line = client.wait_line(60, |_| true);
        let step: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let name = step["step"].as_str().unwrap_or_default().to_string();
        steps.push(step);
        if name == "cancelled" {
            break;
        }
    }
    // The cancelled wait let go of its daemon connection at once (it would otherwise hold
    // it for its 120 s), while the run it waited for goes on.
    let end = deadline(10);
    while connections(&d) > 0 {
        assert!(
            Instant::now() < end,
            "openclaw mcp kept a connection after the cancel"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let slow_key = steps
        .iter()
        .find(|s| s["step"] == "slow")
        .expect("slow step")["result"]["structuredContent"]["sessionKey"]
        .as_str()
        .expect("slow key")
        .to_string();
    let listed = d.json(&["sessions", "list"]);
    let slow = listed["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["key"] == slow_key.as_str()))
        .unwrap_or_else(|| panic!("{slow_key} not listed: {listed}"));
    assert_eq!(slow["status"], "running", "{slow}");
    client
        .child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go on\n")
        .expect("tell the client to go on");
    let (status, lines, stderr) = client.finish(60);
    assert!(status.success(), "client.mjs failed: {stderr}");
    steps.extend(
        lines
            .iter()
            .skip(steps.len())
            .map(|l| serde_json::from_str(l).expect("a JSON step")),
    );
    let steps = Steps(steps);

    assert_eq!(steps.get("initialized")["server"]["name"], "openclaw");

    // Exactly the definitions the openai backend would offer the operator.
    let scope = ToolScope {
        allowed_agents: vec![
            ("main".into(), AgentRuntime::Native),
            ("talker".into(), AgentRuntime::Native),
            ("ticker".into(), AgentRuntime::Native),
        ],
        can_spawn: true,
        strict: false,
        enabled: None,
    };
    let expected: Vec<Value> = session_tools(&scope).iter().map(|t| t.mcp_tool()).collect();
    let listed: Vec<Value> = steps.get("tools")["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| json!({"name": t["name"], "description": t["description"], "inputSchema": t["inputSchema"]}))
        .collect();
    // Compared as JSON values (JavaScript writes 0.0 as 0).
    assert_eq!(
        numbers_as_f64(json!(listed)),
        numbers_as_f64(json!(expected))
    );

    let spawn = &steps.get("spawn")["result"];
    assert_ne!(spawn["isError"], true, "{spawn}");
    assert_eq!(spawn["structuredContent"]["status"], "accepted");
    assert_eq!(
        spawn["structuredContent"]["ignoredFields"],
        json!(["notAField"])
    );
    let key = spawn["structuredContent"]["sessionKey"]
        .as_str()
        .expect("key");
    let text: Value = serde_json::from_str(spawn["content"][0]["text"].as_str().expect("text"))
        .expect("the text content is the result as JSON");
    assert_eq!(text, spawn["structuredContent"]);

    let wait = &steps.get("wait")["result"]["structuredContent"];
    assert_eq!(
        (wait["status"].as_str(), wait["reply"].as_str()),
        (Some("ok"), Some("hello from an MCP client")),
        "{wait}"
    );

    let history = &steps.get("history")["result"]["structuredContent"];
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["hello from an MCP client", "hello from an MCP client"],
        "{history}"
    );
    // The CLI reads the same session the client made.
    let cli = d.json(&["sessions", "history", key]);
    assert_eq!(cli["messages"].as_array().map(Vec::len), Some(2));

    let missing = &steps.get("missing")["result"];
    assert_eq!(missing["isError"], true, "{missing}");
    assert_eq!(missing["structuredContent"]["error"]["kind"], "not_found");
    let sentence = missing["content"][0]["text"].as_str().expect("text");
    assert!(
        sentence.contains("no session \"agent:main:subagent:no-such-session\""),
        "{sentence}"
    );

    let unknown = steps.get("unknown");
    assert_eq!(unknown["threw"], true, "{unknown}");
    assert_eq!(unknown["code"], -32602, "{unknown}");
    assert!(
        unknown["message"]
            .as_str()
            .is_some_and(|m| m.contains("sessions_frobnicate") && m.contains("sessions_spawn")),
        "{unknown}"
    );

    let send = steps.get("send");
    assert_eq!(
        send["result"]["structuredContent"]["status"], "ok",
        "{send}"
    );
    assert_eq!(send["result"]["structuredContent"]["reply"], "one\ntwo");
    let told: Vec<&str> = send["progress"]
        .as_array()
        .expect("progress")
        .iter()
        .filter_map(|p| p["message"].as_str())
        .collect();
    assert_eq!(
        told.concat(),
        "one\ntwo\n",
        "the reply as it streamed: {send}"
    );
    let counts: Vec<f64> = send["progress"]
        .as_array()
        .expect("progress")
        .iter()
        .filter_map(|p| p["progress"].as_f64())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "progress only grows: {counts:?}"
    );

    let progress = &steps.get("progress")["progress"];
    assert!(
        progress["message"]
            .as_str()
            .is_some_and(|m| m.contains("tick")),
        "the run's output as progress: {progress}"
    );
    let cancelled = steps.get("cancelled");
    assert_eq!(cancelled["resolved"], false, "{cancelled}");
    assert!(
        cancelled["message"]
            .as_str()
            .is_some_and(|m| m.contains("the test cancels the wait")),
        "{cancelled}"
    );

    let list = &steps.get("list")["result"];
    assert_ne!(list["isError"], true, "{list}");
    let keys: Vec<&str> = list["structuredContent"]["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(
        keys.contains(&key) && keys.contains(&slow_key.as_str()),
        "{keys:?}"
    );
    steps.get("closed");
    d.ok(&["sessions", "kill", &slow_key]);
}

#[test]
fn bad_input_is_answered_per_the_protocol_and_the_server_keeps_serving() {
    let d = Daemon::start();
    let mut mcp = RawMcp::spawn(d.cli().arg("mcp"));
    let init = mcp.answer(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#,
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    mcp.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);

    let not_json = mcp.answer("{this is not json");
    assert_eq!(
        (not_json["id"].clone(), not_json["error"]["code"].clone()),
        (Value::Null, json!(-32700)),
        "{not_json}"
    );

    let batch = mcp.answer(r#"[{"jsonrpc":"2.0","id":2,"method":"ping"}]"#);
    assert_eq!(batch["error"]["code"], -32600, "{batch}");

    let bad_params =
        mcp.answer(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"sessions_list"}"#);
    assert_eq!(
        (
            bad_params["id"].clone(),
            bad_params["error"]["code"].clone()
        ),
        (json!(3), json!(-32602)),
        "{bad_params}"
    );

    let unknown = mcp.answer(
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sessions_frobnicate","arguments":{}}}"#,
    );
    assert_eq!(unknown["id"], 4);
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");

    let schema = mcp.answer(
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sessions_spawn","arguments":{"task":5}}}"#,
    );
    let result = &schema["result"];
    assert_eq!(result["isError"], true, "{schema}");
    assert_eq!(
        result["structuredContent"]["error"]["kind"],
        "invalid_params"
    );
    assert!(
        result["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("\"task\" must be a string")),
        "{schema}"
    );
    // Nothing was spawned by the refused call.
    assert_eq!(d.json(&["sessions", "list"])["sessions"], json!([]));

    let method = mcp.answer(r#"{"jsonrpc":"2.0","id":6,"method":"no/such/method"}"#);
    assert_eq!(method["error"]["code"], -32601, "{method}");

    let ping = mcp.answer(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#);
    assert_eq!(ping, json!({"jsonrpc": "2.0", "id": 7, "result": {}}));
    let list = mcp.answer(r#"{"jsonrpc":"2.0","id":8,"method":"tools/list"}"#);
    assert!(
        list["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.len() == 5),
        "{list}"
    );

    // End of input ends the server, cleanly.
    drop(mcp.stdin.take());
    let status = wait_child(&mut mcp.child, Duration::from_secs(10)).expect("openclaw mcp exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_exec_runs_mcp_client_acts_as_its_session() {
    let dir = sdk_dir();
    let config = format!(
        "[agents.coder]\nbackend = \"exec\"\ncommand = [\"{node}\", \"{script}\"]\n[agents.coder.subagents]\nallow_agents = [\"helper\"]\n[agents.helper]\nbackend = \"echo\"\n",
        node = node().display(),
        script = dir.join("agent-client.mjs").display(),
    );
    let d = Daemon::start_with_config(&config);
    let outsider = d.json(&["sessions", "spawn", "--task", "not yours"])["sessionKey"]
        .as_str()
        .expect("key")
        .to_string();
    let spawned = d.json(&["sessions", "spawn", "--agent", "coder", "--task", &outsider]);
    let coder = spawned["sessionKey"].as_str().expect("key").to_string();
    let run = spawned["runId"].as_str().expect("run").to_string();
    let done = d.json(&["sessions", "wait", &run, "--timeout", "60"]);
    assert_eq!(done["status"], "ok", "{done}");
    let reply: Value = serde_json::from_str(done["reply"].as_str().expect("reply"))
        .unwrap_or_else(|e| panic!("{e}: {done}"));

    // The file was the run's, private, and is gone with the run.
    assert_eq!(reply["mode"], 0o600, "{reply}");
    let path = reply["path"].as_str().expect("path");
    assert!(
        !std::path::Path::new(path).exists(),
        "{path} outlived its run"
    );

    // What it spawned is its session's child.
    let child = reply["spawned"]["sessionKey"].as_str().expect("child key");
    let listed = d.json(&["sessions", "list"]);
    let row = listed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["key"] == child)
        .unwrap_or_else(|| panic!("{child} not listed: {listed}"));
    assert_eq!(row["parentKey"], coder.as_str(), "{row}");
    assert_eq!(row["agentId"], "helper", "{row}");

    // Outside its tree: not_found, in the same words as over the CLI.
    assert_eq!(reply["outside"]["isError"], true, "{reply}");
    assert_eq!(reply["outside"]["error"]["kind"], "not_found", "{reply}");
    let message = reply["outside"]["error"]["message"]
        .as_str()
        .expect("message");
    assert!(message.contains(&outsider), "{message}");
    assert_eq!(reply["cli"]["status"], 4, "{reply}");
    assert_eq!(
        reply["cli"]["stderr"].as_str().map(str::trim),
        Some(format!("error: {message}").as_str()),
        "{reply}"
    );
}
