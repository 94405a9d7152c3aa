//! Agent processes that try to outlive their run. A run's command runs in its own process
//! group, killed with the run; but a process can leave the group (`setsid`), and when the
//! daemon dies (`kill -9`) only its direct child gets `PR_SET_PDEATHSIG`. So:
//!
//! - the daemon is a child subreaper: a process that escapes its run's group comes back to it
//!   when its parent dies, and is found by the run id in its environment and killed when the
//!   run ends;
//! - at start-up, every process a previous daemon of the same socket left behind (found by
//!   the `OPENCLAW_SOCKET` and `OPENCLAW_SESSION_KEY` every agent process inherits) is killed
//!   before anything runs, and the interrupted runs say so.
//!
//! Not contained: a process that clears its environment *and* leaves its group while the
//! daemon keeps running is only caught when the daemon next starts if it kept the variables,
//! and not at all otherwise; cgroups are not used.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

/// Processes seen escaped and killed, reaped once they are zombies.
static ADOPTED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Makes orphaned descendants come back to the daemon instead of init.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::warn!(
            "cannot become a child subreaper: {}; processes that leave their run's group will not come back to the daemon",
            std::io::Error::last_os_error()
        );
    }
}

/// One process as `/proc` shows it.
struct Proc {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    zombie: bool,
    /// When it started, in clock ticks since boot.
    start: u64,
}

