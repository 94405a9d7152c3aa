use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// JSON-RPC error codes: the spec's own, then ours in the -32000..-32099 server range.
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;

    pub const NOT_FOUND: i64 = -32001;
    pub const PAIRING_REQUIRED: i64 = -32002;
    pub const FORBIDDEN: i64 = -32003;
    pub const CONFLICT: i64 = -32004;
    pub const BUSY: i64 = -32005;
    pub const TIMEOUT: i64 = -32006;
    pub const FRAME_TOO_LARGE: i64 = -32007;
    pub const SHUTTING_DOWN: i64 = -32008;
}

/// The stable application error kinds, carried in `error.data.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    PairingRequired,
    Forbidden,
    Conflict,
    Busy,
    Timeout,
    FrameTooLarge,
    ShuttingDown,
}

impl ErrorKind {
    pub fn code(self) -> i64 {
        match self {
            ErrorKind::NotFound => codes::NOT_FOUND,
            ErrorKind::PairingRequired => codes::PAIRING_REQUIRED,
            ErrorKind::Forbidden => codes::FORBIDDEN,
            ErrorKind::Conflict => codes::CONFLICT,
            ErrorKind::Busy => codes::BUSY,
            ErrorKind::Timeout => codes::TIMEOUT,
            ErrorKind::FrameTooLarge => codes::FRAME_TOO_LARGE,
            ErrorKind::ShuttingDown => codes::SHUTTING_DOWN,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::PairingRequired => "pairing_required",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Busy => "busy",
            ErrorKind::Timeout => "timeout",
            ErrorKind::FrameTooLarge => "frame_too_large",
            ErrorKind::ShuttingDown => "shutting_down",
        }
    }
}

/// A JSON-RPC error object, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// An application error: its code from the kind, and `data.kind` set.
    pub fn app(kind: ErrorKind, message: impl Into<String>) -> Self {
        RpcError {
            code: kind.code(),
            message: message.into(),
            data: Some(json!({ "kind": kind.as_str() })),
        }
    }

    pub fn parse_error(message: impl Into<String>) -> Self {
        Self::new(codes::PARSE_ERROR, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_REQUEST, message)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            codes::METHOD_NOT_FOUND,
            format!(
                "unknown method \"{method}\"; `openclaw --help` lists what the daemon supports"
            ),
        )
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL_ERROR, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::app(ErrorKind::NotFound, message)
    }
    pub fn busy(message: impl Into<String>, retry_after_ms: u64) -> Self {
        RpcError {
            code: ErrorKind::Busy.code(),
            message: message.into(),
            data: Some(json!({ "kind": "busy", "retryAfterMs": retry_after_ms })),
        }
    }

    /// Adds a field to `data` (creating it), for extra machine-readable detail.
    pub fn with_data(mut self, key: &str, value: Value) -> Self {
        let data = self.data.get_or_insert_with(|| json!({}));
        if let Some(obj) = data.as_object_mut() {
            obj.insert(key.to_string(), value);
        }
        self
    }

    /// The application kind in `data.kind`, when there is one we know.
    pub fn kind(&self) -> Option<ErrorKind> {
        let kind = self.data.as_ref()?.get("kind")?.clone();
        serde_json::from_value(kind).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_error_carries_kind_and_code() {
        let e = RpcError::app(ErrorKind::NotFound, "no such session");
        assert_eq!(e.code, codes::NOT_FOUND);
        assert_eq!(e.kind(), Some(ErrorKind::NotFound));
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(wire["data"]["kind"], "not_found");
    }

    #[test]
    fn busy_carries_retry_after() {
        let e = RpcError::busy("queue full", 250);
        assert_eq!(e.kind(), Some(ErrorKind::Busy));
        assert_eq!(e.data.unwrap()["retryAfterMs"], 250);
    }

    #[test]
    fn every_kind_round_trips_through_its_string() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::PairingRequired,
            ErrorKind::Forbidden,
            ErrorKind::Conflict,
            ErrorKind::Busy,
            ErrorKind::Timeout,
            ErrorKind::FrameTooLarge,
            ErrorKind::ShuttingDown,
        ] {
            let v = serde_json::to_value(kind).unwrap();
            assert_eq!(v, kind.as_str());
            assert!((-32099..=-32000).contains(&kind.code()));
        }
    }
}
