//! Clients for the daemon's socket. [`Client`] is async (tokio): calls may be issued
//! concurrently on one connection (they are matched to replies by id) and notifications pushed
//! by the daemon are queued for `next_notification`. [`blocking::Client`] does the same on one
//! thread with no runtime, for programs that make a call or two and exit (the `openclaw` CLI);
//! [`trust`] decides whether the process at a socket is a daemon this user should talk to.

pub mod blocking;
pub mod trust;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::tokio::Stream as _;
use interprocess::local_socket::{GenericFilePath, ToFsName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, BufReader, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::frame::{DEFAULT_MAX_FRAME_BYTES, Frame, FrameReader, write_frame};
use crate::protocol::{ErrorKind, Id, Notification, Request, Response, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the openclaw daemon at {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("the daemon closed the connection before answering")]
    Disconnected,
    #[error("talking to the daemon failed: {0}")]
    Io(#[from] io::Error),
    #[error("the daemon sent a reply this client cannot read: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error(
        "this request is {bytes} bytes, more than the {limit} bytes a daemon reads by default; send less at once (a large message can go in an attachment file)"
    )]
    TooLarge { bytes: usize, limit: usize },
    /// The socket or the process behind it is not one this user should talk to; nothing was
    /// sent.
    #[error(transparent)]
    Untrusted(#[from] trust::Untrusted),
    /// A blocking wait reached its deadline (the call may still complete at the daemon).
    #[error("the daemon did not answer in time")]
    TimedOut,
    /// A blocking wait was ended by one of its wake descriptors (by index), e.g. Ctrl-C.
    #[error("the wait was interrupted")]
    Woken(usize),
}

impl ClientError {
    /// True when no daemon is listening (as opposed to one that answered with an error).
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Connect { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ),
            _ => false,
        }
    }
}

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Response>>>>;
type Refusal = Arc<Mutex<Option<RpcError>>>;

pub struct Client {
    stream: Arc<Stream>,
    write_lock: tokio::sync::Mutex<()>,
    pending: Pending,
    /// An error the daemon sent about the connection itself (id null), kept so that calls
    /// made after it still learn why the connection ended.
    refusal: Refusal,
    notifications: tokio::sync::Mutex<mpsc::UnboundedReceiver<Notification>>,
    next_id: AtomicI64,
    reader: tokio::task::JoinHandle<()>,
}

/// Reads through a shared stream: `&Stream` is `AsyncRead`, so one task can read while
/// others write through the same `Arc<Stream>`.
pub struct SharedRead(pub Arc<Stream>);

