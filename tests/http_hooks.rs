//! Webhooks (issue 13, part 4) through real HTTP: a delivery signed the way GitHub signs it
//! (HMAC-SHA256 of the body, computed here) spawns one `hook:` session whose task is the hook's
//! template filled from the delivery; a redelivery (same `X-GitHub-Delivery`) spawns nothing
//! new; a bad, missing or malformed signature is 401 and stores nothing; a hook without a
//! secret takes the bearer token (or the socket's owner); bodies over the frame limit are 413.

mod common;
mod http_client;

use std::net::SocketAddr;

use common::Daemon;
use http_client::{Conn, Response, Target, daemon_with_http, token};
use ring::hmac;
use serde_json::{Value, json};

const SECRET: &str = "It's a Secret to Everybody";

const CONFIG: &str = r#"
[limits]
max_frame_bytes = 4096

[hooks.github]
secret_env = "OPENCLAW_TEST_GH_SECRET"
task = "Triage this GitHub {{header.X-GitHub-Event}} event on {{query.repo}}:\n{{body}}"

[hooks.plain]
task = "plain: {{body}}"
"#;

fn start() -> (Daemon, SocketAddr) {
    daemon_with_http(CONFIG, "", &[("OPENCLAW_TEST_GH_SECRET", SECRET)])
}

/// `sha256=` and the HMAC-SHA256 of `body` in lower-case hex, as GitHub sends it.
fn github_signature(secret: &str, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A GitHub-style delivery over TCP with no bearer token (GitHub sends none).
fn deliver(addr: SocketAddr, delivery: &str, signature: Option<&str>, body: &str) -> Response {
    let mut c = Conn::connect(&Target::Tcp(addr));
    let mut headers = vec![
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", delivery),
        ("Content-Type", "application/json"),
    ];
    if let Some(s) = signature {
        headers.push(("X-Hub-Signature-256", s));
    }
    c.request_with(
        "POST",
        "/hooks/github?repo=acme%2Fwidgets",
        &headers,
        Some(body),
    )
}

/// Every session's key, read with the token.
fn session_keys(addr: SocketAddr, tok: &str) -> Vec<String> {
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(tok));
    let r = c.get("/api/sessions?limit=200&includeArchived=1");
    assert_eq!(r.status, 200, "list: {}", r.text());
    r.json()["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["key"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn history(addr: SocketAddr, tok: &str, key: &str) -> Value {
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(tok));
    let r = c.get(&format!(
        "/api/sessions/{}/history?limit=50",
        key.replace(':', "%3A")
    ));
    assert_eq!(r.status, 200, "history of {key}: {}", r.text());
    r.json()
}

fn wait_run(addr: SocketAddr, tok: &str, run: &str) -> Value {
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(tok));
    let r = c.get(&format!("/api/runs/{run}?wait=20"));
    assert_eq!(r.status, 200, "run {run}: {}", r.text());
    r.json()
}

