//! Live events as the commands that stream them see them (`sessions follow`, `subscribe`,
//! `send --stream`): what kind each notification is, how it looks as a JSON line and as text
//! for people, which transcript messages a follow has already printed, and what a run's end
//! means for the exit status. Everything here is pure; the commands do the I/O.

use std::collections::HashMap;

use openclaw::protocol::{
    EventKind, Message, Role, RunEventParams, RunResult, RunStatus, SessionMessageParams,
    SubscriptionEndedParams, SubscriptionLaggedParams, WaitStatus, notifications,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::failure::Failure;
use crate::output::{Paint, escape_controls, paint};

// ---------------------------------------------------------------- events

/// A notification the daemon pushed, decoded. The raw params are kept alongside by callers
/// that print JSON, so fields this CLI does not know survive.
#[derive(Debug)]
pub enum LiveEvent {
    Message(SessionMessageParams),
    /// `sessions.changed`, kept raw: only a few fields are shown, and a row this CLI cannot
    /// read fully must not hide the event.
    Changed(Value),
    Run(RunEventParams),
    Lagged(SubscriptionLaggedParams),
    Ended(SubscriptionEndedParams),
}

impl LiveEvent {
    /// The event, or `None` for a method this CLI does not know (newer daemon).
    pub fn parse(method: &str, params: &Value) -> Result<Option<LiveEvent>, serde_json::Error> {
        Ok(Some(match method {
            notifications::SESSION_MESSAGE => {
                LiveEvent::Message(SessionMessageParams::deserialize(params)?)
            }
            notifications::SESSIONS_CHANGED => LiveEvent::Changed(params.clone()),
            notifications::RUN_EVENT => LiveEvent::Run(RunEventParams::deserialize(params)?),
            notifications::SUBSCRIPTION_LAGGED => {
                LiveEvent::Lagged(SubscriptionLaggedParams::deserialize(params)?)
            }
            notifications::SUBSCRIPTION_ENDED => {
                LiveEvent::Ended(SubscriptionEndedParams::deserialize(params)?)
            }
            _ => return Ok(None),
        }))
    }
}

/// Which `--events` kind a notification belongs to; `None` for the subscription's own news
/// (lagged, ended) and for methods this CLI does not know, which are always passed on.
pub fn event_kind(method: &str, params: &Value) -> Option<EventKind> {
    match method {
        notifications::SESSION_MESSAGE => Some(EventKind::Message),
        notifications::SESSIONS_CHANGED => Some(EventKind::Lifecycle),
        notifications::RUN_EVENT => params
            .get("stream")
            .and_then(Value::as_str)
            .and_then(EventKind::parse),
        _ => None,
    }
}

/// The subscription a notification belongs to.
pub fn subscription_of(params: &Value) -> Option<&str> {
    params.get("subscription").and_then(Value::as_str)
}

/// The `--json` form of a notification: its params plus `"event": METHOD`, on one line.
pub fn json_line(method: &str, params: Value) -> String {
    let mut object = match params {
        Value::Object(fields) => fields,
        other => {
            let mut fields = Map::new();
            fields.insert("params".into(), other);
            fields
        }
    };
    object.insert("event".into(), Value::String(method.to_string()));
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// A set of event kinds (what is subscribed to, what is printed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub fn of(kinds: &[EventKind]) -> Kinds {
        kinds.iter().fold(Kinds::default(), |set, k| set.with(*k))
    }

    pub fn with(self, kind: EventKind) -> Kinds {
        Kinds(self.0 | Kinds::bit(kind))
    }

    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & Kinds::bit(kind) != 0
    }

    /// In the protocol's order, for `events` in `sessions.subscribe`.
    pub fn to_vec(self) -> Vec<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|k| self.contains(*k))
            .collect()
    }

    fn bit(kind: EventKind) -> u8 {
        1 << (kind as u8)
    }
}

// ---------------------------------------------------------------- follow bookkeeping

/// What a follow has printed of the transcript, so it resumes after a reconnect exactly where
/// it stopped and never prints a message twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqCursor {
    /// The newest seq printed (or skipped on purpose: everything before the start point).
    /// `None` until the first subscription tells where "now" is, when following from now on.
    last: Option<u64>,
}

