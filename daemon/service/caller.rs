//! Who is calling, as a plain value. A transport works it out once (from the kernel's peer
//! credentials, a run token, a proven device key, or the HTTP bearer token) and passes it
//! with every call; the service never looks at connections.

use crate::daemon::engine::Acting;
use crate::protocol::scopes;

/// A paired device a caller proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub fingerprint: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The host's operator: a peer with the daemon's uid (or root), or the HTTP token.
    Operator,
    /// A run acting as its session: a process of the run with its token, or the run's own
    /// in-process tools. Valid only while the run is active.
    Run(Acting),
    /// Another local user's paired device, with the scopes the owner granted.
    Device(DeviceAuth),
    /// Another local user that has not proven a paired device: it may say hello and prove
    /// one, nothing else.
    Stranger { uid: Option<u32> },
}

impl Caller {
    /// Whether the caller holds `scope`. Runs act for their session: they read and write
    /// sessions (within their visibility) but hold no admin scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Run(_) => scope != scopes::ADMIN,
            Caller::Device(d) => d.scopes.iter().any(|s| s == scope),
            Caller::Stranger { .. } => false,
        }
    }

    /// The scopes the caller holds.
    pub fn scopes(&self) -> Vec<String> {
        scopes::ALL
            .iter()
            .filter(|s| self.has_scope(s))
            .map(|s| s.to_string())
            .collect()
    }

    /// The session a run caller acts as.
    pub fn acting(&self) -> Option<&Acting> {
        match self {
            Caller::Run(a) => Some(a),
            _ => None,
        }
    }

    /// The device whose sessions alone this caller sees: a paired device without `admin`.
    pub fn owner_filter(&self) -> Option<&str> {
        match self {
            Caller::Device(d) if !d.scopes.iter().any(|s| s == scopes::ADMIN) => {
                Some(&d.fingerprint)
            }
            _ => None,
        }
    }

    /// The device that creates sessions, recorded as their owner.
    pub fn device_fingerprint(&self) -> Option<&str> {
        match self {
            Caller::Device(d) => Some(&d.fingerprint),
            _ => None,
        }
    }

    /// Who is calling, for scoping idempotency keys: one caller's key never returns another
    /// caller's result.
    pub fn id(&self) -> String {
        match self {
            Caller::Operator => "operator".to_string(),
            Caller::Run(a) => format!("session:{}", a.session_key),
            Caller::Device(d) => format!("device:{}", d.fingerprint),
            Caller::Stranger { uid } => format!("stranger:{}", uid.unwrap_or(u32::MAX)),
        }
    }

    /// Only the operator (or an admin device) is above the send policy.
    pub fn may_override_send_policy(&self) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Device(d) => d.scopes.iter().any(|s| s == scopes::ADMIN),
            _ => false,
        }
    }
}
