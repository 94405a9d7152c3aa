//! The commit floors of the `floors` section: the least a durable write costs on the disk
//! under the daemon's data directory, measured the ways the daemon's rows are, so each row
//! has a floor made like it:
//!
//! - back to back, one 4 KiB page per `fdatasync` (the commit floor of issue 16);
//! - back to back, as many pages per `fdatasync` as one spawn's commit writes to the WAL;
//! - one per fresh process (`benches/floor/commit.c`), as the client floor's calls come: on
//!   this VM a sync after a millisecond of idle costs about twice one made right after another.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Stats, stats, time_cmd};

pub const PAGE: usize = 4096;
/// Bytes of the preallocated file; each sample rewrites some of its pages.
const FILE_BYTES: u64 = 1 << 20;

/// A preallocated file in the data directory, synced whole, so each sample syncs data only
/// (not the file's size); removed when dropped.
pub struct FloorFile {
    path: PathBuf,
    file: File,
}

impl FloorFile {
    pub fn create(dir: &Path) -> std::io::Result<FloorFile> {
        let path = dir.join("bench-commit-floor");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        file.write_all_at(&vec![0u8; FILE_BYTES as usize], 0)?;
        file.sync_all()?;
        Ok(FloorFile { path, file })
    }

    fn pages(&self) -> u64 {
        FILE_BYTES / PAGE as u64
    }

    /// `n` samples, each one write of `pages` contiguous pages and the `fdatasync` after it,
    /// one right after another: the time of each `fdatasync`.
    pub fn back_to_back(&self, n: usize, pages: usize) -> std::io::Result<Stats> {
        let pages = pages.clamp(1, self.pages() as usize);
        let data = vec![0x5au8; PAGE * pages];
        let places = self.pages() - pages as u64 + 1;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            self.file
                .write_all_at(&data, (i * pages as u64 % places) * PAGE as u64)?;
            let t0 = Instant::now();
            self.file.sync_data()?;
            samples.push(t0.elapsed());
        }
        Ok(stats(&samples))
    }

    /// One sample from a fresh process of `program` (`floor-commit`), writing page `i` (modulo
    /// the file's pages): the time of its `fdatasync`, as the program measured it.
    pub fn sync_from_process(&self, program: &Path, i: usize) -> Duration {
        let (_, out) = time_cmd(
            Command::new(program)
                .arg(&self.path)
                .arg((i as u64 % self.pages()).to_string())
                .env_clear()
                .stdin(Stdio::null()),
            "floor-commit",
        );
        let ns: u64 = out
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("floor-commit printed {out:?}: {e}"));
        Duration::from_nanos(ns)
    }
}

impl Drop for FloorFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
