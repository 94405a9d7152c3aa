//! `daemon install-service`: systemd user units for this user's daemon. systemd listens on
//! the socket this openclaw uses and starts the daemon on the first connection, handing it
//! the listening socket (LISTEN_FDS); the daemon reports readiness with sd_notify.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::super::Context;
use crate::autostart::{DAEMON_NAME, daemon_binary};
use crate::failure::{Exit, Failure};
use crate::output::{print_json, write_stdout};

const SERVICE: &str = "openclawd.service";
const SOCKET: &str = "openclawd.socket";
pub const ENABLE: &str =
    "systemctl --user daemon-reload && systemctl --user enable --now openclawd.socket";

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Replace units that exist with other contents
    #[arg(long)]
    pub force: bool,
}

/// What the units are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Units {
    daemon: PathBuf,
    cli: PathBuf,
    /// The socket path as systemd should read it (`%t/...` under the runtime directory).
    socket: String,
    /// `OPENCLAW_HOME`, when this openclaw uses one.
    home: Option<PathBuf>,
}

impl Units {
    fn service(&self) -> String {
        let mut env = format!("Environment=OPENCLAW_SOCKET={}\n", self.socket);
        if let Some(home) = &self.home {
            env.push_str(&format!(
                "Environment=OPENCLAW_HOME={}\n",
                escape(&home.display().to_string())
            ));
        }
        // The reload command is one of openclaw's own: it must not start a daemon.
        env.push_str("Environment=OPENCLAW_NO_AUTOSTART=1\n");
        format!(
            "# Written by `openclaw daemon install-service`.\n\
             [Unit]\n\
             Description=openclaw daemon: AI agent sessions on this host\n\
             Documentation=man:openclawd(8) man:openclaw(1)\n\
             Requires={SOCKET}\n\
             After={SOCKET}\n\
             \n\
             [Service]\n\
             Type=notify\n\
             ExecStart={daemon}\n\
             ExecReload={cli} daemon reload\n\
             {env}\
             Restart=on-failure\n\
             \n\
             [Install]\n\
             WantedBy=default.target\n",
            daemon = escape(&self.daemon.display().to_string()),
            cli = escape(&self.cli.display().to_string()),
        )
    }

    fn socket_unit(&self) -> String {
        format!(
            "# Written by `openclaw daemon install-service`.\n\
             [Unit]\n\
             Description=openclaw daemon socket\n\
             Documentation=man:openclawd(8) man:openclaw(1)\n\
             \n\
             [Socket]\n\
             ListenStream={}\n\
             SocketMode=0600\n\
             DirectoryMode=0700\n\
             \n\
             [Install]\n\
             WantedBy=sockets.target\n",
            self.socket
        )
    }
}

/// `%` starts a specifier in unit files.
fn escape(value: &str) -> String {
    value.replace('%', "%%")
}

pub fn install(ctx: &Context, args: ServiceArgs) -> Result<(), Failure> {
    let paths = ctx.paths()?;
    let units = Units {
        daemon: absolute_binary(&daemon_binary())?,
        cli: std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|e| Failure::failed(format!("cannot tell where this openclaw is: {e}")))?,
        socket: socket_for_systemd(
            &paths.socket,
            std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .as_deref(),
        )?,
        home: std::env::var_os("OPENCLAW_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from),
    };
    let dir = unit_dir()?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    let files = [
        (dir.join(SERVICE), units.service()),
        (dir.join(SOCKET), units.socket_unit()),
    ];
    // Check both before writing either: a half-installed pair is worse than none.
    for (path, text) in &files {
        if let Ok(existing) = std::fs::read_to_string(path)
            && existing != *text
            && !args.force
        {
            return Err(Failure::new(
                Exit::Failed,
                format!(
                    "{} exists with other contents; left alone (run again with --force to replace it)",
                    path.display()
                ),
            ));
        }
    }
    for (path, text) in &files {
        std::fs::write(path, text)
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    }
    if ctx.json {
        return print_json(&json!({
            "service": files[0].0.display().to_string(),
            "socket": files[1].0.display().to_string(),
            "enable": ENABLE,
        }));
    }
    write_stdout(&format!(
        "wrote {}\nwrote {}\nenable them (after `openclaw daemon stop`, if a daemon runs) with:\n  {ENABLE}\n",
        files[0].0.display(),
        files[1].0.display()
    ))
}

/// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
fn unit_dir() -> Result<PathBuf, Failure> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .ok_or_else(|| {
            Failure::failed("cannot tell where systemd user units go: set HOME or XDG_CONFIG_HOME")
        })?;
    Ok(config.join("systemd").join("user"))
}

/// The socket as the unit names it: under the runtime directory through `%t`, which systemd
/// fills in for the user; elsewhere as it is.
fn socket_for_systemd(socket: &Path, runtime_dir: Option<&Path>) -> Result<String, Failure> {
    let text = socket.display().to_string();
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Failure::usage(format!(
            "the socket path {text:?} has white space or control characters, which a unit file cannot hold; choose another with OPENCLAW_SOCKET"
        )));
    }
    if let Some(rest) = runtime_dir
        .filter(|d| d.is_absolute())
        .and_then(|d| socket.strip_prefix(d).ok())
    {
        return Ok(format!("%t/{}", escape(&rest.display().to_string())));
    }
    Ok(escape(&text))
}

/// systemd needs a full path: the daemon as autostart would find it, resolved on PATH.
fn absolute_binary(found: &Path) -> Result<PathBuf, Failure> {
    if found.is_absolute() {
        return Ok(found.to_path_buf());
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(found))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| {
            Failure::new(
                Exit::NotFound,
                format!(
                    "cannot find {DAEMON_NAME}: install it beside openclaw (`cargo install --path .`) or set OPENCLAWD to its full path"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units() -> Units {
        Units {
            daemon: "/home/u/.cargo/bin/openclawd".into(),
            cli: "/home/u/.cargo/bin/openclaw".into(),
            socket: "%t/openclaw/openclaw.sock".into(),
            home: None,
        }
    }

    #[test]
    fn the_service_is_notify_with_reload_and_needs_its_socket() {
        let service = units().service();
        for line in [
            "Type=notify",
            "ExecStart=/home/u/.cargo/bin/openclawd",
            "ExecReload=/home/u/.cargo/bin/openclaw daemon reload",
            "Requires=openclawd.socket",
            "Environment=OPENCLAW_SOCKET=%t/openclaw/openclaw.sock",
            "Environment=OPENCLAW_NO_AUTOSTART=1",
            "WantedBy=default.target",
        ] {
            assert!(
                service.lines().any(|l| l == line),
                "{line} missing:\n{service}"
            );
        }
        assert!(!service.contains("OPENCLAW_HOME"));
        let socket = units().socket_unit();
        assert!(
            socket.contains("\nListenStream=%t/openclaw/openclaw.sock\n"),
            "{socket}"
        );
        assert!(socket.contains("\nSocketMode=0600\n"), "{socket}");
    }

    #[test]
    fn the_socket_is_named_through_the_runtime_dir_when_it_is_under_it() {
        let run = Path::new("/run/user/1000");
        assert_eq!(
            socket_for_systemd(
                Path::new("/run/user/1000/openclaw/openclaw.sock"),
                Some(run)
            )
            .unwrap(),
            "%t/openclaw/openclaw.sock"
        );
        assert_eq!(
            socket_for_systemd(Path::new("/srv/50%/o.sock"), Some(run)).unwrap(),
            "/srv/50%%/o.sock"
        );
        assert!(socket_for_systemd(Path::new("/a b/o.sock"), None).is_err());
    }
}
