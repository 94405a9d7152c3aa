//! A small blocking HTTP/1.1 client for the HTTP tests, over TCP or the daemon's Unix socket
//! (as `curl --unix-socket` talks to it): keep-alive requests, raw bytes when a test needs
//! them, and an SSE reader. Every read has a timeout, so a missing answer fails the test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Daemon, RawConn};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Where a daemon answers HTTP.
#[derive(Debug, Clone)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    /// The `Host` header a client sends there.
    pub fn host(&self) -> String {
        match self {
            Target::Tcp(a) => a.to_string(),
            Target::Unix(_) => "openclaw".into(),
        }
    }
}

pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// One connection, kept alive between requests.
pub struct Conn {
    reader: BufReader<Box<dyn Io>>,
    host: String,
    /// Sent as `Authorization: Bearer` with every request built by [`Conn::request`].
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the answer ({}) is not JSON: {e}: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The error object of a JSON error answer, checked to have a type and a sentence.
    pub fn error(&self) -> serde_json::Value {
        let v = self.json();
        let e = v["error"].clone();
        assert!(
            e["type"].is_string() && e["message"].as_str().is_some_and(|m| m.len() > 10),
            "an error answer must be {{\"error\": {{\"type\", \"message\"}}}}: {v}"
        );
        e
    }
}

impl Conn {
    pub fn connect(target: &Target) -> Conn {
        let io: Box<dyn Io> = match target {
            Target::Tcp(addr) => {
                let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
                s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
                s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
                s.set_nodelay(true).expect("nodelay");
                Box::new(s)
            }
            Target::Unix(path) => Box::new(unix(path)),
        };
        Conn::over(io, target.host())
    }

    /// A connection over an already connected Unix stream (one made as another uid, say).
    pub fn over_unix(stream: UnixStream) -> Conn {
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("read timeout");
        Conn::over(Box::new(stream), "openclaw".into())
    }

    fn over(io: Box<dyn Io>, host: String) -> Conn {
        Conn {
            reader: BufReader::new(io),
            host,
            token: None,
        }
    }

    pub fn with_token(mut self, token: Option<&str>) -> Conn {
        self.token = token.map(str::to_string);
        self
    }

    /// Sends a request with a JSON body (or none) and reads the whole answer.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Response {
        self.request_with(method, path, &[], body)
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, None)
    }

    pub fn post(&mut self, path: &str, body: &str) -> Response {
        self.request("POST", path, Some(body))
    }

    /// A request with extra headers (which may replace `Host`).
    pub fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let head = self.head(method, path, headers, body.map_or(0, str::len));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default().as_bytes());
        self.write_raw(&bytes);
        self.read_response()
    }

    /// A request head (ending with the blank line) as this connection would send it.
    pub fn head(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: usize,
    ) -> String {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.host));
        }
        if let Some(t) = &self.token
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if content_length > 0 || method == "POST" {
            head.push_str(&format!("Content-Length: {content_length}\r\n"));
        }
        head.push_str("\r\n");
        head
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("write to the daemon");
    }

    /// The status line and headers of the next answer.
    pub fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line().expect("the daemon closed instead of answering");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self
                .line()
                .expect("the daemon closed in the middle of a head");
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header line: {line:?}"));
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        (status, headers)
    }

    /// The next whole answer (body by `Content-Length` or chunked).
    pub fn read_response(&mut self) -> Response {
        let (status, headers) = self.read_head();
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            while let Some(chunk) = self.chunk() {
                body.extend(chunk);
            }
            body
        } else {
            let n: usize = find("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; n];
            self.reader
                .read_exact(&mut body)
                .expect("read the answer's body");
            body
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// One chunk of a chunked body; `None` after the last.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self.line()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {size_line:?}"));
        if size == 0 {
            // Trailers, then the blank line.
            while !self.line()?.is_empty() {}
            return None;
        }
        let mut data = vec![0; size];
        self.reader.read_exact(&mut data).ok()?;
        let mut crlf = [0; 2];
        self.reader.read_exact(&mut crlf).ok()?;
        Some(data)
    }

    /// A line without its CRLF; `None` at end of stream.
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => panic!("nothing from the daemon within {TIMEOUT:?}: {e}"),
        }
    }

    /// Opens an SSE stream: asserts a 200 `text/event-stream` answer.
    pub fn sse(mut self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let head = self.head("GET", path, headers, 0);
        self.write_raw(head.as_bytes());
        let (status, h) = self.read_head();
        let content_type = h
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone());
        if status != 200 {
            let rest = Response {
                status,
                headers: h.clone(),
                body: Vec::new(),
            };
            panic!("GET {path} answered {status}, not an event stream: {rest:?}");
        }
        assert_eq!(content_type.as_deref(), Some("text/event-stream"), "{h:?}");
        Sse {
            conn: self,
            pending: Vec::new(),
            headers: h,
        }
    }

    /// The raw stream, to read or hold as a test likes.
    pub fn into_inner(self) -> BufReader<Box<dyn Io>> {
        self.reader
    }
}

