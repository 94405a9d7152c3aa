//! Live events as text for people, in the three forms of the streaming commands.

use std::collections::HashMap;

use openclaw::protocol::{EventKind, Role, RunEventParams, SessionMessageParams};
use serde_json::Value;

use super::events::{Kinds, LiveEvent};
use super::message::{
    LineStyle, STREAM_ROLE_WIDTH, Widths, clip, content_text, one_line, render_message, role_paint,
};
use super::outcome::ended_status;
use crate::output::{Paint, escape_controls, paint};

/// What a rendered event writes: some text for stdout, some for stderr (written in that
/// order).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Out {
    pub stdout: String,
    pub stderr: String,
}

/// The forms of human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `sessions follow`: the transcript as `history` shows it, assistant text streamed
    /// inline, other events as short lines.
    Transcript,
    /// `sessions subscribe`: one compact line per event, starting with the session key.
    Compact,
    /// `sessions send --stream`: the assistant's text alone on stdout as it streams, one line
    /// per tool call on stderr.
    Reply,
}

/// Turns events into text for people, remembering what is needed across events: the line of
/// streamed assistant text still open, what each run has streamed (so the final message is
/// not printed twice), tool names by call id.
#[derive(Debug)]
pub struct Renderer {
    form: Form,
    style: LineStyle,
    shown: Kinds,
    /// Both stdout and stderr are the same terminal: a stderr line must not land in the
    /// middle of a line of streamed text.
    shared_terminal: bool,
    /// The run whose assistant text is being streamed on an open line.
    open_run: Option<String>,
    /// The next streamed character starts a line (and needs the continuation indent).
    line_start: bool,
    /// Text streamed so far, per run.
    streamed: HashMap<String, String>,
    /// Tool names by run and call id, from their `start` events.
    tools: HashMap<(String, String), String>,
}

impl Renderer {
    pub fn new(form: Form, style: LineStyle, shown: Kinds, shared_terminal: bool) -> Renderer {
        Renderer {
            form,
            style,
            shown,
            shared_terminal,
            open_run: None,
            line_start: true,
            streamed: HashMap::new(),
            tools: HashMap::new(),
        }
    }

    /// The text of one event. Events of kinds not shown render as nothing but still keep
    /// the bookkeeping (an `ended` closes an open line).
    pub fn render(&mut self, event: &LiveEvent) -> Out {
        let mut out = Out::default();
        match event {
            LiveEvent::Message(m) => self.message(&mut out, m),
            LiveEvent::Run(e) => self.run_event(&mut out, e),
            LiveEvent::Changed(params) => {
                if self.shown.contains(EventKind::Lifecycle) && self.form != Form::Reply {
                    self.line(&mut out, changed_text(params, self.style.color), params);
                }
            }
            LiveEvent::Lagged(l) => {
                self.close_for_stderr(&mut out);
                out.stderr.push_str(&format!(
                    "note: this client fell behind and {} live events were skipped (streamed text may be incomplete; transcript messages are not affected)\n",
                    l.skipped
                ));
            }
            LiveEvent::Ended(_) => {}
        }
        out
    }

    /// What is still owed at the end: the newline of an open line of streamed text.
    pub fn finish(&mut self) -> Out {
        let mut out = Out::default();
        self.close(&mut out);
        out
    }

    /// Whether the next character printed on stdout starts a line.
    pub fn at_line_start(&self) -> bool {
        self.open_run.is_none() || self.line_start
    }

    /// For `send --stream`: what the run streamed, to check against its reply.
    pub fn streamed(&self, run_id: &str) -> Option<&str> {
        self.streamed.get(run_id).map(String::as_str)
    }

    /// For `send --stream`: tool calls that started and never ended, one line each on stderr.
    pub fn unfinished_tools(&mut self) -> Out {
        let mut out = Out::default();
        let mut names: Vec<String> = self.tools.drain().map(|(_, name)| name).collect();
        names.sort();
        if !names.is_empty() {
            self.close_for_stderr(&mut out);
        }
        for name in names {
            out.stderr
                .push_str(&format!("tool {} … unfinished\n", one_line(&name)));
        }
        out
    }

    fn message(&mut self, out: &mut Out, m: &SessionMessageParams) {
        if self.form == Form::Reply {
            return;
        }
        let message = &m.message;
        // The final reply of a run whose text was streamed: the streamed line stands for it.
        let streamed = match (&message.run_id, message.role) {
            (Some(run), Role::Assistant) => self.streamed.remove(run),
            _ => None,
        };
        if !self.shown.contains(EventKind::Message) {
            return;
        }
        match self.form {
            Form::Compact => {
                self.close(out);
                let text = clip(&one_line(&content_text(&message.content)), 200);
                let role = message.role.as_str();
                let line = format!(
                    "{} {}  {text}",
                    paint(self.style.color, Paint::Dim, &format!("#{}", message.seq)),
                    paint(self.style.color, role_paint(role), role)
                );
                self.keyed_line(out, &m.session_key, line);
            }
            Form::Transcript => {
                self.close(out);
                // Even when other lines came between the deltas, all of the text was shown;
                // a follow that joined mid-run showed its tail, from where it joined.
                if let Some(text) = streamed
                    && !text.trim_end().is_empty()
                    && content_text(&message.content)
                        .trim_end()
                        .ends_with(text.trim_end())
                {
                    return;
                }
                let widths = Widths {
                    role: STREAM_ROLE_WIDTH,
                    ..Widths::default()
                };
                out.stdout
                    .push_str(&render_message(message, self.style, widths));
            }
            Form::Reply => {}
        }
    }

