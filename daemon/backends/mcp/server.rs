//! One MCP tool server of an agent, supervised: started on first use, its tools listed,
//! watched, and restarted with backoff when it exits or fails to start. A call in flight
//! when it dies fails with a sentence saying so; the next call finds it restarted.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
    Implementation, JsonObject, Tool,
};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::McpServerConfig;

/// How long a start may take: the process, `initialize` and `tools/list`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Up this long, a server that exits starts again from the first backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// A restart due within this long is waited for (the first restarts after a crash).
const RESTART_SOON: Duration = Duration::from_secs(2);
/// Bytes of the server's stderr kept for messages.
const STDERR_TAIL: usize = 2048;

#[derive(Clone)]
pub enum ServerState {
    NotStarted,
    Starting,
    Ready(Arc<Live>),
    /// Not running (exited, or failed to start); the sentence says why. Restarted at
    /// `retry_at` (none: stopped for good).
    Down {
        why: String,
        retry_at: Option<Instant>,
    },
}

impl ServerState {
    /// Whether someone who needs the server should stop waiting for it: it is up, or it
    /// will not be back soon.
    fn settled(&self) -> bool {
        match self {
            ServerState::Ready(_) => true,
            ServerState::Down { retry_at, .. } => {
                retry_at.is_none_or(|at| at > Instant::now() + RESTART_SOON)
            }
            ServerState::Starting | ServerState::NotStarted => false,
        }
    }
}

