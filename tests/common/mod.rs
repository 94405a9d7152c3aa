//! Shared harness for the end-to-end tests: a real `openclawd` in a temp `OPENCLAW_HOME`,
//! driven through the real `openclaw` binary or a raw socket client.
#![allow(dead_code)]

pub mod cli;
pub mod mcp;
pub mod openai_server;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const OPENCLAW: &str = env!("CARGO_BIN_EXE_openclaw");
pub const OPENCLAWD: &str = env!("CARGO_BIN_EXE_openclawd");

/// A pipe whose write end is handed to a child as fd 3.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array; the fds returned are owned by us from here on.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2 failed");
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Makes `fd` the child's fd 3 (where `openclawd --ready-fd 3` reports it is listening, or
/// systemd passes a socket), inherited across exec. An `fd` that already is 3 only has its
/// close-on-exec flag cleared: `dup2(3, 3)` would leave it set. The caller keeps `fd` open
/// until the child is spawned.
pub fn pass_as_fd_3(cmd: &mut Command, fd: RawFd) {
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A daemon owned by one test: its own home, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    pub home: tempfile::TempDir,
    pub child: Option<Child>,
    /// Variables set in the daemon's environment (besides the test's own, minus OPENAI_*).
    pub env: Vec<(String, String)>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with_config("")
    }

    pub fn start_with_config(config: &str) -> Daemon {
        let home = tempfile::Builder::new()
            .prefix("openclaw-test-")
            .tempdir()
            .expect("tempdir");
        Daemon::start_in(home, config)
    }

    /// A daemon whose `OPENCLAW_HOME` is `home` (e.g. a small tmpfs mounted there).
    pub fn start_in(home: tempfile::TempDir, config: &str) -> Daemon {
        Daemon::start_in_with_env(home, config, &[])
    }

    /// A daemon started with these variables in its environment.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        let home = tempfile::Builder::new()
            .prefix("openclaw-test-")
            .tempdir()
            .expect("tempdir");
        Daemon::start_in_with_env(home, config, env)
    }

    pub fn start_in_with_env(
        home: tempfile::TempDir,
        config: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        std::fs::write(home.path().join("config.toml"), config).expect("write config");
        let mut d = Daemon {
            home,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        d.spawn_daemon().expect("daemon failed to start");
        d
    }

    pub fn home_path(&self) -> &Path {
        self.home.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.home.path().join("openclaw.sock")
    }

    pub fn db_path(&self) -> PathBuf {
        self.home.path().join("data").join("openclaw.db")
    }

    pub fn log_path(&self) -> PathBuf {
        self.home.path().join("daemon.log")
    }

    /// Starts `openclawd` and waits for it to say it is listening (a pipe, never a sleep).
    /// On failure returns what the daemon printed.
    pub fn spawn_daemon(&mut self) -> Result<(), String> {
        self.spawn_daemon_with_env(&[])
    }

    /// Like [`Daemon::spawn_daemon`], with these variables added to the daemon's environment.
    pub fn spawn_daemon_with_env(&mut self, env: &[(&str, &str)]) -> Result<(), String> {
        let (ready_r, ready_w) = pipe();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open daemon log");
        let mut cmd = Command::new(OPENCLAWD);
        cmd.args(["--ready-fd", "3"])
            .env("OPENCLAW_HOME", self.home.path())
            .env_remove("OPENCLAW_SOCKET")
            .env_remove("XDG_RUNTIME_DIR")
            // An endpoint in the test's own environment would change the default agent.
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_MODEL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        pass_as_fd_3(&mut cmd, ready_w.as_raw_fd());
        let child = cmd.spawn().map_err(|e| format!("spawn openclawd: {e}"))?;
        drop(ready_w);
        let mut buf = String::new();
        let mut reader = std::fs::File::from(ready_r);
        let _ = reader.read_to_string(&mut buf);
        self.child = Some(child);
        if buf.starts_with("ready") {
            Ok(())
        } else {
            let status = self.child.as_mut().and_then(|c| c.wait().ok());
            self.child = None;
            Err(format!(
                "openclawd did not become ready (exit {status:?}); log:\n{}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            ))
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// `kill -9` the daemon and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        wait_child(&mut c, Duration::from_secs(10))
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_daemon().expect("daemon failed to restart");
    }

    /// An `openclaw` command bound to this daemon, with a cron-like clean environment and no
    /// autostart (so a dead daemon shows up as exit 3 rather than a fresh one).
    pub fn cli(&self) -> Command {
        self.cli_program(Path::new(OPENCLAW))
    }

    /// [`Daemon::cli`] with another build of `openclaw` (the benchmark's static one).
    pub fn cli_program(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("OPENCLAW_HOME", self.home.path())
            .env("OPENCLAW_NO_AUTOSTART", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `openclaw ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().expect("run openclaw")
    }

    /// Runs `openclaw ARGS...`, asserts exit 0, returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "openclaw {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Runs `openclaw ARGS... --json` and parses stdout.
    /// The keys `openclaw sessions list --json` shows.
    pub fn listed_keys(&self) -> Vec<String> {
        let listed = self.json(&["sessions", "list"]);
        listed["sessions"]
            .as_array()
            .unwrap_or_else(|| panic!("a sessions array: {listed}"))
            .iter()
            .filter_map(|s| s["key"].as_str().map(str::to_string))
            .collect()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}\n{out}"))
    }

    /// An async raw client on this daemon's socket.
    pub async fn client(&self) -> openclaw::Client {
        openclaw::Client::connect(&self.socket())
            .await
            .expect("connect")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            if wait_child(&mut c, Duration::from_secs(5)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Waits for a child to exit, up to a deadline, then SIGKILLs it. `waitpid` blocks in a helper
/// thread, so nothing polls.
pub fn wait_child(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: waitpid on our own child's pid with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = tx.send((rc, status));
    });
    let got = match rx.recv_timeout(deadline) {
        Ok(r) => Some(r),
        Err(_) => {
            // SAFETY: plain kill(2) on the pid of a child we spawned.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rx.recv_timeout(Duration::from_secs(5));
            None
        }
    };
    match got {
        Some((rc, status)) if rc == pid => Some(std::process::ExitStatus::from_raw(status)),
        _ => None,
    }
}

/// A small tmpfs mounted on a fresh temp dir (root only), unmounted when dropped: a disk that
/// fills up on purpose.
pub struct Tmpfs {
    pub dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Tmpfs {
    /// `None`, with the reason, where mounting is not possible.
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("openclaw-tmpfs-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let path = dir.path().to_path_buf();
        Ok(Tmpfs {
            dir: Some(dir),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes zeros into `name` until the device is full; returns the bytes written.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join(name)).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        // The last partial blocks, byte by byte in small writes.
        while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {
            written += 512;
        }
        let _ = f.sync_all();
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        drop(self.dir.take());
        // When a daemon took the dir, it removed what it could while the mount was there.
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A point in time `secs` from now, for loops that wait on a condition with a deadline.
pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// A FIFO in a temp dir, for exec agents that block until the test releases them.
pub fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
    path
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

// ---------------------------------------------------------------- raw socket, /proc, FIFOs

/// A blocking NDJSON connection to the daemon's socket, for raw JSON-RPC tests. Reads and writes
/// have a timeout: a safety net so a missing reply fails the test instead of hanging it.
pub struct RawConn {
    pub stream: std::os::unix::net::UnixStream,
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
}

impl RawConn {
    pub const TIMEOUT: Duration = Duration::from_secs(20);

    pub fn connect(socket: &Path) -> RawConn {
        let stream = std::os::unix::net::UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        stream
            .set_read_timeout(Some(Self::TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Self::TIMEOUT))
            .expect("write timeout");
        let reader = std::io::BufReader::new(stream.try_clone().expect("clone stream"));
        RawConn { stream, reader }
    }

    /// Writes bytes exactly as given (no newline added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).expect("write to daemon");
    }

    /// Writes one line (a newline is appended).
    pub fn send_line(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.send_raw(&bytes);
    }

    /// The next line from the daemon without its newline; `None` at end of stream. Panics when
    /// nothing arrives within the timeout.
    pub fn read_line(&mut self) -> Option<String> {
        use std::io::BufRead;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) => panic!("no line from the daemon within {:?}: {e}", Self::TIMEOUT),
        }
    }

    /// The next line, parsed as JSON. Panics at end of stream or on bad JSON.
    pub fn read_json(&mut self) -> serde_json::Value {
        let line = self
            .read_line()
            .expect("the daemon closed the connection instead of replying");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("daemon sent bad JSON ({e}): {line}"))
    }

    /// Sends a request with this numeric id and returns the whole response object; asserts the
    /// response carries the same id.
    pub fn call(&mut self, id: i64, method: &str, params: serde_json::Value) -> serde_json::Value {
        let req =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&req.to_string());
        let resp = self.read_json();
        assert_eq!(
            resp["id"], id,
            "reply to {method} (id {id}) carries another id: {resp}"
        );
        resp
    }

    /// Like `call`, but asserts success and returns `result`.
    pub fn call_ok(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let resp = self.call(1_000_000, method, params.clone());
        assert!(
            resp.get("error").is_none() && resp.get("result").is_some(),
            "{method} {params} failed: {resp}"
        );
        resp["result"].clone()
    }
}

/// A field of /proc/PID/status in kB (e.g. "VmRSS", "VmHWM"); `None` when the process is gone.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Opens a FIFO for writing and writes `data`, giving up after `within`: opening blocks until
/// the other side opens it for reading, so this doubles as "wait until the agent got there".
pub fn fifo_write_within(path: &Path, data: &str, within: Duration) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    let data = data.to_string();
    std::thread::spawn(move || {
        use std::io::Write;
        let r = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|mut f| f.write_all(data.as_bytes()));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(within) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("writing FIFO {}: {e}", path.display())),
        Err(_) => Err(format!(
            "nobody opened FIFO {} for reading within {within:?}",
            path.display()
        )),
    }
}

/// Opens a FIFO for reading and reads to end of file, giving up after `within`.
pub fn fifo_read_within(path: &Path, within: Duration) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(&p));
    });
    match rx.recv_timeout(within) {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("reading FIFO {}: {e}", path.display())),
        Err(_) => Err(format!(
            "nobody wrote FIFO {} within {within:?}",
            path.display()
        )),
    }
}

// ------------------------------------------------------------------ helpers added for
// cli_flow / exec_backend / other_uid: commands with a deadline, process groups, pid exit.

/// Runs a command to completion with stdout/stderr captured, but never hangs the suite: if the
/// process is not done after `secs` it is SIGKILLed and this panics naming `what`. Also panics
/// when the process exited but something it started still holds its stdout/stderr open (e.g. a
/// daemon that inherited them), since a shell's `$(...)` or cron would hang on that too.
pub fn output_within(cmd: &mut Command, secs: u64, what: &str) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, stream) in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        let mut stream = stream.expect("piped");
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            let _ = tx.send((i, buf));
        });
    }
    drop(tx);
    let started = Instant::now();
    let status = wait_child(&mut child, Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("{what}: did not finish within {secs} s (killed it)"));
    let mut bufs = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let left = Duration::from_secs(secs.max(5)).saturating_sub(started.elapsed());
        match rx.recv_timeout(left.max(Duration::from_secs(2))) {
            Ok((i, buf)) => bufs[i] = buf,
            Err(_) => panic!(
                "{what}: exited ({status:?}) but its stdout/stderr stayed open: a process it \
                 started (the daemon?) inherited them, so `$(...)` or cron would hang"
            ),
        }
    }
    let [out, err] = bufs;
    Output {
        status,
        stdout: out,
        stderr: err,
    }
}

/// One entry of /proc/PID/stat: (pid, state, pgrp, session, comm).
pub fn proc_stat(pid: i32) -> Option<(i32, char, i32, i32, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let _ppid = rest.next()?;
    let pgrp = rest.next()?.parse().ok()?;
    let session = rest.next()?.parse().ok()?;
    Some((pid, state, pgrp, session, comm))
}

/// Every pid currently in /proc.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live (non-zombie) members of process group `pgid`, as "pid (comm) state" strings.
pub fn live_group_members(pgid: i32) -> Vec<String> {
    all_pids()
        .into_iter()
        .filter_map(proc_stat)
        .filter(|(_, state, pgrp, _, _)| *pgrp == pgid && *state != 'Z' && *state != 'X')
        .map(|(pid, state, _, _, comm)| format!("{pid} ({comm}) state {state}"))
        .collect()
}

/// Blocks (pidfd + poll, no polling loop) until process `pid` has exited or `secs` pass.
/// True when it is gone (or a zombie). Works for processes that are not our children.
pub fn wait_pid_gone(pid: i32, secs: u64) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    // SAFETY: fd is a fresh pidfd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = (secs * 1000).min(i32::MAX as u64) as i32;
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc == 1
}

/// Parses a command's stdout as exactly one JSON object on one line (what `--json` promises).
pub fn json_stdout(out: &Output, what: &str) -> serde_json::Value {
    let text = stdout(out);
    let trimmed = text.trim_end_matches('\n');
    assert!(
        !trimmed.is_empty() && !trimmed.contains('\n'),
        "{what}: --json should print one JSON object on one line, got:\n{text}\nstderr: {}",
        stderr(out)
    );
    let v: serde_json::Value = serde_json::from_str(trimmed)
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}):\n{text}"));
    assert!(
        v.is_object(),
        "{what}: --json should print an object, got {v}"
    );
    v
}

/// An `exec` agent (a shell script) that replies `reply:<message>` at once, except for messages
/// starting with `block`: those announce themselves on the `started` FIFO, then wait until the
/// test writes the `go` FIFO. Dropping it SIGKILLs any agent process group still around (an
/// agent orphaned by a `kill -9` of the daemon, say).
pub struct BlockingAgent {
    pub dir: tempfile::TempDir,
    pub started: PathBuf,
    pub go: PathBuf,
    pub pids: PathBuf,
}

impl BlockingAgent {
    pub fn new() -> BlockingAgent {
        let dir = tempfile::Builder::new()
            .prefix("openclaw-agent-")
            .tempdir()
            .expect("tempdir");
        let started = fifo(dir.path(), "started");
        let go = fifo(dir.path(), "go");
        let pids = dir.path().join("pids");
        let script = format!(
            "msg=$(cat)\ncase \"$msg\" in\n  block*)\n    echo $$ >> '{pids}'\n    echo started > '{started}'\n    read x < '{go}'\n    ;;\nesac\nprintf 'reply:%s' \"$msg\"\n",
            pids = pids.display(),
            started = started.display(),
            go = go.display()
        );
        std::fs::write(dir.path().join("agent.sh"), script).expect("write agent.sh");
        BlockingAgent {
            dir,
            started,
            go,
            pids,
        }
    }

    /// A `config.toml` fragment declaring this agent under `agent_id`.
    pub fn config(&self, agent_id: &str) -> String {
        format!(
            "[agents.{agent_id}]\nbackend = \"exec\"\ncommand = [\"sh\", \"{}\"]\n",
            self.dir.path().join("agent.sh").display()
        )
    }

    /// Blocks until a `block*` turn has started (it writes the `started` FIFO), up to 20 s.
    pub fn wait_started(&self) {
        let got = fifo_read_within(&self.started, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("the blocking exec agent never started: {e}"));
        assert_eq!(got.trim(), "started");
    }

    /// Lets one blocked turn finish (waits up to 20 s for it to be there).
    pub fn release(&self) {
        fifo_write_within(&self.go, "go\n", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("could not release the blocking exec agent: {e}"));
    }
}

impl Drop for BlockingAgent {
    fn drop(&mut self) {
        for pid in std::fs::read_to_string(&self.pids)
            .unwrap_or_default()
            .lines()
        {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: plain kill(2); the pids are agent shells this test started.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

// ------------------------------------------------------------------ helpers added for live
// (follow / subscribe / send --stream): a shell bound to a daemon, a child read line by line.

impl Daemon {
    /// `sh -c SCRIPT` with the same clean environment as [`Daemon::cli`]; the script finds the
    /// `openclaw` binary in `$OPENCLAW_BIN`.
    pub fn sh(&self, script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("OPENCLAW_HOME", self.home.path())
            .env("OPENCLAW_NO_AUTOSTART", "1")
            .env("OPENCLAW_BIN", OPENCLAW)
            .stdin(Stdio::null());
        cmd
    }
}

/// A child whose stdout is read line by line as it comes (a helper thread feeds a channel) and
/// whose stderr is collected; SIGKILLed when dropped if still running. Lets a test wait for
/// "the follower has printed its first line" instead of sleeping.
pub struct LineChild {
    pub child: Child,
    pub what: String,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stdout line received so far.
    pub seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl LineChild {
    pub fn spawn(cmd: &mut Command, what: &str) -> LineChild {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        LineChild {
            child,
            what: what.to_string(),
            lines: rx,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// The next stdout line; `Err` at end of output or when none arrives within `within`.
    pub fn next_line(&mut self, within: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(within) {
            Ok(line) => {
                self.seen.push(line.clone());
                Ok(line)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "{}: no stdout line within {within:?}; lines so far: {:?}",
                self.what, self.seen
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(format!(
                "{}: stdout ended; lines so far: {:?}",
                self.what, self.seen
            )),
        }
    }

    /// Reads stdout lines until one satisfies `pred` (returned); panics after `secs` or at end
    /// of output, showing everything printed.
    pub fn wait_line(&mut self, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let end = deadline(secs);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(e) => {
                    let err = self.kill_and_stderr();
                    panic!("{e}\nstderr: {err}");
                }
            }
        }
    }

    /// Waits (up to `secs`) for the child to exit; returns its status, every stdout line
    /// (including those already seen) and its stderr. Panics naming the child if it does not
    /// exit in time.
    pub fn finish(&mut self, secs: u64) -> (std::process::ExitStatus, Vec<String>, String) {
        let status = wait_child(&mut self.child, Duration::from_secs(secs));
        // The child is gone: the reader thread sees EOF unless a grandchild holds stdout.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let err = self.take_stderr();
        let status = status.unwrap_or_else(|| {
            panic!(
                "{}: did not exit within {secs} s (killed it)\nstdout: {:?}\nstderr: {err}",
                self.what, self.seen
            )
        });
        (status, self.seen.clone(), err)
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    fn kill_and_stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.take_stderr()
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------ helpers added for hostile /
// pairing: root checks, commands and sockets as another uid, store integrity, peer hang-ups.

/// uid and gid of `nobody`/`nogroup`, the other local user of the multi-user tests.
pub const NOBODY_UID: u32 = 65534;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The first executable named `name` in /usr/bin, /bin, /usr/local/bin: system paths, so that
/// `nobody` can run it too (a tool under /root, e.g. a pyenv shim, would not do).
pub fn system_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Why the tests that run something as `nobody` cannot run here, if they cannot.
pub fn nobody_unavailable() -> Option<String> {
    if !is_root() {
        return Some("needs root to run commands as uid nobody (setpriv)".into());
    }
    if system_tool("setpriv").is_none() {
        return Some("setpriv(1) not found".into());
    }
    None
}

/// `setpriv --reuid=nobody --regid=nogroup --clear-groups PROGRAM ARGS...` with a clean env.
pub fn nobody_command(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let setpriv = system_tool("setpriv").expect("setpriv(1) (check nobody_unavailable first)");
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// Makes a daemon's socket reachable by other users: its home directory 0755 (the socket's own
/// mode comes from `[socket] mode` in the config).
pub fn open_home_to_others(d: &Daemon) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.home_path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 the daemon's home");
}

/// Python run as `nobody`: connects to the socket in argv[1] and hands the connected socket
/// back over fd 3 (SCM_RIGHTS). The peer credentials the daemon sees are fixed at connect(2),
/// so the test then speaks on a connection that is, for the daemon, uid nobody's.
const CONNECT_AND_PASS_FD_PY: &str = "import socket, sys\n\
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
s.connect(sys.argv[1])\n\
socket.send_fds(socket.socket(fileno=3), [b'fd'], [s.fileno()])\n";

/// A connection to `socket` made by uid `nobody` (see [`CONNECT_AND_PASS_FD_PY`]), ready for
/// the test to use. Needs root, setpriv and a system python3.
pub fn connect_as_nobody(socket: &Path) -> Result<std::os::unix::net::UnixStream, String> {
    use std::os::unix::net::UnixStream;
    let python = system_tool("python3").ok_or("no python3 in /usr/bin, /bin or /usr/local/bin")?;
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let raw = theirs.as_raw_fd();
    let socket_arg = socket.to_str().ok_or("socket path is not UTF-8")?;
    let mut cmd = nobody_command(&python, &["-c", CONNECT_AND_PASS_FD_PY, socket_arg], &[]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    pass_as_fd_3(&mut cmd, raw);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start python3 as nobody: {e}"))?;
    drop(theirs);
    ours.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| format!("socketpair timeout: {e}"))?;
    let received = recv_fd(&ours);
    let status = wait_child(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    match received {
        Ok(fd) => Ok(UnixStream::from(fd)),
        Err(e) => Err(format!(
            "connecting to {} as nobody failed ({e}); python exited {status:?}: {err}",
            socket.display()
        )),
    }
}

/// Receives one file descriptor sent with SCM_RIGHTS.
fn recv_fd(sock: &std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    let mut data = [0u8; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // u64 elements: aligned for cmsghdr; 64 bytes hold one header and one fd with room.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the helper closed its end without sending a socket",
        ));
    }
    // SAFETY: msg was filled in by recvmsg; CMSG_FIRSTHDR/CMSG_DATA stay within `control`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(std::io::Error::other("no SCM_RIGHTS message"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// `PRAGMA integrity_check` of an SQLite database (the daemon may be running: WAL readers
/// don't disturb it). "ok" when the file is sound.
pub fn integrity_check(db: &Path) -> String {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(20))
        .expect("busy timeout");
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .expect("prepare integrity_check");
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("run integrity_check")
        .map(|r| r.expect("integrity_check row"))
        .collect();
    rows.join("\n")
}

/// Blocks (poll, no polling loop) until the peer of `sock` has closed the connection or shut
/// down its writing side, or `within` passes. True when it did. Unread data waiting in the
/// socket does not matter: POLLRDHUP reports the hang-up without reading (so a test can learn
/// that the daemon dropped a client that never reads, without reading).
pub fn wait_peer_closed(sock: &impl AsRawFd, within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0;
        }
        if rc == 0 {
            return false;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Raises this process's soft RLIMIT_NOFILE to at least `min` (up to the hard limit), for tests
/// that hold many sockets; daemons started afterwards inherit it. Returns the soft limit now.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
pub fn raise_nofile(min: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if (lim.rlim_cur as u64) < min {
        let want = (min as libc::rlim_t).min(lim.rlim_max);
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: valid pointer to an rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            lim.rlim_cur = want;
        }
    }
    lim.rlim_cur as u64
}

impl RawConn {
    /// Wraps an already connected stream (e.g. one from [`connect_as_nobody`]).
    pub fn from_stream(stream: std::os::unix::net::UnixStream) -> RawConn {
        stream
            .set_read_timeout(Some(Self::TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Self::TIMEOUT))
            .expect("write timeout");
        let reader = std::io::BufReader::new(stream.try_clone().expect("clone stream"));
        RawConn { stream, reader }
    }

    /// Like [`RawConn::read_line`], but a timeout or I/O error is returned, not a panic.
    pub fn try_read_line(&mut self) -> std::io::Result<Option<String>> {
        use std::io::BufRead;
        let mut line = String::new();
        match self.reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line.trim_end_matches(['\n', '\r']).to_string())),
        }
    }

    /// Writes bytes, returning the error instead of panicking (the daemon may have closed).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.stream.write_all(bytes)
    }
}

/// The `openclaw` binary, somewhere `nobody` can run it: target/ itself when nobody can read
/// and execute it there, else a 0755 copy in `scratch` (made 0755 too).
pub fn openclaw_for_nobody(scratch: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let probe = output_within(
        &mut nobody_command(
            Path::new("/bin/sh"),
            &["-c", "test -x \"$1\" && test -r \"$1\"", "sh", OPENCLAW],
            &[],
        ),
        20,
        "probe whether nobody can run the openclaw binary",
    );
    if probe.status.success() {
        return PathBuf::from(OPENCLAW);
    }
    std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 scratch dir");
    let copy = scratch.join("openclaw");
    std::fs::copy(OPENCLAW, &copy).expect("copy the openclaw binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 the copy");
    copy
}

/// How a CLI call went, for assertion messages.
pub fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "openclaw {}\n  exit: {:?}\n  stdout: {}\n  stderr: {}",
        args.join(" "),
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// An exec jsonl agent: text, a tool call and its result, more text.
pub const JSONL_SCRIPT: &str = r#"cat >/dev/null; echo '{"type":"text","text":"hel"}'; echo '{"type":"tool_start","id":"t1","name":"grep","input":{}}'; echo '{"type":"tool_end","id":"t1","output":"x","status":"ok"}'; echo '{"type":"text","text":"lo"}'"#;

/// A run's events (notification params) as comparable steps: `lifecycle:PHASE[:STATUS]`,
/// `assistant:TEXT` (consecutive deltas joined), `tool:start:ID:NAME:INPUT`,
/// `tool:end:ID:OUTPUT:STATUS`, `usage:TOKENS`. A leading `lifecycle:queued` is dropped (a
/// daemon may or may not report the queueing of a run that starts at once).
pub fn steps(events: &[serde_json::Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in events {
        let data = &p["data"];
        let s = |k: &str| data[k].as_str().unwrap_or("").to_string();
        let step = match p["stream"].as_str().unwrap_or("") {
            "lifecycle" if data["phase"] == "ended" => format!("lifecycle:ended:{}", s("status")),
            "lifecycle" => format!("lifecycle:{}", s("phase")),
            "assistant" => {
                if let Some(last) = out.last_mut().filter(|l| l.starts_with("assistant:")) {
                    last.push_str(&s("delta"));
                    continue;
                }
                format!("assistant:{}", s("delta"))
            }
            "tool" if data["phase"] == "start" => {
                format!("tool:start:{}:{}:{}", s("id"), s("name"), data["input"])
            }
            "tool" if data["phase"] == "end" => {
                format!("tool:end:{}:{}:{}", s("id"), s("output"), s("status"))
            }
            "tool" => format!("tool:{}:{}", s("phase"), s("id")),
            "usage" => format!("usage:{}", data["tokens"]),
            other => format!("{other}:{data}"),
        };
        out.push(step);
    }
    if out.first().is_some_and(|s| s == "lifecycle:queued") {
        out.remove(0);
    }
    out
}

/// Writes a FIFO once, so an agent blocked on it finishes; if the test did not release it (it
/// failed first), the drop does, without blocking, so no agent is left behind.
pub struct FifoGate {
    pub path: PathBuf,
    released: bool,
}

impl FifoGate {
    pub fn new(dir: &Path, name: &str) -> FifoGate {
        FifoGate {
            path: fifo(dir, name),
            released: false,
        }
    }

    pub fn release(&mut self) {
        fifo_write_within(&self.path, "go\n", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("could not release the blocked agent: {e}"));
        self.released = true;
    }
}

impl Drop for FifoGate {
    fn drop(&mut self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if !self.released
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.path)
        {
            let _ = f.write_all(b"go\n");
        }
    }
}

// ------------------------------------------------------------------ helpers added for the CLI
// on a terminal and Ctrl-C: a pseudo-terminal of a given width, SIGINT to a child.

/// Runs `cmd` with stdin, stdout and stderr on a fresh pseudo-terminal `cols` wide (its
/// controlling terminal), as a person at a terminal would; returns its exit status and
/// everything it wrote (stdout and stderr interleaved, `\r\n` made `\n`). Panics naming
/// `what` if it does not finish within `secs`.
pub fn output_in_pty(
    cmd: &mut Command,
    cols: u16,
    secs: u64,
    what: &str,
) -> (std::process::ExitStatus, String) {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: posix_openpt returns a new fd or -1; the fd is then owned here.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(master >= 0, "{what}: posix_openpt failed");
    // SAFETY: master is a valid pty master fd owned by us.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: valid fd; `name` is a writable buffer of the length given.
    unsafe {
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "{what}: grantpt");
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "{what}: unlockpt");
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0,
            "{what}: ptsname_r"
        );
    }
    // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(std::ffi::OsStr::from_bytes(path.to_bytes()))
        .unwrap_or_else(|e| panic!("{what}: open the pty slave: {e}"));
    let size = libc::winsize {
        ws_row: 24,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: a valid terminal fd and a valid winsize.
    unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    cmd.stdin(slave.try_clone().expect("dup pty"))
        .stdout(slave.try_clone().expect("dup pty"))
        .stderr(slave.try_clone().expect("dup pty"));
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    // The command keeps what it was given for stdio: only the child may hold the terminal.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    drop(slave);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = std::fs::File::from(master);
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last slave fd is closed: the child (and anything it left) is gone.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(out);
    });
    let status = wait_child(&mut child, Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("{what}: did not finish within {secs} s (killed it)"));
    let out = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: exited but its terminal stayed open"));
    (status, String::from_utf8_lossy(&out).replace("\r\n", "\n"))
}

/// Sends SIGINT (Ctrl-C) to a child, as a terminal would.
pub fn interrupt(child: &Child) {
    // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}
