//! `exec`: runs a command per turn. The message goes to its stdin (then closed), its stdout is
//! the reply, its exit status the outcome. It runs in its own process group so that a kill or
//! timeout reaches everything it started: SIGTERM to the group, SIGKILL after a grace period.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::config::{AgentConfig, ExecFormat};
use crate::protocol::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::mcp_config::{RunIdentity, RunMcpConfig};
use super::{RunEvents, Usage};
use super::{TurnContext, TurnError, TurnOutput};

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

    pub async fn run_turn(&self, input: TurnContext) -> Result<TurnOutput, TurnError> {
        let (events, stop) = (input.events.clone(), input.stop.clone());
        let Some((program, args)) = self.command.split_first() else {
            return Err(TurnError::Failed(
                "the exec agent has no command configured".into(),
            ));
        };
        if let Err(e) = super::ensure_workspace(&input.workspace) {
            return Err(TurnError::Failed(format!(
                "cannot create the session workspace {}: {e}",
                input.workspace.display()
            )));
        }
        // Lives as long as this turn: dropped (and deleted) on every way out.
        let mcp_config = RunMcpConfig::write(&RunIdentity {
            socket: &self.socket,
            run_id: &input.run_id,
            run_token: &input.run_token,
            session_key: &input.session_key,
        })
        .map_err(|e| TurnError::Failed(format!("cannot write the run's MCP config: {e}")))?;
        let mut cmd = Command::new(program);
        for var in super::inherited_openclaw_vars() {
            if !self.env.contains_key(&var) {
                cmd.env_remove(var);
            }
        }
        cmd.args(args)
            .current_dir(&input.workspace)
            .envs(&self.env)
            .env("OPENCLAW_SOCKET", &self.socket)
            .env("OPENCLAW_SESSION_KEY", &input.session_key)
            .env("OPENCLAW_SESSION_ID", &input.session_id)
            .env("OPENCLAW_RUN_ID", &input.run_id)
            .env("OPENCLAW_RUN_TOKEN", &input.run_token)
            .env("OPENCLAW_MCP_CONFIG", mcp_config.path())
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
            TurnError::Failed(format!(
                "cannot start `{}`: {e}",
                crate::shell::quote_words(&self.command)
            ))
        })?;
        let pgid = child.id().map(|p| p as i32);
        // What the run's descendants start after: an escaped one is found by it.
        let since = child.id().and_then(crate::daemon::children::start_time);
        let sweep = Sweep {
            run_id: input.run_id.clone(),
            pgid,
            since,
        };

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
        let read_out = tokio::spawn(stream_stdout(stdout, self.format, events));
        let read_err = tokio::spawn(read_capped(stderr, STDERR_TAIL, true));

        let status = tokio::select! {
            status = child.wait() => status,
            _ = stop.cancelled() => {
                self.stop_group(pgid, &mut child).await;
                sweep.run().await;
                feed.abort();
                return Err(TurnError::Stopped);
            }
        };
        // The leader has exited; its output pipes close once everything it started is gone.
        // What left the group (setsid) would hold them open forever: it ends with the run.
        // A member can leave the group after the leader exited (a `setsid` not yet run when
        // the shell finished), and leaving sends no event, so while the output stays open
        // the sweep is repeated, at growing intervals.
        sweep.run().await;
        let outputs = async { (read_out.await, read_err.await) };
        tokio::pin!(outputs);
        let mut next_sweep = SWEEP_FIRST;
        let (out, err) = loop {
            tokio::select! {
                o = &mut outputs => break o,
                _ = stop.cancelled() => {
                    self.stop_group(pgid, &mut child).await;
                    sweep.run().await;
                    return Err(TurnError::Stopped);
                }
                _ = tokio::time::sleep(next_sweep) => {
                    sweep.run().await;
                    next_sweep = (next_sweep * 2).min(SWEEP_MAX);
                }
            }
        };
        feed.abort();
        let out = out.unwrap_or_default();
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
            let mut msg = format!("`{}` {how}", crate::shell::quote_words(&self.command));
            if !tail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&tail);
            }
            return Err(TurnError::Failed(msg));
        }
        Ok(out)
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

/// After the leader exits with its output still open: the first repeated sweep, and the
/// longest gap between two. A process that leaves the group late outlives the leader by at
/// most about this gap; one still in the group costs a scan of `/proc` per gap.
const SWEEP_FIRST: Duration = Duration::from_millis(10);
const SWEEP_MAX: Duration = Duration::from_secs(1);

/// Kills the run's processes that left its group (see `daemon::children`).
struct Sweep {
    run_id: String,
    pgid: Option<i32>,
    since: Option<u64>,
}

impl Sweep {
    async fn run(&self) {
        let (Some(pgid), Some(since)) = (self.pgid, self.since) else {
            return;
        };
        let run_id = self.run_id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::daemon::children::kill_escaped(&run_id, pgid, since)
        })
        .await;
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

