//! Handlers of the `sessions.*` methods.

use std::time::Duration;

use crate::protocol::{
    DEFAULT_WAIT_SECONDS, DeleteParams, DeleteResult, ErrorKind, HistoryParams, HistoryResult,
    KillParams, ListParams, ListResult, PatchParams, ProvenanceKind, Role, RpcError, RunResult,
    RunStatus, Runtime, SendParams, SpawnParams, SpawnResult, WaitStatus, methods,
};
use crate::timefmt::now_ms;
use serde_json::{Value, json};

use super::{Ctx, no_session, to_value, wait_duration};
use crate::daemon::engine::Acting;
use crate::daemon::engine::{
    SubmitRequest, SubmitTarget, Submitted, internal, kind_of, normalize, subagent_key,
};
use crate::daemon::events::Event;
use crate::daemon::store::SessionRecord;
use crate::daemon::store::{ListFilter, NewMessage, NewSession};
use crate::daemon::subscription::RunNote;
use crate::config::PolicyAction;
use crate::protocol::notifications;
use tokio::sync::broadcast::error::RecvError;

const DEFAULT_HISTORY_LIMIT: u32 = 50;
const MAX_PAGE: u32 = 1000;
const MAX_LIST_MESSAGES: u32 = 100;
/// What `kinds` may name (see `engine::kind_of`).
const SESSION_KINDS: [&str; 5] = ["main", "subagent", "cron", "hook", "other"];

/// `sessions.spawn`: a new session and its first run. Answers once both are durable; never
/// waits for the run.
pub async fn spawn(ctx: &Ctx, p: SpawnParams) -> Result<Value, RpcError> {
    let engine = &ctx.engine;
    if p.task.trim().is_empty() {
        return Err(RpcError::invalid_params("task must not be empty"));
    }
    if p.runtime == Some(Runtime::Acp) {
        return Err(RpcError::invalid_params(
            "runtime \"acp\" is not available in this openclawd yet; omit runtime to use the agent's own backend",
        ));
    }
    // ACP-only fields must never break a spawn for another runtime: drop and report them.
    let mut ignored = Vec::new();
    if p.stream_to.is_some() {
        ignored.push("streamTo".to_string());
    }
    if p.resume_session_id.is_some() {
        ignored.push("resumeSessionId".to_string());
    }
    let agent_id = p
        .agent_id
        .clone()
        .unwrap_or_else(|| engine.default_agent().to_string());
    if !engine.has_agent(&agent_id) {
        return Err(RpcError::not_found(format!(
            "agent \"{agent_id}\" is not configured; `openclaw agents list` shows the agents there are"
        )));
    }
    let run_timeout = match p.run_timeout_seconds {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s.min(7.0 * 86_400.0))),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "runTimeoutSeconds must be a number of seconds above 0",
            ));
        }
    };
    // From inside a run the parent is the run's own session (or, named explicitly, one it
    // can see); an operator may name any parent.
    let parent = match (&p.parent_key, ctx.acting()) {
        (Some(k), Some(me)) => {
            // Only itself or its own descendants: never adopt into another tree, which
            // would also step around the depth limit.
            let parent = ctx.session(k).await?;
            let own = engine
                .store
                .in_tree(me.session_key.clone(), parent.key.clone())
                .await
                .map_err(internal)?;
            if !own {
                return Err(RpcError::app(
                    ErrorKind::Forbidden,
                    format!(
                        "a run of {} may spawn only under its own session or the sessions it spawned, not under {}",
                        me.session_key, parent.key
                    ),
                ));
            }
            Some(parent)
        }
        (Some(k), None) => Some(ctx.session(k).await?),
        (None, Some(me)) => Some(ctx.session(&me.session_key).await?),
        (None, None) => None,
    };
    let (parent_key, spawn_depth) = match parent {
        Some(parent) => (Some(parent.key), parent.spawn_depth + 1),
        None => (None, 0),
    };
    let max_depth = engine.config.subagents.max_depth as i64;
    if spawn_depth > max_depth {
        return Err(RpcError::app(
            ErrorKind::Forbidden,
            format!(
                "this spawn would nest sub-agents {spawn_depth} deep, and subagents.max_depth is {max_depth}; set max_depth = {spawn_depth} under [subagents] in config.toml to allow it"
            ),
        ));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let session = NewSession {
        id: uuid::Uuid::new_v4().to_string(),
        key: subagent_key(&agent_id, &uuid),
        agent_id,
        kind: "subagent".into(),
        label: p.label.clone().filter(|l| !l.is_empty()),
        parent_key,
        model: p.model.clone(),
        cleanup: if p.cleanup == Some(crate::protocol::Cleanup::Delete) {
            "delete"
        } else {
            "keep"
        }
        .into(),
        spawn_depth,
        owner: ctx.device().map(|d| d.fingerprint),
    };
    let workspace = engine.workspace(&session.id);
    let content = if p.attachments.is_empty() {
        Value::String(p.task.clone())
    } else {
        write_attachments(&workspace, &p.attachments).await?;
        let mut blocks = vec![json!({ "type": "text", "text": p.task })];
        for a in &p.attachments {
            blocks.push(json!({ "type": "attachment", "name": a.name }));
        }
        Value::Array(blocks)
    };
    let delete_after = session.cleanup == "delete";
    let request = SubmitRequest {
        target: SubmitTarget::New(Box::new(session)),
        message: NewMessage {
            ts: now_ms(),
            role: Role::User,
            content,
            run_id: None,
            provenance: ProvenanceKind::SpawnTask,
            from: None,
            usage: None,
        },
        run_timeout,
        delete_after,
        idempotency_key: ctx.idempotency_key(p.idempotency_key.clone()),
        method: methods::SESSIONS_SPAWN,
        make_result: Box::new(move |run_id, key, id| {
            serde_json::to_value(SpawnResult {
                status: "accepted".into(),
                session_key: key.to_string(),
                session_id: id.to_string(),
                run_id: run_id.to_string(),
                ignored_fields: ignored,
            })
            .unwrap_or(Value::Null)
        }),
    };
    match engine.submit(request).await {
        Ok(Submitted::New(result)) => Ok(result),
        Ok(Submitted::Existing(first)) => {
            let _ = tokio::fs::remove_dir_all(&workspace).await;
            Ok(first)
        }
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&workspace).await;
            Err(e)
        }
    }
}

