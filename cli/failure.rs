//! How a command ends when it does not succeed: the exit status (SPEC §9, documented in the man
//! page) and the one diagnostic printed on stderr as `error: <message>`.

use std::io;
use std::path::Path;

use openclaw::protocol::codes;
use openclaw::{ClientError, ErrorKind, RpcError};

/// The process exit statuses. Scripts branch on these, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The run failed, or any error without a more specific status.
    Failed = 1,
    /// Bad command line, or parameters the daemon refused (JSON-RPC -32602).
    Usage = 2,
    /// No daemon to talk to.
    Unreachable = 3,
    NotFound = 4,
    /// Pairing required, forbidden by policy, or the socket is not open to this user.
    NotPermitted = 5,
    /// The wait ended before the run did (as timeout(1)).
    TimedOut = 124,
    /// Stopped by Ctrl-C (SIGINT), as a shell reports a command it interrupted: 128 + 2.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A command that did not succeed. `message: None` ends quietly (stdout was closed under us).
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: Some(message.into()),
        }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Failed, message)
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    /// An end with this status and nothing to say.
    pub fn quiet(exit: Exit) -> Failure {
        Failure {
            exit,
            message: None,
        }
    }

    /// The reader of our stdout went away (`openclaw ... | head -1`): not an error, stop quietly.
    pub fn stdout_closed() -> Failure {
        Failure::quiet(Exit::Ok)
    }

    /// Ctrl-C: the user knows, so nothing is printed.
    pub fn interrupted() -> Failure {
        Failure::quiet(Exit::Interrupted)
    }

    /// A failed write to stdout.
    pub fn stdout(err: io::Error) -> Failure {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Failure::stdout_closed()
        } else {
            Failure::failed(format!("cannot write to standard output: {err}"))
        }
    }

    /// No daemon answered on `socket`. `autostart_disabled` says whether the user turned off
    /// on-demand start, which decides what they should do about it.
    pub fn unreachable(socket: &Path, source: &io::Error, autostart_disabled: bool) -> Failure {
        let socket = socket.display();
        let what = match source.kind() {
            io::ErrorKind::NotFound => {
                format!("no openclaw daemon is running: there is no socket at {socket}")
            }
            io::ErrorKind::ConnectionRefused => format!(
                "no openclaw daemon is listening on {socket} (connection refused; the daemon that made it has stopped)"
            ),
            io::ErrorKind::PermissionDenied => {
                return Failure::new(
                    Exit::NotPermitted,
                    format!(
                        "permission denied connecting to {socket}: the daemon's socket is not open to this user; its owner can open it with [socket] mode and group in the daemon's config.toml"
                    ),
                );
            }
            _ => format!("cannot connect to the openclaw daemon at {socket}: {source}"),
        };
        let hint = if autostart_disabled {
            "; start it with `openclaw daemon start` (commands do not start it themselves because OPENCLAW_NO_AUTOSTART is set)"
        } else {
            "; start it with `openclaw daemon start`"
        };
        Failure::new(Exit::Unreachable, format!("{what}{hint}"))
    }

    /// The daemon answered with an error object.
    pub fn rpc(err: &RpcError) -> Failure {
        let exit = exit_for_rpc_error(err);
        let mut message = err.message.clone();
        if err.kind() == Some(ErrorKind::Busy)
            && let Some(ms) = err
                .data
                .as_ref()
                .and_then(|d| d.get("retryAfterMs"))
                .and_then(|v| v.as_u64())
        {
            message.push_str(&format!(" (the daemon suggests retrying in {ms} ms)"));
        }
        Failure::new(exit, message)
    }
}

