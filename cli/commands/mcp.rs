//! `openclaw mcp`: the session tools as an MCP server on stdio (SPEC §11). The protocol is
//! the library's (`openclaw::mcp`); this command supplies its link to the daemon: a fresh
//! connection per call, started on demand like every command, presenting
//! `OPENCLAW_RUN_TOKEN` when a run started it, and proving this device to a daemon of
//! another user.

use clap::Args;
use openclaw::mcp::{BoxFuture, DaemonConnection, DaemonLink, LinkError};
use openclaw::paths::{Paths, PathsError};
use openclaw::protocol::{ErrorKind, HelloParams, Notification, RpcError, methods};
use serde_json::Value;

use super::Context;
use crate::autostart::{self, Autostart};
use crate::connection::Challenge;
use crate::failure::{Exit, Failure};

/// Serve the session tools to an MCP client on stdin/stdout
#[derive(Debug, Args)]
#[command(
    long_about = "Serve openclaw's session tools (sessions_list, sessions_history, sessions_send, sessions_spawn, sessions_wait, and sessions_spawn_acp when an ACP agent may be used) to an MCP client over stdin/stdout, until stdin closes. Give it to an agent as {\"command\": \"openclaw\", \"args\": [\"mcp\"]}. Calls act as whoever runs it: inside an openclaw run (OPENCLAW_RUN_TOKEN set, as in the file $OPENCLAW_MCP_CONFIG points to) as that run's session, so what it spawns is that session's child; otherwise as you. Logs (-v) go to stderr; stdout carries only the protocol."
)]
pub struct McpArgs {}

/// The one command that stays: an MCP session is long and concurrent (a wait reports
/// progress while it waits), so it runs on a small async runtime of its own; every other
/// command is one blocking call.
pub fn run(_ctx: &Context, _args: McpArgs) -> Result<(), Failure> {
    let link = CliLink {
        paths: paths()?,
        autostart: Autostart::from_env(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the MCP server: {e}")))?;
    runtime
        .block_on(openclaw::mcp::serve(
            link,
            tokio::io::stdin(),
            tokio::io::stdout(),
        ))
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
                socket_named: true,
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
    /// A checked connection (socket directory and peer, as every command checks them); when
    /// no daemon runs, the blocking start every command uses starts one first. The run's
    /// token is presented as every command presents it.
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn DaemonConnection>, LinkError>> {
        Box::pin(async move {
            let expected = autostart::expected_daemon(&self.paths).map_err(link_error)?;
            let client = match openclaw::Client::connect_checked(&self.paths.socket, &expected)
                .await
            {
                Ok(client) => client,
                Err(e) if e.is_unreachable() && self.autostart == Autostart::Allowed => {
                    let (paths, autostart) = (self.paths.clone(), self.autostart);
                    tokio::task::spawn_blocking(move || {
                        autostart::connect(&paths, autostart, false).map(drop)
                    })
                    .await
                    .map_err(|e| LinkError::Unavailable(format!("cannot start the daemon: {e}")))?
                    .map_err(link_error)?;
                    openclaw::Client::connect_checked(&self.paths.socket, &expected)
                        .await
                        .map_err(client_error)?
                }
                Err(e) => return Err(client_error(e)),
            };
            if let Some(token) = std::env::var_os("OPENCLAW_RUN_TOKEN").filter(|t| !t.is_empty()) {
                let hello = HelloParams {
                    client: Some(format!("openclaw mcp {}", openclaw::VERSION)),
                    run_token: Some(token.to_string_lossy().into_owned()),
                };
                client
                    .call_value(methods::HELLO, &hello)
                    .await
                    .map_err(client_error)?;
            }
            Ok(Box::new(ProvingConnection {
                peer: client.peer_credentials().ok(),
                client,
                socket: self.paths.socket.display().to_string(),
                key_dir: crate::connection::key_dir(&self.paths),
            }) as Box<dyn DaemonConnection>)
        })
    }
}

/// A connection that proves this device when another user's daemon asks (a
/// `pairing_required` challenge), then makes the refused call once more, as every command's
/// connection does (`crate::connection`). The owner's calls never see a challenge.
struct ProvingConnection {
    client: openclaw::Client,
    /// The socket as this process reached it (the proof signs it).
    socket: String,
    key_dir: std::path::PathBuf,
    peer: Option<openclaw::client::trust::PeerCredentials>,
}

impl ProvingConnection {
    async fn prove(&self, challenge: &Challenge) -> Result<(), LinkError> {
        let params = crate::connection::proof_params(&self.key_dir, &self.socket, challenge)
            .map_err(|e| LinkError::Rpc(RpcError::app(ErrorKind::Forbidden, e)))?;
        match self
            .client
            .call_value(methods::PAIRING_AUTHENTICATE, &params)
            .await
        {
            Ok(_) => {
                crate::connection::remember_daemon(
                    &self.key_dir,
                    &self.socket,
                    self.peer,
                    challenge,
                );
                Ok(())
            }
            Err(openclaw::ClientError::Rpc(e)) => Err(LinkError::Rpc(
                crate::connection::explain_refusal(e, &self.socket),
            )),
            Err(other) => Err(client_error(other)),
        }
    }
}

impl DaemonConnection for ProvingConnection {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, LinkError>> {
        Box::pin(async move {
            let refused = match self.client.call_value(method, &params).await {
                Err(openclaw::ClientError::Rpc(e)) => e,
                other => return other.map_err(client_error),
            };
            // A connection serves one tool call, so one proof per connection is all there is.
            let Some(challenge) = Challenge::from_error(&refused) else {
                return Err(LinkError::Rpc(refused));
            };
            self.prove(&challenge).await?;
            self.client
                .call_value(method, &params)
                .await
                .map_err(client_error)
        })
    }

    fn next_notification(&self) -> BoxFuture<'_, Option<Notification>> {
        Box::pin(self.client.next_notification())
    }
}

fn client_error(e: openclaw::ClientError) -> LinkError {
    match e {
        openclaw::ClientError::Rpc(e) => LinkError::Rpc(e),
        other => LinkError::Unavailable(other.to_string()),
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
