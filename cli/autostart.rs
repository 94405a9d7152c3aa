//! Connecting to the daemon, starting it on demand (SPEC §4, contract "Autostart").
//!
//! Start-up is serialised by an exclusive `flock` on `<socket dir>/openclaw.start.lock`, so a
//! burst of cron jobs starts one daemon, not many. Readiness is a pipe: the daemon writes
//! `ready` to it once its socket listens. Nothing here sleeps or polls.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use openclaw::config::{Config, DefaultAgentSource, OpenAiEnv};
use openclaw::paths::Paths;
use openclaw::protocol::{HelloParams, methods};
use openclaw::{Client, ClientError};

use crate::connection::Connection;
use crate::failure::{Exit, Failure};

/// The daemon's executable name, looked up next to ours and then on PATH.
pub const DAEMON_NAME: &str = "openclawd";
const LOCK_FILE: &str = "openclaw.start.lock";
const LOG_FILE: &str = "openclawd.log";
/// The fd on which the daemon reports readiness (`openclawd --ready-fd 3`).
const READY_FD: i32 = 3;
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon that gave up starting gets to finish writing its log and exit.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How much of the daemon's log to show when it fails to start.
const LOG_TAIL_LINES: usize = 10;
const LOG_TAIL_BYTES: u64 = 64 * 1024;

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

/// A connection to the daemon, starting it first when `autostart` allows.
pub async fn connect(paths: &Paths, autostart: Autostart) -> Result<Connection, Failure> {
    let client = match Client::connect(&paths.socket).await {
        Ok(client) => client,
        Err(err) if err.is_unreachable() && autostart == Autostart::Allowed => {
            tracing::debug!(socket = %paths.socket.display(), "no daemon listening; starting one");
            start_and_connect(paths).await?
        }
        Err(err) => return Err(connect_failure(err, autostart)),
    };
    present_run_token(&client).await?;
    Ok(Connection::new(client, paths))
}

/// Inside a run (an agent's own command), act as that run's session: the daemon then records
/// what this process spawns as the session's children and limits what it may see.
async fn present_run_token(client: &Client) -> Result<(), Failure> {
    let Some(token) = std::env::var_os("OPENCLAW_RUN_TOKEN").filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let params = HelloParams {
        client: Some(format!("openclaw {}", openclaw::VERSION)),
        run_token: Some(token.to_string_lossy().into_owned()),
    };
    client.call_value(methods::HELLO, &params).await?;
    Ok(())
}

fn connect_failure(err: ClientError, autostart: Autostart) -> Failure {
    match err {
        ClientError::Connect { path, source } => {
            Failure::unreachable(&path, &source, autostart == Autostart::DisabledByEnv)
        }
        other => other.into(),
    }
}

/// Starts the daemon unless another process does so first, and connects to it.
pub async fn start_and_connect(paths: &Paths) -> Result<Client, Failure> {
    let socket_dir = paths.socket_dir();
    create_private_dir(socket_dir).map_err(|e| {
        start_failure(format!(
            "cannot create the socket directory {}: {e}",
            socket_dir.display()
        ))
    })?;
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
    // Blocking is right here: this single-threaded runtime has nothing else to do until a
    // daemon is up, and the holder of the lock gives it up within READY_TIMEOUT.
    lock_exclusive(&lock).map_err(|e| {
        start_failure(format!(
            "cannot lock the start-up lock {}: {e}",
            lock_path.display()
        ))
    })?;

    // Whoever held the lock before us may have started the daemon already.
    match Client::connect(&paths.socket).await {
        Ok(client) => return Ok(client),
        Err(err) if err.is_unreachable() => {}
        Err(err) => return Err(connect_failure(err, Autostart::Allowed)),
    }
    spawn_daemon(paths)?;
    let client = Client::connect(&paths.socket)
        .await
        .map_err(|err| connect_failure(err, Autostart::Allowed))?;
    drop(lock);
    notice_default_agent(paths);
    Ok(client)
}

/// A daemon just started whose default agent the environment gave (SPEC §4): one line on
/// stderr saying which endpoint and model it uses, since nothing in config.toml says so.
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

