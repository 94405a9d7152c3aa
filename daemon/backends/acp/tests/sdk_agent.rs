//! The client against `tests/acp-agent/agent.mjs`, an agent on the official TypeScript SDK.

use std::sync::Arc;
use std::time::Duration;

use crate::config::AcpPermissions;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::super::process::tests::wait_gone;
use super::super::{
    AcpClient, AcpEvent, AcpFailure, EnvVariable, McpServer, McpServerStdio, PermissionOutcome,
    Resume, TurnOutcome, TurnResult,
};
use super::{Recorder, sdk_agent, setup, spec, start_sdk};

async fn ask(client: &AcpClient, text: &str) -> (TurnResult, Arc<Recorder>) {
    let host = Recorder::new();
    let r = client
        .prompt(text, host.clone(), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("prompt {text:?} failed: {e}"));
    (r, host)
}

#[tokio::test]
async fn chunks_thoughts_plans_and_usage_on_one_process() {
    let Some((client, _dir, early)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    // Sent before the session/new result.
    assert!(
        matches!(early.events()[..], [AcpEvent::Usage(ref u)] if u.size == 200000),
        "{:?}",
        early.events()
    );

    let (r, host) = ask(&client, "chunks 3").await;
    assert_eq!(
        (r.outcome.clone(), r.reply.as_str()),
        (TurnOutcome::Ok, "c1 c2 c3 ")
    );
    assert_eq!(
        host.deltas(),
        ["c1 ", "c2 ", "c3 "],
        "streamed one by one, not the echoed prompt"
    );
    assert_eq!(r.stop_reason.as_deref(), Some("end_turn"));

    let (r, host) = ask(&client, "think").await;
    assert_eq!(r.reply, "thought about it");
    assert_eq!(
        host.events(),
        [
            AcpEvent::ThoughtDelta {
                text: "pondering the request".into()
            },
            AcpEvent::AssistantDelta {
                text: "thought about it".into()
            },
        ]
    );

    let (r, host) = ask(&client, "plan").await;
    assert_eq!(r.reply, "planned");
    let AcpEvent::Plan { entries } = &host.events()[0] else {
        panic!("{:?}", host.events())
    };
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].content.as_str(), entries[0].status.as_str()),
        ("read the code", "completed")
    );
    assert_eq!(entries[1].priority, "medium");

    let (_, host) = ask(&client, "usage").await;
    let AcpEvent::Usage(u) = &host.events()[0] else {
        panic!("{:?}", host.events())
    };
    assert_eq!((u.used, u.size), (1234, 200000));
    assert_eq!(
        u.cost.as_ref().map(|c| (c.amount, c.currency.as_str())),
        Some((0.25, "USD"))
    );

    // Every turn ran in the process the client started.
    let (r, _) = ask(&client, "pid").await;
    assert_eq!(r.reply, format!("pid {}", client.pid()));
    assert!(client.is_alive());
    client.shutdown().await;
    wait_gone(client.pid() as i32).await;
}

/// One tool call of `kind` under `policy`: the option the agent got, and the events.
async fn tool_call(policy: AcpPermissions, kind: &str) -> (String, Vec<AcpEvent>) {
    let (client, _dir, _) = start_sdk(policy).await.expect("checked by the caller");
    let (r, host) = ask(&client, &format!("tool {kind}")).await;
    client.shutdown().await;
    (r.reply, host.events())
}

