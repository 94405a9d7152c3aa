//! What may end a long wait besides the daemon's answer: Ctrl-C, the reader of stdout going
//! away, a deadline. The blocking client sleeps in `poll(2)` on the socket and on these
//! descriptors together, so nothing is checked on a timer.
//!
//! Ctrl-C is caught only while a [`Watch`] that asks for it is alive: its handler writes a
//! byte to a pipe (the only thing a signal handler may safely do here) and the wait sees the
//! pipe readable. Outside such waits, SIGINT keeps its default effect.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use openclaw::client::blocking::Wake;

/// The write end of the Ctrl-C pipe, for the signal handler; -1 when none is installed.
static SIGINT_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigint(_: libc::c_int) {
    let fd = SIGINT_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the fd stays open while the handler is
        // installed (the Watch restores the old handler before closing it). A full pipe
        // already says "interrupted".
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Why a wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    Interrupted,
    /// Nobody reads stdout any more (`| head -n 3` has what it wanted).
    StdoutGone,
}

/// The descriptors a wait also sleeps on.
pub struct Watch {
    sigint: Option<SigintGuard>,
    stdout: Option<OwnedFd>,
}

impl Watch {
    /// Ctrl-C ends the wait (instead of the process).
    pub fn ctrl_c() -> Watch {
        Watch {
            // Without the pipe, Ctrl-C keeps its default effect: nothing is lost but the note.
            sigint: SigintGuard::install().ok(),
            stdout: None,
        }
    }

    /// Also end the wait once nobody can read stdout (only for commands that just watch:
    /// one with an effect must not be cut before the daemon has it).
    pub fn and_stdout(mut self) -> Watch {
        self.stdout = io::stdout().as_fd().try_clone_to_owned().ok();
        self
    }

    /// The wake list for [`openclaw::client::blocking::Wait`], in the order [`Watch::woke`]
    /// reads it.
    pub fn wakes(&self) -> Vec<Wake<'_>> {
        let mut wakes = Vec::with_capacity(2);
        if let Some(sigint) = &self.sigint {
            wakes.push(Wake {
                fd: sigint.read.as_fd(),
                readable: true,
            });
        }
        if let Some(stdout) = &self.stdout {
            // The write end of a pipe reports an error once its reader has closed it.
            wakes.push(Wake {
                fd: stdout.as_fd(),
                readable: false,
            });
        }
        wakes
    }

    /// What the wake descriptor at `index` of [`Watch::wakes`] stands for.
    pub fn woke(&self, index: usize) -> Woke {
        match (self.sigint.is_some(), index) {
            (true, 0) => Woke::Interrupted,
            _ => Woke::StdoutGone,
        }
    }
}

/// The SIGINT handler and its pipe, restored and closed when dropped.
struct SigintGuard {
    read: OwnedFd,
    /// Held open for the handler, which writes to it by its raw number.
    _write: OwnedFd,
    previous: libc::sigaction,
}

impl SigintGuard {
    fn install() -> io::Result<SigintGuard> {
        let (read, write) = nonblocking_pipe()?;
        SIGINT_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        // SAFETY: sigaction structs are plain data; zeroed is a valid empty mask and flags.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: as above.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid sigaction structs; the handler is async-signal-safe.
        if unsafe { libc::sigaction(libc::SIGINT, &action, &mut previous) } != 0 {
            SIGINT_PIPE.store(-1, Ordering::Relaxed);
            return Err(io::Error::last_os_error());
        }
        Ok(SigintGuard {
            read,
            _write: write,
            previous,
        })
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        // SAFETY: restores the handler saved at install; a valid sigaction struct.
        unsafe { libc::sigaction(libc::SIGINT, &self.previous, std::ptr::null_mut()) };
        SIGINT_PIPE.store(-1, Ordering::Relaxed);
        // `_write` closes after this, once no handler can use it.
    }
}

fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [0; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks until one of `wakes` is ready; its index. For waits with no socket (following a
/// log file): the same descriptors, plus the caller's own.
pub fn wait_for(wakes: &[Wake<'_>]) -> io::Result<usize> {
    let mut fds: Vec<libc::pollfd> = wakes
        .iter()
        .map(|w| libc::pollfd {
            fd: w.fd.as_raw_fd(),
            events: if w.readable { libc::POLLIN } else { 0 },
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `fds` is a valid pollfd array for its length, every fd borrowed open.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if let Some(i) = fds.iter().position(|p| p.revents != 0) {
            return Ok(i);
        }
    }
}

/// A borrowed fd as a wake that fires when it is readable.
pub fn readable(fd: BorrowedFd<'_>) -> Wake<'_> {
    Wake { fd, readable: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigint_is_caught_while_a_watch_lives() {
        let watch = Watch::ctrl_c();
        let wakes = watch.wakes();
        assert_eq!(wakes.len(), 1);
        // SAFETY: raise(2) delivers SIGINT to this thread; the handler only writes a byte.
        unsafe { libc::raise(libc::SIGINT) };
        assert_eq!(wait_for(&wakes).unwrap(), 0);
        assert_eq!(watch.woke(0), Woke::Interrupted);
    }

    #[test]
    fn a_pipe_whose_reader_left_is_noticed_without_writing() {
        let (read, write) = nonblocking_pipe().unwrap();
        let watch = Watch {
            sigint: None,
            stdout: Some(write),
        };
        drop(read);
        let wakes = watch.wakes();
        assert_eq!(wait_for(&wakes).unwrap(), 0);
        assert_eq!(watch.woke(0), Woke::StdoutGone);
    }
}
