//! Turns as a user sees them: live progress, the stored transcript, permission policies,
//! the workspace the agent's file requests are confined to, `send --stream`.

use serde_json::{Value, json};

use crate::common::{self, LineChild, describe, stdout};
use crate::{
    agents_available, attach, daemon, follower, history, json, ok, parse, run, sdk_agent, send,
    session,
};

/// A run event line as a comparable step: `assistant:TEXT` (consecutive deltas joined),
/// `tool:PHASE:ID[:NAME|:STATUS]`, `tool:permission:ID:allowed|denied`.
fn step(out: &mut Vec<String>, e: &Value) {
    let d = &e["data"];
    let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
    let next = match (e["stream"].as_str(), d["phase"].as_str()) {
        (Some("assistant"), _) => {
            if let Some(last) = out.last_mut().filter(|l| l.starts_with("assistant:")) {
                last.push_str(&s("delta"));
                return;
            }
            format!("assistant:{}", s("delta"))
        }
        (Some("tool"), Some("start")) => format!("tool:start:{}:{}", s("id"), s("name")),
        (Some("tool"), Some("end")) => format!("tool:end:{}:{}", s("id"), s("status")),
        (Some("tool"), Some("permission")) => {
            format!("tool:permission:{}:{}", s("id"), s("status"))
        }
        (Some("tool"), Some(phase)) => format!("tool:{phase}:{}", s("id")),
        (stream, _) => format!("{}:{d}", stream.unwrap_or("?")),
    };
    out.push(next);
}

/// Reads run events from `f` until one of `run_id` satisfies `last`; returns that run's
/// events in the order printed.
fn run_events(f: &mut LineChild, run_id: &str, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let line = f.wait_line(30, |l| l.contains(run_id));
        let e = parse(&line);
        assert_eq!(e["event"], "run.event", "{line}");
        let done = last(&e);
        got.push(e);
        if done {
            return got;
        }
    }
}

fn is_final_delta(e: &Value) -> bool {
    e["stream"] == "assistant"
        && e["data"]["delta"]
            .as_str()
            .is_some_and(|t| t.ends_with("then done"))
}

#[test]
fn follow_shows_the_deltas_and_the_tool_call_in_order() {
    if !agents_available() {
        return;
    }
    let d = daemon("", "");
    let (key, _) = session(&d, "t", "chunks 1");
    let mut f = follower(&d, &[&key, "--events", "assistant,tool"]);
    attach(&d, &key, &mut f);

    let sent = json(
        &d,
        &["sessions", "send", &key, "work read", "--timeout", "50"],
    );
    assert_eq!(sent["reply"], "looking permission: allow-once then done");
    let run_id = sent["runId"].as_str().expect("runId");
    let events = run_events(&mut f, run_id, is_final_delta);

    let mut steps = Vec::new();
    events.iter().for_each(|e| step(&mut steps, e));
    assert_eq!(
        steps,
        [
            "assistant:looking ",
            "tool:start:call-read:read something",
            "tool:permission:call-read:allowed",
            "tool:update:call-read",
            "tool:end:call-read:ok",
            "assistant:permission: allow-once then done",
        ],
        "{events:#?}"
    );
    // Numbered per run, in order, each once; only what was asked for.
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for e in &events {
        assert_eq!(e["sessionKey"], key.as_str());
        assert!(e["stream"] == "assistant" || e["stream"] == "tool", "{e}");
    }
    let start = &events[1]["data"];
    assert_eq!(start["input"], json!({"what": "read"}));
    let end = &events[4]["data"];
    assert_eq!(end["output"], json!({"ok": true}));

    // The same without --json: one line per tool step, named by the call's title.
    let mut text = LineChild::spawn(
        d.cli()
            .args(["sessions", "follow", &key, "--events", "assistant,tool"]),
        "follow (text)",
    );
    attach(&d, &key, &mut text);
    send(&d, &key, "work edit");
    let start = text.wait_line(30, |l| l.contains("edit something"));
    assert!(start.contains("start"), "{start}");
    let permission = text.wait_line(30, |l| l.contains("edit something"));
    assert!(permission.contains("permission allowed"), "{permission}");
    let end = text.wait_line(30, |l| l.contains("edit something") && l.contains("end"));
    assert!(end.contains("ok"), "{end}");
}

