//! `sessions kill`, `patch` and `delete`.

use clap::Args;
use openclaw::protocol::{DeleteParams, KillParams, KillResult, PatchParams, SendPolicy, methods};

use super::super::{Context, call_raw, typed};
use crate::failure::Failure;
use crate::output::{print_json, write_stdout};

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Session: key, id, unique prefix (6+ characters) or label
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Also abort the runs queued behind the active one
    #[arg(long)]
    pub clear_queued: bool,
}

pub fn kill(ctx: &Context, args: KillArgs) -> Result<(), Failure> {
    let params = KillParams {
        session_key: args.key,
        clear_queued: args.clear_queued.then_some(true),
    };
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::SESSIONS_KILL, &params)?;
    if ctx.json {
        return print_json(&raw);
    }
    let killed: KillResult = typed(methods::SESSIONS_KILL, raw)?;
    let stopped: String = killed
        .aborted_run_id
        .iter()
        .chain(&killed.cleared_run_ids)
        .map(|run| format!("{run}\n"))
        .collect();
    write_stdout(&stopped)
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Session: key, id, unique prefix (6+ characters) or label
    #[arg(value_name = "KEY")]
    pub key: String,
    /// New label; an empty string removes it
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Archive (true) or unarchive (false) the session
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub archived: Option<bool>,
    /// Whether the session accepts sends
    #[arg(long, value_enum, value_name = "POLICY")]
    pub send_policy: Option<SendPolicy>,
    /// Model for the session's next runs, where its backend has a choice; an empty string goes back to the agent's
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
}

fn patch_params(args: PatchArgs) -> Result<PatchParams, Failure> {
    if args.label.is_none()
        && args.archived.is_none()
        && args.send_policy.is_none()
        && args.model.is_none()
    {
        return Err(Failure::usage(
            "nothing to change: give --label, --archived, --send-policy or --model",
        ));
    }
    Ok(PatchParams {
        session_key: args.key,
        label: args.label,
        send_policy: args.send_policy.map(|p| p.as_str().to_string()),
        archived: args.archived,
        model: args.model,
    })
}

pub fn patch(ctx: &Context, args: PatchArgs) -> Result<(), Failure> {
    let params = patch_params(args)?;
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::SESSIONS_PATCH, &params)?;
    if ctx.json { print_json(&raw) } else { Ok(()) }
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Session: key, id, unique prefix (6+ characters) or label
    #[arg(value_name = "KEY")]
    pub key: String,
}

pub fn delete(ctx: &Context, args: DeleteArgs) -> Result<(), Failure> {
    let params = DeleteParams {
        session_key: args.key,
    };
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::SESSIONS_DELETE, &params)?;
    if ctx.json { print_json(&raw) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::parse;
    use crate::failure::Exit;
    use serde_json::json;

    #[test]
    fn patch_needs_something_to_change() {
        let SessionsCommand::Patch(args) = parse(&["patch", "k"]) else {
            panic!()
        };
        assert_eq!(patch_params(args).unwrap_err().exit, Exit::Usage);
        let SessionsCommand::Patch(args) = parse(&[
            "patch",
            "k",
            "--archived",
            "yes",
            "--send-policy",
            "deny",
            "--label",
            "",
        ]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(patch_params(args).unwrap()).unwrap(),
            json!({"sessionKey": "k", "label": "", "sendPolicy": "deny", "archived": true})
        );
    }
}
