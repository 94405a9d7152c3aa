//! A blocking client for the daemon's socket: one thread, no async runtime, nothing started
//! that a one-shot program would have to tear down. Replies are matched to calls by id;
//! notifications that arrive while a call waits are queued for [`Client::next_notification`].
//!
//! A wait can be bounded by a deadline and ended early by other file descriptors (a Ctrl-C
//! pipe, a pidfd, a stdout whose reader went away): see [`Wait`]. Nothing is polled on a
//! timer; the thread sleeps in `poll(2)` until one of them is ready.
//!
//! ```no_run
//! # fn demo() -> Result<(), openclaw::ClientError> {
//! use openclaw::client::blocking::Client;
//! use openclaw::protocol::{SpawnParams, SpawnResult, methods};
//!
//! let paths = openclaw::paths::Paths::from_env().expect("HOME or OPENCLAW_HOME is set");
//! let mut client = Client::connect_checked(&paths.socket, &paths.expected_daemon())?;
//! let params = SpawnParams { task: "run the daily report".into(), ..Default::default() };
//! let spawned: SpawnResult = client.call(methods::SESSIONS_SPAWN, &params)?;
//! println!("{}", spawned.session_key);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ClientError;
use super::trust::{self, Expected, PeerCredentials};
use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::protocol::{ErrorKind, Id, Notification, Request, Response, RpcError};

/// A file descriptor that ends a wait when it becomes ready.
#[derive(Debug, Clone, Copy)]
pub struct Wake<'a> {
    pub fd: BorrowedFd<'a>,
    /// Wake when it is readable (a pipe, a pidfd); otherwise only on error or hang-up (the
    /// write end of a pipe whose reader went away).
    pub readable: bool,
}

/// How long a blocking read may wait, and what else ends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait<'a> {
    /// Give up with [`ClientError::TimedOut`] at this instant.
    pub deadline: Option<Instant>,
    /// End with [`ClientError::Woken`] (the index in this slice) when one is ready.
    pub wake: &'a [Wake<'a>],
}

impl Wait<'_> {
    /// Wait as long as it takes.
    pub const FOREVER: Wait<'static> = Wait {
        deadline: None,
        wake: &[],
    };
}

/// What arrives while a call is in flight.
#[derive(Debug)]
pub enum Incoming {
    Notification(Notification),
    /// The call's reply: its result, or the daemon's error.
    Reply(Result<Value, RpcError>),
}

/// A connection to the daemon.
pub struct Client {
    stream: UnixStream,
    /// Bytes received and not yet taken as frames: `pending[start..]`.
    pending: Vec<u8>,
    start: usize,
    /// Skipping the rest of a line that went over the frame limit.
    discarding: bool,
    limit: usize,
    closed: bool,
    queued: VecDeque<Notification>,
    next_id: i64,
    /// An error the daemon sent about the connection itself (id null: a connection cap),
    /// kept so that every later call learns why the connection ended.
    refusal: Option<RpcError>,
}

