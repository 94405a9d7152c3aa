//! `sessions history`: a page of the transcript, or with `--seq N --full` one message whole,
//! read in chunks however large it is.

use clap::Args;
use openclaw::protocol::{
    HistoryParams, HistoryResult, Message, MessageChunkResult, MessageParams, methods,
};
use serde_json::Value;

use super::super::{Context, call_raw, typed};
use super::follow::line_style;
use crate::connection::Connection;
use crate::failure::Failure;
use crate::output::{Paint, diagnostic, escape_controls, paint, print_json, write_stdout};
use crate::stream::message::{LineStyle, Widths, render_message};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Session: key, id, unique prefix (6+ characters) or label
    #[arg(value_name = "KEY")]
    pub key: String,
    /// How many of the newest messages (at most 1000)
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue with older messages: the nextCursor of the previous page
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Include tool results (left out by default)
    #[arg(long)]
    pub include_tools: bool,
    /// Show each message's time (RFC 3339, UTC)
    #[arg(long)]
    pub timestamps: bool,
    /// With --full: the message to print
    #[arg(long, value_name = "N", requires = "full")]
    pub seq: Option<u64>,
    /// Print message --seq whole, however large: its content alone (with --json, the message with all of its content)
    #[arg(long, requires = "seq", conflicts_with_all = ["cursor", "timestamps"])]
    pub full: bool,
}

pub fn history(ctx: &Context, args: HistoryArgs) -> Result<(), Failure> {
    let mut client = ctx.client()?;
    if let (true, Some(seq)) = (args.full, args.seq) {
        return full_message(ctx, &mut client, &args.key, seq);
    }
    let params = HistoryParams {
        session_key: args.key,
        limit: Some(args.limit),
        cursor: args.cursor,
        include_tools: args.include_tools.then_some(true),
    };
    let raw = call_raw(&mut client, methods::SESSIONS_HISTORY, &params)?;
    if ctx.json {
        return print_json(&raw);
    }
    let page: HistoryResult = typed(methods::SESSIONS_HISTORY, raw)?;
    let style = line_style(ctx, args.timestamps);
    write_stdout(&render_history(&page.messages, style, &page.session_key))?;
    if page.has_more
        && ctx.terminal.stderr_is_tty
        && let Some(cursor) = &page.next_cursor
    {
        diagnostic(
            "note",
            &format!(
                "older messages: openclaw sessions history {} --cursor {cursor}",
                page.session_key
            ),
        );
    }
    Ok(())
}

/// One group of lines per message (`#SEQ [TS ]ROLE  CONTENT`), columns lined up over the page;
/// a message cut to fit the page says so, and how to read it whole.
fn render_history(messages: &[Message], style: LineStyle, key: &str) -> String {
    let widths = Widths {
        seq: messages
            .iter()
            .map(|m| m.seq.to_string().len() + 1)
            .max()
            .unwrap_or(0),
        ts: messages.iter().map(|m| m.ts.len()).max().unwrap_or(0),
        role: messages
            .iter()
            .map(|m| m.role.as_str().len())
            .max()
            .unwrap_or(0),
    };
    let mut out = String::new();
    for m in messages {
        out.push_str(&render_message(m, style, widths));
        if m.truncated == Some(true) {
            let size = m.bytes.map_or(String::new(), |b| format!(" of {b} bytes"));
            let note = format!(
                "(cut to fit the page: this is part{size}; `openclaw sessions history {key} --seq {} --full` prints it whole)",
                m.seq
            );
            out.push_str(&" ".repeat(widths.seq.max(2) + 1));
            out.push_str(&paint(style.color, Paint::Dim, &note));
            out.push('\n');
        }
    }
    out
}

