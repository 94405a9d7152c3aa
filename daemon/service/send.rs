//! `send` (a message into a session; waits for the reply up to `timeoutSeconds`, or returns
//! at once with 0; streams the run's progress when asked) and `wait`.

use serde_json::Value;

use super::follow::EventStream;
use super::spawn::{check_same_params, params_digest};
use super::{
    Caller, Result, ServiceError, SessionService, StreamItem, no_session, policy, wait_duration,
};
use crate::daemon::backends::BoxFuture;
use crate::daemon::engine::{SubmitRequest, SubmitTarget, Submitted, agent_of_main, kind_of};
use crate::daemon::store::{NewMessage, NewSession};
use crate::protocol::{
    Cleanup, DEFAULT_WAIT_SECONDS, ProvenanceKind, Role, RunResult, RunStatus, SendParams,
    SpawnMode, WaitParams, WaitStatus, methods, scopes,
};
use crate::timefmt::now_ms;

/// What a send answers: its result, or (with `streamProgress`) the run's progress first.
pub enum SendOutcome {
    Done(RunResult),
    Streaming(Box<Progress>),
}

/// A run's progress, then its result: events as they happen, and once the wait ends (the
/// run ended, or the wait timed out while the run goes on) every event published before
/// that, then the result.
pub struct Progress {
    pub run_id: String,
    stream: EventStream,
    wait: Option<BoxFuture<'static, Result<RunResult>>>,
    result: Option<Result<RunResult>>,
}

/// One step of a [`Progress`].
pub enum ProgressItem {
    Event(StreamItem),
    Done(Result<RunResult>),
}

impl Progress {
    /// The next event, then the result; `None` after the result.
    pub async fn next(&mut self) -> Option<ProgressItem> {
        if let Some(wait) = self.wait.as_mut() {
            tokio::select! {
                biased;
                item = self.stream.next() => match item {
                    Some(StreamItem::Ended { .. }) | None => {
                        let r = self.wait.take()?.await;
                        self.result = Some(r);
                    }
                    Some(item) => return Some(ProgressItem::Event(item)),
                },
                r = wait => {
                    self.wait = None;
                    self.result = Some(r);
                }
            }
        }
        // The run's last events were published before its waiters woke: they come first.
        if let Some(item) = self.stream.try_next()
            && !matches!(item, StreamItem::Ended { .. })
        {
            return Some(ProgressItem::Event(item));
        }
        self.result.take().map(ProgressItem::Done)
    }
}

