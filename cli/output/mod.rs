//! Rendering for people and for scripts: stdout carries data only, diagnostics go to stderr,
//! colour and alignment only on a terminal (and never with `NO_COLOR`).

mod spinner;
mod table;
mod time;

use std::ffi::OsStr;
use std::io::{self, IsTerminal, Write};

use serde_json::Value;

use crate::failure::Failure;

pub use spinner::Spinner;
pub use table::{Column, Table, clip};
pub use time::relative_time;

/// What the process is connected to, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Terminal {
    pub stdout_is_tty: bool,
    pub stderr_is_tty: bool,
    /// ANSI colour on stdout.
    pub color: bool,
    /// Whether stderr can show a spinner (a terminal that understands cursor movement).
    pub spinner: bool,
    /// Columns of the terminal stdout is (80 when it cannot be told).
    pub width: usize,
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
            width: if stdout_is_tty {
                terminal_width()
            } else {
                DEFAULT_WIDTH
            },
        }
    }
}

const DEFAULT_WIDTH: usize = 80;

/// `COLUMNS` when set, else the window size of the terminal on stdout, else 80.
fn terminal_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return columns;
    }
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it for a terminal and fails otherwise.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: fd 1 is borrowed for the call; `size` is a valid winsize to write.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        DEFAULT_WIDTH
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
    write_stderr(stderr);
    Ok(())
}

/// A diagnostic on stderr. A stderr nobody reads is not worth failing over.
pub fn diagnostic(prefix: &str, message: &str) {
    let _ = writeln!(io::stderr().lock(), "{prefix}: {message}");
}

/// Text on stderr as it is.
pub fn write_stderr(text: &str) {
    if !text.is_empty() {
        let mut err = io::stderr().lock();
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    }
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

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(escape_controls("\x1b[31mred"), "^[[31mred");
        assert_eq!(escape_controls("a\rb\x7f\u{9b}"), "a^Mb^?\\u{9b}");
    }
}
