//! What the daemon asks of the kernel, for the `floors` section: bytes it sends to storage
//! (/proc/PID/io), and the sync calls and WAL page writes `strace` sees it make.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{self, RawConn};

/// `write_bytes` of /proc/PID/io: bytes this process caused to be sent to storage.
pub fn write_bytes(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The sync calls in an `strace -y` log, by the file they synced (its name only).
pub fn syncs_in(log: &Path) -> (usize, String) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut by_file: std::collections::BTreeMap<String, usize> = Default::default();
    let mut total = 0;
    for line in text.lines() {
        if line.contains("resumed>") {
            continue;
        }
        let Some(at) = ["fsync(", "fdatasync(", "sync_file_range(", "syncfs("]
            .iter()
            .find_map(|c| line.find(c).map(|i| i + c.len()))
        else {
            continue;
        };
        total += 1;
        let file = line[at..]
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map(|(p, _)| p.rsplit('/').next().unwrap_or(p).to_string())
            .unwrap_or_else(|| "?".into());
        *by_file.entry(file).or_default() += 1;
    }
    let detail = by_file
        .iter()
        .map(|(f, n)| format!("`{f}` ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    (total, detail)
}

pub const SYNC_CALLS: &str = "trace=fsync,fdatasync,sync_file_range,syncfs";
/// The sync calls and the positioned writes SQLite writes its WAL with.
pub const SYNC_AND_WAL_CALLS: &str = "trace=fsync,fdatasync,sync_file_range,syncfs,pwrite64";

/// The whole pages (4 KiB writes) written to a WAL (`*-wal`) in an `strace -y -s 0` log: with
/// buffers not shown, a page's frame data is `pwrite64(FD</path-wal>, ""..., 4096, OFFSET)`.
pub fn wal_pages_in(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("resumed>"))
        .filter(|l| l.contains("pwrite64(") && l.contains("-wal>") && l.contains("\"\"..., 4096, "))
        .count()
}

pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `strace` attached to every thread of `pid`, logging the calls `trace` names (an `strace -e`
/// expression such as [`SYNC_CALLS`]) to `log`, buffers not shown; returns once it says it has
/// attached them all.
pub fn strace_attach(pid: u32, log: &Path, trace: &str) -> Option<Child> {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count();
    let mut child = Command::new("strace")
        .args(["-f", "-y", "-s", "0", "-e", trace, "-o"])
        .arg(log)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut err = child.stderr.take()?;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = common::deadline(10);
    // It says "Process N attached with M threads" once, or "attached" once per thread.
    let all_attached =
        |s: &str| s.contains(" threads\n") || s.matches("attached").count() >= threads;
    while !all_attached(&seen) && Instant::now() < deadline {
        match err.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Some(child)
}

pub fn interrupt_and_wait(mut child: Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = common::wait_child(&mut child, Duration::from_secs(10));
}

/// A fresh home's daemon started under `strace`: the sync calls until its first reply and
/// those of its clean stop.
pub fn cold_start_syncs() -> Option<((usize, String), (usize, String))> {
    let home = tempfile::Builder::new()
        .prefix("openclaw-bench-")
        .tempdir()
        .ok()?;
    std::fs::write(home.path().join("config.toml"), "").ok()?;
    let log = home.path().join("strace.log");
    let (ready_r, ready_w) = common::pipe();
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-e", SYNC_CALLS, "-o"])
        .arg(&log)
        .arg(common::OPENCLAWD)
        .args(["--ready-fd", "3"])
        .env("OPENCLAW_HOME", home.path())
        .env_remove("OPENCLAW_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::pass_as_fd_3(&mut cmd, ready_w.as_raw_fd());
    let mut child = cmd.spawn().ok()?;
    drop(ready_w);
    // strace keeps its own copy of the pipe's write end, so this reads until "ready", not
    // to the end of the pipe.
    let mut buf = String::new();
    let mut ready = std::fs::File::from(ready_r);
    let mut chunk = [0u8; 256];
    while !buf.contains("ready") {
        match ready.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    if !buf.starts_with("ready") {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    RawConn::connect(&home.path().join("openclaw.sock")).call_ok("hello", json!({}));
    let at_start = syncs_in(&log);
    let daemon: Option<i32> =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children", pid = child.id()))
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse().ok());
    if let Some(pid) = daemon {
        // SAFETY: plain kill(2) on the daemon this function started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let _ = common::wait_child(&mut child, Duration::from_secs(10));
    let all = syncs_in(&log);
    let at_stop = (all.0.saturating_sub(at_start.0), String::new());
    Some((at_start, at_stop))
}