impl Client {
    /// Connects to `socket` without judging who listens there: see [`Client::connect_checked`].
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
        Ok(Client::from_stream(stream))
    }

    /// Connects to `socket` only if its directory and the process listening there are what
    /// `expected` accepts ([`trust`]); otherwise [`ClientError::Untrusted`], before a byte is
    /// sent.
    pub fn connect_checked(socket: &Path, expected: &Expected) -> Result<Client, ClientError> {
        let dir_owner = trust::check_directory(socket, expected)?;
        let client = Client::connect(socket)?;
        let peer = client
            .peer_credentials()
            .map_err(|e| trust::Untrusted::Unknown {
                socket: socket.to_path_buf(),
                error: e.to_string(),
            })?;
        trust::judge_peer(socket, peer, dir_owner, expected)?;
        Ok(client)
    }

    pub fn from_stream(stream: UnixStream) -> Client {
        Client {
            stream,
            pending: Vec::new(),
            start: 0,
            discarding: false,
            limit: DEFAULT_MAX_FRAME_BYTES,
            closed: false,
            queued: VecDeque::new(),
            next_id: 1,
            refusal: None,
        }
    }

    /// Who is at the other end (fixed when it listened).
    pub fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        trust::peer_credentials(self.stream.as_fd())
    }

    /// Calls a method with typed params and result, waiting as long as it takes.
    pub fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let value = self.call_value(method, params, &Wait::FOREVER)?;
        Ok(serde_json::from_value(value)?)
    }

    /// Calls a method; the result as raw JSON.
    pub fn call_value<P: Serialize>(
        &mut self,
        method: &str,
        params: &P,
        wait: &Wait<'_>,
    ) -> Result<Value, ClientError> {
        let id = self.send_request(method, params)?;
        self.wait_response(id, wait)
    }

    /// Writes one request and returns its id, for [`Client::wait_response`] (several may be
    /// in flight).
    pub fn send_request<P: Serialize>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<i64, ClientError> {
        if let Some(refusal) = &self.refusal {
            return Err(ClientError::Rpc(refusal.clone()));
        }
        let id = self.next_id;
        self.next_id += 1;
        let request = Request {
            jsonrpc: "2.0",
            id: Id::Num(id),
            method,
            params,
        };
        let mut bytes = serde_json::to_vec(&request)?;
        if bytes.len() > DEFAULT_MAX_FRAME_BYTES {
            // The daemon would skip it and could not say which call it was: refuse here.
            return Err(ClientError::TooLarge {
                bytes: bytes.len(),
                limit: DEFAULT_MAX_FRAME_BYTES,
            });
        }
        bytes.push(b'\n');
        self.stream.write_all(&bytes)?;
        Ok(id)
    }

    /// Reads until the reply to call `id` arrives, queueing notifications met on the way.
    pub fn wait_response(&mut self, id: i64, wait: &Wait<'_>) -> Result<Value, ClientError> {
        loop {
            match self.read_incoming(id, wait)? {
                Incoming::Notification(n) => self.queued.push_back(n),
                Incoming::Reply(reply) => return reply.map_err(ClientError::Rpc),
            }
        }
    }

    /// The next thing to arrive for a caller waiting on call `id`: a notification (queued ones
    /// first), or the reply. For commands that show a call's progress while it runs.
    pub fn next_incoming(&mut self, id: i64, wait: &Wait<'_>) -> Result<Incoming, ClientError> {
        if let Some(n) = self.queued.pop_front() {
            return Ok(Incoming::Notification(n));
        }
        self.read_incoming(id, wait)
    }

    /// The next notification or reply off the wire (the queue is not looked at).
    fn read_incoming(&mut self, id: i64, wait: &Wait<'_>) -> Result<Incoming, ClientError> {
        loop {
            let Some(value) = self.next_message(wait)? else {
                return Err(self
                    .refusal
                    .clone()
                    .map_or(ClientError::Disconnected, ClientError::Rpc));
            };
            if value.get("method").is_some() {
                if let Ok(n) = serde_json::from_value::<Notification>(value) {
                    return Ok(Incoming::Notification(n));
                }
                continue;
            }
            let Ok(response) = serde_json::from_value::<Response>(value) else {
                continue;
            };
            match response.id {
                Id::Num(n) if n == id => {
                    return Ok(Incoming::Reply(match (response.result, response.error) {
                        (_, Some(err)) => Err(err),
                        (Some(result), None) => Ok(result),
                        (None, None) => Ok(Value::Null),
                    }));
                }
                // The daemon turning the whole connection away (a connection cap).
                Id::Null
                    if response.error.as_ref().and_then(RpcError::kind)
                        == Some(ErrorKind::Busy) =>
                {
                    let err = response.error.unwrap_or_else(|| RpcError::internal("busy"));
                    self.refusal = Some(err.clone());
                    return Err(ClientError::Rpc(err));
                }
                // A reply to a call abandoned after its wait ended.
                _ => {}
            }
        }
    }

    /// The next notification the daemon pushed; `None` once the connection is closed.
    pub fn next_notification(
        &mut self,
        wait: &Wait<'_>,
    ) -> Result<Option<Notification>, ClientError> {
        loop {
            if let Some(n) = self.queued.pop_front() {
                return Ok(Some(n));
            }
            let Some(value) = self.next_message(wait)? else {
                return Ok(None);
            };
            if value.get("method").is_some()
                && let Ok(n) = serde_json::from_value::<Notification>(value)
            {
                return Ok(Some(n));
            }
        }
    }

    /// Closes the write side so the daemon sees end of input.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }

    /// The next JSON value from the daemon; `None` at end of stream. Lines that are not JSON,
    /// and lines over the frame limit, are skipped.
    fn next_message(&mut self, wait: &Wait<'_>) -> Result<Option<Value>, ClientError> {
        loop {
            let Some(line) = self.next_line(wait)? else {
                return Ok(None);
            };
            if let Ok(value) = serde_json::from_slice::<Value>(&line) {
                return Ok(Some(value));
            }
        }
    }

    fn next_line(&mut self, wait: &Wait<'_>) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(Some(line));
            }
            if self.closed {
                return Ok(None);
            }
            self.wait_readable(wait)?;
            self.fill()?;
        }
    }

    /// A complete, non-blank line from what was received, if there is one.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let unread = &self.pending[self.start..];
            let Some(newline) = unread.iter().position(|&b| b == b'\n') else {
                if self.discarding || unread.len() > self.limit + 1 {
                    // Over the limit: drop it and what follows up to its newline.
                    self.discarding = true;
                    self.pending.clear();
                    self.start = 0;
                }
                return None;
            };
            let line_end = self.start + newline;
            let mut line = self.pending[self.start..line_end].to_vec();
            self.start = line_end + 1;
            if self.start == self.pending.len() {
                self.pending.clear();
                self.start = 0;
            }
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > self.limit || line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(line);
        }
    }

    /// Reads what the socket has (at least one byte, or end of stream).
    fn fill(&mut self) -> Result<(), ClientError> {
        if self.start > 0 && self.start * 2 > self.pending.len() {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The daemon reset the connection: as good as closed.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    self.closed = true;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Blocks until the socket is readable, or a wake descriptor is ready, or the deadline.
    fn wait_readable(&self, wait: &Wait<'_>) -> Result<(), ClientError> {
        if wait.deadline.is_none() && wait.wake.is_empty() {
            // A plain blocking read will do.
            return Ok(());
        }
        let mut fds = Vec::with_capacity(1 + wait.wake.len());
        fds.push(libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for w in wait.wake {
            fds.push(libc::pollfd {
                fd: w.fd.as_raw_fd(),
                events: if w.readable { libc::POLLIN } else { 0 },
                revents: 0,
            });
        }
        loop {
            let timeout = match wait.deadline {
                None => -1,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Rounded up: a sub-millisecond remainder still waits instead of spinning.
                    i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
                }
            };
            // SAFETY: `fds` is a valid array of pollfd for its length; every fd in it is
            // borrowed open for the duration of the call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err.into());
            }
            // A wake descriptor first: Ctrl-C wins over data that is also waiting.
            if let Some(i) = fds[1..].iter().position(|p| p.revents != 0) {
                return Err(ClientError::Woken(i));
            }
            if fds[0].revents != 0 {
                return Ok(());
            }
            if rc == 0 {
                return Err(ClientError::TimedOut);
            }
        }
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::time::Duration;

    /// A client wired to a peer the test plays by hand.
    fn pair() -> (Client, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Client::from_stream(a), b)
    }

    fn read_request(peer: &UnixStream) -> Value {
        let mut line = String::new();
        std::io::BufReader::new(peer).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn a_call_gets_its_own_reply_and_queues_notifications() {
        let (mut client, mut peer) = pair();
        let id = client
            .send_request("x.y", &serde_json::json!({"a": 1}))
            .unwrap();
        let request = read_request(&peer);
        assert_eq!(request["method"], "x.y");
        assert_eq!(request["id"], id);
        peer.write_all(
            format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{{\"k\":1}}}}\n\
                 not json\n\n\
                 {{\"jsonrpc\":\"2.0\",\"id\":999,\"result\":\"stale\"}}\n\
                 {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":\"ok\"}}\n"
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(client.wait_response(id, &Wait::FOREVER).unwrap(), "ok");
        let n = client.next_notification(&Wait::FOREVER).unwrap().unwrap();
        assert_eq!((n.method.as_str(), n.params["k"].as_i64()), ("n", Some(1)));
        drop(peer);
        assert!(client.next_notification(&Wait::FOREVER).unwrap().is_none());
    }

    #[test]
    fn an_error_reply_is_an_rpc_error() {
        let (mut client, mut peer) = pair();
        let id = client.send_request("m", &()).unwrap();
        peer.write_all(
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":-32001,\"message\":\"gone\",\"data\":{{\"kind\":\"not_found\"}}}}}}\n"
            )
            .as_bytes(),
        )
        .unwrap();
        match client.wait_response(id, &Wait::FOREVER) {
            Err(ClientError::Rpc(e)) => assert_eq!(e.kind(), Some(ErrorKind::NotFound)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_closed_connection_is_disconnected_and_a_refusal_is_kept() {
        let (mut client, peer) = pair();
        let id = client.send_request("m", &()).unwrap();
        drop(peer);
        assert!(matches!(
            client.wait_response(id, &Wait::FOREVER),
            Err(ClientError::Disconnected)
        ));

        let (mut client, mut peer) = pair();
        let id = client.send_request("m", &()).unwrap();
        peer.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32005,\"message\":\"too many connections\",\"data\":{\"kind\":\"busy\"}}}\n").unwrap();
        assert!(matches!(
            client.wait_response(id, &Wait::FOREVER),
            Err(ClientError::Rpc(_))
        ));
        match client.send_request("m", &()) {
            Err(ClientError::Rpc(e)) => assert_eq!(e.message, "too many connections"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_deadline_ends_the_wait() {
        let (mut client, _peer) = pair();
        let wait = Wait {
            deadline: Some(Instant::now() + Duration::from_millis(20)),
            wake: &[],
        };
        assert!(matches!(
            client.next_notification(&wait),
            Err(ClientError::TimedOut)
        ));
    }

    #[test]
    fn a_ready_wake_descriptor_ends_the_wait_and_says_which() {
        let (mut client, _peer) = pair();
        let (quiet, _quiet_peer) = UnixStream::pair().unwrap();
        let (ready, mut ready_peer) = UnixStream::pair().unwrap();
        ready_peer.write_all(b"x").unwrap();
        let wake = [
            Wake {
                fd: quiet.as_fd(),
                readable: true,
            },
            Wake {
                fd: ready.as_fd(),
                readable: true,
            },
        ];
        let wait = Wait {
            deadline: Some(Instant::now() + Duration::from_secs(20)),
            wake: &wake,
        };
        assert!(matches!(
            client.next_notification(&wait),
            Err(ClientError::Woken(1))
        ));
    }

    #[test]
    fn an_oversized_line_is_skipped_and_the_stream_goes_on() {
        let (mut client, mut peer) = pair();
        client.limit = 64;
        let id = client.send_request("m", &()).unwrap();
        let writer = std::thread::spawn(move || {
            peer.write_all(&vec![b'x'; 100_000]).unwrap();
            peer.write_all(
                format!("\n{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":1}}\n").as_bytes(),
            )
            .unwrap();
            peer
        });
        assert_eq!(client.wait_response(id, &Wait::FOREVER).unwrap(), 1);
        drop(writer.join().unwrap());
    }

    #[test]
    fn a_request_over_the_frame_limit_is_refused_before_sending() {
        let (mut client, _peer) = pair();
        let big = "x".repeat(DEFAULT_MAX_FRAME_BYTES + 1);
        assert!(matches!(
            client.send_request("m", &big),
            Err(ClientError::TooLarge { .. })
        ));
    }
}