#[tokio::test]
async fn tool_calls_ask_permission_under_each_policy() {
    if sdk_agent(&[]).is_none() {
        return;
    }
    for (policy, kind, allowed) in [
        (AcpPermissions::ApproveReads, "read", true),
        (AcpPermissions::ApproveReads, "edit", false),
        (AcpPermissions::ApproveAll, "edit", true),
        (AcpPermissions::ApproveAll, "execute", true),
        (AcpPermissions::DenyAll, "read", false),
    ] {
        let (reply, events) = tool_call(policy, kind).await;
        let option = if allowed { "allow-once" } else { "reject-once" };
        assert_eq!(reply, format!("permission: {option}"), "{policy:?} {kind}");
        let id = format!("call-{kind}");
        // Start, the decision, then the outcome, in the order the agent sent them.
        let AcpEvent::ToolStart(start) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (
                start.id.as_str(),
                start.kind.as_str(),
                start.status.as_str()
            ),
            (id.as_str(), kind, "pending")
        );
        assert_eq!(start.title, format!("{kind} something"));
        assert_eq!(start.raw_input, Some(json!({"what": kind})));
        assert_eq!(start.locations[0]["line"], 3);
        let AcpEvent::Permission(d) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (d.tool_call_id.as_str(), d.kind.as_str(), d.policy),
            (id.as_str(), kind, policy)
        );
        let expected = if allowed {
            PermissionOutcome::Allowed {
                option_id: option.into(),
            }
        } else {
            PermissionOutcome::Rejected {
                option_id: option.into(),
            }
        };
        assert_eq!(d.outcome, expected);
        let end = events.iter().find_map(|e| match e {
            AcpEvent::ToolEnd(s) => Some(s.clone()),
            _ => None,
        });
        let end = end.unwrap_or_else(|| panic!("no tool end: {events:?}"));
        assert_eq!(
            end.title,
            format!("{kind} something"),
            "the end carries the whole call"
        );
        if allowed {
            assert!(matches!(events[2], AcpEvent::ToolUpdate(ref u) if u.status == "in_progress"));
            assert_eq!(end.status, "completed");
            assert_eq!(end.raw_output, Some(json!({"ok": true})));
            assert_eq!(end.content[0]["content"]["text"], format!("{kind} done"));
        } else {
            assert_eq!(end.status, "failed");
        }
    }
}