    fn run_event(&mut self, out: &mut Out, e: &RunEventParams) {
        let Some(kind) = EventKind::parse(&e.stream) else {
            return;
        };
        let shown = self.shown.contains(kind);
        match kind {
            EventKind::Assistant => {
                let delta = e.data.get("delta").and_then(Value::as_str).unwrap_or("");
                if shown {
                    self.delta(out, e, delta);
                }
            }
            EventKind::Lifecycle => {
                let ended = ended_status(e).is_some();
                // The reply form ends its line with the reply, which comes after the end.
                if ended
                    && self.form != Form::Reply
                    && self.open_run.as_deref() == Some(e.run_id.as_str())
                {
                    self.close(out);
                }
                // The reply form still needs both once the result is in; elsewhere the
                // reply came before the end.
                if ended && self.form != Form::Reply {
                    self.tools.retain(|(run, _), _| *run != e.run_id);
                    self.streamed.remove(&e.run_id);
                }
                if shown && self.form != Form::Reply {
                    let text = paint(
                        self.style.color,
                        Paint::Dim,
                        &format!("run {} {}", e.run_id, lifecycle_text(&e.data)),
                    );
                    self.line(out, text, &json_key(&e.session_key));
                }
            }
            EventKind::Tool => self.tool(out, e, shown),
            EventKind::Thought | EventKind::Plan => {
                if shown && self.form != Form::Reply {
                    let what = if kind == EventKind::Plan {
                        let entries = e
                            .data
                            .get("entries")
                            .and_then(Value::as_array)
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        let steps: Vec<String> = entries
                            .iter()
                            .map(|s| {
                                let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
                                format!(
                                    "{} ({})",
                                    one_line(text("content")),
                                    one_line(text("status"))
                                )
                            })
                            .collect();
                        format!("plan ({} steps): {}", steps.len(), steps.join(" · "))
                    } else {
                        let delta = e.data.get("delta").and_then(Value::as_str).unwrap_or("");
                        format!(
                            "thinking {}",
                            serde_json::to_string(delta).unwrap_or_default()
                        )
                    };
                    let text = paint(self.style.color, Paint::Dim, &what);
                    self.line(out, text, &json_key(&e.session_key));
                }
            }
            EventKind::Usage => {
                if shown && self.form != Form::Reply {
                    let tokens = e
                        .data
                        .get("tokens")
                        .map_or("?".to_string(), |t| t.to_string());
                    let text = paint(
                        self.style.color,
                        Paint::Dim,
                        &format!("usage {tokens} tokens"),
                    );
                    self.line(out, text, &json_key(&e.session_key));
                }
            }
            EventKind::Message => {}
        }
    }

    fn delta(&mut self, out: &mut Out, e: &RunEventParams, delta: &str) {
        if self.form == Form::Compact {
            let line = format!(
                "{} {}",
                paint(self.style.color, Paint::Green, "delta"),
                serde_json::to_string(delta).unwrap_or_default()
            );
            self.keyed_line(out, &e.session_key, line);
            return;
        }
        self.streamed
            .entry(e.run_id.clone())
            .or_default()
            .push_str(delta);
        if delta.is_empty() {
            return;
        }
        if self.open_run.as_deref() != Some(e.run_id.as_str()) {
            self.close(out);
            self.open_run = Some(e.run_id.clone());
            self.line_start = false;
            if self.form == Form::Transcript {
                out.stdout
                    .push_str(&paint(self.style.color, Paint::Green, "assistant"));
                out.stdout.push_str("  ");
            }
        }
        let mut text = if self.style.escape {
            escape_controls(delta)
        } else {
            delta.to_string()
        };
        // The daemon gave only the tail of what the run streamed before this follow joined.
        if e.data.get("cut").and_then(Value::as_bool) == Some(true) {
            text.insert(0, '…');
        }
        // Continuation lines of the transcript form sit under the text, as in history.
        let indent = match self.form {
            Form::Transcript => STREAM_ROLE_WIDTH + 2,
            _ => 0,
        };
        for c in text.chars() {
            if c == '\n' {
                out.stdout.push('\n');
                self.line_start = true;
                continue;
            }
            if self.line_start {
                out.stdout.extend(std::iter::repeat_n(' ', indent));
                self.line_start = false;
            }
            out.stdout.push(c);
        }
    }

