//! Transcript messages as text for people: the lines of `sessions history`, also used by
//! `follow` as messages arrive.

use openclaw::protocol::Message;
use serde_json::Value;

use crate::output::{Paint, escape_controls, paint};

pub use crate::output::clip;

/// How transcript lines look: the form of `sessions history`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineStyle {
    pub color: bool,
    /// Make control characters visible (output to a terminal).
    pub escape: bool,
    pub timestamps: bool,
}

/// Column widths for transcript lines; messages rendered with the same widths line up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Widths {
    /// `#SEQ`, padded to this.
    pub seq: usize,
    pub ts: usize,
    pub role: usize,
}

/// Role width for lines printed one at a time: every common role lines up.
pub const STREAM_ROLE_WIDTH: usize = "assistant".len();

/// One message as a group of lines: `#SEQ [TS ]ROLE  CONTENT`, continuation lines indented
/// under the content so a multi-line reply stays readable.
pub fn render_message(message: &Message, style: LineStyle, widths: Widths) -> String {
    let seq_text = format!("#{}", message.seq);
    let seq_width = widths.seq.max(seq_text.len());
    let role = message.role.as_str();
    let role_width = widths.role.max(role.len());
    let ts_width = if style.timestamps {
        widths.ts.max(message.ts.len()) + 1
    } else {
        0
    };
    let mut out = String::new();
    out.push_str(&paint(
        style.color,
        Paint::Dim,
        &format!("{seq_text:<seq_width$}"),
    ));
    out.push(' ');
    if style.timestamps {
        let ts = format!("{:<width$}", message.ts, width = ts_width - 1);
        out.push_str(&paint(style.color, Paint::Dim, &ts));
        out.push(' ');
    }
    out.push_str(&paint(style.color, role_paint(role), role));
    let mut content = content_text(&message.content);
    if style.escape {
        content = escape_controls(&content);
    }
    let indent = " ".repeat(seq_width + 1 + ts_width + role_width + 2);
    let mut lines = content.lines();
    match lines.next() {
        Some(first) if !first.is_empty() => {
            out.extend(std::iter::repeat_n(' ', role_width - role.len() + 2));
            out.push_str(first);
        }
        _ => {}
    }
    for line in lines {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&indent);
            out.push_str(line);
        }
    }
    out.push('\n');
    out
}

pub fn role_paint(role: &str) -> Paint {
    match role {
        "user" => Paint::Cyan,
        "assistant" => Paint::Green,
        "tool_call" => Paint::Yellow,
        "tool_result" => Paint::Magenta,
        "announce" => Paint::Blue,
        _ => Paint::Dim,
    }
}

/// Message content as text: a string as is; typed blocks by their `text`, other blocks (and
/// any other JSON) compactly as JSON.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block {
                Value::String(text) => text.clone(),
                Value::Object(fields) => match fields.get("text") {
                    Some(Value::String(text)) => text.clone(),
                    _ => block.to_string(),
                },
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// Text on one line: control characters made visible, line breaks shown as `↵`.
pub fn one_line(text: &str) -> String {
    let text = text.trim_end_matches('\n');
    escape_controls(&text.replace("\r\n", "\n"))
        .replace('\n', "↵")
        .replace('\t', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_and_clip() {
        assert_eq!(one_line("a\nb\x1b\n"), "a↵b^[");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
