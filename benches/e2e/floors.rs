//! The `floors` section (issue 16): the physical floors measured in the same run as the rows
//! they bound, and each row as a ratio to its floor.
//!
//! - client floor: `benches/floor/client.c`, a static libc-only client making one call on the
//!   socket (`sessions.spawn`, and separately `hello`), built here with `gcc -static`; and
//!   `benches/floor/hello.c`, a static program printing one line (the floor of `--version`);
//! - commit floor: one 4 KiB write + `fdatasync` of a preallocated file in the daemon's data
//!   directory (the least a durable commit can cost on this disk), median of many; and, for
//!   context, the same made as the rows it bounds are made (`commit_floors.rs`).
//!
//! Bounded by them: the CLI's spawn and `--version`; the daemon-side cost of a spawn (the
//! client floor's spawn minus its hello, and the same on one open connection); what one spawn
//! writes (bytes to storage, commits, and the fsyncs and WAL pages counted by `strace` when it
//! is installed); pipelined durable spawns/s; cold start and the fsyncs it does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::commit_floors::{FloorFile, PAGE};
use super::common::{Daemon, RawConn};
use super::syscalls::{
    SYNC_AND_WAL_CALLS, cold_start_syncs, interrupt_and_wait, strace_attach, strace_available,
    syncs_in, wal_pages_in, write_bytes,
};
use super::{
    Opts, Row, Stats, Table, errors_text, lat, load_average, ms, per_s, process_floor, rate,
    ratio_lat, ratio_rate, sequential, spawn_line, stats, status, time_cmd, verdict,
};

