//! The `/api` routes: each parses its path, query and body into the protocol's params, calls
//! the session service as the request's caller, and answers with the result's JSON (the
//! shapes of the socket protocol) or the service's refusal.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::State;
use super::auth::{Api, caller, transport_of};
use super::errors::{HttpError, json_response};
use super::input::{PathParam, Query, json_body, read_body};
use super::sse;
use crate::daemon::service::SendOutcome;
use crate::protocol::{
    DeleteParams, GetParams, HistoryParams, KillParams, ListParams, SendParams, SpawnParams,
    SubscribeParams, WaitParams, WaitStatus,
};

type Answer = Result<Response, HttpError>;

/// A route's JSON body, read within the largest frame the socket accepts and parsed.
async fn read_json<T: serde::de::DeserializeOwned>(
    state: &State,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, HttpError> {
    let limit = state.service.engine().config().limits.max_frame_bytes;
    json_body(&read_body(headers, body, limit).await?)
}

/// No auth and no data: 200 while the daemon takes work, 503 once it is stopping.
pub async fn healthz(Shared(state): Shared<Arc<State>>) -> Response {
    if state.shutdown.is_cancelled() || state.service.engine().is_shutting_down() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "stopping" }),
        );
    }
    json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// `POST /api/sessions/spawn`: `sessions.spawn`'s params; 202 once the session and its task
/// are stored, never waiting for the run.
pub async fn spawn(
    Shared(state): Shared<Arc<State>>,
    Api(caller): Api,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let p: SpawnParams = read_json(&state, &headers, body).await?;
    let result = state.service.spawn(&caller, p).await?;
    Ok(json_response(StatusCode::ACCEPTED, &result))
}

/// `sessions.send`'s fields but the key (from the path); over HTTP the default is not to
/// wait, and progress streams from the session's SSE follow.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    message: String,
    #[serde(default)]
    timeout_seconds: Option<f64>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `POST /api/sessions/{key}/send`: 202 `{runId, ...}`; with `timeoutSeconds` > 0, 200 with
