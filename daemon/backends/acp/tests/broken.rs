//! Agents broken on purpose: each failure is an error that names the command and carries
//! its stderr, and leaves no process behind.

use std::time::Duration;

use crate::config::AcpPermissions;

use super::super::process::tests::wait_gone;
use super::super::{AcpClient, AcpError, AcpFailure};
use super::{Recorder, agent_dir, node, setup, spec};

async fn start_broken(script: &str, initialize_timeout: Duration) -> Option<AcpError> {
    let node = node()?;
    let dir = tempfile::tempdir().unwrap();
    let command = vec![
        node,
        agent_dir()
            .join("broken")
            .join(script)
            .display()
            .to_string(),
    ];
    let mut s = spec(command, AcpPermissions::ApproveReads);
    s.initialize_timeout = initialize_timeout;
    s.kill_grace = Duration::from_millis(200);
    match AcpClient::start(&s, setup(dir.path()), Recorder::new()).await {
        Ok(_) => panic!("{script} started"),
        Err(e) => Some(e),
    }
}

#[tokio::test]
async fn an_agent_that_exits_at_once() {
    let Some(err) = start_broken("exit-at-once.mjs", Duration::from_secs(30)).await else {
        return;
    };
    assert_eq!(
        err.failure,
        AcpFailure::Exited {
            how: "exited with status 2".into(),
            during: "initialize".into()
        }
    );
    let text = err.to_string();
    assert!(text.contains("broken/exit-at-once.mjs"), "{text}");
    assert!(
        text.ends_with("its stderr ends: exit-at-once: cannot start: no configuration found"),
        "{text}"
    );
}

#[tokio::test]
async fn an_agent_that_prints_garbage() {
    let Some(err) = start_broken("garbage.mjs", Duration::from_secs(30)).await else {
        return;
    };
    assert_eq!(
        err.failure,
        AcpFailure::Garbage {
            excerpt: "Welcome to BrokenAgent 1.0! Type /help for help.".into(),
            during: "initialize".into()
        }
    );
    assert!(err.stderr_tail.contains("garbage: starting up"), "{err}");
}

#[tokio::test]
async fn an_agent_that_never_answers_initialize() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let command = vec![
        node,
        agent_dir().join("broken/silent.mjs").display().to_string(),
    ];
    let mut s = spec(command, AcpPermissions::ApproveReads);
    s.initialize_timeout = Duration::from_millis(1500);
    s.kill_grace = Duration::from_millis(200);
    let err = AcpClient::start(&s, setup(dir.path()), Recorder::new())
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.failure,
        AcpFailure::Timeout {
            method: "initialize".into(),
            ms: 1500
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("did not answer initialize within 1500 ms"),
        "{text}"
    );
    assert!(
        text.contains("silent: ignoring SIGTERM"),
        "it was asked to stop first: {text}"
    );
    // It ignored SIGTERM and stdin EOF; SIGKILL got it.
    let pid = pid_of_silent(dir.path());
    if let Some(pid) = pid {
        wait_gone(pid).await;
    }
}

/// No process is left running `silent.mjs` in this workspace.
fn pid_of_silent(workspace: &std::path::Path) -> Option<i32> {
    let ws = std::fs::canonicalize(workspace).ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (cwd == ws && String::from_utf8_lossy(&cmdline).contains("silent.mjs")).then_some(pid)
        })
}

#[tokio::test]
async fn a_command_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        vec!["/nonexistent/acp-agent".into()],
        AcpPermissions::ApproveReads,
    );
    let err = AcpClient::start(&s, setup(dir.path()), Recorder::new())
        .await
        .err()
        .unwrap();
    assert!(matches!(err.failure, AcpFailure::Spawn(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("ACP agent `/nonexistent/acp-agent` could not be started"),
        "{err}"
    );
}
