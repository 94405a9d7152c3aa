//! Pairing: how another local user's device gets admitted, and what the owner manages.

use serde::{Deserialize, Serialize};

/// The scopes a paired device can hold.
pub mod scopes {
    /// list, history, follow, subscribe, wait, agents, daemon status
    pub const SESSIONS_READ: &str = "sessions.read";
    /// spawn, send, kill, patch, delete
    pub const SESSIONS_WRITE: &str = "sessions.write";
    /// pairing, daemon shutdown; and seeing every user's sessions
    pub const ADMIN: &str = "admin";
    pub const ALL: [&str; 3] = [SESSIONS_READ, SESSIONS_WRITE, ADMIN];
}

/// `pairing.authenticate`: proves possession of a device key for this connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticateParams {
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Signature (hex) of the proof message: see `openclaw::device::Proof`.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticateResult {
    pub fingerprint: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub request_id: String,
    pub uid: u32,
    pub user: Option<String>,
    pub fingerprint: String,
    pub requested_at: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    pub fingerprint: String,
    pub uid: u32,
    pub user: Option<String>,
    pub scopes: Vec<String>,
    pub approved_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingListResult {
    pub pending: Vec<PendingRequest>,
    pub devices: Vec<PairedDevice>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveParams {
    /// The request id, or a unique prefix of it (4 characters or more).
    pub request_id: String,
    /// Scopes to grant; default `sessions.read` and `sessions.write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectParams {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeParams {
    /// The device fingerprint, or a unique prefix of it (4 characters or more).
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeResult {
    pub fingerprint: String,
    pub revoked: bool,
    /// Open connections of the device, closed at once.
    pub dropped_connections: u32,
}