/// Runs `openclawd --ready-fd 3` detached from us (own session, stdin /dev/null, output
/// appended to `<data dir>/openclawd.log`) and blocks until it reports ready or gives up.
fn spawn_daemon(paths: &Paths) -> Result<(), Failure> {
    create_private_dir(&paths.data_dir).map_err(|e| {
        start_failure(format!(
            "cannot create the data directory {}: {e}",
            paths.data_dir.display()
        ))
    })?;
    let log_path = paths.data_dir.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| {
            start_failure(format!(
                "cannot open the daemon log {}: {e}",
                log_path.display()
            ))
        })?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let log_for_stderr = log
        .try_clone()
        .map_err(|e| start_failure(format!("cannot open the daemon log: {e}")))?;
    let (ready_read, ready_write) =
        ready_pipe().map_err(|e| start_failure(format!("cannot create a pipe: {e}")))?;

    let binary = daemon_binary();
    let mut command = Command::new(&binary);
    command
        .arg("--ready-fd")
        .arg(READY_FD.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr);
    let write_fd = ready_write.as_raw_fd();
    // SAFETY: between fork and exec the closure only makes async-signal-safe calls (setsid,
    // fcntl, dup2) on fds that stay open in the child.
    unsafe {
        command.pre_exec(move || {
            // Its own session: the daemon outlives this command and its terminal's hangup.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            let rc = if write_fd == READY_FD {
                // dup2 onto itself would leave close-on-exec set.
                libc::fcntl(READY_FD, libc::F_SETFD, 0)
            } else {
                libc::dup2(write_fd, READY_FD)
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    tracing::debug!(binary = %binary.display(), log = %log_path.display(), "starting the daemon");
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            start_failure(format!(
                "cannot start the daemon: {} not found (looked for OPENCLAWD, then next to this openclaw, then on PATH); install openclawd beside openclaw or set OPENCLAWD to its path",
                binary.display()
            ))
        } else {
            start_failure(format!(
                "cannot start the daemon {}: {e}",
                binary.display()
            ))
        }
    })?;
    // Only the daemon may hold the write end now, so its exit shows up here as end of file.
    drop(ready_write);
    drop(command);

    let readiness = wait_for_ready(ready_read, READY_TIMEOUT)
        .map_err(|e| start_failure(format!("waiting for the daemon to start failed: {e}")))?;
    match readiness {
        Readiness::Ready => Ok(()),
        Readiness::Closed => {
            // The pipe can close before the daemon has written its last words and exited;
            // its log and exit status are only complete once it is gone.
            let how = match exit_status_within(&mut child, EXIT_GRACE) {
                Some(status) => format!("it exited ({status})"),
                None => "it closed its readiness pipe without saying ready".to_string(),
            };
            Err(start_failure(format!(
                "the daemon ({}) failed to start: {how}; {}",
                binary.display(),
                describe_log_tail(&log_path, log_start)
            )))
        }
        Readiness::TimedOut => Err(start_failure(format!(
            "the daemon (pid {}) did not report ready within {} s; it may still be starting: check `openclaw daemon status`, and its log {}",
            child.id(),
            READY_TIMEOUT.as_secs(),
            log_path.display()
        ))),
    }
}

/// The child's exit status, waiting up to `timeout` for it to exit. A pidfd becomes readable
/// when the process exits, so this blocks in poll(2) rather than checking repeatedly.
fn exit_status_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let pidfd = pidfd_open(child.id()).ok()?;
    let mut pollfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for an fd `pidfd` keeps open. An interrupted or failed poll
    // just means we report less.
    unsafe { libc::poll(&mut pollfd, 1, millis) };
    child.try_wait().ok().flatten()
}

/// An fd that becomes readable when process `pid` exits (Linux 5.3+), parent or not.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = i32::try_from(raw).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just created this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The lines the daemon wrote to its log since `start`, for the failure message.
fn describe_log_tail(log_path: &Path, start: u64) -> String {
    match read_log_tail(log_path, start) {
        Ok(lines) if lines.is_empty() => {
            format!("it wrote nothing to its log {}", log_path.display())
        }
        Ok(lines) => format!(
            "its log {} ends with:\n  {}",
            log_path.display(),
            lines.join("\n  ")
        ),
        Err(e) => format!("its log {} cannot be read: {e}", log_path.display()),
    }
}

