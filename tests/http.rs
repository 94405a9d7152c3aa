//! The HTTP surface (issue 13) through real HTTP: every route's answers and errors on a
//! loopback TCP port (bearer token) and on the daemon's Unix socket (peer credentials, the
//! way `curl --unix-socket` talks to it), a spawn answered before its blocking run ends, the
//! auth cases, the Host/Origin checks, and HTTP sharing the socket with JSON-RPC.

mod common;
mod http_client;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{BlockingAgent, Daemon, RawConn, connect_as_nobody, nobody_unavailable};
use http_client::{Conn, Target, daemon_with_http, token};
use serde_json::{Value, json};

/// Both ways in: TCP with the token, and the socket with none.
fn both(d: &Daemon, addr: std::net::SocketAddr) -> Vec<(&'static str, Conn)> {
    let tok = token(d);
    vec![
        (
            "tcp",
            Conn::connect(&Target::Tcp(addr)).with_token(Some(&tok)),
        ),
        ("unix", Conn::connect(&Target::Unix(d.socket()))),
    ]
}

fn enc(key: &str) -> String {
    key.replace(':', "%3A")
}

#[test]
fn every_route_answers_over_tcp_and_over_the_socket() {
    let (d, addr) = daemon_with_http("", "", &[]);
    for (via, mut c) in both(&d, addr) {
        let r = c.get("/healthz");
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"status": "ok"})),
            "{via}"
        );

        let r = c.post(
            "/api/sessions/spawn",
            r#"{"task":"hello there","label":"h1"}"#,
        );
        assert_eq!(r.status, 202, "{via} spawn: {}", r.text());
        let spawned = r.json();
        assert_eq!(spawned["status"], "accepted", "{via}");
        let key = spawned["sessionKey"]
            .as_str()
            .expect("sessionKey")
            .to_string();
        let run = spawned["runId"].as_str().expect("runId").to_string();
        assert!(spawned["sessionId"].is_string(), "{via}: {spawned}");

        let r = c.get(&format!("/api/runs/{run}?wait=20"));
        assert_eq!(r.status, 200, "{via} run: {}", r.text());
        assert_eq!(
            (r.json()["status"].clone(), r.json()["reply"].clone()),
            (json!("ok"), json!("hello there")),
            "{via}"
        );

        let r = c.get(&format!("/api/sessions/{}", enc(&key)));
        assert_eq!(r.status, 200, "{via} get: {}", r.text());
        assert_eq!(r.json()["session"]["key"], key.as_str(), "{via}");
        assert_eq!(r.json()["session"]["label"], "h1", "{via}");

        let r = c.get("/api/sessions?limit=50&includeArchived=1");
        assert_eq!(r.status, 200, "{via} list: {}", r.text());
        let keys: Vec<String> = r.json()["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .map(|s| s["key"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(keys.contains(&key), "{via}: {keys:?}");
        let kind = r.json()["sessions"][0]["kind"]
            .as_str()
            .unwrap()
            .to_string();
        let r = c.get(&format!("/api/sessions?kinds={kind}"));
        assert_eq!(r.status, 200, "{via}");
        let r = c.get("/api/sessions?kinds=bogus");
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (400, json!("invalid")),
            "{via}"
        );

        for path in [
            format!("/api/sessions/{}/history?limit=20", enc(&key)),
            format!("/sessions/{}/history?limit=20", enc(&key)),
        ] {
            let r = c.get(&path);
            assert_eq!(r.status, 200, "{via} {path}: {}", r.text());
            let h = r.json();
            let texts: Vec<&str> = h["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["content"].as_str().unwrap_or_default())
                .collect();
            assert_eq!(texts, ["hello there", "hello there"], "{via} {path}");
            assert_eq!(
                (h["sessionKey"].as_str(), h["hasMore"].as_bool()),
                (Some(key.as_str()), Some(false))
            );
        }

        let r = c.post(
            &format!("/api/sessions/{}/send", enc(&key)),
            r#"{"message":"later"}"#,
        );
        assert_eq!(r.status, 202, "{via} send: {}", r.text());
        assert_eq!(r.json()["status"], "accepted", "{via}");
        let later = r.json()["runId"].as_str().unwrap().to_string();
        let r = c.post(
            &format!("/api/sessions/{}/send", enc(&key)),
            r#"{"message":"now","timeoutSeconds":20}"#,
        );
        assert_eq!(r.status, 200, "{via} send and wait: {}", r.text());
        assert_eq!(
            (r.json()["status"].clone(), r.json()["reply"].clone()),
            (json!("ok"), json!("now"))
        );
        let r = c.get(&format!("/api/runs/{later}"));
        assert_eq!(
            r.json()["status"],
            "ok",
            "{via}: the earlier send ran first: {}",
            r.text()
        );

        let r = c.post(&format!("/api/sessions/{}/kill", enc(&key)), "");
        assert_eq!(r.status, 200, "{via} kill: {}", r.text());
        assert!(
            r.json()["abortedRunId"].is_null(),
            "{via}: nothing was running"
        );

        let r = c.request("DELETE", &format!("/api/sessions/{}", enc(&key)), None);
        assert_eq!(r.status, 200, "{via} delete: {}", r.text());
        assert_eq!(r.json()["deleted"], true, "{via}");
        for path in [
            format!("/api/sessions/{}", enc(&key)),
            format!("/api/sessions/{}/history", enc(&key)),
        ] {
            let r = c.get(&path);
            assert_eq!(r.status, 404, "{via} {path} after delete");
            assert_eq!(r.error()["type"], "not_found", "{via}");
        }
        let r = c.post(
            &format!("/api/sessions/{}/send", enc(&key)),
            r#"{"message":"x"}"#,
        );
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (404, json!("not_found")),
            "{via}"
        );
        let r = c.post(&format!("/api/sessions/{}/kill", enc(&key)), "{}");
        assert_eq!(r.status, 404, "{via}");
        let r = c.request("DELETE", &format!("/api/sessions/{}", enc(&key)), None);
        assert_eq!(r.status, 404, "{via}");
        let r = c.get("/api/runs/no-such-run");
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (404, json!("not_found")),
            "{via}"
        );
    }
}

