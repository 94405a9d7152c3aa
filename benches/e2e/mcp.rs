//! `mcp`: `openclaw mcp` from process start to the answered `initialize`, and a `tools/call`
//! of `sessions_spawn` through it against the daemon's own `sessions.spawn` on a socket.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{Daemon, RawConn};
use super::{Opts, Row, Table, env_count, lat, ms, ratio_lat, stats, time_cmd, verdict};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;

struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Mcp {
    fn start(d: &Daemon) -> Mcp {
        let mut child = d
            .cli()
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start openclaw mcp");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Mcp {
            child,
            stdin,
            stdout,
        }
    }

    fn request(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write");
        stdin.flush().expect("flush");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
    }

    fn initialized(&mut self) {
        let r = self.request(INITIALIZE);
        assert!(r["result"]["serverInfo"].is_object(), "{r}");
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
            .expect("write");
    }

    fn close(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for openclaw mcp");
        assert!(status.success(), "openclaw mcp exited with {status:?}");
    }
}

pub fn section(o: &Opts, t: &mut Table) {
    t.section("mcp: openclaw mcp");
    let starts = env_count("OPENCLAW_BENCH_MCP_START_N", if o.quick { 10 } else { 50 });
    let calls = env_count(
        "OPENCLAW_BENCH_MCP_CALL_N",
        if o.quick { 100 } else { 1_000 },
    );
    let d = Daemon::start();

    // The same binary started and ended without the handshake or the socket: what the
    // handshake itself costs is the difference.
    eprintln!("openclaw --version x{starts} ...");
    let version: Vec<Duration> = (0..starts)
        .map(|_| time_cmd(d.cli().arg("--version"), "openclaw --version").0)
        .collect();
    let version = stats(&version);

    eprintln!("openclaw mcp start to initialized x{starts} ...");
    let samples: Vec<Duration> = (0..starts)
        .map(|_| {
            let t0 = Instant::now();
            let mut mcp = Mcp::start(&d);
            mcp.initialized();
            let took = t0.elapsed();
            mcp.close();
            took
        })
        .collect();
    let start = stats(&samples);
    t.push(Row {
        metric: "`openclaw mcp`: process start → `initialize` answered".into(),
        value: lat(&start),
        baseline: format!("`openclaw --version` {}", ms(version.median)),
        ratio: ratio_lat(start.median, version.median),
        target: verdict("< 20 ms", start.median < Duration::from_millis(20)),
    });

    eprintln!("sessions.spawn on the socket x{calls} ...");
    let mut conn = RawConn::connect(&d.socket());
    let direct: Vec<Duration> = (0..calls)
        .map(|i| {
            let t0 = Instant::now();
            let r = conn.call(
                i as i64,
                "sessions.spawn",
                json!({"task": format!("direct {i}")}),
            );
            let took = t0.elapsed();
            assert_eq!(r["result"]["status"], "accepted", "{r}");
            took
        })
        .collect();
    let direct = stats(&direct);

    eprintln!("tools/call sessions_spawn through openclaw mcp x{calls} ...");
    let mut mcp = Mcp::start(&d);
    mcp.initialized();
    let through: Vec<Duration> = (0..calls)
        .map(|i| {
            let call = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                "params": {"name": "sessions_spawn", "arguments": {"task": format!("mcp {i}")}}});
            let t0 = Instant::now();
            let r = mcp.request(&call.to_string());
            let took = t0.elapsed();
            assert_eq!(
                r["result"]["structuredContent"]["status"], "accepted",
                "{r}"
            );
            took
        })
        .collect();
    mcp.close();
    let through = stats(&through);
    let over = through.median.saturating_sub(direct.median);
    t.push(Row {
        metric: "`tools/call sessions_spawn` through `openclaw mcp` (echo agent)".into(),
        value: lat(&through),
        baseline: format!("`sessions.spawn` on the socket {}", ms(direct.median)),
        ratio: ratio_lat(through.median, direct.median),
        target: verdict(
            &format!(
                "< 2 ms median over the daemon's own spawn (is +{})",
                ms(over)
            ),
            over < Duration::from_millis(2),
        ),
    });
    t.note(
        "mcp: each tools/call opens its own connection to the daemon (so a session token acts as the session's run active at that moment) and asks tools.list for the caller's scope before the call itself",
    );
}
