//! Method names, so that client and daemon cannot drift apart on spelling.

pub const HELLO: &str = "hello";
pub const SESSIONS_SPAWN: &str = "sessions.spawn";
pub const SESSIONS_SEND: &str = "sessions.send";
pub const SESSIONS_HISTORY: &str = "sessions.history";
pub const SESSIONS_LIST: &str = "sessions.list";
pub const SESSIONS_KILL: &str = "sessions.kill";
pub const SESSIONS_PATCH: &str = "sessions.patch";
pub const SESSIONS_DELETE: &str = "sessions.delete";
pub const SESSIONS_GET: &str = "sessions.get";
pub const SESSIONS_MESSAGE: &str = "sessions.message";
pub const SESSIONS_SUBSCRIBE: &str = "sessions.subscribe";
pub const SESSIONS_UNSUBSCRIBE: &str = "sessions.unsubscribe";
pub const RUNS_WAIT: &str = "runs.wait";
/// The session tools this caller gets, for MCP (`openclaw mcp`).
pub const TOOLS_LIST: &str = "tools.list";
pub const AGENTS_LIST: &str = "agents.list";
pub const DAEMON_STATUS: &str = "daemon.status";
pub const DAEMON_SHUTDOWN: &str = "daemon.shutdown";
pub const DAEMON_RELOAD: &str = "daemon.reload";
pub const HTTP_TOKEN: &str = "http.token";
pub const PAIRING_AUTHENTICATE: &str = "pairing.authenticate";
pub const PAIRING_LIST: &str = "pairing.list";
pub const PAIRING_APPROVE: &str = "pairing.approve";
pub const PAIRING_REJECT: &str = "pairing.reject";
pub const PAIRING_REVOKE: &str = "pairing.revoke";

/// The scope a method needs (see `protocol::scopes`); `None` for methods every connected
/// peer may call (the handshake itself).
pub fn required_scope(method: &str) -> Option<&'static str> {
    use super::scopes::*;
    Some(match method {
        HELLO | PAIRING_AUTHENTICATE => return None,
        SESSIONS_SPAWN | SESSIONS_SEND | SESSIONS_KILL | SESSIONS_PATCH | SESSIONS_DELETE => {
            SESSIONS_WRITE
        }
        PAIRING_LIST | PAIRING_APPROVE | PAIRING_REJECT | PAIRING_REVOKE | DAEMON_SHUTDOWN
        | DAEMON_RELOAD | HTTP_TOKEN => ADMIN,
        // Reads, and anything unknown (which then answers "unknown method" to those allowed
        // to read).
        _ => SESSIONS_READ,
    })
}