#[test]
fn history_holds_the_reply_and_the_tool_messages_with_the_decision() {
    if !agents_available() {
        return;
    }
    let d = daemon("", "");
    let (key, _) = session(&d, "t", "chunks 2");
    let sent = json(
        &d,
        &["sessions", "send", &key, "work read", "--timeout", "50"],
    );
    let run_id = sent["runId"].as_str().expect("runId");
    let session_id = crate::row(&d, &key)["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_string();
    let workspace = std::fs::canonicalize(d.home_path().join("data/workspaces").join(&session_id))
        .expect("the session workspace exists");

    let all = history(&d, &key);
    let first: Vec<(&str, &Value)> = all
        .iter()
        .filter(|m| m["runId"] != run_id)
        .map(|m| (m["role"].as_str().unwrap_or(""), &m["content"]))
        .collect();
    assert_eq!(
        first,
        [
            ("user", &json!("chunks 2")),
            ("assistant", &json!("c1 c2 "))
        ]
    );
    let turn: Vec<&Value> = all.iter().filter(|m| m["runId"] == run_id).collect();
    let roles: Vec<&str> = turn.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(
        roles,
        ["user", "tool_call", "tool_result", "assistant"],
        "{turn:#?}"
    );
    assert_eq!(turn[0]["content"], "work read");
    assert_eq!(
        turn[1]["content"],
        json!({
            "id": "call-read", "name": "read something", "kind": "read",
            "input": {"what": "read"},
            "locations": [{"path": workspace.join("notes.txt").display().to_string(), "line": 3}],
        })
    );
    assert_eq!(
        turn[2]["content"],
        json!({
            "id": "call-read", "name": "read something", "output": {"ok": true}, "status": "ok",
            "permission": {"decision": "allowed", "optionId": "allow-once", "policy": "approve-all"},
        })
    );
    assert_eq!(
        turn[3]["content"],
        "looking permission: allow-once then done"
    );
    for m in &turn[1..] {
        assert_eq!(m["provenance"]["kind"], "agent", "{m}");
    }

    // Without --include-tools, the tool messages are left out.
    let plain = json(&d, &["sessions", "history", &key])["messages"]
        .as_array()
        .cloned()
        .expect("messages");
    let plain_roles: Vec<&str> = plain
        .iter()
        .filter(|m| m["runId"] == run_id)
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(plain_roles, ["user", "assistant"]);
}

type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn each_permission_policy_answers_and_records_its_decision() {
    if !agents_available() {
        return;
    }
    let config = [
        sdk_agent("all", &[], "permissions = \"approve-all\""),
        sdk_agent("reads", &[], ""), // approve-reads is the default
        sdk_agent("none", &[], "permissions = \"deny-all\""),
    ]
    .concat();
    let d = common::Daemon::start_with_config(&config);
    // (agent, its policy, [(tool kind, the option the policy picks)])
    let cases: [Case; 3] = [
        (
            "all",
            "approve-all",
            &[
                ("read", "allow-once"),
                ("edit", "allow-once"),
                ("execute", "allow-once"),
            ],
        ),
        (
            "reads",
            "approve-reads",
            &[
                ("read", "allow-once"),
                ("search", "allow-once"),
                ("fetch", "allow-once"),
                ("edit", "reject-once"),
                ("execute", "reject-once"),
                ("delete", "reject-once"),
            ],
        ),
        (
            "none",
            "deny-all",
            &[("read", "reject-once"), ("edit", "reject-once")],
        ),
    ];
    for (agent, policy, kinds) in cases {
        let (key, _) = session(&d, agent, "chunks 1");
        let mut f = follower(&d, &[&key, "--events", "tool"]);
        attach(&d, &key, &mut f);
        for &(kind, option) in kinds {
            let sent = json(
                &d,
                &[
                    "sessions",
                    "send",
                    &key,
                    &format!("tool {kind}"),
                    "--timeout",
                    "50",
                ],
            );
            assert_eq!(
                sent["reply"],
                format!("permission: {option}"),
                "{agent} {kind}"
            );
            let run_id = sent["runId"].as_str().expect("runId");
            let allowed = option.starts_with("allow");
            let decision = json!({
                "decision": if allowed { "allowed" } else { "rejected" },
                "optionId": option,
                "policy": policy,
            });

            // The tool event that reports it, live.
            let events = run_events(&mut f, run_id, |e| e["data"]["phase"] == "end");
            let asked = events
                .iter()
                .find(|e| e["data"]["phase"] == "permission")
                .unwrap_or_else(|| panic!("{agent} {kind}: no permission event: {events:#?}"));
            let d_ = &asked["data"];
            assert_eq!(d_["id"], format!("call-{kind}"));
            assert_eq!(d_["kind"], kind);
            assert_eq!(d_["status"], if allowed { "allowed" } else { "denied" });
            assert_eq!(d_["decision"]["policy"], policy);
            assert_eq!(
                d_["decision"]["outcome"],
                json!({"decision": decision["decision"], "optionId": option})
            );
            let end = events.last().expect("end");
            assert_eq!(
                end["data"]["status"],
                if allowed { "ok" } else { "error" },
                "{agent} {kind}"
            );

            // And the transcript, with the tool's result.
            let result = history(&d, &key)
                .into_iter()
                .find(|m| m["runId"] == run_id && m["role"] == "tool_result")
                .unwrap_or_else(|| panic!("{agent} {kind}: no tool_result stored"));
            assert_eq!(result["content"]["permission"], decision, "{agent} {kind}");
            assert_eq!(
                result["content"]["status"],
                if allowed { "ok" } else { "error" }
            );
        }
    }
}

#[test]
fn file_requests_are_confined_to_the_session_workspace() {
    if !agents_available() {
        return;
    }
    let d = daemon("", "");
    let (key, _) = session(&d, "t", "chunks 1");
    let session_id = crate::row(&d, &key)["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_string();
    let workspace = d.home_path().join("data/workspaces").join(&session_id);
    assert!(workspace.is_dir(), "{}", workspace.display());
    // Files that exist, so a refusal is about where they are and not that they are missing.
    std::fs::write(workspace.join("../x"), "sibling secret").expect("write ../x");
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "outside secret").expect("write secret");
    std::os::unix::fs::symlink(&secret, workspace.join("link-out")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), workspace.join("dir-out")).expect("symlink");
    std::fs::write(workspace.join("inside.txt"), "one\ntwo\nthree\n").expect("write inside");

    let secret_path = secret.display().to_string();
    for path in ["../x", &secret_path, "link-out", "dir-out/secret.txt"] {
        let reply = send(&d, &key, &format!("read {path}"));
        assert_eq!(
            reply,
            format!("read error: -32602 {path} is outside the session workspace"),
            "read {path}"
        );
    }
    for path in ["../evil.txt", "link-out", "dir-out/evil.txt"] {
        let reply = send(&d, &key, &format!("write {path} pwned"));
        assert_eq!(
            reply,
            format!("write error: -32602 {path} is outside the session workspace"),
            "write {path}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&secret).expect("secret"),
        "outside secret"
    );
    assert!(!workspace.join("../evil.txt").exists());
    assert!(!outside.path().join("evil.txt").exists());

    // Inside, reads and writes work (relative or absolute, new directories included).
    let ranged = json(
        &d,
        &[
            "sessions",
            "send",
            &key,
            "read inside.txt 2 1",
            "--timeout",
            "50",
        ],
    );
    assert_eq!(ranged["reply"], "read: two\n", "a line range");
    assert_eq!(
        send(&d, &key, "write notes/new.txt hello there"),
        "write: ok"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes/new.txt")).expect("written"),
        "hello there"
    );
    let abs = std::fs::canonicalize(&workspace)
        .expect("workspace")
        .join("notes/new.txt");
    assert_eq!(
        send(&d, &key, &format!("read {}", abs.display())),
        "read: hello there"
    );
    assert_eq!(
        send(&d, &key, "read missing.txt"),
        "read error: -32002 missing.txt does not exist"
    );
}

#[test]
fn send_stream_shows_progress_then_the_reply_and_a_short_wait_exits_124_with_the_run_going_on() {
    if !agents_available() {
        return;
    }
    let d = daemon("", "");
    let (key, _) = session(&d, "t", "chunks 1");

    // Text: the reply as it streams on stdout (each delta once), the tool call on stderr.
    let args = [
        "sessions",
        "send",
        &key,
        "work read",
        "--stream",
        "--timeout",
        "50",
    ];
    let out = run(&d, &args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert_eq!(
        stdout(&out).trim_end(),
        "looking permission: allow-once then done"
    );
    let err = common::stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("read something") && l.contains("ok")),
        "{}",
        describe(&args, &out)
    );

    // JSON: every event as a line, in order, then the result.
    let args = [
        "sessions",
        "send",
        &key,
        "work read",
        "--stream",
        "--json",
        "--timeout",
        "50",
    ];
    let out = run(&d, &args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    let lines: Vec<Value> = stdout(&out).lines().map(parse).collect();
    let (result, events) = lines.split_last().expect("lines");
    assert_eq!(result["status"], "ok");
    assert_eq!(result["reply"], "looking permission: allow-once then done");
    let mut steps = Vec::new();
    events
        .iter()
        .filter(|e| e["stream"] != "lifecycle" && e["stream"] != "usage")
        .for_each(|e| step(&mut steps, e));
    assert_eq!(
        steps,
        [
            "assistant:looking ",
            "tool:start:call-read:read something",
            "tool:permission:call-read:allowed",
            "tool:update:call-read",
            "tool:end:call-read:ok",
            "assistant:permission: allow-once then done",
        ]
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "each event once, in order: {seqs:?}"
    );
    assert_eq!(
        events.first().map(|e| &e["stream"]),
        Some(&json!("lifecycle"))
    );

    // A wait that ends first says so (124); the run goes on.
    let args = [
        "sessions",
        "send",
        &key,
        "slow",
        "--stream",
        "--timeout",
        "3",
    ];
    let out = run(&d, &args);
    assert_eq!(out.status.code(), Some(124), "{}", describe(&args, &out));
    assert!(
        stdout(&out).starts_with("tick1 tick2 "),
        "{}",
        describe(&args, &out)
    );
    let err = common::stderr(&out);
    assert!(err.contains("goes on"), "{err}");
    let row = crate::row(&d, &key);
    assert_eq!(row["status"], "running", "{row}");
    let run_id = row["activeRunId"]
        .as_str()
        .expect("an active run")
        .to_string();
    assert!(err.contains(&run_id), "the message names the run: {err}");
    let mut f = follower(&d, &[&key, "--events", "assistant"]);
    f.wait_line(30, |l| l.contains(&run_id) && l.contains("tick"));
    assert_eq!(ok(&d, &["sessions", "kill", &key]), run_id);
    let waited = run(&d, &["sessions", "wait", &run_id]);
    assert_eq!(waited.status.code(), Some(1));
    assert!(
        common::stderr(&waited).contains("aborted"),
        "{}",
        common::stderr(&waited)
    );
}

#[test]
fn thoughts_plans_and_usage_stream_live_and_stay_out_of_the_reply() {
    if !agents_available() {
        return;
    }
    let d = daemon("", "");
    let (key, _) = session(&d, "t", "chunks 1");
    let mut f = follower(&d, &[&key, "--events", "tool,thought,plan,usage"]);
    attach(&d, &key, &mut f);

    let sent = json(&d, &["sessions", "send", &key, "think", "--timeout", "50"]);
    assert_eq!(
        sent["reply"], "thought about it",
        "the thought is not reply"
    );
    let run_id = sent["runId"].as_str().expect("runId").to_string();
    let line = f.wait_line(30, |l| l.contains(&run_id) && l.contains("\"thought\""));
    assert_eq!(
        parse(&line)["data"],
        json!({"delta": "pondering the request"})
    );

    let sent = json(&d, &["sessions", "send", &key, "plan", "--timeout", "50"]);
    assert_eq!(sent["reply"], "planned");
    let run_id = sent["runId"].as_str().expect("runId").to_string();
    let line = f.wait_line(30, |l| l.contains(&run_id) && l.contains("\"plan\""));
    assert_eq!(
        parse(&line)["data"]["entries"],
        json!([
            {"content": "read the code", "priority": "high", "status": "completed"},
            {"content": "write the change", "priority": "medium", "status": "pending"},
        ])
    );

    let sent = json(&d, &["sessions", "send", &key, "usage", "--timeout", "50"]);
    let run_id = sent["runId"].as_str().expect("runId").to_string();
    let line = f.wait_line(30, |l| l.contains(&run_id) && l.contains("\"usage\""));
    assert_eq!(parse(&line)["data"]["tokens"], 1234);

    // In text, the plan's steps and the thought are shown as such.
    let mut text = LineChild::spawn(
        d.cli()
            .args(["sessions", "follow", &key, "--events", "tool,plan,thought"]),
        "follow (text)",
    );
    attach(&d, &key, &mut text);
    send(&d, &key, "plan");
    let plan = text.wait_line(30, |l| l.contains("plan"));
    assert!(
        plan.contains("read the code (completed)") && plan.contains("write the change (pending)"),
        "{plan}"
    );
    send(&d, &key, "think");
    let thought = text.wait_line(30, |l| l.contains("thinking"));
    assert!(thought.contains("pondering the request"), "{thought}");
    // Neither is in the transcript: it holds what was said.
    let said: Vec<String> = history(&d, &key)
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect();
    assert!(said.iter().all(|s| !s.contains("pondering")), "{said:?}");
}