async fn write_attachments(
    workspace: &std::path::Path,
    attachments: &[crate::protocol::Attachment],
) -> Result<(), RpcError> {
    tokio::fs::create_dir_all(workspace)
        .await
        .map_err(|e| RpcError::internal(format!("cannot create the session workspace: {e}")))?;
    for a in attachments {
        let name = &a.name;
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || name == ".."
            || name.contains('\0')
        {
            return Err(RpcError::invalid_params(format!(
                "attachment name \"{name}\" must be a plain file name (no '/', not '.' or '..')"
            )));
        }
        let bytes = match a.encoding.as_deref() {
            None | Some("utf8") => a.content.clone().into_bytes(),
            Some("base64") => decode_base64(&a.content).ok_or_else(|| {
                RpcError::invalid_params(format!("attachment \"{name}\" is not valid base64"))
            })?,
            Some(other) => {
                return Err(RpcError::invalid_params(format!(
                    "attachment encoding \"{other}\" is unknown; use \"utf8\" or \"base64\""
                )));
            }
        };
        tokio::fs::write(workspace.join(name), bytes)
            .await
            .map_err(|e| RpcError::internal(format!("cannot write attachment \"{name}\": {e}")))?;
    }
    Ok(())
}

/// Standard base64 (with or without padding).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `sessions.send`: a message into a session; waits for the reply up to `timeoutSeconds`
/// (on the run's end event), or returns at once with 0. The main session of an agent is
/// created on first use.
pub async fn send(ctx: &Ctx, p: SendParams) -> Result<Value, RpcError> {
    let engine = &ctx.engine;
    let wait = wait_duration(p.timeout_seconds, DEFAULT_WAIT_SECONDS)?;
    // Listening before the run exists, so none of its events can be missed.
    let progress =
        (p.stream_progress == Some(true) && !wait.is_zero()).then(|| engine.bus.subscribe());
    let acting = ctx.acting();
    let found = match engine.find_session(&p.session_key).await? {
        Some(s) if !ctx.can_see(&s).await? => return Err(no_session(&p.session_key)),
        other => other,
    };
    if let (Some(me), Some(target)) = (&acting, &found) {
        check_send_policy(ctx, me, target)?;
    }
    let target = match found {
        Some(s) => SubmitTarget::Existing(Box::new(s)),
        // A run's child, or a device without admin, may only reach sessions that exist and
        // that it can see: it never creates an agent's main session (the operator's).
        None if acting.is_some() || ctx.owner_filter().is_some() => {
            return Err(no_session(&p.session_key));
        }
        None => {
            let key = normalize(&p.session_key, engine.default_agent());
            let agent = crate::daemon::engine::agent_of_main(&key).filter(|a| engine.has_agent(a));
            match agent {
                Some(agent_id) => SubmitTarget::New(Box::new(NewSession {
                    id: uuid::Uuid::new_v4().to_string(),
                    kind: kind_of(&key).to_string(),
                    agent_id: agent_id.to_string(),
                    key,
                    label: None,
                    parent_key: None,
                    model: None,
                    cleanup: "keep".into(),
                    spawn_depth: 0,
                    owner: ctx.device().map(|d| d.fingerprint),
                })),
                None => return Err(no_session(&p.session_key)),
            }
        }
    };
    let request = SubmitRequest {
        target,
        message: NewMessage {
            ts: now_ms(),
            role: Role::User,
            content: Value::String(p.message),
            run_id: None,
            provenance: if acting.is_some() {
                ProvenanceKind::InterSession
            } else {
                ProvenanceKind::Operator
            },
            from: acting.as_ref().map(|a| a.session_key.clone()),
            usage: None,
        },
        run_timeout: None,
        delete_after: false,
        idempotency_key: ctx.idempotency_key(p.idempotency_key),
        method: methods::SESSIONS_SEND,
        make_result: Box::new(|run_id, key, _| json!({ "runId": run_id, "sessionKey": key })),
    };
    let result = match engine.submit(request).await? {
        Submitted::New(result) | Submitted::Existing(result) => result,
    };
    let run_id = result
        .get("runId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let session_key = result
        .get("sessionKey")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if wait.is_zero() {
        return to_value(&RunResult {
            run_id,
            session_key,
            status: WaitStatus::Accepted,
            run_status: RunStatus::Queued,
            reply: None,
            error: None,
        });
    }
    match progress {
        None => to_value(&engine.wait(&run_id, wait).await?),
        Some(rx) => to_value(&stream_run(ctx, &run_id, wait, rx).await?),
    }
}

/// Pushes a run's events on this connection until it ends (or the wait does), then answers.
async fn stream_run(
    ctx: &Ctx,
    run_id: &str,
    wait: std::time::Duration,
    mut rx: tokio::sync::broadcast::Receiver<Event>,
) -> Result<RunResult, RpcError> {
    let subscription = format!("run:{run_id}");
    let result = ctx.engine.wait(run_id, wait);
    tokio::pin!(result);
    loop {
        tokio::select! {
            biased;
            event = rx.recv() => match event {
                Ok(e) => push_run_event(ctx, &subscription, run_id, &e).await,
                Err(RecvError::Lagged(skipped)) => {
                    let note = json!({ "subscription": subscription, "skipped": skipped });
                    ctx.conn.out.notify(notifications::SUBSCRIPTION_LAGGED, &note).await;
                }
                Err(RecvError::Closed) => return result.await,
            },
            r = &mut result => {
                // The run's last events were published before its waiters woke: send them
                // before the result. On a wait timeout the stream stops here; the run goes on.
                while let Ok(e) = rx.try_recv() {
                    push_run_event(ctx, &subscription, run_id, &e).await;
                }
                return r;
            }
        }
    }
}

async fn push_run_event(ctx: &Ctx, subscription: &str, run_id: &str, event: &Event) {
    if let Event::Run {
        session_key,
        run_id: id,
        stream,
        seq,
        data,
        ..
    } = event
        && &**id == run_id
    {
        let note = RunNote {
            subscription,
            session_key,
            run_id,
            stream,
            seq: *seq,
            data,
        };
        ctx.conn.out.notify(notifications::RUN_EVENT, &note).await;
    }
}

/// Sends between sessions follow the target's own override, else the configured rules.
fn check_send_policy(ctx: &Ctx, me: &Acting, target: &SessionRecord) -> Result<(), RpcError> {
    let (action, why) = match target.send_policy.as_deref() {
        Some("allow") => (PolicyAction::Allow, String::new()),
        Some("deny") => (
            PolicyAction::Deny,
            "the session's own sendPolicy override (deny)".to_string(),
        ),
        _ => ctx.engine.config.session.send_policy.decide(
            &target.key,
            &target.kind,
            &target.agent_id,
        ),
    };
    if action == PolicyAction::Deny {
        return Err(RpcError::app(
            ErrorKind::Forbidden,
            format!(
                "session {} may not send to {}: denied by {why}; the operator can allow it with `openclaw sessions patch {} --send-policy allow`",
                me.session_key, target.key, target.key
            ),
        ));
    }
    Ok(())
}

/// `sessions.history`: the newest messages, oldest first, with a cursor to older pages.
pub async fn history(ctx: &Ctx, p: HistoryParams) -> Result<Value, RpcError> {
    let session = ctx.session(&p.session_key).await?;
    let limit = p.limit.unwrap_or(DEFAULT_HISTORY_LIMIT).clamp(1, MAX_PAGE);
    let before = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            RpcError::invalid_params(format!(
                "cursor \"{c}\" is not one this daemon gave out (expected a nextCursor value)"
            ))
        })?),
    };
    let page = ctx
        .engine
        .store
        .history(session.sid, limit, before, p.include_tools.unwrap_or(false))
        .await
        .map_err(internal)?;
    let next_cursor = if page.has_more {
        page.messages.first().map(|m| m.seq.to_string())
    } else {
        None
    };
    to_value(&HistoryResult {
        session_key: session.key,
        session_id: session.id,
        messages: page.messages,
        next_cursor,
        has_more: page.has_more,
    })
}