/// Builds `benches/floor/NAME.c` static into `target/bench-floor/floor-NAME` (when older than
/// its source).
pub fn build_floor(name: &str) -> Result<PathBuf, String> {
    let target = super::target_dir()?;
    let dir = target.join("bench-floor");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/floor")
        .join(format!("{name}.c"));
    let out = dir.join(format!("floor-{name}"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&out).is_some() && modified(&out) >= modified(&src) {
        return Ok(out);
    }
    let built = Command::new("gcc")
        .args(["-O2", "-static", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| format!("gcc: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "gcc -static {}: {}",
            src.display(),
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    Ok(out)
}

/// One call of the client floor (`spawn` or `hello`) with a clean environment; its wall time.
fn floor_call(client: &Path, socket: &Path, method: &str) -> Duration {
    let (el, out) = time_cmd(
        Command::new(client)
            .arg(socket)
            .arg(method)
            .env_clear()
            .stdin(Stdio::null()),
        "floor client",
    );
    assert!(
        out.contains("\"result\""),
        "floor client {method} answered {out:?}"
    );
    el
}

/// The statically linked CLI (`cargo build-static-cli`, what `cargo install-static-cli`
/// installs), built here when missing or stale; cargo does nothing when it is up to date.
fn static_cli() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("floors: cargo build-static-cli (minutes the first time) ...");
    let built = Command::new(cargo)
        .arg("build-static-cli")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if !built.status.success() {
        let err = String::from_utf8_lossy(&built.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(format!(
            "cargo build-static-cli failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    let target = super::target_dir()?;
    let cli = target.join("x86_64-unknown-linux-gnu/release/openclaw");
    if cli.is_file() {
        Ok(cli)
    } else {
        Err(format!("{} was not built", cli.display()))
    }
}

/// `n` pipelined `sessions.spawn` calls from `conns` connections at once, made by the C load
/// generator (`benches/floor/pipeline.c`): the elapsed time and the error replies.
pub fn floor_pipeline(
    generator: &Path,
    socket: &Path,
    n: usize,
    conns: usize,
    tag: &str,
) -> Result<(Duration, usize), String> {
    let mut cmd = Command::new(generator);
    cmd.arg(socket)
        .arg(n.to_string())
        .arg(conns.to_string())
        .arg(tag);
    run_generator(&mut cmd, "floor-pipeline")
}

/// Runs one of the C load generators with a clean environment, which prints
/// "NANOSECONDS ERRORS": the elapsed time and the error answers.
pub fn run_generator(cmd: &mut Command, name: &str) -> Result<(Duration, usize), String> {
    let out = cmd
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{name}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (out.status.success(), fields.next(), fields.next()) {
        (true, Some(Ok(ns)), Some(Ok(errors))) => Ok((Duration::from_nanos(ns), errors as usize)),
        _ => Err(format!("{name} exited {} with {text:?}", out.status)),
    }
}

pub fn section_floors(o: &Opts, t: &mut Table) {
    t.section("floors: each row against the least it could cost");
    let (client, hello, generator, commit_program) = match (
        build_floor("client"),
        build_floor("hello"),
        build_floor("pipeline"),
        build_floor("commit"),
    ) {
        (Ok(c), Ok(h), Ok(g), Ok(m)) => (c, h, g, m),
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
            t.note(format!("floors: cannot build the floor programs: {e}"));
            return;
        }
    };
    let static_cli = static_cli()
        .inspect_err(|e| t.note(format!("floors: no static CLI rows: {e}")))
        .ok();
    let d = Daemon::start();
    let socket = d.socket();
    let pid = d.pid();
    let data_dir = d.db_path().parent().expect("data dir").to_path_buf();
    RawConn::connect(&socket).call_ok("hello", json!({}));

    let load0 = load_average();
    let measured = FloorFile::create(&data_dir)
        .and_then(|f| f.back_to_back(o.rpc.max(200), 1).map(|commit| (f, commit)));
    let (floor_file, commit) = match measured {
        Ok(m) => m,
        Err(e) => {
            t.note(format!("floors: commit floor failed: {e}"));
            return;
        }
    };

    // Interleaved sample by sample, so a busy neighbour moves each figure and its floor alike.
    let n = o.cli.max(20);
    eprintln!("floors: client floor, CLI x{n} ...");
    let (mut f_spawn, mut f_hello, mut c_spawn, mut s_hello, mut c_version) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut sc_spawn, mut sc_version) = (vec![], vec![]);
    let mut f_commit = vec![];
    for i in 0..n {
        if let Some(cli) = &static_cli {
            sc_spawn.push(
                time_cmd(
                    d.cli_program(cli)
                        .args(["sessions", "spawn", "--task", "x"]),
                    "static openclaw",
                )
                .0,
            );
            sc_version.push(time_cmd(d.cli_program(cli).arg("--version"), "static openclaw").0);
        }
        f_hello.push(floor_call(&client, &socket, "hello"));
        f_spawn.push(floor_call(&client, &socket, "spawn"));
        f_commit.push(floor_file.sync_from_process(&commit_program, i));
        c_spawn.push(
            time_cmd(
                d.cli().args(["sessions", "spawn", "--task", "x"]),
                "openclaw",
            )
            .0,
        );
        s_hello.push(time_cmd(Command::new(&hello).env_clear(), "floor hello").0);
        c_version.push(time_cmd(d.cli().arg("--version"), "openclaw --version").0);
    }
    let f_commit = stats(&f_commit);
    let (f_spawn, f_hello, c_spawn, s_hello, c_version) = (
        stats(&f_spawn),
        stats(&f_hello),
        stats(&c_spawn),
        stats(&s_hello),
        stats(&c_version),
    );
    let statics = static_cli
        .is_some()
        .then(|| (stats(&sc_spawn), stats(&sc_version)));
    let true_floor = process_floor(n.min(100));
    let load = format!("load {}", load_average());
    t.push(Row {
        metric: "client floor: `sessions.spawn` (static C client, one call)".into(),
        value: lat(&f_spawn),
        baseline: format!("`/bin/true` {}", ms(true_floor.median)),
        ratio: ratio_lat(f_spawn.median, true_floor.median),
        target: load.clone(),
    });
    t.push(Row {
        metric: "client floor: `hello`".into(),
        value: lat(&f_hello),
        baseline: format!("`/bin/true` {}", ms(true_floor.median)),
        ratio: ratio_lat(f_hello.median, true_floor.median),
        target: load.clone(),
    });
    t.push(Row {
        metric: "commit floor: 4 KiB write + `fdatasync`, preallocated file in the data dir".into(),
        value: lat(&commit),
        target: format!("load {load0}"),
        ..Row::default()
    });
    t.push(Row {
        metric: "commit floor made as the client floor's calls are: the same sync from a fresh process each time (`benches/floor/commit.c`), the CPUs idle since the last".into(),
        value: lat(&f_commit),
        baseline: format!("back to back {}", ms(commit.median)),
        ratio: ratio_lat(f_commit.median, commit.median),
        target: load.clone(),
    });
    let spawn_floor = format!("client floor spawn {}", ms(f_spawn.median));
    let hello_floor = format!("static hello {}", ms(s_hello.median));
    let mut cli_rows = vec![
        (
            "`openclaw sessions spawn --task x`".to_string(),
            &c_spawn,
            &spawn_floor,
            f_spawn.median,
            1.25,
        ),
        (
            "`openclaw --version`".to_string(),
            &c_version,
            &hello_floor,
            s_hello.median,
            1.3,
        ),
    ];
    if let Some((sc_spawn, sc_version)) = &statics {
        cli_rows.push((
            "`openclaw sessions spawn --task x`, static build (`cargo install-static-cli`)".into(),
            sc_spawn,
            &spawn_floor,
            f_spawn.median,
            1.25,
        ));
        cli_rows.push((
            "`openclaw --version`, static build".into(),
            sc_version,
            &hello_floor,
            s_hello.median,
            1.3,
        ));
    }
    for (metric, value, baseline, floor, factor) in cli_rows {
        t.push(Row {
            metric,
            value: lat(value),
            baseline: baseline.clone(),
            ratio: ratio_lat(value.median, floor),
            target: format!(
                "{}; {load}",
                verdict(
                    &format!("≤ {factor}×"),
                    value.median.as_secs_f64() <= factor * floor.as_secs_f64()
                )
            ),
        });
    }
    let side = f_spawn.median.saturating_sub(f_hello.median);
    t.push(Row {
        metric: "daemon-side cost of a spawn (client floor spawn − its hello, medians)".into(),
        value: ms(side),
        baseline: format!("commit floor {}", ms(commit.median)),
        ratio: ratio_lat(side, commit.median),
        target: format!(
            "{}; {load}",
            verdict(
                "≤ 2×",
                side.as_secs_f64() <= 2.0 * commit.median.as_secs_f64()
            )
        ),
    });
    t.push(Row {
        metric: "the same against a commit made the same way (one sync per fresh process)".into(),
        value: ms(side),
        baseline: format!("commit floor from a fresh process {}", ms(f_commit.median)),
        ratio: ratio_lat(side, f_commit.median),
        target: format!("context for the row above, which the target is judged on; {load}"),
    });

    // The CLI's spawn, part by part, from the interleaved medians above: each part is a
    // difference of two of them, so the parts add up to the whole.
    let secs = |s: &Stats| s.median.as_secs_f64();
    let cli_start = secs(&c_version) - secs(&s_hello);
    t.breakdown(
        "`openclaw sessions spawn --task x` (floors section, medians)",
        ("`openclaw sessions spawn --task x`", c_spawn.median),
        &[
            ("a static process starting and exiting (static hello)".into(), secs(&s_hello)),
            (
                "connecting and one `hello` round trip (client floor `hello` − static hello)".into(),
                secs(&f_hello) - secs(&s_hello),
            ),
            ("one durable commit (commit floor)".into(), secs(&commit)),
            (
                "the rest of the daemon's spawn (client floor spawn − its `hello` − commit floor)".into(),
                secs(&f_spawn) - secs(&f_hello) - secs(&commit),
            ),
            (
                "starting the CLI's binary instead of a static one (`openclaw --version` − static hello)".into(),
                cli_start,
            ),
            (
                "the CLI's own call path (CLI spawn − client floor spawn − the line above)".into(),
                secs(&c_spawn) - secs(&f_spawn) - cli_start,
            ),
        ],
    );

    eprintln!("floors: spawn and hello RPCs x{} ...", o.rpc);
    let before_io = write_bytes(pid);
    let before = status(&socket);
    let (spawn_rpc, errors, _) = sequential(&socket, o.rpc, "floor-seq", spawn_line);
    let after = status(&socket);
    let after_io = write_bytes(pid);
    let (hello_rpc, _, _) = sequential(&socket, o.rpc, "floor-hello", super::hello_line);
    let (spawn_rpc, hello_rpc) = (stats(&spawn_rpc), stats(&hello_rpc));
    let load = format!("load {}", load_average());
    let side_rpc = spawn_rpc.median.saturating_sub(hello_rpc.median);
    t.push(Row {
        metric: "daemon-side cost of a spawn on one open connection (`sessions.spawn` − `hello` round trip, medians)".into(),
        value: format!("{} (spawn {}, hello {}){}", ms(side_rpc), ms(spawn_rpc.median), ms(hello_rpc.median), errors_text(errors)),
        baseline: format!("commit floor {}", ms(commit.median)),
        ratio: ratio_lat(side_rpc, commit.median),
        target: format!(
            "{}; {load}",
            verdict("≤ 2×", side_rpc.as_secs_f64() <= 2.0 * commit.median.as_secs_f64())
        ),
    });
    let counter = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let commits = counter(&after, "storeCommits") - counter(&before, "storeCommits");
    let written = match (before_io, after_io) {
        (Some(a), Some(b)) => format!(
            "{:.1} KiB to storage ({:.1} pages of 4 KiB)",
            (b - a) as f64 / 1024.0 / o.rpc as f64,
            (b - a) as f64 / PAGE as f64 / o.rpc as f64
        ),
        _ => "bytes written unknown (/proc/PID/io unreadable)".into(),
    };
    // WAL pages per spawn, when strace can count them.
    let mut wal_pages = None;
    let syncs = if strace_available() {
        let log = d.home_path().join("strace-spawns.log");
        match strace_attach(pid, &log, SYNC_AND_WAL_CALLS) {
            Some(tracer) => {
                let k = o.rpc.min(500);
                sequential(&socket, k, "floor-strace", spawn_line);
                interrupt_and_wait(tracer);
                let (total, detail) = syncs_in(&log);
                let pages = wal_pages_in(&log) as f64 / k as f64;
                wal_pages = Some(pages);
                format!(
                    "; under strace, {:.2} syncs per spawn ({total} in {k}: {detail}) and {pages:.1} WAL pages per spawn",
                    total as f64 / k as f64
                )
            }
            None => "; strace could not attach".into(),
        }
    } else {
        "; strace not installed: syncs and WAL pages not counted".into()
    };
    t.push(Row {
        metric: "what one spawn writes (1 in flight, sequential)".into(),
        value: format!(
            "{written}, {:.2} commits per spawn{syncs}",
            commits as f64 / o.rpc as f64
        ),
        target: load.clone(),
        ..Row::default()
    });
    // The sync of as many pages as a spawn's commit writes: the floor of that commit's size.
    if let Some(pages) = wal_pages.map(|p| p.round().max(1.0) as usize) {
        match floor_file.back_to_back(o.rpc.max(200), pages) {
            Ok(sized) => {
                t.push(Row {
                    metric: format!(
                        "commit floor for one spawn's WAL pages: {pages} pages of 4 KiB in one write + `fdatasync`, back to back"
                    ),
                    value: lat(&sized),
                    baseline: format!("one page {}", ms(commit.median)),
                    ratio: ratio_lat(sized.median, commit.median),
                    target: format!("load {}", load_average()),
                });
                t.push(Row {
                    metric: "daemon-side cost of a spawn on one open connection, against the sync of its pages".into(),
                    value: ms(side_rpc),
                    baseline: format!("{pages}-page commit floor {}", ms(sized.median)),
                    ratio: ratio_lat(side_rpc, sized.median),
                    target: format!("context for the one-connection row, which the target is judged on; {load}"),
                });
            }
            Err(e) => t.note(format!("floors: the {pages}-page commit floor failed: {e}")),
        }
    }
    drop(floor_file);

    let per_commit = 1.0 / commit.median.as_secs_f64();
    let mut drained = Duration::ZERO;
    for (conns, goal) in [(1, 20_000.0), (8, 25_000.0)] {
        drained += super::wait_runs_drained(&mut RawConn::connect(&socket));
        eprintln!(
            "floors: pipelined x{} from {conns} connection(s) ...",
            o.pipeline
        );
        let before = status(&socket);
        let run = floor_pipeline(
            &generator,
            &socket,
            o.pipeline,
            conns,
            &format!("floor-pipe{conns}"),
        );
        let after = status(&socket);
        let (elapsed, errors) = match run {
            Ok(r) => r,
            Err(e) => {
                t.note(format!(
                    "floors: the pipelined run from {conns} connection(s) failed: {e}"
                ));
                continue;
            }
        };
        let r = rate(o.pipeline, elapsed);
        let commits = counter(&after, "storeCommits") - counter(&before, "storeCommits");
        t.push(Row {
            metric: format!(
                "durable spawns/s, {conns} connection{} pipelined (C load generator)",
                if conns == 1 { "" } else { "s" }
            ),
            value: format!(
                "{} ({commits} commits, {:.0} spawns per commit){}",
                per_s(r),
                o.pipeline as f64 / commits.max(1) as f64,
                errors_text(errors)
            ),
            baseline: format!("commit floor's syncs/s {}", per_s(per_commit)),
            ratio: ratio_rate(r, per_commit),
            target: format!(
                "{}; load {}",
                verdict(&format!("≥ {}", per_s(goal)), r >= goal),
                load_average()
            ),
        });
    }
    t.note(format!(
        "floors: each pipelined row began once the runs queued before it had ended ({} of waiting in all); store after the section {}",
        ms(drained),
        super::store_size(&d)
    ));
    drop(d);

    eprintln!("floors: cold start x{} ...", o.cold);
    let mut first = Vec::new();
    for _ in 0..o.cold.max(1) {
        let t0 = Instant::now();
        let d = Daemon::start();
        let _ = floor_call(&client, &d.socket(), "hello");
        first.push(t0.elapsed());
    }
    let first = stats(&first);
    let syncs = if strace_available() {
        match cold_start_syncs() {
            Some(((n0, detail), (n1, _))) => {
                format!("; {n0} syncs to the first reply ({detail}), {n1} at the clean stop")
            }
            None => "; strace run failed".into(),
        }
    } else {
        String::new()
    };
    t.push(Row {
        metric: "daemon cold start (fresh home) → first reply to the client floor's `hello`".into(),
        value: format!("{}{syncs}", lat(&first)),
        baseline: format!(
            "`/bin/true` {} + client floor hello {}",
            ms(true_floor.median),
            ms(f_hello.median)
        ),
        ratio: ratio_lat(first.median, true_floor.median + f_hello.median),
        target: format!("load {}", load_average()),
    });
}
