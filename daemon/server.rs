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

use crate::config::{Config, DefaultAgentSource, LimitsConfig};
use crate::paths::Paths;
use anyhow::{Context, bail};
use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::auth::peer_facts;
use crate::daemon::engine::Engine;
use crate::daemon::events::EventBus;
use crate::daemon::http::Protocol;
use crate::daemon::launch::Launch;
use crate::daemon::service::{DaemonInfo, PeerFacts, SessionService};
use crate::daemon::store::Store;

/// Runs the daemon until it is asked to stop. Whoever started it (`launch`) is told once the
/// socket listens.
pub async fn run(
    paths: Paths,
    config: Config,
    default_source: DefaultAgentSource,
    mut launch: Launch,
) -> anyhow::Result<()> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let socket_dir = paths.socket_dir().to_path_buf();
    ensure_private_dir(&socket_dir, euid)?;
    ensure_private_dir(&paths.data_dir, euid)?;
    tighten(&paths.data_dir)?;
    let _socket_lock = InstanceLock::acquire(&lock_path_for(&paths.socket), &paths.socket)?;
    let _data_lock = InstanceLock::acquire(&paths.data_dir.join("daemon.lock"), &paths.socket)?;

    // Orphans come back to us; and what a previous daemon of this socket left running (we
    // hold its locks now) is stopped before anything runs.
    crate::daemon::children::become_subreaper();
    let bus = EventBus::default();
    let (store, recovery) = open_store_killing_leftovers(&paths, bus.clone())
        .with_context(|| format!("opening the store in {}", paths.data_dir.display()))?;
    if recovery.interrupted > 0 {
        tracing::warn!(
            runs = recovery.interrupted,
            "runs active when the daemon last stopped are now marked interrupted"
        );
    }
    store
        .resume_purges()
        .await
        .context("finishing the deletes of the last start")?;
    let config = Arc::new(config);
    let default_id = config.default_agent_id().to_string();
    match default_source {
        DefaultAgentSource::Echo => tracing::info!(
            "agent \"{default_id}\" uses the built-in echo backend; configure a real one in {} ([agents.{default_id}] backend = \"openai\" or \"exec\"), or set OPENAI_BASE_URL",
            paths.config_file.display()
        ),
        DefaultAgentSource::Environment => {
            if let Some(agent) = config.agent(&default_id) {
                let env = config.openai_env();
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

    let mut listener = match launch.activated.take() {
        // systemd made the socket (its path, mode and group are the .socket unit's) and keeps
        // it: it stays in place when we stop, so the next connection starts us again.
        Some(fd) => activated_listener(fd, &paths.socket)?,
        None => bind_listener(&paths.socket, &config)?,
    };

    let shutdown = CancellationToken::new();
    let mut info = DaemonInfo::new(paths.clone(), recovery.interrupted, shutdown.clone());
    info.started_by = Some(launch.started_by.as_str().to_string());
    info.log_file = launch
        .log_file
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let daemon = Arc::new(info);
    let service = SessionService::new(engine.clone(), daemon.clone());
    let (http, http_listener) =
        crate::daemon::http::Http::start(&config.http, service.clone(), shutdown.clone()).await?;
    spawn_signal_handler(shutdown.clone())?;
    spawn_reload_on_hangup(service.clone(), shutdown.clone())?;
    tokio::spawn(engine.clone().run_archiver(shutdown.clone()));
    // Watched before anyone is told the socket is there, so no deletion goes unseen.
    let socket_gone = crate::daemon::socket_watch::watch(&paths.socket).unwrap_or_else(|e| {
        tracing::warn!(
            "cannot watch {} for deletion ({e}); a deleted socket will not be made again",
            paths.socket.display()
        );
        Arc::new(tokio::sync::Notify::new())
    });
    launch.tell_ready();
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
            _ = socket_gone.notified() => {
                if !paths.socket.exists() {
                    listener = rebind(listener, &paths.socket, &config);
                }
                continue;
            }
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
        let slot = match slots.admit(peer.uid, peer.trusted, &limits) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Told why, then closed; the accept loop does not wait for the peer.
                tokio::spawn(refuse(stream, refusal));
                continue;
            }
        };
        // Another user's connection counts against its uid's unauthenticated cap from its
        // first moment, before it says which protocol it speaks: a silent connection must
        // not hold a place the cap would refuse.
        let pass = match service.admit_connection(peer) {
            Ok(pass) => pass,
            Err(refusal) => {
                tokio::spawn(refuse(stream, refusal.to_string()));
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
                        pass,
                        stop,
                        limits.max_frame_bytes,
                    )
                    .await
                }
                // HTTP on the socket never authenticates (another uid stays a stranger), so
                // its place is held for the whole connection.
                Protocol::Http => {
                    http.serve_unix(stream, peer).await;
                    drop(pass);
                }
                Protocol::Closed => {}
            }
            daemon.connections.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    tracing::info!("stopping");
    crate::daemon::launch::tell_stopping();
    drop(listener); // removes the socket file: new clients see "not running" at once
    engine.shutdown().await;
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Opens the store while another thread finds and kills what a previous daemon of this
/// socket left running; the store waits for that list only to repair the runs it names.
/// The sweep reads the environment of every process on the host (5-7 µs each on a VM), while
/// the open builds or checks the store: with 568 processes, overlapping them took 2.3-3.2 ms
/// off a fresh home's start to ready (BENCHMARKS.md).
fn open_store_killing_leftovers(
    paths: &Paths,
    bus: EventBus,
) -> Result<(Store, crate::daemon::store::Recovery), crate::daemon::store::StoreError> {
    let socket = paths.socket.clone();
    let sweep = move || crate::daemon::children::kill_leftovers(&socket);
    std::thread::scope(|scope| {
        let swept = std::thread::Builder::new()
            .name("leftovers".into())
            .spawn_scoped(scope, sweep.clone());
        match swept {
            Ok(handle) => Store::open(&paths.data_dir, bus, || {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
            // No thread to spare: the sweep runs first, as it must finish before recovery.
            Err(_) => Store::open(&paths.data_dir, bus, sweep),
        }
    })
}

/// The socket file was deleted under us: bind the path again, so clients reach this daemon
/// instead of starting another. The old listener must not remove the new file as it goes.
fn rebind(mut old: Listener, socket: &Path, config: &Config) -> Listener {
    match bind_listener(socket, config) {
        Ok(new) => {
            old.do_not_reclaim_name_on_drop();
            tracing::warn!(
                "{} was deleted while the daemon ran; listening there again",
                socket.display()
            );
            new
        }
        Err(e) => {
            tracing::warn!(
                "{} was deleted and cannot be made again ({e:#}); restart the daemon with `openclaw daemon restart`",
                socket.display()
            );
            old
        }
    }
}

/// Binds the socket at `socket` with the mode and group the config asks for.
fn bind_listener(socket: &Path, config: &Config) -> anyhow::Result<Listener> {
    let mode = config.socket_mode();
    let name = socket.to_fs_name::<GenericFilePath>()?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(mode)
        .try_overwrite(true) // safe: we hold the instance lock, so any file there is stale
        .create_tokio()
        .with_context(|| format!("listening on {}", socket.display()))?;
    // The umask narrows wider modes at bind time: set the mode the config asked for.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", socket.display()))?;
    if let Some(group) = &config.socket.group {
        set_group(socket, group)?;
    }
    Ok(listener)
}

/// The socket systemd bound for us. Clients find the daemon by `socket`, so a unit listening
/// elsewhere is named in the log: that mismatch is why "not running" would follow.
fn activated_listener(fd: std::os::fd::OwnedFd, socket: &Path) -> anyhow::Result<Listener> {
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    if let Ok(addr) = std_listener.local_addr()
        && let Some(bound) = addr.as_pathname()
        && bound != socket
    {
        tracing::warn!(
            "systemd passed a socket bound at {} but clients look for {}; make ListenStream= in openclawd.socket and OPENCLAW_SOCKET agree",
            bound.display(),
            socket.display()
        );
    }
    std_listener
        .set_nonblocking(true)
        .context("making the passed socket non-blocking")?;
    let uds = interprocess::os::unix::uds_local_socket::tokio::Listener::try_from(
        std::os::fd::OwnedFd::from(std_listener),
    )
    .context("taking the socket systemd passed")?;
    Ok(Listener::from(uds))
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
    fn admit(
        self: &Arc<Self>,
        uid: Option<u32>,
        trusted: bool,
        limits: &LimitsConfig,
    ) -> Result<Slot, String> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let of_uid = counts.1.get(&uid).copied().unwrap_or(0);
        admission(counts.0, of_uid, uid, limits)?;
        if !trusted {
            crate::daemon::service::strangers::reserve_admission(counts.0, limits)?;
        }
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

/// SIGHUP reads config.toml again, as `openclaw daemon reload` does (it used to kill the
/// daemon without a word).
fn spawn_reload_on_hangup(
    service: Arc<SessionService>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                _ = shutdown.cancelled() => return,
            }
            match service.reload(&crate::daemon::service::Caller::Operator) {
                Ok(r) if r.changed.is_empty() => {
                    tracing::info!("SIGHUP: config.toml reloaded, nothing changed")
                }
                Ok(r) => tracing::warn!("SIGHUP: config.toml reloaded: {}", r.changed.join("; ")),
                Err(e) => tracing::error!("SIGHUP: {e}"),
            }
        }
    });
    Ok(())
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