/// `sessions.list`: most recently updated first, paged by cursor.
pub async fn list(ctx: &Ctx, p: ListParams) -> Result<Value, RpcError> {
    let after = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(parse_list_cursor(c).ok_or_else(|| {
            RpcError::invalid_params(format!(
                "cursor \"{c}\" is not one this daemon gave out (expected a nextCursor value)"
            ))
        })?),
    };
    let parent_key = p
        .parent_key
        .map(|k| normalize(&k, ctx.engine.default_agent()));
    let mut kinds = p.kinds.unwrap_or_default();
    if let Some(bad) = kinds.iter().find(|k| !SESSION_KINDS.contains(&k.as_str())) {
        return Err(RpcError::invalid_params(format!(
            "kinds: \"{}\" is not a session kind; kinds are {}",
            bad.chars().take(64).collect::<String>(),
            SESSION_KINDS.join(", ")
        )));
    }
    kinds.sort();
    kinds.dedup();
    let filter = ListFilter {
        kinds,
        limit: p.limit.unwrap_or(DEFAULT_HISTORY_LIMIT).clamp(1, MAX_PAGE),
        after,
        active_minutes: p.active_minutes,
        parent_key,
        include_archived: p.include_archived.unwrap_or(false),
        message_limit: p.message_limit.unwrap_or(0).min(MAX_LIST_MESSAGES),
        scope: ctx.scope(),
    };
    let page = ctx.engine.store.list(filter).await.map_err(internal)?;
    let sessions = page
        .sessions
        .into_iter()
        .map(|(rec, messages)| {
            let mut row = rec.to_row();
            row.messages = messages;
            row
        })
        .collect();
    to_value(&ListResult {
        sessions,
        next_cursor: page.next.map(|(updated, sid)| format!("{updated}.{sid}")),
    })
}