/// The exit status for an error the daemon returned.
pub fn exit_for_rpc_error(err: &RpcError) -> Exit {
    if err.code == codes::INVALID_PARAMS {
        return Exit::Usage;
    }
    match err.kind() {
        Some(ErrorKind::NotFound) => Exit::NotFound,
        Some(ErrorKind::PairingRequired | ErrorKind::Forbidden) => Exit::NotPermitted,
        // The daemon is going away: for the caller that is the same as it not being there.
        Some(ErrorKind::ShuttingDown) => Exit::Unreachable,
        Some(ErrorKind::Timeout) => Exit::TimedOut,
        Some(ErrorKind::Conflict | ErrorKind::Busy | ErrorKind::FrameTooLarge) | None => {
            Exit::Failed
        }
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Failure {
        match err {
            ClientError::Connect { path, source } => Failure::unreachable(&path, &source, false),
            ClientError::Rpc(rpc) => Failure::rpc(&rpc),
            ClientError::Disconnected => Failure::new(
                Exit::Unreachable,
                "the daemon closed the connection before answering (it may have stopped or crashed; `openclaw daemon status` tells whether it is running)",
            ),
            ClientError::Io(e) => Failure::new(
                Exit::Unreachable,
                format!("the connection to the daemon failed: {e}"),
            ),
            err @ ClientError::TooLarge { .. } => Failure::new(Exit::Usage, err.to_string()),
            ClientError::Decode(e) => Failure::failed(format!(
                "the daemon sent a reply this openclaw cannot read ({e}); are the CLI and the daemon the same version? `openclaw daemon status` shows the daemon's"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn io_err(kind: io::ErrorKind) -> io::Error {
        io::Error::from(kind)
    }

    #[test]
    fn rpc_errors_map_to_documented_exit_codes() {
        let cases = [
            (RpcError::invalid_params("unknown field `x`"), Exit::Usage),
            (RpcError::not_found("no session"), Exit::NotFound),
            (
                RpcError::app(ErrorKind::PairingRequired, "pair first"),
                Exit::NotPermitted,
            ),
            (
                RpcError::app(ErrorKind::Forbidden, "denied"),
                Exit::NotPermitted,
            ),
            (
                RpcError::app(ErrorKind::ShuttingDown, "bye"),
                Exit::Unreachable,
            ),
            (RpcError::app(ErrorKind::Timeout, "slow"), Exit::TimedOut),
            (RpcError::busy("queue full", 10), Exit::Failed),
            (RpcError::app(ErrorKind::Conflict, "again"), Exit::Failed),
            (RpcError::internal("oops"), Exit::Failed),
            (RpcError::method_not_found("x"), Exit::Failed),
        ];
        for (err, exit) in cases {
            assert_eq!(exit_for_rpc_error(&err), exit, "{err:?}");
        }
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let codes: Vec<u8> = [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::Unreachable,
            Exit::NotFound,
            Exit::NotPermitted,
            Exit::TimedOut,
            Exit::Interrupted,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 124, 130]);
    }

    #[test]
    fn busy_message_carries_the_retry_hint() {
        let f = Failure::rpc(&RpcError::busy("the main lane is full", 250));
        assert!(f.message.unwrap().ends_with("retrying in 250 ms)"));
    }

    #[test]
    fn unknown_kind_is_a_plain_failure() {
        let err = RpcError {
            code: -32050,
            message: "new".into(),
            data: Some(json!({"kind": "something_new"})),
        };
        assert_eq!(exit_for_rpc_error(&err), Exit::Failed);
    }

    #[test]
    fn unreachable_names_the_socket_and_the_way_out() {
        let path = Path::new("/run/user/1/openclaw/openclaw.sock");
        let f = Failure::unreachable(path, &io_err(io::ErrorKind::NotFound), false);
        assert_eq!(f.exit, Exit::Unreachable);
        let msg = f.message.unwrap();
        assert!(msg.contains("/run/user/1/openclaw/openclaw.sock"), "{msg}");
        assert!(msg.contains("openclaw daemon start"), "{msg}");
        assert!(!msg.contains("OPENCLAW_NO_AUTOSTART"), "{msg}");

        let f = Failure::unreachable(path, &io_err(io::ErrorKind::ConnectionRefused), true);
        assert!(f.message.unwrap().contains("OPENCLAW_NO_AUTOSTART is set"));

        let f = Failure::unreachable(path, &io_err(io::ErrorKind::PermissionDenied), false);
        assert_eq!(f.exit, Exit::NotPermitted);
    }

    #[test]
    fn client_errors_map_to_exit_codes() {
        assert_eq!(
            Failure::from(ClientError::Disconnected).exit,
            Exit::Unreachable
        );
        let rpc = ClientError::Rpc(RpcError::not_found("gone"));
        let f = Failure::from(rpc);
        assert_eq!(
            (f.exit, f.message.as_deref()),
            (Exit::NotFound, Some("gone"))
        );
    }

    #[test]
    fn broken_pipe_on_stdout_is_a_quiet_success() {
        let f = Failure::stdout(io_err(io::ErrorKind::BrokenPipe));
        assert_eq!(f.exit, Exit::Ok);
        assert!(f.message.is_none());
        assert_eq!(
            Failure::stdout(io_err(io::ErrorKind::Other)).exit,
            Exit::Failed
        );
    }
}
