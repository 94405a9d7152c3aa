//! MCP over stdio: one JSON-RPC message per line. Unlike the SDK's own reader, a line that
//! cannot be used is answered as JSON-RPC 2.0 says — `-32700` for text that is not JSON,
//! `-32600` for JSON that is not a request, `-32602` for a known method with unusable params
//! (with the request's id, so the client's call ends instead of hanging) — and the server
//! keeps serving. Notifications and responses are never answered.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Longest message read; a longer line is skipped and answered as an invalid request.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

pub struct LineTransport<R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    /// Dropping the rest of a line that was too long.
    skipping: bool,
    write: Arc<Mutex<Option<W>>>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> LineTransport<R, W> {
    pub fn new(read: R, write: W) -> Self {
        LineTransport {
            read: BufReader::new(read),
            line: Vec::new(),
            skipping: false,
            write: Arc::new(Mutex::new(Some(write))),
        }
    }

    /// Reads one line into `self.line`; `Ok(false)` at end of input. Cancel-safe: a line
    /// read in part stays in the buffer for the next call.
    async fn read_line(&mut self) -> std::io::Result<Option<LineRead>> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(None);
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let outcome = if self.skipping {
                if newline.is_some() {
                    self.skipping = false;
                }
                None
            } else if self.line.len() + take > MAX_MESSAGE_BYTES {
                self.line.clear();
                self.skipping = newline.is_none();
                Some(LineRead::TooLong)
            } else {
                self.line.extend_from_slice(&available[..take]);
                newline.map(|_| LineRead::Line)
            };
            self.read.consume(take);
            if let Some(outcome) = outcome {
                return Ok(Some(outcome));
            }
        }
    }

    async fn reply(&mut self, reply: Value) {
        let mut bytes = reply.to_string().into_bytes();
        bytes.push(b'\n');
        let mut guard = self.write.lock().await;
        if let Some(w) = guard.as_mut()
            && (w.write_all(&bytes).await.is_err() || w.flush().await.is_err())
        {
            *guard = None;
        }
    }
}

enum LineRead {
    Line,
    TooLong,
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "stdio".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        async move {
            let mut bytes = serde_json::to_vec(&item)?;
            bytes.push(b'\n');
            let mut guard = write.lock().await;
            let w = guard
                .as_mut()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
            w.write_all(&bytes).await?;
            w.flush().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            match self.read_line().await {
                Ok(Some(LineRead::Line)) => {}
                Ok(Some(LineRead::TooLong)) => {
                    self.reply(error(
                        Value::Null,
                        INVALID_REQUEST,
                        format!("message longer than {MAX_MESSAGE_BYTES} bytes"),
                    ))
                    .await;
                    continue;
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::debug!("reading stdin: {e}");
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            match classify(&line) {
                Incoming::Message(m) => return Some(*m),
                Incoming::Skip => {}
                Incoming::Answer(reply) => self.reply(reply).await,
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let writer = self.write.lock().await.take();
        if let Some(mut w) = writer {
            w.shutdown().await?;
        }
        Ok(())
    }
}

pub(super) enum Incoming {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    /// Blank lines, and notifications or responses that cannot be used: nothing to answer.
    Skip,
    Answer(Value),
}

pub(super) fn classify(line: &[u8]) -> Incoming {
    let text = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let text = text.trim_ascii();
    if text.is_empty() {
        return Incoming::Skip;
    }
    let value: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Answer(error(
                Value::Null,
                PARSE_ERROR,
                format!("parse error: the line is not JSON ({e})"),
            ));
        }
    };
    let id = value
        .get("id")
        .cloned()
        .filter(|id| id.is_string() || id.is_number());
    let method = value
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string);
    match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value.clone()) {
        Ok(m) => Incoming::Message(Box::new(m)),
        Err(e) => match (method, id) {
            (Some(method), Some(id)) if value.get("jsonrpc") == Some(&json!("2.0")) => Incoming::Answer(error(
                id,
                INVALID_PARAMS,
                format!("invalid params for {method}: {e}"),
            )),
            // A notification, or a response to a request of ours: never answered.
            (Some(_), None) => Incoming::Skip,
            (None, _) if is_response(&value) => Incoming::Skip,
            (_, id) => Incoming::Answer(error(
                id.unwrap_or(Value::Null),
                INVALID_REQUEST,
                "invalid request: a JSON-RPC 2.0 request object with \"jsonrpc\", \"method\" and \"id\" was expected (batches are not part of MCP)".to_string(),
            )),
        },
    }
}

fn is_response(value: &Value) -> bool {
    value.get("id").is_some() && (value.get("result").is_some() || value.get("error").is_some())
}

fn error(id: Value, code: i64, message: String) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}
