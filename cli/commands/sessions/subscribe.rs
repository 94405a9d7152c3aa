//! `sessions subscribe`: live events of every session, one session or one run, until Ctrl-C,
//! the reader of stdout going away, or (with `--run`) the run's end.

use clap::Args;
use openclaw::client::blocking::Wait;
use openclaw::protocol::{EventKind, SubscribeParams, SubscribeResult, methods};

use super::super::{Context, typed};
use super::follow::{line_style, shared_terminal};
use super::wait::Ended;
use crate::connection::Connection;
use crate::failure::{Exit, Failure};
use crate::output::{write_both, write_stdout};
use crate::stream::events::{Kinds, LiveEvent, json_line, subscription_of};
use crate::stream::render::{Form, Renderer};
use crate::watch::{Watch, Woke};

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Which events, comma-separated (default: all)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub events: Vec<EventKind>,
    /// Only this session's events (key, id, unique prefix or label)
    #[arg(long, value_name = "KEY")]
    pub session: Option<String>,
    /// Only this run's events; exits when the run ends
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
}

fn subscribe_params(args: &SubscribeArgs) -> SubscribeParams {
    SubscribeParams {
        session_key: args.session.clone(),
        after_seq: None,
        run_id: args.run.clone(),
        events: (!args.events.is_empty()).then(|| Kinds::of(&args.events).to_vec()),
    }
}

pub fn subscribe(ctx: &Context, args: SubscribeArgs) -> Result<(), Failure> {
    let watch = Watch::ctrl_c().and_stdout();
    let mut client = ctx.client()?;
    match watch_events(ctx, &mut client, &args, &watch) {
        Ok(()) => Ok(()),
        Err(Ended::Woke(Woke::Interrupted)) => Err(Failure::interrupted()),
        Err(Ended::Woke(Woke::StdoutGone)) => Err(Failure::stdout_closed()),
        Err(Ended::Failed(failure)) => Err(failure),
    }
}

fn watch_events(
    ctx: &Context,
    client: &mut Connection,
    args: &SubscribeArgs,
    watch: &Watch,
) -> Result<(), Ended> {
    let wakes = watch.wakes();
    let wait = Wait {
        deadline: None,
        wake: &wakes,
    };
    let params = subscribe_params(args);
    let raw = client
        .call_value_with(methods::SESSIONS_SUBSCRIBE, &params, &wait)
        .map_err(|e| Ended::of(e, watch))?;
    let sub: SubscribeResult = typed(methods::SESSIONS_SUBSCRIBE, raw).map_err(Ended::Failed)?;
    let shown = if args.events.is_empty() {
        Kinds::of(&EventKind::ALL)
    } else {
        Kinds::of(&args.events)
    };
    let mut renderer = Renderer::new(
        Form::Compact,
        line_style(ctx, false),
        shown,
        shared_terminal(ctx),
    );
    let mut shutdown = false;
    while let Some(notification) = client
        .next_notification(&wait)
        .map_err(|e| Ended::of(e, watch))?
    {
        if subscription_of(&notification.params) != Some(sub.subscription.as_str()) {
            continue;
        }
        let method = notification.method;
        let event = LiveEvent::parse(&method, &notification.params).unwrap_or_else(|err| {
            tracing::warn!(%method, %err, "cannot read a notification; skipped");
            None
        });
        if ctx.json {
            write_stdout(&json_line(&method, notification.params)).map_err(Ended::Failed)?;
        } else if let Some(event) = &event {
            let out = renderer.render(event);
            write_both(&out.stdout, &out.stderr).map_err(Ended::Failed)?;
        }
        if let Some(LiveEvent::Ended(ended)) = event {
            match ended.reason.as_str() {
                "deleted" => {
                    return Err(Ended::Failed(Failure::new(
                        Exit::NotFound,
                        format!(
                            "session {} was deleted",
                            sub.session_key.as_deref().unwrap_or("?")
                        ),
                    )));
                }
                "shutdown" => shutdown = true,
                // `--run`: the run is over, and so is watching it.
                "unsubscribed" | "run_ended" => return Ok(()),
                other => {
                    return Err(Ended::Failed(Failure::failed(format!(
                        "the daemon ended the subscription ({other})"
                    ))));
                }
            }
        }
    }
    Err(Ended::Failed(Failure::new(
        Exit::Unreachable,
        if shutdown {
            "the daemon stopped"
        } else {
            client.lost_reason()
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::parse;
    use serde_json::json;

    #[test]
    fn subscribe_flags_map_onto_params() {
        let SessionsCommand::Subscribe(args) = parse(&[
            "subscribe",
            "--events",
            "message,lifecycle",
            "--session",
            "k",
            "--run",
            "r",
        ]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(subscribe_params(&args)).unwrap(),
            json!({"sessionKey": "k", "runId": "r", "events": ["message", "lifecycle"]})
        );
        let SessionsCommand::Subscribe(args) = parse(&["subscribe"]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(subscribe_params(&args)).unwrap(),
            json!({})
        );
    }
}