#[test]
fn errors_are_json_with_a_type_and_a_sentence() {
    let (d, addr) = daemon_with_http("[limits]\nmax_frame_bytes = 4096\n", "", &[]);
    for (via, mut c) in both(&d, addr) {
        let r = c.post("/api/sessions/spawn", "{\"task\":\n  oops}");
        assert_eq!(r.status, 400, "{via}");
        let e = r.error();
        assert_eq!(e["type"], "invalid");
        assert!(
            e["message"].as_str().unwrap().contains("line 2 column 3"),
            "{via}: {e}"
        );

        let r = c.post("/api/sessions/spawn", r#"{"task":"t","tiemout":3}"#);
        assert!(
            r.status == 400 && r.error()["message"].as_str().unwrap().contains("tiemout"),
            "{via}: {}",
            r.text()
        );
        let r = c.post("/api/sessions/spawn", r#"{"task":"t","label":7}"#);
        assert!(
            r.status == 400 && r.error()["message"].as_str().unwrap().contains("label"),
            "{via}: {}",
            r.text()
        );
        let r = c.post("/api/sessions/spawn", "");
        assert!(
            r.status == 400 && r.error()["message"].as_str().unwrap().contains("task"),
            "{via}: {}",
            r.text()
        );
        let r = c.post("/api/sessions/spawn", r#"{"task":"  "}"#);
        assert_eq!(
            r.status, 400,
            "{via}: an empty task is the service's refusal"
        );

        // ACP-only fields on another runtime are dropped and reported, as on the socket.
        let r = c.post(
            "/api/sessions/spawn",
            r#"{"task":"t","streamTo":"parent","resumeSessionId":"x"}"#,
        );
        assert_eq!(r.status, 202, "{via}: {}", r.text());
        assert_eq!(
            r.json()["ignoredFields"],
            json!(["streamTo", "resumeSessionId"]),
            "{via}"
        );
        let key = r.json()["sessionKey"].as_str().unwrap().to_string();

        let r = c.post(
            &format!("/api/sessions/{}/send", enc(&key)),
            r#"{"message":"m","streamProgress":true}"#,
        );
        assert!(
            r.status == 400
                && r.error()["message"]
                    .as_str()
                    .unwrap()
                    .contains("streamProgress"),
            "{via}: {}",
            r.text()
        );
        let r = c.get("/api/sessions?limt=3");
        assert!(
            r.status == 400 && r.error()["message"].as_str().unwrap().contains("limt"),
            "{via}: {}",
            r.text()
        );
        let r = c.get("/api/sessions?limit=many");
        assert_eq!(r.status, 400, "{via}");
        let r = c.get("/api/runs/x?wait=-1");
        assert_eq!(r.status, 400, "{via}: a negative wait: {}", r.text());
        let r = c.get("/api/sessions/nope-nope-nope");
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (404, json!("not_found")),
            "{via}"
        );
        let r = c.get("/api/nothing-here");
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (404, json!("not_found")),
            "{via}"
        );
        let r = c.get("/api/sessions/spawn");
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (405, json!("method_not_allowed")),
            "{via}"
        );

        // Over the frame limit: refused by its Content-Length, before a byte of the body.
        let head = c.head("POST", "/api/sessions/spawn", &[], 10_000);
        c.write_raw(head.as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 413, "{via}");
        assert_eq!(r.error()["type"], "too_large", "{via}");
        // A chunked body is cut off once it passes the limit.
        let mut c = match via {
            "tcp" => Conn::connect(&Target::Tcp(addr)).with_token(Some(&token(&d))),
            _ => Conn::connect(&Target::Unix(d.socket())),
        };
        let head = c
            .head(
                "POST",
                "/api/sessions/spawn",
                &[("Transfer-Encoding", "chunked")],
                0,
            )
            .replace("Content-Length: 0\r\n", "");
        let chunk = format!("{:x}\r\n{}\r\n", 3000, "x".repeat(3000));
        // One write: the daemon may answer and close before it has read it all.
        c.write_raw(format!("{head}{chunk}{chunk}0\r\n\r\n").as_bytes());
        let r = c.read_response();
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (413, json!("too_large")),
            "{via} chunked"
        );
    }
}