/// A message's content whole, read chunk by chunk through `sessions.message`.
fn full_message(
    ctx: &Context,
    client: &mut Connection,
    key: &str,
    seq: u64,
) -> Result<(), Failure> {
    let mut offset = 0u64;
    let mut text = String::new();
    let mut first: Option<MessageChunkResult> = None;
    loop {
        let params = MessageParams {
            session_key: key.to_string(),
            seq,
            offset: (offset > 0).then_some(offset),
            length: None,
        };
        let raw = call_raw(client, methods::SESSIONS_MESSAGE, &params)?;
        let chunk: MessageChunkResult = typed(methods::SESSIONS_MESSAGE, raw)?;
        let part = chunk.message.content.as_str().unwrap_or_default();
        if chunk.offset != offset {
            return Err(Failure::failed(format!(
                "the daemon answered message #{seq} from byte {} when asked for byte {offset}",
                chunk.offset
            )));
        }
        offset += part.len() as u64;
        text.push_str(part);
        let more = chunk.has_more;
        if more && part.is_empty() {
            return Err(Failure::failed(format!(
                "the daemon sent an empty chunk of message #{seq} at byte {offset} of {}",
                chunk.total_bytes
            )));
        }
        first.get_or_insert(chunk);
        if !more {
            break;
        }
    }
    let Some(chunk) = first else {
        return Ok(());
    };
    let content = if chunk.encoding == "json" {
        serde_json::from_str::<Value>(&text).map_err(|e| {
            Failure::failed(format!(
                "the chunks of message #{seq} do not make valid JSON together ({e})"
            ))
        })?
    } else {
        Value::String(text)
    };
    if ctx.json {
        let mut message = chunk.message;
        message.content = content;
        message.truncated = None;
        message.bytes = None;
        let value = serde_json::to_value(&message)
            .map_err(|e| Failure::failed(format!("cannot encode the message: {e}")))?;
        return print_json(&value);
    }
    let text = match content {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let text = if ctx.terminal.stdout_is_tty {
        escape_controls(&text)
    } else {
        text
    };
    write_stdout(&text)?;
    if ctx.terminal.stdout_is_tty && !text.ends_with('\n') {
        write_stdout("\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sessions::SessionsCommand;
    use crate::commands::sessions::test_support::{parse, refused};
    use crate::stream::test_support::message;
    use openclaw::protocol::Role;

    #[test]
    fn history_groups_lines_per_message() {
        let messages = [
            message(9, Role::User, "run the report", None),
            message(10, Role::Assistant, "line one\nline two", None),
        ];
        let expected = "\
#9  user       run the report
#10 assistant  line one
               line two
";
        assert_eq!(
            render_history(&messages, LineStyle::default(), "k"),
            expected
        );
    }

    #[test]
    fn history_with_timestamps_and_escaping() {
        let messages = [message(1, Role::Assistant, "\x1b[2Jgone\n", None)];
        let style = LineStyle {
            escape: true,
            timestamps: true,
            ..LineStyle::default()
        };
        assert_eq!(
            render_history(&messages, style, "k"),
            "#1 2026-11-21T23:19:23.123Z assistant  ^[[2Jgone\n"
        );
    }

    #[test]
    fn history_colours_the_role_but_keeps_alignment() {
        let messages = [message(1, Role::User, "hi", None)];
        let style = LineStyle {
            color: true,
            ..LineStyle::default()
        };
        assert_eq!(
            render_history(&messages, style, "k"),
            "\x1b[2m#1\x1b[0m \x1b[36muser\x1b[0m  hi\n"
        );
    }

    #[test]
    fn a_cut_message_says_how_to_read_it_whole() {
        let mut m = message(7, Role::Assistant, "the start of it", None);
        m.truncated = Some(true);
        m.bytes = Some(9_000_000);
        let out = render_history(&[m], LineStyle::default(), "agent:main:main");
        assert!(out.starts_with("#7 assistant  the start of it\n"), "{out}");
        assert!(out.contains("of 9000000 bytes"), "{out}");
        assert!(
            out.contains("`openclaw sessions history agent:main:main --seq 7 --full`"),
            "{out}"
        );
    }

    #[test]
    fn empty_history_prints_nothing() {
        assert_eq!(render_history(&[], LineStyle::default(), "k"), "");
    }

    #[test]
    fn history_limit_is_bounded_and_full_needs_a_seq() {
        assert_eq!(refused(&["history", "k", "--limit", "1001"]), 2);
        assert_eq!(refused(&["history", "k", "--full"]), 2);
        assert_eq!(refused(&["history", "k", "--seq", "3"]), 2);
        let SessionsCommand::History(args) = parse(&["history", "k", "--seq", "3", "--full"])
        else {
            panic!()
        };
        assert_eq!((args.seq, args.full, args.limit), (Some(3), true, 50));
    }
}
