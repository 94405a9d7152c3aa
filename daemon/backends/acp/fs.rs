//! `fs/read_text_file` and `fs/write_text_file`, confined to the session workspace.
//!
//! A path is resolved lexically first (so `../x` never leaves), then through the file system
//! (so a symlink pointing out is caught), and the file is opened without following a final
//! symlink. This confines what the agent asks *openclaw* to do; it is not a sandbox for the
//! agent itself, which runs as the same user and can open files on its own.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND};

/// Largest file returned to an agent: past this the answer would not fit a sane line.
pub const MAX_READ_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FsError {
    #[error("{0} is outside the session workspace")]
    Outside(PathBuf),
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    #[error("{0} is larger than {MAX_READ_BYTES} bytes")]
    TooLarge(PathBuf),
    #[error("{0}")]
    Io(String),
}

impl FsError {
    pub fn rpc_code(&self) -> i64 {
        match self {
            FsError::Outside(_) => INVALID_PARAMS,
            FsError::NotFound(_) => RESOURCE_NOT_FOUND,
            FsError::TooLarge(_) => INVALID_PARAMS,
            FsError::Io(_) => INTERNAL_ERROR,
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> FsError {
    match e.kind() {
        ErrorKind::NotFound => FsError::NotFound(path.to_path_buf()),
        _ => FsError::Io(format!("{}: {e}", path.display())),
    }
}

impl Workspace {
    /// The workspace must exist: its real path is what every request is checked against.
    pub fn new(root: &Path) -> std::io::Result<Workspace> {
        Ok(Workspace {
            root: std::fs::canonicalize(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute, with `.` and `..` applied; relative paths are taken from the workspace.
    fn lexical(&self, requested: &Path) -> PathBuf {
        let joined = self.root.join(requested);
        let mut out = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    }

    fn inside(&self, real: &Path, requested: &Path) -> Result<(), FsError> {
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(FsError::Outside(requested.to_path_buf()))
        }
    }

    /// The real path of an existing file inside the workspace.
    pub fn resolve_existing(&self, requested: &Path) -> Result<PathBuf, FsError> {
        let lexical = self.lexical(requested);
        self.inside(&lexical, requested)?;
        let real = std::fs::canonicalize(&lexical).map_err(|e| io_error(requested, e))?;
        self.inside(&real, requested)?;
        Ok(real)
    }

    /// Where a write lands: the deepest existing ancestor must be inside once symlinks are
    /// resolved, and the rest is plain names. A final symlink is followed only if its target
    /// exists inside; a dangling one is refused, as it could point anywhere.
    pub fn resolve_for_write(&self, requested: &Path) -> Result<PathBuf, FsError> {
        let lexical = self.lexical(requested);
        self.inside(&lexical, requested)?;
        if std::fs::symlink_metadata(&lexical).is_ok() {
            return match std::fs::canonicalize(&lexical) {
                Ok(real) => {
                    self.inside(&real, requested)?;
                    Ok(real)
                }
                Err(_) => Err(FsError::Outside(requested.to_path_buf())),
            };
        }
        let mut existing = lexical.as_path();
        let mut rest = Vec::new();
        while std::fs::symlink_metadata(existing).is_err() {
            let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                return Err(FsError::Outside(requested.to_path_buf()));
            };
            rest.push(name.to_owned());
            existing = parent;
        }
        let mut real = std::fs::canonicalize(existing).map_err(|e| io_error(requested, e))?;
        self.inside(&real, requested)?;
        for name in rest.iter().rev() {
            real.push(name);
        }
        Ok(real)
    }

    /// The file's text, from 1-based `line` for `limit` lines when given.
    pub async fn read_text(
        &self,
        requested: &Path,
        line: Option<u32>,
        limit: Option<u32>,
    ) -> Result<String, FsError> {
        let real = self.resolve_existing(requested)?;
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real)
            .await
            .map_err(|e| io_error(requested, e))?;
        let meta = file.metadata().await.map_err(|e| io_error(requested, e))?;
        if !meta.is_file() {
            return Err(FsError::Io(format!(
                "{} is not a file",
                requested.display()
            )));
        }
        let mut bytes = Vec::new();
        file.take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| io_error(requested, e))?;
        if bytes.len() as u64 > MAX_READ_BYTES {
            return Err(FsError::TooLarge(requested.to_path_buf()));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if line.is_none() && limit.is_none() {
            return Ok(text);
        }
        let skip = line.unwrap_or(1).saturating_sub(1) as usize;
        let take = limit.map_or(usize::MAX, |l| l as usize);
        Ok(text.split_inclusive('\n').skip(skip).take(take).collect())
    }

    /// Writes the whole file, creating it and missing directories inside the workspace.
    pub async fn write_text(&self, requested: &Path, content: &str) -> Result<(), FsError> {
        let real = self.resolve_for_write(requested)?;
        if let Some(parent) = real.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(requested, e))?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real)
            .await
            .map_err(|e| io_error(requested, e))?;
        file.write_all(content.as_bytes())
            .await
            .map_err(|e| io_error(requested, e))?;
        file.flush().await.map_err(|e| io_error(requested, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        ws: Workspace,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "one\ntwo\nthree\n").unwrap();
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, "secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link-out")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("dir-out")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/a.txt"), root.join("link-in")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), root.join("dangling")).unwrap();
        Fixture {
            ws: Workspace::new(&root).unwrap(),
            outside: std::fs::canonicalize(outside).unwrap(),
            _dir: dir,
        }
    }

    #[tokio::test]
    async fn reads_inside_with_lines_and_limits() {
        let f = fixture();
        let abs = f.ws.root().join("sub/a.txt");
        assert_eq!(
            f.ws.read_text(&abs, None, None).await.unwrap(),
            "one\ntwo\nthree\n"
        );
        assert_eq!(
            f.ws.read_text(Path::new("sub/a.txt"), Some(2), Some(1))
                .await
                .unwrap(),
            "two\n"
        );
        assert_eq!(
            f.ws.read_text(Path::new("sub/../sub/a.txt"), Some(3), None)
                .await
                .unwrap(),
            "three\n"
        );
        assert_eq!(
            f.ws.read_text(Path::new("link-in"), None, None)
                .await
                .unwrap(),
            "one\ntwo\nthree\n"
        );
        assert!(matches!(
            f.ws.read_text(Path::new("sub/none"), None, None).await,
            Err(FsError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn reads_that_escape_are_refused() {
        let f = fixture();
        for path in [
            PathBuf::from("../secret.txt"),
            f.outside.clone(),
            PathBuf::from("link-out"),
            PathBuf::from("dir-out/secret.txt"),
            PathBuf::from("/etc/passwd"),
        ] {
            let err = f.ws.read_text(&path, None, None).await.unwrap_err();
            assert_eq!(err, FsError::Outside(path.clone()), "{path:?}");
            assert_eq!(err.rpc_code(), INVALID_PARAMS);
        }
    }

    #[tokio::test]
    async fn writes_land_inside_and_escapes_are_refused() {
        let f = fixture();
        f.ws.write_text(Path::new("new/dir/b.txt"), "bee")
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(f.ws.root().join("new/dir/b.txt")).unwrap(),
            "bee"
        );
        // Through a symlink that stays inside, the target is written.
        f.ws.write_text(Path::new("link-in"), "replaced")
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(f.ws.root().join("sub/a.txt")).unwrap(),
            "replaced"
        );
        for path in [
            PathBuf::from("../evil.txt"),
            f.outside.clone(),
            PathBuf::from("link-out"),
            PathBuf::from("dir-out/evil.txt"),
            PathBuf::from("dangling"),
        ] {
            let err = f.ws.write_text(&path, "x").await.unwrap_err();
            assert_eq!(err, FsError::Outside(path.clone()), "{path:?}");
        }
        assert_eq!(std::fs::read_to_string(&f.outside).unwrap(), "secret");
        assert!(!f.outside.with_file_name("evil.txt").exists());
        assert!(!f.outside.with_file_name("nowhere").exists());
    }
}
