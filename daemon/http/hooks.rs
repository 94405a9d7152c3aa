//! `POST /hooks/NAME` (SPEC §10.1): a delivery to a `[hooks.NAME]` becomes a `hook:` session
//! on the hook's agent, its task the hook's template filled from the delivery. With
//! `secret_env`, the delivery must be signed (HMAC-SHA256 of the body, GitHub's
//! `X-Hub-Signature-256: sha256=HEX`, or `X-Signature-256`), checked in constant time before
//! anything is stored; without, it must come from the operator (bearer token or the socket's
//! owner). A delivery id header is the idempotency key: a redelivery spawns nothing new.

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ring::hmac;

use super::State;
use super::auth::{caller, transport_of};
use super::errors::{HttpError, json_response};
use super::input::{PathParam, read_body};
use crate::config::{TemplatePart, parse_template};
use crate::daemon::service::Caller;
use crate::daemon::service::hooks::HookSpawn;

/// Headers that may carry a signature, in the order they are looked at.
const SIGNATURE_HEADERS: [&str; 2] = ["x-hub-signature-256", "x-signature-256"];
/// Headers that may carry a delivery id, in the order they are looked at.
const DELIVERY_HEADERS: [&str; 4] = [
    "x-github-delivery",
    "x-gitea-delivery",
    "x-delivery-id",
    "idempotency-key",
];
/// Longest delivery id taken (longer ones are refused rather than cut).
const MAX_DELIVERY_ID: usize = 200;
const CHALLENGE: &str = "HMAC-SHA256 header=\"X-Hub-Signature-256\"";

pub async fn deliver(
    Shared(state): Shared<Arc<State>>,
    PathParam(name): PathParam,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    let config = state.service.engine().config();
    let Some(hook) = config.hooks.get(&name).cloned() else {
        let known: Vec<&str> = config.hooks.keys().map(String::as_str).collect();
        return Err(HttpError::not_found(format!(
            "no hook \"{name}\"; {}",
            if known.is_empty() {
                "none is configured (add a [hooks.NAME] table to config.toml)".to_string()
            } else {
                format!("the configured ones are {}", known.join(", "))
            }
        )));
    };
    // Everything that can refuse a delivery without its body does so before reading it, so a
    // sender without the token or a signature cannot make the daemon take in a large body.
    let (caller, signed) = match &hook.secret_env {
        Some(var) => {
            let secret = std::env::var(var).ok().filter(|s| !s.is_empty()).ok_or_else(|| {
                HttpError::internal(format!(
                    "hook {name}: the environment variable {var} (its secret_env) is not set in the daemon's environment; set it and restart the daemon"
                ))
            })?;
            let signature = signature_of(&parts.headers)?;
            // The signature is the sender's proof; what it may do is spawn this hook's session.
            (Caller::Operator, Some((var, secret, signature)))
        }
        None => (
            caller(&state, transport_of(&parts)?, &parts.headers, None)?,
            None,
        ),
    };
    let delivery = delivery_id(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, config.limits.max_frame_bytes).await?;
    if let Some((var, secret, signature)) = signed {
        verify_signature(&signature, secret.as_bytes(), &bytes, var)?;
    }
    let task = render(&hook.task, &bytes, &parts.headers, raw.as_deref())?;
    let spawn = HookSpawn {
        hook: name,
        agent_id: hook.agent.clone(),
        task,
        delivery,
    };
    let result = state.service.spawn_hook(&caller, spawn).await?;
    Ok(json_response(StatusCode::ACCEPTED, &result))
}

/// The signature a delivery carries (32 bytes), from the first signature header present.
fn signature_of(headers: &HeaderMap) -> Result<Vec<u8>, HttpError> {
    let given = SIGNATURE_HEADERS
        .iter()
        .find_map(|h| headers.get(*h))
        .ok_or_else(|| {
            HttpError::unauthorized(
                "this hook takes signed deliveries only: send X-Hub-Signature-256 (or X-Signature-256): sha256= and the HMAC-SHA256 of the body in hex",
                CHALLENGE,
            )
        })?;
    let text = given.to_str().unwrap_or_default().trim();
    let hex = text.strip_prefix("sha256=").unwrap_or(text);
    unhex(hex).filter(|s| s.len() == 32).ok_or_else(|| {
        HttpError::unauthorized(
            "the signature header must be sha256= followed by 64 hex digits",
            CHALLENGE,
        )
    })
}

