//! `spawn`: a new session and its first run. Answers once both are durable; never waits for
//! the run.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Caller, Result, ServiceError, SessionService, policy};
use crate::config::BackendKind;
use crate::daemon::engine::{
    PreparedAttachment, SubmitRequest, SubmitTarget, Submitted, named_key, subagent_key, task_key,
};
use crate::daemon::store::{NewMessage, NewSession, Receipt};
use crate::protocol::{
    Attachment, AttachmentReceipt, ProvenanceKind, Role, Runtime, SessionKind, SpawnMode,
    SpawnParams, SpawnResult, methods, scopes,
};
use crate::timefmt::now_ms;

/// Where attachments go, under the session's workspace.
const ATTACHMENTS_DIR: &str = ".openclaw/attachments";

impl SessionService {
    pub async fn spawn(&self, caller: &Caller, p: SpawnParams) -> Result<SpawnResult> {
        self.authorize(caller, methods::SESSIONS_SPAWN, scopes::SESSIONS_WRITE)?;
        let engine = &self.engine;
        if p.task.trim().is_empty() {
            return Err(ServiceError::InvalidParams("task must not be empty".into()));
        }
        // A named session (`cron:NAME`, `hook:NAME`) that exists takes this spawn as its next
        // run; its agent is the default of a spawn that names none.
        let named = match &p.key {
            Some(k) => {
                let kind = named_key(k).map_err(ServiceError::InvalidParams)?;
                let existing = engine.find_session(k).await?;
                if let Some(s) = &existing
                    && !self.can_see(caller, s).await?
                {
                    return Err(ServiceError::forbidden(format!(
                        "the key {k} belongs to a session this caller may not use; choose another key"
                    )));
                }
                Some((k.clone(), kind, existing))
            }
            None => None,
        };
        let existing_agent = named
            .as_ref()
            .and_then(|(_, _, s)| s.as_ref().map(|s| s.agent_id.clone()));
        let agent_id = p
            .agent_id
            .clone()
            .or(existing_agent.clone())
            .unwrap_or_else(|| engine.default_agent());
        if let Some(theirs) = &existing_agent
            && *theirs != agent_id
        {
            return Err(ServiceError::Conflict(format!(
                "session {} runs agent \"{theirs}\", not \"{agent_id}\"; spawn it with --agent {theirs}, or use another key",
                p.key.as_deref().unwrap_or_default()
            )));
        }
        if !engine.has_agent(&agent_id) {
            return Err(ServiceError::NotFound(format!(
                "agent \"{agent_id}\" is not configured; `openclaw agents list` shows the agents there are{}",
                self.config_changed_note()
            )));
        }
        if let Some(me) = caller.acting() {
            allowed_target(&engine.config(), &me.agent_id, &agent_id)
                .map_err(ServiceError::forbidden)?;
        }
        let backend = engine.config().agent(&agent_id).map(|a| a.backend);
        let is_acp = backend == Some(BackendKind::Acp);
        if p.runtime == Some(Runtime::Acp) && !is_acp {
            return Err(ServiceError::InvalidParams(format!(
                "runtime \"acp\" needs an ACP agent, and agent \"{agent_id}\" has backend \"{}\"; name an agent with backend = \"acp\", or omit runtime",
                backend.map_or("?", |b| b.as_str())
            )));
        }
        let acp = if is_acp {
            acp_fields(&p)?
        } else {
            AcpSpawn::default()
        };
        let ignored = ignored_fields(&p, is_acp, engine.agent_uses_thinking(&agent_id));
        let run_timeout = run_timeout(p.run_timeout_seconds)?;
        let parent = self.spawn_parent(caller, p.parent_key.as_deref()).await?;
        let spawn_depth = policy::child_depth(
            parent.as_ref().map(|s| s.spawn_depth),
            engine.config().subagents.max_depth,
        )
        .map_err(ServiceError::forbidden)?;
        if acp.stream_to.is_some() && parent.is_none() {
            return Err(ServiceError::InvalidParams(
                "streamTo \"parent\" needs a parent session: spawn from inside a run, or give parentKey".into(),
            ));
        }
        let attachments = prepare_attachments(&p.attachments, &engine.config().limits)?;
        let uuid = crate::daemon::ids::new_session_uuid().to_string();
        let (key, kind, existing) = match named {
            Some(named) => named,
            None if parent.is_some() => {
                (subagent_key(&agent_id, &uuid), SessionKind::Subagent, None)
            }
            // Only a session with a parent is a sub-agent (and archived after its run): a
            // spawn from a shell or cron stays listed.
            None => (task_key(&agent_id, &uuid), SessionKind::Task, None),
        };
        let session = NewSession {
            key,
            id: crate::daemon::ids::new_session_uuid().to_string(),
            agent_id,
            kind,
            label: p.label.clone().filter(|l| !l.is_empty()),
            parent_key: parent.map(|s| s.key),
            model: p.model.clone().filter(|m| !m.is_empty()),
            cleanup: p.cleanup.unwrap_or_default(),
            // `session` keeps a sub-agent listed for further sends: it is never archived.
            mode: p.mode.unwrap_or(SpawnMode::Run),
            agent_session_id: acp.resume.clone(),
            stream_to: acp.stream_to.clone(),
            spawn_depth,
            owner: caller.device_fingerprint().map(str::to_string),
        };
        let content = if attachments.is_empty() {
            Value::String(p.task.clone())
        } else {
            let mut blocks = vec![json!({ "type": "text", "text": p.task })];
            for a in &attachments {
                blocks.push(json!({
                    "type": "attachment",
                    "name": a.receipt.name,
                    "path": a.receipt.path,
                    "bytes": a.receipt.bytes,
                }));
            }
            Value::Array(blocks)
        };
        let digest = params_digest(&p);
        let target = match existing {
            Some(s) => SubmitTarget::Existing(Box::new(s)),
            None => SubmitTarget::New(Box::new(session)),
        };
        let request = SubmitRequest {
            target,
            message: NewMessage {
                ts: now_ms(),
                role: Role::User,
                content,
                run_id: None,
                provenance: ProvenanceKind::SpawnTask,
                from: None,
                usage: None,
            },
            run_id: crate::daemon::ids::new_run_id().to_string(),
            run_timeout,
            idempotency: self
                .idempotency(caller, p.idempotency_key.clone())
                .map(|k| (k, methods::SESSIONS_SPAWN)),
            params_digest: Some(digest.clone()),
            attachments,
            thinking: p.thinking.clone(),
        };
        let receipt = match engine.submit(request).await? {
            Submitted::New(r) => r,
            Submitted::Existing(first) => {
                check_same_params(p.idempotency_key.as_deref(), &first, &digest)?;
                first
            }
        };
        Ok(SpawnResult {
            status: "accepted".into(),
            session_key: receipt.session_key,
            session_id: receipt.session_id,
            run_id: receipt.run_id,
            ignored_fields: ignored,
            attachments: receipt.attachments,
        })
    }