#[test]
fn a_delivery_signed_like_github_spawns_one_hook_session_and_a_redelivery_spawns_nothing() {
    let (d, addr) = start();
    let tok = token(&d);
    let body = r#"{"ref":"refs/heads/main","commits":[{"id":"abc","message":"fix {{body}}"}]}"#;
    let signature = github_signature(SECRET, body);

    let r = deliver(
        addr,
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        Some(&signature),
        body,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let first = r.json();
    let key = first["sessionKey"]
        .as_str()
        .expect("sessionKey")
        .to_string();
    let run = first["runId"].as_str().expect("runId").to_string();
    let uuid = key.strip_prefix("hook:").expect("a hook: session key");
    assert_eq!(uuid.len(), 36, "hook:<uuid>, got {key}");

    // The task is the template filled from the delivery: header, query and the body verbatim
    // (a placeholder inside the body stays text).
    let task = format!("Triage this GitHub push event on acme/widgets:\n{body}");
    let h = history(addr, &tok, &key);
    assert_eq!(h["messages"][0]["role"], "user", "{h}");
    assert_eq!(h["messages"][0]["content"], task.as_str(), "{h}");
    let done = wait_run(addr, &tok, &run);
    assert_eq!(
        (done["status"].clone(), done["reply"].clone()),
        (json!("ok"), json!(task)),
        "the echo agent ran the hook's task"
    );

    // GitHub redelivers with the same delivery id: the same session and run, nothing new.
    let r = deliver(
        addr,
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        Some(&signature),
        body,
    );
    assert_eq!(r.status, 202, "redelivery: {}", r.text());
    assert_eq!(
        (r.json()["sessionKey"].clone(), r.json()["runId"].clone()),
        (json!(key), json!(run)),
        "a redelivery answers with the first delivery's session and run"
    );
    let hooks: Vec<String> = session_keys(addr, &tok)
        .into_iter()
        .filter(|k| k.starts_with("hook:"))
        .collect();
    assert_eq!(
        hooks,
        std::slice::from_ref(&key),
        "one session for one delivery"
    );
    let again = history(addr, &tok, &key);
    assert_eq!(
        again["messages"].as_array().map(Vec::len),
        Some(2),
        "the redelivery added no message: {again}"
    );

    // Another delivery is another session; X-Signature-256 without the prefix works too.
    let other = r#"{"ref":"refs/heads/dev"}"#;
    let bare = github_signature(SECRET, other).replace("sha256=", "");
    let mut c = Conn::connect(&Target::Tcp(addr));
    let r = c.request_with(
        "POST",
        "/hooks/github",
        &[("X-Signature-256", &bare), ("X-GitHub-Delivery", "second")],
        Some(other),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_ne!(r.json()["sessionKey"], json!(key));
    assert!(
        r.json()["sessionKey"]
            .as_str()
            .is_some_and(|k| k.starts_with("hook:"))
    );
}

#[test]
fn a_bad_missing_or_malformed_signature_is_401_and_stores_nothing() {
    let (d, addr) = start();
    let tok = token(&d);
    let body = r#"{"action":"opened","number":7}"#;
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        (
            "signed with another secret",
            Some(github_signature("not the secret", body)),
            body,
        ),
        (
            "the body changed after signing",
            Some(github_signature(SECRET, body)),
            r#"{"action":"opened","number":8}"#,
        ),
        ("no signature", None, body),
        ("not hex", Some(format!("sha256={}", "zz".repeat(32))), body),
        (
            "too short",
            Some(github_signature(SECRET, body)[..40].to_string()),
            body,
        ),
    ];
    for (what, signature, sent) in &cases {
        let r = deliver(addr, "delivery-under-attack", signature.as_deref(), sent);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.error()["type"], "unauthorized", "{what}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|c| c.contains("X-Hub-Signature-256")),
            "{what}: {:?}",
            r.headers
        );
    }
    // The daemon's bearer token is no substitute for a signature on a signed hook.
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&tok));
    let r = c.request_with("POST", "/hooks/github", &[], Some(body));
    assert_eq!(r.status, 401, "token without a signature: {}", r.text());

    assert_eq!(
        session_keys(addr, &tok),
        Vec::<String>::new(),
        "a refused delivery stored a session"
    );
    // Nothing was recorded under the delivery id either: the genuine delivery spawns.
    let r = deliver(
        addr,
        "delivery-under-attack",
        Some(&github_signature(SECRET, body)),
        body,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(session_keys(addr, &tok).len(), 1);
}

#[test]
fn a_hook_without_a_secret_takes_the_token_or_the_sockets_owner() {
    let (d, addr) = start();
    let tok = token(&d);

    let mut c = Conn::connect(&Target::Tcp(addr));
    let r = c.request_with("POST", "/hooks/plain", &[], Some("no token"));
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer"))
    );
    let wrong = "0".repeat(tok.len());
    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&wrong));
    let r = c.request_with("POST", "/hooks/plain", &[], Some("wrong token"));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(session_keys(addr, &tok), Vec::<String>::new());

    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&tok));
    let r = c.request_with("POST", "/hooks/plain", &[], Some("over tcp"));
    assert_eq!(r.status, 202, "{}", r.text());
    let key = r.json()["sessionKey"].as_str().unwrap().to_string();
    assert_eq!(
        history(addr, &tok, &key)["messages"][0]["content"],
        "plain: over tcp"
    );

    let mut c = Conn::connect(&Target::Unix(d.socket()));
    let r = c.request_with("POST", "/hooks/plain", &[], Some("over the socket"));
    assert_eq!(r.status, 202, "{}", r.text());
    let key = r.json()["sessionKey"].as_str().unwrap().to_string();
    assert!(key.starts_with("hook:"), "{key}");
    assert_eq!(
        history(addr, &tok, &key)["messages"][0]["content"],
        "plain: over the socket"
    );
}

