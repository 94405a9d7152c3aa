//! Method names, so that client and daemon cannot drift apart on spelling.

pub const HELLO: &str = "hello";
pub const SESSIONS_SPAWN: &str = "sessions.spawn";
pub const SESSIONS_SEND: &str = "sessions.send";
pub const SESSIONS_HISTORY: &str = "sessions.history";
pub const SESSIONS_LIST: &str = "sessions.list";
pub const SESSIONS_KILL: &str = "sessions.kill";
pub const SESSIONS_PATCH: &str = "sessions.patch";
pub const SESSIONS_DELETE: &str = "sessions.delete";
pub const SESSIONS_SUBSCRIBE: &str = "sessions.subscribe";
pub const SESSIONS_UNSUBSCRIBE: &str = "sessions.unsubscribe";
pub const RUNS_WAIT: &str = "runs.wait";
pub const AGENTS_LIST: &str = "agents.list";
pub const DAEMON_STATUS: &str = "daemon.status";
pub const DAEMON_SHUTDOWN: &str = "daemon.shutdown";
