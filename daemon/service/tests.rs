//! The service's policies, in-process: a real store on disk and a real engine, no socket,
//! each caller kind in turn.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::Config;
use crate::daemon::events::EventBus;
use crate::daemon::store::Store;
use crate::protocol::{
    DeleteParams, GetParams, HistoryParams, ListParams, PatchParams, SendParams, SpawnParams,
    SubscribeParams,
};

/// A `hold` agent keeps its run going (so a run caller stays alive), `echo` answers at once.
const CONFIG: &str = r#"
[agents.hold]
backend = "exec"
command = ["sleep", "60"]
[agents.echo]
backend = "echo"
[limits]
kill_grace_ms = 100
[[session.send_policy.rules]]
name = "no echo"
action = "deny"
agent_id = "echo"
"#;

struct Harness {
    _dir: tempfile::TempDir,
    service: Arc<SessionService>,
}

impl Harness {
    fn start(config: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = Config::parse(config, Path::new("config.toml")).unwrap();
        let bus = EventBus::default();
        let (store, _) = Store::open(&data, bus.clone(), Default::default).unwrap();
        let socket = dir.path().join("openclaw.sock");
        let engine = Engine::new(store, bus, Arc::new(config), data.clone(), socket.clone());
        let paths = Paths {
            config_file: dir.path().join("config.toml"),
            data_dir: data,
            socket,
            socket_named: false,
        };
        let daemon = Arc::new(DaemonInfo::new(paths, 0, CancellationToken::new()));
        let service = SessionService::new(engine, daemon);
        Harness { _dir: dir, service }
    }

