//! The daemon as a library: everything `openclawd` runs, usable in-process by tests and
//! benchmarks. See `daemon/README.md` for the layers and which file holds what.

pub mod auth;
pub mod backends;
pub mod connection;
pub mod engine;
pub mod events;
pub mod rpc;
pub mod server;
pub mod store;
pub mod subscription;
