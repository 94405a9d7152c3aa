//! `sessions.spawn` with `runtime: "acp"`: the agent it needs, `streamTo: "parent"` (the
//! child's progress shown to the parent's followers) and `resumeSessionId` (another
//! session's ACP session picked up).

use serde_json::{Value, json};

use crate::common::{self, RawConn, stderr};
use crate::{
    agents_available, attach, follower, json, ok, parse, row, run, sdk_agent, send, session,
};

fn spawn_raw(d: &common::Daemon, params: Value) -> Value {
    let mut c = RawConn::connect(&d.socket());
    c.call(1, "sessions.spawn", params)
}

#[test]
fn runtime_acp_needs_an_acp_agent_and_the_acp_fields_are_checked() {
    if !agents_available() {
        return;
    }
    let config = format!(
        "{}[agents.sh]\nbackend = \"exec\"\ncommand = [\"cat\"]\n[agents.plain]\nbackend = \"echo\"\n",
        sdk_agent("t", &[], "")
    );
    let d = common::Daemon::start_with_config(&config);

    let resp = spawn_raw(&d, json!({"task": "hi", "agentId": "sh", "runtime": "acp"}));
    assert_eq!(resp["error"]["code"], -32602, "{resp}");
    let message = resp["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("agent \"sh\" has backend \"exec\""),
        "{message}"
    );
    let out = run(
        &d,
        &[
            "sessions",
            "spawn",
            "--agent",
            "plain",
            "--runtime",
            "acp",
            "--task",
            "hi",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("agent \"plain\" has backend \"echo\""),
        "{}",
        stderr(&out)
    );

    // On an ACP agent it is taken; the ACP-only fields are checked, not dropped.
    let resp = spawn_raw(
        &d,
        json!({"task": "chunks 1", "agentId": "t", "runtime": "acp"}),
    );
    assert_eq!(resp["result"]["status"], "accepted", "{resp}");
    assert!(resp["result"].get("ignoredFields").is_none(), "{resp}");
    let resp = spawn_raw(
        &d,
        json!({"task": "hi", "agentId": "t", "runtime": "acp", "streamTo": "elsewhere"}),
    );
    assert_eq!(resp["error"]["code"], -32602, "{resp}");
    let resp = spawn_raw(
        &d,
        json!({"task": "hi", "agentId": "t", "runtime": "acp", "streamTo": "parent"}),
    );
    assert_eq!(resp["error"]["code"], -32602, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("needs a parent session")),
        "{resp}"
    );

    // Other runtimes drop them and say so.
    let resp = spawn_raw(
        &d,
        json!({"task": "hi", "agentId": "plain", "streamTo": "parent", "resumeSessionId": "x"}),
    );
    assert_eq!(
        resp["result"]["ignoredFields"],
        json!(["streamTo", "resumeSessionId"]),
        "{resp}"
    );
}

#[test]
fn stream_to_parent_shows_the_childs_progress_to_the_parents_followers_once() {
    if !agents_available() {
        return;
    }
    let config = format!(
        "{}[agents.planner]\nbackend = \"echo\"\n",
        sdk_agent("t", &[], "permissions = \"approve-all\"")
    );
    let d = common::Daemon::start_with_config(&config);
    let (parent, _) = session(&d, "planner", "plan things");
    let spawned = json(
        &d,
        &[
            "sessions",
            "spawn",
            "--agent",
            "t",
            "--runtime",
            "acp",
            "--stream-to",
            "parent",
            "--parent",
            &parent,
            "--mode",
            "session",
            "--task",
            "chunks 1",
        ],
    );
    let child = spawned["sessionKey"].as_str().expect("key").to_string();
    ok(
        &d,
        &[
            "sessions",
            "wait",
            spawned["runId"].as_str().expect("runId"),
            "--timeout",
            "50",
        ],
    );

    let mut parent_f = follower(&d, &[&parent, "--events", "assistant,tool"]);
    attach(&d, &child, &mut parent_f);
    let mut child_f = follower(&d, &[&child, "--events", "assistant,tool"]);
    attach(&d, &child, &mut child_f);
    let mut all_f = LineAll::new(&d);
    attach(&d, &child, &mut all_f.0);

    let sent = json(
        &d,
        &["sessions", "send", &child, "work read", "--timeout", "50"],
    );
    let run_id = sent["runId"].as_str().expect("runId").to_string();
    let done = |l: &str| l.contains(&run_id) && l.contains("then done");
    for (who, f) in [
        ("parent", &mut parent_f),
        ("child", &mut child_f),
        ("all sessions", &mut all_f.0),
    ] {
        f.wait_line(30, done);
        let events: Vec<Value> = f
            .seen
            .iter()
            .filter(|l| l.contains(&run_id))
            .map(|l| parse(l))
            .filter(|e| e["stream"] == "assistant" || e["stream"] == "tool")
            .collect();
        let deltas: String = events
            .iter()
            .filter_map(|e| e["data"]["delta"].as_str())
            .collect();
        assert_eq!(
            deltas, "looking permission: allow-once then done",
            "{who}: each delta once: {events:#?}"
        );
        let tools: Vec<&str> = events
            .iter()
            .filter_map(|e| e["data"]["phase"].as_str())
            .collect();
        assert_eq!(tools, ["start", "permission", "update", "end"], "{who}");
        for e in &events {
            assert_eq!(
                e["sessionKey"],
                child.as_str(),
                "{who}: tagged with the child"
            );
        }
    }
    // A stream of the child's run hears each event once too.
    let streamed = ok(
        &d,
        &[
            "sessions",
            "send",
            &child,
            "chunks 3",
            "--stream",
            "--timeout",
            "50",
        ],
    );
    assert_eq!(streamed, "c1 c2 c3 ");

    // The parent's transcript is not the child's: of that run it holds the announce only.
    let parent_history = crate::history(&d, &parent);
    let of_run: Vec<&Value> = parent_history
        .iter()
        .filter(|m| m["runId"] == run_id.as_str())
        .collect();
    assert!(
        of_run.len() == 1 && of_run[0]["role"] == "announce",
        "{of_run:#?}"
    );
}

