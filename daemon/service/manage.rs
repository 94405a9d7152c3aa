//! Managing sessions: `kill` (stop runs), `patch` (label, send policy, archived, model) and
//! `delete`.

use super::{Caller, Result, ServiceError, SessionService};
use crate::config::PolicyAction;
use crate::daemon::store::Patch;
use crate::protocol::{
    DeleteParams, DeleteResult, KillParams, KillResult, PatchParams, SessionRow, methods, scopes,
};

impl SessionService {
    /// Aborts the session's active run (and queued ones with `clearQueued`); answers once
    /// the run has really ended.
    pub async fn kill(&self, caller: &Caller, p: KillParams) -> Result<KillResult> {
        self.authorize(caller, methods::SESSIONS_KILL, scopes::SESSIONS_WRITE)?;
        let session = self.session(caller, &p.session_key).await?;
        Ok(self
            .engine
            .kill(&session, p.clear_queued.unwrap_or(false))
            .await?)
    }

    /// Label, send policy, archived flag and model. Only the operator (or an admin device)
    /// may change a send policy: a run must not lift a deny that applies to it.
    pub async fn patch(&self, caller: &Caller, p: PatchParams) -> Result<SessionRow> {
        self.authorize(caller, methods::SESSIONS_PATCH, scopes::SESSIONS_WRITE)?;
        let session = self.session(caller, &p.session_key).await?;
        let send_policy = match p.send_policy.as_deref() {
            None => None,
            Some("allow") => Some(Some(PolicyAction::Allow)),
            Some("deny") => Some(Some(PolicyAction::Deny)),
            Some("inherit") => Some(None),
            Some(other) => {
                return Err(ServiceError::InvalidParams(format!(
                    "sendPolicy \"{other}\" is unknown; use allow, deny or inherit"
                )));
            }
        };
        if send_policy.is_some() && !caller.may_override_send_policy() {
            return Err(ServiceError::forbidden(format!(
                "only the operator can change the send policy of {}; a run or a device without the admin scope cannot",
                session.key
            )));
        }
        let patch = Patch {
            label: p.label.map(|l| if l.is_empty() { None } else { Some(l) }),
            archived: p.archived,
            send_policy,
            model: p.model.map(|m| if m.is_empty() { None } else { Some(m) }),
            agent_session_id: None,
        };
        self.engine.store.patch_session(session.sid, patch).await?;
        Ok(self.session(caller, &session.id).await?.to_row())
    }

    /// Removes a session, its transcript and workspace. Refused while a run of it is active or
    /// queued — checked again in the transaction that deletes, so a send acknowledged in
    /// between can never be lost with its session.
    pub async fn delete(&self, caller: &Caller, p: DeleteParams) -> Result<DeleteResult> {
        self.authorize(caller, methods::SESSIONS_DELETE, scopes::SESSIONS_WRITE)?;
        let session = self.session(caller, &p.session_key).await?;
        if self.engine.is_busy(&session) {
            return Err(ServiceError::Conflict(format!(
                "session {} has a run active or queued; stop it first with `openclaw sessions kill {} --clear-queued`",
                session.key, session.key
            )));
        }
        self.engine.delete_session(&session).await?;
        Ok(DeleteResult {
            session_key: session.key,
            session_id: session.id,
            deleted: true,
        })
    }
}
