//! Who a request speaks for. On TCP: the operator, when it carries the daemon's bearer token
//! (compared in constant time); nobody otherwise. On the Unix socket: whoever the kernel says
//! the peer is, exactly as for JSON-RPC there — the owner (or root) is the operator, another
//! uid a stranger the service refuses (HTTP cannot prove a paired device).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use super::errors::HttpError;
use super::{State, Transport};
use crate::daemon::service::Caller;

const CHALLENGE: &str = "Bearer realm=\"openclaw\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"openclaw\", error=\"invalid_token\"";

/// The caller of a request. `query_token` is the `access_token` query parameter, accepted on
/// the SSE routes only (a browser's `EventSource` cannot send headers).
pub fn caller(
    state: &State,
    transport: Transport,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Caller, HttpError> {
    match transport {
        Transport::Unix(peer) if peer.trusted => Ok(Caller::Operator),
        Transport::Unix(peer) => Ok(Caller::Stranger { uid: peer.uid }),
        Transport::Tcp => {
            let given = bearer(headers)?.or(query_token).ok_or_else(|| {
                HttpError::unauthorized(
                    "this needs the daemon's HTTP token: send `Authorization: Bearer TOKEN`, with TOKEN from `openclaw http token`",
                    CHALLENGE,
                )
            })?;
            let current = state.token.current().map_err(|e| {
                HttpError::internal(format!(
                    "cannot read the HTTP token {}: {e}",
                    state.token.path().display()
                ))
            })?;
            match current {
                Some(t) if bool::from(t.as_bytes().ct_eq(given.as_bytes())) => Ok(Caller::Operator),
                Some(_) => Err(HttpError::unauthorized(
                    "this is not the daemon's HTTP token (it may have been rotated); `openclaw http token` prints the current one",
                    CHALLENGE_INVALID,
                )),
                None => Err(HttpError::unauthorized(
                    "the daemon has no HTTP token (its file is gone); `openclaw http token` creates one",
                    CHALLENGE_INVALID,
                )),
            }
        }
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, HttpError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(HttpError::unauthorized(
            "the Authorization header must be `Bearer TOKEN`, with TOKEN from `openclaw http token`",
            CHALLENGE,
        )),
    }
}

/// The caller of an `/api` request that takes the token from the header only.
pub struct Api(pub Caller);

impl FromRequestParts<Arc<State>> for Api {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<State>,
    ) -> Result<Self, Self::Rejection> {
        let transport = transport_of(parts)?;
        caller(state, transport, &parts.headers, None).map(Api)
    }
}

/// How the request came in (set on every request by the connection).
pub fn transport_of(parts: &Parts) -> Result<Transport, HttpError> {
    parts
        .extensions
        .get::<Transport>()
        .copied()
        .ok_or_else(|| HttpError::internal("a request without its transport"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_others_are_refused() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap(), None);
        h.insert("authorization", HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h).unwrap(), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("Basic YTpi"));
        assert_eq!(bearer(&h).unwrap_err().status, 401);
    }
}