    async fn spawn(&self, caller: &Caller, agent: &str, parent: Option<&str>) -> SpawnResult {
        self.service
            .spawn(
                caller,
                SpawnParams {
                    task: format!("task for {agent}"),
                    agent_id: Some(agent.into()),
                    parent_key: parent.map(str::to_string),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    /// A session on `hold` and the caller its running run stands for.
    async fn running(&self, caller: &Caller, parent: Option<&str>) -> (SpawnResult, Caller) {
        let spawned = self.spawn(caller, "hold", parent).await;
        // An idle session on a free lane starts its run before the spawn answers.
        let acting = self
            .service
            .engine()
            .acting(&spawned.run_id)
            .expect("the run is executing");
        (spawned, Caller::Run(acting))
    }

    async fn stop(self) {
        self.service.engine().shutdown().await;
    }
}

use crate::protocol::SpawnResult;

fn keys(list: &crate::protocol::ListResult) -> Vec<String> {
    let mut k: Vec<String> = list.sessions.iter().map(|s| s.key.clone()).collect();
    k.sort();
    k
}

#[tokio::test]
async fn a_run_sees_its_tree_and_nothing_else_the_operator_sees_all() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    let (a, run_a) = h.running(&op, None).await;
    let child = h.spawn(&run_a, "echo", None).await;
    let other = h.spawn(&op, "echo", None).await;

    let got = h
        .service
        .get(
            &run_a,
            GetParams {
                session_key: child.session_key.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        got.session.parent_key.as_deref(),
        Some(a.session_key.as_str())
    );
    assert_eq!(got.session.spawn_depth, 1);

    let seen = h.service.list(&run_a, ListParams::default()).await.unwrap();
    let mut expected = vec![a.session_key.clone(), child.session_key.clone()];
    expected.sort();
    assert_eq!(keys(&seen), expected);
    let all = h.service.list(&op, ListParams::default()).await.unwrap();
    assert_eq!(all.sessions.len(), 3);

    // Outside its tree: the same answer as for a session that does not exist.
    let hidden = h
        .service
        .history(
            &run_a,
            HistoryParams {
                session_key: other.session_key.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    let missing = h
        .service
        .history(
            &run_a,
            HistoryParams {
                session_key: "agent:echo:nosuch".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(hidden, ServiceError::NotFound(_)), "{hidden}");
    assert_eq!(
        hidden.to_string().replace(&other.session_key, "K"),
        missing.to_string().replace("agent:echo:nosuch", "K")
    );
    // Nor may it subscribe to everything.
    let err = h
        .service
        .subscribe(&run_a, SubscribeParams::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err}");
    h.stop().await;
}

#[tokio::test]
async fn a_run_may_not_nest_past_the_depth_limit_or_adopt_into_another_tree() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    let (a, run_a) = h.running(&op, None).await;
    let (_, run_child) = h.running(&run_a, None).await;
    let err = h
        .service
        .spawn(
            &run_child,
            SpawnParams {
                task: "deeper".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("subagents.max_depth is 1"),
        "{err}"
    );

    let other = h.spawn(&op, "echo", None).await;
    let err = h
        .service
        .spawn(
            &run_a,
            SpawnParams {
                task: "adopt".into(),
                parent_key: Some(other.session_key.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::NotFound(_)),
        "not visible, so not found: {err}"
    );
    // The operator may name any parent.
    let adopted = h.spawn(&op, "echo", Some(&a.session_key)).await;
    assert!(adopted.session_key.starts_with("agent:echo:subagent:"));
    h.stop().await;
}

#[tokio::test]
async fn send_policy_binds_runs_and_only_the_operator_may_lift_it() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    let (_, run_a) = h.running(&op, None).await;
    let child = h.spawn(&run_a, "echo", None).await;
    let send = |key: &str| SendParams {
        session_key: key.into(),
        message: "hello".into(),
        timeout_seconds: Some(0.0),
        ..Default::default()
    };
    let err = h
        .service
        .send(&run_a, send(&child.session_key))
        .await
        .err()
        .expect("denied");
    assert!(
        err.to_string().contains("send policy rule \"no echo\""),
        "{err}"
    );
    let lift = PatchParams {
        session_key: child.session_key.clone(),
        send_policy: Some("allow".into()),
        ..Default::default()
    };
    let err = h.service.patch(&run_a, lift.clone()).await.unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err}");
    assert!(
        h.service
            .send(&run_a, send(&child.session_key))
            .await
            .is_err()
    );
    h.service.patch(&op, lift).await.unwrap();
    assert!(
        h.service
            .send(&run_a, send(&child.session_key))
            .await
            .is_ok()
    );
    // The operator's own sends never were subject to it.
    assert!(h.service.send(&op, send(&child.session_key)).await.is_ok());
    // And a run holds no admin scope.
    let err = h.service.pairing_list(&run_a).await.unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::Forbidden {
                scope: Some("admin"),
                ..
            }
        ),
        "{err}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_device_acts_within_its_scopes_and_sees_only_what_it_created() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    h.spawn(&op, "echo", None).await;
    let reader = Caller::Device(DeviceAuth {
        fingerprint: "fp-reader".into(),
        scopes: vec!["sessions.read".into()],
    });
    let err = h
        .service
        .spawn(
            &reader,
            SpawnParams {
                task: "t".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::Forbidden {
                scope: Some("sessions.write"),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        h.service
            .list(&reader, ListParams::default())
            .await
            .unwrap()
            .sessions
            .is_empty()
    );

    let writer = Caller::Device(DeviceAuth {
        fingerprint: "fp-writer".into(),
        scopes: vec!["sessions.read".into(), "sessions.write".into()],
    });
    let mine = h.spawn(&writer, "echo", None).await;
    let seen = h
        .service
        .list(&writer, ListParams::default())
        .await
        .unwrap();
    assert_eq!(keys(&seen), vec![mine.session_key.clone()]);
    // It never creates the operator's main session by sending to it.
    let err = h
        .service
        .send(
            &writer,
            SendParams {
                session_key: "main".into(),
                message: "m".into(),
                ..Default::default()
            },
        )
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err}");
    h.stop().await;
}

#[tokio::test]
async fn a_stranger_is_asked_to_pair_for_everything() {
    let h = Harness::start(CONFIG);
    let stranger = Caller::Stranger { uid: Some(4242) };
    let err = h
        .service
        .list(&stranger, ListParams::default())
        .await
        .unwrap_err();
    match err {
        ServiceError::PairingRequired {
            message,
            request: None,
        } => {
            assert!(message.contains("uid 4242"), "{message}")
        }
        other => panic!("expected pairing_required, got {other}"),
    }
    assert!(h.service.status(&stranger).is_err());
    h.stop().await;
}

#[tokio::test]
async fn an_ended_runs_caller_can_no_longer_act() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    let (a, run_a) = h.running(&op, None).await;
    h.service
        .kill(
            &op,
            crate::protocol::KillParams {
                session_key: a.session_key.clone(),
                clear_queued: None,
            },
        )
        .await
        .unwrap();
    let err = h
        .service
        .list(&run_a, ListParams::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("has ended, and its token with it"),
        "{err}"
    );
    h.stop().await;
}

#[tokio::test]
async fn delete_refuses_in_its_own_transaction_while_a_send_is_queued() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    let (a, _) = h.running(&op, None).await;
    let queued = match h
        .service
        .send(
            &op,
            SendParams {
                session_key: a.session_key.clone(),
                message: "queued behind the first run".into(),
                timeout_seconds: Some(0.0),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    {
        SendOutcome::Done(r) => r,
        SendOutcome::Streaming(_) => panic!("no streaming asked for"),
    };
    // The service refuses first...
    let err = h
        .service
        .delete(
            &op,
            DeleteParams {
                session_key: a.session_key.clone(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err}");
    // ...and the transaction that would delete refuses too, whatever the engine believed.
    let session = h.service.session(&op, &a.session_key).await.unwrap();
    let err = h
        .service
        .engine()
        .delete_session(&session)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("has a run active or queued"),
        "{err}"
    );
    let history = h
        .service
        .history(
            &op,
            HistoryParams {
                session_key: a.session_key.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        history
            .messages
            .iter()
            .any(|m| m.run_id.as_deref() == Some(queued.run_id.as_str())),
        "the acknowledged send is still stored"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_spawn_and_refuses_other_params() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    let params = SpawnParams {
        task: "once".into(),
        agent_id: Some("echo".into()),
        idempotency_key: Some("nightly-1".into()),
        ..Default::default()
    };
    let first = h.service.spawn(&op, params.clone()).await.unwrap();
    let again = h.service.spawn(&op, params.clone()).await.unwrap();
    assert_eq!(
        (first.run_id.as_str(), first.session_key.as_str()),
        (again.run_id.as_str(), again.session_key.as_str())
    );
    let other = SpawnParams {
        task: "something else".into(),
        ..params
    };
    let err = h.service.spawn(&op, other).await.unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("\"nightly-1\""), "{err}");
    // Another caller's same key is its own.
    let device = Caller::Device(DeviceAuth {
        fingerprint: "fp".into(),
        scopes: vec!["sessions.read".into(), "sessions.write".into()],
    });
    let theirs = h
        .service
        .spawn(
            &device,
            SpawnParams {
                task: "once".into(),
                agent_id: Some("echo".into()),
                idempotency_key: Some("nightly-1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(theirs.run_id, first.run_id);
    h.stop().await;
}

#[tokio::test]
async fn short_names_resolve_when_unique_and_say_so_when_ambiguous() {
    let h = Harness::start(CONFIG);
    let op = Caller::Operator;
    let a = h.spawn(&op, "echo", None).await;
    let uuid = a.session_key.rsplit(':').next().unwrap().to_string();
    let by_prefix = h.service.session(&op, &uuid[..8]).await.unwrap();
    assert_eq!(by_prefix.key, a.session_key);
    let by_id = h.service.session(&op, &a.session_id[..6]).await.unwrap();
    assert_eq!(by_id.key, a.session_key);
    assert!(
        h.service.session(&op, &uuid[..5]).await.is_err(),
        "5 characters are too few"
    );
    for _ in 0..2 {
        h.service
            .spawn(
                &op,
                SpawnParams {
                    task: "t".into(),
                    agent_id: Some("echo".into()),
                    label: Some("nightly".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let err = h.service.session(&op, "nightly").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ambiguous: \"nightly\" names 2 sessions"),
        "{err}"
    );
    h.stop().await;
}

#[tokio::test]
async fn tools_list_gives_a_run_its_agents_tools_and_others_every_agent() {
    use crate::tools::{AgentRuntime, session_tools};
    let h = Harness::start(CONFIG);
    let agents = |r: &crate::protocol::ToolsListResult| -> Vec<String> {
        r.scope
            .allowed_agents
            .iter()
            .map(|a| a.id.clone())
            .collect()
    };
    let names = |r: &crate::protocol::ToolsListResult| -> Vec<String> {
        r.tools
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect()
    };

    let op = h.service.tool_list(&Caller::Operator).unwrap();
    assert_eq!(agents(&op), ["main", "echo", "hold"], "the default first");
    assert!(names(&op).contains(&"sessions_spawn".to_string()));

    // A run: what the openai backend would offer it, in MCP's form (never strict).
    let (_, run) = h.running(&Caller::Operator, None).await;
    let listed = h.service.tool_list(&run).unwrap();
    assert_eq!(agents(&listed), ["hold"]);
    let depth = run.acting().unwrap().spawn_depth;
    let mut scope = super::tools::tool_scope(&h.service.engine().config(), "hold", depth);
    scope.strict = false;
    let expected: Vec<serde_json::Value> =
        session_tools(&scope).iter().map(|t| t.mcp_tool()).collect();
    assert_eq!(listed.tools, expected);
    assert_eq!(listed.scope.to_scope(), scope);
    assert_eq!(
        scope.allowed_agents,
        [("hold".into(), AgentRuntime::Native)]
    );

    // A device that may only read lists no spawn tool.
    let reader = Caller::Device(DeviceAuth {
        fingerprint: "fp-reader".into(),
        scopes: vec!["sessions.read".into()],
    });
    let read_only = h.service.tool_list(&reader).unwrap();
    assert!(!names(&read_only).contains(&"sessions_spawn".to_string()));
    assert!(names(&read_only).contains(&"sessions_history".to_string()));
    let stranger = Caller::Stranger { uid: Some(1234) };
    assert!(h.service.tool_list(&stranger).is_err());
    h.stop().await;
}

/// Caps small enough to reach: two per holder, six in all (two kept for the owner).
const CAPPED: &str = r#"
[agents.hold]
backend = "exec"
command = ["sleep", "60"]
[limits]
kill_grace_ms = 100
max_subscriptions_per_uid = 2
max_subscriptions = 6
"#;

fn admin_device(fingerprint: &str) -> Caller {
    Caller::Device(DeviceAuth {
        fingerprint: fingerprint.into(),
        scopes: vec!["sessions.read".into(), "admin".into()],
    })
}

fn busy_saying(r: Result<Subscription>, words: &str) {
    match r {
        Err(ServiceError::Busy { message, .. }) => {
            assert!(message.contains(words), "{message}")
        }
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("admitted past the cap ({words})"),
    }
}

#[tokio::test]
async fn subscriptions_are_capped_per_holder_and_in_total_with_the_owners_reserve() {
    let h = Harness::start(CAPPED);
    let all = SubscribeParams::default;
    let (a, b, c) = (admin_device("a"), admin_device("b"), admin_device("c"));
    let mut held_a = Vec::new();
    for _ in 0..2 {
        held_a.push(h.service.subscribe(&a, all()).await.unwrap());
    }
    busy_saying(
        h.service.subscribe(&a, all()).await,
        "max_subscriptions_per_uid",
    );
    let _held_b = [
        h.service.subscribe(&b, all()).await.unwrap(),
        h.service.subscribe(&b, all()).await.unwrap(),
    ];
    // Four held by others: the last two of six are the owner's.
    busy_saying(h.service.subscribe(&c, all()).await, "kept for its owner");
    let op = Caller::Operator;
    let (spawned, run) = h.running(&op, None).await;
    let _held_op = [
        h.service.subscribe(&op, all()).await.unwrap(),
        h.service.subscribe(&op, all()).await.unwrap(),
    ];
    // The owner's run counts as the owner.
    let own = SubscribeParams {
        session_key: Some(spawned.session_key.clone()),
        ..Default::default()
    };
    busy_saying(
        h.service.subscribe(&run, own).await,
        "max_subscriptions_per_uid",
    );
    // A stream that ends gives its slot back.
    drop(held_a.pop());
    let _held_c = h.service.subscribe(&c, all()).await.unwrap();
    busy_saying(
        h.service.subscribe(&c, all()).await,
        "limit ([limits] max_subscriptions)",
    );
    h.stop().await;
}

#[tokio::test]
async fn a_live_message_over_the_reply_budget_is_delivered_truncated_with_its_size() {
    let h = Harness::start("[agents.echo]\nbackend = \"echo\"\n[limits]\nmax_reply_bytes = 1024\n");
    let op = Caller::Operator;
    let spawned = h.spawn(&op, "echo", None).await;
    let key = spawned.session_key.clone();
    let mut sub = h
        .service
        .subscribe(
            &op,
            SubscribeParams {
                session_key: Some(key.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let big = "é".repeat(3000); // 6000 bytes: the cut must fall on a character boundary
    h.service
        .send(
            &op,
            SendParams {
                session_key: key.clone(),
                message: big.clone(),
                timeout_seconds: Some(0.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let live = loop {
        let item = tokio::time::timeout(Duration::from_secs(20), sub.stream.next())
            .await
            .expect("a message within 20 s")
            .expect("the stream goes on");
        if let StreamItem::Message { message, .. } = item
            && message.content.as_str().is_some_and(|t| big.starts_with(t))
        {
            break message;
        }
    };
    assert_eq!(live.truncated, Some(true));
    assert_eq!(
        live.bytes,
        Some(6002),
        "the stored size, as history gives it"
    );
    let text = live.content.as_str().unwrap();
    assert!(text.len() <= 1024 && text.len() >= 1022, "{}", text.len());
    let whole = h
        .service
        .message(
            &op,
            crate::protocol::MessageParams {
                session_key: key,
                seq: live.seq,
                offset: None,
                length: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(whole.total_bytes, 6000, "sessions.message reads it whole");
    h.stop().await;
}