/// the result once the run ends or the wait does (`status: "timeout"`, the run goes on).
pub async fn send(
    Shared(state): Shared<Arc<State>>,
    Api(caller): Api,
    PathParam(key): PathParam,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let b: SendBody = read_json(&state, &headers, body).await?;
    let p = SendParams {
        session_key: key,
        message: b.message,
        timeout_seconds: Some(b.timeout_seconds.unwrap_or(0.0)),
        stream_progress: None,
        idempotency_key: b.idempotency_key,
    };
    match state.service.send(&caller, p).await? {
        SendOutcome::Done(result) => {
            let status = if result.status == WaitStatus::Accepted {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(json_response(status, &result))
        }
        SendOutcome::Streaming(_) => Err(HttpError::internal(
            "a send over HTTP streamed its progress, which it never asks for",
        )),
    }
}

/// `GET /api/runs/{runId}?wait=SECS`: the run's result, waiting up to `wait` seconds (0:
/// answer at once) for it to end.
pub async fn run(
    Shared(state): Shared<Arc<State>>,
    Api(caller): Api,
    PathParam(run_id): PathParam,
    RawQuery(raw): RawQuery,
) -> Answer {
    let mut q = Query::parse(raw.as_deref());
    let wait = q.take_number::<f64>("wait")?;
    q.finish(&["wait"])?;
    let p = WaitParams {
        run_id: Some(run_id),
        session_key: None,
        timeout_seconds: Some(wait.unwrap_or(0.0)),
    };
    let result = state.service.wait(&caller, p).await?;
    Ok(json_response(StatusCode::OK, &result))
}

const LIST_PARAMS: [&str; 7] = [
    "kinds",
    "limit",
    "cursor",
    "activeMinutes",
    "messageLimit",
    "parentKey",
    "includeArchived",
];

/// `GET /api/sessions`: `sessions.list` with its filters as query parameters.
pub async fn list(
    Shared(state): Shared<Arc<State>>,
    Api(caller): Api,
    RawQuery(raw): RawQuery,
) -> Answer {
    let mut q = Query::parse(raw.as_deref());
    let p = ListParams {
        kinds: q.take_list("kinds"),
        limit: q.take_number("limit")?,
        cursor: q.take("cursor"),
        active_minutes: q.take_number("activeMinutes")?,
        message_limit: q.take_number("messageLimit")?,
        parent_key: q.take("parentKey"),
        include_archived: q.take_bool("includeArchived")?,
    };
    q.finish(&LIST_PARAMS)?;
    let result = state.service.list(&caller, p).await?;
    Ok(json_response(StatusCode::OK, &result))
}

/// `GET /api/sessions/{key}`: one session's row, as `{"session": row}`.
pub async fn get_session(
    Shared(state): Shared<Arc<State>>,
    Api(caller): Api,
    PathParam(key): PathParam,
    RawQuery(raw): RawQuery,
) -> Answer {
    Query::parse(raw.as_deref()).finish(&[])?;
    let result = state
        .service
        .get(&caller, GetParams { session_key: key })
        .await?;
    Ok(json_response(StatusCode::OK, &result))
}

const HISTORY_PARAMS: [&str; 7] = [
    "limit",
    "cursor",
    "includeTools",
    "follow",
    "afterSeq",
    "events",
    "access_token",
];

/// `GET /api/sessions/{key}/history`: a page of the transcript; with `follow=1` (or `Accept:
/// text/event-stream`) an SSE follow instead, from `Last-Event-ID` or `afterSeq` (else from
/// now), every message once and in order, then live.
pub async fn history(
    Shared(state): Shared<Arc<State>>,
    PathParam(key): PathParam,
    RawQuery(raw): RawQuery,
    request: axum::extract::Request,
) -> Answer {
    let (parts, _) = request.into_parts();
    let mut q = Query::parse(raw.as_deref());
    let follow = q.take_bool("follow")?.unwrap_or(false) || wants_event_stream(&parts.headers);
    let transport = transport_of(&parts)?;
    if !follow {
        let p = HistoryParams {
            session_key: key,
            limit: q.take_number("limit")?,
            cursor: q.take("cursor"),
            include_tools: q.take_bool("includeTools")?,
        };
        q.finish(&HISTORY_PARAMS[..3])?;
        let caller = caller(&state, transport, &parts.headers, None)?;
        let result = state.service.history(&caller, p).await?;
        return Ok(json_response(StatusCode::OK, &result));
    }
    let token = q.take("access_token");
    let include_tools = q.take_bool("includeTools")?.unwrap_or(false);
    let after_seq = resume_point(&parts.headers, q.take_number::<u64>("afterSeq")?)?;
    let events = q.take_events()?;
    q.finish(&HISTORY_PARAMS)?;
    let caller = caller(&state, transport, &parts.headers, token.as_deref())?;
    let p = SubscribeParams {
        session_key: Some(key),
        after_seq,
        run_id: None,
        events,
    };
    let sub = state.service.subscribe(&caller, p).await?;
    Ok(sse::respond(
        sub.stream,
        sse::Options {
            ids: true,
            include_tools,
        },
    ))
}

/// Where a follow resumes: after the last message the client has (`Last-Event-ID`, sent by
/// a reconnecting `EventSource`), or after `afterSeq`; the later of the two when both.
fn resume_point(headers: &HeaderMap, after_seq: Option<u64>) -> Result<Option<u64>, HttpError> {
    let last_event = match headers.get("last-event-id") {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or_default().trim();
            if text.is_empty() {
                None
            } else {
                Some(text.parse::<u64>().map_err(|_| {
                    HttpError::invalid(format!(
                        "Last-Event-ID \"{text}\" is not a message seq (a follow's event ids are the seqs of its messages)"
                    ))
                })?)
            }
        }
    };
    Ok(match (last_event, after_seq) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    })
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// `GET /api/events`: every lifecycle, transcript and run event the caller may see, live (a
/// reconnecting client reads the list again for what it missed: these events have no ids).
pub async fn events(
    Shared(state): Shared<Arc<State>>,
    RawQuery(raw): RawQuery,
    request: axum::extract::Request,
) -> Answer {
    let (parts, _) = request.into_parts();
    let mut q = Query::parse(raw.as_deref());
    let token = q.take("access_token");
    let events = q.take_events()?;
    q.finish(&["events", "access_token"])?;
    let caller = caller(
        &state,
        transport_of(&parts)?,
        &parts.headers,
        token.as_deref(),
    )?;
    let p = SubscribeParams {
        session_key: None,
        after_seq: None,
        run_id: None,
        events,
    };
    let sub = state.service.subscribe(&caller, p).await?;
    Ok(sse::respond(
        sub.stream,
        sse::Options {
            ids: false,
            include_tools: true,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KillBody {
    #[serde(default)]
    clear_queued: Option<bool>,
}

/// `POST /api/sessions/{key}/kill`: aborts the active run (and queued ones with
/// `clearQueued`).
pub async fn kill(
    Shared(state): Shared<Arc<State>>,
    Api(caller): Api,
    PathParam(key): PathParam,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let b: KillBody = read_json(&state, &headers, body).await?;
    let p = KillParams {
        session_key: key,
        clear_queued: b.clear_queued,
    };
    let result = state.service.kill(&caller, p).await?;
    Ok(json_response(StatusCode::OK, &result))
}

/// `DELETE /api/sessions/{key}`: the session and its transcript.
pub async fn delete(
    Shared(state): Shared<Arc<State>>,
    Api(caller): Api,
    PathParam(key): PathParam,
) -> Answer {
    let result = state
        .service
        .delete(&caller, DeleteParams { session_key: key })
        .await?;
    Ok(json_response(StatusCode::OK, &result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn resume_from_the_later_of_last_event_id_and_after_seq() {
        let mut h = HeaderMap::new();
        assert_eq!(resume_point(&h, None).unwrap(), None);
        assert_eq!(resume_point(&h, Some(4)).unwrap(), Some(4));
        h.insert("last-event-id", HeaderValue::from_static("9"));
        assert_eq!(resume_point(&h, None).unwrap(), Some(9));
        assert_eq!(resume_point(&h, Some(4)).unwrap(), Some(9));
        assert_eq!(resume_point(&h, Some(12)).unwrap(), Some(12));
        h.insert("last-event-id", HeaderValue::from_static("x"));
        assert_eq!(resume_point(&h, None).unwrap_err().status, 400);
    }
}
