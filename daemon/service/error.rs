//! What the service refuses, as values: transports turn them into JSON-RPC errors or HTTP
//! statuses at their edge, and every message is a sentence a person can act on.

use crate::daemon::engine::EngineError;
use crate::daemon::store::{PairingError, StoreError};
use crate::protocol::ErrorKind;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidParams(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Forbidden {
        message: String,
        /// The scope the caller lacks, when that is why.
        scope: Option<&'static str>,
    },
    #[error("{message}")]
    PairingRequired {
        message: String,
        /// The pending request this device now has (its id, and the device's fingerprint);
        /// `None` when the caller has not proven a device yet.
        request: Option<(String, String)>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_ms: u64,
    },
    #[error("{0}")]
    ShuttingDown(String),
    /// The store could not do it (a full disk, damage): the message says which.
    #[error("{0}")]
    Store(StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub fn forbidden(message: impl Into<String>) -> ServiceError {
        ServiceError::Forbidden {
            message: message.into(),
            scope: None,
        }
    }

    /// The application error kind, for transports.
    pub fn kind(&self) -> Option<ErrorKind> {
        Some(match self {
            ServiceError::NotFound(_) => ErrorKind::NotFound,
            ServiceError::Forbidden { .. } => ErrorKind::Forbidden,
            ServiceError::PairingRequired { .. } => ErrorKind::PairingRequired,
            ServiceError::Conflict(_) => ErrorKind::Conflict,
            ServiceError::Busy { .. } => ErrorKind::Busy,
            ServiceError::ShuttingDown(_) => ErrorKind::ShuttingDown,
            ServiceError::InvalidParams(_) | ServiceError::Store(_) | ServiceError::Internal(_) => {
                return None;
            }
        })
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            StoreError::WriterGone => ServiceError::ShuttingDown(
                "the daemon is shutting down; retry once it is back (`openclaw daemon start`)"
                    .into(),
            ),
            e @ (StoreError::DiskFull { .. } | StoreError::Io { .. }) => ServiceError::Store(e),
            other => {
                tracing::error!("store: {other}");
                ServiceError::Store(other)
            }
        }
    }
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownAgent(_) | EngineError::NoRun(_) | EngineError::NoRuns(_) => {
                ServiceError::NotFound(e.to_string())
            }
            EngineError::Busy {
                message,
                retry_after_ms,
            } => ServiceError::Busy {
                message,
                retry_after_ms,
            },
            EngineError::ShuttingDown => ServiceError::ShuttingDown(e.to_string()),
            EngineError::Store(e) => e.into(),
        }
    }
}

impl From<PairingError> for ServiceError {
    fn from(e: PairingError) -> Self {
        match e {
            PairingError::NoRequest(_) | PairingError::NoDevice(_) => {
                ServiceError::NotFound(e.to_string())
            }
            PairingError::Ambiguous(_) | PairingError::ShortPrefix(_) => {
                ServiceError::InvalidParams(e.to_string())
            }
            PairingError::AlreadyRevoked(_) => ServiceError::Conflict(e.to_string()),
            PairingError::TooMany { .. } => ServiceError::Busy {
                message: e.to_string(),
                retry_after_ms: 60_000,
            },
            PairingError::Store(e) => e.into(),
        }
    }
}
