//! A failed agent, said so that a user can act on it: which command, what went wrong, and
//! the end of what it wrote on stderr.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AcpFailure {
    #[error("could not be started: {0}")]
    Spawn(String),
    #[error("{how} during {during}")]
    Exited { how: String, during: String },
    #[error("wrote something that is not JSON-RPC on stdout during {during}: {excerpt:?}")]
    Garbage { excerpt: String, during: String },
    #[error("wrote a line longer than {limit} bytes on stdout")]
    LineTooLong { limit: usize },
    #[error("did not answer {method} within {ms} ms")]
    Timeout { method: String, ms: u128 },
    #[error("answered {method} with error {code}: {message}")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("stopped reading its stdin")]
    Stalled,
    #[error("was stopped")]
    Stopped,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("ACP agent `{command}` {failure}{}", stderr_suffix(.stderr_tail))]
pub struct AcpError {
    pub command: String,
    pub failure: AcpFailure,
    pub stderr_tail: String,
}

fn stderr_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its stderr ends: {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_command_failure_and_stderr() {
        let e = AcpError {
            command: "vibe-acp --x".into(),
            failure: AcpFailure::Exited {
                how: "exited with status 2".into(),
                during: "initialize".into(),
            },
            stderr_tail: "no config".into(),
        };
        assert_eq!(
            e.to_string(),
            "ACP agent `vibe-acp --x` exited with status 2 during initialize; its stderr ends: no config"
        );
        let quiet = AcpError {
            stderr_tail: String::new(),
            ..e
        };
        assert!(quiet.to_string().ends_with("during initialize"));
    }
}
