//! One JSON-RPC connection to an agent: a reader task that takes every line the agent
//! writes, in order, and a writer task that owns its stdin. The reader answers the agent's
//! requests (files, permissions), turns `session/update` into events for the host, and hands
//! responses to whoever is waiting on them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::AcpPermissions;
use agent_client_protocol_schema::v1::{
    ReadTextFileRequest, ReadTextFileResponse, RequestPermissionRequest, RequestPermissionResponse,
    SessionNotification, ToolKind, WriteTextFileRequest, WriteTextFileResponse,
};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::events::{AcpEvent, AcpHost, PermissionDecision};
use super::fs::Workspace;
use super::permission;
use super::updates::{ToolTracker, map_update};
use super::wire::{self, Incoming, LineReader, MAX_LINE_BYTES, ReadError, RpcError};

/// Messages waiting for the agent to read its stdin. Past this it is not reading, and the
/// connection ends instead of queueing without bound.
const OUTGOING_QUEUE: usize = 64;
/// Reply text kept per turn; the rest still streams as deltas.
pub const MAX_REPLY_BYTES: usize = 8 << 20;

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// The agent closed its stdout (it exited, as a rule).
    Eof,
    Garbage(String),
    TooLong,
    Io(String),
    /// Our messages piled up unread.
    Stalled,
    /// We ended it.
    Stopped,
}

#[derive(Debug)]
pub enum CallError {
    /// The agent answered with a JSON-RPC error.
    Rpc(RpcError),
    /// The connection ended first; [`Connection::closed`] says why.
    Closed,
}

/// The turn in progress, as far as the connection needs to know it.
#[derive(Debug, Default)]
pub struct Turn {
    pub reply: String,
    pub reply_truncated: bool,
    pub cancelled: bool,
    /// The agent's first `_session/retrying` of this turn was reported.
    pub retrying_reported: bool,
}

pub struct SessionState {
    /// Known once `session/new` (or `session/load`) has answered; updates for another
    /// session are ignored, updates before it are taken (agents send them early).
    pub session_id: Option<String>,
    /// Who hears about updates; the last turn's host keeps hearing updates that arrive after
    /// its prompt was answered.
    pub host: Arc<dyn AcpHost>,
    pub turn: Option<Turn>,
    /// `session/load` replays the history as updates: the daemon already has it.
    pub replaying: bool,
    pub tools: ToolTracker,
}

struct Calls {
    pending: HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>,
    closed: Option<Closed>,
}

struct Shared {
    out: mpsc::Sender<String>,
    calls: Mutex<Calls>,
    state: Mutex<SessionState>,
    workspace: Workspace,
    policy: AcpPermissions,
    close_stdin: CancellationToken,
}

pub struct Connection {
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    pub fn open(
        stdin: impl AsyncWrite + Unpin + Send + 'static,
        stdout: impl AsyncRead + Unpin + Send + 'static,
        workspace: Workspace,
        policy: AcpPermissions,
        host: Arc<dyn AcpHost>,
    ) -> Connection {
        let (out, rx) = mpsc::channel(OUTGOING_QUEUE);
        let close_stdin = CancellationToken::new();
        let shared = Arc::new(Shared {
            out,
            calls: Mutex::new(Calls {
                pending: HashMap::new(),
                closed: None,
            }),
            state: Mutex::new(SessionState {
                session_id: None,
                host,
                turn: None,
                replaying: false,
                tools: ToolTracker::default(),
            }),
            workspace,
            policy,
            close_stdin: close_stdin.clone(),
        });
        tokio::spawn(write_loop(stdin, rx, close_stdin));
        tokio::spawn(read_loop(
            shared.clone(),
            LineReader::new(stdout, MAX_LINE_BYTES),
        ));
        Connection {
            shared,
            next_id: AtomicU64::new(1),
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn call(&self, method: &str, params: &impl Serialize) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut calls = lock(&self.shared.calls);
            if calls.closed.is_some() {
                return Err(CallError::Closed);
            }
            calls.pending.insert(id, tx);
        }
        self.shared.send(wire::request(id, method, params));
        match rx.await {
            Ok(answer) => answer.map_err(CallError::Rpc),
            Err(_) => Err(CallError::Closed),
        }
    }

