//! Section `core`: idle RSS, the CLI's spawn, send and wait round trips (against `/bin/true`
//! and the same call on the socket), spawn RPCs one at a time, pipelined and from 8
//! connections (against `hello` the same way), group commit, and RSS under load.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{self, Daemon, RawConn};
use super::{
    CONNECTIONS, EXEC_AGENT, Opts, Row, Stats, Table, cli_env, errors_text, hello_line, lat, ms,
    on_connections, per_s, pipelined, process_floor, rate, ratio_lat, ratio_rate, rss_mib,
    rss_text, sequential, shell_loop, spawn_line, stats, status, store_size, time_cmd, verdict,
    wait_run,
};

pub fn section(o: &Opts, t: &mut Table) {
    t.section("core: spawn, send, throughput, memory");
    let floor = &process_floor(o.cli.max(20));
    t.note(format!(
        "core: process floor, `/bin/true` from this harness: median {}, p99 {}",
        ms(floor.median),
        ms(floor.p99)
    ));
    let d = Daemon::start_with_config(EXEC_AGENT);
    let socket = d.socket();
    let pid = d.pid();
    RawConn::connect(&socket).call_ok("hello", json!({}));
    let idle = rss_mib(pid).map(|r| r.0).unwrap_or(f64::NAN);
    t.push(Row {
        metric: "idle RSS (after one `hello`)".into(),
        value: rss_text(pid),
        target: verdict("< 10 MB", idle < 10.0),
        ..Row::default()
    });

    let cli_samples = |args: &[&str], n: usize, check: &dyn Fn(&str)| -> Stats {
        let samples: Vec<Duration> = (0..n)
            .map(|_| {
                let (el, out) = time_cmd(d.cli().args(args), "openclaw");
                check(&out);
                el
            })
            .collect();
        stats(&samples)
    };

    eprintln!("CLI --version x{} ...", o.cli);
    let version = cli_samples(&["--version"], o.cli, &|_| {});
    t.push(Row::latency(
        "`openclaw --version` (process start, no socket)",
        &version,
        "`/bin/true`",
        floor,
    ));

    eprintln!("CLI spawn x{} ...", o.cli);
    let check_key = |out: &str| assert!(out.starts_with("agent:"), "spawn printed {out:?}");
    let spawn_echo = cli_samples(&["sessions", "spawn", "--task", "x"], o.cli, &check_key);
    t.push(
        Row::latency(
            "`openclaw sessions spawn --task x` (echo agent)",
            &spawn_echo,
            "`/bin/true`",
            floor,
        )
        .target(verdict(
            "< 3 ms median",
            spawn_echo.median < Duration::from_millis(3),
        )),
    );
    let spawn_t = cli_samples(
        &["sessions", "spawn", "--agent", "t", "--task", "x"],
        o.cli,
        &check_key,
    );
    t.push(
        Row::latency(
            "`openclaw sessions spawn --agent t --task x` (exec `true`)",
            &spawn_t,
            "`/bin/true`",
            floor,
        )
        .target(verdict(
            "< 3 ms median",
            spawn_t.median < Duration::from_millis(3),
        )),
    );

    eprintln!("shell loops x{} ...", o.cli);
    let loop_true = shell_loop(o.cli, Path::new("/bin/true"), &[], &[]);
    let loop_spawn = shell_loop(
        o.cli,
        Path::new(common::OPENCLAW),
        &["sessions", "spawn", "--agent", "t", "--task", "x"],
        &cli_env(&d),
    );
    let (r_spawn, r_true) = (rate(o.cli, loop_spawn), rate(o.cli, loop_true));
    t.push(Row::rate(
        "spawns/s from a shell loop (`--agent t`)",
        r_spawn,
        "loop of `/bin/true`",
        r_true,
    ));

    eprintln!("hello RPCs x{} ...", o.rpc);
    let (hello_samples, _, _) = sequential(&socket, o.rpc, "hello", hello_line);
    let hello = stats(&hello_samples);
    eprintln!("sessions.send + wait x{} ...", o.send);
    let socket_send = {
        let mut c = RawConn::connect(&socket);
        let mut samples = Vec::with_capacity(o.send);
        for i in 0..o.send {
            let t0 = Instant::now();
            let r = c.call(
                i as i64,
                "sessions.send",
                json!({"sessionKey": "main", "message": format!("ping {i}"), "timeoutSeconds": 30}),
            );
            samples.push(t0.elapsed());
            assert_eq!(r["result"]["status"], "ok", "send + wait: {r}");
        }
        stats(&samples)
    };
    t.push(Row::latency(
        "`sessions.send` + wait for the reply, echo (socket)",
        &socket_send,
        "`hello` round trip",
        &hello,
    ));

    eprintln!("CLI send x{} ...", o.cli_send);
    let cli_send = {
        let samples: Vec<Duration> = (0..o.cli_send)
            .map(|i| {
                let msg = format!("cli ping {i}");
                let (el, out) = time_cmd(
                    d.cli().args(["sessions", "send", "main", &msg]),
                    "openclaw sessions send",
                );
                assert_eq!(out.trim_end(), msg);
                el
            })
            .collect();
        stats(&samples)
    };
    t.push(Row::latency(
        "`openclaw sessions send main MSG` (echo, waits for the reply)",
        &cli_send,
        "socket send + wait",
        &socket_send,
    ));

    eprintln!("CLI wait x{} ...", o.cli_send);
    {
        let mut c = RawConn::connect(&socket);
        let mut rpc = Vec::new();
        let mut cli = Vec::new();
        for i in 0..o.cli_send {
            let spawn = |c: &mut RawConn| {
                c.call_ok(
                    "sessions.spawn",
                    json!({"task": format!("w{i}"), "agentId": "t"}),
                )["runId"]
                    .as_str()
                    .expect("runId")
                    .to_string()
            };
            let run = spawn(&mut c);
            let t0 = Instant::now();
            let r = c.call_ok("runs.wait", json!({"runId": run, "timeoutSeconds": 30}));
            rpc.push(t0.elapsed());
            assert_eq!(r["status"], "ok", "{r}");
            let run = spawn(&mut c);
            let (el, _) = time_cmd(
                d.cli().args(["sessions", "wait", &run, "--timeout", "30"]),
                "openclaw sessions wait",
            );
            cli.push(el);
        }
        let (rpc, cli) = (stats(&rpc), stats(&cli));
        t.push(Row::latency(
            "`openclaw sessions wait RUN` right after a spawn on `t` (until it ends)",
            &cli,
            "`runs.wait` on the socket",
            &rpc,
        ));
    }

    eprintln!("sequential RPCs x{} ...", o.rpc);
    let (samples, errors, last_seq) = sequential(&socket, o.rpc, "seq", spawn_line);
    let s = stats(&samples);
    t.push(Row {
        metric: "`sessions.spawn` RPC round trip, 1 connection, 1 in flight (durable)".into(),
        value: format!("{}{}", lat(&s), errors_text(errors)),
        baseline: format!("`hello` round trip {}", ms(hello.median)),
        ratio: ratio_lat(s.median, hello.median),
        target: String::new(),
    });

    eprintln!("pipelined x{} ...", o.pipeline);
    let (hello_el, _, _) = pipelined(&socket, o.pipeline, "hello", hello_line);
    let before = status(&socket);
    let (elapsed, errors, last_pipe) = pipelined(&socket, o.pipeline, "pipe", spawn_line);
    let after = status(&socket);
    let r = rate(o.pipeline, elapsed);
    let r_hello = rate(o.pipeline, hello_el);
    t.push(Row {
        metric: "durable spawns/s, 1 connection pipelined".into(),
        value: format!("{}{}", per_s(r), errors_text(errors)),
        baseline: format!("pipelined `hello` {}", per_s(r_hello)),
        ratio: ratio_rate(r, r_hello),
        target: verdict("≥ 10,000/s", r >= 10_000.0),
    });
    let commits =
        after["storeCommits"].as_u64().unwrap_or(0) - before["storeCommits"].as_u64().unwrap_or(0);
    let changes =
        after["storeChanges"].as_u64().unwrap_or(0) - before["storeChanges"].as_u64().unwrap_or(0);
    t.push(Row {
        metric: "group commit during that burst".into(),
        value: format!(
            "{changes} changes in {commits} commits ({:.1} per commit, {:.0} fsyncs/s)",
            changes as f64 / commits.max(1) as f64,
            commits as f64 / elapsed.as_secs_f64()
        ),
        ..Row::default()
    });

    eprintln!("{CONNECTIONS} connections closed-loop x{} ...", o.conc);
    let per = (o.conc / CONNECTIONS).max(1);
    let (results, elapsed) =
        on_connections(|c| sequential(&socket, per, &format!("conc{c}"), spawn_line));
    let errors: usize = results.iter().map(|r| r.1).sum();
    let all: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let st = stats(&all);
    let r8 = rate(per * CONNECTIONS, elapsed);
    let r1 = 1.0 / s.median.as_secs_f64();
    t.push(Row {
        metric: format!("durable spawns/s, {CONNECTIONS} connections × 1 in flight"),
        value: format!(
            "{} (call median {}, p99 {}){}",
            per_s(r8),
            ms(st.median),
            ms(st.p99),
            errors_text(errors)
        ),
        baseline: format!("1 connection × 1 in flight {}", per_s(r1)),
        ratio: ratio_rate(r8, r1),
        target: String::new(),
    });
    let last_conc = results.iter().filter_map(|r| r.2.clone()).next_back();

    eprintln!("{CONNECTIONS} connections pipelined x{} ...", o.conc);
    let (results, elapsed) =
        on_connections(|c| pipelined(&socket, per, &format!("pconc{c}"), spawn_line));
    let errors: usize = results.iter().map(|r| r.1).sum();
    let r8p = rate(per * CONNECTIONS, elapsed);
    t.push(Row {
        metric: format!("durable spawns/s, {CONNECTIONS} connections pipelined"),
        value: format!("{}{}", per_s(r8p), errors_text(errors)),
        baseline: format!("1 connection pipelined {}", per_s(r)),
        ratio: ratio_rate(r8p, r),
        target: String::new(),
    });
    let last_pconc = results.iter().filter_map(|r| r.2.clone()).next_back();

    t.add(
        "RSS right after the load (runs still queued)",
        rss_text(pid),
    );
    eprintln!("waiting for queued runs to finish ...");
    let t0 = Instant::now();
    for run in [last_seq, last_pipe, last_conc, last_pconc]
        .into_iter()
        .flatten()
    {
        wait_run(&socket, &run);
    }
    let drain = t0.elapsed();
    let total = o.cli * 2 + o.rpc + o.pipeline + 2 * per * CONNECTIONS;
    t.push(Row {
        metric: format!("RSS after the load, runs drained ({total} sessions in the store)"),
        value: rss_text(pid),
        baseline: format!("idle {idle:.1} MiB"),
        ..Row::default()
    });
    t.note(format!(
        "core: draining the echo runs queued by the load took {}; store {}",
        ms(drain),
        store_size(&d)
    ));
}
