//! Who may use the daemon. Trust comes from the kernel (`SO_PEERCRED` at accept), never from
//! anything the peer says: the same effective uid as the daemon, or root, is trusted with every
//! scope; any other uid must pair first (a later protocol step), so it gets `pairing_required`.

/// Scopes a trusted peer holds.
pub const ALL_SCOPES: &[&str] = &["sessions.read", "sessions.write", "admin"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Same effective uid as the daemon.
    Owner,
    /// uid 0, which could become the owner anyway.
    Root,
    /// Another uid, or credentials the kernel could not tell us.
    Unpaired,
}

impl Trust {
    pub fn is_trusted(self) -> bool {
        !matches!(self, Trust::Unpaired)
    }

    pub fn scopes(self) -> &'static [&'static str] {
        if self.is_trusted() { ALL_SCOPES } else { &[] }
    }
}

/// The trust policy, as a pure function of the peer's and the daemon's effective uids.
pub fn trust(peer_euid: Option<u32>, daemon_euid: u32) -> Trust {
    match peer_euid {
        Some(uid) if uid == daemon_euid => Trust::Owner,
        Some(0) => Trust::Root,
        _ => Trust::Unpaired,
    }
}

/// A connected client, as the kernel described it at accept.
#[derive(Debug, Clone)]
pub struct Peer {
    pub uid: Option<u32>,
    pub pid: Option<u32>,
    pub trust: Trust,
}

impl Peer {
    /// The sentence an unpaired peer gets for every call.
    pub fn pairing_message(&self, daemon_euid: u32) -> String {
        let who = self
            .uid
            .map(|u| format!("uid {u}"))
            .unwrap_or_else(|| "an unknown user".into());
        format!(
            "this client ({who}) is not paired with the openclaw daemon owned by uid {daemon_euid}; \
             only the owner can use it until pairing of other users is available — ask the owner to run the command"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_uid_is_the_owner() {
        assert_eq!(trust(Some(1000), 1000), Trust::Owner);
    }

    #[test]
    fn root_is_trusted_by_any_daemon() {
        assert_eq!(trust(Some(0), 1000), Trust::Root);
        assert!(trust(Some(0), 1000).is_trusted());
    }

    #[test]
    fn another_uid_must_pair() {
        let t = trust(Some(1001), 1000);
        assert_eq!(t, Trust::Unpaired);
        assert!(!t.is_trusted());
        assert!(t.scopes().is_empty());
    }

    #[test]
    fn unknown_credentials_are_never_trusted() {
        assert_eq!(trust(None, 1000), Trust::Unpaired);
        assert_eq!(trust(None, 0), Trust::Unpaired);
    }

    #[test]
    fn a_root_daemon_trusts_only_root() {
        assert_eq!(trust(Some(0), 0), Trust::Owner);
        assert_eq!(trust(Some(65534), 0), Trust::Unpaired);
    }
}