    /// The parent a spawn records. From inside a run it is the run's own session, or one it
    /// spawned (never another tree, which would also step around the depth limit); an
    /// operator may name any parent, or none.
    async fn spawn_parent(
        &self,
        caller: &Caller,
        named: Option<&str>,
    ) -> Result<Option<crate::daemon::store::SessionRecord>> {
        match (named, caller.acting()) {
            (Some(k), Some(me)) => {
                let parent = self.session(caller, k).await?;
                let own = self
                    .engine
                    .store
                    .in_tree(me.session_key.clone(), parent.key.clone())
                    .await?;
                if !own {
                    return Err(ServiceError::forbidden(format!(
                        "a run of {} may spawn only under its own session or the sessions it spawned, not under {}",
                        me.session_key, parent.key
                    )));
                }
                Ok(Some(parent))
            }
            (Some(k), None) => Ok(Some(self.session(caller, k).await?)),
            (None, Some(me)) => Ok(Some(self.session(caller, &me.session_key).await?)),
            (None, None) => Ok(None),
        }
    }
}

/// A run of `from` may spawn `target` unless its agent's `[agents.X.subagents]
/// allow_agents` lists other agents only (unset: no restriction for commands it runs; the
/// tools offered to a model name only its own agent).
fn allowed_target(
    config: &crate::config::Config,
    from: &str,
    target: &str,
) -> std::result::Result<(), String> {
    let listed = config
        .agent(from)
        .and_then(|a| a.subagents.and_then(|s| s.allow_agents));
    match listed {
        Some(list) if !list.iter().any(|a| a == "*" || a == target) => Err(format!(
            "sessions of agent \"{from}\" may not spawn agent \"{target}\": [agents.{from}.subagents] allow_agents lists {}",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        )),
        _ => Ok(()),
    }
}

