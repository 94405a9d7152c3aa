//! One HTTP connection (HTTP/1.1 with keep-alive, on hyper), and telling an HTTP request line
//! from a JSON-RPC frame by a socket connection's first bytes, read without consuming them.

use std::os::fd::AsRawFd;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;

use super::Transport;

/// A client has this long to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long requests in flight may take to answer once the daemon is stopping.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(1);

/// What a socket connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    JsonRpc,
    Http,
    /// It closed (or the daemon is stopping, or the peer's handshake time ran out) before
    /// saying anything.
    Closed,
}

/// Request methods with the space after them: the start of every HTTP/1.x request line.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"DELETE ",
    b"HEAD ",
    b"PUT ",
    b"PATCH ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
];
/// The longest of them.
const SNIFF_BYTES: usize = 8;

/// What a connection's first bytes say; `None` while they could still become either. A
/// JSON-RPC frame is JSON, which never starts with an upper-case letter, so the usual first
/// byte `{` decides at once; anything that is not a request line stays JSON-RPC (and gets its
/// parse error there, as before).
pub fn classify(first: &[u8]) -> Option<Protocol> {
    match first.first() {
        None => None,
        Some(b) if !b.is_ascii_uppercase() => Some(Protocol::JsonRpc),
        Some(_) if METHODS.iter().any(|m| first.starts_with(m)) => Some(Protocol::Http),
        Some(_) if METHODS.iter().any(|m| m.starts_with(first)) => None,
        Some(_) => Some(Protocol::JsonRpc),
    }
}

/// Waits for a socket connection's first bytes and says what it speaks, leaving them unread.
/// `deadline` bounds the wait (another uid's connection must speak within its handshake time).
pub async fn sniff(
    stream: &interprocess::local_socket::tokio::Stream,
    deadline: Option<Duration>,
    shutdown: &CancellationToken,
) -> Protocol {
    let interprocess::local_socket::tokio::Stream::UdSocket(uds) = stream;
    let sock = uds.inner();
    let fd = sock.as_raw_fd();
    let peek = sock.async_io(Interest::READABLE, || {
        let mut buf = [0u8; SNIFF_BYTES];
        // SAFETY: recv into a buffer we own, of the length given; MSG_PEEK leaves the bytes
        // in the socket for whoever reads next.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let got = &buf[..n as usize];
        if got.is_empty() {
            return Ok(Protocol::Closed);
        }
        match classify(got) {
            Some(p) => Ok(p),
            // A prefix of a method name and nothing more will come: not a request line.
            None if done_sending(fd) => Ok(Protocol::JsonRpc),
            // Wait for more bytes (tokio clears the readiness and waits for the next edge).
            None => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    });
    let deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = peek => r.unwrap_or(Protocol::Closed),
        _ = deadline => Protocol::Closed,
        _ = shutdown.cancelled() => Protocol::Closed,
    }
}

/// Whether the peer has shut down its sending side.
fn done_sending(fd: std::os::fd::RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout: this only inspects the socket's state.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

/// Serves HTTP/1.1 on one connection until the client closes it or the daemon stops.
pub async fn serve<I>(
    io: I,
    transport: Transport,
    router: axum::Router,
    shutdown: &CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(transport);
        let mut router = router.clone();
        tower_service::Service::call(&mut router, req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection ended: {e}");
            }
        }
        _ = shutdown.cancelled() => {
            // Streams end themselves on shutdown (telling the client why); requests in
            // flight get a moment to answer.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_DRAIN, conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rpc_is_told_by_its_first_byte() {
        assert_eq!(classify(b"{\"jsonrpc\""), Some(Protocol::JsonRpc));
        assert_eq!(classify(b"["), Some(Protocol::JsonRpc));
        assert_eq!(classify(b" {"), Some(Protocol::JsonRpc));
        assert_eq!(classify(b"\xff\xfe"), Some(Protocol::JsonRpc));
        assert_eq!(classify(b"null"), Some(Protocol::JsonRpc));
    }

    #[test]
    fn request_lines_are_http() {
        assert_eq!(classify(b"GET /api"), Some(Protocol::Http));
        assert_eq!(classify(b"POST /ap"), Some(Protocol::Http));
        assert_eq!(classify(b"DELETE /"), Some(Protocol::Http));
        assert_eq!(classify(b"OPTIONS "), Some(Protocol::Http));
    }

    #[test]
    fn a_method_still_arriving_waits_and_other_words_are_json_rpc() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"G"), None);
        assert_eq!(classify(b"POS"), None);
        assert_eq!(classify(b"OPTIONS"), None);
        assert_eq!(classify(b"GETX"), Some(Protocol::JsonRpc));
        assert_eq!(classify(b"HELLO"), Some(Protocol::JsonRpc));
        assert_eq!(classify(b"get /"), Some(Protocol::JsonRpc));
    }
}
