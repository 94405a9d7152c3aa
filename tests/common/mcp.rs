//! `openclaw mcp` on raw pipes, one JSON-RPC line at a time: for tests of what a client
//! sees on the wire (the SDK client of tests/mcp covers the protocol as a whole).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

pub struct RawMcp {
    pub child: std::process::Child,
    /// `None` once the test closed it (`take()` it to end the session).
    pub stdin: Option<std::process::ChildStdin>,
    lines: Receiver<String>,
}

/// How long one answer may take.
const ANSWER_SECS: u64 = 20;

impl RawMcp {
    /// Starts `cmd` (an `openclaw mcp` command line) with piped stdin and stdout.
    pub fn spawn(cmd: &mut Command) -> RawMcp {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start openclaw mcp");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        RawMcp {
            child,
            stdin,
            lines,
        }
    }

    pub fn send(&mut self, line: &str) {
        self.stdin
            .as_mut()
            .expect("stdin open")
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to openclaw mcp");
    }

    /// Sends `line` and returns the next line that comes back, as JSON.
    pub fn answer(&mut self, line: &str) -> Value {
        self.send(line);
        self.next_line(line)
    }

    /// Sends `line` and returns the answer with `id`, skipping notifications (progress).
    pub fn answer_to(&mut self, line: &str, id: u64) -> Value {
        self.send(line);
        loop {
            let v = self.next_line(line);
            if v["id"] == id {
                return v;
            }
        }
    }

    /// `initialize`, then `notifications/initialized`; the server's answer.
    pub fn initialize(&mut self) -> Value {
        let init = self.answer_to(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#,
            1,
        );
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        init
    }

    /// `tools/call` of `name` with `arguments`, as request `id`; the call's result object.
    pub fn call_tool(&mut self, id: u64, name: &str, arguments: Value) -> Value {
        let line = serde_json::json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        });
        let answer = self.answer_to(&line.to_string(), id);
        assert!(answer["result"].is_object(), "tools/call {name}: {answer}");
        answer["result"].clone()
    }

    fn next_line(&mut self, after: &str) -> Value {
        let got = self
            .lines
            .recv_timeout(Duration::from_secs(ANSWER_SECS))
            .unwrap_or_else(|e| panic!("no answer to {after}: {e}"));
        serde_json::from_str(&got).unwrap_or_else(|e| panic!("{e}: {got}"))
    }
}

impl Drop for RawMcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