/// The ACP-only fields of a spawn on an ACP agent.
#[derive(Debug, Default)]
struct AcpSpawn {
    stream_to: Option<String>,
    resume: Option<String>,
}

fn acp_fields(p: &SpawnParams) -> Result<AcpSpawn> {
    let stream_to = match &p.stream_to {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s == "parent" => Some(s.clone()),
        Some(other) => {
            return Err(ServiceError::InvalidParams(format!(
                "streamTo {other} is not a target; the one there is is \"parent\""
            )));
        }
    };
    let resume = match &p.resume_session_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(other) => {
            return Err(ServiceError::InvalidParams(format!(
                "resumeSessionId {other} must be the ACP session id to load (a string)"
            )));
        }
    };
    Ok(AcpSpawn { stream_to, resume })
}

/// Fields given that do not apply, reported so a caller knows they did nothing: the
/// ACP-only ones for another runtime (never an error: models fill every field they are
/// shown), `thinking` for a backend without a reasoning setting.
fn ignored_fields(p: &SpawnParams, acp: bool, uses_thinking: bool) -> Vec<String> {
    let mut ignored = Vec::new();
    if p.stream_to.is_some() && !acp {
        ignored.push("streamTo".to_string());
    }
    if p.resume_session_id.is_some() && !acp {
        ignored.push("resumeSessionId".to_string());
    }
    if p.thinking.is_some() && !uses_thinking {
        ignored.push("thinking".to_string());
    }
    ignored
}

fn run_timeout(seconds: Option<f64>) -> Result<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => {
            Ok(Some(Duration::from_secs_f64(s.min(7.0 * 86_400.0))))
        }
        Some(_) => Err(ServiceError::InvalidParams(
            "runTimeoutSeconds must be a number of seconds above 0".into(),
        )),
    }
}

