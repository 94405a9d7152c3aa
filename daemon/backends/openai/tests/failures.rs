//! Turns that fail or are stopped, and what the user is told.

use super::*;

#[tokio::test]
async fn kill_mid_stream_drops_the_request_and_the_server_sees_it_close() {
    let server = Arc::new(OpenAiServer::start());
    server.push(Sse::new().role().text("partial").end(End::Hang));
    let host = TestHost::plain();
    let backend = OpenAiBackend::new(settings(&server.base_url())).unwrap();
    let stop = CancellationToken::new();
    let turn = backend.run_turn(&host, ctx("write a novel", Vec::new()), &stop);
    let kill = async {
        host.first_delta.notified().await;
        stop.cancel();
    };
    let (result, ()) = tokio::time::timeout(TURN_DEADLINE, async { tokio::join!(turn, kill) })
        .await
        .expect("the turn ended");
    assert_eq!(result, Err(TurnFailure::Stopped));
    assert_eq!(host.deltas(), ["partial"]);
    assert!(
        disconnect_seen(&server).await,
        "the server saw the connection close"
    );
}

#[tokio::test]
async fn kill_during_a_tool_call_stops_the_turn() {
    let server = OpenAiServer::start();
    server.push(Reply::tool_calls(&[(
        "c1",
        "sessions_wait",
        r#"{"runId": "r"}"#,
    )]));
    let host = TestHost::new(|_| None); // never returns
    let backend = OpenAiBackend::new(settings(&server.base_url())).unwrap();
    let stop = CancellationToken::new();
    let turn = backend.run_turn(&host, ctx("wait", Vec::new()), &stop);
    let kill = async {
        host.tool_started.notified().await;
        stop.cancel();
    };
    let (result, ()) = tokio::time::timeout(TURN_DEADLINE, async { tokio::join!(turn, kill) })
        .await
        .expect("the turn ended");
    assert_eq!(result, Err(TurnFailure::Stopped));
    assert_eq!(host.calls().len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_and_reported() {
    let server = OpenAiServer::start();
    server.push(Reply::error(429, "slow down").with_header("retry-after", "1"));
    server.push(Reply::error(503, "warming up"));
    server.push(Reply::text(&["finally"]));
    let host = TestHost::plain();
    let reply = run(settings(&server.base_url()), &host, ctx("hi", Vec::new()))
        .await
        .unwrap();
    assert_eq!(reply.reply, "finally");
    assert_eq!(server.chat_requests().len(), 3);
    assert_eq!(
        host.lifecycles(),
        [
            json!({"phase": "retrying", "attempt": 2, "maxAttempts": 3, "delayMs": 1000, "httpStatus": 429, "reason": "HTTP 429: slow down"}),
            // No Retry-After: the policy's backoff (5 ms doubled once).
            json!({"phase": "retrying", "attempt": 3, "maxAttempts": 3, "delayMs": 10, "httpStatus": 503, "reason": "HTTP 503: warming up"}),
        ]
    );
}

#[tokio::test]
async fn failures_name_the_agent_the_url_and_what_to_check() {
    let server = OpenAiServer::start();
    let url = chat_url(&server);
    let base = server.base_url();

    server.push(Reply::error(
        401,
        &format!("Incorrect API key provided: {SECRET}"),
    ));
    let mut s = settings(&base);
    s.api_key = KeySource::Set {
        var: "TEST_KEY".into(),
        key: ApiKey::new(SECRET),
    };
    assert_eq!(
        failure(s).await,
        format!(
            "agent \"main\": {url} refused the request (HTTP 401): \"Incorrect API key provided: [redacted]\". Check that TEST_KEY (named by api_key_env in [agents.main]) holds a valid API key for this server."
        )
    );

    server.push(Reply::error(403, "forbidden"));
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} refused the request (HTTP 403): \"forbidden\". No API key was sent: set api_key_env in [agents.main] to the name of the variable that holds the key."
        )
    );

    server.push(Reply::error(404, "model 'test-model' not found"));
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} answered HTTP 404: \"model 'test-model' not found\". Check that model \"test-model\" exists on the server (GET {base}/models lists them) and that base_url in [agents.main] ends with the API's version path (usually /v1)."
        )
    );

    server.push(Reply::error(400, "max_tokens is too large: 999999"));
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} rejected the request (HTTP 400): \"max_tokens is too large: 999999\". Check model, max_tokens, the tool settings and extra_body in [agents.main] against what the server accepts."
        )
    );

    // The real server's 500, every attempt.
    for _ in 0..3 {
        server.push(Reply::fixture("nonstream_required_500.txt"));
    }
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} still answered HTTP 500 after 3 attempts (the server gave no message). Check the server's logs."
        )
    );

    for _ in 0..3 {
        server.push(Reply::error(429, "rate limited"));
    }
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} still answered HTTP 429 (rate limited) after 3 attempts: \"rate limited\". Check the account's rate limits, or try again later."
        )
    );

    server.push(Sse::new().role().data("this is not json").done());
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} sent a stream chunk that is not JSON: \"this is not json\". Check that base_url in [agents.main] points at an OpenAI-compatible API (usually ending in /v1)."
        )
    );

    server.push(Sse::new().role().text("half").end(End::Close));
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": the stream from {url} ended before the model finished (no finish_reason). Check the server's logs: it may have crashed or hit a limit."
        )
    );

    server.push(Sse::new().role().text("half").end(End::Cut));
    let cut = failure(settings(&base)).await;
    assert!(
        cut.starts_with(&format!("agent \"main\": the stream from {url} broke before the model finished (no finish_reason; ")),
        "{cut}"
    );
    assert!(
        cut.ends_with("Check the server's logs: it may have crashed or hit a limit."),
        "{cut}"
    );

    // The real server's answer to a streamed `tool_choice: required`: 200 and nothing.
    server.push(Reply::fixture("stream_required_empty_200.txt"));
    let empty = failure(settings(&base)).await;
    assert!(
        empty.contains("before the model finished (no finish_reason"),
        "{empty}"
    );

    server.push(
        Sse::new()
            .role()
            .data(r#"{"error": {"message": "the model crashed"}}"#)
            .done(),
    );
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} reported an error mid-stream: \"the model crashed\". Check the server's logs."
        )
    );

    server.push(Reply::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 15\r\n\r\n<html>hi</html>"
            .to_vec(),
    ));
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\": {url} answered with text/html (\"<html>hi</html>\"), not an event stream. Check that base_url in [agents.main] points at an OpenAI-compatible API (usually ending in /v1)."
        )
    );

    let mut s = settings(&base);
    s.api_key = KeySource::Missing {
        var: "NOT_SET_KEY".into(),
    };
    assert_eq!(
        failure(s).await,
        "agent \"main\": api_key_env names NOT_SET_KEY, which is not set in openclawd's environment. Export NOT_SET_KEY before the daemon starts (openclaw daemon stop, then run openclaw again), or remove api_key_env from [agents.main]."
    );
    let mut s = settings(&base);
    s.api_key = KeySource::Set {
        var: "TEST_KEY".into(),
        key: ApiKey::new("sk-abc\ndef"),
    };
    assert_eq!(
        failure(s).await,
        "agent \"main\": the API key in TEST_KEY holds characters an HTTP header cannot carry (a line break, or a character that is not ASCII). Check the value of TEST_KEY."
    );
    assert_eq!(server.pending(), 0, "every scripted reply was used");
}

