//! Start-up, the listener and shutdown: checks the socket directory, makes sure this is the
//! only daemon for the socket and the data dir, opens the store, listens, accepts with peer
//! credentials, and stops cleanly on SIGTERM/SIGINT or `daemon.shutdown`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::{Config, DefaultAgentSource, LimitsConfig, OpenAiEnv};
use crate::paths::Paths;
use anyhow::{Context, bail};
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::auth::peer_facts;
use crate::daemon::engine::Engine;
use crate::daemon::events::EventBus;
use crate::daemon::http::Protocol;
use crate::daemon::service::{DaemonInfo, PeerFacts, SessionService};
use crate::daemon::store::Store;

/// Runs the daemon until it is asked to stop. `ready` is told once the socket listens.
pub async fn run(
    paths: Paths,
    config: Config,
    default_source: DefaultAgentSource,
    ready: Option<File>,
) -> anyhow::Result<()> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let socket_dir = paths.socket_dir().to_path_buf();
    ensure_private_dir(&socket_dir, euid)?;
    ensure_private_dir(&paths.data_dir, euid)?;
    let _socket_lock = InstanceLock::acquire(&lock_path_for(&paths.socket), &paths.socket)?;
    let _data_lock = InstanceLock::acquire(&paths.data_dir.join("daemon.lock"), &paths.socket)?;

    let bus = EventBus::default();
    let (store, recovery) = Store::open(&paths.data_dir, bus.clone())
        .with_context(|| format!("opening the store in {}", paths.data_dir.display()))?;
    if recovery.interrupted > 0 {
        tracing::warn!(
            runs = recovery.interrupted,
            "runs active when the daemon last stopped are now marked interrupted"
        );
    }
    let config = Arc::new(config);
    let default_id = config.default_agent_id().to_string();
    match default_source {
        DefaultAgentSource::Echo => tracing::info!(
            "agent \"{default_id}\" uses the built-in echo backend; configure a real one in {} ([agents.{default_id}] backend = \"openai\" or \"exec\"), or set OPENAI_BASE_URL",
            paths.config_file.display()
        ),
        DefaultAgentSource::Environment => {
            if let Some(agent) = config.agent(&default_id) {
                let env = OpenAiEnv::from_process();
                tracing::warn!(
                    "agent \"{default_id}\" uses the OpenAI-compatible endpoint {} (from OPENAI_BASE_URL / OPENAI_API_KEY), model {}",
                    agent.openai_base_url(&env),
                    agent
                        .openai_model(&env)
                        .unwrap_or_else(|| "the first of GET /models".into())
                );
            }
        }
        DefaultAgentSource::Configured => {}
    }
    let engine = Engine::new(
        store,
        bus.clone(),
        config.clone(),
        paths.data_dir.clone(),
        paths.socket.clone(),
    );
    engine
        .requeue(recovery.requeue)
        .await
        .context("queueing runs left from the last start")?;

    let mode = config.socket_mode();
    let name = paths.socket.as_path().to_fs_name::<GenericFilePath>()?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(mode)
        .try_overwrite(true) // safe: we hold the instance lock, so any file there is stale
        .create_tokio()
        .with_context(|| format!("listening on {}", paths.socket.display()))?;
    // The umask narrows wider modes at bind time: set the mode the config asked for.
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", paths.socket.display()))?;
    if let Some(group) = &config.socket.group {
        set_group(&paths.socket, group)?;
    }

    let shutdown = CancellationToken::new();
    let daemon = Arc::new(DaemonInfo::new(
        paths.clone(),
        recovery.interrupted,
        shutdown.clone(),
    ));
    let service = SessionService::new(engine.clone(), daemon.clone());
    let (http, http_listener) =
        crate::daemon::http::Http::start(&config.http, service.clone(), shutdown.clone()).await?;
    spawn_signal_handler(shutdown.clone())?;
    tokio::spawn(engine.clone().run_archiver(shutdown.clone()));
    if let Some(mut ready) = ready {
        // The reader only needs to see the line; a parent that went away is no error.
        let _ = ready.write_all(b"ready\n");
    }
    tracing::info!(socket = %paths.socket.display(), "listening");

    let connections = TaskTracker::new();
    if let Some(listener) = http_listener {
        http.serve_tcp(listener, &connections);
    }
    let slots = Arc::new(ConnectionSlots::default());
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok(s) => {
                backoff.reset();
                s
            }
            Err(e) => {
                // Out of descriptors: accepting again at once would fail the same way, in a
                // tight loop. Wait for a connection to close, or a moment.
                let pause = backoff.after(&e);
                tracing::warn!("accept failed: {e}; pausing {pause:?}");
                tokio::select! {
                    _ = slots.released.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
        };
        let peer = peer_of(&stream, euid);
        let limits = engine.config().limits;
        let slot = match slots.admit(peer.uid, &limits) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Told why, then closed; the accept loop does not wait for the peer.
                tokio::spawn(refuse(stream, refusal));
                continue;
            }
        };
        let (service, daemon, stop) = (service.clone(), daemon.clone(), shutdown.clone());
        let http = http.clone();
        daemon.connections.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            // The same socket answers JSON-RPC and HTTP: its first bytes tell which. Another
            // uid must speak within its handshake time, as on JSON-RPC.
            let handshake = (!peer.trusted)
                .then(|| std::time::Duration::from_millis(limits.handshake_timeout_ms));
            match crate::daemon::http::sniff(&stream, handshake, &stop).await {
                Protocol::JsonRpc => {
                    crate::daemon::rpc::connection::serve(
                        stream,
                        service,
                        peer,
                        stop,
                        limits.max_frame_bytes,
                    )
                    .await
                }
                Protocol::Http => http.serve_unix(stream, peer).await,
                Protocol::Closed => {}
            }
            daemon.connections.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    tracing::info!("stopping");
    drop(listener); // removes the socket file: new clients see "not running" at once
    engine.shutdown().await;
    connections.close();
    connections.wait().await;
    Ok(())
}

