//! How this daemon was started and what it was handed: a readiness pipe from the `openclaw`
//! command that started it, a listening socket from systemd (socket activation,
//! `LISTEN_FDS`), stderr open on a log file. `daemon status` reports it; readiness, reloads and
//! the stop are told to whoever waits for them (the pipe, systemd's `NOTIFY_SOCKET`).

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::bail;

/// Who started the daemon, as `daemon status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    /// An `openclaw` command, on demand (`--started-by autostart`).
    Autostart,
    /// By hand or `openclaw daemon run`, in the foreground.
    Foreground,
    /// systemd (a passed socket or a `NOTIFY_SOCKET`).
    Systemd,
}

impl StartedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            StartedBy::Autostart => "autostart",
            StartedBy::Foreground => "foreground",
            StartedBy::Systemd => "systemd",
        }
    }

    pub fn parse(s: &str) -> Option<StartedBy> {
        match s {
            "autostart" => Some(StartedBy::Autostart),
            "foreground" => Some(StartedBy::Foreground),
            "systemd" => Some(StartedBy::Systemd),
            _ => None,
        }
    }
}

/// What the process was handed at start.
#[derive(Debug)]
pub struct Launch {
    /// Told "ready" once the socket listens (`--ready-fd`).
    pub ready: Option<File>,
    /// The listening socket systemd passed (fd 3 of `LISTEN_FDS`).
    pub activated: Option<OwnedFd>,
    pub started_by: StartedBy,
    /// The file stderr is open on, when it is a regular file: where the log goes.
    pub log_file: Option<PathBuf>,
}

impl Launch {
    /// Reads what the process was handed. Call it before any other thread exists: the
    /// `LISTEN_*` variables are removed from the environment, so no agent sees them.
    pub fn from_process(ready_fd: Option<i32>, said: Option<StartedBy>) -> anyhow::Result<Launch> {
        let ready = match ready_fd {
            Some(fd) => Some(take_ready_fd(fd)?),
            None => None,
        };
        // SAFETY: called from main before the runtime (or any other thread) starts.
        let fds: Vec<i32> = unsafe { sd_notify::listen_fds_and_unset_env() }
            .map_err(|e| {
                anyhow::anyhow!("the socket systemd passed (LISTEN_FDS) is unusable: {e}")
            })?
            .collect();
        let activated = match fds.as_slice() {
            [] => None,
            [fd] => {
                if !is_listening_unix_socket(*fd) {
                    bail!(
                        "systemd passed fd {fd} (LISTEN_FDS), which is not a listening Unix stream socket; give openclawd.socket a ListenStream= path"
                    );
                }
                // SAFETY: systemd handed this descriptor to us alone; nothing else owns it.
                Some(unsafe { OwnedFd::from_raw_fd(*fd) })
            }
            more => bail!(
                "systemd passed {} sockets (LISTEN_FDS); openclawd listens on one: keep a single ListenStream= in openclawd.socket",
                more.len()
            ),
        };
        let started_by = said.unwrap_or(
            if activated.is_some() || std::env::var_os("NOTIFY_SOCKET").is_some() {
                StartedBy::Systemd
            } else {
                StartedBy::Foreground
            },
        );
        Ok(Launch {
            ready,
            activated,
            started_by,
            log_file: stderr_log_file(),
        })
    }

    /// The socket listens: whoever waits for that is told, once.
    pub fn tell_ready(&mut self) {
        if let Some(mut ready) = self.ready.take() {
            // The reader only needs to see the line; a parent that went away is no error.
            let _ = ready.write_all(b"ready\n");
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// Tells systemd (when it started us) that the configuration is being read again.
pub fn tell_reloading() {
    notify(&[sd_notify::NotifyState::Reloading]);
}

/// Tells systemd the daemon serves again after a reload.
pub fn tell_reloaded() {
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping, so it does not take the stop for a crash.
pub fn tell_stopping() {
    notify(&[sd_notify::NotifyState::Stopping]);
}

fn notify(state: &[sd_notify::NotifyState]) {
    // Nothing to tell without a NOTIFY_SOCKET; a manager that went away is no reason to stop.
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot tell systemd ({state:?}): {e}");
    }
}

/// Takes ownership of an inherited descriptor after checking that it is open.
fn take_ready_fd(fd: i32) -> anyhow::Result<File> {
    // SAFETY: F_GETFD only inspects the descriptor table.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        bail!("--ready-fd {fd} is not an open file descriptor (3 or above) of this process");
    }
    // SAFETY: the descriptor is open and nothing else in this process owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: setting FD_CLOEXEC on our own descriptor, so agents never inherit it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(file)
}

fn is_listening_unix_socket(fd: i32) -> bool {
    let int_opt = |opt: libc::c_int| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    };
    int_opt(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && int_opt(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && int_opt(libc::SO_ACCEPTCONN) == Some(1)
}

/// Where stderr goes when it is a file (a daemon started by `openclaw` logs to
/// `data/openclawd.log`); a terminal, pipe or journal is no file to show.
fn stderr_log_file() -> Option<PathBuf> {
    if !std::fs::metadata("/proc/self/fd/2").ok()?.is_file() {
        return None;
    }
    std::fs::read_link("/proc/self/fd/2").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_by_names_round_trip() {
        for by in [
            StartedBy::Autostart,
            StartedBy::Foreground,
            StartedBy::Systemd,
        ] {
            assert_eq!(StartedBy::parse(by.as_str()), Some(by));
        }
        assert_eq!(StartedBy::parse("cron"), None);
    }

    #[test]
    fn only_a_listening_unix_stream_socket_is_taken() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("s")).expect("bind");
        assert!(is_listening_unix_socket(listener.as_raw_fd()));
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert!(!is_listening_unix_socket(a.as_raw_fd()));
        let file = File::open("/dev/null").expect("open");
        assert!(!is_listening_unix_socket(file.as_raw_fd()));
    }
}