/// A running server process with its MCP session.
pub struct Live {
    service: RunningService<RoleClient, ClientConfig>,
    pub tools: Vec<Tool>,
    pgid: i32,
    /// Cancelled once the process has exited (and been reaped).
    exited: CancellationToken,
    exit: Arc<Mutex<Option<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Live {
    /// How the process ended, with the end of its stderr.
    fn ended(&self) -> String {
        let how = self
            .exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "closed its output".into());
        let tail = String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner()))
            .trim()
            .to_string();
        if tail.is_empty() {
            how
        } else {
            format!("{how}; its stderr ended with: {tail}")
        }
    }

    /// SIGTERM to its process group, SIGKILL after `grace`.
    async fn stop(&self, grace: Duration) {
        signal_group(self.pgid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.exited.cancelled())
            .await
            .is_err()
        {
            signal_group(self.pgid, libc::SIGKILL);
            self.exited.cancelled().await;
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A server let go of without a stop (its agent dropped on reload) dies with it.
        if !self.exited.is_cancelled() {
            signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid <= 0 {
        return;
    }
    // SAFETY: kill(2) on the process group created for this server.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

pub struct Supervised {
    pub name: String,
    agent_id: String,
    config: McpServerConfig,
    state: watch::Sender<ServerState>,
    /// The tools it listed last, kept while it is down so names stay stable.
    known_tools: Mutex<Vec<Tool>>,
    kill_grace: Duration,
}

impl Supervised {
    pub fn new(agent_id: &str, config: McpServerConfig, kill_grace: Duration) -> Supervised {
        Supervised {
            name: config.name.clone(),
            agent_id: agent_id.to_string(),
            config,
            state: watch::Sender::new(ServerState::NotStarted),
            known_tools: Mutex::new(Vec::new()),
            kill_grace,
        }
    }

    pub fn known_tools(&self) -> Vec<Tool> {
        self.known_tools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The state once a start in progress (or due soon) has ended, or `within` has passed.
    pub async fn settled(&self, within: Duration) -> ServerState {
        let mut rx = self.state.subscribe();
        let settled = rx.wait_for(ServerState::settled);
        match tokio::time::timeout(within, settled).await {
            Ok(Ok(state)) => state.clone(),
            _ => self.state.borrow().clone(),
        }
    }

    /// Keeps the server running until `stop`: start, watch, restart with backoff.
    pub async fn supervise(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            self.state.send_replace(ServerState::Starting);
            let started = Instant::now();
            let attempt = tokio::select! {
                attempt = self.start() => attempt,
                _ = stop.cancelled() => return,
            };
            let why = match attempt {
                Ok(live) => {
                    *self.known_tools.lock().unwrap_or_else(|p| p.into_inner()) =
                        live.tools.clone();
                    tracing::debug!(agent = %self.agent_id, server = %self.name, tools = live.tools.len(), "MCP server ready");
                    self.state.send_replace(ServerState::Ready(live.clone()));
                    tokio::select! {
                        _ = live.exited.cancelled() => {}
                        _ = stop.cancelled() => {
                            self.state.send_replace(ServerState::Down {
                                why: "the daemon is stopping".into(),
                                retry_at: None,
                            });
                            live.stop(self.kill_grace).await;
                            return;
                        }
                    }
                    if started.elapsed() >= STABLE_AFTER {
                        backoff = BACKOFF_FIRST;
                    }
                    format!("it {}", live.ended())
                }
                Err(why) => why,
            };
            tracing::warn!(agent = %self.agent_id, server = %self.name, "MCP server down, restarting in {backoff:?}: {why}");
            self.state.send_replace(ServerState::Down {
                why,
                retry_at: Some(Instant::now() + backoff),
            });
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn start(&self) -> Result<Arc<Live>, String> {
        let shown = self.config.command.join(" ");
        let Some((program, args)) = self.config.command.split_first() else {
            return Err("it has no command".into());
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .envs(&self.config.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; the server dies with the daemon (kill -9).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
        let pgid = child.id().map_or(0, |p| p as i32);
        // Until it is handed over as `Live`, a start given up (stop, timeout) kills it.
        let mut guard = GroupGuard(Some(pgid));
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(format!("`{shown}` started without its pipes"));
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(keep_tail(stderr, stderr_tail.clone()));
        let exited = CancellationToken::new();
        let exit = Arc::new(Mutex::new(None));
        {
            let (exited, exit) = (exited.clone(), exit.clone());
            tokio::spawn(async move {
                let how = match child.wait().await {
                    Ok(status) => describe_exit(status),
                    Err(e) => format!("could not be waited for ({e})"),
                };
                *exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
                exited.cancel();
            });
        }
        let me = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("openclaw", crate::VERSION),
        );
        let handshake = async {
            let service = me
                .serve((stdout, stdin))
                .await
                .map_err(|e| format!("the MCP handshake failed: {e}"))?;
            let tools = service
                .peer()
                .list_all_tools()
                .await
                .map_err(|e| format!("tools/list failed: {e}"))?;
            Ok::<_, String>((service, tools))
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(START_TIMEOUT, handshake) => r
                .unwrap_or_else(|_| Err(format!("it did not answer initialize and tools/list within {START_TIMEOUT:?}"))),
            _ = exited.cancelled() => Err("it exited while starting".into()),
        };
        let live = |service| Live {
            service,
            tools: Vec::new(),
            pgid,
            exited: exited.clone(),
            exit: exit.clone(),
            stderr: stderr_tail.clone(),
        };
        match outcome {
            Ok((service, tools)) => {
                guard.0 = None;
                let mut live = live(service);
                live.tools = match &self.config.tools {
                    Some(allowed) => tools
                        .into_iter()
                        .filter(|t| allowed.iter().any(|a| *a == t.name))
                        .collect(),
                    None => tools,
                };
                Ok(Arc::new(live))
            }
            Err(why) => {
                signal_group(pgid, libc::SIGKILL);
                exited.cancelled().await;
                let tail =
                    String::from_utf8_lossy(&stderr_tail.lock().unwrap_or_else(|p| p.into_inner()))
                        .trim()
                        .to_string();
                let how = exit
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_default();
                let mut msg = format!("`{shown}`: {why}");
                if !how.is_empty() {
                    msg.push_str(&format!(" (it {how})"));
                }
                if !tail.is_empty() {
                    msg.push_str(&format!("; its stderr ended with: {tail}"));
                }
                Err(msg)
            }
        }
    }

    /// Calls one of the server's tools; the output given to the model (an `{"error": ...}`
    /// value for a failure, never a failed turn).
    pub async fn call(&self, tool: &str, arguments: Option<JsonObject>) -> Value {
        let state = self.settled(START_TIMEOUT).await;
        let live = match state {
            ServerState::Ready(live) => live,
            ServerState::Down { why, .. } => {
                return tool_error(
                    "unavailable",
                    format!(
                        "the MCP server \"{}\" is not running ({why}); openclaw is restarting it, so the call may be retried later",
                        self.name
                    ),
                );
            }
            ServerState::Starting | ServerState::NotStarted => {
                return tool_error(
                    "unavailable",
                    format!("the MCP server \"{}\" is still starting", self.name),
                );
            }
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let peer = live.service.peer().clone();
        // Dropping this future (kill, timeout) sends the server `notifications/cancelled`.
        let result = tokio::select! {
            r = peer.call_tool(params) => r,
            _ = live.exited.cancelled() => return self.died(&live, tool),
        };
        match result {
            Ok(result) => output_of(result),
            Err(e) => {
                // A closed transport is the process going away: say how it went.
                if tokio::time::timeout(Duration::from_secs(1), live.exited.cancelled())
                    .await
                    .is_ok()
                {
                    return self.died(&live, tool);
                }
                tool_error(
                    "mcp_error",
                    format!(
                        "the MCP server \"{}\" failed the call of {tool}: {e}",
                        self.name
                    ),
                )
            }
        }
    }

    fn died(&self, live: &Live, tool: &str) -> Value {
        tool_error(
            "mcp_server_exited",
            format!(
                "the MCP server \"{}\" {} during this call of {tool}, so the call did not complete; openclaw restarts the server, so the call may be retried",
                self.name,
                live.ended()
            ),
        )
    }
}

fn tool_error(kind: &str, message: String) -> Value {
    json!({ "error": { "kind": kind, "message": message } })
}

/// What the model is given: the text when the result is only text, else the result's
/// content (and structured content) as JSON; an error result as an `{"error": ...}`.
fn output_of(result: CallToolResult) -> Value {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    let only_text = texts.len() == result.content.len();
    if result.is_error == Some(true) {
        let message = if texts.is_empty() {
            "the tool reported an error".to_string()
        } else {
            texts.join("\n")
        };
        return tool_error("tool_error", message);
    }
    if only_text && result.structured_content.is_none() {
        return Value::String(texts.join("\n"));
    }
    let mut out = json!({ "content": result.content });
    if let Some(structured) = result.structured_content {
        out["structuredContent"] = structured;
    }
    out
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "exited".into(),
    }
}

/// Reads a pipe to its end, keeping its last bytes.
async fn keep_tail(mut pipe: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = vec![0u8; 4096];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut kept = tail.lock().unwrap_or_else(|p| p.into_inner());
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_TAIL {
                    let excess = kept.len() - STDERR_TAIL;
                    kept.drain(..excess);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_results_are_text_and_errors_are_error_values() {
        let ok = CallToolResult::success(vec![ContentBlock::text("5")]);
        assert_eq!(output_of(ok), json!("5"));
        let err = CallToolResult::error(vec![ContentBlock::text("no such file")]);
        assert_eq!(
            output_of(err),
            json!({"error": {"kind": "tool_error", "message": "no such file"}})
        );
        let mut structured = CallToolResult::success(vec![ContentBlock::text("{\"a\":1}")]);
        structured.structured_content = Some(json!({"a": 1}));
        let out = output_of(structured);
        assert_eq!(out["structuredContent"], json!({"a": 1}));
        assert_eq!(out["content"][0]["text"], "{\"a\":1}");
    }
}
