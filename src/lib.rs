//! openclaw: run AI agent sessions on one host and drive them over a local Unix socket.
//!
//! This library is the wire protocol (method names, params and results, error kinds), the
//! NDJSON framing with its length cap, an async client, and path and config resolution. The
//! `openclaw` CLI and the `openclawd` daemon are both built on it, and other Rust programs can
//! use it as an SDK:
//!
//! ```no_run
//! # async fn demo() -> Result<(), openclaw::ClientError> {
//! use openclaw::protocol::{SpawnParams, SpawnResult, methods};
//!
//! let paths = openclaw::paths::Paths::from_env().expect("HOME or OPENCLAW_HOME is set");
//! let client = openclaw::Client::connect(&paths.socket).await?;
//! let params = SpawnParams { task: "run the daily report".into(), ..Default::default() };
//! let spawned: SpawnResult = client.call(methods::SESSIONS_SPAWN, &params).await?;
//! println!("{}", spawned.session_key);
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod config;
#[cfg(feature = "daemon")]
#[path = "../daemon/mod.rs"]
pub mod daemon;
pub mod device;
pub mod frame;
pub mod mcp;
pub mod paths;
pub mod protocol;
pub mod shell;
pub mod timefmt;
pub mod tools;

pub use client::{Client, ClientError};
pub use protocol::{ErrorKind, RpcError};

/// Version of this package, reported by `hello` and `daemon.status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