#[tokio::test]
async fn file_access_is_confined_to_the_workspace() {
    let Some((client, dir, _)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    let ws = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(ws.join("notes.txt"), "line one\nline two\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    std::os::unix::fs::symlink(&secret, ws.join("escape")).unwrap();
    // `../x` from inside the workspace names this file.
    let parent_secret = ws
        .parent()
        .unwrap()
        .join(format!("acp-secret-{}", std::process::id()));
    std::fs::write(&parent_secret, "parent secret").unwrap();
    let dotdot = format!(
        "../{}",
        parent_secret.file_name().unwrap().to_str().unwrap()
    );

    let (r, _) = ask(&client, &format!("read {}", ws.join("notes.txt").display())).await;
    assert_eq!(r.reply, "read: line one\nline two\n");
    let (r, _) = ask(
        &client,
        &format!("read {} 2 1", ws.join("notes.txt").display()),
    )
    .await;
    assert_eq!(r.reply, "read: line two\n");

    for path in [
        dotdot.clone(),
        secret.display().to_string(),
        "escape".to_string(),
    ] {
        let (r, _) = ask(&client, &format!("read {path}")).await;
        assert!(
            r.reply.starts_with("read error: -32602")
                && r.reply.contains("outside the session workspace"),
            "{path}: {}",
            r.reply
        );
        assert!(!r.reply.contains("secret\n") && !r.reply.contains("top secret"));
    }

    let (r, _) = ask(
        &client,
        &format!("write {} hello there", ws.join("out/new.txt").display()),
    )
    .await;
    assert_eq!(r.reply, "write: ok");
    assert_eq!(
        std::fs::read_to_string(ws.join("out/new.txt")).unwrap(),
        "hello there"
    );
    let (r, _) = ask(&client, &format!("write {} pwned", secret.display())).await;
    assert!(r.reply.starts_with("write error: -32602"), "{}", r.reply);
    let (r, _) = ask(&client, "write escape pwned").await;
    assert!(r.reply.starts_with("write error: -32602"), "{}", r.reply);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "top secret");
    std::fs::remove_file(&parent_secret).unwrap();
    client.shutdown().await;
}

#[tokio::test]
async fn stopping_a_slow_prompt_aborts_it_and_the_process_is_gone() {
    let Some((client, _dir, _)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    let host = Recorder::new();
    let stop = CancellationToken::new();
    let turn = client.prompt("slow", host.clone(), &stop);
    let watch = async {
        host.wait_for("the first ticks", |e| e.len() >= 3).await;
        stop.cancel();
    };
    let (r, ()) = tokio::join!(turn, watch);
    let r = r.unwrap();
    assert_eq!(r.outcome, TurnOutcome::Aborted);
    assert_eq!(
        r.stop_reason.as_deref(),
        Some("cancelled"),
        "the agent honoured session/cancel"
    );
    assert!(r.reply.starts_with("tick1 tick2 tick3 "), "{}", r.reply);
    assert!(r.reply.ends_with("[cancel received]"), "{}", r.reply);
    assert!(!client.is_alive());
    wait_gone(client.pid() as i32).await;
    // A stopped client says so instead of hanging.
    let err = client
        .prompt("chunks 1", Recorder::new(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.failure, AcpFailure::Stopped);
}

#[tokio::test]
async fn a_stopped_agent_that_ignores_sigterm_is_killed() {
    let Some(command) = sdk_agent(&["--ignore-term"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(command, AcpPermissions::ApproveReads);
    s.kill_grace = Duration::from_millis(300);
    let client = AcpClient::start(&s, setup(dir.path()), Recorder::new())
        .await
        .unwrap();
    let (r, _) = ask(&client, "chunks 1").await;
    assert_eq!(r.reply, "c1 ");
    client.shutdown().await;
    wait_gone(client.pid() as i32).await;
    assert!(
        client.stderr_tail().contains("ignoring SIGTERM"),
        "{}",
        client.stderr_tail()
    );
}

#[tokio::test]
async fn a_cancel_answered_with_end_turn_is_still_aborted_and_the_process_stays() {
    let Some((client, _dir, _)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    let host = Recorder::new();
    let stop = CancellationToken::new();
    let turn = client.prompt("slow-endturn", host.clone(), &stop);
    let watch = async {
        host.wait_for("a tick", |e| !e.is_empty()).await;
        client.cancel();
    };
    let (r, ()) = tokio::join!(turn, watch);
    let r = r.unwrap();
    assert_eq!(r.stop_reason.as_deref(), Some("end_turn"));
    assert!(r.reply.ends_with("[cancel received]"), "{}", r.reply);
    assert_eq!(r.outcome, TurnOutcome::Aborted);
    assert!(client.is_alive());
    let (r, _) = ask(&client, "chunks 2").await;
    assert_eq!((r.outcome, r.reply.as_str()), (TurnOutcome::Ok, "c1 c2 "));
    client.shutdown().await;
}

#[tokio::test]
async fn a_session_is_loaded_by_a_fresh_process() {
    let Some(command) = sdk_agent(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = spec(command, AcpPermissions::ApproveReads);
    let first = AcpClient::start(&s, setup(dir.path()), Recorder::new())
        .await
        .unwrap();
    let (r, _) = ask(&first, "remember apples").await;
    assert_eq!(r.reply, "echo: remember apples");
    let session_id = first.session_id().to_string();
    let first_pid = first.pid();
    first.shutdown().await;

    let mut again = setup(dir.path());
    again.resume = Some(Resume {
        session_id: session_id.clone(),
        required: true,
    });
    let replay = Recorder::new();
    let second = AcpClient::start(&s, again, replay.clone()).await.unwrap();
    assert_ne!(second.pid(), first_pid);
    assert!(second.started().loaded);
    assert_eq!(second.session_id(), session_id);
    assert!(
        replay.events().is_empty(),
        "the replayed history is not news: {:?}",
        replay.events()
    );
    let (r, _) = ask(&second, "history").await;
    assert_eq!(
        r.reply,
        "history: user=remember apples | agent=echo: remember apples"
    );
    second.shutdown().await;

    // An id the agent does not know: an error when asked for, else a new session.
    let mut unknown = setup(dir.path());
    unknown.resume = Some(Resume {
        session_id: "no-such".into(),
        required: true,
    });
    let err = AcpClient::start(&s, unknown.clone(), Recorder::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err.failure, AcpFailure::Rpc { ref method, code: -32002, .. } if method == "session/load"),
        "{err}"
    );
    unknown.resume.as_mut().unwrap().required = false;
    let third = AcpClient::start(&s, unknown, Recorder::new())
        .await
        .unwrap();
    assert!(!third.started().loaded);
    assert_ne!(third.session_id(), "no-such");
    assert!(
        third
            .started()
            .note
            .as_deref()
            .unwrap()
            .contains("started a new ACP session")
    );
    third.shutdown().await;
}

#[tokio::test]
async fn mcp_servers_and_env_reach_the_agent() {
    let Some(command) = sdk_agent(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(command, AcpPermissions::ApproveReads);
    s.env.insert("OC_ACP_TEST".into(), "from-config".into());
    let mut setup = setup(dir.path());
    setup
        .env
        .insert("OC_ACP_TEST".into(), "from-session".into());
    setup.mcp_servers = vec![McpServer::Stdio(
        McpServerStdio::new("openclaw", "/opt/openclaw/bin/openclaw")
            .args(vec!["mcp".into()])
            .env(vec![EnvVariable::new("OPENCLAW_RUN_TOKEN", "tok")]),
    )];
    let client = AcpClient::start(&s, setup, Recorder::new()).await.unwrap();
    let (r, _) = ask(&client, "mcp").await;
    let given: Value = serde_json::from_str(&r.reply).unwrap();
    assert_eq!(
        given,
        json!([{"name":"openclaw","command":"/opt/openclaw/bin/openclaw","args":["mcp"],
                "env":[{"name":"OPENCLAW_RUN_TOKEN","value":"tok"}]}])
    );
    let (r, _) = ask(&client, "env OC_ACP_TEST").await;
    assert_eq!(r.reply, "OC_ACP_TEST=from-session");
    client.shutdown().await;
}

#[tokio::test]
async fn stop_reasons_from_the_agent() {
    let Some((client, _dir, _)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    let (r, _) = ask(&client, "stop max_tokens").await;
    assert_eq!(r.outcome, TurnOutcome::Ok);
    assert!(r.note.as_deref().unwrap().contains("max_tokens"));
    assert_eq!(r.reply, "stopping with max_tokens");
    let (r, _) = ask(&client, "stop max_turn_requests").await;
    assert_eq!(r.outcome, TurnOutcome::Ok);
    assert!(r.note.is_some());
    let (r, _) = ask(&client, "stop refusal").await;
    assert!(
        matches!(r.outcome, TurnOutcome::Error(ref m) if m.contains("refused")),
        "{r:?}"
    );
    let (r, _) = ask(&client, "stop end_turn").await;
    assert_eq!((r.outcome, r.note), (TurnOutcome::Ok, None));
    client.shutdown().await;
}

#[tokio::test]
async fn extension_and_terminal_requests_get_method_not_found() {
    let Some((client, _dir, _)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    let (r, _) = ask(&client, "ext").await;
    assert!(r.reply.starts_with("ext: -32601"), "{}", r.reply);
    assert!(r.reply.contains("terminal: -32601"), "{}", r.reply);
    assert!(client.is_alive());
    client.shutdown().await;
}

#[tokio::test]
async fn updates_after_the_prompt_result_still_reach_the_host() {
    let Some((client, _dir, _)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    let (r, host) = ask(&client, "late").await;
    assert_eq!(r.reply, "early");
    host.wait_for("the late chunk", |e| e.len() >= 2).await;
    assert_eq!(host.deltas(), ["early", " late"]);
    client.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_dies_mid_prompt_is_an_error_naming_it() {
    let Some((client, _dir, _)) = start_sdk(AcpPermissions::ApproveReads).await else {
        return;
    };
    let err = client
        .prompt("die", Recorder::new(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.failure,
        AcpFailure::Exited {
            how: "exited with status 7".into(),
            during: "session/prompt".into()
        }
    );
    let text = err.to_string();
    assert!(text.contains("agent.mjs"), "{text}");
    assert!(text.contains("dying on purpose"), "{text}");
    assert!(!client.is_alive());
}
