//! Rendering for people and for scripts: stdout carries data only, diagnostics go to stderr,
//! colour and alignment only on a terminal (and never with `NO_COLOR`).

use std::ffi::OsStr;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::failure::Failure;

/// What the process is connected to, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Terminal {
    pub stdout_is_tty: bool,
    pub stderr_is_tty: bool,
    /// ANSI colour on stdout.
    pub color: bool,
    /// Whether stderr can show a spinner (a terminal that understands cursor movement).
    pub spinner: bool,
}

impl Terminal {
    pub fn detect() -> Terminal {
        let stdout_is_tty = io::stdout().is_terminal();
        let stderr_is_tty = io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR");
        let term = std::env::var_os("TERM");
        let dumb = term.as_deref() == Some(OsStr::new("dumb"));
        Terminal {
            stdout_is_tty,
            stderr_is_tty,
            color: color_allowed(stdout_is_tty, no_color.as_deref(), term.as_deref()),
            spinner: stderr_is_tty && !dumb,
        }
    }
}

/// Colour only on a terminal, never with a non-empty `NO_COLOR` (no-color.org) or `TERM=dumb`.
pub fn color_allowed(is_tty: bool, no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
    let no_color_set = no_color.is_some_and(|v| !v.is_empty());
    is_tty && !no_color_set && term != Some(OsStr::new("dumb"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    Bold,
    Dim,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
}

impl Paint {
    fn sgr(self) -> &'static str {
        match self {
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Blue => "34",
            Paint::Magenta => "35",
            Paint::Cyan => "36",
        }
    }
}

/// `text` in `paint` when colour is on, unchanged otherwise.
pub fn paint(color: bool, paint: Paint, text: &str) -> String {
    if color && !text.is_empty() {
        format!("\x1b[{}m{text}\x1b[0m", paint.sgr())
    } else {
        text.to_string()
    }
}

/// Writes to stdout in one go. A closed stdout (`| head`) ends the command quietly.
pub fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Failure::stdout)
}

/// `text` and a newline on stdout.
pub fn print_line(text: &str) -> Result<(), Failure> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    write_stdout(&line)
}

/// One JSON value on one line: the `--json` form of every command.
pub fn print_json(value: &Value) -> Result<(), Failure> {
    print_line(&value.to_string())
}

/// Writes text for stdout and then for stderr (either may be empty). A closed stdout ends the
/// command quietly, as `write_stdout` does.
pub fn write_both(stdout: &str, stderr: &str) -> Result<(), Failure> {
    if !stdout.is_empty() {
        write_stdout(stdout)?;
    }
    if !stderr.is_empty() {
        let mut err = io::stderr().lock();
        let _ = err.write_all(stderr.as_bytes()).and_then(|()| err.flush());
    }
    Ok(())
}

/// Resolves once nobody can read our stdout any more: the reader of the pipe it is went away
/// (`openclaw sessions follow KEY | head -n 3`). A command that waits for events then ends at
/// once instead of at its next write. Never resolves where this cannot be told (a file, a
/// terminal): nothing is polled, the kernel reports the pipe's error state.
pub async fn stdout_reader_gone() {
    match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => reader_gone(fd).await,
        Err(_) => std::future::pending().await,
    }
}

/// Resolves when `fd`, the write end of a pipe, reports an error: its reader has closed it.
async fn reader_gone(fd: OwnedFd) {
    // SAFETY: the AsyncFd owns this duplicate fd, so it stays open (and the same open file)
    // for the AsyncFd's whole life. Registration fails for what epoll cannot watch (regular
    // files, /dev/null), which never lose their reader anyway.
    if let Ok(watch) = unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) }
        && watch.ready(Interest::ERROR).await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await
}

/// A diagnostic on stderr. A stderr nobody reads is not worth failing over.
pub fn diagnostic(prefix: &str, message: &str) {
    let _ = writeln!(io::stderr().lock(), "{prefix}: {message}");
}

/// Text that came from elsewhere (an agent, a label), made safe to print on a terminal:
/// control characters other than newline and tab are shown in caret notation (`^[`), so a
/// transcript cannot move the cursor, recolour or retitle the user's terminal.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(is_unsafe_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe_control(c) {
            match c as u32 {
                0x7f => out.push_str("^?"),
                n if n < 0x20 => {
                    out.push('^');
                    out.push(char::from(b'@' + n as u8));
                }
                n => out.push_str(&format!("\\u{{{n:x}}}")),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_unsafe_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// A table cell must stay on one line and inside its column.
fn cell_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Rows with a header: aligned columns on a terminal, tab-separated (same columns, header
/// first) for scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Table {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len());
        self.rows.push(row.iter().map(|c| cell_text(c)).collect());
    }

    pub fn render(&self, terminal: &Terminal) -> String {
        if terminal.stdout_is_tty {
            self.aligned(terminal.color)
        } else {
            self.tab_separated()
        }
    }

    pub fn tab_separated(&self) -> String {
        let mut out = self.header.join("\t");
        out.push('\n');
        for row in &self.rows {
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
        out
    }

    /// Columns two spaces apart, the last one not padded (no trailing blanks).
    pub fn aligned(&self, color: bool) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        out.push_str(&paint(color, Paint::Bold, &pad_row(&header, &widths)));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&pad_row(row, &widths));
            out.push('\n');
        }
        out
    }
}

