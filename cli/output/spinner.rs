//! A spinner on stderr while a long wait goes on: only on a terminal, only after a second of
//! silence (short waits stay silent), and never over a line of text still being written.
//!
//! It draws from a thread of its own; everything the command prints while it exists goes
//! through [`Spinner::print`], which erases it first under the same lock, so the two never
//! interleave. Dropping it erases its line if it drew one.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Terminal;
use crate::failure::Failure;

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Silence before the spinner shows.
const QUIET: Duration = Duration::from_secs(1);
const FRAME: Duration = Duration::from_millis(100);

struct State {
    stop: bool,
    /// A frame is on the screen.
    drawn: bool,
    /// Output left a line open: drawing would overwrite it.
    line_open: bool,
    /// When output last happened (or the wait began).
    quiet_since: Instant,
    frame: usize,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub struct Spinner {
    shared: Option<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// A spinner labelled `label` (elapsed seconds are added), or none when stderr is not a
    /// terminal that can show one.
    pub fn start(terminal: &Terminal, label: String) -> Spinner {
        if !terminal.spinner {
            return Spinner::none();
        }
        let started = Instant::now();
        let shared: Shared = Arc::new((
            Mutex::new(State {
                stop: false,
                drawn: false,
                line_open: false,
                quiet_since: started,
                frame: 0,
            }),
            Condvar::new(),
        ));
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("spinner".into())
            .spawn(move || draw_loop(&for_thread, &label, started))
            .ok();
        Spinner {
            shared: thread.as_ref().map(|_| shared),
            thread,
        }
    }

    /// No spinner: `print` just prints.
    pub fn none() -> Spinner {
        Spinner {
            shared: None,
            thread: None,
        }
    }

    /// Writes `stdout` then `stderr` (either may be empty) with the spinner out of the way.
    /// `line_open`: stdout now ends inside a line (streamed text), so the spinner waits until
    /// a later print closes it.
    pub fn print(&self, stdout: &str, stderr: &str, line_open: bool) -> Result<(), Failure> {
        let mut guard = self.lock();
        if let Some(state) = guard.as_mut() {
            erase(state);
        }
        let result = super::write_both(stdout, stderr);
        if let Some(state) = guard.as_mut()
            && (!stdout.is_empty() || !stderr.is_empty())
        {
            state.quiet_since = Instant::now();
            state.line_open = line_open;
        }
        result
    }

    fn lock(&self) -> Option<MutexGuard<'_, State>> {
        self.shared
            .as_ref()
            .map(|s| s.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.0.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
            shared.1.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn erase(state: &mut State) {
    if state.drawn {
        let _ = write!(io::stderr().lock(), "\r\x1b[2K");
        state.drawn = false;
    }
}

fn draw_loop(shared: &Shared, label: &str, started: Instant) {
    let (lock, wake) = &**shared;
    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if state.stop {
            erase(&mut state);
            return;
        }
        let due = state.quiet_since + QUIET;
        let now = Instant::now();
        let sleep = if state.line_open || now < due {
            if state.drawn && state.line_open {
                erase(&mut state);
            }
            due.saturating_duration_since(now).max(FRAME)
        } else {
            let frame = FRAMES[state.frame % FRAMES.len()];
            state.frame += 1;
            let secs = started.elapsed().as_secs();
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{frame} {label} ({secs}s)");
            let _ = err.flush();
            state.drawn = true;
            FRAME
        };
        state = wake
            .wait_timeout(state, sleep)
            .map(|(s, _)| s)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_terminal_no_thread() {
        let s = Spinner::start(&Terminal::default(), "x".into());
        assert!(s.thread.is_none() && s.shared.is_none());
    }

    #[test]
    fn a_spinner_stops_when_dropped() {
        let terminal = Terminal {
            spinner: true,
            ..Terminal::default()
        };
        let s = Spinner::start(&terminal, "waiting".into());
        assert!(s.thread.is_some());
        // Printing marks the line open; the drop must still end the thread promptly.
        s.print("", "", true).unwrap();
        drop(s);
    }
}