/// Checks the body's HMAC-SHA256 against the signature, in constant time.
fn verify_signature(
    signature: &[u8],
    secret: &[u8],
    body: &[u8],
    secret_env: &str,
) -> Result<(), HttpError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, signature).map_err(|_| {
        HttpError::unauthorized(
            format!(
                "the signature does not match the body; the sender must sign with the secret in the daemon's {secret_env}"
            ),
            CHALLENGE,
        )
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The hook's task with `{{body}}`, `{{header.X}}` and `{{query.x}}` filled in, in one pass
/// (a placeholder inside what is filled in stays text).
fn render(
    template: &str,
    body: &[u8],
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<String, HttpError> {
    let parts = parse_template(template)
        .map_err(|m| HttpError::internal(format!("the hook's task template: {m}")))?;
    let mut out = String::with_capacity(template.len() + body.len());
    for part in parts {
        match part {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Body => out.push_str(&String::from_utf8_lossy(body)),
            TemplatePart::Header(name) => {
                if let Some(v) = headers.get(name) {
                    out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
            }
            TemplatePart::Query(name) => {
                let value = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                    .filter(|(k, _)| k == name)
                    .last()
                    .map(|(_, v)| v.into_owned());
                out.push_str(value.as_deref().unwrap_or_default());
            }
        }
    }
    Ok(out)
}

/// The sender's id of this delivery, the same on every redelivery.
fn delivery_id(headers: &HeaderMap) -> Result<Option<String>, HttpError> {
    let Some((name, value)) = DELIVERY_HEADERS
        .iter()
        .find_map(|h| headers.get(*h).map(|v| (*h, v)))
    else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    if value.is_empty() || value.len() > MAX_DELIVERY_ID {
        return Err(HttpError::invalid(format!(
            "{name} must be 1 to {MAX_DELIVERY_ID} characters of text"
        )));
    }
    Ok(Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        format!(
            "sha256={}",
            crate::device::hex(hmac::sign(&key, body).as_ref())
        )
    }

    #[test]
    fn signatures_like_githubs_are_checked() {
        let body = br#"{"action":"opened"}"#;
        let check = |h: &HeaderMap, secret: &[u8], body: &[u8]| {
            signature_of(h).and_then(|s| verify_signature(&s, secret, body, "V"))
        };
        let mut h = HeaderMap::new();
        assert_eq!(check(&h, b"s3", body).unwrap_err().status, 401);
        h.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&sign(b"s3", body)).unwrap(),
        );
        check(&h, b"s3", body).unwrap();
        assert_eq!(check(&h, b"other", body).unwrap_err().status, 401);
        assert!(check(&h, b"s3", b"{}").is_err(), "another body");
        let mut h = HeaderMap::new();
        let bare = sign(b"s3", body).trim_start_matches("sha256=").to_string();
        h.insert("x-signature-256", HeaderValue::from_str(&bare).unwrap());
        check(&h, b"s3", body).unwrap();
        h.insert("x-signature-256", HeaderValue::from_static("sha256=zz"));
        assert!(check(&h, b"s3", body).is_err());
    }

    #[test]
    fn templates_fill_in_one_pass() {
        let mut h = HeaderMap::new();
        h.insert("x-github-event", HeaderValue::from_static("push"));
        let out = render(
            "{{header.X-GitHub-Event}} on {{query.repo}}: {{body}}{{header.absent}}",
            b"{\"x\":\"{{header.X-GitHub-Event}}\"}",
            &h,
            Some("repo=a%2Fb&repo=c%2Fd"),
        )
        .unwrap();
        assert_eq!(out, "push on c/d: {\"x\":\"{{header.X-GitHub-Event}}\"}");
    }

    #[test]
    fn delivery_ids() {
        let mut h = HeaderMap::new();
        assert_eq!(delivery_id(&h).unwrap(), None);
        h.insert("x-github-delivery", HeaderValue::from_static("72d3162e"));
        assert_eq!(delivery_id(&h).unwrap().as_deref(), Some("72d3162e"));
        h.insert("x-github-delivery", HeaderValue::from_static(" "));
        assert!(delivery_id(&h).is_err());
    }
}
