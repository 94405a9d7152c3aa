//! The `exec` backend end to end: agents configured in config.toml, blocked on FIFOs that the
//! test releases (never sleeps), driven through the real `openclaw` binary.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{Daemon, RawConn, json_stdout, output_within, stderr, stdout};
use openclaw::protocol::{
    HistoryResult, KillResult, ListResult, Role, RunResult, RunStatus, SessionRow, SpawnResult,
    WaitStatus,
};
use serde_json::{Value, json};

const CALL_SECS: u64 = 20;

// ------------------------------------------------------------------ helpers

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A config whose default agent `main` runs `sh -c SCRIPT` (plus extra TOML).
fn exec_config(script: &str, extra: &str) -> String {
    format!(
        "default_agent = \"main\"\n\n[agents.main]\nbackend = \"exec\"\ncommand = [\"sh\", \"-c\", {}]\n\n{extra}\n",
        toml_str(script)
    )
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::Builder::new()
                .prefix("openclaw-exec-")
                .tempdir()
                .expect("tempdir"),
        }
    }
    fn fifo(&self, name: &str) -> PathBuf {
        common::fifo(self.dir.path(), name)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn run(d: &Daemon, args: &[&str]) -> Output {
    output_within(
        d.cli().args(args),
        CALL_SECS,
        &format!("openclaw {}", args.join(" ")),
    )
}

fn describe(d: &Daemon, args: &[&str], out: &Output) -> String {
    format!(
        "openclaw {}\n  exit: {:?}\n  stdout: {}\n  stderr: {}\n  daemon log: {}",
        args.join(" "),
        out.status.code(),
        stdout(out),
        stderr(out),
        std::fs::read_to_string(d.log_path()).unwrap_or_default()
    )
}

fn expect_exit(d: &Daemon, args: &[&str], code: i32) -> Output {
    let out = run(d, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{}",
        describe(d, args, &out)
    );
    out
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = expect_exit(d, args, 0);
    stdout(&out).trim_end_matches('\n').to_string()
}

fn json(d: &Daemon, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = expect_exit(d, &all, code);
    json_stdout(&out, &format!("openclaw {}", all.join(" ")))
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> T {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{what}: JSON does not have the documented shape ({e}):\n{v}"))
}

fn history(d: &Daemon, key: &str) -> HistoryResult {
    typed(
        &json(d, &["sessions", "history", key], 0),
        "sessions history --json",
    )
}

fn transcript(h: &HistoryResult) -> Vec<(Role, String)> {
    h.messages
        .iter()
        .map(|m| {
            (
                m.role,
                m.content.as_str().unwrap_or("<non-string>").to_string(),
            )
        })
        .collect()
}

fn row(d: &Daemon, key: &str) -> SessionRow {
    let list: ListResult = typed(&json(d, &["sessions", "list"], 0), "sessions list --json");
    list.sessions
        .into_iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("sessions list --json has no row for {key}"))
}

/// Runs `f` in a thread and waits for it up to `secs`; on timeout runs `unblock` (to free the
/// thread) and panics with `what`.
fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
    unblock: impl FnOnce(),
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => {
            unblock();
            panic!("{what}: not done within {secs} s");
        }
    }
}

/// Opens a FIFO's write end, blocking until the agent opens it for reading (so when this
/// returns, the agent is inside `cat FIFO`). Panics if that does not happen within `secs`.
fn open_gate(fifo: &Path, secs: u64) -> File {
    let p = fifo.to_path_buf();
    let p2 = fifo.to_path_buf();
    within(
        secs,
        &format!(
            "the agent never opened {} (did the run start?)",
            fifo.display()
        ),
        move || {
            OpenOptions::new()
                .write(true)
                .open(&p)
                .expect("open FIFO for writing")
        },
        move || {
            // O_RDWR never blocks on Linux and frees the writer blocked in open().
            let _ = OpenOptions::new().read(true).write(true).open(&p2);
        },
    )
}

