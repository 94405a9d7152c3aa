//! `daemon logs [-f]`: the daemon's log file, and with `-f` what it writes next, woken by
//! inotify (never by a timer). A log that is truncated or replaced (rotated) is picked up
//! from its new start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::Args;
use openclaw::protocol::{DaemonStatus, NoParams, methods};

use super::super::Context;
use crate::autostart::{Autostart, LOG_FILE};
use crate::failure::{Exit, Failure};
use crate::output::write_stdout;
use crate::watch::{Watch, Woke, readable, wait_for};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing what the daemon writes, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (default: all; with --follow, 10)
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<usize>,
}

pub fn logs(ctx: &Context, args: LogsArgs) -> Result<(), Failure> {
    // Caught from the start: Ctrl-C while the first lines print ends a follow the same way.
    let watch = args.follow.then(|| Watch::ctrl_c().and_stdout());
    let path = log_path(ctx)?;
    let mut file = File::open(&path).map_err(|e| no_log(&path, &e))?;
    // Watched before the first read, so nothing written in between is missed.
    let notify = match &watch {
        Some(_) => Some(Inotify::watch(&path).map_err(|e| {
            Failure::failed(format!(
                "cannot watch the daemon log {}: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    let lines = args.lines.or(args.follow.then_some(10));
    let start = match lines {
        Some(n) => tail_start(&mut file, n).map_err(|e| read_failure(&path, &e))?,
        None => 0,
    };
    file.seek(SeekFrom::Start(start))
        .map_err(|e| read_failure(&path, &e))?;
    copy_new(&mut file, &path)?;
    match (&watch, &notify) {
        (Some(watch), Some(notify)) => follow(file, &path, watch, notify),
        _ => Ok(()),
    }
}

/// The file the running daemon says it logs to; else where a daemon started on demand logs.
fn log_path(ctx: &Context) -> Result<PathBuf, Failure> {
    let paths = ctx.paths()?;
    let fallback = paths.data_dir.join(LOG_FILE);
    let Ok(mut client) = ctx.client_with(Autostart::Never) else {
        return Ok(fallback);
    };
    match client.call::<_, DaemonStatus>(methods::DAEMON_STATUS, &NoParams {}) {
        Ok(status) => match (status.log_file, status.started_by.as_deref()) {
            (Some(file), _) => Ok(PathBuf::from(file)),
            (None, Some("systemd")) => Err(Failure::new(
                Exit::NotFound,
                "the daemon runs under systemd and logs to its journal: `journalctl --user -u openclawd`",
            )),
            (None, Some(by)) if by != "autostart" => Err(Failure::new(
                Exit::NotFound,
                format!(
                    "the daemon (pid {}, started by {by}) writes its log to its own stderr, not to a file",
                    status.pid
                ),
            )),
            _ => Ok(fallback),
        },
        Err(_) => Ok(fallback),
    }
}

fn no_log(path: &Path, err: &io::Error) -> Failure {
    if err.kind() == io::ErrorKind::NotFound {
        Failure::new(
            Exit::NotFound,
            format!(
                "there is no daemon log at {}: a daemon started by openclaw writes one there; one run in the foreground (`openclaw daemon run`) logs to its terminal",
                path.display()
            ),
        )
    } else {
        read_failure(path, err)
    }
}

fn read_failure(path: &Path, err: &io::Error) -> Failure {
    Failure::failed(format!(
        "cannot read the daemon log {}: {err}",
        path.display()
    ))
}

/// Where the last `n` lines of `file` begin.
fn tail_start(file: &mut File, n: usize) -> io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut newlines = 0;
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        for (i, &b) in chunk.iter().enumerate().rev() {
            if b != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == n {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// Copies what the file has from where it is to stdout.
fn copy_new(file: &mut File, path: &Path) -> Result<(), Failure> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_failure(path, &e)),
        };
        write_stdout(&String::from_utf8_lossy(&buf[..n]))?;
    }
}

fn follow(mut file: File, path: &Path, watch: &Watch, notify: &Inotify) -> Result<(), Failure> {
    loop {
        let mut wakes = watch.wakes();
        wakes.push(readable(notify.fd.as_fd()));
        let woke = wait_for(&wakes).map_err(|e| read_failure(path, &e))?;
        if woke < wakes.len() - 1 {
            return Err(match watch.woke(woke) {
                Woke::Interrupted => Failure::interrupted(),
                Woke::StdoutGone => Failure::stdout_closed(),
            });
        }
        notify.drain();
        // Replaced (rotated) or truncated: start again from the top of what is there now.
        let here = file.stream_position().map_err(|e| read_failure(path, &e))?;
        match std::fs::metadata(path) {
            Ok(meta) if meta.ino() != file.metadata().map(|m| m.ino()).unwrap_or(0) => {
                copy_new(&mut file, path)?;
                if let Ok(new) = File::open(path) {
                    file = new;
                }
            }
            Ok(meta) if meta.len() < here => {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| read_failure(path, &e))?;
            }
            _ => {}
        }
        copy_new(&mut file, path)?;
    }
}

/// An inotify instance watching a file and its directory (for a file created in its place).
struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    fn watch(path: &Path) -> io::Result<Inotify> {
        // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just created this fd; it is ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let notify = Inotify { fd };
        notify.add(
            path,
            libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_MOVE_SELF | libc::IN_DELETE_SELF,
        )?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            notify.add(dir, libc::IN_CREATE | libc::IN_MOVED_TO)?;
        }
        Ok(notify)
    }

    fn add(&self, path: &Path, mask: u32) -> io::Result<()> {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        use std::os::fd::AsRawFd;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        if unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads the pending events away: what changed is read from the file itself.
    fn drain(&self) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer of the size given; the fd is non-blocking.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tail_of(text: &str, n: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, text).unwrap();
        let mut file = File::open(&path).unwrap();
        let start = tail_start(&mut file, n).unwrap();
        text[start as usize..].to_string()
    }

    #[test]
    fn the_tail_is_the_last_lines() {
        assert_eq!(tail_of("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_of("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_of("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail_of("", 3), "");
        let long: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail_of(&long, 2), "line 49998\nline 49999\n");
    }

    #[test]
    fn a_write_to_the_log_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclawd.log");
        std::fs::write(&path, "old\n").unwrap();
        let notify = Inotify::watch(&path).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"new\n").unwrap();
        let wakes = [readable(notify.fd.as_fd())];
        assert_eq!(wait_for(&wakes).unwrap(), 0);
        notify.drain();
    }
}