impl SessionService {
    pub async fn send(&self, caller: &Caller, p: SendParams) -> Result<SendOutcome> {
        self.authorize(caller, methods::SESSIONS_SEND, scopes::SESSIONS_WRITE)?;
        let engine = &self.engine;
        let wait = wait_duration(p.timeout_seconds, DEFAULT_WAIT_SECONDS)?;
        if p.message.trim().is_empty() {
            return Err(ServiceError::InvalidParams(
                "message must not be empty".into(),
            ));
        }
        let acting = caller.acting();
        let found = self.find_visible(caller, &p.session_key).await?;
        if let (Some(me), Some(target)) = (acting, &found) {
            policy::check_send(
                &engine.config().session.send_policy,
                &me.session_key,
                target,
            )
            .map_err(ServiceError::forbidden)?;
        }
        let target = match found {
            Some(s) => SubmitTarget::Existing(Box::new(s)),
            // A run's child, or a device without admin, may only reach sessions that exist and
            // that it can see: it never creates an agent's main session (the operator's).
            None if acting.is_some() || caller.owner_filter().is_some() => {
                return Err(no_session(&p.session_key));
            }
            None => {
                let key = self.normalize(&p.session_key);
                match agent_of_main(&key).filter(|a| engine.has_agent(a)) {
                    Some(agent_id) => SubmitTarget::New(Box::new(NewSession {
                        id: crate::daemon::ids::new_session_uuid().to_string(),
                        kind: kind_of(&key),
                        agent_id: agent_id.to_string(),
                        key,
                        label: None,
                        parent_key: None,
                        model: None,
                        cleanup: Cleanup::Keep,
                        mode: SpawnMode::Session,
                        agent_session_id: None,
                        stream_to: None,
                        spawn_depth: 0,
                        owner: caller.device_fingerprint().map(str::to_string),
                    })),
                    None => return Err(no_session(&p.session_key)),
                }
            }
        };
        let run_id = crate::daemon::ids::new_run_id().to_string();
        // Listening before the run exists, so none of its events can be missed.
        let progress = (p.stream_progress == Some(true) && !wait.is_zero())
            .then(|| self.run_stream(caller, &run_id));
        let digest = params_digest(&SendParams {
            timeout_seconds: None,
            stream_progress: None,
            ..p.clone()
        });
        let request = SubmitRequest {
            target,
            message: NewMessage {
                ts: now_ms(),
                role: Role::User,
                content: Value::String(p.message.clone()),
                run_id: None,
                provenance: if acting.is_some() {
                    ProvenanceKind::InterSession
                } else {
                    ProvenanceKind::Operator
                },
                from: acting.map(|a| a.session_key.clone()),
                usage: None,
            },
            run_id,
            run_timeout: None,
            idempotency: self
                .idempotency(caller, p.idempotency_key.clone())
                .map(|k| (k, methods::SESSIONS_SEND)),
            params_digest: Some(digest.clone()),
            attachments: Vec::new(),
            thinking: None,
        };
        let receipt = match engine.submit(request).await? {
            Submitted::New(r) => r,
            Submitted::Existing(first) => {
                check_same_params(p.idempotency_key.as_deref(), &first, &digest)?;
                first
            }
        };
        if wait.is_zero() {
            return Ok(SendOutcome::Done(RunResult {
                run_id: receipt.run_id,
                session_key: receipt.session_key,
                status: WaitStatus::Accepted,
                run_status: RunStatus::Queued,
                reply: None,
                error: None,
            }));
        }
        let engine = engine.clone();
        let run_id = receipt.run_id.clone();
        let waited: BoxFuture<'static, Result<RunResult>> =
            Box::pin(async move { Ok(engine.wait(&run_id, wait).await?) });
        match progress {
            // A retried send streams the progress of the first call's run.
            Some(stream) if stream_is_for(&stream, &receipt.run_id) => {
                Ok(SendOutcome::Streaming(Box::new(Progress {
                    run_id: receipt.run_id,
                    stream,
                    wait: Some(waited),
                    result: None,
                })))
            }
            Some(_) => Ok(SendOutcome::Streaming(Box::new(Progress {
                stream: self.run_stream(caller, &receipt.run_id),
                run_id: receipt.run_id,
                wait: Some(waited),
                result: None,
            }))),
            None => Ok(SendOutcome::Done(waited.await?)),
        }
    }

    /// `runs.wait`: waits (on the run's end, never polling) up to `timeoutSeconds`, for a run
    /// named by id or for a session's active (else last) run.
    pub async fn wait(&self, caller: &Caller, p: WaitParams) -> Result<RunResult> {
        self.authorize(caller, methods::RUNS_WAIT, scopes::SESSIONS_READ)?;
        let timeout = wait_duration(p.timeout_seconds, DEFAULT_WAIT_SECONDS)?;
        match (p.run_id, p.session_key) {
            (Some(run_id), None) => {
                if caller.acting().is_some() || caller.owner_filter().is_some() {
                    // From inside a run, only runs of sessions it can see.
                    let key = self.engine.run_session_key(&run_id).await?;
                    let visible = match key {
                        Some(k) => self.find_visible(caller, &k).await?.is_some(),
                        None => false,
                    };
                    if !visible {
                        return Err(ServiceError::NotFound(format!("no run \"{run_id}\"")));
                    }
                }
                Ok(self.engine.wait(&run_id, timeout).await?)
            }
            (None, Some(key)) => {
                let session = self.session(caller, &key).await?;
                Ok(self.engine.wait_session(&session, timeout).await?)
            }
            _ => Err(ServiceError::InvalidParams(
                "give exactly one of runId and sessionKey".into(),
            )),
        }
    }
}

fn stream_is_for(stream: &EventStream, run_id: &str) -> bool {
    stream.run_id() == Some(run_id)
}
