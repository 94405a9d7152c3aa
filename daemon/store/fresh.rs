//! A brand-new store, built whole in a temporary file and renamed into place.
//!
//! Built in place, a new store cost seven syncs before the daemon could answer (SQLite
//! switching a new file to WAL through a rollback journal, the migrations' commit, the
//! directory). Nothing in a new store is anyone's data yet, so it is built with no journal and
//! no syncs, synced once and renamed over the empty or missing file: one sync.
//!
//! Crash safety: a crash while building leaves only the temporary file, removed by the next
//! start. The rename is made durable by the first acknowledged commit: SQLite syncs the
//! directory when it creates the WAL that commit is written to, and a store whose rename was
//! lost before any commit is simply built again.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::StoreError;
use super::schema;

/// `path` with `suffix` added: SQLite's side files (`-wal`, `-shm`, `-journal`), and `.new`,
/// the temporary file a new store is built in.
fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether the store at `path` has never held anything: missing or empty, with no WAL beside
/// it that could hold its first pages. Anything else is opened as it is.
pub fn is_new(path: &Path) -> bool {
    let empty = match std::fs::metadata(path) {
        Ok(m) => m.len() == 0,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    let wal_len = std::fs::metadata(side_file(path, "-wal")).map_or(0, |m| m.len());
    empty && wal_len == 0
}

/// Builds a new, migrated store in WAL mode at `path` (see the module docs), private to its
/// owner (0600).
pub fn build(path: &Path) -> Result<(), StoreError> {
    let building = side_file(path, ".new");
    let io_err = |what: &str, e: std::io::Error| StoreError::Open {
        path: path.to_path_buf(),
        detail: format!("{what} {}: {e}", building.display()),
    };
    // What a crash while building left.
    for leftover in [
        building.clone(),
        side_file(&building, "-journal"),
        side_file(&building, "-wal"),
        side_file(&building, "-shm"),
    ] {
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot remove the unfinished new store", e)),
        }
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        // 0600 before SQLite opens it: its side files take its mode.
        std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&building)
            .map_err(|e| io_err("cannot create", e))?;
    }
    let built = (|| -> Result<(), StoreError> {
        let mut conn = Connection::open(&building)?;
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
        schema::migrate(&mut conn).map_err(|e| StoreError::Migration(e.to_string()))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Migration(format!(
                "journal_mode is {mode}, WAL was asked for"
            )));
        }
        // Closing the only connection folds the WAL into the file and removes it.
        conn.close().map_err(|(_, e)| StoreError::from(e))?;
        Ok(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_file(&building);
        return Err(match e {
            StoreError::Open { .. } => e,
            other => StoreError::Open {
                path: path.to_path_buf(),
                detail: format!("cannot build a new store: {other}"),
            },
        });
    }
    std::fs::File::open(&building)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot sync", e))?;
    std::fs::rename(&building, path).map_err(|e| io_err("cannot rename into place", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_store_is_migrated_in_wal_mode_private_and_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("openclaw.db");
        assert!(is_new(&path));
        build(&path).expect("build");
        assert!(!is_new(&path));
        let mode = std::fs::metadata(&path)
            .expect("store")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let conn = Connection::open(&path).expect("open");
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(journal, "wal");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, schema::SCHEMA_VERSION);
        drop(conn);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["openclaw.db"], "nothing but the store is left");
    }

    #[test]
    fn what_a_crash_while_building_left_is_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("openclaw.db");
        std::fs::write(&path, b"").expect("empty store file");
        std::fs::write(side_file(&path, ".new"), b"half a store").expect("leftover");
        std::fs::write(side_file(&side_file(&path, ".new"), "-journal"), b"x").expect("leftover");
        assert!(is_new(&path), "an empty file is a new store");
        build(&path).expect("build over the leftovers");
        assert!(!side_file(&path, ".new").exists());
        assert!(!side_file(&side_file(&path, ".new"), "-journal").exists());
        let conn = Connection::open(&path).expect("open");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, schema::SCHEMA_VERSION);
    }

    #[test]
    fn an_empty_file_with_a_wal_beside_it_is_not_new() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("openclaw.db");
        std::fs::write(&path, b"").expect("empty store file");
        std::fs::write(side_file(&path, "-wal"), b"frames").expect("wal");
        assert!(!is_new(&path));
    }
}