fn parse_list_cursor(c: &str) -> Option<(i64, i64)> {
    let (updated, sid) = c.split_once('.')?;
    Some((updated.parse().ok()?, sid.parse().ok()?))
}

/// `sessions.kill`: aborts the active run (and queued ones with `clearQueued`).
pub async fn kill(ctx: &Ctx, p: KillParams) -> Result<Value, RpcError> {
    let session = ctx.session(&p.session_key).await?;
    to_value(
        &ctx.engine
            .kill(&session, p.clear_queued.unwrap_or(false))
            .await?,
    )
}

/// `sessions.patch`: label, send policy, archived.
pub async fn patch(ctx: &Ctx, p: PatchParams) -> Result<Value, RpcError> {
    let session = ctx.session(&p.session_key).await?;
    let send_policy = match p.send_policy.as_deref() {
        None => None,
        Some("allow") | Some("deny") => p.send_policy.clone().map(Some),
        Some("inherit") => Some(None),
        Some(other) => {
            return Err(RpcError::invalid_params(format!(
                "sendPolicy \"{other}\" is unknown; use allow, deny or inherit"
            )));
        }
    };
    let label = p.label.map(|l| if l.is_empty() { None } else { Some(l) });
    ctx.engine
        .store
        .patch_session(session.sid, label, p.archived, send_policy)
        .await
        .map_err(internal)?;
    let updated = ctx.session(&session.id).await?;
    to_value(&json!({ "session": updated.to_row() }))
}

/// `sessions.delete`: removes a session, its transcript and workspace. A session with a run
/// active or queued is refused, so no run loses its record.
pub async fn delete(ctx: &Ctx, p: DeleteParams) -> Result<Value, RpcError> {
    let session = ctx.session(&p.session_key).await?;
    if ctx.engine.is_busy(&session) {
        return Err(RpcError::app(
            ErrorKind::Conflict,
            format!(
                "session {} has a run active or queued; stop it first with `openclaw sessions kill {} --clear-queued`",
                session.key, session.key
            ),
        ));
    }
    ctx.engine
        .store
        .delete_session(session.sid)
        .await
        .map_err(internal)?;
    let _ = tokio::fs::remove_dir_all(ctx.engine.workspace(&session.id)).await;
    to_value(&DeleteResult {
        session_key: session.key,
        session_id: session.id,
        deleted: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("AAEC/w==").unwrap(), vec![0, 1, 2, 255]);
        assert!(decode_base64("a*b").is_none());
    }

    #[test]
    fn list_cursor_round_trips() {
        assert_eq!(parse_list_cursor("1700.42"), Some((1700, 42)));
        assert_eq!(parse_list_cursor("x.1"), None);
        assert_eq!(parse_list_cursor("17"), None);
    }
}
