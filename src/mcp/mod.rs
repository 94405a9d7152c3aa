//! `openclaw mcp`: the session tools for any MCP client (Claude Code, Codex, Gemini CLI,
//! editors), served over stdio with the official Rust SDK (`rmcp`).
//!
//! The server holds no policy: `tools/list` shows what the daemon's `tools.list` says this
//! caller gets (the same definitions and schemas the `openai` backend offers a run), a
//! `tools/call` is parsed against that scope with [`crate::tools::parse_tool_arguments`] and
//! carried out with the daemon's own JSON-RPC methods, as whoever runs the server (the
//! operator, a run by its token, or a paired device). Every call opens a fresh connection,
//! so a session token (`session-<sid>.<secret>`) speaks for whichever run of the session is
//! active at that moment.
//!
//! ```ignore
//! openclaw::mcp::serve(link, tokio::io::stdin(), tokio::io::stdout()).await?;
//! ```

mod calls;
mod progress;
mod server;
mod stdio;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::protocol::{Notification, RpcError};

pub use server::SessionToolServer;
pub use stdio::LineTransport;

/// A future a trait object can return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the server reaches the daemon as whoever runs it.
pub trait DaemonLink: Send + Sync + 'static {
    /// A new connection whose caller is established afresh (a run token is presented again
    /// in `hello`, so it acts as the run active now, or is refused once that run has ended).
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn DaemonConnection>, LinkError>>;
}

/// One connection to the daemon.
pub trait DaemonConnection: Send + Sync {
    /// Calls a method; its result as JSON.
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, LinkError>>;
    /// The next notification the daemon pushed on this connection; `None` once it is closed.
    fn next_notification(&self) -> BoxFuture<'_, Option<Notification>>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The daemon answered with an error.
    #[error("{0}")]
    Rpc(RpcError),
    /// The daemon could not be reached, or the connection failed; the sentence says why.
    #[error("{0}")]
    Unavailable(String),
}

impl DaemonConnection for crate::Client {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, LinkError>> {
        Box::pin(async move {
            self.call_value(method, &params).await.map_err(|e| match e {
                crate::ClientError::Rpc(e) => LinkError::Rpc(e),
                other => LinkError::Unavailable(other.to_string()),
            })
        })
    }

    fn next_notification(&self) -> BoxFuture<'_, Option<Notification>> {
        Box::pin(crate::Client::next_notification(self))
    }
}

/// Serves the session tools over `read`/`write` (stdin/stdout) until the client closes its
/// end (or the connection fails).
pub async fn serve<L, R, W>(link: L, read: R, write: W) -> Result<(), std::io::Error>
where
    L: DaemonLink,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    use rmcp::ServiceExt;
    let service = SessionToolServer::new(link)
        .serve(LineTransport::new(read, write))
        .await
        .map_err(|e| std::io::Error::other(format!("the MCP handshake failed: {e}")))?;
    service
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(format!("the MCP server stopped: {e}")))?;
    Ok(())
}