/// Reads the command's stdout as it comes, publishing progress, and returns the reply.
async fn stream_stdout<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    format: ExecFormat,
    events: RunEvents,
) -> TurnOutput {
    let Some(mut pipe) = pipe else {
        return TurnOutput::default();
    };
    let mut parser = StdoutParser::new(format);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut publish = |p: Progress| match p {
        Progress::Delta(text) => events.assistant_delta(&text),
        Progress::Tool(data) => events.tool_data(data),
        Progress::ToolCall(content) => events.transcript(Role::ToolCall, content),
        Progress::ToolResult(content) => events.transcript(Role::ToolResult, content),
        Progress::Usage(tokens) => events.usage(&Usage::total(tokens)),
    };
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => parser.feed(&chunk[..n], &mut publish),
        }
    }
    parser.finish(&mut publish)
}

/// What the command's output says as it streams.
#[derive(Debug, Clone, PartialEq)]
enum Progress {
    Delta(String),
    Tool(Value),
    ToolCall(Value),
    ToolResult(Value),
    Usage(i64),
}

/// Turns stdout bytes into progress and the final reply. `text`: every chunk is assistant
/// text (split only at UTF-8 boundaries). `jsonl`: one JSON object per line —
/// `{"type":"text","text":...}`, `{"type":"tool_start","id","name","input"}`,
/// `{"type":"tool_update","id","output"}`, `{"type":"tool_end","id","output","status"}`,
/// `{"type":"usage","tokens":N}`; a line that is not JSON is taken as text, so a stray print
/// never loses output.
struct StdoutParser {
    format: ExecFormat,
    pending: Vec<u8>,
    /// `jsonl`: bytes at the start of `pending` already known to hold no newline, so each
    /// byte is scanned once however long a line grows.
    scanned: usize,
    /// `jsonl`: the current line passed `MAX_LINE` and was cut; the rest of it is dropped.
    overlong: bool,
    reply: String,
    tokens: Option<i64>,
    truncated: bool,
}

/// Longest `jsonl` line kept whole; a longer one is cut (and kept as text, with a note).
const MAX_LINE: usize = 1024 * 1024;

impl StdoutParser {
    fn new(format: ExecFormat) -> StdoutParser {
        StdoutParser {
            format,
            pending: Vec::new(),
            scanned: 0,
            overlong: false,
            reply: String::new(),
            tokens: None,
            truncated: false,
        }
    }

    fn feed(&mut self, bytes: &[u8], out: &mut impl FnMut(Progress)) {
        self.pending.extend_from_slice(bytes);
        match self.format {
            ExecFormat::Text => {
                let valid = match std::str::from_utf8(&self.pending) {
                    Ok(_) => self.pending.len(),
                    // An incomplete character at the end waits for the next chunk; invalid
                    // bytes inside are replaced.
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => self.pending.len(),
                };
                let rest = self.pending.split_off(valid);
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending = rest;
                self.text(text, out);
            }
            ExecFormat::Jsonl => self.lines(out),
        }
    }

    /// Every complete line in `pending`, then a cut of the incomplete one if it is too long.
    fn lines(&mut self, out: &mut impl FnMut(Progress)) {
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(off) = self.pending[from..].iter().position(|&b| b == b'\n') {
            let end = from + off;
            if self.overlong {
                self.overlong = false;
            } else {
                let line = String::from_utf8_lossy(&self.pending[start..end]).into_owned();
                self.line(&line, out);
            }
            start = end + 1;
            from = start;
        }
        self.pending.drain(..start);
        if self.overlong {
            self.pending.clear();
        } else if self.pending.len() > MAX_LINE {
            let cut = String::from_utf8_lossy(&self.pending[..MAX_LINE]).into_owned();
            self.text(
                format!("{cut}\n[a line of more than {MAX_LINE} bytes was cut here]\n"),
                out,
            );
            self.pending.clear();
            self.overlong = true;
        }
        self.scanned = self.pending.len();
    }

    fn text(&mut self, text: String, out: &mut impl FnMut(Progress)) {
        if text.is_empty() {
            return;
        }
        if self.reply.len() + text.len() > MAX_REPLY {
            self.truncated = true;
        } else {
            self.reply.push_str(&text);
        }
        out(Progress::Delta(text));
    }

