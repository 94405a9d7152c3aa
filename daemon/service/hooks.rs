//! Sessions a webhook creates: `hook:<uuid>` on the hook's agent, its rendered task the first
//! message. A delivery id (e.g. `X-GitHub-Delivery`) is the idempotency key, so a redelivery
//! answers with the first delivery's session and run instead of spawning again.
//!
//! Not a `sessions.spawn` with `key: hook:NAME`: a named spawn sends later spawns into the
//! same session, while every delivery here is a session of its own, made idempotent by its
//! delivery id.

use serde_json::Value;

use super::spawn::{check_same_params, params_digest};
use super::{Caller, Result, ServiceError, SessionService};
use crate::daemon::engine::{SubmitRequest, SubmitTarget, Submitted};
use crate::daemon::store::{NewMessage, NewSession};
use crate::protocol::{
    Cleanup, ProvenanceKind, Role, SessionKind, SpawnMode, SpawnResult, methods, scopes,
};
use crate::timefmt::now_ms;

/// One delivery to a configured hook.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookSpawn {
    /// The hook's name (`[hooks.NAME]`).
    pub hook: String,
    /// The agent to run (`None`: the default agent).
    pub agent_id: Option<String>,
    /// The rendered task.
    pub task: String,
    /// The sender's delivery id, when it gave one.
    #[serde(skip)]
    pub delivery: Option<String>,
}

/// The key of a hook's session: the same for every delivery of one delivery id (so a
/// redelivery names the same session), fresh without one.
pub fn hook_key(hook: &str, delivery: Option<&str>) -> String {
    let uuid = match delivery {
        Some(d) => {
            let digest = ring::digest::digest(
                &ring::digest::SHA256,
                format!("openclaw hook\0{hook}\0{d}").as_bytes(),
            );
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&digest.as_ref()[..16]);
            uuid::Builder::from_custom_bytes(bytes).into_uuid()
        }
        None => crate::daemon::ids::new_session_uuid(),
    };
    format!("hook:{uuid}")
}

impl SessionService {
    /// Creates the session of one webhook delivery and queues its run; answers once both are
    /// durable, never waiting for the run.
    pub async fn spawn_hook(&self, caller: &Caller, h: HookSpawn) -> Result<SpawnResult> {
        self.authorize(caller, methods::SESSIONS_SPAWN, scopes::SESSIONS_WRITE)?;
        let engine = &self.engine;
        if h.task.trim().is_empty() {
            return Err(ServiceError::InvalidParams(format!(
                "hook {}: the rendered task is empty; check its task template",
                h.hook
            )));
        }
        let agent_id = h.agent_id.clone().unwrap_or_else(|| engine.default_agent());
        if !engine.has_agent(&agent_id) {
            return Err(ServiceError::NotFound(format!(
                "hook {}: agent \"{agent_id}\" is not configured; fix [hooks.{}] agent",
                h.hook, h.hook
            )));
        }
        let session = NewSession {
            key: hook_key(&h.hook, h.delivery.as_deref()),
            id: crate::daemon::ids::new_session_uuid().to_string(),
            agent_id,
            kind: SessionKind::Hook,
            label: None,
            parent_key: None,
            model: None,
            cleanup: Cleanup::Keep,
            mode: SpawnMode::Run,
            agent_session_id: None,
            stream_to: None,
            spawn_depth: 0,
            owner: caller.device_fingerprint().map(str::to_string),
        };
        let digest = params_digest(&h);
        let idempotency_key = h.delivery.as_ref().map(|d| format!("hook:{}:{d}", h.hook));
        let request = SubmitRequest {
            target: SubmitTarget::New(Box::new(session)),
            message: NewMessage {
                ts: now_ms(),
                role: Role::User,
                content: Value::String(h.task),
                run_id: None,
                provenance: ProvenanceKind::SpawnTask,
                from: None,
                usage: None,
            },
            run_id: crate::daemon::ids::new_run_id().to_string(),
            run_timeout: None,
            idempotency: self
                .idempotency(caller, idempotency_key.clone())
                .map(|k| (k, methods::SESSIONS_SPAWN)),
            params_digest: Some(digest.clone()),
            attachments: Vec::new(),
            thinking: None,
        };
        let receipt = match engine.submit(request).await? {
            Submitted::New(r) => r,
            Submitted::Existing(first) => {
                check_same_params(idempotency_key.as_deref(), &first, &digest)?;
                first
            }
        };
        Ok(SpawnResult {
            status: "accepted".into(),
            session_key: receipt.session_key,
            session_id: receipt.session_id,
            run_id: receipt.run_id,
            ignored_fields: Vec::new(),
            attachments: receipt.attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_delivery_one_key() {
        let a = hook_key("github", Some("d-1"));
        assert_eq!(a, hook_key("github", Some("d-1")));
        assert_ne!(a, hook_key("github", Some("d-2")));
        assert_ne!(a, hook_key("gitlab", Some("d-1")));
        assert_ne!(hook_key("github", None), hook_key("github", None));
        let uuid = a.strip_prefix("hook:").unwrap();
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{a}");
        assert_eq!(crate::daemon::engine::kind_of(&a), SessionKind::Hook);
    }
}