#[tokio::test]
async fn a_server_that_goes_quiet_times_out() {
    let server = Arc::new(OpenAiServer::start());
    let url = chat_url(&server);
    let mut s = settings(&server.base_url());
    s.request_timeout = Duration::from_millis(300);

    server.push(Reply::Silent);
    assert_eq!(
        failure(s.clone()).await,
        format!(
            "agent \"main\": {url} sent no response within 0.3 s. Check that the server is not overloaded, or raise request_timeout_seconds in [agents.main]."
        )
    );
    server.push(Sse::new().role().text("and then").end(End::Hang));
    assert_eq!(
        failure(s).await,
        format!(
            "agent \"main\": the stream from {url} stalled: nothing arrived for 0.3 s. Check that the server is not overloaded, or raise request_timeout_seconds in [agents.main]."
        )
    );
    assert!(disconnect_seen(&server).await);
}

#[tokio::test]
async fn unreachable_servers_are_told_apart() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    assert_eq!(
        failure(settings(&base)).await,
        format!(
            "agent \"main\" cannot reach {base}/chat/completions: connection refused. Check that the server is running and that base_url in [agents.main] points to it."
        )
    );

    let base = "http://openclaw-test.invalid/v1";
    let dns = failure(settings(base)).await;
    assert!(
        dns.starts_with(&format!(
            "agent \"main\" cannot reach {base}/chat/completions: the host name does not resolve ("
        )),
        "{dns}"
    );
    assert!(
        dns.ends_with("Check base_url in [agents.main] and this host's DNS."),
        "{dns}"
    );

    // https:// to a server that speaks plain HTTP.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = plain.local_addr().unwrap();
    let answer = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = plain.accept() {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let base = format!("https://{addr}/v1");
    let tls = failure(settings(&base)).await;
    assert!(
        tls.starts_with(&format!(
            "agent \"main\" cannot reach {base}/chat/completions: the TLS handshake failed ("
        )),
        "{tls}"
    );
    assert!(
        tls.contains("(a local server usually wants http://)"),
        "{tls}"
    );
    answer.join().unwrap();
}

