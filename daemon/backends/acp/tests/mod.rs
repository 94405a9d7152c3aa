//! Tests of the ACP client as a whole: against frames a real agent wrote, against an agent
//! built on the official TypeScript SDK, and against agents broken on purpose.

mod broken;
mod frames;
mod real_agent;
mod sdk_agent;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::AcpPermissions;

use super::events::{AcpEvent, AcpHost};
use super::{AcpClient, AgentSpec, SessionSetup};

/// Collects what a host hears.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<AcpEvent>>,
}

impl AcpHost for Recorder {
    fn event(&self, event: AcpEvent) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    pub fn events(&self) -> Vec<AcpEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn deltas(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                AcpEvent::AssistantDelta { text } => Some(text),
                _ => None,
            })
            .collect()
    }

    /// Waits until `pred` holds for the events so far, failing after a deadline.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[AcpEvent]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if pred(&self.events()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never saw {what}: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub fn agent_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acp-agent")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/acp")
        .join(name)
}

/// `node` is how every test agent runs; CI has Node 20.
pub fn node() -> Option<String> {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: `node` is not installed (the ACP test agents run on Node 20)");
    }
    found.then(|| "node".to_string())
}

/// The SDK agent's command, or `None` (the test is skipped, saying why) when its packages
/// are not installed.
pub fn sdk_agent(extra: &[&str]) -> Option<Vec<String>> {
    let node = node()?;
    if !agent_dir()
        .join("node_modules/@agentclientprotocol/sdk")
        .is_dir()
    {
        eprintln!(
            "skipping: the SDK test agent is not installed; run `npm ci` in {}",
            agent_dir().display()
        );
        return None;
    }
    let mut cmd = vec![node, agent_dir().join("agent.mjs").display().to_string()];
    cmd.extend(extra.iter().map(|s| s.to_string()));
    Some(cmd)
}

pub fn spec(command: Vec<String>, permissions: AcpPermissions) -> AgentSpec {
    AgentSpec {
        command,
        env: BTreeMap::new(),
        permissions,
        initialize_timeout: Duration::from_secs(30),
        kill_grace: Duration::from_millis(500),
    }
}

pub fn setup(workspace: &Path) -> SessionSetup {
    SessionSetup {
        workspace: workspace.to_path_buf(),
        ..SessionSetup::default()
    }
}

/// A client on the SDK agent in a fresh workspace (returned with it).
pub async fn start_sdk(
    permissions: AcpPermissions,
) -> Option<(AcpClient, tempfile::TempDir, Arc<Recorder>)> {
    let command = sdk_agent(&[])?;
    let dir = tempfile::tempdir().unwrap();
    let host = Recorder::new();
    let client = AcpClient::start(&spec(command, permissions), setup(dir.path()), host.clone())
        .await
        .unwrap_or_else(|e| panic!("the SDK agent did not start: {e}"));
    Some((client, dir, host))
}
