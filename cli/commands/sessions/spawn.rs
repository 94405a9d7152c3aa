//! `sessions spawn`: a new session on a task, its key printed at once; `--wait` and
//! `--follow` then stay for its run.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::Args;
use openclaw::protocol::{
    Attachment, Cleanup, DEFAULT_WAIT_SECONDS, EventKind, Runtime, SpawnMode, SpawnParams,
    SpawnResult, methods,
};
use serde_json::Value;

use super::super::{Context, call_raw, nonblank_text_or_stdin, parse_seconds, typed};
use super::follow;
use super::wait::{Print, WaitFor, wait_for_run};
use crate::failure::Failure;
use crate::output::{diagnostic, print_json, print_line};
use crate::watch::Watch;

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// The task, the session's first message; `-` reads it from stdin
    #[arg(long, value_name = "TEXT")]
    pub task: String,
    /// Agent to run the session (default: the configured default agent)
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Name the session, e.g. cron:nightly or hook:github: its kind and lane come from the prefix, and a later spawn or send with the same key goes to the same session
    #[arg(long, value_name = "cron:NAME|hook:NAME")]
    pub key: Option<String>,
    /// A label to recognise the session by
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Model for the agent to use, where its backend has a choice
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Thinking level, where the backend supports one
    #[arg(long, value_name = "LEVEL")]
    pub thinking: Option<String>,
    /// Abort the run after this many seconds (it then ends with status timeout)
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Put FILE into the session's workspace (repeatable); binary files are sent base64-encoded
    #[arg(long = "attach", value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Record KEY as the session's parent: it is told (announce) when this run ends
    #[arg(long, value_name = "KEY")]
    pub parent: Option<String>,
    /// What happens to the session after its run
    #[arg(long, value_enum, value_name = "WHEN")]
    pub cleanup: Option<Cleanup>,
    /// One run, or a session that takes further sends
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<SpawnMode>,
    /// Runtime of the session
    #[arg(long, value_enum, value_name = "RUNTIME")]
    pub runtime: Option<Runtime>,
    /// ACP runtime only: relay the child's progress to TARGET (e.g. parent); ignored, with a notice, otherwise
    #[arg(long, value_name = "TARGET")]
    pub stream_to: Option<String>,
    /// ACP runtime only: resume this ACP session; ignored, with a notice, otherwise
    #[arg(long, visible_alias = "resume", value_name = "ID")]
    pub resume_session_id: Option<String>,
    /// Retrying with the same KEY returns the first spawn instead of spawning twice
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Wait for the run and print its reply, as `openclaw sessions wait` does
    #[arg(long, conflicts_with = "follow")]
    pub wait: bool,
    /// Print the key on stderr, then the session's transcript as it grows until the run ends; the exit status is the run's, as with `follow --until-done`
    #[arg(long)]
    pub follow: bool,
    /// With --follow: what to print, comma-separated (default: message, and on a terminal assistant)
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LIST",
        requires = "follow"
    )]
    pub events: Vec<EventKind>,
    /// With --wait: how long to wait
    #[arg(long, value_name = "SECS", requires = "wait", value_parser = parse_seconds, default_value_t = DEFAULT_WAIT_SECONDS)]
    pub wait_timeout: f64,
    /// Print only the session key: no notes, no reply (--wait still waits, and the exit status is the run's)
    #[arg(long, short, conflicts_with = "follow")]
    pub quiet: bool,
}

fn spawn_params(args: &SpawnArgs, task: String, attachments: Vec<Attachment>) -> SpawnParams {
    SpawnParams {
        key: args.key.clone(),
        task,
        agent_id: args.agent.clone(),
        label: args.label.clone(),
        model: args.model.clone(),
        thinking: args.thinking.clone(),
        run_timeout_seconds: args.timeout,
        mode: args.mode,
        cleanup: args.cleanup,
        runtime: args.runtime,
        attachments,
        parent_key: args.parent.clone(),
        stream_to: args.stream_to.clone().map(Value::String),
        resume_session_id: args.resume_session_id.clone().map(Value::String),
        idempotency_key: args.idempotency_key.clone(),
    }
}

/// A file for the session's workspace, named after the file: UTF-8 text as is, anything else
/// base64-encoded.
fn read_attachment(path: &Path) -> Result<Attachment, Failure> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Failure::usage(format!(
                "cannot attach {}: an attachment needs a file name in UTF-8",
                path.display()
            ))
        })?
        .to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::failed(format!("cannot read attachment {}: {e}", path.display())))?;
    Ok(attachment_from_bytes(name, bytes))
}

fn attachment_from_bytes(name: String, bytes: Vec<u8>) -> Attachment {
    match String::from_utf8(bytes) {
        Ok(content) => Attachment {
            name,
            content,
            encoding: None,
        },
        Err(not_utf8) => Attachment {
            name,
            content: base64::engine::general_purpose::STANDARD.encode(not_utf8.as_bytes()),
            encoding: Some("base64".to_string()),
        },
    }
}

