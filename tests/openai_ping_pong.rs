//! Agent-to-agent reply-back end to end (issue 10 part 4, SPEC §6): a session's model sends
//! to another `openai` session with `sessions_send` and waits; then the two talk in turns
//! until one replies REPLY_SKIP or `[session] max_ping_pong_turns` is reached, and the target
//! gets one announce step, silent with ANNOUNCE_SKIP. Requests are told apart by the session
//! they come from (its first message), so the test does not depend on their interleaving.

mod common;
mod openai_support;

use common::openai_server::{OpenAiServer, Recorded, Reply};
use common::{Daemon, LineChild};
use openai_support::{OpenAi, WAIT_SECS, openai_agent};
use serde_json::Value;

const REQUESTER_TASK: &str = "talk to the peer";
const PEER_TASK: &str = "be the peer";

fn from(task: &'static str) -> impl Fn(&Recorded) -> bool + Send + Sync + 'static {
    move |r: &Recorded| r.first_user_text() == task
}

/// A requester `main` and a target `peer`, both `openai` on one server, that may see each
/// other; the peer session exists and has answered its task. Returns (daemon, peer key).
fn two_agents(session_config: &str) -> (OpenAi, String) {
    let server = OpenAiServer::start();
    let config = format!(
        "[session]\nvisibility = \"all\"\n{session_config}\n{}{}",
        openai_agent("main", &server.base_url(), ""),
        openai_agent("peer", &server.base_url(), "")
    );
    let oa = OpenAi {
        d: Daemon::start_with_config(&config),
        server,
    };
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["ready"]));
    let (peer, run) = oa.spawn(PEER_TASK, &["--agent", "peer", "--mode", "session"]);
    assert_eq!(oa.wait_ok(&run), "ready");
    (oa, peer)
}

/// The requester's turn that sends `ping` to the peer and waits, then says `sent`.
fn script_the_send(oa: &OpenAi, peer: &str, first_reply: &str) {
    let args = serde_json::json!({ "sessionKey": peer, "message": "ping", "timeoutSeconds": 20 })
        .to_string();
    oa.server.push_when(
        from(REQUESTER_TASK),
        Reply::tool_calls(&[("call_send", "sessions_send", &args)]),
    );
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&[first_reply]));
    oa.server
        .push_when(from(REQUESTER_TASK), Reply::text(&["sent"]));
}

/// Waits (following the target's transcript) for the note that ends every exchange; returns
/// it.
fn wait_for_the_end(oa: &OpenAi, peer: &str) -> String {
    let mut follow = LineChild::spawn(
        oa.d.cli()
            .args(["sessions", "follow", peer, "--from-start", "--json"]),
        "follow the peer",
    );
    let line = follow.wait_line(WAIT_SECS, |l| l.contains("agent-to-agent exchange with"));
    let event: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(event["message"]["role"], "system", "{event}");
    event["message"]["content"]
        .as_str()
        .expect("text")
        .to_string()
}

/// The `[inter_session from X]` user messages of a transcript, as their text.
fn routed(oa: &OpenAi, key: &str, from_key: &str) -> Vec<String> {
    oa.history(key)
        .iter()
        .filter(|m| {
            m["role"] == "user"
                && m["provenance"]["kind"] == "inter_session"
                && m["provenance"]["from"] == from_key
        })
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

fn announces(history: &[Value]) -> Vec<&Value> {
    history.iter().filter(|m| m["role"] == "announce").collect()
}

#[test]
fn reply_skip_ends_the_exchange_in_round_2_and_announce_skip_stays_silent() {
    let (oa, peer) = two_agents("");
    script_the_send(&oa, &peer, "pong 1");
    oa.server
        .push_when(from(REQUESTER_TASK), Reply::text(&["REPLY_SKIP"]));
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["ANNOUNCE_SKIP"]));
    // What must not be asked for: a third round, on either side.
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["round 3 must not happen"]));

    let (me, run) = oa.spawn(REQUESTER_TASK, &[]);
    assert_eq!(oa.wait_ok(&run), "sent");
    let note = wait_for_the_end(&oa, &peer);
    assert_eq!(
        note,
        format!(
            "agent-to-agent exchange with session {me} ended: {me} replied REPLY_SKIP in round 2; the announce step stayed silent (ANNOUNCE_SKIP)"
        )
    );

    // The requester's transcript: its turn, then round 2 from the peer, answered REPLY_SKIP;
    // no announce.
    let mine = oa.history(&me);
    assert!(announces(&mine).is_empty(), "{:#?}", oa.transcript(&me));
    let round2 = routed(&oa, &me, &peer);
    assert_eq!(round2.len(), 1, "{:#?}", oa.transcript(&me));
    assert!(
        round2[0].starts_with("[agent-to-agent reply-back, round 2 of at most 6:"),
        "{}",
        round2[0]
    );
    assert!(round2[0].ends_with("\npong 1"), "{}", round2[0]);
    assert_eq!(
        mine.last().unwrap()["content"],
        "REPLY_SKIP",
        "{:#?}",
        oa.transcript(&me)
    );
    // The peer's: the routed ping (inter_session, from the requester), its reply, the
    // announce step, its ANNOUNCE_SKIP, the note.
    let to_peer = routed(&oa, &peer, &me);
    assert_eq!(to_peer.len(), 2, "{:#?}", oa.transcript(&peer));
    assert_eq!(to_peer[0], "ping");
    assert!(
        to_peer[1].starts_with("[agent-to-agent announce step"),
        "{}",
        to_peer[1]
    );
    assert!(to_peer[1].contains("Its request: ping"), "{}", to_peer[1]);
    assert!(
        to_peer[1].contains("Your first reply: pong 1"),
        "{}",
        to_peer[1]
    );
    assert_eq!(
        oa.server.pending(),
        1,
        "exactly the scripted rounds ran: {:#?}",
        oa.transcript(&peer)
    );
    // The model saw where the routed message came from.
    let chats = oa.server.chat_requests();
    let second_round = chats
        .iter()
        .filter(|r| r.first_user_text() == REQUESTER_TASK)
        .nth(2)
        .expect("the requester's round 2");
    assert!(
        second_round.last_text().starts_with(&format!(
            "[message from session {peer}]\n[agent-to-agent reply-back, round 2"
        )),
        "{}",
        second_round.last_text()
    );
}