#[test]
fn deliveries_over_the_limit_unknown_hooks_and_wrong_methods_are_refused() {
    let (d, addr) = start();
    let tok = token(&d);

    // A declared length over [limits] max_frame_bytes: 413 from the head alone, for a signed
    // hook (before the signature can be checked) and for a token hook.
    for (path, token) in [
        ("/hooks/github", None),
        ("/hooks/plain", Some(tok.as_str())),
    ] {
        let mut c = Conn::connect(&Target::Tcp(addr)).with_token(token);
        let sig = github_signature(SECRET, "whatever");
        let head = c.head("POST", path, &[("X-Hub-Signature-256", &sig)], 5000);
        c.write_raw(head.as_bytes());
        let r = c.read_response();
        assert_eq!(
            (r.status, r.error()["type"].clone()),
            (413, json!("too_large")),
            "{path}"
        );
    }
    // A chunked body that grows past the limit, correctly signed: still 413.
    let big = "x".repeat(5000);
    let mut c = Conn::connect(&Target::Tcp(addr));
    let sig = github_signature(SECRET, &big);
    let head = c
        .head(
            "POST",
            "/hooks/github",
            &[
                ("X-Hub-Signature-256", &sig),
                ("Transfer-Encoding", "chunked"),
            ],
            0,
        )
        .replace("Content-Length: 0\r\n", "");
    let chunk = format!("{:x}\r\n{}\r\n", 2500, "x".repeat(2500));
    c.write_raw(format!("{head}{chunk}{chunk}0\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(
        (r.status, r.error()["type"].clone()),
        (413, json!("too_large"))
    );
    // A token hook asked without the token is refused before its body is read: 401, not 413.
    let mut c = Conn::connect(&Target::Tcp(addr));
    let head = c.head("POST", "/hooks/plain", &[], 5000);
    c.write_raw(head.as_bytes());
    assert_eq!(c.read_response().status, 401);

    let mut c = Conn::connect(&Target::Tcp(addr)).with_token(Some(&tok));
    let r = c.request_with("POST", "/hooks/gitlab", &[], Some("{}"));
    let e = r.error();
    assert_eq!((r.status, e["type"].clone()), (404, json!("not_found")));
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("github") && m.contains("plain")),
        "the answer names the configured hooks: {e}"
    );
    let r = c.get("/hooks/github");
    assert_eq!(
        (r.status, r.error()["type"].clone()),
        (405, json!("method_not_allowed"))
    );
    // An empty delivery id header is refused rather than taken as "no id".
    let body = "{}";
    let r = c.request_with(
        "POST",
        "/hooks/github",
        &[
            ("X-GitHub-Delivery", " "),
            ("X-Hub-Signature-256", &github_signature(SECRET, body)),
        ],
        Some(body),
    );
    assert_eq!(
        (r.status, r.error()["type"].clone()),
        (400, json!("invalid"))
    );
    assert_eq!(session_keys(addr, &tok), Vec::<String>::new());
}

#[test]
fn a_signed_hook_whose_secret_is_not_in_the_daemons_environment_says_so() {
    let (_d, addr) = daemon_with_http(CONFIG, "", &[]);
    let body = "{}";
    let r = deliver(addr, "d", Some(&github_signature(SECRET, body)), body);
    let e = r.error();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("OPENCLAW_TEST_GH_SECRET")),
        "{e}"
    );
}
