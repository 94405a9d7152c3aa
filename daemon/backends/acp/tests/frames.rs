//! The connection fed exact bytes: the frames mistral-vibe's `vibe-acp` wrote, and
//! hand-made ones for what it did not do (overlapping ids, permissions during a cancel,
//! garbage).

use std::sync::Arc;
use std::time::Duration;

use crate::config::AcpPermissions;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use super::super::client::TurnOutcome;
use super::super::connection::{CallError, Closed, Connection, Turn};
use super::super::events::{AcpEvent, PermissionOutcome};
use super::super::fs::Workspace;
use super::super::wire::{LineReader, METHOD_NOT_FOUND};
use super::super::{AcpClient, Resume};
use super::{Recorder, fixture, node, setup, spec};

fn vibe_frames() -> Vec<String> {
    std::fs::read_to_string(fixture("vibe-acp-2.26.1_agent_frames.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// What the frames say the reply is, worked out independently of the client.
fn vibe_reply(frames: &[String]) -> String {
    frames
        .iter()
        .map(|f| serde_json::from_str::<Value>(f).unwrap())
        .filter(|v| v["params"]["update"]["sessionUpdate"] == "agent_message_chunk")
        .map(|v| {
            v["params"]["update"]["content"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The agent's side of in-memory stdio.
struct FakeAgent {
    /// What the agent writes: the client's stdout.
    out: WriteHalf<DuplexStream>,
    /// What the client writes to the agent.
    input: LineReader<ReadHalf<DuplexStream>>,
}

impl FakeAgent {
    async fn send(&mut self, line: &str) {
        self.out.write_all(line.as_bytes()).await.unwrap();
        self.out.write_all(b"\n").await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.input.next_line())
            .await
            .expect("the client wrote nothing")
            .unwrap()
            .expect("the client closed the agent's stdin");
        serde_json::from_slice(&line).unwrap()
    }
}

fn connect(policy: AcpPermissions) -> (Connection, FakeAgent, Arc<Recorder>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (client_side, agent_side) = tokio::io::duplex(1 << 20);
    let (client_read, client_write) = tokio::io::split(client_side);
    let (agent_read, agent_write) = tokio::io::split(agent_side);
    let host = Recorder::new();
    let conn = Connection::open(
        client_write,
        client_read,
        Workspace::new(dir.path()).unwrap(),
        policy,
        host.clone(),
    );
    let agent = FakeAgent {
        out: agent_write,
        input: LineReader::new(agent_read, 1 << 20),
    };
    (conn, agent, host, dir)
}

#[tokio::test]
async fn vibe_frames_map_to_events_and_the_reply() {
    let frames = vibe_frames();
    let (conn, mut agent, host, _dir) = connect(AcpPermissions::ApproveReads);
    let conn = Arc::new(conn);
    // The agent side: for each request, the recorded frames up to its answer.
    let replay = tokio::spawn(async move {
        let mut next = 0;
        for _ in 0..3 {
            let request = agent.recv().await;
            while next < frames.len() {
                let frame = frames[next].clone();
                next += 1;
                agent.send(&frame).await;
                let v: Value = serde_json::from_str(&frame).unwrap();
                if v.get("method").is_none() && v["id"] == request["id"] {
                    break;
                }
            }
        }
        agent
    });

    let init = conn
        .call("initialize", &json!({"protocolVersion": 1}))
        .await
        .unwrap();
    assert_eq!(init["agentCapabilities"]["loadSession"], true);
    let session = conn
        .call("session/new", &json!({"cwd": "/w", "mcpServers": []}))
        .await
        .unwrap();
    let sid = session["sessionId"].as_str().unwrap().to_string();
    // The usage_update sent before the session/new result was taken, not dropped.
    assert!(
        matches!(host.events()[..], [AcpEvent::Usage(_)]),
        "{:?}",
        host.events()
    );
    conn.with_state(|st| {
        st.session_id = Some(sid.clone());
        st.turn = Some(Turn::default());
    });
    let answer = conn
        .call(
            "session/prompt",
            &json!({"sessionId": sid, "prompt": [{"type": "text", "text": "say hi"}]}),
        )
        .await
        .unwrap();
    let turn = conn.with_state(|st| st.turn.take()).unwrap();
    let _agent = replay.await.unwrap();

    let expected = vibe_reply(&vibe_frames());
    assert!(expected.len() > 20, "{expected}");
    assert_eq!(turn.reply, expected);
    assert!(
        !turn.reply.contains("say hi"),
        "the echoed prompt is not reply"
    );
    assert_eq!(host.deltas().concat(), expected);
    let usage = host
        .events()
        .iter()
        .filter(|e| matches!(e, AcpEvent::Usage(_)))
        .count();
    assert_eq!(usage, 4);
    assert_eq!(
        host.events().len(),
        4 + host.deltas().len(),
        "commands and session info map to nothing"
    );
    let result = super::super::client::turn_result(&answer, turn.reply, false);
    assert_eq!(result.outcome, TurnOutcome::Ok);
    assert_eq!(result.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(result.tokens, Some(0));
}

#[tokio::test]
async fn vibe_frames_through_a_whole_client() {
    // Not the SDK agent: the recorded frames, replayed by a script with no dependencies.
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let command = vec![
        node,
        super::agent_dir().join("replay.mjs").display().to_string(),
        fixture("vibe-acp-2.26.1_agent_frames.jsonl")
            .display()
            .to_string(),
    ];
    let early = Recorder::new();
    let client = AcpClient::start(
        &spec(command, AcpPermissions::ApproveReads),
        setup(dir.path()),
        early.clone(),
    )
    .await
    .unwrap();
    assert_eq!(client.session_id(), "97fdd994-f858-ee4b-0c2f-cd04beb691dd");
    assert!(client.started().can_load);
    assert_eq!(
        client.started().agent.as_deref(),
        Some("@mistralai/mistral-vibe 2.26.1")
    );
    assert_eq!(early.events().len(), 1);

    let turn_host = Recorder::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let r = client
        .prompt("say hi", turn_host.clone(), &stop)
        .await
        .unwrap();
    assert_eq!(r.outcome, TurnOutcome::Ok);
    assert_eq!(r.reply, vibe_reply(&vibe_frames()));
    assert_eq!(turn_host.deltas().concat(), r.reply);
    assert!(
        early.deltas().is_empty(),
        "the turn's updates go to the turn's host"
    );
    client.shutdown().await;
    assert!(!client.is_alive());
}

#[tokio::test]
async fn requests_and_responses_are_told_apart_by_method_not_id() {
    let (conn, mut agent, _host, dir) = connect(AcpPermissions::ApproveReads);
    std::fs::write(dir.path().join("a.txt"), "alpha").unwrap();
    let conn = Arc::new(conn);
    let caller = conn.clone();
    let call = tokio::spawn(async move { caller.call("session/prompt", &json!({})).await });
    let ours = agent.recv().await;
    assert_eq!(ours["id"], 1);
    // The agent's own request 1 and an answer to no one, before the answer to ours.
    agent
        .send(&json!({"jsonrpc":"2.0","id":1,"method":"fs/read_text_file","params":{"sessionId":"s","path":"a.txt"}}).to_string())
        .await;
    agent.send(r#"{"jsonrpc":"2.0","id":99,"result":{}}"#).await;
    let answer = agent.recv().await;
    assert_eq!(
        answer,
        json!({"jsonrpc":"2.0","id":1,"result":{"content":"alpha"}})
    );
    assert!(!call.is_finished());
    agent
        .send(r#"{"jsonrpc":"2.0","id":1,"result":{"stopReason":"end_turn"}}"#)
        .await;
    let result = call.await.unwrap().unwrap();
    assert_eq!(result["stopReason"], "end_turn");
    // A string id is answered with the same string.
    agent
        .send(r#"{"jsonrpc":"2.0","id":"x7","method":"terminal/create","params":{}}"#)
        .await;
    let answer = agent.recv().await;
    assert_eq!(answer["id"], "x7");
    assert_eq!(answer["error"]["code"], METHOD_NOT_FOUND);
}

#[tokio::test]
async fn extensions_and_unknown_updates_are_ignored_never_fatal() {
    let (conn, mut agent, host, _dir) = connect(AcpPermissions::ApproveReads);
    for line in [
        r#"{"jsonrpc":"2.0","method":"_session/retrying","params":{"attempt":1}}"#,
        r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"brand_new_kind","x":1}}}"#,
        r#"{"jsonrpc":"2.0","method":"session/update","params":{"nonsense":true}}"#,
        r#"{"jsonrpc":"2.0","method":"some/notification"}"#,
        r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"still here"}}}}"#,
    ] {
        agent.send(line).await;
    }
    agent
        .send(r#"{"jsonrpc":"2.0","id":0,"method":"_vendor/ask","params":{}}"#)
        .await;
    let answer = agent.recv().await;
    assert_eq!(answer["id"], 0);
    assert_eq!(answer["error"]["code"], METHOD_NOT_FOUND);
    assert_eq!(host.deltas(), ["still here"]);
    assert_eq!(conn.closed(), None);
}

#[tokio::test]
async fn updates_for_another_session_are_ignored() {
    let (conn, mut agent, host, _dir) = connect(AcpPermissions::ApproveReads);
    conn.with_state(|st| st.session_id = Some("mine".into()));
    for sid in ["other", "mine"] {
        agent
            .send(&json!({"jsonrpc":"2.0","method":"session/update","params":{"sessionId":sid,
                "update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":sid}}}}).to_string())
            .await;
    }
    host.wait_for("the chunk of our session", |e| !e.is_empty())
        .await;
    assert_eq!(host.deltas(), ["mine"]);
}

#[tokio::test]
async fn permission_requests_follow_the_policy_and_a_cancel() {
    let (conn, mut agent, host, _dir) = connect(AcpPermissions::ApproveReads);
    conn.with_state(|st| st.turn = Some(Turn::default()));
    let ask = |id: u64, kind: Option<&str>| {
        let mut tool_call = json!({"toolCallId": format!("t{id}")});
        if let Some(k) = kind {
            tool_call["kind"] = json!(k);
        }
        json!({"jsonrpc":"2.0","id":id,"method":"session/request_permission","params":{"sessionId":"s",
            "toolCall": tool_call,
            "options":[{"optionId":"yes","name":"Yes","kind":"allow_once"},{"optionId":"no","name":"No","kind":"reject_once"}]}})
        .to_string()
    };
    agent.send(&ask(0, Some("read"))).await;
    assert_eq!(
        agent.recv().await["result"]["outcome"],
        json!({"outcome":"selected","optionId":"yes"})
    );
    agent.send(&ask(1, Some("execute"))).await;
    assert_eq!(
        agent.recv().await["result"]["outcome"],
        json!({"outcome":"selected","optionId":"no"})
    );
    // The kind left out of the request is taken from the call the agent announced.
    agent
        .send(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"tool_call","toolCallId":"t2","title":"Search","kind":"search"}}}"#)
        .await;
    agent.send(&ask(2, None)).await;
    assert_eq!(
        agent.recv().await["result"]["outcome"],
        json!({"outcome":"selected","optionId":"yes"})
    );
    // Once the turn is being cancelled, every request is answered `cancelled`.
    conn.with_state(|st| st.turn.as_mut().unwrap().cancelled = true);
    agent.send(&ask(3, Some("read"))).await;
    assert_eq!(
        agent.recv().await["result"]["outcome"],
        json!({"outcome":"cancelled"})
    );

    let decisions: Vec<(String, String, PermissionOutcome)> = host
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AcpEvent::Permission(d) => Some((d.tool_call_id, d.kind, d.outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(decisions.len(), 4);
    assert_eq!(
        decisions[0],
        (
            "t0".into(),
            "read".into(),
            PermissionOutcome::Allowed {
                option_id: "yes".into()
            }
        )
    );
    assert_eq!(
        decisions[1],
        (
            "t1".into(),
            "execute".into(),
            PermissionOutcome::Rejected {
                option_id: "no".into()
            }
        )
    );
    assert_eq!(decisions[2].1, "search");
    assert!(matches!(
        decisions[3].2,
        PermissionOutcome::Cancelled { .. }
    ));
}

#[tokio::test]
async fn garbage_ends_the_connection_and_fails_waiting_calls() {
    let (conn, mut agent, _host, _dir) = connect(AcpPermissions::ApproveReads);
    let conn = Arc::new(conn);
    let caller = conn.clone();
    let call = tokio::spawn(async move { caller.call("initialize", &json!({})).await });
    agent.recv().await;
    agent.send("Traceback (most recent call last):").await;
    assert!(matches!(call.await.unwrap(), Err(CallError::Closed)));
    assert_eq!(
        conn.closed(),
        Some(Closed::Garbage("Traceback (most recent call last):".into()))
    );
    // Later calls fail at once.
    assert!(matches!(
        conn.call("session/new", &json!({})).await,
        Err(CallError::Closed)
    ));
}

#[tokio::test]
async fn a_required_resume_of_an_agent_that_cannot_load_is_refused() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    // An agent without loadSession: the vibe frames with the capability taken out.
    let frames = vibe_frames()
        .into_iter()
        .map(|f| f.replace(r#""loadSession":true"#, r#""loadSession":false"#))
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("frames.jsonl");
    std::fs::write(&path, frames).unwrap();
    let command = vec![
        node,
        super::agent_dir().join("replay.mjs").display().to_string(),
        path.display().to_string(),
    ];
    let mut s = setup(&dir.path().join("ws"));
    s.resume = Some(Resume {
        session_id: "old".into(),
        required: true,
    });
    let err = AcpClient::start(
        &spec(command.clone(), AcpPermissions::ApproveReads),
        s.clone(),
        Recorder::new(),
    )
    .await
    .err()
    .expect("a required resume cannot fall back");
    assert!(
        err.to_string().contains("does not advertise loadSession"),
        "{err}"
    );

    s.resume = Some(Resume {
        session_id: "old".into(),
        required: false,
    });
    let client = AcpClient::start(
        &spec(command, AcpPermissions::ApproveReads),
        s,
        Recorder::new(),
    )
    .await
    .unwrap();
    assert!(!client.started().loaded);
    assert!(
        client
            .started()
            .note
            .as_deref()
            .unwrap()
            .contains("cannot load sessions")
    );
    client.shutdown().await;
}