    fn tool(&mut self, out: &mut Out, e: &RunEventParams, shown: bool) {
        let phase = e.data.get("phase").and_then(Value::as_str).unwrap_or("");
        let id = e
            .data
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = (e.run_id.clone(), id.clone());
        let given = e.data.get("name").and_then(Value::as_str);
        let name = match (phase, given) {
            ("start", Some(name)) => {
                self.tools.insert(key.clone(), name.to_string());
                name.to_string()
            }
            (_, Some(name)) => name.to_string(),
            _ => self.tools.get(&key).cloned().unwrap_or_else(|| {
                if id.is_empty() {
                    "?".into()
                } else {
                    id.clone()
                }
            }),
        };
        if phase == "end" {
            self.tools.remove(&key);
        }
        if !shown {
            return;
        }
        let status = e.data.get("status").and_then(Value::as_str);
        match self.form {
            Form::Reply => {
                // One line per call, when it is over.
                if phase == "end" {
                    self.close_for_stderr(out);
                    out.stderr.push_str(&format!(
                        "tool {} … {}\n",
                        one_line(&name),
                        one_line(status.unwrap_or("ok"))
                    ));
                }
            }
            Form::Transcript | Form::Compact => {
                let detail = match phase {
                    "start" => e.data.get("input").map(compact_json),
                    _ => e.data.get("output").map(|o| match o {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                };
                let mut text = format!(
                    "{} {} {}",
                    paint(self.style.color, Paint::Yellow, "tool"),
                    one_line(&name),
                    phase
                );
                if let Some(status) = status {
                    text.push(' ');
                    text.push_str(&one_line(status));
                }
                if let Some(detail) = detail.filter(|d| !d.is_empty()) {
                    text.push_str(": ");
                    text.push_str(&clip(&one_line(&detail), 200));
                }
                self.line(out, text, &json_key(&e.session_key));
            }
        }
    }

    /// A whole line on stdout, after closing an open streamed line; with the session key
    /// first in the compact form.
    fn line(&mut self, out: &mut Out, text: String, params: &Value) {
        self.close(out);
        if self.form == Form::Compact {
            let key = params
                .get("sessionKey")
                .and_then(Value::as_str)
                .unwrap_or("?");
            self.keyed_line(out, key, text);
        } else {
            out.stdout.push_str(&text);
            out.stdout.push('\n');
        }
    }

    fn keyed_line(&mut self, out: &mut Out, key: &str, text: String) {
        out.stdout
            .push_str(&paint(self.style.color, Paint::Bold, &one_line(key)));
        out.stdout.push(' ');
        out.stdout.push_str(&text);
        out.stdout.push('\n');
    }

    /// Ends an open line of streamed text.
    fn close(&mut self, out: &mut Out) {
        if self.open_run.take().is_some() && !self.line_start {
            out.stdout.push('\n');
        }
        self.line_start = true;
    }

    /// Before a line on stderr: on a shared terminal it must start on a line of its own.
    fn close_for_stderr(&mut self, out: &mut Out) {
        if self.shared_terminal && !self.line_start {
            out.stdout.push('\n');
            self.line_start = true;
        }
    }
}

fn json_key(key: &str) -> Value {
    serde_json::json!({ "sessionKey": key })
}

fn compact_json(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `queued`, `started`, `ended ok`, `ended error: boom`.
fn lifecycle_text(data: &Value) -> String {
    let phase = data.get("phase").and_then(Value::as_str).unwrap_or("?");
    let mut text = one_line(phase);
    if let Some(status) = data.get("status").and_then(Value::as_str) {
        text.push(' ');
        text.push_str(&one_line(status));
    }
    if let Some(error) = data.get("error").and_then(Value::as_str) {
        text.push_str(": ");
        text.push_str(&clip(&one_line(error), 200));
    }
    // A backend retrying a request (`openai` on 429/5xx): why, and which attempt comes.
    if let Some(reason) = data.get("reason").and_then(Value::as_str) {
        text.push_str(": ");
        text.push_str(&clip(&one_line(reason), 200));
    }
    if let (Some(n), Some(max)) = (
        data.get("attempt").and_then(Value::as_u64),
        data.get("maxAttempts").and_then(Value::as_u64),
    ) {
        text.push_str(&format!(" (attempt {n} of {max})"));
    }
    text
}

/// `session create (idle)`.
fn changed_text(params: &Value, color: bool) -> String {
    let phase = params.get("phase").and_then(Value::as_str).unwrap_or("?");
    let status = params
        .get("session")
        .and_then(|s| s.get("status"))
        .and_then(Value::as_str);
    let text = match status {
        Some(status) => format!("session {} ({})", one_line(phase), one_line(status)),
        None => format!("session {}", one_line(phase)),
    };
    paint(color, Paint::Dim, &text)
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