/// Releases an agent blocked in `cat FIFO`: write a line and close.
fn release(fifo: &Path) {
    let mut f = open_gate(fifo, CALL_SECS);
    f.write_all(b"go\n").expect("write FIFO");
}

/// Reads what the agent writes into a FIFO (blocking until it does).
fn read_fifo(fifo: &Path, secs: u64) -> String {
    let p = fifo.to_path_buf();
    let p2 = fifo.to_path_buf();
    within(
        secs,
        &format!("the agent never wrote to {}", fifo.display()),
        move || {
            let mut s = String::new();
            File::open(&p)
                .expect("open FIFO")
                .read_to_string(&mut s)
                .expect("read FIFO");
            s
        },
        move || {
            let _ = OpenOptions::new().read(true).write(true).open(&p2);
        },
    )
}

/// True when some process has the FIFO open for reading right now (non-blocking probe).
fn fifo_has_reader(fifo: &Path) -> bool {
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
    {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => false,
        Err(e) => panic!("probe {}: {e}", fifo.display()),
    }
}

/// Kills a process group on drop, so a failing test leaves no agent behind.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.0 > 1 {
            // SAFETY: killpg on the process group of an agent this test's daemon started.
            unsafe { libc::killpg(self.0, libc::SIGKILL) };
        }
    }
}

/// The run id named in a "run continues, wait with `openclaw sessions wait RUN_ID`" notice.
fn run_id_in_notice(text: &str) -> Option<String> {
    let at = text.find("sessions wait ")? + "sessions wait ".len();
    let id: String = text[at..]
        .trim_start_matches(['`', '\'', '"'])
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '`' | '\'' | '"' | ')' | ','))
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The script of an agent that replies `got MSG`, and blocks on GATE first when MSG is `block`.
fn block_on_demand(gate: &Path) -> String {
    format!(
        "m=$(cat); if [ \"$m\" = block ]; then cat {} >/dev/null; fi; printf 'got %s' \"$m\"",
        gate.display()
    )
}

// ------------------------------------------------------------------ (a)

#[test]
fn spawn_returns_before_the_run_finishes() {
    let fx = Fixture::new();
    let gate_hello = fx.fifo("gate-hello");
    let gate_second = fx.fifo("gate-second");
    let d = Daemon::start_with_config(&exec_config(
        &format!(
            "m=$(cat); cat {}/gate-$m >/dev/null; printf 'done: %s' \"$m\"",
            fx.dir.path().display()
        ),
        "",
    ));

    // The agent blocks until we release it, so spawn can only return if it does not wait.
    let spawn: SpawnResult = typed(
        &json(&d, &["sessions", "spawn", "--task", "hello"], 0),
        "sessions spawn --json",
    );
    assert_eq!(spawn.status, "accepted");

    // Prove the agent is really running (inside `cat gate`), then read history meanwhile.
    let mut writer = open_gate(&gate_hello, CALL_SECS);
    let h = history(&d, &spawn.session_key);
    assert_eq!(
        transcript(&h),
        vec![(Role::User, "hello".to_string())],
        "while the run is going, history holds the task and no reply yet"
    );
    let r = row(&d, &spawn.session_key);
    assert_eq!(
        r.status, "running",
        "list status of a session whose run is going: {r:?}"
    );
    assert_eq!(
        r.active_run_id.as_deref(),
        Some(spawn.run_id.as_str()),
        "activeRunId"
    );

    // The same through the plain spawn: prints only the key, while its agent is blocked.
    let key2 = ok(&d, &["sessions", "spawn", "--task", "second"]);
    assert!(
        key2.starts_with("agent:main:task:") && !key2.contains('\n'),
        "{key2:?}"
    );
    let writer2 = open_gate(&gate_second, CALL_SECS);
    let h2 = history(&d, &key2);
    assert_eq!(transcript(&h2), vec![(Role::User, "second".to_string())]);

    // Release the first; its reply appears.
    writer.write_all(b"go\n").expect("write gate");
    drop(writer);
    let w: RunResult = typed(
        &json(
            &d,
            &["sessions", "wait", &spawn.run_id, "--timeout", "10"],
            0,
        ),
        "wait",
    );
    assert_eq!(
        (w.status, w.run_status),
        (WaitStatus::Ok, RunStatus::Ok),
        "{w:?}"
    );
    assert_eq!(w.reply.as_deref(), Some("done: hello"));
    assert_eq!(
        transcript(&history(&d, &spawn.session_key)),
        vec![
            (Role::User, "hello".into()),
            (Role::Assistant, "done: hello".into())
        ]
    );

    // Release the second.
    drop(writer2);
    let r2 = row(&d, &key2);
    if let Some(run_id) = r2
        .active_run_id
        .or_else(|| history(&d, &key2).messages[0].run_id.clone())
    {
        assert_eq!(
            ok(&d, &["sessions", "wait", &run_id, "--timeout", "10"]),
            "done: second"
        );
    }
    assert_eq!(
        transcript(&history(&d, &key2)),
        vec![
            (Role::User, "second".into()),
            (Role::Assistant, "done: second".into())
        ]
    );
}

