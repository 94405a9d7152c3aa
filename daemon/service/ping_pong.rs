//! Agent-to-agent reply-back (SPEC §6): when a run's model sends to another model-driven
//! session with `sessions_send` and gets its reply, the two sessions may go on talking. The
//! target's reply goes back to the requester as a new turn (round 2), the requester's answer
//! to the target (round 3), and so on, alternating, for at most `[session]
//! max_ping_pong_turns` turns after the first; a reply of exactly `REPLY_SKIP` ends it
//! early. Then the target gets one announce step: its reply goes into the requester's
//! transcript as an announce, unless it is exactly `ANNOUNCE_SKIP`.
//!
//! Every step is an ordinary run, queued behind whatever the session is doing, with an
//! `inter_session` message naming the other session: both transcripts show the whole
//! exchange, and a note in the target's transcript says how it ended. It is bounded three ways: the turn limit, one exchange per pair of sessions at
//! a time, and runs of an exchange never start another one (a model that sends from inside
//! a reply-back step gets its reply, and that is all).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::{Caller, SessionService};
use crate::config::BackendKind;
use crate::daemon::engine::{ANNOUNCE_SKIP, Engine, SubmitRequest, SubmitTarget};
use crate::daemon::store::{NewMessage, SessionRecord};
use crate::protocol::{ProvenanceKind, Role, RunResult, WaitStatus};
use crate::timefmt::now_ms;

/// A reply of exactly this (trimmed) ends the reply-back.
pub const REPLY_SKIP: &str = "REPLY_SKIP";
/// How long one step may take, queueing included, before the exchange ends (its run goes on).
const STEP_WAIT: Duration = Duration::from_secs(600);
/// Characters of each earlier message quoted in the announce step's prompt.
const QUOTE_CHARS: usize = 2000;

/// The exchanges in progress.
#[derive(Default)]
pub struct Exchanges {
    state: Mutex<ExchangeState>,
}

#[derive(Default)]
struct ExchangeState {
    /// The pairs talking now, each as (smaller key, larger key).
    pairs: HashSet<(String, String)>,
    /// The runs of exchanges in progress: they never start one of their own.
    runs: HashSet<String>,
}

impl Exchanges {
    fn lock(&self) -> MutexGuard<'_, ExchangeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the pair; false when it is talking already or `run_id` is one of an exchange.
    fn begin(&self, run_id: &str, a: &str, b: &str) -> bool {
        let mut st = self.lock();
        !st.runs.contains(run_id) && st.pairs.insert(pair(a, b))
    }

    fn end(&self, a: &str, b: &str, runs: &[String]) {
        let mut st = self.lock();
        st.pairs.remove(&pair(a, b));
        for r in runs {
            st.runs.remove(r);
        }
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl SessionService {
    /// After `caller`'s `sessions_send` of `message` got `result`: starts the reply-back
    /// between the two sessions when it applies (a run of a model-driven session sent to
    /// another one and waited for its reply). Returns at once; the exchange runs on its own.
    pub(super) fn reply_back(&self, caller: &Caller, message: &str, result: &RunResult) {
        let Caller::Run(me) = caller else { return };
        let Some(first_reply) = result.reply.clone() else {
            return;
        };
        if result.status != WaitStatus::Ok || result.session_key == me.session_key {
            return;
        }
        let config = self.engine.config();
        if !is_model(&config, &me.agent_id) {
            return;
        }
        if !self
            .exchanges
            .begin(&me.run_id, &me.session_key, &result.session_key)
        {
            return;
        }
        let exchange = Exchange {
            engine: self.engine.clone(),
            exchanges: self.exchanges.clone(),
            requester: me.session_key.clone(),
            target: result.session_key.clone(),
            request: message.to_string(),
            first_reply,
            max_turns: config.session.max_ping_pong_turns(),
            runs: Vec::new(),
        };
        tokio::spawn(exchange.run());
    }
}

fn is_model(config: &crate::config::Config, agent_id: &str) -> bool {
    config
        .agent(agent_id)
        .is_some_and(|a| a.backend == BackendKind::OpenAi)
}

/// One reply-back between a requester and a target, from round 2 to the announce step.
struct Exchange {
    engine: Arc<Engine>,
    exchanges: Arc<Exchanges>,
    requester: String,
    target: String,
    /// The requester's message of round 1, and the target's reply to it.
    request: String,
    first_reply: String,
    max_turns: u32,
    /// The runs this exchange started.
    runs: Vec<String>,
}

/// The two sides of an exchange.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Requester,
    Target,
}

impl Exchange {
    async fn run(mut self) {
        let ending = match self.talk().await {
            Ok(Some(ending)) => Some(ending),
            Ok(None) => None,
            Err(why) => {
                tracing::info!(
                    requester = %self.requester,
                    target = %self.target,
                    "the agent-to-agent reply-back ended early: {why}"
                );
                Some(format!("it stopped early: {why}"))
            }
        };
        // The exchange's last word, in the target's transcript: how it ended (the
        // requester's stays as the exchange left it, silent when the announce was skipped).
        if let Some(ending) = ending {
            self.note(&ending).await;
        }
        self.exchanges
            .end(&self.requester, &self.target, &self.runs);
    }