#[tokio::test]
async fn model_discovery_failures_say_what_to_set() {
    let server = OpenAiServer::start();
    server.set_models(&[]);
    let mut s = settings(&server.base_url());
    s.model = None;
    assert_eq!(
        failure(s.clone()).await,
        format!(
            "agent \"main\": {}/models lists no models, and [agents.main] names none. Set model in [agents.main].",
            server.base_url()
        )
    );
    server.set_models_reply(Reply::error(401, "no key"));
    let message = failure(s).await;
    assert!(
        message.starts_with(&format!(
            "agent \"main\": {}/models refused the request (HTTP 401)",
            server.base_url()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_runaway_tool_argument_is_cut_at_the_limit_and_the_model_is_told() {
    let server = Arc::new(OpenAiServer::start());
    let piece = "x".repeat(1000);
    server.push(
        Sse::new()
            .role()
            .tool_fragment(0, Some("c1"), Some("sessions_list"), "{\"label\": \"")
            .then_forever(&Sse::fragment_data(0, &piece)),
    );
    server.push(Reply::text(&["sorry, shorter now"]));
    let host = TestHost::plain();
    let reply = run(settings(&server.base_url()), &host, ctx("list", Vec::new()))
        .await
        .unwrap();
    assert_eq!(reply.reply, "sorry, shorter now");
    assert_eq!(reply.tool_rounds, 1);
    assert!(
        disconnect_seen(&server).await,
        "the endless response's connection was closed"
    );
    assert!(host.calls().is_empty(), "the cut call was not made");
    let records = host.records();
    let (_, call) = records
        .iter()
        .find(|(r, _)| *r == Role::ToolCall)
        .expect("the call is in the transcript");
    let raw = call["rawArguments"].as_str().expect("its raw arguments");
    assert!(
        raw.starts_with("{\"label\": \"xxx") && raw.len() < 1024,
        "{raw}"
    );
    let (_, result) = records
        .iter()
        .find(|(r, _)| *r == Role::ToolResult)
        .expect("a result");
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["output"]["error"]["kind"], "invalid_params");
    let message = result["output"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("longer than 1048576 bytes"), "{message}");
    // The model's next request carries the short call and the error, not a megabyte.
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].body.len() < 16 * 1024,
        "{}",
        requests[1].body.len()
    );
    let messages = requests[1].messages();
    let tool = messages.iter().find(|m| m["role"] == "tool").expect("tool");
    assert!(tool["content"].as_str().unwrap().contains("longer than"));
}
