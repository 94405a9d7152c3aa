//! An OpenAI-compatible HTTP/1.1 server for tests, on 127.0.0.1 and a free port, run on
//! plain threads so that both async unit tests and blocking end-to-end tests can use it.
//!
//! It answers `POST …/chat/completions` with the replies a test queued, in order (the
//! captured real streams in `tests/fixtures/openai/`, byte for byte, or scripted ones), and
//! `GET …/models` with a model list. It records every request, and lets a test wait until a
//! client closed its connection while a reply was still streaming.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where the captured streams live.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openai")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's `messages`.
    pub fn messages(&self) -> Vec<Value> {
        self.json
            .as_ref()
            .and_then(|j| j["messages"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The text of the first user message: which session asks (it holds the task).
    pub fn first_user_text(&self) -> String {
        self.messages()
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string()
    }

    /// The text of the last message.
    pub fn last_text(&self) -> String {
        self.messages()
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string()
    }

    /// The names of the tools offered, in order.
    pub fn tool_names(&self) -> Vec<String> {
        self.json
            .as_ref()
            .and_then(|j| j["tools"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
            .collect()
    }

    /// The schema of one offered tool's parameters.
    pub fn tool_parameters(&self, name: &str) -> Option<Value> {
        self.json.as_ref()?["tools"]
            .as_array()?
            .iter()
            .find(|t| t["function"]["name"] == name)
            .map(|t| t["function"]["parameters"].clone())
    }

    /// The whole request as text: headers and body, to check what appears where.
    pub fn raw_text(&self) -> String {
        let mut text = format!("{} {}\n", self.method, self.path);
        for (k, v) in &self.headers {
            text.push_str(&format!("{k}: {v}\n"));
        }
        text.push_str(&String::from_utf8_lossy(&self.body));
        text
    }
}

/// How a scripted stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `data: [DONE]`, then the end of the body.
    Done,
    /// The end of the body without `[DONE]`.
    Close,
    /// The connection closes mid-body, as when a server dies.
    Cut,
    /// Nothing more is sent until the client goes away.
    Hang,
}

/// A scripted event stream.
#[derive(Debug, Clone, Default)]
pub struct Sse {
    events: Vec<String>,
}

impl Sse {
    pub fn new() -> Sse {
        Sse::default()
    }

    fn choice(mut self, delta: Value, finish: Value) -> Sse {
        self.events.push(
            json!({
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "test-model",
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            })
            .to_string(),
        );
        self
    }

    pub fn role(self) -> Sse {
        self.choice(json!({ "role": "assistant" }), Value::Null)
    }

    pub fn text(self, text: &str) -> Sse {
        self.choice(json!({ "content": text }), Value::Null)
    }

    /// One fragment of a tool call, in OpenAI's own shape.
    pub fn tool_fragment(
        self,
        index: u64,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
    ) -> Sse {
        let mut call = json!({ "index": index, "function": { "arguments": args } });
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        self.choice(json!({ "tool_calls": [call] }), Value::Null)
    }

    /// A whole call, its arguments in three pieces as servers stream them.
    pub fn tool_call(self, index: u64, id: &str, name: &str, arguments: &str) -> Sse {
        let chars: Vec<char> = arguments.chars().collect();
        let third = chars.len().div_ceil(3).max(1);
        let pieces: Vec<String> = chars.chunks(third).map(|c| c.iter().collect()).collect();
        let mut sse = self.tool_fragment(index, Some(id), Some(name), "");
        for piece in pieces {
            sse = sse.tool_fragment(index, None, None, &piece);
        }
        sse
    }

    pub fn finish(self, reason: &str) -> Sse {
        self.choice(json!({}), json!(reason))
    }

    pub fn usage(mut self, prompt: u64, completion: u64) -> Sse {
        self.events.push(
            json!({
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion },
            })
            .to_string(),
        );
        self
    }

    /// An event's data exactly as given.
    pub fn data(mut self, data: &str) -> Sse {
        self.events.push(data.to_string());
        self
    }

    pub fn end(self, end: End) -> Reply {
        Reply::Sse {
            events: self.events,
            end,
        }
    }

    pub fn done(self) -> Reply {
        self.end(End::Done)
    }

    /// These events, then `data` again and again until the client goes away (a model
    /// whose generation never ends).
    pub fn then_forever(self, data: &str) -> Reply {
        Reply::Endless {
            events: self.events,
            repeat: data.to_string(),
        }
    }

    /// A tool-call fragment's event data, for [`Sse::then_forever`].
    pub fn fragment_data(index: u64, args: &str) -> String {
        let mut only = Sse::new().tool_fragment(index, None, None, args);
        only.events.pop().unwrap_or_default()
    }
}

/// Holds a reply back until the test opens it (e.g. once a follower is listening), so that
/// nothing depends on timing. Opened when the server stops, too.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }

    /// Blocks until opened, or `within` passed; true when opened.
    fn wait(&self, within: Duration) -> bool {
        let (open, cv) = &*self.0;
        let guard = open.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, within, |o| !*o)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// Picks which request a queued reply answers.
pub type Matcher = Arc<dyn Fn(&Recorded) -> bool + Send + Sync>;

/// One answer to a chat request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A file of `tests/fixtures/openai/`: a whole response when it starts with `HTTP/1.1`,
    /// else an event-stream body sent with `text/event-stream` headers.
    Fixture(String),
    Sse {
        events: Vec<String>,
        end: End,
    },
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// 200 with an `application/json` body (a server that does not stream).
    Json(Value),
    /// Bytes written as they are, then the connection closes.
    Raw(Vec<u8>),
    /// An event stream whose last event repeats until the client goes away.
    Endless {
        events: Vec<String>,
        repeat: String,
    },
    /// No response at all until the client goes away.
    Silent,
    /// The reply, once the gate opens (at most a minute later).
    Gated(Gate, Box<Reply>),
}

impl Reply {
    pub fn fixture(name: &str) -> Reply {
        Reply::Fixture(name.to_string())
    }

    /// A plain streamed answer: role, the pieces, `stop`, `[DONE]`.
    pub fn text(pieces: &[&str]) -> Reply {
        let mut sse = Sse::new().role();
        for p in pieces {
            sse = sse.text(p);
        }
        sse.finish("stop").done()
    }

    /// A streamed round of tool calls: (id, name, arguments) each.
    pub fn tool_calls(calls: &[(&str, &str, &str)]) -> Reply {
        let mut sse = Sse::new().role();
        for (i, (id, name, args)) in calls.iter().enumerate() {
            sse = sse.tool_call(i as u64, id, name, args);
        }
        sse.finish("tool_calls").done()
    }

    /// An error status with OpenAI's error body.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::Status {
            status,
            headers: Vec::new(),
            body: json!({ "error": { "message": message, "type": "test_error" } }).to_string(),
        }
    }

    /// This reply, held until `gate` opens.
    pub fn after(self, gate: &Gate) -> Reply {
        Reply::Gated(gate.clone(), Box::new(self))
    }

    pub fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Status {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.to_string(), value.to_string()));
                Reply::Status {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<(Option<Matcher>, Reply)>,
    /// The answer when nothing queued fits (default: a 500 saying so).
    fallback: Option<Reply>,
    /// When the server began sending each chat reply (its headers and first chunk go out
    /// together), in the order of the requests.
    replies_started: Vec<Instant>,
    models: Option<Reply>,
    requests: Vec<Recorded>,
    /// Connections a client closed while their reply was still being sent.
    disconnects: usize,
    open: Vec<TcpStream>,
    workers: Vec<JoinHandle<()>>,
    /// Gates replies are held at, opened when the server stops.
    gates: Vec<Gate>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stopping: AtomicBool,
    /// Benchmark mode (see [`OpenAiServer::start_instant`]).
    instant: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct OpenAiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl OpenAiServer {
    pub fn start() -> OpenAiServer {
        OpenAiServer::start_with(false)
    }

    /// A server for benchmarks, doing as little as a real one would on the same CPUs: it
    /// keeps connections open between requests (HTTP/1.1 keep-alive, as real servers do;
    /// a test server closes each so tests see every request on its own connection), keeps
    /// only the last request (every body parsed and kept would cost the machine more than
    /// the client under test), and parses no body as JSON (`Recorded::json` is `None`).
    pub fn start_instant() -> OpenAiServer {
        OpenAiServer::start_with(true)
    }

    fn start_with(instant: bool) -> OpenAiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            instant,
        });
        let accept_shared = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept_shared.clone();
                let mut state = shared.lock();
                if let Ok(clone) = conn.try_clone() {
                    state.open.push(clone);
                }
                let worker_shared = shared.clone();
                state.workers.push(std::thread::spawn(move || {
                    if worker_shared.instant {
                        let _ = conn.set_nodelay(true);
                        while serve_one(&conn, &worker_shared) {}
                        let _ = conn.shutdown(Shutdown::Both);
                    } else {
                        serve(conn, &worker_shared);
                    }
                }));
            }
        });
        OpenAiServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// What a client puts in `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues the answer to the next chat request.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().script.push_back((None, reply));
    }

    /// Queues an answer for the next chat request that `matches` (queued answers are tried in
    /// order; the first that fits is used), for sessions whose requests may come in any order.
    pub fn push_when(
        &self,
        matches: impl Fn(&Recorded) -> bool + Send + Sync + 'static,
        reply: Reply,
    ) {
        self.shared
            .lock()
            .script
            .push_back((Some(Arc::new(matches)), reply));
    }

    /// Answers every chat request nothing queued fits with `reply` (an instant server).
    pub fn set_fallback(&self, reply: Reply) {
        self.shared.lock().fallback = Some(reply);
    }

    /// When the server began sending each chat reply so far.
    pub fn replies_started(&self) -> Vec<Instant> {
        self.shared.lock().replies_started.clone()
    }

    /// `GET /models` lists these (default: `test-model`).
    pub fn set_models(&self, ids: &[&str]) {
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({ "id": id, "object": "model", "owned_by": "test" }))
            .collect();
        self.shared.lock().models = Some(Reply::Json(json!({ "object": "list", "data": data })));
    }

    pub fn set_models_reply(&self, reply: Reply) {
        self.shared.lock().models = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    pub fn chat_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .collect()
    }

    /// Replies still queued.
    pub fn pending(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Waits until `n` requests arrived; `None` if they did not within `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Option<Vec<Recorded>> {
        self.wait_until(timeout, |s| s.requests.len() >= n)
            .then(|| self.requests())
    }

    /// Waits until `n` chat requests arrived; `None` if they did not within `timeout`.
    pub fn wait_for_chat_requests(&self, n: usize, timeout: Duration) -> Option<Vec<Recorded>> {
        self.wait_until(timeout, |s| {
            s.requests
                .iter()
                .filter(|r| r.path.ends_with("/chat/completions"))
                .count()
                >= n
        })
        .then(|| self.chat_requests())
    }

    /// Waits until a client has closed its connection mid-reply; false if none did within
    /// `timeout`.
    pub fn wait_for_disconnect(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.disconnects > 0)
    }

    pub fn disconnects(&self) -> usize {
        self.shared.lock().disconnects
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if done(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for OpenAiServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let (open, workers) = {
            let mut state = self.shared.lock();
            for gate in &state.gates {
                gate.open();
            }
            (
                std::mem::take(&mut state.open),
                std::mem::take(&mut state.workers),
            )
        };
        for conn in open {
            let _ = conn.shutdown(Shutdown::Both);
        }
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn serve(conn: TcpStream, shared: &Shared) {
    serve_one(&conn, shared);
    let _ = conn.shutdown(Shutdown::Both);
}

/// Answers one request; true when the connection may carry another (keep-alive, a reply
/// that ended with its length known).
fn serve_one(conn: &TcpStream, shared: &Shared) -> bool {
    let Some(request) = read_request(conn, !shared.instant) else {
        return false;
    };
    let path = request.path.split('?').next().unwrap_or("").to_string();
    let method = request.method.clone();
    let reply = {
        let mut state = shared.lock();
        if shared.instant {
            state.requests.clear();
        }
        state.requests.push(request);
        shared.changed.notify_all();
        if method == "POST" && path.ends_with("/chat/completions") {
            let request = state.requests.last().expect("just recorded");
            let fits = state
                .script
                .iter()
                .position(|(m, _)| m.as_ref().is_none_or(|m| m(request)));
            let fallback = state.fallback.clone();
            fits.and_then(|i| state.script.remove(i))
                .map(|(_, reply)| reply)
                .or(fallback)
                .unwrap_or_else(|| Reply::error(500, "the test server has no scripted reply left"))
        } else if method == "GET" && path.ends_with("/models") {
            state.models.clone().unwrap_or_else(|| {
                Reply::Json(json!({ "object": "list", "data": [{ "id": "test-model", "object": "model" }] }))
            })
        } else {
            Reply::error(404, &format!("no route for {method} {path}"))
        }
    };
    let reply = match reply {
        Reply::Gated(gate, reply) => {
            // Stopping opens every gate: a held reply never keeps the server from stopping.
            shared.lock().gates.push(gate.clone());
            if shared.stopping.load(Ordering::SeqCst) {
                gate.open();
            }
            gate.wait(Duration::from_secs(60));
            *reply
        }
        reply => reply,
    };
    if method == "POST" && path.ends_with("/chat/completions") {
        shared.lock().replies_started.push(Instant::now());
    }
    // A write that fails means the client went away.
    let keep_alive = shared.instant && reusable(&reply);
    let client_left = send(conn, &reply, keep_alive).unwrap_or(true);
    if client_left && !shared.stopping.load(Ordering::SeqCst) {
        shared.lock().disconnects += 1;
        shared.changed.notify_all();
    }
    keep_alive && !client_left && !shared.stopping.load(Ordering::SeqCst)
}

/// Whether the client can tell where this reply ends without the connection closing.
fn reusable(reply: &Reply) -> bool {
    match reply {
        Reply::Sse { end, .. } => matches!(end, End::Done | End::Close),
        Reply::Status { .. } | Reply::Json(_) => true,
        Reply::Gated(_, r) => reusable(r),
        _ => false,
    }
}

/// Reads one request. On a kept connection nothing is lost with the reader dropped after
/// it: a client sends a next request only once it has this one's answer (HTTP/1.1 clients
/// do not pipeline).
fn read_request(conn: &TcpStream, parse_json: bool) -> Option<Recorded> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let json = if parse_json {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    Some(Recorded {
        method,
        path,
        headers,
        body,
        json,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

const SSE_HEADERS: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-store\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n";
const SSE_HEADERS_KEPT: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n";

fn chunk(mut conn: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    conn.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())?;
    conn.write_all(bytes)?;
    conn.write_all(b"\r\n")?;
    conn.flush()
}

/// Blocks until the client closes its side (or the server stops).
fn wait_for_client_to_leave(mut conn: &TcpStream) {
    let mut buf = [0u8; 256];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Sends a reply; true when the client went away before it was complete. `keep` leaves
/// the connection open for another request.
fn send(mut conn: &TcpStream, reply: &Reply, keep: bool) -> std::io::Result<bool> {
    match reply {
        Reply::Fixture(name) => {
            let bytes = fixture(name);
            if bytes.starts_with(b"HTTP/1.1") {
                conn.write_all(&bytes)?;
                return Ok(false);
            }
            conn.write_all(SSE_HEADERS.as_bytes())?;
            // One HTTP chunk per event, as a server flushes them; the body is the file's
            // bytes exactly.
            let mut rest: &[u8] = &bytes;
            while !rest.is_empty() {
                let end = rest
                    .windows(2)
                    .position(|w| w == b"\n\n")
                    .map_or(rest.len(), |i| i + 2);
                chunk(conn, &rest[..end])?;
                rest = &rest[end..];
            }
            conn.write_all(b"0\r\n\r\n")?;
            Ok(false)
        }
        Reply::Sse { events, end } if keep => {
            // The whole reply in one write, as a server that answers at once sends it.
            let mut out = SSE_HEADERS_KEPT.as_bytes().to_vec();
            let mut push = |bytes: &[u8]| {
                out.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            };
            for data in events {
                push(format!("data: {data}\n\n").as_bytes());
            }
            if *end == End::Done {
                push(b"data: [DONE]\n\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            conn.write_all(&out)?;
            Ok(false)
        }
        Reply::Sse { events, end } => {
            conn.write_all(SSE_HEADERS.as_bytes())?;
            for data in events {
                chunk(conn, format!("data: {data}\n\n").as_bytes())?;
            }
            match end {
                End::Done => {
                    chunk(conn, b"data: [DONE]\n\n")?;
                    conn.write_all(b"0\r\n\r\n")?;
                }
                End::Close => conn.write_all(b"0\r\n\r\n")?,
                End::Cut => {}
                End::Hang => {
                    wait_for_client_to_leave(conn);
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}",
                reason(*status),
                body.len(),
                if keep { "" } else { "connection: close\r\n" }
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            conn.write_all(head.as_bytes())?;
            conn.write_all(body.as_bytes())?;
            Ok(false)
        }
        Reply::Json(value) => {
            let body = value.to_string();
            conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
                    body.len(),
                    if keep { "" } else { "connection: close\r\n" }
                )
                .as_bytes(),
            )?;
            Ok(false)
        }
        Reply::Raw(bytes) => {
            conn.write_all(bytes)?;
            Ok(false)
        }
        Reply::Silent => {
            wait_for_client_to_leave(conn);
            Ok(true)
        }
        Reply::Endless { events, repeat } => {
            conn.write_all(SSE_HEADERS.as_bytes())?;
            for data in events {
                chunk(conn, format!("data: {data}\n\n").as_bytes())?;
            }
            let event = format!("data: {repeat}\n\n");
            // Ends only when a write fails: the client went away.
            loop {
                chunk(conn, event.as_bytes())?;
            }
        }
        Reply::Gated(_, reply) => send(conn, reply, keep),
    }
}
