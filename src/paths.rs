//! Where the config file, the data directory and the socket live (SPEC §4).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::client::trust::Expected;

pub const SOCKET_FILE: &str = "openclaw.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    /// The socket was named on purpose (`OPENCLAW_SOCKET`), not derived from the other paths:
    /// a client then accepts another user's daemon there for a first pairing (see
    /// [`crate::client::trust`]).
    pub socket_named: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot tell where openclaw's files live: HOME is not set; set HOME or OPENCLAW_HOME")]
    NoHome,
}

/// The environment variables that decide the paths, read once so resolution is a pure function.
#[derive(Debug, Clone, Default)]
pub struct PathEnv {
    pub openclaw_home: Option<PathBuf>,
    pub openclaw_socket: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub uid: u32,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl PathEnv {
    pub fn from_process() -> PathEnv {
        PathEnv {
            openclaw_home: env_path("OPENCLAW_HOME"),
            openclaw_socket: env_path("OPENCLAW_SOCKET"),
            home: env_path("HOME"),
            xdg_config_home: env_path("XDG_CONFIG_HOME"),
            xdg_data_home: env_path("XDG_DATA_HOME"),
            xdg_runtime_dir: env_path("XDG_RUNTIME_DIR"),
            // SAFETY: getuid cannot fail and has no preconditions.
            uid: unsafe { libc::getuid() },
        }
    }
}

impl Paths {
    /// Paths for this process, from its environment.
    pub fn from_env() -> Result<Paths, PathsError> {
        Paths::resolve(&PathEnv::from_process(), default_runtime_dir)
    }

    /// `OPENCLAW_HOME` puts everything under one folder; otherwise the XDG base directories.
    /// Without `XDG_RUNTIME_DIR` (cron, `env -i`), the socket goes where a login session would
    /// have put it, `/run/user/$UID`, when that exists and is ours, so cron and the terminal
    /// reach the same daemon; failing that, `/tmp/openclaw-$UID/`.
    pub fn resolve(
        env: &PathEnv,
        runtime_fallback: impl Fn(u32) -> PathBuf,
    ) -> Result<Paths, PathsError> {
        let mut paths = if let Some(home) = &env.openclaw_home {
            Paths {
                config_file: home.join("config.toml"),
                data_dir: home.join("data"),
                socket: home.join(SOCKET_FILE),
                socket_named: false,
            }
        } else {
            let home = env.home.as_ref().ok_or(PathsError::NoHome)?;
            let config = env
                .xdg_config_home
                .clone()
                .unwrap_or_else(|| home.join(".config"));
            let data = env
                .xdg_data_home
                .clone()
                .unwrap_or_else(|| home.join(".local/share"));
            let runtime = match &env.xdg_runtime_dir {
                Some(dir) => dir.join("openclaw"),
                None => runtime_fallback(env.uid),
            };
            Paths {
                config_file: config.join("openclaw/config.toml"),
                data_dir: data.join("openclaw"),
                socket: runtime.join(SOCKET_FILE),
                socket_named: false,
            }
        };
        if let Some(socket) = &env.openclaw_socket {
            paths.socket = socket.clone();
            paths.socket_named = true;
        }
        Ok(paths)
    }

    pub fn socket_dir(&self) -> &Path {
        self.socket.parent().unwrap_or(Path::new("/"))
    }

    /// Whom a client of this process accepts at the socket, before any pairing is known:
    /// its own uid or root, and another user's daemon only at a socket named on purpose.
    pub fn expected_daemon(&self) -> Expected {
        Expected {
            // SAFETY: geteuid cannot fail and has no preconditions.
            own_uid: unsafe { libc::geteuid() },
            paired_uid: None,
            named: self.socket_named,
        }
    }
}

/// `/run/user/$UID/openclaw` when the login runtime dir exists and is ours, else
/// `/tmp/openclaw-$UID`.
pub fn default_runtime_dir(uid: u32) -> PathBuf {
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    match std::fs::metadata(&run_user) {
        Ok(meta) if meta.is_dir() && meta.uid() == uid => run_user.join("openclaw"),
        _ => PathBuf::from(format!("/tmp/openclaw-{uid}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fallback(uid: u32) -> PathBuf {
        PathBuf::from(format!("/fallback/{uid}"))
    }

    #[test]
    fn openclaw_home_holds_everything() {
        let env = PathEnv {
            openclaw_home: Some("/h".into()),
            uid: 7,
            ..Default::default()
        };
        let p = Paths::resolve(&env, fallback).unwrap();
        assert_eq!(p.config_file, PathBuf::from("/h/config.toml"));
        assert_eq!(p.data_dir, PathBuf::from("/h/data"));
        assert_eq!(p.socket, PathBuf::from("/h/openclaw.sock"));
    }

    #[test]
    fn xdg_dirs_and_socket_override() {
        let env = PathEnv {
            home: Some("/home/u".into()),
            xdg_runtime_dir: Some("/run/user/5".into()),
            uid: 5,
            ..Default::default()
        };
        let p = Paths::resolve(&env, fallback).unwrap();
        assert_eq!(
            p.config_file,
            PathBuf::from("/home/u/.config/openclaw/config.toml")
        );
        assert_eq!(p.data_dir, PathBuf::from("/home/u/.local/share/openclaw"));
        assert_eq!(
            p.socket,
            PathBuf::from("/run/user/5/openclaw/openclaw.sock")
        );

        let env = PathEnv {
            openclaw_socket: Some("/s.sock".into()),
            ..env
        };
        let named = Paths::resolve(&env, fallback).unwrap();
        assert_eq!(named.socket, PathBuf::from("/s.sock"));
        assert!(named.socket_named);
        assert!(!p.socket_named);
    }

    #[test]
    fn no_runtime_dir_uses_the_fallback() {
        let env = PathEnv {
            home: Some("/home/u".into()),
            uid: 9,
            ..Default::default()
        };
        let p = Paths::resolve(&env, fallback).unwrap();
        assert_eq!(p.socket, PathBuf::from("/fallback/9/openclaw.sock"));
    }

    #[test]
    fn no_home_is_a_clear_error() {
        let err = Paths::resolve(&PathEnv::default(), fallback).unwrap_err();
        assert!(err.to_string().contains("OPENCLAW_HOME"));
    }
}
