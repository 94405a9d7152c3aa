//! Connecting to the daemon, starting it on demand (SPEC §4, contract "Autostart").
//!
//! Start-up is serialised by an exclusive `flock` on `<socket dir>/openclaw.start.lock`, so a
//! burst of cron jobs starts one daemon, not many. Readiness is a pipe: the daemon writes
//! `ready` to it once its socket listens. Nothing here sleeps or polls. The socket is judged
//! before anything is sent (`openclaw::client::trust`), and the daemon is started only in a
//! socket directory this user owns.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use openclaw::ClientError;
use openclaw::client::blocking::{Client, Wait};
use openclaw::client::trust::{Expected, describe_uid};
use openclaw::config::{Config, DefaultAgentSource, OpenAiEnv};
use openclaw::device::{PAIRED_FILE, PairedDaemons};
use openclaw::paths::Paths;
use openclaw::protocol::{HelloParams, methods};

use crate::connection::{Connection, key_dir};
use crate::failure::{Exit, Failure, MAX_SOCKET_PATH, StartHint};
use crate::output::diagnostic;

mod launch;

pub use launch::process_exit_within;

/// The daemon's executable name, looked up next to ours and then on PATH.
pub const DAEMON_NAME: &str = "openclawd";
const LOCK_FILE: &str = "openclaw.start.lock";
/// Where a daemon started on demand writes its output, in the data directory.
pub const LOG_FILE: &str = "openclawd.log";

/// Whether a command may start the daemon when none is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autostart {
    /// Start it on demand (the default).
    Allowed,
    /// The user set OPENCLAW_NO_AUTOSTART.
    DisabledByEnv,
    /// This command only looks (`daemon status`, `daemon stop`).
    Never,
}

impl Autostart {
    pub fn from_env() -> Autostart {
        match std::env::var_os("OPENCLAW_NO_AUTOSTART") {
            Some(v) if is_truthy(&v) => Autostart::DisabledByEnv,
            _ => Autostart::Allowed,
        }
    }
}

/// `1`, `true`, `yes`, ... turn a switch on; empty, `0`, `false`, `no`, `off` leave it off.
pub fn is_truthy(value: &OsStr) -> bool {
    let value = value.to_string_lossy().trim().to_ascii_lowercase();
    !matches!(value.as_str(), "" | "0" | "false" | "no" | "off")
}

/// A connection to the daemon, starting it first when `autostart` allows. Nothing is sent
/// before the socket's directory and the process listening there have been checked (see
/// `openclaw::client::trust`). `notice`: say on stderr where a daemon this call started runs.
pub fn connect(paths: &Paths, autostart: Autostart, notice: bool) -> Result<Connection, Failure> {
    if paths.socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Failure::socket_path_too_long(&paths.socket));
    }
    let expected = expected_daemon(paths)?;
    tracing::info!("connecting to {}", paths.socket.display());
    let started = Instant::now();
    let mut client = match Client::connect_checked(&paths.socket, &expected) {
        Ok(client) => client,
        Err(err) if err.is_unreachable() && autostart == Autostart::Allowed => {
            tracing::info!("no daemon at {}; starting one", paths.socket.display());
            start_and_connect(paths, &expected, notice)?
        }
        Err(err) => return Err(connect_failure(err, autostart)),
    };
    if tracing::enabled!(tracing::Level::INFO)
        && let Ok(peer) = client.peer_credentials()
    {
        tracing::info!(
            "connected in {:.1} ms (daemon pid {}, uid {})",
            started.elapsed().as_secs_f64() * 1000.0,
            peer.pid,
            peer.uid
        );
    }
    present_run_token(&mut client)?;
    Ok(Connection::new(client, paths))
}

/// Whom to accept at the socket: this user or root, and the daemon this device paired with
/// there, if it did.
pub fn expected_daemon(paths: &Paths) -> Result<Expected, Failure> {
    let mut expected = paths.expected_daemon();
    let key_dir = key_dir(paths);
    // Only a device that paired somewhere has the file; the owner's commands read nothing.
    if key_dir.join(PAIRED_FILE).exists() {
        let paired = PairedDaemons::load(&key_dir)
            .map_err(|e| Failure::new(Exit::NotPermitted, e.to_string()))?;
        expected.paired_uid = paired.uid_for(&paths.socket.display().to_string());
    }
    Ok(expected)
}

/// Inside a run (an agent's own command), act as that run's session: the daemon then records
/// what this process spawns as the session's children and limits what it may see.
fn present_run_token(client: &mut Client) -> Result<(), Failure> {
    let Some(token) = std::env::var_os("OPENCLAW_RUN_TOKEN").filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let params = HelloParams {
        client: Some(format!("openclaw {}", openclaw::VERSION)),
        run_token: Some(token.to_string_lossy().into_owned()),
    };
    tracing::info!("presenting this run's token (OPENCLAW_RUN_TOKEN)");
    client.call_value(methods::HELLO, &params, &Wait::FOREVER)?;
    Ok(())
}

fn connect_failure(err: ClientError, autostart: Autostart) -> Failure {
    match err {
        ClientError::Connect { path, source } => {
            let hint = match autostart {
                Autostart::DisabledByEnv => StartHint::AutostartDisabled,
                Autostart::Never => StartHint::Start,
                // Starting was allowed and failed, or this is `daemon start` itself.
                Autostart::Allowed => StartHint::None,
            };
            Failure::unreachable(&path, &source, hint)
        }
        other => other.into(),
    }
}