/// The data directory holds every transcript and workspace: only its owner may enter it. A
/// wider one (made by hand, or by an older version) is narrowed, saying so.
fn tighten(dir: &Path) -> anyhow::Result<()> {
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (chmod 700)", dir.display()))?;
        tracing::warn!(
            "{} was open to other users (mode {:04o}); it is now 0700: transcripts and workspaces are private",
            dir.display(),
            mode & 0o7777
        );
    }
    Ok(())
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
            bail!("{}", held_by(&holder, path, socket));
        }
        file.set_len(0)?;
        file.rewind()?;
        // Who holds it and which socket it serves: the refusal of a second daemon names the
        // socket clients reach the running one at, which need not be the one asked for.
        writeln!(file, "{}\n{}", std::process::id(), socket.display())?;
        Ok(InstanceLock { _file: file })
    }
}

/// Why a second daemon cannot start, from what the holder wrote in the lock (`pid`, then the
/// socket it serves; older daemons wrote only the pid).
fn held_by(holder: &str, lock: &Path, asked: &Path) -> String {
    let mut lines = holder.lines().map(str::trim).filter(|l| !l.is_empty());
    let who = match lines.next() {
        Some(pid) => format!("another openclawd (pid {pid})"),
        None => "another openclawd".to_string(),
    };
    let serving = lines.next().map(PathBuf::from);
    match serving {
        Some(running) if running != asked => format!(
            "{who} is already running with this data directory (lock {}), serving {}; use that socket (OPENCLAW_SOCKET={}) or stop that daemon first",
            lock.display(),
            running.display(),
            running.display()
        ),
        _ => format!(
            "{who} is already running for {} (lock {}); stop it with `openclaw daemon stop` or use it as it is",
            asked.display(),
            lock.display()
        ),
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
        let a = slots.admit(Some(1), true, &limits).unwrap();
        assert!(slots.admit(Some(1), true, &limits).is_err());
        assert!(
            slots.admit(Some(2), true, &limits).is_ok(),
            "other uids still get in"
        );
        drop(a);
        assert!(slots.admit(Some(1), true, &limits).is_ok());
    }

    #[test]
    fn the_last_slots_are_kept_for_trusted_peers() {
        let limits = LimitsConfig {
            max_connections: 4,
            reserved_connections: 2,
            ..Default::default()
        };
        let slots = Arc::new(ConnectionSlots::default());
        let _held: Vec<Slot> = (0..2)
            .map(|_| slots.admit(Some(7), false, &limits).unwrap())
            .collect();
        let err = slots.admit(Some(8), false, &limits).err().expect("refused");
        assert!(err.contains("kept for its owner"), "{err}");
        let _owner = slots.admit(Some(0), true, &limits).unwrap();
        let _owner_again = slots.admit(Some(0), true, &limits).unwrap();
        assert!(
            slots.admit(Some(0), true, &limits).is_err(),
            "the total cap"
        );
    }

    #[test]
    fn a_held_lock_names_the_socket_the_running_daemon_serves() {
        let lock = Path::new("/d/daemon.lock");
        let other = held_by("41\n/r/a.sock\n", lock, Path::new("/r/b.sock"));
        assert!(other.contains("pid 41"), "{other}");
        assert!(other.contains("serving /r/a.sock"), "{other}");
        assert!(other.contains("OPENCLAW_SOCKET=/r/a.sock"), "{other}");
        let same = held_by("41\n/r/a.sock\n", lock, Path::new("/r/a.sock"));
        assert!(same.contains("already running for /r/a.sock"), "{same}");
        let old = held_by("41\n", lock, Path::new("/r/a.sock"));
        assert!(old.contains("pid 41") && old.contains("/r/a.sock"), "{old}");
        let empty = held_by("", lock, Path::new("/r/a.sock"));
        assert!(empty.starts_with("another openclawd is"), "{empty}");
    }

    #[test]
    fn lock_sits_beside_the_socket() {
        assert_eq!(
            lock_path_for(Path::new("/r/openclaw.sock")),
            PathBuf::from("/r/openclaw.sock.lock")
        );
    }
}
