//! The `openai` backend's failures and controls end to end (issue 10 part 5): what a user
//! reads for each way a server can fail, kill and runTimeoutSeconds cancelling the HTTP
//! request at once, and 429 retried with the retries visible as lifecycle events.

mod common;
mod openai_support;

use std::time::Duration;

use common::LineChild;
use common::openai_server::{End, Gate, Reply, Sse};
use openai_support::{CALL_SECS, OpenAi, WAIT_SECS, closed_port, openai_agent};
use serde_json::Value;

/// How one failed run looks to its user: the error `sessions wait` prints (plain, on
/// stderr), and the note left in the transcript. Both must hold the same sentence.
struct Failure {
    said: String,
    note: String,
}

fn failure_of(oa: &OpenAi, flags: &[&str]) -> Failure {
    let (key, run) = oa.spawn("fail please", flags);
    let r = oa.wait(&run);
    assert_eq!(r["runStatus"], "error", "{r}\n{}", oa.log());
    let error = r["error"].as_str().unwrap_or_default().to_string();
    let secs = WAIT_SECS.to_string();
    let out = oa.run(&["sessions", "wait", &run, "--timeout", &secs]);
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    let said = common::stderr(&out);
    assert!(
        said.contains(&error),
        "wait prints the run's error:\n{said}\nvs {error}"
    );
    let note = oa
        .history(&key)
        .iter()
        .rev()
        .find(|m| m["role"] == "system")
        .and_then(|m| m["content"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(note.contains(&error), "the transcript says so: {note}");
    Failure { said: error, note }
}

fn assert_names_agent_and_url(f: &Failure, url: &str) {
    assert!(f.said.contains("agent \"main\""), "{}", f.said);
    assert!(f.said.contains(url), "names {url}: {}", f.said);
    assert!(f.note.starts_with("run "), "{}", f.note);
}

#[test]
fn connection_refused_names_the_agent_the_url_and_what_to_check() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let d = common::Daemon::start_with_config(&openai_agent("main", &url, ""));
    let oa = OpenAi {
        server: common::openai_server::OpenAiServer::start(),
        d,
    };
    let f = failure_of(&oa, &[]);
    assert_names_agent_and_url(&f, &url);
    assert!(f.said.contains("connection refused"), "{}", f.said);
    assert!(
        f.said
            .contains("Check that the server is running and that base_url in [agents.main]"),
        "{}",
        f.said
    );
}

#[test]
fn http_401_says_which_variable_to_check() {
    let oa = OpenAi::start_with_env(
        "api_key_env = \"OC_KEY\"",
        "",
        &[("OC_KEY", "sk-wrong-key-123456")],
    );
    oa.server.push(Reply::error(401, "invalid api key"));
    let f = failure_of(&oa, &[]);
    assert_names_agent_and_url(&f, &oa.server.base_url());
    assert!(f.said.contains("HTTP 401"), "{}", f.said);
    assert!(f.said.contains("\"invalid api key\""), "{}", f.said);
    assert!(
        f.said
            .contains("Check that OC_KEY (named by api_key_env in [agents.main])"),
        "{}",
        f.said
    );
    assert!(!f.said.contains("sk-wrong-key-123456"), "{}", f.said);
    assert_eq!(oa.server.chat_requests().len(), 1, "401 is not retried");
}

#[test]
fn http_404_names_the_unknown_model() {
    let oa = OpenAi::start("", "");
    oa.server
        .push(Reply::error(404, "model 'no-such-model' not found"));
    let f = failure_of(&oa, &["--model", "no-such-model"]);
    assert_names_agent_and_url(&f, &oa.server.base_url());
    assert!(f.said.contains("HTTP 404"), "{}", f.said);
    assert!(
        f.said
            .contains("Check that model \"no-such-model\" exists on the server"),
        "{}",
        f.said
    );
    assert!(
        f.said
            .contains(&format!("GET {}/models lists them", oa.server.base_url())),
        "{}",
        f.said
    );
}

#[test]
fn http_400_quotes_the_servers_message() {
    let oa = OpenAi::start("", "");
    oa.server.push(Reply::error(
        400,
        "max_tokens must be at most 4096 for this model",
    ));
    let f = failure_of(&oa, &[]);
    assert_names_agent_and_url(&f, &oa.server.base_url());
    assert!(
        f.said.contains(
            "rejected the request (HTTP 400): \"max_tokens must be at most 4096 for this model\""
        ),
        "{}",
        f.said
    );
    assert!(f.said.contains("in [agents.main]"), "{}", f.said);
}

#[test]
fn a_stream_that_ends_without_finish_reason_fails_and_says_so() {
    let oa = OpenAi::start("", "");
    oa.server
        .push(Sse::new().role().text("half an ans").end(End::Close));
    let f = failure_of(&oa, &[]);
    assert_names_agent_and_url(&f, &oa.server.base_url());
    assert!(
        f.said
            .contains("ended before the model finished (no finish_reason)"),
        "{}",
        f.said
    );
    // The same for a connection that breaks mid-body.
    oa.server
        .push(Sse::new().role().text("half an ans").end(End::Cut));
    let f = failure_of(&oa, &[]);
    assert!(f.said.contains("(no finish_reason"), "{}", f.said);
    assert!(f.said.contains("Check the server's logs"), "{}", f.said);
}

#[test]
fn a_chunk_that_is_not_json_fails_and_quotes_it() {
    let oa = OpenAi::start("", "");
    oa.server.push(
        Sse::new()
            .role()
            .data("<html>502 Bad Gateway</html>")
            .end(End::Done),
    );
    let f = failure_of(&oa, &[]);
    assert_names_agent_and_url(&f, &oa.server.base_url());
    assert!(
        f.said
            .contains("sent a stream chunk that is not JSON: \"<html>502 Bad Gateway</html>\""),
        "{}",
        f.said
    );
}

/// A follower of a session's lifecycle and assistant events, listening once it returns.
fn follower(oa: &OpenAi, key: &str, events: &str, json: bool) -> LineChild {
    let mut args = vec![
        "sessions",
        "follow",
        key,
        "--from-start",
        "--until-done",
        "--events",
        events,
    ];
    if json {
        args.push("--json");
    }
    let mut f = LineChild::spawn(oa.d.cli().args(&args), &format!("follow {events}"));
    // The first message printed: the follower listens from here on.
    f.wait_line(WAIT_SECS, |l| l.contains("a task"));
    f
}

#[test]
fn http_429_is_retried_and_the_retries_show_as_lifecycle_events() {
    let oa = OpenAi::start("", "");
    let gate = Gate::new();
    oa.server.push(
        Reply::error(429, "slow down")
            .with_header("retry-after", "0")
            .after(&gate),
    );
    oa.server.push(Reply::text(&["made ", "it"]));
    let (key, run) = oa.spawn("a task", &[]);
    let mut json = follower(&oa, &key, "message,lifecycle", true);
    let mut plain = follower(&oa, &key, "message,lifecycle", false);
    gate.open();
    assert_eq!(oa.wait_ok(&run), "made it");
    let (status, lines, err) = json.finish(CALL_SECS);
    assert!(status.success(), "{status:?} {err} {lines:#?}");
    let retries: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stream"] == "lifecycle" && e["data"]["phase"] == "retrying")
        .collect();
    assert_eq!(retries.len(), 1, "{lines:#?}");
    let data = &retries[0]["data"];
    assert_eq!(data["attempt"], 2, "{data}");
    assert_eq!(data["httpStatus"], 429, "{data}");
    assert_eq!(data["delayMs"], 0, "Retry-After: 0 honoured: {data}");
    assert!(
        data["reason"].as_str().unwrap_or("").contains("slow down"),
        "{data}"
    );
    let (status, lines, err) = plain.finish(CALL_SECS);
    assert!(status.success(), "{status:?} {err}");
    let shown = lines.join("\n");
    assert!(
        shown.contains("retrying") && shown.contains("HTTP 429: slow down"),
        "the plain follower shows the retry and why:\n{shown}"
    );
    assert_eq!(oa.server.chat_requests().len(), 2);
}

#[test]
fn http_503_is_retried_a_bounded_number_of_times_then_fails() {
    let oa = OpenAi::start("", "");
    for _ in 0..10 {
        oa.server
            .push(Reply::error(503, "overloaded").with_header("retry-after", "0"));
    }
    let f = failure_of(&oa, &[]);
    let attempts = oa.server.chat_requests().len();
    assert!(
        (2..10).contains(&attempts),
        "retried, but not without bound: {attempts}"
    );
    assert!(
        f.said.contains(&format!(
            "still answered HTTP 503 after {attempts} attempts: \"overloaded\""
        )),
        "{}",
        f.said
    );
}

#[test]
fn kill_mid_stream_closes_the_connection_and_ends_the_run_aborted() {
    let oa = OpenAi::start("", "");
    let gate = Gate::new();
    oa.server.push(
        Sse::new()
            .role()
            .text("partial ")
            .end(End::Hang)
            .after(&gate),
    );
    let (key, run) = oa.spawn("a task", &[]);
    let mut f = follower(&oa, &key, "message,assistant", true);
    gate.open();
    // The stream is flowing: its first text reached the follower.
    f.wait_line(WAIT_SECS, |l| l.contains("partial "));
    let out = oa.run(&["sessions", "kill", &key]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        oa.server
            .wait_for_disconnect(Duration::from_secs(WAIT_SECS)),
        "the server never saw the connection close\n{}",
        oa.log()
    );
    let r = oa.wait(&run);
    assert_eq!(r["runStatus"], "aborted", "{r}");
    let (status, _, _) = f.finish(CALL_SECS);
    assert_eq!(
        status.code(),
        Some(1),
        "follow --until-done reports the abort"
    );
    let list = oa.json(&["sessions", "list"]);
    assert_eq!(list["sessions"][0]["activeRunId"], Value::Null, "{list}");
    // The session is usable at once.
    oa.server.push(Reply::text(&["again"]));
    let out = oa.run(&["sessions", "send", &key, "once more"]);
    assert_eq!(
        common::stdout(&out).trim(),
        "again",
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn run_timeout_seconds_cancels_the_request_and_ends_the_run_timeout() {
    let oa = OpenAi::start("", "");
    oa.server.push(Reply::Silent);
    let (_, run) = oa.spawn("a task", &["--timeout", "1"]);
    let r = oa.wait(&run);
    assert_eq!(r["runStatus"], "timeout", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or("")
            .contains("exceeded its timeout of 1 s"),
        "{r}"
    );
    assert!(
        oa.server
            .wait_for_disconnect(Duration::from_secs(WAIT_SECS)),
        "the request was not cancelled"
    );
}
