//! How a command ends when it does not succeed: the exit status (SPEC §9, documented in the man
//! page) and the one diagnostic printed on stderr as `error: <message>`, or with `--json` as
//! `{"error": {"kind", "message", "exitCode"}}` on one line.

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

impl Exit {
    /// The error kind of `--json` errors when nothing more specific is known.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Failed => "failed",
            Exit::Usage => "usage",
            Exit::Unreachable => "unreachable",
            Exit::NotFound => "not_found",
            Exit::NotPermitted => "not_permitted",
            Exit::TimedOut => "timeout",
            Exit::Interrupted => "interrupted",
        }
    }
}

/// A command that did not succeed. `message: None` ends quietly (stdout was closed under us).
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: Option<String>,
    /// The `kind` of a `--json` error: the daemon's error kind when it gave one, else a kind
    /// of this CLI's (`run_failed`, `untrusted_socket`, ...), else the exit status's.
    pub kind: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: Some(message.into()),
            kind: None,
        }
    }

    pub fn with_kind(mut self, kind: impl Into<String>) -> Failure {
        self.kind = Some(kind.into());
        self
    }

    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(self.exit.kind())
    }

    /// The `--json` form: one line for stderr.
    pub fn json_line(&self) -> String {
        let error = serde_json::json!({
            "error": {
                "kind": self.kind(),
                "message": self.message.as_deref().unwrap_or(""),
                "exitCode": self.exit.code(),
            }
        });
        format!("{error}\n")
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
            kind: None,
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

    /// No daemon answered on `socket`. `hint` says what the user can do about it, which
    /// depends on how they got here.
    pub fn unreachable(socket: &Path, source: &io::Error, hint: StartHint) -> Failure {
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
        let hint = match hint {
            StartHint::AutostartDisabled => {
                "; start it with `openclaw daemon start` (commands do not start it themselves because OPENCLAW_NO_AUTOSTART is set)"
            }
            StartHint::Start => "; start it with `openclaw daemon start`",
            // The user asked for a start, or the start just failed: the other message says why.
            StartHint::None => "",
        };
        Failure::new(Exit::Unreachable, format!("{what}{hint}"))
    }

    /// A socket path the kernel cannot take (`sun_path` holds 107 bytes and a NUL).
    pub fn socket_path_too_long(socket: &Path) -> Failure {
        Failure::new(
            Exit::Usage,
            format!(
                "the socket path {} is {} bytes long; a Unix socket path can have at most {MAX_SOCKET_PATH}. Use a shorter OPENCLAW_HOME or XDG_RUNTIME_DIR, or set OPENCLAW_SOCKET to a shorter path",
                socket.display(),
                socket.as_os_str().len()
            ),
        )
        .with_kind("socket_path_too_long")
    }

    /// The daemon answered with an error object.
    pub fn rpc(err: &RpcError) -> Failure {
        let exit = exit_for_rpc_error(err);
        let mut message = err.message.clone();
        if let Some(candidates) = candidates(err) {
            // An ambiguous short form: one candidate per line, as the user would type it.
            for candidate in candidates {
                message.push_str("\n  ");
                message.push_str(&candidate);
            }
        }
        if err.kind() == Some(ErrorKind::Busy)
            && let Some(ms) = err
                .data
                .as_ref()
                .and_then(|d| d.get("retryAfterMs"))
                .and_then(|v| v.as_u64())
        {
            message.push_str(&format!(" (the daemon suggests retrying in {ms} ms)"));
        }
        Failure::new(exit, message).with_kind(rpc_kind(err))
    }
}

/// What to suggest when no daemon answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartHint {
    /// `openclaw daemon start`.
    Start,
    /// `openclaw daemon start`, and why commands did not start it.
    AutostartDisabled,
    /// Nothing: the user is starting it, or a start just failed with its own message.
    None,
}

/// `sun_path` is 108 bytes, the last for the NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// The kind of a daemon error for `--json`: `data.kind` as sent (a kind this CLI does not know
/// is passed on), else from the JSON-RPC code.
fn rpc_kind(err: &RpcError) -> String {
    if let Some(kind) = err
        .data
        .as_ref()
        .and_then(|d| d.get("kind"))
        .and_then(|k| k.as_str())
    {
        return kind.to_string();
    }
    match err.code {
        codes::INVALID_PARAMS => "invalid_params",
        codes::METHOD_NOT_FOUND => "method_not_found",
        codes::INVALID_REQUEST => "invalid_request",
        codes::PARSE_ERROR => "parse_error",
        codes::INTERNAL_ERROR => "internal",
        _ => "failed",
    }
    .to_string()
}