// ------------------------------------------------------------------ (b)

#[test]
fn send_ok_no_wait_and_wait_timeout() {
    let fx = Fixture::new();
    let gate = fx.fifo("gate");
    let d = Daemon::start_with_config(&exec_config(&block_on_demand(&gate), ""));

    // ok
    assert_eq!(ok(&d, &["sessions", "send", "main", "hi"]), "got hi");

    // --no-wait then wait
    let run_id = ok(&d, &["sessions", "send", "main", "later", "--no-wait"]);
    assert!(
        !run_id.is_empty() && !run_id.contains(char::is_whitespace),
        "{run_id:?}"
    );
    assert_eq!(
        ok(&d, &["sessions", "wait", &run_id, "--timeout", "5"]),
        "got later"
    );

    // The wait times out while the run is blocked: exit 124, stderr says it goes on and how.
    let out = expect_exit(
        &d,
        &["sessions", "send", "main", "block", "--timeout", "1"],
        124,
    );
    let err = stderr(&out);
    assert!(
        err.contains("openclaw sessions wait"),
        "on a wait timeout stderr should say how to wait for the run \
         (`openclaw sessions wait RUN_ID`), got:\n{err}"
    );
    let blocked_run = run_id_in_notice(&err)
        .unwrap_or_else(|| panic!("no run id after `sessions wait` in stderr:\n{err}"));
    // The run is still going (the agent is in `cat gate`), not aborted by the client's timeout.
    let mut writer = open_gate(&gate, CALL_SECS);
    let out = expect_exit(
        &d,
        &["sessions", "wait", &blocked_run, "--timeout", "1", "--json"],
        124,
    );
    let w: RunResult = typed(&json_stdout(&out, "wait --json (timed out)"), "wait --json");
    assert_eq!(w.status, WaitStatus::Timeout, "{w:?}");
    assert_eq!(
        w.run_status,
        RunStatus::Running,
        "the run continues after a wait timeout"
    );
    writer.write_all(b"go\n").expect("write gate");
    drop(writer);
    assert_eq!(
        ok(&d, &["sessions", "wait", &blocked_run]),
        "got block",
        "after release, `sessions wait RUN_ID` prints the reply of the run whose wait timed out"
    );
    let h = history(&d, "main");
    assert_eq!(
        transcript(&h).last(),
        Some(&(Role::Assistant, "got block".to_string())),
        "the run that outlived the wait shows its reply in history: {:?}",
        transcript(&h)
    );
}

// ------------------------------------------------------------------ (c)

