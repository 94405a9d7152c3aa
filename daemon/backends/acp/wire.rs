//! JSON-RPC 2.0 over newline-delimited stdio: bounded line reading, telling the four kinds of
//! message apart, and writing ours.
//!
//! Both peers number their own requests, typically from 0 or 1, so an incoming `id` says
//! nothing about whether a message is a request or a response: only `method` does.

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Longest line taken from an agent. Tool call updates can carry whole diffs; past this an
/// agent is broken or hostile, and its connection ends rather than the daemon's memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// ACP's "resource not found" (a file, a session).
pub const RESOURCE_NOT_FOUND: i64 = -32002;

#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: Value,
        outcome: Result<Value, RpcError>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

/// Why a line could not be taken as a message: the agent broke the protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Garbage {
    /// The start of the offending line, for the error message.
    pub excerpt: String,
}

/// Classifies one line. Blank lines and JSON objects that are none of the four kinds are
/// skipped (`Ok(None)`); anything that is not a JSON object is garbage.
pub fn classify(line: &[u8]) -> Result<Option<Incoming>, Garbage> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let garbage = || Garbage {
        excerpt: excerpt(line),
    };
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(line) else {
        return Err(garbage());
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    if let Some(method) = obj.get("method") {
        let Some(method) = method.as_str() else {
            return Ok(None);
        };
        let method = method.to_string();
        return Ok(Some(match obj.remove("id") {
            Some(id) if !id.is_null() => Incoming::Request { id, method, params },
            _ => Incoming::Notification { method, params },
        }));
    }
    let Some(id) = obj.remove("id") else {
        return Ok(None);
    };
    if let Some(error) = obj.remove("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)")
            .to_string();
        let data = error.get("data").cloned();
        return Ok(Some(Incoming::Response {
            id,
            outcome: Err(RpcError {
                code,
                message,
                data,
            }),
        }));
    }
    match obj.remove("result") {
        Some(result) => Ok(Some(Incoming::Response {
            id,
            outcome: Ok(result),
        })),
        None => Ok(None),
    }
}

/// Our request ids are integers; a peer that echoes them as strings is still understood.
pub fn our_id(id: &Value) -> Option<u64> {
    match id {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX * 4)]);
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

pub fn request(id: u64, method: &str, params: &impl Serialize) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

pub fn notification(method: &str, params: &impl Serialize) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

pub fn response(id: &Value, result: &impl Serialize) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

pub fn error_response(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

#[derive(Debug)]
pub enum ReadError {
    TooLong,
    Io(std::io::Error),
}

/// Reads newline-terminated lines, refusing any longer than its limit without buffering it.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            max,
            line: Vec::new(),
        }
    }

    /// The next line without its newline; `None` at end of stream. A last line without a
    /// newline is still a line.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        self.line.clear();
        loop {
            let available = self.inner.fill_buf().await.map_err(ReadError::Io)?;
            if available.is_empty() {
                return Ok((!self.line.is_empty()).then(|| std::mem::take(&mut self.line)));
            }
            let (taken, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if self.line.len() + taken > self.max {
                return Err(ReadError::TooLong);
            }
            self.line.extend_from_slice(&available[..taken]);
            self.inner.consume(if done { taken + 1 } else { taken });
            if done {
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Ok(Some(std::mem::take(&mut self.line)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_decides_request_or_response_whatever_the_id() {
        // The TS SDK's agent numbers from 0, ours from 1: id 1 can be either.
        let req = classify(
            br#"{"jsonrpc":"2.0","id":1,"method":"fs/read_text_file","params":{"path":"/x"}}"#,
        );
        assert!(
            matches!(req, Ok(Some(Incoming::Request { ref method, .. })) if method == "fs/read_text_file")
        );
        let resp = classify(br#"{"jsonrpc":"2.0","id":1,"result":{"stopReason":"end_turn"}}"#);
        assert_eq!(
            resp,
            Ok(Some(Incoming::Response {
                id: json!(1),
                outcome: Ok(json!({"stopReason":"end_turn"}))
            }))
        );
        let err = classify(br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32601,"message":"nope"}}"#);
        assert!(matches!(
            err,
            Ok(Some(Incoming::Response {
                outcome: Err(RpcError { code: -32601, .. }),
                ..
            }))
        ));
        let note = classify(br#"{"jsonrpc":"2.0","method":"session/update","params":{}}"#);
        assert!(matches!(note, Ok(Some(Incoming::Notification { .. }))));
        let null_id = classify(br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#);
        assert!(matches!(null_id, Ok(Some(Incoming::Notification { .. }))));
    }

    #[test]
    fn garbage_is_refused_and_odd_objects_skipped() {
        let g = classify(b"Welcome to BrokenAgent!").unwrap_err();
        assert_eq!(g.excerpt, "Welcome to BrokenAgent!");
        assert!(classify(b"[1,2]").is_err());
        assert!(classify(b"42").is_err());
        assert_eq!(classify(b"   "), Ok(None));
        assert_eq!(classify(b"{}"), Ok(None));
        assert_eq!(classify(br#"{"id":3}"#), Ok(None));
        let long = vec![b'x'; 1000];
        assert!(classify(&long).unwrap_err().excerpt.chars().count() <= 121);
    }

    #[test]
    fn ids_echoed_as_strings_are_ours_too() {
        assert_eq!(our_id(&json!(7)), Some(7));
        assert_eq!(our_id(&json!("7")), Some(7));
        assert_eq!(our_id(&json!("x")), None);
        assert_eq!(our_id(&json!(-1)), None);
    }

    #[tokio::test]
    async fn lines_are_bounded_and_split_anywhere() {
        let (mut w, r) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            w.write_all(b"first\r\nsecond\n\nlast").await.unwrap();
        });
        let mut lines = LineReader::new(r, 100);
        let mut got = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            got.push(String::from_utf8(l).unwrap());
        }
        writer.await.unwrap();
        assert_eq!(got, ["first", "second", "", "last"]);

        let (mut w, r) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = w.write_all(&[b'a'; 500]).await;
        });
        let mut lines = LineReader::new(r, 100);
        assert!(matches!(lines.next_line().await, Err(ReadError::TooLong)));
    }

    #[test]
    fn written_messages_are_single_lines() {
        let r = request(3, "session/prompt", &json!({"text": "a\nb"}));
        assert!(!r.contains('\n'));
        let v: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["method"], "session/prompt");
        let e = error_response(&json!(0), METHOD_NOT_FOUND, "no");
        let v: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["error"]["code"], METHOD_NOT_FOUND);
        assert_eq!(v["id"], 0);
    }
}