/// How long the accept loop pauses after a failed accept: growing while it keeps failing.
#[derive(Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    fn after(&mut self, e: &std::io::Error) -> std::time::Duration {
        self.failures = self.failures.saturating_add(1);
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        let base = if exhausted { 10 } else { 1 };
        std::time::Duration::from_millis((base << self.failures.min(7)).min(1000))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Open connections, in total and per uid, within the configured caps.
#[derive(Default)]
struct ConnectionSlots {
    counts: std::sync::Mutex<(u32, std::collections::HashMap<Option<u32>, u32>)>,
    /// Told when a connection closes (a paused accept loop may try again).
    released: tokio::sync::Notify,
}

/// A held connection slot, given back when dropped.
struct Slot {
    slots: Arc<ConnectionSlots>,
    uid: Option<u32>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.0 = counts.0.saturating_sub(1);
        if let Some(n) = counts.1.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.1.remove(&self.uid);
            }
        }
        drop(counts);
        self.slots.released.notify_one();
    }
}

impl ConnectionSlots {
    fn admit(self: &Arc<Self>, uid: Option<u32>, limits: &LimitsConfig) -> Result<Slot, String> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let of_uid = counts.1.get(&uid).copied().unwrap_or(0);
        admission(counts.0, of_uid, uid, limits)?;
        counts.0 += 1;
        *counts.1.entry(uid).or_insert(0) += 1;
        Ok(Slot {
            slots: self.clone(),
            uid,
        })
    }
}

/// The connection caps as a pure function: the refusal, if any, as a sentence.
fn admission(
    total: u32,
    of_uid: u32,
    uid: Option<u32>,
    limits: &LimitsConfig,
) -> Result<(), String> {
    if of_uid >= limits.max_connections_per_uid {
        let who = uid
            .map(|u| format!("uid {u}"))
            .unwrap_or_else(|| "this user".into());
        return Err(format!(
            "{who} already has {of_uid} connections open, the limit ([limits] max_connections_per_uid); close some and retry"
        ));
    }
    if total >= limits.max_connections {
        return Err(format!(
            "the daemon has {total} connections open, its limit ([limits] max_connections); retry shortly"
        ));
    }
    Ok(())
}

async fn refuse(stream: interprocess::local_socket::tokio::Stream, why: String) {
    let reply = crate::protocol::Response::err(
        crate::protocol::Id::Null,
        crate::protocol::RpcError::busy(why, 1000),
    );
    if let Ok(bytes) = serde_json::to_vec(&reply) {
        let mut w: &interprocess::local_socket::tokio::Stream = &stream;
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            crate::frame::write_frame(&mut w, &bytes),
        )
        .await;
    }
}

fn peer_of(stream: &interprocess::local_socket::tokio::Stream, daemon_euid: u32) -> PeerFacts {
    use interprocess::local_socket::traits::StreamCommon;
    match stream.peer_creds() {
        Ok(creds) => peer_facts(creds.euid(), creds.pid().map(|p| p as u32), daemon_euid),
        Err(e) => {
            tracing::warn!("cannot read peer credentials: {e}");
            peer_facts(None, None, daemon_euid)
        }
    }
}

fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = shutdown.cancelled() => return,
        }
        shutdown.cancel();
    });
    Ok(())
}

/// Creates `dir` 0700 if missing; refuses a directory someone else owns or others can write.
fn ensure_private_dir(dir: &Path, euid: u32) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    check_dir_policy(dir, meta.uid(), meta.mode(), euid)
}

/// The directory policy as a pure function, so it is tested without other users.
pub fn check_dir_policy(dir: &Path, owner: u32, mode: u32, euid: u32) -> anyhow::Result<()> {
    if owner != euid {
        bail!(
            "{} belongs to uid {owner}, not to this user (uid {euid}); refusing to use it — choose another directory with OPENCLAW_HOME or OPENCLAW_SOCKET",
            dir.display()
        );
    }
    if mode & 0o022 != 0 {
        bail!(
            "{} can be written by other users (mode {:04o}); refusing to put the socket or data there — run `chmod 700 {}`",
            dir.display(),
            mode & 0o7777,
            dir.display()
        );
    }
    Ok(())
}

fn lock_path_for(socket: &Path) -> PathBuf {
    let mut name = socket
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    socket.with_file_name(name)
}

/// An exclusive `flock` held for the daemon's lifetime; the file records the holder's pid.
struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    fn acquire(path: &Path, socket: &Path) -> anyhow::Result<InstanceLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim();
            let who = if pid.is_empty() {
                String::from("another openclawd")
            } else {
                format!("another openclawd (pid {pid})")
            };
            bail!(
                "{who} is already running for {} (lock {}); stop it with `openclaw daemon stop` or use it as it is",
                socket.display(),
                path.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(InstanceLock { _file: file })
    }
}

fn set_group(path: &Path, group: &str) -> anyhow::Result<()> {
    let c_group = std::ffi::CString::new(group).context("socket.group contains a NUL byte")?;
    // SAFETY: getgrnam with a valid C string; the result is read at once.
    let gr = unsafe { libc::getgrnam(c_group.as_ptr()) };
    if gr.is_null() {
        bail!("socket.group \"{group}\" is not a group on this system");
    }
    // SAFETY: gr is non-null and points to a valid group record.
    let gid = unsafe { (*gr).gr_gid };
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: chown with a valid path; uid -1 leaves the owner as it is.
    if unsafe { libc::chown(c_path.as_ptr(), u32::MAX, gid) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("giving {} to group {group}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_of_the_owner_is_accepted() {
        assert!(check_dir_policy(Path::new("/d"), 1000, 0o40700, 1000).is_ok());
        assert!(check_dir_policy(Path::new("/d"), 1000, 0o40755, 1000).is_ok());
    }

    #[test]
    fn writable_by_others_is_refused_with_the_fix() {
        let err = check_dir_policy(Path::new("/d"), 1000, 0o40777, 1000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 700 /d"), "{err}");
        assert!(check_dir_policy(Path::new("/d"), 1000, 0o40770, 1000).is_err());
    }

    #[test]
    fn someone_elses_dir_is_refused() {
        let err = check_dir_policy(Path::new("/d"), 0, 0o40700, 1000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to uid 0"), "{err}");
    }

    #[test]
    fn connection_caps_per_uid_then_in_total() {
        let limits = LimitsConfig {
            max_connections: 10,
            max_connections_per_uid: 3,
            ..Default::default()
        };
        assert!(admission(0, 0, Some(1000), &limits).is_ok());
        assert!(admission(9, 2, Some(1000), &limits).is_ok());
        let err = admission(5, 3, Some(1000), &limits).unwrap_err();
        assert!(
            err.contains("uid 1000") && err.contains("max_connections_per_uid"),
            "{err}"
        );
        let err = admission(10, 0, Some(1001), &limits).unwrap_err();
        assert!(err.contains("max_connections"), "{err}");
    }

    #[test]
    fn slots_are_given_back() {
        let limits = LimitsConfig {
            max_connections: 10,
            max_connections_per_uid: 1,
            ..Default::default()
        };
        let slots = Arc::new(ConnectionSlots::default());
        let a = slots.admit(Some(1), &limits).unwrap();
        assert!(slots.admit(Some(1), &limits).is_err());
        assert!(
            slots.admit(Some(2), &limits).is_ok(),
            "other uids still get in"
        );
        drop(a);
        assert!(slots.admit(Some(1), &limits).is_ok());
    }

    #[test]
    fn lock_sits_beside_the_socket() {
        assert_eq!(
            lock_path_for(Path::new("/r/openclaw.sock")),
            PathBuf::from("/r/openclaw.sock.lock")
        );
    }
}
