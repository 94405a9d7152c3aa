//! What can go wrong in the store, with the cause kept: a full disk says so and names the
//! store's path, rather than hiding behind "stored data is not valid".

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no space left on the device holding {path}; free some space there (nothing acknowledged was lost, and what could not be stored is retried once there is room)"
    )]
    DiskFull { path: PathBuf },
    #[error("cannot write the store at {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error(
        "the store at {path} is damaged ({detail}); the daemon will not use it: move it aside (with its -wal and -shm files) to start afresh, or restore a backup — `openclawd --check` prints the whole report, and `sqlite3 FILE .recover` can save what is readable"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("store error: {0}")]
    Sqlite(SqlError),
    #[error("{0}")]
    Migration(String),
    #[error("cannot open the store at {path}: {detail}")]
    Open { path: PathBuf, detail: String },
    #[error("the store's writer has stopped (the daemon is shutting down)")]
    WriterGone,
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The session a change was for no longer exists (deleted in between).
    #[error("the session no longer exists")]
    SessionGone,
    /// The change contradicts the stored state (a delete while a run is queued or active).
    #[error("{0}")]
    Conflict(String),
}

/// A SQLite error as text with its primary code, so it can be handed to every caller of a
/// failed group commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub code: Option<ErrorCode>,
    pub message: String,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let code = e.sqlite_error_code();
        StoreError::Sqlite(SqlError {
            code,
            message: e.to_string(),
        })
    }
}

impl From<super::schema::MigrationError> for StoreError {
    fn from(e: super::schema::MigrationError) -> Self {
        match e {
            super::schema::MigrationError::Sqlite(e) => e.into(),
            other => StoreError::Migration(other.to_string()),
        }
    }
}

impl StoreError {
    /// Names the store's file in errors that come from the disk under it.
    pub fn at(self, path: &Path) -> StoreError {
        let StoreError::Sqlite(SqlError { code, message }) = &self else {
            return self;
        };
        match code {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull {
                path: path.to_path_buf(),
            },
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied,
            ) => StoreError::Io {
                path: path.to_path_buf(),
                detail: message.clone(),
            },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Damaged {
                path: path.to_path_buf(),
                detail: message.clone(),
            },
            _ => self,
        }
    }

    /// True when retrying later may succeed (the disk had no room, or failed for a moment).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. } | StoreError::Io { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: ErrorCode) -> StoreError {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code,
                extended_code: 0,
            },
            None,
        )
        .into()
    }

    #[test]
    fn a_full_disk_names_the_store() {
        let e = sqlite(ErrorCode::DiskFull).at(Path::new("/d/openclaw.db"));
        let text = e.to_string();
        assert!(
            text.starts_with("no space left on the device holding /d/openclaw.db"),
            "{text}"
        );
        assert!(e.is_transient());
    }

    #[test]
    fn other_errors_keep_their_cause() {
        let e = sqlite(ErrorCode::ConstraintViolation).at(Path::new("/d/x.db"));
        assert!(matches!(e, StoreError::Sqlite(_)));
        assert!(!e.is_transient());
        let e = sqlite(ErrorCode::NotADatabase).at(Path::new("/d/x.db"));
        assert!(e.to_string().contains("/d/x.db is damaged"), "{e}");
    }
}