impl AsyncRead for SharedRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s: &Stream = &self.0;
        Pin::new(&mut s).poll_read(cx, buf)
    }
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
        let connect_err = |source| ClientError::Connect {
            path: socket.to_path_buf(),
            source,
        };
        let name = socket
            .to_fs_name::<GenericFilePath>()
            .map_err(connect_err)?;
        let stream = Stream::connect(name).await.map_err(connect_err)?;
        Ok(Client::from_stream(stream))
    }

    /// Connects to `socket` only if its directory and the process listening there are what
    /// `expected` accepts, as [`blocking::Client::connect_checked`] does; otherwise
    /// [`ClientError::Untrusted`], before a byte is sent.
    pub async fn connect_checked(
        socket: &Path,
        expected: &trust::Expected,
    ) -> Result<Client, ClientError> {
        let dir_owner = trust::check_directory(socket, expected)?;
        let client = Client::connect(socket).await?;
        let peer = client
            .peer_credentials()
            .map_err(|error| trust::Untrusted::Unknown {
                socket: socket.to_path_buf(),
                error,
            })?;
        trust::judge_peer(socket, peer, dir_owner, expected)?;
        Ok(client)
    }

    /// Who is at the other end (fixed when it listened); `Err` says why it is not known.
    pub fn peer_credentials(&self) -> Result<trust::PeerCredentials, String> {
        use interprocess::local_socket::traits::StreamCommon;
        let creds = self.stream.peer_creds().map_err(|e| e.to_string())?;
        match (creds.euid(), creds.egid()) {
            (Some(uid), Some(gid)) => Ok(trust::PeerCredentials {
                pid: creds.pid().map_or(0, |p| p as u32),
                uid,
                gid,
            }),
            _ => Err("the peer's uid is not known".into()),
        }
    }

    fn from_stream(stream: Stream) -> Client {
        let stream = Arc::new(stream);
        let pending: Pending = Arc::default();
        let refusal: Refusal = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(
            SharedRead(stream.clone()),
            pending.clone(),
            refusal.clone(),
            tx,
        ));
        Client {
            stream,
            write_lock: tokio::sync::Mutex::new(()),
            pending,
            notifications: tokio::sync::Mutex::new(rx),
            next_id: AtomicI64::new(1),
            reader,
            refusal,
        }
    }

    /// Calls a method with typed params and result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let value = self.call_value(method, params).await?;
        Ok(serde_json::from_value(value)?)
    }

    /// Calls a method; the result as raw JSON.
    pub async fn call_value<P: Serialize>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let request = Request {
            jsonrpc: "2.0",
            id: Id::Num(id),
            method,
            params,
        };
        let bytes = serde_json::to_vec(&request)?;
        if bytes.len() > DEFAULT_MAX_FRAME_BYTES {
            // The daemon would skip it and could not say which call it was: refuse here.
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(ClientError::TooLarge {
                bytes: bytes.len(),
                limit: DEFAULT_MAX_FRAME_BYTES,
            });
        }
        if let Err(e) = self.write(&bytes).await {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(e.into());
        }
        let Ok(response) = rx.await else {
            let refusal = self
                .refusal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            return Err(refusal.map_or(ClientError::Disconnected, ClientError::Rpc));
        };
        match (response.result, response.error) {
            (_, Some(err)) => Err(ClientError::Rpc(err)),
            (Some(result), None) => Ok(result),
            (None, None) => Ok(Value::Null),
        }
    }

    /// Writes one raw frame (tests and tools use this to send arbitrary bytes).
    pub async fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let _guard = self.write_lock.lock().await;
        let mut w: &Stream = &self.stream;
        write_frame(&mut w, bytes).await
    }

    /// The next notification the daemon pushed; `None` once the connection is closed.
    pub async fn next_notification(&self) -> Option<Notification> {
        self.notifications.lock().await.recv().await
    }

    /// Closes the write side so the daemon sees end of input.
    pub async fn shutdown_write(&self) -> io::Result<()> {
        let mut w: &Stream = &self.stream;
        tokio::io::AsyncWriteExt::shutdown(&mut w).await
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_loop(
    read: SharedRead,
    pending: Pending,
    refusal: Refusal,
    notifications: mpsc::UnboundedSender<Notification>,
) {
    let mut frames = FrameReader::new(BufReader::new(read), DEFAULT_MAX_FRAME_BYTES);
    while let Ok(Some(Frame::Line(line))) = frames.next_frame().await {
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if value.get("method").is_some() {
            if let Ok(n) = serde_json::from_value::<Notification>(value) {
                let _ = notifications.send(n);
            }
            continue;
        }
        let Ok(response) = serde_json::from_value::<Response>(value) else {
            continue;
        };
        match response.id {
            Id::Num(id) => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if let Some(tx) = waiter {
                    let _ = tx.send(response);
                }
            }
            // The daemon turning the whole connection away (a connection cap): every
            // waiting call, and every later one, gets its answer.
            Id::Null
                if response.error.as_ref().and_then(RpcError::kind) == Some(ErrorKind::Busy) =>
            {
                *refusal.lock().unwrap_or_else(|p| p.into_inner()) = response.error.clone();
                let waiting: Vec<_> = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .drain()
                    .collect();
                for (id, tx) in waiting {
                    let _ = tx.send(Response {
                        jsonrpc: response.jsonrpc.clone(),
                        result: None,
                        error: response.error.clone(),
                        id: Id::Num(id),
                    });
                }
            }
            _ => {}
        }
    }
    // Dropping the senders wakes every waiting call with `Disconnected`.
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
}
