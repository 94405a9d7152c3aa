//! The agent's process: started in the session workspace in its own process group, with its
//! stderr kept as a bounded tail for error messages, and stopped for sure — stdin closed,
//! SIGTERM to the group, SIGKILL after the grace period (real agents ignore the first two).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

/// Bytes of stderr kept for error messages.
pub const STDERR_TAIL: usize = 4096;

pub struct AgentProcess {
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: watch::Receiver<bool>,
}

/// The ends of the agent's stdio that the connection owns.
pub struct Pipes {
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
}

impl AgentProcess {
    pub fn spawn(
        command: &[String],
        workspace: &Path,
        env: &BTreeMap<String, String>,
    ) -> std::io::Result<(AgentProcess, Pipes)> {
        let (program, args) = command.split_first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command configured")
        })?;
        let mut cmd = Command::new(program);
        for var in crate::daemon::backends::inherited_openclaw_vars() {
            if !env.contains_key(&var) {
                cmd.env_remove(var);
            }
        }
        cmd.args(args)
            .current_dir(workspace)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. If the daemon dies (kill -9), the kernel kills
        // the agent instead of leaving it running for a session nobody drives.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("the agent's pipes were not created"));
        };

        let tail = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, stderr_done) = watch::channel(false);
        let keep = tail.clone();
        tokio::spawn(async move {
            let mut stderr = stderr;
            let mut chunk = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let mut kept = keep.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_TAIL {
                    let excess = kept.len() - STDERR_TAIL;
                    kept.drain(..excess);
                }
            }
            let _ = done_tx.send(true);
        });

        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            if let Ok(status) = child.wait().await {
                // What the agent started dies with it (MCP servers, tools). Done at once,
                // while the group id cannot have been reused yet, never later.
                signal_group(pid, libc::SIGKILL);
                let _ = exit_tx.send(Some(status));
            }
        });
        Ok((
            AgentProcess {
                pid,
                exit,
                stderr: tail,
                stderr_done,
            },
            Pipes { stdin, stdout },
        ))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Waits up to `wait` for the process to exit; how it ended, if it did.
    pub async fn wait_exit(&self, wait: Duration) -> Option<String> {
        let mut exit = self.exit.clone();
        let status = tokio::time::timeout(wait, exit.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|s| *s));
        status.map(describe_exit)
    }

    /// What the agent wrote on stderr last, once the pipe has closed or `wait` has passed, so
    /// that the message of an agent that just died is complete.
    pub async fn stderr_tail(&self, wait: Duration) -> String {
        let mut done = self.stderr_done.clone();
        let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
        self.stderr_now()
    }

    pub fn stderr_now(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&kept).trim().to_string()
    }

    /// SIGTERM to the group, SIGKILL after `grace`, then waits for the leader to be reaped
    /// (which SIGKILLs what is left of the group). The caller closes stdin first.
    pub async fn stop(&self, grace: Duration) {
        if self.pid == 0 || self.has_exited() {
            return;
        }
        signal_group(self.pid, libc::SIGTERM);
        if self.wait_exit(grace).await.is_some() {
            return;
        }
        tracing::debug!(pid = self.pid, "ACP agent ignored SIGTERM; sending SIGKILL");
        signal_group(self.pid, libc::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(5)).await;
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        // Dropped without `stop` (a failed start, a panic): never leave the group running.
        if self.pid != 0 && !self.has_exited() {
            signal_group(self.pid, libc::SIGKILL);
        }
    }
}

fn signal_group(pid: u32, sig: i32) {
    let Ok(pgid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) with a negative pid signals the process group created for the agent.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "exited".to_string(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn stderr_tail_keeps_the_end_and_exit_is_described() {
        let dir = tempfile::tempdir().unwrap();
        let script = "i=0; while [ $i -lt 600 ]; do echo line$i >&2; i=$((i+1)); done; echo last words >&2; exit 3";
        let (p, _pipes) = AgentProcess::spawn(&sh(script), dir.path(), &BTreeMap::new()).unwrap();
        assert_eq!(
            p.wait_exit(Duration::from_secs(10)).await.as_deref(),
            Some("exited with status 3")
        );
        let tail = p.stderr_tail(Duration::from_secs(5)).await;
        assert!(tail.ends_with("last words"), "{tail}");
        assert!(tail.len() <= STDERR_TAIL);
        assert!(!tail.contains("line0\n"));
    }

    #[tokio::test]
    async fn stop_kills_a_group_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        // The leader and a child of it both ignore SIGTERM.
        let script =
            "trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > child.pid; sleep 600' & sleep 600";
        let (p, _pipes) = AgentProcess::spawn(&sh(script), dir.path(), &BTreeMap::new()).unwrap();
        let child_pid = wait_for_file(&dir.path().join("child.pid")).await;
        p.stop(Duration::from_millis(200)).await;
        assert_eq!(
            p.wait_exit(Duration::ZERO).await.as_deref(),
            Some("was killed by signal 9")
        );
        wait_gone(child_pid).await;
    }

    #[tokio::test]
    async fn what_the_agent_started_dies_with_it() {
        let dir = tempfile::tempdir().unwrap();
        // The leader exits by itself and leaves a child behind in its group.
        let script = "sh -c 'echo $$ > child.pid; sleep 600' & while [ ! -s child.pid ]; do sleep 0.01; done; exit 0";
        let (p, _pipes) = AgentProcess::spawn(&sh(script), dir.path(), &BTreeMap::new()).unwrap();
        let child_pid = wait_for_file(&dir.path().join("child.pid")).await;
        assert_eq!(
            p.wait_exit(Duration::from_secs(10)).await.as_deref(),
            Some("exited with status 0")
        );
        wait_gone(child_pid).await;
    }

    #[tokio::test]
    async fn env_and_workspace_are_given() {
        let dir = tempfile::tempdir().unwrap();
        let env = BTreeMap::from([("ACP_TEST_VALUE".to_string(), "v42".to_string())]);
        let (p, _pipes) =
            AgentProcess::spawn(&sh("echo \"$ACP_TEST_VALUE $(pwd)\" >&2"), dir.path(), &env)
                .unwrap();
        let tail = p.stderr_tail(Duration::from_secs(10)).await;
        let ws = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(tail, format!("v42 {}", ws.display()));
    }

    pub(crate) async fn wait_for_file(path: &Path) -> i32 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path:?} never appeared"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until no process has this pid (or it is a zombie nobody will run again).
    pub(crate) async fn wait_gone(pid: i32) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            if stat.is_empty() || zombie {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "process {pid} is still running"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