/// A digest of what a call asked for, without its idempotency key: a retry with the same
/// key must ask for the same thing.
pub(super) fn params_digest<P: serde::Serialize>(p: &P) -> String {
    let mut value = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.remove("idempotencyKey");
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    crate::device::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

/// A retry must repeat the first call; the same key for something else is a conflict.
pub(super) fn check_same_params(key: Option<&str>, first: &Receipt, digest: &str) -> Result<()> {
    match &first.params {
        Some(d) if d != digest => Err(ServiceError::Conflict(format!(
            "idempotency key \"{}\" was first used with other params (run {}); use a new key for a different request",
            key.unwrap_or_default(),
            first.run_id
        ))),
        _ => Ok(()),
    }
}

/// Checks and decodes attachments, each to go under its own directory of the workspace
/// (so a name never replaces a file the session already has).
fn prepare_attachments(
    attachments: &[Attachment],
    limits: &crate::config::LimitsConfig,
) -> Result<Vec<PreparedAttachment>> {
    if attachments.len() > limits.max_attachments {
        return Err(ServiceError::InvalidParams(format!(
            "attachments: {} files is more than the {} one spawn may carry ([limits] max_attachments)",
            attachments.len(),
            limits.max_attachments
        )));
    }
    let mut prepared = Vec::with_capacity(attachments.len());
    let mut total = 0usize;
    let mut names = std::collections::HashSet::new();
    for a in attachments {
        let name = &a.name;
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || name == ".."
            || name.contains('\0')
        {
            return Err(ServiceError::InvalidParams(format!(
                "attachment name \"{}\" must be a plain file name (no '/', not '.' or '..')",
                name.replace('\0', "\\0")
            )));
        }
        if !names.insert(name.as_str()) {
            return Err(ServiceError::InvalidParams(format!(
                "attachment name \"{name}\" is given twice; names must be unique"
            )));
        }
        let bytes = match a.encoding.as_deref() {
            None | Some("utf8") => a.content.clone().into_bytes(),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(a.content.trim())
                .or_else(|_| {
                    base64::engine::general_purpose::STANDARD_NO_PAD.decode(a.content.trim())
                })
                .map_err(|e| {
                    ServiceError::InvalidParams(format!(
                        "attachment \"{name}\" is not valid base64: {e}"
                    ))
                })?,
            Some(other) => {
                return Err(ServiceError::InvalidParams(format!(
                    "attachment encoding \"{other}\" is unknown; use \"utf8\" or \"base64\""
                )));
            }
        };
        total += bytes.len();
        if total > limits.max_attachment_bytes {
            return Err(ServiceError::InvalidParams(format!(
                "attachments: more than {} bytes in all ([limits] max_attachment_bytes); put large files where the agent can read them instead",
                limits.max_attachment_bytes
            )));
        }
        let dir = uuid::Uuid::new_v4().simple().to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        prepared.push(PreparedAttachment {
            receipt: AttachmentReceipt {
                name: name.clone(),
                path: format!("{ATTACHMENTS_DIR}/{dir}/{name}"),
                bytes: bytes.len() as u64,
                sha256: crate::device::hex(digest.as_ref()),
            },
            bytes,
        });
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitsConfig;
    use crate::protocol::Cleanup;

    fn attachment(name: &str, content: &str, encoding: Option<&str>) -> Attachment {
        Attachment {
            name: name.into(),
            content: content.into(),
            encoding: encoding.map(str::to_string),
        }
    }

    #[test]
    fn attachments_are_decoded_with_a_receipt_each() {
        let limits = LimitsConfig::default();
        let p = prepare_attachments(
            &[
                attachment("a.txt", "aGVsbG8=", Some("base64")),
                attachment("b.txt", "aGVsbG8", Some("base64")),
                attachment("c.txt", "hi", None),
            ],
            &limits,
        )
        .unwrap();
        assert_eq!(p[0].bytes, b"hello");
        assert_eq!(p[1].bytes, b"hello", "padding is optional");
        assert_eq!(p[0].receipt.bytes, 5);
        assert_eq!(
            p[0].receipt.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(p[0].receipt.path.starts_with(".openclaw/attachments/"));
        assert!(p[0].receipt.path.ends_with("/a.txt"));
        assert_ne!(p[0].receipt.path, p[1].receipt.path);
    }

    #[test]
    fn bad_attachments_are_refused_by_name() {
        let limits = LimitsConfig {
            max_attachments: 2,
            max_attachment_bytes: 4,
            ..LimitsConfig::default()
        };
        let err = |a: &[Attachment]| prepare_attachments(a, &limits).unwrap_err().to_string();
        assert!(err(&[attachment("../x", "", None)]).contains("attachment name"));
        assert!(err(&[attachment("x", "!!!", Some("base64"))]).contains("base64"));
        assert!(err(&[attachment("x", "x", Some("rot13"))]).contains("rot13"));
        assert!(err(&[attachment("x", "12345", None)]).contains("max_attachment_bytes"));
        let three = [
            attachment("a", "", None),
            attachment("b", "", None),
            attachment("c", "", None),
        ];
        assert!(err(&three).contains("max_attachments"));
        assert!(err(&[attachment("a", "", None), attachment("a", "", None)]).contains("twice"));
    }

    #[test]
    fn the_digest_ignores_the_idempotency_key_only() {
        let a = SpawnParams {
            task: "t".into(),
            idempotency_key: Some("k1".into()),
            ..Default::default()
        };
        let b = SpawnParams {
            idempotency_key: Some("k2".into()),
            ..a.clone()
        };
        let c = SpawnParams {
            task: "other".into(),
            ..a.clone()
        };
        assert_eq!(params_digest(&a), params_digest(&b));
        assert_ne!(params_digest(&a), params_digest(&c));
        let first = Receipt {
            run_id: "r1".into(),
            session_key: "k".into(),
            session_id: "i".into(),
            params: Some(params_digest(&a)),
            attachments: Vec::new(),
        };
        assert!(check_same_params(Some("k1"), &first, &params_digest(&b)).is_ok());
        let err = check_same_params(Some("k1"), &first, &params_digest(&c)).unwrap_err();
        assert!(matches!(err, ServiceError::Conflict(_)));
        assert!(err.to_string().contains("\"k1\""), "{err}");
    }

    #[test]
    fn acp_fields_and_unused_thinking_are_reported() {
        let p = SpawnParams {
            task: "t".into(),
            stream_to: Some("parent".into()),
            thinking: Some("high".into()),
            cleanup: Some(Cleanup::Keep),
            ..Default::default()
        };
        assert_eq!(ignored_fields(&p, false, false), ["streamTo", "thinking"]);
        assert_eq!(ignored_fields(&p, false, true), ["streamTo"]);
        assert!(ignored_fields(&p, true, true).is_empty());
    }
}
