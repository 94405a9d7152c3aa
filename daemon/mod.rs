//! The daemon as a library: everything `openclawd` runs, usable in-process by tests and
//! benchmarks. `daemon/README.md` draws the layers and says which file holds what:
//! transports (`rpc/`, `http/`) → session service (`service/`, all policy) → engine (`engine/`) →
//! store (`store/`) and backends (`backends/`).

pub mod auth;
pub mod backends;
pub mod children;
pub mod engine;
pub mod events;
pub mod http;
pub mod ids;
pub mod launch;
pub mod log_writer;
pub mod notify;
pub mod rpc;
pub mod server;
pub mod service;
pub mod shared_encoding;
pub mod socket_watch;
pub mod store;
#[cfg(test)]
mod test_support;