#[test]
fn the_exchange_stops_at_max_ping_pong_turns_5_and_the_announce_reaches_the_requester() {
    let (oa, peer) = two_agents("");
    script_the_send(&oa, &peer, "pong 1");
    // Rounds 2..=6 alternate: requester, peer, requester, peer, requester.
    for round in 2..=6 {
        let who = if round % 2 == 0 {
            REQUESTER_TASK
        } else {
            PEER_TASK
        };
        oa.server
            .push_when(from(who), Reply::text(&[&format!("reply {round}")]));
    }
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["we agreed on it"]));
    oa.server.push_when(
        from(REQUESTER_TASK),
        Reply::text(&["round 7 must not happen"]),
    );
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["nor this"]));

    let (me, run) = oa.spawn(REQUESTER_TASK, &[]);
    assert_eq!(oa.wait_ok(&run), "sent");
    let note = wait_for_the_end(&oa, &peer);
    assert_eq!(
        note,
        format!(
            "agent-to-agent exchange with session {me} ended: the limit of 5 turns after the first (max_ping_pong_turns) was reached; the announce step's reply went to {me}"
        )
    );
    let to_me = routed(&oa, &me, &peer);
    let to_peer = routed(&oa, &peer, &me);
    let rounds_to_me: Vec<String> = to_me.iter().map(|t| round_of(t)).collect();
    let rounds_to_peer: Vec<String> = to_peer.iter().map(|t| round_of(t)).collect();
    assert_eq!(rounds_to_me, ["2:pong 1", "4:reply 3", "6:reply 5"]);
    assert_eq!(
        rounds_to_peer,
        ["1:ping", "3:reply 2", "5:reply 4", "announce"]
    );
    assert!(
        to_peer[3].contains("The latest reply: reply 6"),
        "{}",
        to_peer[3]
    );

    let mine = oa.history(&me);
    let got = announces(&mine);
    assert_eq!(got.len(), 1, "{:#?}", oa.transcript(&me));
    assert_eq!(got[0]["content"], "we agreed on it");
    assert_eq!(got[0]["provenance"]["kind"], "announce");
    assert_eq!(got[0]["provenance"]["from"], peer.as_str());
    assert_eq!(oa.server.pending(), 2, "no seventh round");
}

#[test]
fn the_configured_limit_holds_and_a_skip_on_the_first_reply_goes_straight_to_the_announce() {
    let (oa, peer) = two_agents("max_ping_pong_turns = 1");
    script_the_send(&oa, &peer, "pong 1");
    oa.server
        .push_when(from(REQUESTER_TASK), Reply::text(&["reply 2"]));
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["ANNOUNCE_SKIP"]));
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["round 3 must not happen"]));
    let (me, run) = oa.spawn(REQUESTER_TASK, &[]);
    oa.wait_ok(&run);
    let note = wait_for_the_end(&oa, &peer);
    assert!(
        note.contains("the limit of 1 turns after the first"),
        "{note}"
    );
    assert_eq!(routed(&oa, &me, &peer).len(), 1);
    assert_eq!(oa.server.pending(), 1);

    // A target that declines at once: no round 2, only the announce step.
    let (oa, peer) = two_agents("");
    script_the_send(&oa, &peer, "REPLY_SKIP");
    oa.server
        .push_when(from(PEER_TASK), Reply::text(&["ANNOUNCE_SKIP"]));
    let (me, run) = oa.spawn(REQUESTER_TASK, &[]);
    oa.wait_ok(&run);
    let note = wait_for_the_end(&oa, &peer);
    assert!(
        note.contains(&format!(
            "{peer} answered the first message with REPLY_SKIP"
        )),
        "{note}"
    );
    assert!(routed(&oa, &me, &peer).is_empty());
    assert_eq!(oa.server.pending(), 0);
}

/// `N:text` for a reply-back message of round N, `1:text` for the plain first message,
/// `announce` for the announce step.
fn round_of(text: &str) -> String {
    if text.starts_with("[agent-to-agent announce step") {
        return "announce".into();
    }
    match text.strip_prefix("[agent-to-agent reply-back, round ") {
        Some(rest) => {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let body = rest.split_once("]\n").map_or("", |(_, b)| b);
            format!("{n}:{body}")
        }
        None => format!("1:{text}"),
    }
}
