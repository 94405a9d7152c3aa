//! The wire protocol: JSON-RPC 2.0 over NDJSON, the method names, their params and results,
//! and the application error kinds.

mod domain;
mod errors;
mod events;
mod jsonrpc;
pub mod methods;
mod pairing;
mod tools;
mod types;

pub use domain::{Lane, SessionKind, SessionStatus};
pub use errors::{ErrorKind, RpcError, codes};
pub use events::*;
pub use jsonrpc::{Id, Notification, Request, Response};
pub use pairing::*;
pub use tools::*;
pub use types::*;

/// Bumped when a change to the wire format would break an existing client.
pub const PROTOCOL_VERSION: u32 = 1;