/// What to do with a transcript message that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// New: print it.
    New,
    /// New, but messages between the last one and it never came (a daemon bug; print anyway).
    AfterGap { missing_from: u64 },
    /// Printed before (a reconnect's overlap): skip it.
    Duplicate,
}

impl SeqCursor {
    /// `after`: the start point from `--from-start` (0) or `--since SEQ`; `None` follows from
    /// the newest message at the time of subscribing.
    pub fn new(after: Option<u64>) -> SeqCursor {
        SeqCursor { last: after }
    }

    /// `afterSeq` for the next `sessions.subscribe`.
    pub fn after_seq(&self) -> Option<u64> {
        self.last
    }

    /// The newest seq printed so far (or the start point).
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// A subscription started; without a start point it began after `last_seq` (its result),
    /// which a reconnect must resume from.
    pub fn subscribed(&mut self, last_seq: Option<u64>) {
        if self.last.is_none() {
            self.last = Some(last_seq.unwrap_or(0));
        }
    }

    /// Records a message's arrival.
    pub fn admit(&mut self, seq: u64) -> Admit {
        match self.last.replace(seq) {
            Some(last) if seq <= last => {
                self.last = Some(last);
                Admit::Duplicate
            }
            Some(last) if seq > last + 1 => Admit::AfterGap {
                missing_from: last + 1,
            },
            _ => Admit::New,
        }
    }

    /// Whether every message up to `seq` has arrived.
    pub fn reached(&self, seq: u64) -> bool {
        self.last.unwrap_or(0) >= seq
    }
}

/// Run events seen, per run, so an overlap never shows one twice. Runs are forgotten when
/// they end.
#[derive(Debug, Default)]
pub struct RunSeqs(HashMap<String, u64>);

impl RunSeqs {
    /// Whether the event is new (and records it).
    pub fn admit(&mut self, event: &RunEventParams) -> bool {
        let last = self.0.entry(event.run_id.clone()).or_insert(0);
        if event.seq <= *last {
            return false;
        }
        *last = event.seq;
        if ended_status(event).is_some() {
            self.0.remove(&event.run_id);
        }
        true
    }
}

// ---------------------------------------------------------------- outcomes