#[test]
fn failed_run_exits_1_with_the_stderr_tail() {
    let d = Daemon::start_with_config(&exec_config(
        "cat >/dev/null; i=0; while [ $i -lt 1000 ]; do echo \"noise line $i\" >&2; \
         i=$((i+1)); done; echo 'FINAL: disk full on /var' >&2; echo partial; exit 3",
        "",
    ));
    let out = expect_exit(&d, &["sessions", "send", "main", "go"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("FINAL: disk full on /var"),
        "a failed run's `send` should show the command's stderr tail on stderr, got:\n{err}"
    );

    let v = json(&d, &["sessions", "send", "main", "again"], 1);
    let r: RunResult = typed(&v, "send --json of a failed run");
    assert_eq!(
        (r.status, r.run_status),
        (WaitStatus::Error, RunStatus::Error),
        "{v}"
    );
    let e = r.error.unwrap_or_default();
    assert!(
        e.contains("FINAL: disk full on /var"),
        "error should hold the stderr tail: {e:?}"
    );
    assert!(
        !e.contains("noise line 0\n") && e.len() < 8 * 1024,
        "error should be the *tail* of stderr (about 2 KiB), not all {} bytes of it",
        e.len()
    );

    // `sessions wait` on a failed run: exit 1 too.
    let run_id = ok(&d, &["sessions", "send", "main", "third", "--no-wait"]);
    let out = expect_exit(&d, &["sessions", "wait", &run_id], 1);
    assert!(
        stderr(&out).contains("FINAL: disk full"),
        "wait stderr:\n{}",
        stderr(&out)
    );
    assert_eq!(
        row(&d, "agent:main:main").status,
        "error",
        "last run's status in list"
    );
}

// ------------------------------------------------------------------ (d)

#[test]
fn kill_stops_an_agent_that_ignores_sigterm() {
    let fx = Fixture::new();
    let gate = fx.fifo("gate");
    let started = fx.fifo("started");
    let d = Daemon::start_with_config(&exec_config(
        &format!(
            "trap '' TERM; cat >/dev/null; sleep 600 & echo $$ > {}; cat {} >/dev/null; echo done",
            started.display(),
            gate.display()
        ),
        "[limits]\nkill_grace_ms = 300\n",
    ));

    let run_id = ok(&d, &["sessions", "send", "main", "work", "--no-wait"]);
    let pid: i32 = read_fifo(&started, CALL_SECS)
        .trim()
        .parse()
        .expect("the agent wrote its pid");
    let _guard = GroupGuard(pid);
    let (_, _, pgrp, _, _) = common::proc_stat(pid).expect("agent is alive");
    assert_eq!(
        pgrp, pid,
        "the exec command should run in its own process group"
    );
    assert!(
        live_members(pid).len() >= 2,
        "the agent and its background child should both be in the group: {:?}",
        live_members(pid)
    );

    let out = expect_exit(&d, &["sessions", "kill", "main"], 0);
    // kill returns after the run has really ended: nothing of the group may be left alive.
    let left = live_members(pid);
    assert!(
        left.is_empty(),
        "`openclaw sessions kill` returned but processes of the agent's group {pid} are alive \
         (SIGKILL after the grace period missing?): {left:?}\nkill output: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = expect_exit(
        &d,
        &["sessions", "wait", &run_id, "--timeout", "5", "--json"],
        1,
    );
    let w: RunResult = typed(&json_stdout(&out, "wait --json after kill"), "wait --json");
    assert_eq!(w.status, WaitStatus::Error, "{w:?}");
    assert_eq!(
        w.run_status,
        RunStatus::Aborted,
        "a killed run is `aborted`: {w:?}"
    );
    expect_exit(&d, &["sessions", "wait", &run_id, "--timeout", "5"], 1);

    // A second kill has nothing to stop.
    let k: KillResult = typed(&json(&d, &["sessions", "kill", "main"], 0), "kill --json");
    assert_eq!(k.status, "idle", "{k:?}");
}

/// Members of process group `pgid` that are alive and not already dying: zombies, processes
/// inside exit (PF_EXITING) and processes with a SIGKILL pending do not count.
fn live_members(pgid: i32) -> Vec<String> {
    const PF_EXITING: u64 = 0x4;
    common::all_pids()
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let close = stat.rfind(')')?;
            let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // f[0] state, f[2] pgrp, f[6] flags
            let (state, pgrp, flags) = (f.first()?, f.get(2)?, f.get(6)?);
            if pgrp.parse::<i32>().ok()? != pgid || matches!(*state, "Z" | "X" | "x") {
                return None;
            }
            if flags.parse::<u64>().ok()? & PF_EXITING != 0 {
                return None;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let kill_pending = status.lines().any(|l| {
                (l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                    && u64::from_str_radix(l.split(':').nth(1).unwrap_or("").trim(), 16)
                        .is_ok_and(|m| m & (1 << (libc::SIGKILL - 1)) != 0)
            });
            if kill_pending {
                return None;
            }
            Some(format!(
                "{pid} {} state {state}",
                &stat[stat.find('(')?..=close]
            ))
        })
        .collect()
}

#[test]
fn kill_json_names_the_aborted_run() {
    let fx = Fixture::new();
    let gate = fx.fifo("gate");
    let d = Daemon::start_with_config(&exec_config(
        &block_on_demand(&gate),
        "[limits]\nkill_grace_ms = 300\n",
    ));
    let spawn: SpawnResult = typed(
        &json(&d, &["sessions", "spawn", "--task", "block"], 0),
        "spawn --json",
    );
    drop(open_gate(&gate, CALL_SECS)); // the run is in `cat gate`; closing without data is fine:
    // cat gets EOF and the agent replies. Use a second blocked send to kill instead.
    let _ = ok(&d, &["sessions", "wait", &spawn.run_id, "--timeout", "10"]);
    let run_id = ok(
        &d,
        &["sessions", "send", &spawn.session_key, "block", "--no-wait"],
    );
    let writer = open_gate(&gate, CALL_SECS); // running now
    let k: KillResult = typed(
        &json(&d, &["sessions", "kill", &spawn.session_key], 0),
        "kill --json",
    );
    drop(writer);
    assert_eq!(k.status, "aborted", "{k:?}");
    assert_eq!(
        k.aborted_run_id.as_deref(),
        Some(run_id.as_str()),
        "abortedRunId: {k:?}"
    );
    let w: RunResult = typed(
        &json(&d, &["sessions", "wait", &run_id, "--timeout", "5"], 1),
        "wait --json",
    );
    assert_eq!(w.run_status, RunStatus::Aborted);
    // The session stays usable.
    assert_eq!(
        ok(&d, &["sessions", "send", &spawn.session_key, "after"]),
        "got after"
    );
}

// ------------------------------------------------------------------ (e)

#[test]
fn run_timeout_ends_the_run_and_the_session_stays_usable() {
    let fx = Fixture::new();
    let gate = fx.fifo("gate");
    let d = Daemon::start_with_config(&exec_config(
        &block_on_demand(&gate),
        "[limits]\nkill_grace_ms = 300\n",
    ));
    let spawn: SpawnResult = typed(
        &json(
            &d,
            &["sessions", "spawn", "--task", "block", "--timeout", "1"],
            0,
        ),
        "spawn --timeout 1 --json",
    );
    let v = json(
        &d,
        &["sessions", "wait", &spawn.run_id, "--timeout", "15"],
        1,
    );
    let w: RunResult = typed(&v, "wait --json on a timed-out run");
    assert_eq!(w.status, WaitStatus::Error, "{v}");
    assert_eq!(
        w.run_status,
        RunStatus::Timeout,
        "runTimeoutSeconds exceeded → `timeout`: {v}"
    );
    assert_eq!(
        row(&d, &spawn.session_key).status,
        "timeout",
        "list shows the last run status"
    );

    let reply = ok(&d, &["sessions", "send", &spawn.session_key, "again"]);
    assert_eq!(
        reply, "got again",
        "the session must stay usable after a run timeout"
    );
    let t = transcript(&history(&d, &spawn.session_key));
    assert_eq!(t.first(), Some(&(Role::User, "block".to_string())), "{t:?}");
    assert_eq!(
        t.last(),
        Some(&(Role::Assistant, "got again".to_string())),
        "{t:?}"
    );
}

// ------------------------------------------------------------------ (f)

#[test]
fn exec_command_sees_its_environment_and_workspace() {
    let config = format!(
        "default_agent = \"main\"\n[agents.main]\nbackend = \"echo\"\n\n[agents.probe]\n\
         backend = \"exec\"\ncommand = [\"sh\", \"-c\", {}]\n",
        toml_str(
            "cat >/dev/null; printf '%s\\n%s\\n%s\\n%s\\n%s' \"$OPENCLAW_SESSION_KEY\" \
             \"$OPENCLAW_RUN_ID\" \"$OPENCLAW_SOCKET\" \"$OPENCLAW_SESSION_ID\" \"$(pwd -P)\""
        )
    );
    let d = Daemon::start_with_config(&config);
    let spawn: SpawnResult = typed(
        &json(
            &d,
            &["sessions", "spawn", "--agent", "probe", "--task", "env"],
            0,
        ),
        "spawn --agent probe --json",
    );
    assert!(
        spawn.session_key.starts_with("agent:probe:task:"),
        "{}",
        spawn.session_key
    );
    let reply = ok(&d, &["sessions", "wait", &spawn.run_id, "--timeout", "10"]);
    let lines: Vec<&str> = reply.split('\n').collect();
    assert_eq!(
        lines.len(),
        5,
        "the agent printed 5 lines, reply is {reply:?}"
    );
    assert_eq!(lines[0], spawn.session_key, "OPENCLAW_SESSION_KEY");
    assert_eq!(lines[1], spawn.run_id, "OPENCLAW_RUN_ID");
    let sock = std::fs::canonicalize(d.socket()).expect("socket path");
    assert_eq!(
        std::fs::canonicalize(lines[2]).ok().as_deref(),
        Some(sock.as_path()),
        "OPENCLAW_SOCKET should be the daemon's socket, got {:?}",
        lines[2]
    );
    assert_eq!(lines[3], spawn.session_id, "OPENCLAW_SESSION_ID");
    let ws = std::fs::canonicalize(
        d.home_path()
            .join("data/workspaces")
            .join(&spawn.session_id),
    )
    .expect("the session workspace <data>/workspaces/<sessionId> exists");
    assert_eq!(
        Path::new(lines[4]),
        ws,
        "cwd of the exec command is the session workspace"
    );

    // A later send is a new run with its own id.
    let r: RunResult = typed(
        &json(&d, &["sessions", "send", &spawn.session_key, "again"], 0),
        "send --json",
    );
    let lines: Vec<String> = r
        .reply
        .unwrap_or_default()
        .split('\n')
        .map(str::to_string)
        .collect();
    assert_eq!(lines.first(), Some(&spawn.session_key));
    assert_eq!(
        lines.get(1),
        Some(&r.run_id),
        "OPENCLAW_RUN_ID of the send's run"
    );
    assert_ne!(r.run_id, spawn.run_id);
}

// ------------------------------------------------------------------ (g)

#[test]
fn one_run_at_a_time_per_session_fifo() {
    let fx = Fixture::new();
    let gate_one = fx.fifo("gate-one");
    let gate_two = fx.fifo("gate-two");
    let log = fx.path("started.log");
    let d = Daemon::start_with_config(&exec_config(
        &format!(
            "m=$(cat); echo \"$m\" >> {log}; cat {dir}/gate-$m >/dev/null; printf 'done %s' \"$m\"",
            log = log.display(),
            dir = fx.dir.path().display()
        ),
        "",
    ));

    let one = ok(&d, &["sessions", "send", "main", "one", "--no-wait"]);
    let two = ok(&d, &["sessions", "send", "main", "two", "--no-wait"]);
    assert_ne!(one, two);

    // Run one is inside `cat gate-one`; hold it there.
    let writer = open_gate(&gate_one, CALL_SECS);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "one\n",
        "while run one is going, run two must not have started"
    );
    assert!(
        !fifo_has_reader(&gate_two),
        "run two is running alongside run one"
    );
    let r = row(&d, "agent:main:main");
    assert_eq!(
        r.active_run_id.as_deref(),
        Some(one.as_str()),
        "active run is the first: {r:?}"
    );
    let out = expect_exit(
        &d,
        &["sessions", "wait", &two, "--timeout", "1", "--json"],
        124,
    );
    let w: RunResult = typed(&json_stdout(&out, "wait --json on the queued run"), "wait");
    assert_eq!(
        w.run_status,
        RunStatus::Queued,
        "the second send waits in the queue: {w:?}"
    );

    let mut writer = writer;
    writer.write_all(b"go\n").expect("write gate-one");
    drop(writer);
    assert_eq!(
        ok(&d, &["sessions", "wait", &one, "--timeout", "10"]),
        "done one"
    );

    // Now, and only now, run two starts.
    release(&gate_two);
    assert_eq!(
        ok(&d, &["sessions", "wait", &two, "--timeout", "10"]),
        "done two"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "one\ntwo\n"
    );

    let t = transcript(&history(&d, "main"));
    let pos = |role: Role, text: &str| {
        t.iter()
            .position(|(r, c)| *r == role && c == text)
            .unwrap_or_else(|| panic!("history lacks {role:?} {text:?}: {t:?}"))
    };
    assert!(
        pos(Role::User, "one") < pos(Role::Assistant, "done one"),
        "{t:?}"
    );
    assert!(
        pos(Role::User, "two") < pos(Role::Assistant, "done two"),
        "{t:?}"
    );
    assert!(pos(Role::User, "one") < pos(Role::User, "two"), "{t:?}");
    assert!(
        pos(Role::Assistant, "done one") < pos(Role::Assistant, "done two"),
        "{t:?}"
    );
    assert_eq!(t.len(), 4, "{t:?}");
}

