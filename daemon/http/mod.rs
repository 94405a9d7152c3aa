//! The HTTP transport (SPEC §10): the session service's methods as routes, follows as SSE,
//! signed webhooks and the live page, over TCP (`[http] listen`, bearer token) and over the
//! daemon's Unix socket (peer credentials, like JSON-RPC there). Every route is a few lines:
//! parse, work out the caller, call the service, encode — the policy is all the service's.
//!
//! - `connection.rs`: telling HTTP from JSON-RPC on the socket, serving one connection;
//! - `router.rs`: the route table, and the checks every request passes (Host, Origin, CORS);
//! - `auth.rs`: who a request speaks for (bearer token on TCP, peer credentials on the socket);
//! - `routes.rs`: the `/api` handlers; `sse.rs`: event streams as SSE;
//! - `hooks.rs`: `POST /hooks/NAME`; `page.rs`: `GET /`;
//! - `input.rs`: bodies and query strings; `errors.rs`: service errors as statuses.

mod auth;
mod connection;
mod errors;
mod hooks;
mod input;
mod page;
mod router;
mod routes;
mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpConfig;
use crate::daemon::service::http_token::TokenFile;
use crate::daemon::service::{PeerFacts, SessionService};

pub use connection::{Protocol, sniff};

/// How a request reached the daemon (a per-connection request extension).
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    /// TCP on `[http] listen`: the bearer token says who it is.
    Tcp,
    /// The Unix socket: the kernel's peer credentials say who it is.
    Unix(PeerFacts),
}

/// What every handler shares.
pub struct State {
    pub service: Arc<SessionService>,
    /// The bearer token's file, read again when it is replaced.
    pub token: TokenFile,
    /// Where TCP listens (the `Host` a browser must use), when it does.
    pub listen: Option<SocketAddr>,
    pub shutdown: CancellationToken,
}

/// The HTTP surface of one daemon.
pub struct Http {
    state: Arc<State>,
    router: axum::Router,
}

impl Http {
    /// Binds `[http] listen` when it is set, making sure the token exists first (created 0600
    /// on the first start that listens): a bad or busy address stops the daemon's start with
    /// the reason. Without a listener the token is made by the first `openclaw http token`, so
    /// a daemon that never serves TCP never syncs a file it does not use.
    pub async fn start(
        config: &HttpConfig,
        service: Arc<SessionService>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Arc<Http>, Option<tokio::net::TcpListener>)> {
        let token = TokenFile::in_data_dir(&service.daemon.paths.data_dir);
        let listener = match &config.listen {
            None => None,
            Some(text) => {
                token.ensure().with_context(|| {
                    format!("creating the HTTP token {}", token.path().display())
                })?;
                let addr = crate::config::parse_listen(text)
                    .map_err(|m| anyhow::anyhow!("[http] listen: {m}"))?;
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening for HTTP on {addr} ([http] listen)"))?;
                Some(l)
            }
        };
        let listen = match &listener {
            Some(l) => Some(l.local_addr().context("reading the HTTP listen address")?),
            None => None,
        };
        let state = Arc::new(State {
            service,
            token,
            listen,
            shutdown,
        });
        let router = router::routes(state.clone());
        Ok((Arc::new(Http { state, router }), listener))
    }

    /// Accepts TCP connections until the daemon stops; each is tracked by `tracker`. Past
    /// `[limits] max_connections` open at once, accepting waits for one to close.
    pub fn serve_tcp(self: &Arc<Self>, listener: tokio::net::TcpListener, tracker: &TaskTracker) {
        if let Some(addr) = self.state.listen {
            tracing::info!(%addr, "HTTP listening");
        }
        let http = self.clone();
        let connections = tracker.clone();
        let max = self.state.service.engine().config().limits.max_connections as usize;
        let slots = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
        tracker.spawn(async move {
            loop {
                let slot = tokio::select! {
                    s = slots.clone().acquire_owned() => s,
                    _ = http.state.shutdown.cancelled() => break,
                };
                let Ok(slot) = slot else { break };
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = http.state.shutdown.cancelled() => break,
                };
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("HTTP accept failed: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                            _ = http.state.shutdown.cancelled() => break,
                        }
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let http = http.clone();
                connections.spawn(async move {
                    let daemon = &http.state.service.daemon;
                    daemon.connections.fetch_add(1, Ordering::Relaxed);
                    http.serve(stream, Transport::Tcp).await;
                    daemon.connections.fetch_sub(1, Ordering::Relaxed);
                    drop(slot);
                });
            }
        });
    }

    /// Serves one socket connection whose first bytes were an HTTP request line (the accept
    /// loop has counted it and holds its connection slot).
    pub async fn serve_unix(
        &self,
        stream: interprocess::local_socket::tokio::Stream,
        peer: PeerFacts,
    ) {
        let interprocess::local_socket::tokio::Stream::UdSocket(uds) = stream;
        let stream: tokio::net::UnixStream = uds.into();
        self.serve(stream, Transport::Unix(peer)).await;
    }

    async fn serve<I>(&self, io: I, transport: Transport)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        connection::serve(io, transport, self.router.clone(), &self.state.shutdown).await;
    }
}