/// The status a run ended with, if this event is its lifecycle `ended`.
pub fn ended_status(event: &RunEventParams) -> Option<RunEnd> {
    if event.stream != "lifecycle"
        || event.data.get("phase").and_then(Value::as_str) != Some("ended")
    {
        return None;
    }
    let status = event.data.get("status").and_then(Value::as_str);
    Some(RunEnd {
        status: status.and_then(RunStatus::parse),
        raw_status: status.unwrap_or("unknown").to_string(),
        error: event
            .data
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// How a run ended, from its lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub status: Option<RunStatus>,
    raw_status: String,
    pub error: Option<String>,
}

/// The exit status a run's end gives a command that waited for it: nothing for `ok`, exit 1
/// with the run's error for anything else (SPEC §9).
pub fn end_failure(run_id: &str, end: &RunEnd) -> Option<Failure> {
    match end.status {
        Some(RunStatus::Ok) => None,
        Some(status) => Some(run_failure(run_id, status, end.error.as_deref())),
        None => Some(Failure::failed(format!(
            "run {run_id} ended with status {}, which this openclaw does not know",
            end.raw_status
        ))),
    }
}

/// Exit 1 and what went wrong, for a run that ended in any way but `ok`.
pub fn run_failure(run: &str, status: RunStatus, error: Option<&str>) -> Failure {
    let what = match status {
        RunStatus::Timeout => format!("run {run} timed out (its run timeout ran out)"),
        RunStatus::Aborted => format!("run {run} was aborted"),
        RunStatus::Interrupted => {
            format!("run {run} was interrupted: the daemon stopped while it was running")
        }
        RunStatus::Error => format!("run {run} failed"),
        other => format!("run {run} ended with status {}", other.as_str()),
    };
    let message = match error.map(str::trim_end) {
        Some(detail) if detail.contains('\n') => format!("{what}:\n{detail}"),
        Some(detail) if !detail.is_empty() => format!("{what}: {detail}"),
        _ => what,
    };
    Failure::failed(message)
}

/// What a `runs.wait` with no wait says about a run a command wants to see end.
#[derive(Debug)]
pub enum RunState {
    /// Still queued or running: its lifecycle `ended` is still to come.
    Going { run_id: String },
    /// Over; the failure to exit with, if it did not end `ok`.
    Over(Option<Failure>),
}

pub fn run_state(result: &RunResult) -> RunState {
    match result.status {
        WaitStatus::Accepted | WaitStatus::Timeout if !result.run_status.is_final() => {
            RunState::Going {
                run_id: result.run_id.clone(),
            }
        }
        _ => match result.run_status {
            RunStatus::Ok => RunState::Over(None),
            RunStatus::Queued | RunStatus::Running => RunState::Going {
                run_id: result.run_id.clone(),
            },
            status => RunState::Over(Some(run_failure(
                &result.run_id,
                status,
                result.error.as_deref(),
            ))),
        },
    }
}

// ---------------------------------------------------------------- text for people

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
fn one_line(text: &str) -> String {
    let text = text.trim_end_matches('\n');
    escape_controls(&text.replace("\r\n", "\n"))
        .replace('\n', "↵")
        .replace('\t', " ")
}

/// At most `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

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
                // Even when other lines came between the deltas, all of the text was shown.
                if let Some(text) = streamed
                    && text.trim_end() == content_text(&message.content).trim_end()
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
        let text = if self.style.escape {
            escape_controls(delta)
        } else {
            delta.to_string()
        };
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

/// What `send --stream` prints on stdout once the reply is in, given what streamed: the rest
/// of the reply if the stream was a prefix of it (nothing if it was all of it), or the whole
/// reply if nothing streamed or the stream went astray.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyTail {
    /// Nothing streamed: print the reply as `send` does.
    Whole,
    /// This completes the streamed text (may be empty); the line still needs its end.
    Rest(String),
    /// The streamed text is not the reply (events skipped): print it again, whole.
    Again,
}

pub fn reply_tail(streamed: Option<&str>, reply: &str) -> ReplyTail {
    let Some(streamed) = streamed.filter(|s| !s.is_empty()) else {
        return ReplyTail::Whole;
    };
    match reply.strip_prefix(streamed) {
        Some(rest) => ReplyTail::Rest(rest.to_string()),
        // The reply is stored with its trailing newline trimmed; the stream had it.
        None if streamed.trim_end() == reply.trim_end() => ReplyTail::Rest(String::new()),
        None => ReplyTail::Again,
    }
}

/// `rest` with a line end if the line it finishes would otherwise stay open.
pub fn end_line(mut rest: String, at_line_start: bool) -> String {
    let ended = if rest.is_empty() {
        at_line_start
    } else {
        rest.ends_with('\n')
    };
    if !ended {
        rest.push('\n');
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Exit;
    use openclaw::protocol::{Provenance, ProvenanceKind};
    use serde_json::json;

    fn message(seq: u64, role: Role, content: &str, run: Option<&str>) -> Message {
        Message {
            seq,
            ts: "2026-11-21T23:19:23.123Z".into(),
            role,
            content: json!(content),
            run_id: run.map(str::to_string),
            provenance: Provenance {
                kind: ProvenanceKind::Operator,
                from: None,
            },
            usage: None,
            truncated: None,
            bytes: None,
        }
    }

    fn msg_event(seq: u64, role: Role, content: &str, run: Option<&str>) -> LiveEvent {
        LiveEvent::Message(SessionMessageParams {
            subscription: "s1".into(),
            session_key: "agent:main:main".into(),
            message: message(seq, role, content, run),
        })
    }

    fn run_event(run: &str, stream: &str, seq: u64, data: Value) -> RunEventParams {
        RunEventParams {
            subscription: "s1".into(),
            session_key: "agent:main:main".into(),
            run_id: run.into(),
            stream: stream.into(),
            seq,
            data,
        }
    }

    fn run_ev(run: &str, stream: &str, seq: u64, data: Value) -> LiveEvent {
        LiveEvent::Run(run_event(run, stream, seq, data))
    }

    fn all() -> Kinds {
        Kinds::of(&EventKind::ALL)
    }

    fn transcript(shown: Kinds) -> Renderer {
        Renderer::new(Form::Transcript, LineStyle::default(), shown, false)
    }

    fn stdout_of(r: &mut Renderer, events: &[LiveEvent]) -> String {
        events.iter().map(|e| r.render(e).stdout).collect()
    }

    #[test]
    fn notifications_parse_and_know_their_kind() {
        let params = json!({"subscription": "s1", "sessionKey": "k", "runId": "r", "stream": "tool",
            "seq": 3, "data": {"phase": "start", "id": "t1", "name": "grep"}});
        assert_eq!(event_kind("run.event", &params), Some(EventKind::Tool));
        assert!(matches!(
            LiveEvent::parse("run.event", &params).unwrap(),
            Some(LiveEvent::Run(e)) if e.seq == 3
        ));
        assert_eq!(
            event_kind("sessions.changed", &json!({})),
            Some(EventKind::Lifecycle)
        );
        assert_eq!(
            event_kind("session.message", &json!({})),
            Some(EventKind::Message)
        );
        assert_eq!(event_kind("subscription.lagged", &json!({})), None);
        assert!(
            LiveEvent::parse("something.new", &json!({}))
                .unwrap()
                .is_none()
        );
        assert!(LiveEvent::parse("session.message", &json!({"x": 1})).is_err());
        assert_eq!(subscription_of(&params), Some("s1"));
    }

    #[test]
    fn json_line_is_the_params_plus_the_method() {
        let line = json_line(
            "subscription.ended",
            json!({"subscription": "s1", "reason": "deleted", "future": [1]}),
        );
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back,
            json!({"event": "subscription.ended", "subscription": "s1", "reason": "deleted", "future": [1]})
        );
    }

    #[test]
    fn kinds_are_a_set_in_protocol_order() {
        let k = Kinds::of(&[EventKind::Tool, EventKind::Message]).with(EventKind::Tool);
        assert_eq!(k.to_vec(), [EventKind::Message, EventKind::Tool]);
        assert!(k.contains(EventKind::Message) && !k.contains(EventKind::Usage));
        assert_eq!(Kinds::default().to_vec(), []);
        assert_eq!(Kinds::of(&EventKind::ALL).to_vec(), EventKind::ALL);
    }

    #[test]
    fn cursor_from_now_starts_after_the_newest_seq_at_subscribe() {
        let mut c = SeqCursor::new(None);
        assert_eq!(c.after_seq(), None);
        c.subscribed(Some(41));
        assert_eq!(c.after_seq(), Some(41));
        assert_eq!(c.admit(41), Admit::Duplicate);
        assert_eq!(c.admit(42), Admit::New);
        // A resubscription does not move the cursor: it resumes after what was printed.
        c.subscribed(Some(50));
        assert_eq!(c.after_seq(), Some(42));
        assert!(c.reached(42) && !c.reached(43));
    }

    #[test]
    fn cursor_of_an_empty_session_starts_at_zero() {
        let mut c = SeqCursor::new(None);
        c.subscribed(None);
        assert_eq!(c.after_seq(), Some(0));
        assert_eq!(c.admit(1), Admit::New);
    }

    #[test]
    fn cursor_from_start_and_since() {
        let mut c = SeqCursor::new(Some(0));
        assert_eq!(c.after_seq(), Some(0));
        c.subscribed(Some(3));
        assert_eq!(c.after_seq(), Some(0));
        assert!(!c.reached(3));
        for seq in 1..=3 {
            assert_eq!(c.admit(seq), Admit::New);
        }
        assert!(c.reached(3));

        let mut c = SeqCursor::new(Some(41));
        assert_eq!(c.admit(40), Admit::Duplicate);
        assert_eq!(c.admit(42), Admit::New);
    }

    #[test]
    fn resume_after_reconnect_prints_nothing_twice() {
        let mut c = SeqCursor::new(Some(0));
        let mut printed = vec![];
        for seq in 1..=5 {
            if c.admit(seq) != Admit::Duplicate {
                printed.push(seq);
            }
        }
        // The connection drops; the new subscription resumes after 5, and a daemon that
        // overlaps anyway is filtered.
        assert_eq!(c.after_seq(), Some(5));
        for seq in 4..=7 {
            if c.admit(seq) != Admit::Duplicate {
                printed.push(seq);
            }
        }
        assert_eq!(printed, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn cursor_reports_gaps() {
        let mut c = SeqCursor::new(Some(2));
        assert_eq!(c.admit(5), Admit::AfterGap { missing_from: 3 });
        assert_eq!(c.admit(6), Admit::New);
    }

    #[test]
    fn run_seqs_drop_repeats_and_forget_ended_runs() {
        let mut seen = RunSeqs::default();
        let delta = |seq| run_event("r1", "assistant", seq, json!({"delta": "x"}));
        assert!(seen.admit(&delta(1)));
        assert!(seen.admit(&delta(3)));
        assert!(!seen.admit(&delta(2)));
        assert!(!seen.admit(&delta(3)));
        assert!(seen.admit(&run_event("r2", "assistant", 1, json!({}))));
        assert!(seen.admit(&run_event(
            "r1",
            "lifecycle",
            4,
            json!({"phase": "ended", "status": "ok"})
        )));
        assert!(!seen.0.contains_key("r1"));
    }

    fn end(status: &str, error: Option<&str>) -> RunEnd {
        let mut data = json!({"phase": "ended", "status": status});
        if let Some(e) = error {
            data["error"] = json!(e);
        }
        ended_status(&run_event("r1", "lifecycle", 9, data)).unwrap()
    }

    #[test]
    fn run_end_maps_to_exit_status() {
        assert!(end_failure("r1", &end("ok", None)).is_none());
        for (status, needle) in [
            ("error", "run r1 failed: boom"),
            ("timeout", "timed out"),
            ("aborted", "was aborted"),
            ("interrupted", "interrupted"),
            ("strange", "status strange"),
        ] {
            let f = end_failure("r1", &end(status, Some("boom"))).unwrap();
            assert_eq!(f.exit, Exit::Failed, "{status}");
            let message = f.message.unwrap();
            assert!(message.contains(needle), "{status}: {message}");
        }
        let f = end_failure("r1", &end("error", Some("line 1\nline 2\n"))).unwrap();
        assert_eq!(f.message.unwrap(), "run r1 failed:\nline 1\nline 2");
    }

    #[test]
    fn only_lifecycle_ended_is_an_end() {
        let started = run_event("r1", "lifecycle", 1, json!({"phase": "started"}));
        assert!(ended_status(&started).is_none());
        let tool = run_event("r1", "tool", 2, json!({"phase": "ended"}));
        assert!(ended_status(&tool).is_none());
    }

    fn result(status: WaitStatus, run_status: RunStatus) -> RunResult {
        RunResult {
            run_id: "r1".into(),
            session_key: "k".into(),
            status,
            run_status,
            reply: None,
            error: Some("boom".into()),
        }
    }

    #[test]
    fn a_zero_wait_tells_going_from_over() {
        assert!(matches!(
            run_state(&result(WaitStatus::Timeout, RunStatus::Running)),
            RunState::Going { run_id } if run_id == "r1"
        ));
        assert!(matches!(
            run_state(&result(WaitStatus::Accepted, RunStatus::Queued)),
            RunState::Going { .. }
        ));
        assert!(matches!(
            run_state(&result(WaitStatus::Ok, RunStatus::Ok)),
            RunState::Over(None)
        ));
        let RunState::Over(Some(f)) = run_state(&result(WaitStatus::Error, RunStatus::Aborted))
        else {
            panic!()
        };
        assert_eq!(f.exit, Exit::Failed);
        assert_eq!(f.message.unwrap(), "run r1 was aborted: boom");
    }

    #[test]
    fn transcript_lines_look_like_history() {
        let mut r = transcript(Kinds::of(&[EventKind::Message]));
        let out = stdout_of(
            &mut r,
            &[
                msg_event(9, Role::User, "run the report", None),
                msg_event(10, Role::Assistant, "line one\nline two", Some("r1")),
            ],
        );
        assert_eq!(
            out,
            "#9 user       run the report\n#10 assistant  line one\n               line two\n"
        );
    }

    #[test]
    fn transcript_with_timestamps_colour_and_escapes() {
        let style = LineStyle {
            color: true,
            escape: true,
            timestamps: true,
        };
        let mut r = Renderer::new(
            Form::Transcript,
            style,
            Kinds::of(&[EventKind::Message]),
            false,
        );
        let out = r
            .render(&msg_event(1, Role::User, "\x1b[2Jhi", None))
            .stdout;
        assert_eq!(
            out,
            "\x1b[2m#1\x1b[0m \x1b[2m2026-11-21T23:19:23.123Z\x1b[0m \x1b[36muser\x1b[0m       ^[[2Jhi\n"
        );
    }

    #[test]
    fn streamed_text_stands_for_the_reply_it_matches() {
        let mut r = transcript(Kinds::of(&[EventKind::Message, EventKind::Assistant]));
        let out = stdout_of(
            &mut r,
            &[
                msg_event(1, Role::User, "hi", None),
                run_ev("r1", "assistant", 2, json!({"delta": "hel"})),
                run_ev("r1", "assistant", 3, json!({"delta": "lo\nworld"})),
                msg_event(2, Role::Assistant, "hello\nworld", Some("r1")),
                msg_event(3, Role::User, "next", None),
            ],
        );
        assert_eq!(
            out,
            "#1 user       hi\nassistant  hello\n           world\n#3 user       next\n"
        );
    }

    #[test]
    fn a_reply_that_differs_from_the_stream_is_printed() {
        let mut r = transcript(Kinds::of(&[EventKind::Message, EventKind::Assistant]));
        let out = stdout_of(
            &mut r,
            &[
                run_ev("r1", "assistant", 2, json!({"delta": "hel"})),
                msg_event(2, Role::Assistant, "hello", Some("r1")),
            ],
        );
        assert_eq!(out, "assistant  hel\n#2 assistant  hello\n");
    }

    #[test]
    fn deltas_are_hidden_unless_asked_for() {
        let mut r = transcript(Kinds::of(&[EventKind::Message]));
        let out = stdout_of(
            &mut r,
            &[
                run_ev("r1", "assistant", 1, json!({"delta": "hello"})),
                msg_event(2, Role::Assistant, "hello", Some("r1")),
            ],
        );
        assert_eq!(out, "#2 assistant  hello\n");
    }

    #[test]
    fn run_end_closes_a_streamed_line() {
        let mut r = transcript(Kinds::of(&[EventKind::Assistant]));
        let out = stdout_of(
            &mut r,
            &[
                run_ev("r1", "assistant", 1, json!({"delta": "partial"})),
                run_ev(
                    "r1",
                    "lifecycle",
                    2,
                    json!({"phase": "ended", "status": "error"}),
                ),
            ],
        );
        assert_eq!(out, "assistant  partial\n");
        assert_eq!(r.finish(), Out::default());
    }

    #[test]
    fn transcript_shows_lifecycle_tool_and_usage_lines() {
        let mut r = transcript(all());
        let out = stdout_of(
            &mut r,
            &[
                run_ev("r1", "lifecycle", 1, json!({"phase": "started"})),
                run_ev(
                    "r1",
                    "tool",
                    2,
                    json!({"phase": "start", "id": "t1", "name": "grep", "input": {"q": "x"}}),
                ),
                run_ev(
                    "r1",
                    "tool",
                    3,
                    json!({"phase": "end", "id": "t1", "output": "3 hits", "status": "ok"}),
                ),
                run_ev("r1", "usage", 4, json!({"tokens": 12})),
                run_ev(
                    "r1",
                    "lifecycle",
                    5,
                    json!({"phase": "ended", "status": "error", "error": "boom"}),
                ),
            ],
        );
        assert_eq!(
            out,
            "run r1 started\ntool grep start: {\"q\":\"x\"}\ntool grep end ok: 3 hits\nusage 12 tokens\nrun r1 ended error: boom\n"
        );
    }

    #[test]
    fn compact_lines_start_with_the_key() {
        let mut r = Renderer::new(Form::Compact, LineStyle::default(), all(), false);
        let changed = LiveEvent::Changed(json!({
            "subscription": "s", "phase": "create", "sessionKey": "k1",
            "session": {"status": "idle"}
        }));
        let out = stdout_of(
            &mut r,
            &[
                changed,
                msg_event(1, Role::User, "two\nlines", None),
                run_ev("r1", "assistant", 1, json!({"delta": "a\"b\n"})),
                run_ev(
                    "r1",
                    "lifecycle",
                    2,
                    json!({"phase": "ended", "status": "ok"}),
                ),
            ],
        );
        assert_eq!(
            out,
            "k1 session create (idle)\n\
             agent:main:main #1 user  two↵lines\n\
             agent:main:main delta \"a\\\"b\\n\"\n\
             agent:main:main run r1 ended ok\n"
        );
    }

    #[test]
    fn reply_form_streams_text_and_puts_tools_on_stderr() {
        let mut r = Renderer::new(Form::Reply, LineStyle::default(), all(), true);
        let events = [
            run_ev("r1", "lifecycle", 1, json!({"phase": "started"})),
            run_ev("r1", "assistant", 2, json!({"delta": "looking"})),
            run_ev(
                "r1",
                "tool",
                3,
                json!({"phase": "start", "id": "t1", "name": "grep"}),
            ),
            run_ev(
                "r1",
                "tool",
                4,
                json!({"phase": "update", "id": "t1", "output": "..."}),
            ),
            run_ev(
                "r1",
                "tool",
                5,
                json!({"phase": "end", "id": "t1", "status": "ok"}),
            ),
            run_ev("r1", "assistant", 6, json!({"delta": "found it"})),
            run_ev(
                "r1",
                "tool",
                7,
                json!({"phase": "start", "id": "t2", "name": "ls"}),
            ),
            run_ev(
                "r1",
                "lifecycle",
                8,
                json!({"phase": "ended", "status": "ok"}),
            ),
        ];
        let outs: Vec<Out> = events.iter().map(|e| r.render(e)).collect();
        let stdout: String = outs.iter().map(|o| o.stdout.as_str()).collect();
        let stderr: String = outs.iter().map(|o| o.stderr.as_str()).collect();
        // On a shared terminal the tool line starts on a line of its own.
        assert_eq!(stdout, "looking\nfound it");
        assert_eq!(stderr, "tool grep … ok\n");
        assert_eq!(r.streamed("r1"), Some("lookingfound it"));
        let tail = r.unfinished_tools();
        assert_eq!(tail.stderr, "tool ls … unfinished\n");
        assert_eq!(tail.stdout, "\n");
    }

    #[test]
    fn reply_form_keeps_stdout_intact_when_not_a_shared_terminal() {
        let mut r = Renderer::new(Form::Reply, LineStyle::default(), all(), false);
        let a = r.render(&run_ev("r1", "assistant", 1, json!({"delta": "a"})));
        let t = r.render(&run_ev(
            "r1",
            "tool",
            2,
            json!({"phase": "end", "id": "t", "name": "x", "status": "error"}),
        ));
        assert_eq!((a.stdout.as_str(), t.stdout.as_str()), ("a", ""));
        assert_eq!(t.stderr, "tool x … error\n");
    }

    #[test]
    fn lagged_is_a_note_on_stderr() {
        let mut r = transcript(all());
        let out = r.render(&LiveEvent::Lagged(SubscriptionLaggedParams {
            subscription: "s".into(),
            skipped: 7,
        }));
        assert!(out.stdout.is_empty());
        assert!(
            out.stderr.starts_with("note: ") && out.stderr.contains(" 7 "),
            "{}",
            out.stderr
        );
    }

    #[test]
    fn reply_tail_completes_or_repeats() {
        assert_eq!(reply_tail(None, "hi"), ReplyTail::Whole);
        assert_eq!(reply_tail(Some(""), "hi"), ReplyTail::Whole);
        assert_eq!(reply_tail(Some("hi"), "hi"), ReplyTail::Rest(String::new()));
        // exec: the stream had stdout's last newline, the stored reply has it trimmed.
        assert_eq!(
            reply_tail(Some("hi\n"), "hi"),
            ReplyTail::Rest(String::new())
        );
        assert_eq!(
            reply_tail(Some("hel"), "hello"),
            ReplyTail::Rest("lo".into())
        );
        assert_eq!(reply_tail(Some("hx"), "hello"), ReplyTail::Again);
        assert_eq!(end_line(String::new(), true), "");
        assert_eq!(end_line(String::new(), false), "\n");
        assert_eq!(end_line("lo".into(), true), "lo\n");
        assert_eq!(end_line("lo\n".into(), false), "lo\n");
    }

    #[test]
    fn reply_form_leaves_the_line_open_for_the_reply() {
        let mut r = Renderer::new(Form::Reply, LineStyle::default(), all(), false);
        let out = stdout_of(
            &mut r,
            &[
                run_ev("r1", "assistant", 1, json!({"delta": "looking found it"})),
                run_ev(
                    "r1",
                    "lifecycle",
                    2,
                    json!({"phase": "ended", "status": "ok"}),
                ),
            ],
        );
        assert_eq!(out, "looking found it");
        assert!(!r.at_line_start());
        assert_eq!(r.finish().stdout, "\n");
        assert!(r.at_line_start());
    }

    #[test]
    fn one_line_and_clip() {
        assert_eq!(one_line("a\nb\x1b\n"), "a↵b^[");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