#[test]
fn spawn_wait_timeout_exits_124_and_the_run_goes_on() {
    let fx = Fixture::new();
    let gate = fx.fifo("gate");
    let d = Daemon::start_with_config(&exec_config(&block_on_demand(&gate), ""));
    let out = expect_exit(
        &d,
        &[
            "sessions",
            "spawn",
            "--task",
            "block",
            "--wait",
            "--wait-timeout",
            "1",
        ],
        124,
    );
    let err = stderr(&out);
    let run_id = run_id_in_notice(&err).unwrap_or_else(|| {
        panic!("spawn --wait timing out should say `openclaw sessions wait RUN_ID`:\n{err}")
    });
    release(&gate);
    assert_eq!(
        ok(&d, &["sessions", "wait", &run_id, "--timeout", "10"]),
        "got block"
    );
}

#[test]
fn a_jsonl_agent_printing_a_huge_line_keeps_its_start_and_what_follows() {
    // 12 MiB with no newline, then a normal line: the long line is cut (kept as text, with a
    // note), and the run goes on to read the next one.
    let script = "head -c 12582912 /dev/zero | tr -c x x; echo; echo '{\"type\":\"text\",\"text\":\"after\"}'";
    let config = format!(
        "[agents.j]\nbackend = \"exec\"\nformat = \"jsonl\"\ncommand = [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(script).expect("json")
    );
    let d = Daemon::start_with_config(&config);
    let mut c = RawConn::connect(&d.socket());
    let spawned = c.call_ok("sessions.spawn", json!({"task": "t", "agentId": "j"}));
    let ended = c.call_ok(
        "runs.wait",
        json!({"runId": spawned["runId"], "timeoutSeconds": 60}),
    );
    assert_eq!(
        ended["status"],
        "ok",
        "{}",
        &ended.to_string()[..200.min(ended.to_string().len())]
    );
    let reply = ended["reply"].as_str().expect("reply");
    assert!(
        reply.starts_with("xxxx"),
        "the start of the long line is kept: {:?}",
        &reply[..reply.len().min(120)]
    );
    assert!(
        reply.contains("was cut here]"),
        "with a note saying it was cut"
    );
    assert!(reply.ends_with("after"), "and the next line was read");
    assert!(
        reply.len() < 2 * 1024 * 1024,
        "the rest of the line is not kept: {} bytes",
        reply.len()
    );
}
