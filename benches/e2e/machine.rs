//! The machine a run is on: what it is, how loaded (a shared machine moves every figure),
//! and how much memory a process holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::Table;
use super::common::{self, proc_status_kb};

/// Cargo's target directory, where this run's binaries are and where the benchmark keeps
/// what it builds or installs for itself (the floor programs, the static CLI, pueue).
pub fn target_dir() -> Result<PathBuf, String> {
    Path::new(common::OPENCLAW)
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot locate the target directory".into())
}

pub fn machine() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    let fs = Command::new("df")
        .arg("--output=fstype")
        .arg(std::env::temp_dir())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    format!(
        "{nproc} CPUs ({model}), {mem} MiB RAM, Linux {}, temp dir on {fs}; load average at start {}",
        kernel.trim(),
        load_average()
    )
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg has them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    Some((
        proc_status_kb(pid, "VmRSS")? as f64 / 1024.0,
        proc_status_kb(pid, "VmHWM")? as f64 / 1024.0,
    ))
}

/// Resident memory split as the kernel counts it: anonymous (heap, stacks: what the process
/// made) and file-backed (pages of its binary and libraries mapped in, clean and shared with
/// the page cache), in MiB.
pub fn rss_split_mib(pid: u32) -> Option<(f64, f64)> {
    Some((
        proc_status_kb(pid, "RssAnon")? as f64 / 1024.0,
        proc_status_kb(pid, "RssFile")? as f64 / 1024.0,
    ))
}

pub fn rss_text(pid: u32) -> String {
    match rss_mib(pid) {
        Some((rss, hwm)) => format!("{rss:.1} MiB (peak {hwm:.1} MiB)"),
        None => "n/a".into(),
    }
}

/// Busy share of all CPUs over the next second, from /proc/stat.
pub fn cpu_busy_over_a_second() -> f64 {
    fn sample() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (v.iter().sum(), idle)
    }
    let (t0, i0) = sample();
    std::thread::sleep(Duration::from_secs(1));
    let (t1, i1) = sample();
    let total = t1.saturating_sub(t0).max(1);
    1.0 - i1.saturating_sub(i0) as f64 / total as f64
}

/// With OPENCLAW_BENCH_QUIET=PERCENT: waits until the machine has been at most that busy for
/// 3 seconds in a row (at most 10 minutes), and notes the wait.
pub fn wait_quiet(t: &mut Table, section: &str) {
    let Some(max) = std::env::var("OPENCLAW_BENCH_QUIET")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    else {
        return;
    };
    let t0 = Instant::now();
    let mut quiet = 0;
    let mut last = 0.0;
    while quiet < 3 && t0.elapsed() < Duration::from_secs(600) {
        last = cpu_busy_over_a_second() * 100.0;
        quiet = if last <= max { quiet + 1 } else { 0 };
    }
    let waited = t0.elapsed().as_secs_f64() - 3.0;
    if quiet < 3 {
        t.note(format!(
            "{section}: the machine was still {last:.0}% busy after 10 minutes; measured anyway"
        ));
    } else if waited > 1.0 {
        t.note(format!(
            "{section}: waited {waited:.0} s for the CPUs to be at most {max}% busy"
        ));
    }
}