#[test]
fn spawn_answers_202_before_a_blocking_run_ends_and_the_key_works_at_once() {
    let agent = BlockingAgent::new();
    let config = format!(
        "{}[limits]\nmax_queued_per_session = 1\n",
        agent.config("worker")
    );
    let (d, addr) = daemon_with_http(&config, "", &[]);
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&token(&d)));

    let r = c.post(
        "/api/sessions/spawn",
        r#"{"task":"block until released","agentId":"worker"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let key = r.json()["sessionKey"].as_str().unwrap().to_string();
    let run = r.json()["runId"].as_str().unwrap().to_string();
    agent.wait_started();
    // The run is blocked in the agent: the answer did not wait for it, and the key reads now.
    let h = c
        .get(&format!("/api/sessions/{}/history", enc(&key)))
        .json();
    assert_eq!(h["messages"][0]["content"], "block until released", "{h}");
    assert_eq!(h["messages"].as_array().unwrap().len(), 1, "{h}");
    let r = c.get(&format!("/api/runs/{run}?wait=0.2"));
    assert_eq!(
        (r.json()["status"].clone(), r.json()["runStatus"].clone()),
        (json!("timeout"), json!("running")),
        "{}",
        r.text()
    );
    let row = c.get(&format!("/api/sessions/{}", enc(&key))).json();
    assert_eq!(row["session"]["activeRunId"], run.as_str(), "{row}");

    // A wait that ends first is 200 "timeout"; the run stays queued and goes on later.
    let r = c.post(
        &format!("/api/sessions/{}/send", enc(&key)),
        r#"{"message":"queued","timeoutSeconds":0.3}"#,
    );
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("timeout")),
        "{}",
        r.text()
    );
    let queued = r.json()["runId"].as_str().unwrap().to_string();
    // The session's queue is full: 429 with Retry-After.
    let r = c.post(
        &format!("/api/sessions/{}/send", enc(&key)),
        r#"{"message":"one too many"}"#,
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error()["type"], "busy");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1, "{retry}");

    agent.release();
    let r = c.get(&format!("/api/runs/{run}?wait=20"));
    assert_eq!(
        r.json()["reply"],
        "reply:block until released",
        "{}",
        r.text()
    );
    let r = c.get(&format!("/api/runs/{queued}?wait=20"));
    assert_eq!(
        r.json()["reply"],
        "reply:queued",
        "the queued run went on: {}",
        r.text()
    );

    // While the daemon drains, new work is 503 and /healthz says it is stopping.
    let r = c.post(
        &format!("/api/sessions/{}/send", enc(&key)),
        r#"{"message":"block again"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    agent.wait_started();
    let mut rpc = RawConn::connect(&d.socket());
    rpc.call_ok("daemon.shutdown", json!({"drain": true}));
    let r = c.post("/api/sessions/spawn", r#"{"task":"too late"}"#);
    assert_eq!(
        (r.status, r.error()["type"].clone()),
        (503, json!("shutting_down")),
        "{}",
        r.text()
    );
    assert_eq!(c.get("/healthz").status, 503);
    agent.release();
}

#[test]
fn kill_stops_the_active_run() {
    let agent = BlockingAgent::new();
    let (d, _) = daemon_with_http(&agent.config("worker"), "", &[]);
    let mut c = Conn::connect(&Target::Unix(d.socket()));
    let r = c.post(
        "/api/sessions/spawn",
        r#"{"task":"block forever","agentId":"worker"}"#,
    );
    let key = r.json()["sessionKey"].as_str().unwrap().to_string();
    let run = r.json()["runId"].as_str().unwrap().to_string();
    agent.wait_started();
    let r = c.post(
        &format!("/api/sessions/{}/kill", enc(&key)),
        r#"{"clearQueued":true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["abortedRunId"], run.as_str(), "{}", r.text());
    let r = c.get(&format!("/api/runs/{run}?wait=20"));
    assert_eq!(r.json()["runStatus"], "aborted", "{}", r.text());
}

#[test]
fn tcp_needs_the_token_in_constant_form() {
    let (d, addr) = daemon_with_http("", "", &[]);
    let tok = token(&d);
    let mut c = Conn::connect(&Target::Tcp(addr));

    // No auth and no data: the health check and the page.
    assert_eq!(c.get("/healthz").status, 200);
    let page = c.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.text().contains("<title>openclaw</title>"));

    let mut wrong_same_length: Vec<u8> = tok.bytes().collect();
    wrong_same_length[10] = if wrong_same_length[10] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let wrong_same_length = String::from_utf8(wrong_same_length).unwrap();
    assert_eq!(wrong_same_length.len(), tok.len());
    for (case, header) in [
        ("no token", None),
        ("a wrong token", Some("Bearer nope".to_string())),
        (
            "the right length, wrong",
            Some(format!("Bearer {wrong_same_length}")),
        ),
        ("another scheme", Some(format!("Basic {tok}"))),
        ("the token with a suffix", Some(format!("Bearer {tok}x"))),
    ] {
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("Authorization", h.as_str()))
            .collect();
        for (method, path, body) in [
            ("GET", "/api/sessions", None),
            ("POST", "/api/sessions/spawn", Some(r#"{"task":"x"}"#)),
            ("GET", "/api/events", None),
        ] {
            let r = c.request_with(method, path, &headers, body);
            assert_eq!(r.status, 401, "{case}: {method} {path}: {}", r.text());
            assert_eq!(r.error()["type"], "unauthorized");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{case}: {:?}",
                r.headers
            );
        }
    }
    let before = RawConn::connect(&d.socket()).call_ok("sessions.list", json!({}));
    assert_eq!(
        before["sessions"],
        json!([]),
        "nothing was spawned by the refused requests"
    );

    let auth = format!("Bearer {tok}");
    let r = c.request_with("GET", "/api/sessions", &[("Authorization", &auth)], None);
    assert_eq!(r.status, 200, "{}", r.text());
    // The query token is for the two SSE routes only.
    let r = c.get(&format!("/api/sessions?access_token={tok}"));
    assert_eq!(r.status, 401, "{}", r.text());
    let sse =
        Conn::connect(&Target::Tcp(addr)).sse(&format!("/api/events?access_token={tok}"), &[]);
    drop(sse);

    // The token file: 0600 in the data dir; `http.token` returns it, `rotate` replaces it and
    // the old one stops working at once.
    let mut rpc = RawConn::connect(&d.socket());
    let info = rpc.call_ok("http.token", json!({}));
    let path = std::path::PathBuf::from(info["path"].as_str().unwrap());
    assert_eq!(path, d.home_path().join("data").join("http.token"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), tok);
    assert_eq!(
        info["listen"],
        format!("127.0.0.1:{}", addr.port()).as_str()
    );
    assert_eq!(tok.len(), 64);
    let rotated = rpc.call_ok("http.token", json!({"rotate": true}))["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rotated, tok);
    let r = c.request_with("GET", "/api/sessions", &[("Authorization", &auth)], None);
    assert_eq!(
        r.status,
        401,
        "the old token after a rotation: {}",
        r.text()
    );
    let r = c.request_with(
        "GET",
        "/api/sessions",
        &[("Authorization", &format!("Bearer {rotated}"))],
        None,
    );
    assert_eq!(r.status, 200, "the new token: {}", r.text());
    let r = rpc.call(2, "http.token", json!({"rotat": true}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[test]
fn the_cli_prints_the_token_curl_needs_and_rotates_it() {
    let (d, addr) = daemon_with_http("", "", &[]);
    let printed = d.ok(&["http", "token"]);
    let tok = printed.trim_end_matches('\n');
    assert_eq!(
        (tok.len(), printed.lines().count()),
        (64, 1),
        "one line, the token: {printed:?}"
    );
    assert_eq!(tok, token(&d), "the CLI prints the daemon's token");
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(tok));
    assert_eq!(c.get("/api/sessions").status, 200);

    let json = d.json(&["http", "token"]);
    assert_eq!(json["token"], tok);
    assert_eq!(
        json["listen"],
        format!("127.0.0.1:{}", addr.port()).as_str()
    );

    let out = d.run(&["http", "token", "--rotate"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let rotated = common::stdout(&out).trim().to_string();
    assert_eq!(rotated.len(), 64);
    assert_ne!(rotated, tok);
    assert!(
        common::stderr(&out).contains("http.token"),
        "the rotation names the file: {}",
        common::stderr(&out)
    );
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(tok));
    assert_eq!(c.get("/api/sessions").status, 401, "the old token");
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&rotated));
    assert_eq!(c.get("/api/sessions").status, 200, "the new token");
    assert_eq!(d.ok(&["http", "token"]).trim(), rotated);
}

#[test]
fn another_uid_on_the_socket_is_told_to_pair_with_the_cli() {
    if let Some(why) = nobody_unavailable() {
        eprintln!("SKIP another uid over HTTP: {why}");
        return;
    }
    let (d, _) = daemon_with_http("[socket]\nmode = \"0666\"\n", "", &[]);
    common::open_home_to_others(&d);
    let tok = token(&d);
    let stream = connect_as_nobody(&d.socket()).expect("connect as nobody");
    let mut c = Conn::over_unix(stream);
    let r = c.get("/healthz");
    assert_eq!(r.status, 200, "the health check is for everyone");
    // The bearer token means nothing on the socket: the kernel says who this is.
    let auth = format!("Bearer {tok}");
    for (method, path, body) in [
        ("GET", "/api/sessions", None),
        (
            "POST",
            "/api/sessions/spawn",
            Some(r#"{"task":"as nobody"}"#),
        ),
        ("GET", "/api/events", None),
    ] {
        let r = c.request_with(method, path, &[("Authorization", &auth)], body);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        let e = r.error();
        assert_eq!(e["type"], "pairing_required", "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("uid 65534") && m.contains("openclaw CLI"), "{m}");
    }
    let list = RawConn::connect(&d.socket()).call_ok("sessions.list", json!({}));
    assert_eq!(list["sessions"], json!([]), "nobody spawned nothing");
    // JSON-RPC from that uid is refused as before.
    let mut rpc = RawConn::from_stream(connect_as_nobody(&d.socket()).expect("connect as nobody"));
    let r = rpc.call(1, "sessions.list", json!({}));
    assert_eq!(r["error"]["data"]["kind"], "pairing_required", "{r}");
}

#[test]
fn a_remote_listen_needs_allow_remote() {
    let home = tempfile::tempdir().unwrap();
    let port = http_client::free_port();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[http]\nlisten = \"0.0.0.0:{port}\"\n"),
    )
    .unwrap();
    let mut d = Daemon {
        home,
        child: None,
        env: Vec::new(),
    };
    let err = d
        .spawn_daemon()
        .expect_err("a non-loopback listen without allow_remote must not start");
    assert!(
        err.contains("http.listen") && err.contains("allow_remote = true"),
        "{err}"
    );

    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[http]\nlisten = \"0.0.0.0:{port}\"\nallow_remote = true\n"),
    )
    .unwrap();
    let mut d = Daemon {
        home,
        child: None,
        env: Vec::new(),
    };
    d.spawn_daemon()
        .expect("with allow_remote the daemon listens on all addresses");
    let mut c = Conn::connect(&Target::Tcp(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        port,
    ))));
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn host_and_origin_are_checked_and_cors_is_off_unless_listed() {
    let (d, addr) = daemon_with_http("", "allow_origins = [\"https://dash.example.com\"]", &[]);
    let tok = token(&d);
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&tok));
    let port = addr.port();

    let evil_host = format!("evil.example:{port}");
    for path in ["/api/sessions", "/", "/healthz"] {
        let r = c.request_with("GET", path, &[("Host", &evil_host)], None);
        assert_eq!(r.status, 403, "a foreign Host on {path}: {}", r.text());
        assert!(
            r.error()["message"]
                .as_str()
                .unwrap()
                .contains("evil.example")
        );
    }
    let other_port = format!("127.0.0.1:{}", port.wrapping_add(1));
    assert_eq!(
        c.request_with("GET", "/healthz", &[("Host", &other_port)], None)
            .status,
        403
    );
    let localhost = format!("localhost:{port}");
    assert_eq!(
        c.request_with("GET", "/api/sessions", &[("Host", &localhost)], None)
            .status,
        200
    );

    let same = format!("http://127.0.0.1:{port}");
    let r = c.request_with(
        "POST",
        "/api/sessions/spawn",
        &[("Origin", &same)],
        Some(r#"{"task":"from the page"}"#),
    );
    assert_eq!(r.status, 202, "the daemon's own page: {}", r.text());
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "no CORS for same-origin"
    );

    let r = c.request_with(
        "POST",
        "/api/sessions/spawn",
        &[("Origin", "http://evil.example")],
        Some(r#"{"task":"x"}"#),
    );
    assert_eq!(
        (r.status, r.error()["type"].clone()),
        (403, json!("forbidden")),
        "{}",
        r.text()
    );
    assert!(r.header("access-control-allow-origin").is_none());
    let r = c.request_with(
        "OPTIONS",
        "/api/sessions/spawn",
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(r.status, 403, "a preflight from an unlisted origin");

    let listed = "https://dash.example.com";
    let r = c.request_with(
        "OPTIONS",
        "/api/sessions/spawn",
        &[
            ("Origin", listed),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(listed));
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    let r = c.request_with("GET", "/api/sessions", &[("Origin", listed)], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(listed));
    // Listed origins still need the token.
    let mut bare = Conn::connect(&Target::Tcp(addr));
    assert_eq!(
        bare.request_with("GET", "/api/sessions", &[("Origin", listed)], None)
            .status,
        401
    );

    // The socket is not reachable from a browser: no Host or Origin rules there.
    let mut u = Conn::connect(&Target::Unix(d.socket()));
    assert_eq!(
        u.request_with("GET", "/api/sessions", &[("Host", "anything")], None)
            .status,
        200
    );
}

#[test]
fn http_and_json_rpc_share_the_socket() {
    let d = Daemon::start();
    let mut rpc = RawConn::connect(&d.socket());
    assert!(rpc.call_ok("hello", json!({}))["daemonVersion"].is_string());

    // A request line that arrives a byte at a time is still HTTP.
    let mut c = Conn::connect(&Target::Unix(d.socket()));
    let head = c.head("GET", "/healthz", &[], 0);
    for b in head.as_bytes().chunks(1).take(3) {
        c.write_raw(b);
        // Not a wait for anything: it keeps the first bytes in packets of their own.
        std::thread::sleep(Duration::from_millis(20));
    }
    c.write_raw(&head.as_bytes()[3..]);
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.text());
    // Keep-alive: more requests on the same connection.
    let spawned = c
        .post("/api/sessions/spawn", r#"{"task":"over http"}"#)
        .json();
    let key = spawned["sessionKey"].as_str().unwrap();
    // The session is the same one JSON-RPC sees.
    let h = rpc.call_ok("sessions.history", json!({"sessionKey": key}));
    assert_eq!(h["messages"][0]["content"], "over http");

    // What is neither stays JSON-RPC, with its parse error, as before.
    let mut junk = RawConn::connect(&d.socket());
    junk.send_raw(b"HELLO there\n");
    let r = junk.read_json();
    assert_eq!(r["error"]["code"], -32700, "{r}");
    let mut lower = RawConn::connect(&d.socket());
    lower.send_raw(b"get / HTTP/1.1\n");
    assert_eq!(lower.read_json()["error"]["code"], -32700);
    // A prefix of a method, then the end: an unfinished JSON-RPC frame, closed like one.
    for unfinished in [&b"GE"[..], &b"{\"jsonrpc\""[..]] {
        let mut half = RawConn::connect(&d.socket());
        half.send_raw(unfinished);
        half.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(
            half.read_line(),
            None,
            "{:?}",
            String::from_utf8_lossy(unfinished)
        );
    }

    // No [http] listen: the socket still answers HTTP; the token is made when first asked for.
    let token_file = d.home_path().join("data").join("http.token");
    assert!(!token_file.exists(), "no token before it is needed");
    let made = rpc.call_ok("http.token", json!({}));
    assert_eq!(made["token"].as_str().map(str::len), Some(64), "{made}");
    assert!(token_file.is_file());
    let status = rpc.call_ok("daemon.status", json!({}));
    assert!(status["connections"].as_u64().unwrap() >= 2, "{status}");
    let _: Value = status;
}
