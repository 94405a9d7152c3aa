//! `openclaw mcp`: the session tools as an MCP server on stdio (SPEC §11). The protocol is
//! the library's (`openclaw::mcp`); this command supplies its link to the daemon: a fresh
//! connection per call, started on demand like every command, presenting
//! `OPENCLAW_RUN_TOKEN` when a run started it, and proving this device to a daemon of
//! another user.

use clap::Args;
use openclaw::mcp::{BoxFuture, DaemonConnection, DaemonLink, LinkError};
use openclaw::paths::{Paths, PathsError};
use openclaw::protocol::{ErrorKind, Notification, RpcError};
use serde_json::Value;

use super::Context;
use crate::autostart::{self, Autostart};
use crate::connection::{CallError, Connection};
use crate::failure::{Exit, Failure};

/// Serve the session tools to an MCP client on stdin/stdout
#[derive(Debug, Args)]
#[command(
    long_about = "Serve openclaw's session tools (sessions_list, sessions_history, sessions_send, sessions_spawn, sessions_wait, and sessions_spawn_acp when an ACP agent may be used) to an MCP client over stdin/stdout, until stdin closes. Give it to an agent as {\"command\": \"openclaw\", \"args\": [\"mcp\"]}. Calls act as whoever runs it: inside an openclaw run (OPENCLAW_RUN_TOKEN set, as in the file $OPENCLAW_MCP_CONFIG points to) as that run's session, so what it spawns is that session's child; otherwise as you. Logs (-v) go to stderr; stdout carries only the protocol."
)]
pub struct McpArgs {}

pub async fn run(_ctx: &Context, _args: McpArgs) -> Result<(), Failure> {
    let link = CliLink {
        paths: paths()?,
        autostart: Autostart::from_env(),
    };
    openclaw::mcp::serve(link, tokio::io::stdin(), tokio::io::stdout())
        .await
        .map_err(|e| Failure::failed(e.to_string()))
}

/// Inside a run only the socket matters (the token says who is calling): a stripped-down
/// environment with `OPENCLAW_SOCKET` but no `HOME` still works.
fn paths() -> Result<Paths, Failure> {
    match Paths::from_env() {
        Ok(paths) => Ok(paths),
        Err(PathsError::NoHome) => match std::env::var_os("OPENCLAW_SOCKET") {
            Some(socket) if !socket.is_empty() => Ok(Paths {
                config_file: "config.toml".into(),
                data_dir: ".".into(),
                socket: socket.into(),
            }),
            _ => Err(Failure::failed(PathsError::NoHome.to_string())),
        },
    }
}

struct CliLink {
    paths: Paths,
    autostart: Autostart,
}

impl DaemonLink for CliLink {
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn DaemonConnection>, LinkError>> {
        Box::pin(async move {
            match autostart::connect(&self.paths, self.autostart).await {
                Ok(conn) => Ok(Box::new(CliConnection(conn)) as Box<dyn DaemonConnection>),
                Err(failure) => Err(link_error(failure)),
            }
        })
    }
}

/// A command's failure to connect, keeping its sentence and what kind of failure it was.
fn link_error(failure: Failure) -> LinkError {
    let message = failure
        .message
        .unwrap_or_else(|| "cannot reach the openclaw daemon".into());
    let kind = match failure.exit {
        Exit::NotPermitted => ErrorKind::Forbidden,
        Exit::NotFound => ErrorKind::NotFound,
        _ => return LinkError::Unavailable(message),
    };
    LinkError::Rpc(RpcError::app(kind, message))
}

struct CliConnection(Connection);

impl DaemonConnection for CliConnection {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, LinkError>> {
        Box::pin(async move {
            self.0
                .call_value(method, &params)
                .await
                .map_err(|e| match e {
                    CallError::Client(openclaw::ClientError::Rpc(e)) => LinkError::Rpc(e),
                    other => link_error(other.into()),
                })
        })
    }

    fn next_notification(&self) -> BoxFuture<'_, Option<Notification>> {
        Box::pin(self.0.next_notification())
    }
}