/// A follower of every session (`sessions subscribe`), which must hear a relayed event once.
struct LineAll(common::LineChild);

impl LineAll {
    fn new(d: &common::Daemon) -> LineAll {
        LineAll(common::LineChild::spawn(
            d.cli().args([
                "sessions",
                "subscribe",
                "--events",
                "assistant,tool",
                "--json",
            ]),
            "openclaw sessions subscribe",
        ))
    }
}

#[test]
fn resume_session_id_picks_up_an_earlier_acp_session_or_says_why_not() {
    if !agents_available() {
        return;
    }
    let store = tempfile::tempdir().expect("tempdir");
    let env = format!(
        "env = {{ ACP_TEST_AGENT_STORE = {} }}",
        crate::toml_str(&store.path().join("sessions.json").display().to_string())
    );
    let config = format!(
        "{}{}",
        sdk_agent("t", &[], &env),
        sdk_agent("noload", &["--no-load"], &env)
    );
    let d = common::Daemon::start_with_config(&config);
    let (first, _) = session(&d, "t", "chunks 2");
    send(&d, &first, "remember me");
    let acp_id = row(&d, &first)["agentSessionId"]
        .as_str()
        .expect("agentSessionId")
        .to_string();

    // A new session (its own workspace, a new process) on the same ACP session.
    let spawned = json(
        &d,
        &[
            "sessions",
            "spawn",
            "--agent",
            "t",
            "--runtime",
            "acp",
            "--resume-session-id",
            &acp_id,
            "--mode",
            "session",
            "--task",
            "history",
        ],
    );
    let second = spawned["sessionKey"].as_str().expect("key").to_string();
    let reply = ok(
        &d,
        &[
            "sessions",
            "wait",
            spawned["runId"].as_str().expect("runId"),
            "--timeout",
            "50",
        ],
    );
    assert_eq!(
        reply,
        "history: user=chunks 2 | agent=c1 c2  | user=remember me | agent=echo: remember me"
    );
    assert_eq!(row(&d, &second)["agentSessionId"], acp_id.as_str());
    assert_ne!(row(&d, &second)["sessionId"], row(&d, &first)["sessionId"]);

    // An id the agent does not know: the run fails saying so.
    let err = failed_resume(&d, "t", "no-such-acp-session");
    assert!(
        err.contains(&format!(
            "cannot resume ACP session no-such-acp-session (resumeSessionId): ACP agent `node {}` answered session/load with error -32002",
            crate::agent_dir().join("agent.mjs").display()
        )),
        "{err}"
    );
    // An agent that cannot load at all.
    let err = failed_resume(&d, "noload", &acp_id);
    assert!(
        err.contains(&format!(
            "cannot load ACP session {acp_id}: the agent does not advertise loadSession"
        )),
        "{err}"
    );
}

/// Spawns `agent` resuming `id`; the run must fail; its error.
fn failed_resume(d: &common::Daemon, agent: &str, id: &str) -> String {
    let spawned = json(
        d,
        &[
            "sessions",
            "spawn",
            "--agent",
            agent,
            "--runtime",
            "acp",
            // The short spelling the issue gives.
            "--resume",
            id,
            "--task",
            "history",
        ],
    );
    let waited = run(
        d,
        &[
            "sessions",
            "wait",
            spawned["runId"].as_str().expect("runId"),
            "--timeout",
            "50",
        ],
    );
    assert_eq!(waited.status.code(), Some(1), "{agent} {id}");
    stderr(&waited)
}
