//! Who may use the daemon. Trust comes from the kernel (`SO_PEERCRED` at accept), never from
//! anything the peer says: the same effective uid as the daemon, or root, is trusted with every
//! scope; any other uid must pair first (a later protocol step), so it gets `pairing_required`.

use crate::daemon::service::PeerFacts;

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
}

/// The trust policy, as a pure function of the peer's and the daemon's effective uids.
pub fn trust(peer_euid: Option<u32>, daemon_euid: u32) -> Trust {
    match peer_euid {
        Some(uid) if uid == daemon_euid => Trust::Owner,
        Some(0) => Trust::Root,
        _ => Trust::Unpaired,
    }
}

/// What the kernel says about a connected client, as the service takes it.
pub fn peer_facts(uid: Option<u32>, pid: Option<u32>, daemon_euid: u32) -> PeerFacts {
    PeerFacts {
        uid,
        pid,
        trusted: trust(uid, daemon_euid).is_trusted(),
    }
}

/// A fresh random nonce (hex), one per connection.
pub fn nonce() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    // Should the system RNG fail, an all-zero nonce would be replayable; a uuid from the
    // OS RNG keeps it unique instead.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return uuid::Uuid::new_v4().simple().to_string();
    }
    crate::device::hex(&bytes)
}

/// The login name of a uid, for showing pairing requests to the owner.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwuid_r writes only into them.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
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
        assert!(!peer_facts(Some(1001), None, 1000).trusted);
        assert!(peer_facts(Some(1000), Some(7), 1000).trusted);
    }

    #[test]
    fn unknown_credentials_are_never_trusted() {
        assert_eq!(trust(None, 1000), Trust::Unpaired);
        assert_eq!(trust(None, 0), Trust::Unpaired);
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(nonce(), nonce());
        assert_eq!(nonce().len(), 64);
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn a_root_daemon_trusts_only_root() {
        assert_eq!(trust(Some(0), 0), Trust::Owner);
        assert_eq!(trust(Some(65534), 0), Trust::Unpaired);
    }
}
