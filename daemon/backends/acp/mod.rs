//! `acp`: drives an Agent Client Protocol (v1) agent over its stdio, one agent process per
//! session, kept between turns.
//!
//! [`AcpClient::start`] spawns the agent in the session workspace, sends `initialize` and
//! `session/new` (or `session/load`); [`AcpClient::prompt`] runs one turn and reports what the
//! agent streams to an [`AcpHost`] as typed [`AcpEvent`]s. The client answers the agent's own
//! requests: file reads and writes confined to the workspace, and permission requests by the
//! agent's policy. Nothing here knows about the engine: the host trait is the seam.
//!
//! The message types are the official ones (`agent-client-protocol-schema`); the framing and
//! dispatch are ours because the daemon must tell requests from responses itself (both sides
//! number their requests from small integers), bound line length, and treat garbage on stdout
//! as the agent's failure rather than something to log and skip.

mod client;
mod connection;
mod engine;
mod error;
mod events;
mod fs;
mod permission;
mod process;
mod updates;
mod wire;

#[cfg(test)]
mod tests;

pub use agent_client_protocol_schema::v1::{EnvVariable, McpServer, McpServerStdio};
pub use client::{AcpClient, AgentSpec, Resume, SessionSetup, Started, TurnOutcome, TurnResult};
pub use engine::AcpAgent;
pub use error::{AcpError, AcpFailure};
pub use events::{
    AcpEvent, AcpHost, PermissionDecision, PermissionOutcome, PlanItem, ToolCallState, UsageInfo,
};
