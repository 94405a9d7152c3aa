//! `OPENCLAW_MCP_CONFIG`: the file an `exec` run's agent CLI is pointed at to get openclaw's
//! session tools, in the usual `{"mcpServers": {...}}` shape (Claude Code's `--mcp-config`,
//! and most others). Its `openclaw mcp` server carries the run's token, so its calls act as
//! the run's session. The file is private (0600, in a private directory beside the socket),
//! and removed when the run ends.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Where the files go, under the socket's directory.
const DIR: &str = "runs";

/// A run's MCP config file, deleted when dropped.
#[derive(Debug)]
pub struct RunMcpConfig {
    path: PathBuf,
}

/// What the file says about the run.
pub struct RunIdentity<'a> {
    pub socket: &'a Path,
    pub run_id: &'a str,
    pub run_token: &'a str,
    pub session_key: &'a str,
}

impl RunMcpConfig {
    /// Writes the file for one run.
    pub fn write(run: &RunIdentity<'_>) -> std::io::Result<RunMcpConfig> {
        let dir = run.socket.parent().unwrap_or(Path::new("/")).join(DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let path = dir.join(format!("{}.mcp.json", file_safe(run.run_id)));
        let body = serde_json::to_vec_pretty(&contents(run, &crate::daemon::backends::cli_path()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&body)?;
        Ok(RunMcpConfig { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunMcpConfig {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), "cannot remove a run's MCP config: {e}");
        }
    }
}

/// `{"mcpServers": {"openclaw": {"command", "args": ["mcp"], "env": {...}}}}`.
fn contents(run: &RunIdentity<'_>, openclaw: &str) -> Value {
    json!({
        "mcpServers": {
            "openclaw": {
                "command": openclaw,
                "args": ["mcp"],
                "env": {
                    "OPENCLAW_SOCKET": run.socket.display().to_string(),
                    "OPENCLAW_RUN_TOKEN": run.run_token,
                    "OPENCLAW_SESSION_KEY": run.session_key,
                    "OPENCLAW_NO_AUTOSTART": "1",
                }
            }
        }
    })
}

/// Run ids are uuids; anything else is kept to characters safe in a file name.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_file_is_private_carries_the_token_and_goes_with_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("openclaw.sock");
        let run = RunIdentity {
            socket: &socket,
            run_id: "r-1/../x",
            run_token: "r-1.secret",
            session_key: "agent:main:main",
        };
        let config = RunMcpConfig::write(&run).unwrap();
        let path = config.path().to_path_buf();
        assert_eq!(path.parent().unwrap(), dir.path().join("runs"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let server = &v["mcpServers"]["openclaw"];
        assert_eq!(server["args"], json!(["mcp"]));
        assert_eq!(server["env"]["OPENCLAW_RUN_TOKEN"], "r-1.secret");
        assert_eq!(
            server["env"]["OPENCLAW_SOCKET"],
            socket.display().to_string()
        );
        drop(config);
        assert!(!path.exists(), "removed with the run");
    }
}