/// Starts the daemon unless another process does so first, and connects to it.
pub fn start_and_connect(
    paths: &Paths,
    expected: &Expected,
    notice: bool,
) -> Result<Client, Failure> {
    let socket_dir = paths.socket_dir();
    create_private_dir(socket_dir).map_err(|e| {
        start_failure(format!(
            "cannot create the socket directory {}: {e}",
            socket_dir.display()
        ))
    })?;
    check_own_directory(socket_dir, expected.own_uid)?;
    let lock_path = socket_dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| {
            start_failure(format!(
                "cannot open the start-up lock {}: {e}",
                lock_path.display()
            ))
        })?;
    // Blocking is right here: there is nothing else to do until a daemon is up, and the
    // holder of the lock gives it up within the daemon's start-up timeout.
    lock_exclusive(&lock).map_err(|e| {
        start_failure(format!(
            "cannot lock the start-up lock {}: {e}",
            lock_path.display()
        ))
    })?;

    // Whoever held the lock before us may have started the daemon already.
    match Client::connect_checked(&paths.socket, expected) {
        Ok(client) => return Ok(client),
        Err(err) if err.is_unreachable() => {}
        Err(err) => return Err(connect_failure(err, Autostart::Allowed)),
    }
    let started = Instant::now();
    let pid = launch::spawn_daemon(paths)?;
    let client = Client::connect_checked(&paths.socket, expected)
        .map_err(|err| connect_failure(err, Autostart::Allowed))?;
    drop(lock);
    tracing::info!(
        "the daemon (pid {pid}) was ready in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    if notice {
        diagnostic(
            "note",
            &format!(
                "started the openclaw daemon (pid {pid}) on {}; its log is {}",
                paths.socket.display(),
                paths.data_dir.join(LOG_FILE).display()
            ),
        );
    }
    notice_default_agent(paths);
    Ok(client)
}

/// A daemon just started whose default agent the environment gave (SPEC §4): one line on
/// stderr saying which endpoint and model it uses, since nothing in config.toml says so.
/// Also off a terminal: a cron job's mail is where a wrong endpoint would be noticed.
fn notice_default_agent(paths: &Paths) {
    let Ok(config) = Config::load(&paths.config_file) else {
        return;
    };
    let env = OpenAiEnv::from_process();
    let (agent, source) = config.default_agent_from_env(&env);
    if source == DefaultAgentSource::Environment {
        eprintln!(
            "openclaw: agent \"{}\" uses the OpenAI-compatible endpoint {} (from OPENAI_BASE_URL / OPENAI_API_KEY), model {}",
            config.default_agent_id(),
            agent.openai_base_url(&env),
            agent
                .openai_model(&env)
                .unwrap_or_else(|| "the first of GET /models".into())
        );
    }
}

/// The daemon is only ever started in a directory of this user's: in anyone else's, they
/// could replace the socket, and the lock file could not be made anyway.
fn check_own_directory(dir: &Path, own_uid: u32) -> Result<(), Failure> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        start_failure(format!(
            "cannot read the socket directory {}: {e}",
            dir.display()
        ))
    })?;
    if meta.uid() != own_uid {
        return Err(Failure::new(
            Exit::NotPermitted,
            format!(
                "cannot start the daemon: the socket directory {} belongs to {}, not to you ({}); remove it (as its owner or root: `rm -r {}`) or choose another with XDG_RUNTIME_DIR, OPENCLAW_HOME or OPENCLAW_SOCKET",
                dir.display(),
                describe_uid(meta.uid()),
                describe_uid(own_uid),
                dir.display()
            ),
        )
        .with_kind("untrusted_socket"));
    }
    Ok(())
}

/// The daemon executable: `$OPENCLAWD`, else the `openclawd` next to this program, else PATH.
pub fn daemon_binary() -> PathBuf {
    locate_daemon(
        std::env::var_os("OPENCLAWD"),
        std::env::current_exe().ok().as_deref(),
    )
}

fn locate_daemon(override_path: Option<OsString>, current_exe: Option<&Path>) -> PathBuf {
    if let Some(path) = override_path.filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(sibling) = current_exe
        .and_then(Path::parent)
        .map(|dir| dir.join(DAEMON_NAME))
        && sibling.is_file()
    {
        return sibling;
    }
    PathBuf::from(DAEMON_NAME)
}

fn start_failure(message: String) -> Failure {
    Failure::new(Exit::Unreachable, message)
}

/// Creates `dir` and its missing parents with mode 0700; an existing one is left alone (the
/// daemon judges whether it is safe).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock on an fd that `file` keeps open for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthy_values() {
        for v in ["1", "true", "YES", "on"] {
            assert!(is_truthy(OsStr::new(v)), "{v}");
        }
        for v in ["", "0", "false", "No", "off", " "] {
            assert!(!is_truthy(OsStr::new(v)), "{v:?}");
        }
    }

    #[test]
    fn daemon_is_found_by_override_then_sibling_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("openclaw");
        assert_eq!(
            locate_daemon(Some("/opt/x/openclawd".into()), Some(&exe)),
            PathBuf::from("/opt/x/openclawd")
        );
        assert_eq!(locate_daemon(None, Some(&exe)), PathBuf::from("openclawd"));
        std::fs::write(dir.path().join("openclawd"), "").unwrap();
        assert_eq!(
            locate_daemon(Some("".into()), Some(&exe)),
            dir.path().join("openclawd")
        );
        assert_eq!(locate_daemon(None, None), PathBuf::from("openclawd"));
    }
}
