//! One module per command group. Each maps its flags onto the library's params types, makes
//! the call, and renders the result (raw JSON with `--json`). Every call is blocking: a
//! command is one short conversation with the daemon, and the waits that can be long (a
//! reply, a follow) sleep in poll(2) on the socket together with Ctrl-C (see `watch`).

pub mod agents;
pub mod complete;
pub mod daemon;
pub mod http;
pub mod mcp;
pub mod pairing;
pub mod sessions;

use std::io::Read;

use openclaw::paths::Paths;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::autostart::{self, Autostart};
use crate::connection::Connection;
use crate::failure::Failure;
use crate::output::Terminal;

/// What every command needs besides its own arguments.
pub struct Context {
    /// Print the raw JSON result instead of human output.
    pub json: bool,
    pub verbose: u8,
    pub terminal: Terminal,
}

impl Context {
    /// Where the daemon lives, from the environment (resolved only by commands that need it).
    pub fn paths(&self) -> Result<Paths, Failure> {
        Paths::from_env().map_err(|e| Failure::failed(e.to_string()))
    }

    /// A connection to the daemon, starting it on demand unless OPENCLAW_NO_AUTOSTART is set.
    /// Another user's device is proven on it when the daemon asks (see `connection`).
    pub fn client(&self) -> Result<Connection, Failure> {
        self.client_with(Autostart::from_env())
    }

    pub fn client_with(&self, autostart: Autostart) -> Result<Connection, Failure> {
        autostart::connect(&self.paths()?, autostart, self.terminal.stderr_is_tty)
    }
}

/// Calls `method`, returning the raw result (so `--json` prints exactly what the daemon sent,
/// including fields this CLI does not know yet).
pub fn call_raw<P: Serialize>(
    client: &mut Connection,
    method: &str,
    params: &P,
) -> Result<Value, Failure> {
    Ok(client.call_value(method, params)?)
}

/// Reads a raw result as the library's typed result.
pub fn typed<R: DeserializeOwned>(method: &str, raw: Value) -> Result<R, Failure> {
    serde_json::from_value(raw).map_err(|e| {
        Failure::failed(format!(
            "the daemon's answer to {method} is not what this openclaw expects ({e}); are the CLI and the daemon the same version? `openclaw daemon status` shows the daemon's"
        ))
    })
}

/// An argument that may be `-`, meaning "read it from stdin" (which must then be UTF-8).
pub fn text_or_stdin(arg: &str, what: &str) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    read_text(std::io::stdin().lock(), what)
}

/// As `text_or_stdin`, refusing text that is empty or only whitespace: a message that says
/// nothing would still start a run (exit 2, nothing sent).
pub fn nonblank_text_or_stdin(arg: &str, what: &str) -> Result<String, Failure> {
    let text = text_or_stdin(arg, what)?;
    if text.trim().is_empty() {
        let from = if arg == "-" { " (read from stdin)" } else { "" };
        return Err(Failure::usage(format!(
            "the {what}{from} is empty; give the text to send, or `-` to read it from stdin"
        ))
        .with_kind("empty_text"));
    }
    Ok(text)
}

fn read_text(mut input: impl Read, what: &str) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::failed(format!("cannot read the {what} from stdin: {e}")))?;
    String::from_utf8(bytes).map_err(|_| {
        Failure::usage(format!(
            "the {what} read from stdin is not UTF-8 text; attach binary data with --attach instead"
        ))
    })
}

/// Seconds for `--timeout`-like flags: a finite, non-negative number (fractions allowed).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
        _ => Err(format!(
            "\"{text}\" is not a number of seconds (use e.g. 30 or 2.5)"
        )),
    }
}

/// Seconds for messages: `30 s`, `2.5 s`.
pub fn format_seconds(secs: f64) -> String {
    if secs.fract() == 0.0 && secs < 1e15 {
        format!("{} s", secs as u64)
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_and_format() {
        assert_eq!(parse_seconds("30"), Ok(30.0));
        assert_eq!(parse_seconds("2.5"), Ok(2.5));
        assert_eq!(parse_seconds("0"), Ok(0.0));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("5s").unwrap_err().contains("\"5s\""));
        assert_eq!(format_seconds(30.0), "30 s");
        assert_eq!(format_seconds(2.5), "2.5 s");
    }

    #[test]
    fn stdin_text_must_be_utf8() {
        assert_eq!(read_text(&b"hello\n"[..], "task").unwrap(), "hello\n");
        let err = read_text(&[0xff, 0xfe][..], "task").unwrap_err();
        assert_eq!(err.exit, crate::failure::Exit::Usage);
        assert!(err.message.unwrap().contains("task"));
    }

    #[test]
    fn literal_text_is_passed_through() {
        assert_eq!(text_or_stdin("hi", "message").unwrap(), "hi");
    }

    #[test]
    fn blank_text_is_a_usage_error() {
        for blank in ["", "   ", "\n\t "] {
            let err = nonblank_text_or_stdin(blank, "message").unwrap_err();
            assert_eq!(err.exit, crate::failure::Exit::Usage, "{blank:?}");
            assert!(err.message.unwrap().contains("message is empty"));
        }
        assert_eq!(nonblank_text_or_stdin(" x ", "message").unwrap(), " x ");
    }
}
