//! The three forms of human output, event by event.

use super::*;
use crate::stream::test_support::{msg_event, run_event};
use openclaw::protocol::{Role, SubscriptionLaggedParams};
use serde_json::json;

fn run_ev(run: &str, stream: &str, seq: u64, data: Value) -> LiveEvent {
    LiveEvent::Run(run_event(run, stream, seq, data))
}

fn all() -> Kinds {
    Kinds::of(&EventKind::ALL)
}

fn transcript(shown: Kinds) -> Renderer {
    Renderer::new(Form::Transcript, LineStyle::default(), shown, false)
}

fn stdout_of(r: &mut Renderer, events: &[LiveEvent]) -> String {
    events.iter().map(|e| r.render(e).stdout).collect()
}

#[test]
fn transcript_lines_look_like_history() {
    let mut r = transcript(Kinds::of(&[EventKind::Message]));
    let out = stdout_of(
        &mut r,
        &[
            msg_event(9, Role::User, "run the report", None),
            msg_event(10, Role::Assistant, "line one\nline two", Some("r1")),
        ],
    );
    assert_eq!(
        out,
        "#9 user       run the report\n#10 assistant  line one\n               line two\n"
    );
}

#[test]
fn transcript_with_timestamps_colour_and_escapes() {
    let style = LineStyle {
        color: true,
        escape: true,
        timestamps: true,
    };
    let mut r = Renderer::new(
        Form::Transcript,
        style,
        Kinds::of(&[EventKind::Message]),
        false,
    );
    let out = r
        .render(&msg_event(1, Role::User, "\x1b[2Jhi", None))
        .stdout;
    assert_eq!(
        out,
        "\x1b[2m#1\x1b[0m \x1b[2m2026-11-21T23:19:23.123Z\x1b[0m \x1b[36muser\x1b[0m       ^[[2Jhi\n"
    );
}

#[test]
fn streamed_text_stands_for_the_reply_it_matches() {
    let mut r = transcript(Kinds::of(&[EventKind::Message, EventKind::Assistant]));
    let out = stdout_of(
        &mut r,
        &[
            msg_event(1, Role::User, "hi", None),
            run_ev("r1", "assistant", 2, json!({"delta": "hel"})),
            run_ev("r1", "assistant", 3, json!({"delta": "lo\nworld"})),
            msg_event(2, Role::Assistant, "hello\nworld", Some("r1")),
            msg_event(3, Role::User, "next", None),
        ],
    );
    assert_eq!(
        out,
        "#1 user       hi\nassistant  hello\n           world\n#3 user       next\n"
    );
}

#[test]
fn a_reply_that_differs_from_the_stream_is_printed() {
    let mut r = transcript(Kinds::of(&[EventKind::Message, EventKind::Assistant]));
    let out = stdout_of(
        &mut r,
        &[
            run_ev("r1", "assistant", 2, json!({"delta": "hel"})),
            msg_event(2, Role::Assistant, "hello", Some("r1")),
        ],
    );
    assert_eq!(out, "assistant  hel\n#2 assistant  hello\n");
}

#[test]
fn a_follow_that_joined_mid_run_does_not_reprint_the_reply() {
    let mut r = transcript(Kinds::of(&[EventKind::Message, EventKind::Assistant]));
    let out = stdout_of(
        &mut r,
        &[
            run_ev(
                "r1",
                "assistant",
                7,
                json!({"delta": "lo", "joined": true, "cut": true}),
            ),
            run_ev("r1", "assistant", 8, json!({"delta": " world"})),
            msg_event(2, Role::Assistant, "hello world", Some("r1")),
        ],
    );
    assert_eq!(out, "assistant  …lo world\n");
}

#[test]
fn deltas_are_hidden_unless_asked_for() {
    let mut r = transcript(Kinds::of(&[EventKind::Message]));
    let out = stdout_of(
        &mut r,
        &[
            run_ev("r1", "assistant", 1, json!({"delta": "hello"})),
            msg_event(2, Role::Assistant, "hello", Some("r1")),
        ],
    );
    assert_eq!(out, "#2 assistant  hello\n");
}

#[test]
fn run_end_closes_a_streamed_line() {
    let mut r = transcript(Kinds::of(&[EventKind::Assistant]));
    let out = stdout_of(
        &mut r,
        &[
            run_ev("r1", "assistant", 1, json!({"delta": "partial"})),
            run_ev(
                "r1",
                "lifecycle",
                2,
                json!({"phase": "ended", "status": "error"}),
            ),
        ],
    );
    assert_eq!(out, "assistant  partial\n");
    assert_eq!(r.finish(), Out::default());
}