/// The sessions an ambiguous name could mean (`data.candidates`: keys, or rows with a key and
/// a label), as lines to show.
fn candidates(err: &RpcError) -> Option<Vec<String>> {
    let list = err.data.as_ref()?.get("candidates")?.as_array()?;
    let lines: Vec<String> = list
        .iter()
        .filter_map(|c| match c {
            serde_json::Value::String(key) => Some(key.clone()),
            serde_json::Value::Object(row) => {
                let key = row
                    .get("key")
                    .or_else(|| row.get("sessionKey"))
                    .and_then(|k| k.as_str())?;
                Some(match row.get("label").and_then(|l| l.as_str()) {
                    Some(label) if !label.is_empty() => format!("{key}  ({label})"),
                    _ => key.to_string(),
                })
            }
            _ => None,
        })
        .collect();
    (!lines.is_empty()).then_some(lines)
}

/// The exit status for an error the daemon returned.
pub fn exit_for_rpc_error(err: &RpcError) -> Exit {
    // An ambiguous short name is the user's to make precise, whatever code carries it.
    let kind = err
        .data
        .as_ref()
        .and_then(|d| d.get("kind"))
        .and_then(|k| k.as_str());
    if err.code == codes::INVALID_PARAMS || kind == Some("ambiguous") {
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
            ClientError::Connect { path, source } => {
                Failure::unreachable(&path, &source, StartHint::Start)
            }
            ClientError::Untrusted(untrusted) => {
                Failure::new(Exit::NotPermitted, untrusted.to_string()).with_kind("untrusted_socket")
            }
            ClientError::TimedOut => Failure::new(
                Exit::Unreachable,
                "the daemon did not answer in time (it may be stuck or overloaded: `openclaw daemon status` shows whether it responds)",
            )
            .with_kind("no_answer"),
            ClientError::Woken(_) => Failure::interrupted(),
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
        let f = Failure::unreachable(path, &io_err(io::ErrorKind::NotFound), StartHint::Start);
        assert_eq!(f.exit, Exit::Unreachable);
        let msg = f.message.unwrap();
        assert!(msg.contains("/run/user/1/openclaw/openclaw.sock"), "{msg}");
        assert!(msg.contains("openclaw daemon start"), "{msg}");
        assert!(!msg.contains("OPENCLAW_NO_AUTOSTART"), "{msg}");

        let f = Failure::unreachable(
            path,
            &io_err(io::ErrorKind::ConnectionRefused),
            StartHint::AutostartDisabled,
        );
        assert!(f.message.unwrap().contains("OPENCLAW_NO_AUTOSTART is set"));

        let f = Failure::unreachable(
            path,
            &io_err(io::ErrorKind::PermissionDenied),
            StartHint::Start,
        );
        assert_eq!(f.exit, Exit::NotPermitted);

        // Someone who just ran `daemon start` is not told to run it.
        let f = Failure::unreachable(path, &io_err(io::ErrorKind::NotFound), StartHint::None);
        assert!(!f.message.unwrap().contains("daemon start"));
    }

    #[test]
    fn a_long_socket_path_is_named_with_its_length_and_the_way_out() {
        let long = std::path::PathBuf::from(format!("/{}/openclaw.sock", "d".repeat(120)));
        let f = Failure::socket_path_too_long(&long);
        let message = f.message.unwrap();
        assert!(
            message.contains("135 bytes") && message.contains("107"),
            "{message}"
        );
        assert!(message.contains("OPENCLAW_SOCKET"), "{message}");
        assert!(!message.contains("daemon start"), "{message}");
    }

    #[test]
    fn json_errors_carry_kind_message_and_exit_code() {
        let f = Failure::rpc(&RpcError::not_found("no session \"x\""));
        let line: serde_json::Value = serde_json::from_str(&f.json_line()).unwrap();
        assert_eq!(
            line,
            json!({"error": {"kind": "not_found", "message": "no session \"x\"", "exitCode": 4}})
        );
        let f = Failure::rpc(&RpcError::invalid_params("bad"));
        assert_eq!(f.kind(), "invalid_params");
        assert_eq!(Failure::usage("x").kind(), "usage");
        assert_eq!(
            Failure::failed("x").with_kind("run_failed").kind(),
            "run_failed"
        );
        assert!(f.json_line().ends_with("}\n") && f.json_line().lines().count() == 1);
    }

    #[test]
    fn an_ambiguous_name_lists_its_candidates() {
        let err = RpcError::invalid_params("ambiguous: \"12a7\" names 2 sessions")
            .with_data("kind", "ambiguous".into())
            .with_data(
                "candidates",
                json!(["agent:main:subagent:12a7aac7-1", {"key": "agent:main:subagent:12a7bb", "label": "daily"}]),
            );
        let f = Failure::rpc(&err);
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(f.kind(), "ambiguous");
        assert_eq!(
            f.message.unwrap(),
            "ambiguous: \"12a7\" names 2 sessions\n  agent:main:subagent:12a7aac7-1\n  agent:main:subagent:12a7bb  (daily)"
        );
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