fn pad_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        if i + 1 < cells.len() {
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    // Empty trailing cells would otherwise leave blanks at the end of the line.
    line.truncate(line.trim_end().len());
    line
}

/// A spinner on stderr while a long wait goes on; only on a terminal, only after a second
/// (short waits stay silent). Dropping it stops it and erases its line if it drew one.
pub struct Spinner {
    task: Option<tokio::task::JoinHandle<()>>,
    drawn: Arc<AtomicBool>,
}

impl Spinner {
    pub fn start(terminal: &Terminal, label: String) -> Spinner {
        let drawn = Arc::new(AtomicBool::new(false));
        if !terminal.spinner {
            return Spinner { task: None, drawn };
        }
        let started = Instant::now();
        let drawn_by_task = drawn.clone();
        let task = tokio::spawn(async move {
            const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let first = tokio::time::Instant::from_std(started + Duration::from_secs(1));
            let mut ticks = tokio::time::interval_at(first, Duration::from_millis(100));
            for frame in FRAMES.iter().cycle() {
                ticks.tick().await;
                let secs = started.elapsed().as_secs();
                drawn_by_task.store(true, Ordering::Relaxed);
                let _ = write!(io::stderr().lock(), "\r\x1b[2K{frame} {label} ({secs}s)");
            }
        });
        Spinner {
            task: Some(task),
            drawn,
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if self.drawn.load(Ordering::Relaxed) {
                let _ = write!(io::stderr().lock(), "\r\x1b[2K");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_tty_and_no_no_color() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert!(color_allowed(true, None, os("xterm-256color")));
        assert!(!color_allowed(false, None, os("xterm")));
        assert!(!color_allowed(true, os("1"), os("xterm")));
        // no-color.org: an empty NO_COLOR does not count.
        assert!(color_allowed(true, os(""), os("xterm")));
        assert!(!color_allowed(true, None, os("dumb")));
    }

    #[test]
    fn paint_is_identity_without_colour() {
        assert_eq!(paint(false, Paint::Green, "x"), "x");
        assert_eq!(paint(true, Paint::Green, "x"), "\x1b[32mx\x1b[0m");
    }

    fn sample() -> Table {
        let mut t = Table::new(vec!["KEY", "STATUS", "LABEL"]);
        t.push(vec!["agent:main:main".into(), "ok".into(), "daily".into()]);
        t.push(vec!["k2".into(), "running".into(), "with\ttab".into()]);
        t
    }

    #[test]
    fn aligned_table_pads_all_but_the_last_column() {
        let expected = "\
KEY              STATUS   LABEL
agent:main:main  ok       daily
k2               running  with tab
";
        assert_eq!(sample().aligned(false), expected);
    }

    #[test]
    fn tab_separated_table_keeps_header_and_columns() {
        let expected = "KEY\tSTATUS\tLABEL\nagent:main:main\tok\tdaily\nk2\trunning\twith tab\n";
        assert_eq!(sample().tab_separated(), expected);
    }

    #[test]
    fn render_picks_the_form_from_the_terminal() {
        let tty = Terminal {
            stdout_is_tty: true,
            ..Terminal::default()
        };
        assert_eq!(sample().render(&tty), sample().aligned(false));
        assert_eq!(
            sample().render(&Terminal::default()),
            sample().tab_separated()
        );
    }

    #[test]
    fn coloured_header_is_bold() {
        let out = sample().aligned(true);
        assert!(out.starts_with("\x1b[1mKEY"), "{out:?}");
    }

    #[tokio::test]
    async fn a_pipe_whose_reader_left_is_noticed_without_writing() {
        let mut fds = [0; 2];
        // SAFETY: pipe fills two fds, which become owned here.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read_end, write_end) = unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        let gone = reader_gone(write_end);
        tokio::pin!(gone);
        // While the reader is there, nothing happens.
        tokio::select! {
            biased;
            () = &mut gone => panic!("reported gone while the reader is open"),
            () = std::future::ready(()) => {}
        }
        drop(read_end);
        tokio::time::timeout(Duration::from_secs(10), gone)
            .await
            .expect("a closed reader was never reported");
    }

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(escape_controls("\x1b[31mred"), "^[[31mred");
        assert_eq!(escape_controls("a\rb\x7f\u{9b}"), "a^Mb^?\\u{9b}");
    }
}