#[test]
fn transcript_shows_lifecycle_tool_and_usage_lines() {
    let mut r = transcript(all());
    let out = stdout_of(
        &mut r,
        &[
            run_ev("r1", "lifecycle", 1, json!({"phase": "started"})),
            run_ev(
                "r1",
                "tool",
                2,
                json!({"phase": "start", "id": "t1", "name": "grep", "input": {"q": "x"}}),
            ),
            run_ev(
                "r1",
                "tool",
                3,
                json!({"phase": "end", "id": "t1", "output": "3 hits", "status": "ok"}),
            ),
            run_ev("r1", "usage", 4, json!({"tokens": 12})),
            run_ev(
                "r1",
                "lifecycle",
                5,
                json!({"phase": "ended", "status": "error", "error": "boom"}),
            ),
        ],
    );
    assert_eq!(
        out,
        "run r1 started\ntool grep start: {\"q\":\"x\"}\ntool grep end ok: 3 hits\nusage 12 tokens\nrun r1 ended error: boom\n"
    );
}

#[test]
fn compact_lines_start_with_the_key() {
    let mut r = Renderer::new(Form::Compact, LineStyle::default(), all(), false);
    let changed = LiveEvent::Changed(json!({
        "subscription": "s", "phase": "create", "sessionKey": "k1",
        "session": {"status": "idle"}
    }));
    let out = stdout_of(
        &mut r,
        &[
            changed,
            msg_event(1, Role::User, "two\nlines", None),
            run_ev("r1", "assistant", 1, json!({"delta": "a\"b\n"})),
            run_ev(
                "r1",
                "lifecycle",
                2,
                json!({"phase": "ended", "status": "ok"}),
            ),
        ],
    );
    assert_eq!(
        out,
        "k1 session create (idle)\n\
         agent:main:main #1 user  two↵lines\n\
         agent:main:main delta \"a\\\"b\\n\"\n\
         agent:main:main run r1 ended ok\n"
    );
}

#[test]
fn reply_form_streams_text_and_puts_tools_on_stderr() {
    let mut r = Renderer::new(Form::Reply, LineStyle::default(), all(), true);
    let events = [
        run_ev("r1", "lifecycle", 1, json!({"phase": "started"})),
        run_ev("r1", "assistant", 2, json!({"delta": "looking"})),
        run_ev(
            "r1",
            "tool",
            3,
            json!({"phase": "start", "id": "t1", "name": "grep"}),
        ),
        run_ev(
            "r1",
            "tool",
            4,
            json!({"phase": "update", "id": "t1", "output": "..."}),
        ),
        run_ev(
            "r1",
            "tool",
            5,
            json!({"phase": "end", "id": "t1", "status": "ok"}),
        ),
        run_ev("r1", "assistant", 6, json!({"delta": "found it"})),
        run_ev(
            "r1",
            "tool",
            7,
            json!({"phase": "start", "id": "t2", "name": "ls"}),
        ),
        run_ev(
            "r1",
            "lifecycle",
            8,
            json!({"phase": "ended", "status": "ok"}),
        ),
    ];
    let outs: Vec<Out> = events.iter().map(|e| r.render(e)).collect();
    let stdout: String = outs.iter().map(|o| o.stdout.as_str()).collect();
    let stderr: String = outs.iter().map(|o| o.stderr.as_str()).collect();
    // On a shared terminal the tool line starts on a line of its own.
    assert_eq!(stdout, "looking\nfound it");
    assert_eq!(stderr, "tool grep … ok\n");
    assert_eq!(r.streamed("r1"), Some("lookingfound it"));
    let tail = r.unfinished_tools();
    assert_eq!(tail.stderr, "tool ls … unfinished\n");
    assert_eq!(tail.stdout, "\n");
}

#[test]
fn reply_form_keeps_stdout_intact_when_not_a_shared_terminal() {
    let mut r = Renderer::new(Form::Reply, LineStyle::default(), all(), false);
    let a = r.render(&run_ev("r1", "assistant", 1, json!({"delta": "a"})));
    let t = r.render(&run_ev(
        "r1",
        "tool",
        2,
        json!({"phase": "end", "id": "t", "name": "x", "status": "error"}),
    ));
    assert_eq!((a.stdout.as_str(), t.stdout.as_str()), ("a", ""));
    assert_eq!(t.stderr, "tool x … error\n");
}

#[test]
fn lagged_is_a_note_on_stderr() {
    let mut r = transcript(all());
    let out = r.render(&LiveEvent::Lagged(SubscriptionLaggedParams {
        subscription: "s".into(),
        skipped: 7,
    }));
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.starts_with("note: ") && out.stderr.contains(" 7 "),
        "{}",
        out.stderr
    );
}

#[test]
fn reply_form_leaves_the_line_open_for_the_reply() {
    let mut r = Renderer::new(Form::Reply, LineStyle::default(), all(), false);
    let out = stdout_of(
        &mut r,
        &[
            run_ev("r1", "assistant", 1, json!({"delta": "looking found it"})),
            run_ev(
                "r1",
                "lifecycle",
                2,
                json!({"phase": "ended", "status": "ok"}),
            ),
        ],
    );
    assert_eq!(out, "looking found it");
    assert!(!r.at_line_start());
    assert_eq!(r.finish().stdout, "\n");
    assert!(r.at_line_start());
}