fn unix(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    s
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    /// Adds one field line of the event's block (`event`, `id`, `data`; other fields are
    /// ignored). Blank lines and comments are the reader's to skip.
    pub fn add_field(&mut self, line: &str) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_string(),
            "id" => self.id = Some(value.to_string()),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {self:?}"))
    }
}

/// An open SSE stream (chunked body of SSE lines).
pub struct Sse {
    conn: Conn,
    pending: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Sse {
    /// The stream of a connection whose answer's head a test has read itself.
    pub fn resume(conn: Conn) -> Sse {
        Sse {
            conn,
            pending: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ends.
    pub fn next_event(&mut self) -> Option<Event> {
        let mut event = Event::default();
        let mut any = false;
        loop {
            let line = self.next_line()?;
            if line.is_empty() {
                if any {
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            any = true;
            event.add_field(&line);
        }
    }

    /// The next comment or field line, from whatever chunks it spans.
    fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.pending, rest);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(String::from_utf8(line).expect("SSE lines are UTF-8"));
            }
            let chunk = self.conn.chunk()?;
            self.pending.extend(chunk);
        }
    }

    /// The next comment line (`: ...`), skipping nothing else: for heartbeat checks.
    pub fn next_comment(&mut self) -> Option<String> {
        loop {
            let line = self.next_line()?;
            if let Some(c) = line.strip_prefix(':') {
                return Some(c.trim().to_string());
            }
        }
    }
}

/// A TCP port nobody listens on now (the kernel's pick, released for the daemon to take).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A daemon with `[http] listen` on a free loopback port, and that port. `config` is the rest
/// of config.toml (it must not have an `[http]` table); `http_extra` goes into `[http]`.
pub fn daemon_with_http(
    config: &str,
    http_extra: &str,
    env: &[(&str, &str)],
) -> (Daemon, SocketAddr) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let home = tempfile::Builder::new()
            .prefix("openclaw-http-")
            .tempdir()
            .expect("tempdir");
        let text = format!("{config}\n[http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}\n");
        std::fs::write(home.path().join("config.toml"), text).expect("write config");
        let mut d = Daemon {
            home,
            child: None,
            env: Vec::new(),
        };
        match d.spawn_daemon_with_env(env) {
            Ok(()) => return (d, SocketAddr::from(([127, 0, 0, 1], port))),
            // Another process took the port in between: pick again.
            Err(e) if e.contains("in use") => last = e,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free port for the daemon's HTTP listener: {last}");
}

/// The HTTP token, through JSON-RPC `http.token` (as `openclaw http token` asks for it).
pub fn token(d: &Daemon) -> String {
    let r = RawConn::connect(&d.socket()).call_ok("http.token", serde_json::json!({}));
    r["token"].as_str().expect("a token").to_string()
}
