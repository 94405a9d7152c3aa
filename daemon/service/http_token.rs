//! The HTTP surface's bearer token: 32 random bytes from `ring`, hex, in `http.token` in the
//! data dir (0600). The file is the one copy: created when missing at a start that listens on
//! `[http] listen`, or by the first `http.token`; replaced
//! (written aside, then renamed over) by `http.token` with `rotate`, and read by the HTTP
//! transport, which notices a replaced file by its identity (see [`TokenFile::current`]).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Caller, Result, ServiceError, SessionService};
use crate::protocol::{HttpTokenParams, HttpTokenResult, methods, scopes};

/// The token file's name in the data dir.
pub const TOKEN_FILE: &str = "http.token";

/// A fresh token: 32 random bytes as 64 hex characters.
pub fn new_token() -> std::io::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the system random number generator failed"))?;
    Ok(crate::device::hex(&bytes))
}

/// The token file, with the last token read from it.
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    identity: (u64, u64, i64, i64),
    token: String,
}

impl TokenFile {
    pub fn in_data_dir(data_dir: &Path) -> TokenFile {
        TokenFile {
            path: data_dir.join(TOKEN_FILE),
            cached: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token, created first when there is none.
    pub fn ensure(&self) -> std::io::Result<String> {
        match self.current()? {
            Some(t) => Ok(t),
            None => self.rotate(),
        }
    }

    /// Writes a new token (the old one stops working at once) and returns it.
    pub fn rotate(&self) -> std::io::Result<String> {
        let token = new_token()?;
        let aside = self
            .path
            .with_extension(format!("token.{}", uuid::Uuid::new_v4().simple()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&aside)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&aside, &self.path)?;
        Ok(token)
    }

    /// The token in the file now (`None` when there is no file). A `stat` per call: the file
    /// is read again only when it was replaced or changed.
    pub fn current(&self) -> std::io::Result<Option<String>> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let identity = (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec());
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_ref()
            && c.identity == identity
        {
            return Ok(Some(c.token.clone()));
        }
        if meta.mode() & 0o077 != 0 {
            // Someone widened it: only the owner may read a secret.
            tracing::warn!(
                "{} was readable by others (mode {:04o}); setting it to 0600",
                self.path.display(),
                meta.mode() & 0o7777
            );
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))?;
        }
        let token = std::fs::read_to_string(&self.path)?.trim().to_string();
        if token.is_empty() {
            *cached = None;
            return Ok(None);
        }
        *cached = Some(Cached {
            identity,
            token: token.clone(),
        });
        Ok(Some(token))
    }
}

impl SessionService {
    /// `http.token`: the HTTP bearer token (created when missing), or a new one with `rotate`.
    pub fn http_token(&self, caller: &Caller, p: HttpTokenParams) -> Result<HttpTokenResult> {
        self.authorize(caller, methods::HTTP_TOKEN, scopes::ADMIN)?;
        let file = TokenFile::in_data_dir(&self.daemon.paths.data_dir);
        let token = if p.rotate == Some(true) {
            file.rotate()
        } else {
            file.ensure()
        }
        .map_err(|e| {
            ServiceError::Internal(format!(
                "cannot {} the HTTP token in {}: {e}",
                if p.rotate == Some(true) {
                    "replace"
                } else {
                    "read"
                },
                file.path().display()
            ))
        })?;
        Ok(HttpTokenResult {
            token,
            path: file.path().display().to_string(),
            listen: self.engine.config().http.listen.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::in_data_dir(dir.path());
        assert_eq!(file.current().unwrap(), None);
        let first = file.ensure().unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(file.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            file.ensure().unwrap(),
            first,
            "ensure keeps the token there is"
        );
        let second = file.rotate().unwrap();
        assert_ne!(first, second);
        assert_eq!(file.current().unwrap(), Some(second.clone()));
        // Another reader of the same file sees the replacement at once.
        let other = TokenFile::in_data_dir(dir.path());
        assert_eq!(other.current().unwrap(), Some(second));
    }

    #[test]
    fn a_widened_file_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::in_data_dir(dir.path());
        file.ensure().unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let fresh = TokenFile::in_data_dir(dir.path());
        assert!(fresh.current().unwrap().is_some());
        let mode = std::fs::metadata(file.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