pub fn spawn(ctx: &Context, args: SpawnArgs) -> Result<(), Failure> {
    let task = nonblank_text_or_stdin(&args.task, "task")?;
    let attachments = args
        .attach
        .iter()
        .map(|path| read_attachment(path))
        .collect::<Result<Vec<_>, _>>()?;
    let params = spawn_params(&args, task, attachments);
    // Caught before the spawn for a command that stays for the run: from then on Ctrl-C only
    // ends the watching.
    let watch = match (args.wait, args.follow) {
        (true, _) => Some(Watch::ctrl_c()),
        (_, true) => Some(Watch::ctrl_c().and_stdout()),
        _ => None,
    };
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::SESSIONS_SPAWN, &params)?;
    let spawned: SpawnResult = typed(methods::SESSIONS_SPAWN, raw.clone())?;
    if !spawned.ignored_fields.is_empty() && !args.quiet {
        diagnostic(
            "note",
            &format!(
                "the daemon ignored {}: {} only to the acp runtime",
                spawned.ignored_fields.join(", "),
                if spawned.ignored_fields.len() == 1 {
                    "it applies"
                } else {
                    "they apply"
                }
            ),
        );
    }
    if args.quiet {
        print_line(&spawned.session_key)?;
    }
    if let Some(watch) = &watch {
        if args.wait {
            let print = if args.quiet {
                Print::Nothing
            } else {
                Print::Reply
            };
            return wait_for_run(
                ctx,
                &mut client,
                WaitFor::Run(spawned.run_id),
                args.wait_timeout,
                print,
                watch,
            );
        }
        return follow::follow_spawned(ctx, client, spawned, &args.events, watch);
    }
    if args.quiet {
        Ok(())
    } else if ctx.json {
        print_json(&raw)
    } else {
        print_line(&spawned.session_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::{parse, refused};
    use serde_json::json;

    fn spawn_args(args: &[&str]) -> SpawnArgs {
        let mut argv = vec!["spawn"];
        argv.extend_from_slice(args);
        match parse(&argv) {
            SessionsCommand::Spawn(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spawn_flags_map_onto_spawn_params() {
        let args = spawn_args(&[
            "--task",
            "t",
            "--agent",
            "worker",
            "--label",
            "daily",
            "--model",
            "m",
            "--timeout",
            "2.5",
            "--parent",
            "agent:main:main",
            "--cleanup",
            "delete",
            "--mode",
            "session",
            "--runtime",
            "acp",
            "--idempotency-key",
            "abc",
            "--thinking",
            "high",
        ]);
        let wire = serde_json::to_value(spawn_params(&args, "t".into(), vec![])).unwrap();
        assert_eq!(
            wire,
            json!({
                "task": "t", "agentId": "worker", "label": "daily", "model": "m",
                "thinking": "high", "runTimeoutSeconds": 2.5, "mode": "session",
                "cleanup": "delete", "runtime": "acp", "parentKey": "agent:main:main",
                "idempotencyKey": "abc"
            })
        );
    }

    #[test]
    fn minimal_spawn_sends_only_the_task() {
        let args = spawn_args(&["--task", "hi"]);
        let wire = serde_json::to_value(spawn_params(&args, "hi".into(), vec![])).unwrap();
        assert_eq!(wire, json!({"task": "hi"}));
        assert!(!args.wait && !args.quiet);
    }

    #[test]
    fn acp_only_flags_are_sent_for_the_daemon_to_judge() {
        let args = spawn_args(&[
            "--task",
            "t",
            "--stream-to",
            "parent",
            "--resume-session-id",
            "r",
        ]);
        let wire = serde_json::to_value(spawn_params(&args, "t".into(), vec![])).unwrap();
        assert_eq!(wire["streamTo"], "parent");
        assert_eq!(wire["resumeSessionId"], "r");
    }

    #[test]
    fn wait_timeout_needs_wait_and_events_need_follow() {
        assert_eq!(refused(&["spawn", "--task", "t", "--wait-timeout", "3"]), 2);
        let args = spawn_args(&["--task", "t", "--wait", "--wait-timeout", "3"]);
        assert_eq!((args.wait, args.wait_timeout), (true, 3.0));
        assert_eq!(refused(&["spawn", "--task", "t", "--events", "tool"]), 2);
        let args = spawn_args(&["--task", "t", "--follow", "--events", "assistant,tool"]);
        assert_eq!(args.events, [EventKind::Assistant, EventKind::Tool]);
    }

    #[test]
    fn attachments_are_utf8_or_base64() {
        let text = attachment_from_bytes("a.txt".into(), b"hello".to_vec());
        assert_eq!((text.content.as_str(), text.encoding), ("hello", None));
        let binary = attachment_from_bytes("b.bin".into(), vec![0xff, 0x00]);
        assert_eq!(binary.content, "/wA=");
        assert_eq!(binary.encoding.as_deref(), Some("base64"));
        let all = attachment_from_bytes("c.bin".into(), vec![0xfb, 0xef, 0xbe, 0xff, 0xfe]);
        assert_eq!(all.content, "++++//4=");
    }

    #[test]
    fn attachment_is_named_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.md");
        std::fs::write(&path, "# notes").unwrap();
        let a = read_attachment(&path).unwrap();
        assert_eq!(
            (a.name.as_str(), a.content.as_str()),
            ("notes.md", "# notes")
        );
        let missing = read_attachment(&dir.path().join("nope")).unwrap_err();
        assert!(missing.message.unwrap().contains("nope"));
    }

    #[test]
    fn spawn_follow_and_wait_conflict() {
        assert!(spawn_args(&["--task", "t", "--follow"]).follow);
        assert_eq!(refused(&["spawn", "--task", "t", "--follow", "--wait"]), 2);
    }
}