/// Reads a `/proc` file whole into `buf`, which keeps its size from one file to the next, and
/// returns its length. `std::fs::read` sizes its buffer by the file's length, which `/proc`
/// gives as 0, so it asks for the length and then reads 32 bytes, 32, 64, ...: about eight
/// system calls for a `stat` line and more for an environment, where this makes four (open,
/// the data, the end, close). A sweep reads a file of every process on the host (after every
/// exec run, and at start-up): on a host of 570 processes, reading them this way took 12-20%
/// off an exec run's daemon CPU and a quarter off the daemon's start-up.
fn read_proc(path: &str, buf: &mut Vec<u8>) -> Option<usize> {
    let mut file = std::fs::File::open(path).ok()?;
    if buf.is_empty() {
        buf.resize(PROC_READ, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => return Some(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// What [`read_proc`] reads at first: a `stat` line and most environments in one call.
const PROC_READ: usize = 16 * 1024;

fn read_stat(pid: i32, buf: &mut Vec<u8>) -> Option<Proc> {
    let len = read_proc(&format!("/proc/{pid}/stat"), buf)?;
    let stat = std::str::from_utf8(&buf[..len]).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // Fields 3.. of proc(5): state, ppid, pgrp, ... starttime is field 22.
    Some(Proc {
        pid,
        zombie: *fields.first()? == "Z",
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// When a process started (clock ticks since boot): what a run's descendants start after.
pub fn start_time(pid: u32) -> Option<u64> {
    read_stat(pid as i32, &mut Vec::new()).map(|p| p.start)
}

fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The `NAME=value` pairs of a process's environment (empty when unreadable).
fn environ(pid: i32, buf: &mut Vec<u8>) -> BTreeMap<String, String> {
    let Some(len) = read_proc(&format!("/proc/{pid}/environ"), buf) else {
        return BTreeMap::new();
    };
    buf[..len]
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            let (k, v) = kv.split_once('=')?;
            k.starts_with("OPENCLAW_")
                .then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a pid; at worst it names a process that is gone (ESRCH).
    unsafe { libc::kill(pid, signal) };
}

/// Kills the processes of run `run_id` that left its process group `pgid` (started at or
/// after `since`, so only processes the run could have started are looked at), and reaps
/// zombies the daemon adopted. Returns how many were killed.
pub fn kill_escaped(run_id: &str, pgid: i32, since: u64) -> usize {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut killed = Vec::new();
    let mut buf = Vec::new();
    for pid in all_pids() {
        let Some(p) = read_stat(pid, &mut buf) else {
            continue;
        };
        if p.zombie {
            if p.ppid == me {
                reap_if_adopted(p.pid);
            }
            continue;
        }
        if p.start < since || p.pgrp == pgid || p.pid == me {
            continue;
        }
        if environ(p.pid, &mut buf)
            .get("OPENCLAW_RUN_ID")
            .map(String::as_str)
            == Some(run_id)
        {
            kill(p.pid, libc::SIGKILL);
            killed.push(p.pid);
        }
    }
    let mut adopted = ADOPTED.lock().unwrap_or_else(|e| e.into_inner());
    let set = adopted.get_or_insert_with(HashSet::new);
    for pid in &killed {
        set.insert(*pid);
    }
    drop(adopted);
    for pid in &killed {
        // Killed with SIGKILL: gone at once, so this rarely has to wait for a later scan.
        reap_if_adopted(*pid);
    }
    if !killed.is_empty() {
        tracing::info!(
            run_id,
            processes = killed.len(),
            "killed processes that escaped their run"
        );
    }
    killed.len()
}

/// Reaps a zombie we adopted and killed (never one of our own spawned children, which their
/// spawner reaps).
fn reap_if_adopted(pid: i32) {
    let mut adopted = ADOPTED.lock().unwrap_or_else(|e| e.into_inner());
    let Some(set) = adopted.as_mut() else { return };
    if !set.contains(&pid) {
        return;
    }
    let mut status = 0;
    // SAFETY: waitpid on one pid we adopted; WNOHANG never blocks.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if rc == pid || rc == -1 {
        set.remove(&pid);
    }
}

/// What a previous daemon of `socket` left running: killed now, by run id (`None` for an
/// agent process that outlives runs, as ACP agents do).
pub fn kill_leftovers(socket: &Path) -> BTreeMap<Option<String>, Vec<i32>> {
    let socket = socket.display().to_string();
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut found: BTreeMap<Option<String>, Vec<i32>> = BTreeMap::new();
    let mut buf = Vec::new();
    for pid in all_pids() {
        if pid == me {
            continue;
        }
        let env = environ(pid, &mut buf);
        let ours =
            env.get("OPENCLAW_SOCKET") == Some(&socket) && env.contains_key("OPENCLAW_SESSION_KEY");
        if ours {
            kill(pid, libc::SIGKILL);
            found
                .entry(env.get("OPENCLAW_RUN_ID").cloned())
                .or_default()
                .push(pid);
        }
    }
    if !found.is_empty() {
        let n: usize = found.values().map(Vec::len).sum();
        tracing::warn!(
            processes = n,
            "killed agent processes a previous daemon left running"
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_line_is_read_past_a_command_name_with_spaces() {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let p = read_stat(me, &mut Vec::new()).expect("our own stat");
        assert_eq!(p.pid, me);
        assert!(!p.zombie);
        assert!(p.start > 0);
        // SAFETY: getpgrp has no preconditions.
        assert_eq!(p.pgrp, unsafe { libc::getpgrp() });
        // SAFETY: getppid has no preconditions.
        assert_eq!(p.ppid, unsafe { libc::getppid() });
    }

    #[test]
    fn a_proc_file_is_read_whole_however_small_the_buffer_was() {
        let whole = std::fs::read("/proc/self/environ").expect("our own environment");
        assert!(whole.len() > 64, "a test runs with some environment");
        // Far smaller than the file, so the buffer has to grow several times; then bigger than
        // the next file, whose bytes must not be mixed with the last one's tail.
        let mut buf = vec![0; 8];
        let len = read_proc("/proc/self/environ", &mut buf).expect("read");
        assert_eq!(&buf[..len], &whole[..]);
        let len = read_proc("/proc/self/stat", &mut buf).expect("read");
        let stat = std::str::from_utf8(&buf[..len]).expect("a stat line is text");
        assert!(
            stat.starts_with(&format!("{} (", std::process::id())),
            "{stat}"
        );
        assert!(
            stat.ends_with('\n') && stat.matches('\n').count() == 1,
            "{stat}"
        );
        assert!(read_proc("/proc/self/no-such-file", &mut buf).is_none());
    }
}