    /// The exchange; how it ended, or `None` when the target is no model to talk with.
    async fn talk(&mut self) -> Result<Option<String>, String> {
        if !is_model(
            &self.engine.config(),
            &self.session(Side::Target).await?.agent_id,
        ) {
            return Ok(None);
        }
        let mut latest = self.first_reply.clone();
        let mut speaker = Side::Requester;
        let last_round = self.max_turns + 1;
        let mut stopped = format!(
            "the limit of {} turns after the first (max_ping_pong_turns) was reached",
            self.max_turns
        );
        if is_skip(&latest, REPLY_SKIP) {
            stopped = format!(
                "{} answered the first message with {REPLY_SKIP}",
                self.target
            );
        } else {
            for round in 2..=last_round {
                let prompt = reply_prompt(speaker, round, last_round, &latest);
                let reply = self.step(speaker, prompt).await?;
                if reply.trim().is_empty() || is_skip(&reply, REPLY_SKIP) {
                    stopped = format!(
                        "{} replied {} in round {round}",
                        self.key(speaker),
                        if reply.trim().is_empty() {
                            "nothing"
                        } else {
                            REPLY_SKIP
                        }
                    );
                    break;
                }
                latest = reply;
                speaker = match speaker {
                    Side::Requester => Side::Target,
                    Side::Target => Side::Requester,
                };
            }
        }
        let prompt = announce_prompt(&self.requester, &self.request, &self.first_reply, &latest);
        let announcement = self.step(Side::Target, prompt).await?;
        if announcement.trim().is_empty() || is_skip(&announcement, ANNOUNCE_SKIP) {
            return Ok(Some(format!(
                "{stopped}; the announce step stayed silent ({ANNOUNCE_SKIP})"
            )));
        }
        let requester = self.session(Side::Requester).await?;
        // A child's runs are announced to its parent by the engine already.
        if self.session(Side::Target).await?.parent_key.as_deref() == Some(&self.requester) {
            return Ok(Some(format!(
                "{stopped}; the announce step's reply went to {} as the announce of its child",
                self.requester
            )));
        }
        let message = NewMessage {
            ts: now_ms(),
            role: Role::Announce,
            content: Value::String(announcement.trim().to_string()),
            run_id: self.runs.last().cloned(),
            provenance: ProvenanceKind::Announce,
            from: Some(self.target.clone()),
            usage: None,
        };
        self.engine
            .store
            .append_durable(requester.sid, message)
            .await
            .map_err(|e| format!("storing the announce failed: {e}"))?;
        Ok(Some(format!(
            "{stopped}; the announce step's reply went to {}",
            self.requester
        )))
    }

    /// A note in the target's transcript saying how the exchange ended.
    async fn note(&self, ending: &str) {
        let Ok(target) = self.session(Side::Target).await else {
            return;
        };
        let message = NewMessage {
            ts: now_ms(),
            role: Role::System,
            content: Value::String(format!(
                "agent-to-agent exchange with session {} ended: {ending}",
                self.requester
            )),
            run_id: None,
            provenance: ProvenanceKind::Agent,
            from: None,
            usage: None,
        };
        if let Err(e) = self.engine.store.append_durable(target.sid, message).await {
            tracing::error!(target = %self.target, "storing the end of a reply-back failed: {e}");
        }
    }

    fn key(&self, side: Side) -> &str {
        match side {
            Side::Requester => &self.requester,
            Side::Target => &self.target,
        }
    }

    async fn session(&self, side: Side) -> Result<SessionRecord, String> {
        let key = self.key(side);
        match self.engine.store.session_by_key(key.to_string()).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(format!("session {key} is gone")),
            Err(e) => Err(format!("reading session {key}: {e}")),
        }
    }