    pub fn notify(&self, method: &str, params: &impl Serialize) {
        self.shared.send(wire::notification(method, params));
    }

    /// Why the connection ended, if it has.
    pub fn closed(&self) -> Option<Closed> {
        lock(&self.shared.calls).closed.clone()
    }

    pub fn with_state<R>(&self, f: impl FnOnce(&mut SessionState) -> R) -> R {
        f(&mut lock(&self.shared.state))
    }

    /// Ends the connection: waiting calls fail and the agent's stdin is closed.
    pub fn close(&self, why: Closed) {
        self.shared.close(why);
    }

    pub fn workspace(&self) -> &Workspace {
        &self.shared.workspace
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close(Closed::Stopped);
    }
}

impl Shared {
    fn send(&self, line: String) {
        match self.out.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.close(Closed::Stalled),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The first reason wins: a stop we asked for is not reported as the EOF it causes.
    fn close(&self, why: Closed) {
        let waiting = {
            let mut calls = lock(&self.calls);
            if calls.closed.is_none() {
                calls.closed = Some(why);
            }
            std::mem::take(&mut calls.pending)
        };
        drop(waiting);
        self.close_stdin.cancel();
    }

    fn dispatch(self: &Arc<Self>, message: Incoming) {
        match message {
            Incoming::Response { id, outcome } => {
                let waiter = wire::our_id(&id).and_then(|n| lock(&self.calls).pending.remove(&n));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(outcome);
                    }
                    None => tracing::debug!(%id, "ACP response to no request of ours"),
                }
            }
            Incoming::Notification { method, params } => {
                if method == "session/update" {
                    self.on_update(params);
                } else if method == "_session/retrying" {
                    self.on_retrying(&params);
                } else {
                    // `_`-prefixed extensions and anything newer than us.
                    tracing::debug!(method, "ignoring ACP notification");
                }
            }
            Incoming::Request { id, method, params } => match method.as_str() {
                "session/request_permission" => self.on_permission(&id, params),
                "fs/read_text_file" | "fs/write_text_file" => {
                    let shared = self.clone();
                    tokio::spawn(async move {
                        let line = shared.on_fs(&id, &method, params).await;
                        shared.send(line);
                    });
                }
                _ => self.send(wire::error_response(
                    &id,
                    wire::METHOD_NOT_FOUND,
                    &format!("Method not found: {method}"),
                )),
            },
        }
    }

    fn on_update(&self, params: Value) {
        let note: SessionNotification = match serde_json::from_value(params) {
            Ok(n) => n,
            Err(e) => {
                // Update kinds newer than our schema, or malformed ones: never fatal.
                tracing::debug!(error = %e, "ignoring ACP session/update");
                return;
            }
        };
        let (host, events) = {
            let mut st = lock(&self.state);
            if st.replaying
                || st
                    .session_id
                    .as_deref()
                    .is_some_and(|s| s != &*note.session_id.0)
            {
                return;
            }
            let events = map_update(note.update, &mut st.tools);
            if let Some(turn) = st.turn.as_mut() {
                for e in &events {
                    if let AcpEvent::AssistantDelta { text } = e {
                        if turn.reply.len() + text.len() > MAX_REPLY_BYTES {
                            turn.reply_truncated = true;
                        } else {
                            turn.reply.push_str(text);
                        }
                    }
                }
            }
            (st.host.clone(), events)
        };
        for e in events {
            host.event(e);
        }
    }

    /// mistral-vibe's notice that it is retrying its model request. Otherwise the turn shows
    /// nothing at all until it times out (report 003), so the first one of a turn is passed
    /// on; the rest only repeat it.
    fn on_retrying(&self, params: &Value) {
        let field = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or_default();
        let host = {
            let mut st = lock(&self.state);
            let ours = st
                .session_id
                .as_deref()
                .is_none_or(|s| s == field("sessionId"));
            match st.turn.as_mut() {
                Some(turn) if ours && !turn.retrying_reported => {
                    turn.retrying_reported = true;
                    st.host.clone()
                }
                _ => return,
            }
        };
        let reason = match (field("category"), field("detail")) {
            ("", "") => "no reason given".to_string(),
            (c, "") | ("", c) => c.to_string(),
            (c, d) => format!("{c}: {d}"),
        };
        host.event(AcpEvent::Retrying { reason });
    }

    fn on_permission(&self, id: &Value, params: Value) {
        let req: RequestPermissionRequest = match serde_json::from_value(params) {
            Ok(r) => r,
            Err(e) => {
                self.send(wire::error_response(
                    id,
                    wire::INVALID_PARAMS,
                    &format!("Invalid params: {e}"),
                ));
                return;
            }
        };
        let call_id = req.tool_call.tool_call_id.0.to_string();
        let (host, decision, answer) = {
            let st = lock(&self.state);
            let known = st.tools.get(&call_id);
            let kind = req.tool_call.fields.kind.unwrap_or_else(|| {
                known
                    .and_then(|k| serde_json::from_value(Value::String(k.kind.clone())).ok())
                    .unwrap_or(ToolKind::Other)
            });
            let title = req
                .tool_call
                .fields
                .title
                .clone()
                .or_else(|| known.map(|k| k.title.clone()));
            let cancelled = st.turn.as_ref().is_some_and(|t| t.cancelled);
            let (answer, outcome) = permission::decide(self.policy, kind, &req.options, cancelled);
            let decision = PermissionDecision {
                tool_call_id: call_id,
                title,
                kind: serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "other".into()),
                policy: self.policy,
                outcome,
            };
            (st.host.clone(), decision, answer)
        };
        self.send(wire::response(id, &RequestPermissionResponse::new(answer)));
        host.event(AcpEvent::Permission(decision));
    }

    async fn on_fs(&self, id: &Value, method: &str, params: Value) -> String {
        let invalid = |e: serde_json::Error| {
            wire::error_response(id, wire::INVALID_PARAMS, &format!("Invalid params: {e}"))
        };
        let refused =
            |e: super::fs::FsError| wire::error_response(id, e.rpc_code(), &e.to_string());
        if method == "fs/read_text_file" {
            let req: ReadTextFileRequest = match serde_json::from_value(params) {
                Ok(r) => r,
                Err(e) => return invalid(e),
            };
            match self
                .workspace
                .read_text(&req.path, req.line, req.limit)
                .await
            {
                Ok(content) => wire::response(id, &ReadTextFileResponse::new(content)),
                Err(e) => refused(e),
            }
        } else {
            let req: WriteTextFileRequest = match serde_json::from_value(params) {
                Ok(r) => r,
                Err(e) => return invalid(e),
            };
            match self.workspace.write_text(&req.path, &req.content).await {
                Ok(()) => wire::response(id, &WriteTextFileResponse::new()),
                Err(e) => refused(e),
            }
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(shared: Arc<Shared>, mut lines: LineReader<R>) {
    let why = loop {
        match lines.next_line().await {
            Ok(Some(line)) => match wire::classify(&line) {
                Ok(Some(message)) => shared.dispatch(message),
                Ok(None) => {}
                Err(garbage) => break Closed::Garbage(garbage.excerpt),
            },
            Ok(None) => break Closed::Eof,
            Err(ReadError::TooLong) => break Closed::TooLong,
            Err(ReadError::Io(e)) => break Closed::Io(e.to_string()),
        }
    };
    shared.close(why);
}

async fn write_loop(
    mut stdin: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<String>,
    close: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            biased;
            _ = close.cancelled() => break,
            line = rx.recv() => match line {
                Some(l) => l,
                None => break,
            },
        };
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        let ok = tokio::select! {
            _ = close.cancelled() => false,
            r = write => r.is_ok(),
        };
        if !ok {
            // A dead agent: the reader sees its stdout close and says why.
            break;
        }
    }
    let _ = stdin.shutdown().await;
}
