//! `exec`: runs a command per turn. The message goes to its stdin (then closed), its stdout is
//! the reply, its exit status the outcome. It runs in its own process group so that a kill or
//! timeout reaches everything it started: SIGTERM to the group, SIGKILL after a grace period.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use openclaw::config::{AgentConfig, ExecFormat};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{TurnError, TurnInput, TurnOutput};

/// Bytes of stderr kept for the error message.
const STDERR_TAIL: usize = 2048;
/// Bytes of stdout kept as the reply; the rest is dropped with a note.
const MAX_REPLY: usize = 8 * 1024 * 1024;

pub struct ExecBackend {
    command: Vec<String>,
    env: BTreeMap<String, String>,
    format: ExecFormat,
    socket: PathBuf,
    kill_grace: Duration,
}

impl ExecBackend {
    pub fn new(agent: &AgentConfig, socket: &Path, kill_grace: Duration) -> ExecBackend {
        ExecBackend {
            command: agent.command.clone().unwrap_or_default(),
            env: agent.env.clone(),
            format: agent.format,
            socket: socket.to_path_buf(),
            kill_grace,
        }
    }

    pub async fn run_turn(
        &self,
        input: TurnInput,
        stop: CancellationToken,
    ) -> Result<TurnOutput, TurnError> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(TurnError::Failed(
                "the exec agent has no command configured".into(),
            ));
        };
        if let Err(e) = tokio::fs::create_dir_all(&input.workspace).await {
            return Err(TurnError::Failed(format!(
                "cannot create the session workspace {}: {e}",
                input.workspace.display()
            )));
        }
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&input.workspace)
            .envs(&self.env)
            .env("OPENCLAW_SOCKET", &self.socket)
            .env("OPENCLAW_SESSION_KEY", &input.session_key)
            .env("OPENCLAW_SESSION_ID", &input.session_id)
            .env("OPENCLAW_RUN_ID", &input.run_id)
            .env("OPENCLAW_NO_AUTOSTART", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill the command if the
        // daemon dies (e.g. kill -9), so no orphan keeps running a turn nobody will record.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            TurnError::Failed(format!("cannot start `{}`: {e}", self.command.join(" ")))
        })?;
        let pgid = child.id().map(|p| p as i32);

        let stdin = child.stdin.take();
        let message = input.message.into_bytes();
        let feed = tokio::spawn(async move {
            if let Some(mut stdin) = stdin {
                // A command that does not read its input is fine: ignore EPIPE.
                let _ = stdin.write_all(&message).await;
                let _ = stdin.shutdown().await;
            }
        });
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let read_out = tokio::spawn(read_capped(stdout, MAX_REPLY, false));
        let read_err = tokio::spawn(read_capped(stderr, STDERR_TAIL, true));

        let status = tokio::select! {
            status = child.wait() => status,
            _ = stop.cancelled() => {
                self.stop_group(pgid, &mut child).await;
                feed.abort();
                return Err(TurnError::Stopped);
            }
        };
        // The leader has exited; its output pipes close once everything it started is gone.
        let outputs = async { (read_out.await, read_err.await) };
        let (out, err) = tokio::select! {
            o = outputs => o,
            _ = stop.cancelled() => {
                self.stop_group(pgid, &mut child).await;
                return Err(TurnError::Stopped);
            }
        };
        feed.abort();
        let (out, truncated) = out.unwrap_or_default();
        let (err, _) = err.unwrap_or_default();
        let status =
            status.map_err(|e| TurnError::Failed(format!("waiting for the command: {e}")))?;

        if !status.success() {
            let how = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => "failed".to_string(),
            };
            let tail = String::from_utf8_lossy(&err).trim().to_string();
            let mut msg = format!("`{}` {how}", self.command.join(" "));
            if !tail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&tail);
            }
            return Err(TurnError::Failed(msg));
        }
        let text = String::from_utf8_lossy(&out);
        let mut output = match self.format {
            ExecFormat::Text => TurnOutput {
                reply: text.trim_end_matches(['\n', '\r']).to_string(),
                tokens: None,
            },
            ExecFormat::Jsonl => parse_jsonl(&text),
        };
        if truncated {
            output
                .reply
                .push_str("\n[reply truncated: the command wrote more than 8 MiB]");
        }
        Ok(output)
    }

    /// SIGTERM to the whole group, SIGKILL after the grace period, and reap the leader.
    async fn stop_group(&self, pgid: Option<i32>, child: &mut tokio::process::Child) {
        let Some(pgid) = pgid else { return };
        signal_group(pgid, libc::SIGTERM);
        if tokio::time::timeout(self.kill_grace, child.wait())
            .await
            .is_err()
        {
            tracing::debug!(pgid, "exec agent ignored SIGTERM; sending SIGKILL");
        }
        // Members of the group may outlive the leader; they get no more grace than it did.
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for the turn.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Reads a pipe to its end, keeping the first `cap` bytes (or, with `tail`, the last `cap`).
/// Returns the bytes and whether any were dropped.
async fn read_capped<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    cap: usize,
    tail: bool,
) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > cap {
                    dropped = true;
                    if tail {
                        let excess = kept.len() - cap;
                        kept.drain(..excess);
                    } else {
                        kept.truncate(cap);
                    }
                }
            }
        }
    }
    (kept, dropped)
}

/// `format = "jsonl"`: one JSON object per line. Text comes from objects with a `text` field
/// (`{"type":"text","text":"..."}`); `{"type":"usage","tokens":N}` reports usage. Lines that
/// are not JSON are taken as plain text, so a stray print never loses output.
fn parse_jsonl(stdout: &str) -> TurnOutput {
    let mut out = TurnOutput::default();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(obj)) => {
                if let Some(text) = obj.get("text").and_then(Value::as_str) {
                    out.reply.push_str(text);
                }
                if obj.get("type").and_then(Value::as_str) == Some("usage")
                    && let Some(t) = obj.get("tokens").and_then(Value::as_i64)
                {
                    out.tokens = Some(out.tokens.unwrap_or(0) + t);
                }
            }
            _ => {
                out.reply.push_str(line);
                out.reply.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_collects_text_and_usage_and_keeps_stray_lines() {
        let out = parse_jsonl(
            "{\"type\":\"text\",\"text\":\"Hel\"}\n{\"type\":\"tool\",\"name\":\"x\"}\n{\"text\":\"lo\"}\n{\"type\":\"usage\",\"tokens\":7}\nplain\n",
        );
        assert_eq!(out.reply, "Hello".to_string() + "plain\n");
        assert_eq!(out.tokens, Some(7));
    }
}
