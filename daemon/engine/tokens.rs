//! Per-run tokens: how a run's own child processes prove which session they act for. A
//! token is `<runId>.<secret>` with 32 random bytes of secret, handed only to the run's child
//! (in its environment), valid only while the run is active, and compared in constant time.

use std::collections::HashMap;

use crate::device::hex;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// The session a token-bearing caller acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    pub run_id: String,
    pub sid: i64,
    pub session_key: String,
    pub agent_id: String,
    pub spawn_depth: i64,
}

#[derive(Default)]
pub struct RunTokens {
    live: HashMap<String, ([u8; 32], Acting)>,
    /// Session tokens, by session row id: for a process that outlives one run (an ACP
    /// agent's MCP server), speaking for whichever run of the session is active.
    sessions: HashMap<i64, [u8; 32]>,
    rng: Option<SystemRandom>,
}

/// Session tokens start with this, then the session's row id.
const SESSION_PREFIX: &str = "session-";

#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct RandomFailed;

impl RunTokens {
    fn secret(&mut self) -> Result<[u8; 32], RandomFailed> {
        let mut secret = [0u8; 32];
        self.rng
            .get_or_insert_with(SystemRandom::new)
            .fill(&mut secret)
            .map_err(|_| RandomFailed)?;
        Ok(secret)
    }

    /// The token of a session (the same until revoked): good while one of its runs is
    /// active, acting as that run.
    pub fn session_token(&mut self, sid: i64) -> Result<String, RandomFailed> {
        let secret = match self.sessions.get(&sid) {
            Some(s) => *s,
            None => {
                let s = self.secret()?;
                self.sessions.insert(sid, s);
                s
            }
        };
        Ok(format!("{SESSION_PREFIX}{sid}.{}", hex(&secret)))
    }

    /// The session is gone, or its long-lived process is: its token dies.
    pub fn revoke_session(&mut self, sid: i64) {
        self.sessions.remove(&sid);
    }

    /// Issues the token of a starting run.
    pub fn issue(&mut self, acting: Acting) -> Result<String, RandomFailed> {
        let secret = self.secret()?;
        let token = format!("{}.{}", acting.run_id, hex(&secret));
        self.live.insert(acting.run_id.clone(), (secret, acting));
        Ok(token)
    }

    /// The run has ended: its token dies with it.
    pub fn revoke(&mut self, run_id: &str) {
        self.live.remove(run_id);
    }

    /// Who a live run acts as.
    pub fn acting(&self, run_id: &str) -> Option<Acting> {
        self.live.get(run_id).map(|(_, a)| a.clone())
    }

    pub fn is_live(&self, run_id: &str) -> bool {
        self.live.contains_key(run_id)
    }

    /// Who a token speaks for, if it is one this daemon issued for a run still active.
    pub fn check(&self, token: &str) -> Option<Acting> {
        let (run_id, secret_hex) = token.trim().split_once('.')?;
        if let Some(sid) = run_id.strip_prefix(SESSION_PREFIX) {
            let sid: i64 = sid.parse().ok()?;
            let given = unhex(secret_hex)?;
            let secret = self.sessions.get(&sid)?;
            if !bool::from(secret.ct_eq(&given)) {
                return None;
            }
            return self
                .live
                .values()
                .find(|(_, a)| a.sid == sid)
                .map(|(_, a)| a.clone());
        }
        let given = unhex(secret_hex)?;
        let (secret, acting) = self.live.get(run_id)?;
        bool::from(secret.ct_eq(&given)).then(|| acting.clone())
    }
}

/// The 32-byte secret of a token, if the text is one.
fn unhex(s: &str) -> Option<[u8; 32]> {
    crate::device::unhex(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acting(run: &str) -> Acting {
        Acting {
            run_id: run.into(),
            sid: 1,
            session_key: "agent:main:main".into(),
            agent_id: "main".into(),
            spawn_depth: 0,
        }
    }

    #[test]
    fn a_token_speaks_for_its_run_until_revoked() {
        let mut tokens = RunTokens::default();
        let t = tokens.issue(acting("r1")).unwrap();
        assert_eq!(tokens.check(&t), Some(acting("r1")));
        tokens.revoke("r1");
        assert_eq!(tokens.check(&t), None);
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let mut tokens = RunTokens::default();
        let t = tokens.issue(acting("r1")).unwrap();
        let mut forged = t.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(tokens.check(&forged), None);
        assert_eq!(tokens.check("r1.short"), None);
        assert_eq!(tokens.check("no-dot"), None);
        // Same run id, another daemon's secret.
        let other = RunTokens::default().issue(acting("r1")).unwrap();
        assert_ne!(other, t);
        assert_eq!(tokens.check(&other), None);
    }

    #[test]
    fn a_session_token_speaks_for_its_sessions_active_run_only() {
        let mut tokens = RunTokens::default();
        let t = tokens.session_token(1).unwrap();
        assert_eq!(
            tokens.session_token(1).unwrap(),
            t,
            "stable for the session"
        );
        assert_eq!(tokens.check(&t), None, "no run active");
        tokens.issue(acting("r1")).unwrap();
        assert_eq!(tokens.check(&t), Some(acting("r1")));
        tokens.revoke("r1");
        assert_eq!(tokens.check(&t), None);
        tokens.issue(acting("r2")).unwrap();
        assert_eq!(tokens.check(&t).map(|a| a.run_id), Some("r2".to_string()));
        let other = RunTokens::default().session_token(1).unwrap();
        assert_eq!(tokens.check(&other), None, "another daemon's secret");
        tokens.revoke_session(1);
        assert_eq!(tokens.check(&t), None);
    }

    #[test]
    fn secrets_are_random() {
        let mut tokens = RunTokens::default();
        let a = tokens.issue(acting("a")).unwrap();
        let b = tokens.issue(acting("b")).unwrap();
        assert_ne!(a.split_once('.').unwrap().1, b.split_once('.').unwrap().1);
    }
}
