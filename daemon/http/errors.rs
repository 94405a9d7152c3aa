//! Errors as HTTP answers: a status and a JSON body `{"error": {"type", "message"}}` whose
//! message is a sentence a person can act on. [`HttpError::from`] a [`ServiceError`] is the
//! one mapping of the service's refusals (the counterpart of `rpc/errors.rs`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::daemon::service::ServiceError;

/// An error answer (boxed: it travels in every handler's `Result`).
#[derive(Debug)]
pub struct HttpError(Box<ErrorAnswer>);

#[derive(Debug)]
pub struct ErrorAnswer {
    pub status: StatusCode,
    /// Stable, for programs: `invalid`, `unauthorized`, `forbidden`, `pairing_required`,
    /// `not_found`, `method_not_allowed`, `conflict`, `too_large`, `busy`, `shutting_down`,
    /// `internal`.
    pub kind: &'static str,
    pub message: String,
    /// More fields of the error object (`retryAfterMs`, `scope`, `limit`).
    extra: Map<String, Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl std::ops::Deref for HttpError {
    type Target = ErrorAnswer;

    fn deref(&self) -> &ErrorAnswer {
        &self.0
    }
}

impl HttpError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> HttpError {
        HttpError(Box::new(ErrorAnswer {
            status,
            kind,
            message: message.into(),
            extra: Map::new(),
            headers: Vec::new(),
        }))
    }

    pub fn invalid(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 401, with the `WWW-Authenticate` challenge a 401 must carry.
    pub fn unauthorized(message: impl Into<String>, challenge: &'static str) -> HttpError {
        HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        )
    }

    pub fn too_large(limit: usize) -> HttpError {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the request body is larger than the limit of {limit} bytes; send less, or raise [limits] max_frame_bytes in config.toml"
            ),
        )
        .with("limit", limit.into())
    }

    pub fn internal(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn with(mut self, key: &str, value: Value) -> HttpError {
        self.0.extra.insert(key.to_string(), value);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> HttpError {
        self.0.headers.push((name, value));
        self
    }
}

/// Where a refusal for another user of the socket points: HTTP cannot prove a device.
const PAIRING_OVER_HTTP: &str = "HTTP on the socket cannot prove a device: use the openclaw CLI as this user (it pairs, then works), or the daemon's TCP listener with its bearer token";

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> HttpError {
        let message = e.to_string();
        match e {
            ServiceError::InvalidParams(_) => HttpError::invalid(message),
            ServiceError::NotFound(_) => HttpError::not_found(message),
            ServiceError::Forbidden { scope, .. } => {
                let err = HttpError::forbidden(message);
                match scope {
                    Some(scope) => err.with("scope", scope.into()),
                    None => err,
                }
            }
            ServiceError::PairingRequired { .. } => HttpError::new(
                StatusCode::FORBIDDEN,
                "pairing_required",
                format!("{message}. {PAIRING_OVER_HTTP}"),
            ),
            ServiceError::Conflict(_) => HttpError::new(StatusCode::CONFLICT, "conflict", message),
            ServiceError::Busy { retry_after_ms, .. } => {
                let seconds = retry_after_ms.div_ceil(1000).max(1);
                HttpError::new(StatusCode::TOO_MANY_REQUESTS, "busy", message)
                    .with("retryAfterMs", retry_after_ms.into())
                    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
            }
            ServiceError::ShuttingDown(_) => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            ServiceError::Store(store) => HttpError::internal(if store.is_transient() {
                message
            } else {
                format!("the daemon's store failed: {message}")
            }),
            ServiceError::Internal(_) => HttpError::internal(message),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let answer = *self.0;
        let mut error = Map::new();
        error.insert("type".into(), answer.kind.into());
        error.insert("message".into(), answer.message.into());
        error.extend(answer.extra);
        let mut response = json_response(answer.status, &json!({ "error": error }));
        for (name, value) in answer.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// A JSON answer with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Err(e) => HttpError::internal(format!("encoding the answer: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_error_has_its_status() {
        let cases = [
            (ServiceError::InvalidParams("x".into()), 400, "invalid"),
            (ServiceError::NotFound("x".into()), 404, "not_found"),
            (ServiceError::forbidden("x"), 403, "forbidden"),
            (
                ServiceError::PairingRequired {
                    message: "x".into(),
                    request: None,
                },
                403,
                "pairing_required",
            ),
            (ServiceError::Conflict("x".into()), 409, "conflict"),
            (
                ServiceError::Busy {
                    message: "x".into(),
                    retry_after_ms: 1500,
                },
                429,
                "busy",
            ),
            (ServiceError::ShuttingDown("x".into()), 503, "shutting_down"),
            (ServiceError::Internal("x".into()), 500, "internal"),
        ];
        for (e, status, kind) in cases {
            let h = HttpError::from(e);
            assert_eq!((h.status.as_u16(), h.kind), (status, kind));
        }
        let busy = HttpError::from(ServiceError::Busy {
            message: "x".into(),
            retry_after_ms: 1500,
        })
        .into_response();
        assert_eq!(busy.headers()[header::RETRY_AFTER], "2");
        let pairing = HttpError::from(ServiceError::PairingRequired {
            message: "not paired".into(),
            request: None,
        });
        assert!(
            pairing.message.contains("openclaw CLI"),
            "{}",
            pairing.message
        );
    }
}