    /// One turn of `side`'s session on `text`, from the other side; its reply.
    async fn step(&mut self, side: Side, text: String) -> Result<String, String> {
        let session = self.session(side).await?;
        let from = match side {
            Side::Requester => self.target.clone(),
            Side::Target => self.requester.clone(),
        };
        let run_id = crate::daemon::ids::new_run_id().to_string();
        // Registered before the run exists, so it cannot start an exchange of its own.
        self.exchanges.lock().runs.insert(run_id.clone());
        self.runs.push(run_id.clone());
        let request = SubmitRequest {
            target: SubmitTarget::Existing(Box::new(session)),
            message: NewMessage {
                ts: now_ms(),
                role: Role::User,
                content: Value::String(text),
                run_id: None,
                provenance: ProvenanceKind::InterSession,
                from: Some(from),
                usage: None,
            },
            run_id: run_id.clone(),
            run_timeout: None,
            idempotency: None,
            params_digest: None,
            attachments: Vec::new(),
            thinking: None,
        };
        self.engine
            .submit(request)
            .await
            .map_err(|e| format!("submitting to {}: {e}", self.key(side)))?;
        let result = self
            .engine
            .wait(&run_id, STEP_WAIT)
            .await
            .map_err(|e| format!("waiting for run {run_id}: {e}"))?;
        match (result.status, result.reply) {
            (WaitStatus::Ok, Some(reply)) => Ok(reply),
            (WaitStatus::Ok, None) => Ok(String::new()),
            (status, _) => Err(format!(
                "run {run_id} of {} ended {status:?}{}",
                self.key(side),
                result.error.map(|e| format!(": {e}")).unwrap_or_default()
            )),
        }
    }
}

fn is_skip(reply: &str, word: &str) -> bool {
    reply.trim() == word
}

/// What a session is given in round `round`: the other side's latest reply, after a line
/// saying what this is and how to end it.
fn reply_prompt(speaker: Side, round: u32, last_round: u32, latest: &str) -> String {
    let role = match speaker {
        Side::Requester => "you sent it a message with sessions_send and this is its reply",
        Side::Target => "this is its answer to your reply",
    };
    format!(
        "[agent-to-agent reply-back, round {round} of at most {last_round}: {role}. Answer to go on, or reply exactly {REPLY_SKIP} to end the exchange.]\n{latest}"
    )
}

/// The target's last step: the exchange in short, and the choice to announce or stay silent.
fn announce_prompt(requester: &str, request: &str, first_reply: &str, latest: &str) -> String {
    format!(
        "[agent-to-agent announce step: the exchange with session {requester} has ended. What you reply now goes into its transcript as an announce; reply exactly {ANNOUNCE_SKIP} to stay silent.]\nIts request: {}\nYour first reply: {}\nThe latest reply: {}",
        quote(request),
        quote(first_reply),
        quote(latest)
    )
}

fn quote(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= QUOTE_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(QUOTE_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_talks_once_at_a_time_and_its_runs_start_nothing() {
        let ex = Exchanges::default();
        assert!(ex.begin("r1", "a", "b"));
        // The same pair, either way round, while it talks.
        assert!(!ex.begin("r2", "b", "a"));
        // Another pair may talk.
        assert!(ex.begin("r3", "a", "c"));
        ex.lock().runs.insert("step".into());
        assert!(!ex.begin("step", "c", "d"));
        ex.end("a", "b", &["step".to_string()]);
        assert!(ex.begin("step", "b", "a"));
    }

    #[test]
    fn skips_are_exact_words() {
        assert!(is_skip(" REPLY_SKIP\n", REPLY_SKIP));
        assert!(!is_skip("REPLY_SKIP please", REPLY_SKIP));
        assert!(!is_skip("reply_skip", REPLY_SKIP));
    }

    #[test]
    fn prompts_say_the_round_and_how_to_stop() {
        let p = reply_prompt(Side::Requester, 2, 6, "pong");
        assert!(
            p.starts_with("[agent-to-agent reply-back, round 2 of at most 6"),
            "{p}"
        );
        assert!(p.contains("reply exactly REPLY_SKIP"), "{p}");
        assert!(p.ends_with("]\npong"), "{p}");
        let long = "x".repeat(QUOTE_CHARS + 5);
        let a = announce_prompt("agent:a:main", &long, "one", "two");
        assert!(a.contains("reply exactly ANNOUNCE_SKIP"), "{a}");
        assert!(a.contains(&format!("{}…", "x".repeat(QUOTE_CHARS))), "{a}");
        assert!(!a.contains(&"x".repeat(QUOTE_CHARS + 1)), "{a}");
    }
}