    fn line(&mut self, line: &str, out: &mut impl FnMut(Progress)) {
        if line.trim().is_empty() {
            return;
        }
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
            self.text(format!("{line}\n"), out);
            return;
        };
        let field = |k: &str| obj.get(k).cloned().unwrap_or(Value::Null);
        match obj.get("type").and_then(Value::as_str) {
            Some("tool_start") => {
                out(Progress::Tool(
                    json!({ "phase": "start", "id": field("id"), "name": field("name"), "input": field("input") }),
                ));
                out(Progress::ToolCall(
                    json!({ "id": field("id"), "name": field("name"), "input": field("input") }),
                ));
            }
            Some("tool_update") => {
                out(Progress::Tool(
                    json!({ "phase": "update", "id": field("id"), "output": field("output") }),
                ));
            }
            Some("tool_end") => {
                out(Progress::Tool(
                    json!({ "phase": "end", "id": field("id"), "output": field("output"), "status": field("status") }),
                ));
                out(Progress::ToolResult(
                    json!({ "id": field("id"), "output": field("output"), "status": field("status") }),
                ));
            }
            Some("usage") => {
                if let Some(t) = obj.get("tokens").and_then(Value::as_i64) {
                    self.tokens = Some(self.tokens.unwrap_or(0) + t);
                    out(Progress::Usage(t));
                }
            }
            _ => {
                if let Some(text) = obj.get("text").and_then(Value::as_str) {
                    self.text(text.to_string(), out);
                }
            }
        }
    }

    fn finish(mut self, out: &mut impl FnMut(Progress)) -> TurnOutput {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            match self.format {
                ExecFormat::Text => self.text(String::from_utf8_lossy(&rest).into_owned(), out),
                ExecFormat::Jsonl if self.overlong => {}
                ExecFormat::Jsonl => self.line(&String::from_utf8_lossy(&rest), out),
            }
        }
        let mut reply = match self.format {
            ExecFormat::Text => self.reply.trim_end_matches(['\n', '\r']).to_string(),
            ExecFormat::Jsonl => self.reply,
        };
        if self.truncated {
            reply.push_str("\n[reply truncated: the command wrote more than 8 MiB]");
        }
        TurnOutput {
            reply,
            tokens: self.tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: ExecFormat, chunks: &[&[u8]]) -> (Vec<Progress>, TurnOutput) {
        let mut progress = Vec::new();
        let mut parser = StdoutParser::new(format);
        for c in chunks {
            parser.feed(c, &mut |p| progress.push(p));
        }
        let out = parser.finish(&mut |p| progress.push(p));
        (progress, out)
    }

    #[test]
    fn text_streams_each_chunk_and_trims_the_reply() {
        let (p, out) = run(ExecFormat::Text, &[b"hel", b"lo\n"]);
        assert_eq!(
            p,
            vec![
                Progress::Delta("hel".into()),
                Progress::Delta("lo\n".into())
            ]
        );
        assert_eq!(out.reply, "hello");
    }

    #[test]
    fn text_never_splits_a_character() {
        let e_acute = "é".as_bytes();
        let (p, out) = run(
            ExecFormat::Text,
            &[&[b'a', e_acute[0]], &[e_acute[1], b'b']],
        );
        assert_eq!(
            p,
            vec![Progress::Delta("a".into()), Progress::Delta("éb".into())]
        );
        assert_eq!(out.reply, "aéb");
    }

    #[test]
    fn a_jsonl_line_without_end_is_cut_and_the_output_goes_on() {
        let chunk = vec![b'x'; 16 * 1024];
        let mut progress = Vec::new();
        let mut parser = StdoutParser::new(ExecFormat::Jsonl);
        // 4 MiB with no newline, fed as a pipe gives it.
        for _ in 0..256 {
            parser.feed(&chunk, &mut |p| progress.push(p));
            assert!(
                parser.pending.len() <= MAX_LINE + chunk.len(),
                "memory stays bounded"
            );
        }
        parser.feed(b"yyy\n{\"type\":\"text\",\"text\":\"after\"}\n", &mut |p| {
            progress.push(p)
        });
        let out = parser.finish(&mut |p| progress.push(p));
        assert!(
            out.reply.starts_with(&"x".repeat(MAX_LINE)),
            "the cut is kept as text"
        );
        assert!(out.reply.contains("was cut here]\n"), "with a note");
        assert!(
            !out.reply.contains("yyy"),
            "the rest of the long line is dropped"
        );
        assert!(
            out.reply.ends_with("after"),
            "and the next lines are read: {}",
            &out.reply[out.reply.len() - 40..]
        );
    }

    #[test]
    fn jsonl_text_tools_usage_and_stray_lines() {
        let input = concat!(
            "{\"type\":\"text\",\"text\":\"Hel\"}\n",
            "{\"type\":\"tool_start\",\"id\":\"t1\",\"name\":\"grep\",\"input\":{\"q\":1}}\n",
            "{\"type\":\"tool_end\",\"id\":\"t1\",\"output\":\"x\",\"status\":\"ok\"}\n",
            "{\"text\":\"lo\"}\n{\"type\":\"usage\",\"tokens\":7}\nplain"
        );
        // Fed in awkward pieces: lines are reassembled before parsing.
        let bytes = input.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(5).collect();
        let (p, out) = run(ExecFormat::Jsonl, &chunks);
        assert_eq!(out.reply, "Helloplain\n");
        assert_eq!(out.tokens, Some(7));
        let kinds: Vec<&str> = p
            .iter()
            .map(|p| match p {
                Progress::Delta(_) => "delta",
                Progress::Tool(_) => "tool",
                Progress::ToolCall(_) => "call",
                Progress::ToolResult(_) => "result",
                Progress::Usage(_) => "usage",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "delta", "tool", "call", "tool", "result", "delta", "usage", "delta"
            ]
        );
        assert_eq!(
            p[1],
            Progress::Tool(json!({"phase":"start","id":"t1","name":"grep","input":{"q":1}}))
        );
    }
}