fn read_log_tail(log_path: &Path, start: u64) -> io::Result<Vec<String>> {
    let mut file = File::open(log_path)?;
    let len = file.metadata()?.len();
    let from = start.max(len.saturating_sub(LOG_TAIL_BYTES));
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(last_lines(&String::from_utf8_lossy(&bytes), LOG_TAIL_LINES))
}

/// The last `n` non-blank lines of `text`.
fn last_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
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

/// A close-on-exec pipe, (read end, write end). The write end is kept above fds 0-2 so that
/// setting up the child's stdio cannot clobber it (this process may run with stdio closed).
fn ready_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((read, above_stdio(write)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on an open fd returns a new fd that we then own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// The daemon wrote `ready`.
    Ready,
    /// End of file without `ready`: the daemon exited or gave up.
    Closed,
    TimedOut,
}

/// Blocks until the daemon writes `ready` to the pipe, closes it, or `timeout` passes.
fn wait_for_ready(pipe: OwnedFd, timeout: Duration) -> io::Result<Readiness> {
    const READY: &[u8] = b"ready";
    let deadline = Instant::now() + timeout;
    let mut pipe = File::from(pipe);
    let mut received = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut pollfd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up so that a sub-millisecond remainder still waits instead of spinning.
        let millis = remaining.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, for an fd `pipe` keeps open.
        let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Ok(Readiness::TimedOut);
        }
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(Readiness::Closed),
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                if received.starts_with(READY) {
                    return Ok(Readiness::Ready);
                }
                if received.len() >= READY.len() || !READY.starts_with(&received) {
                    // Something else entirely; keep reading until the daemon closes the pipe.
                    received.truncate(READY.len());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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

    #[test]
    fn ready_on_the_pipe_means_ready() {
        let (read, write) = ready_pipe().unwrap();
        let mut write = File::from(write);
        write.write_all(b"ready\n").unwrap();
        // The daemon keeps running (write end open): "ready" alone must be enough.
        assert_eq!(
            wait_for_ready(read, Duration::from_secs(5)).unwrap(),
            Readiness::Ready
        );
    }

    #[test]
    fn close_without_ready_is_a_failed_start() {
        let (read, write) = ready_pipe().unwrap();
        let mut write = File::from(write);
        write.write_all(b"rea").unwrap();
        drop(write);
        assert_eq!(
            wait_for_ready(read, Duration::from_secs(5)).unwrap(),
            Readiness::Closed
        );
    }

    #[test]
    fn garbage_then_close_is_a_failed_start() {
        let (read, write) = ready_pipe().unwrap();
        let mut write = File::from(write);
        write.write_all(b"not ready at all, ready\n").unwrap();
        drop(write);
        assert_eq!(
            wait_for_ready(read, Duration::from_secs(5)).unwrap(),
            Readiness::Closed
        );
    }

    #[test]
    fn silence_times_out() {
        let (read, _write) = ready_pipe().unwrap();
        assert_eq!(
            wait_for_ready(read, Duration::from_millis(20)).unwrap(),
            Readiness::TimedOut
        );
    }

    #[test]
    fn exit_status_is_awaited_not_guessed() {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let status = exit_status_within(&mut child, Duration::from_secs(10)).unwrap();
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn log_tail_keeps_the_last_non_blank_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(last_lines("", 3), Vec::<String>::new());
    }

    #[test]
    fn log_tail_reads_only_what_this_start_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("openclawd.log");
        std::fs::write(&log, "old run\n").unwrap();
        let start = std::fs::metadata(&log).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"error: another openclawd (pid 7) is already running\n")
            .unwrap();
        let message = describe_log_tail(&log, start);
        assert!(message.contains("another openclawd"), "{message}");
        assert!(!message.contains("old run"), "{message}");
    }
}
