//! What std's start-up would have done for this program (see `main`): the standard
//! descriptors open, SIGPIPE ignored; and at the end, stdout flushed.

use std::io::Write;

/// Before anything else runs.
pub fn prepare() {
    keep_stdio_open();
    // SAFETY: setting a signal's disposition to ignore has no preconditions; nothing else
    // runs yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// After the command, before the process exits.
#[cfg_attr(test, allow(dead_code))]
pub fn finish() {
    let _ = std::io::stdout().flush();
}

/// A command run with a standard descriptor closed (from cron, by a careless parent) would
/// otherwise hand that number to the next file it opens: the socket would then receive what
/// is printed. Each closed one is opened on /dev/null.
fn keep_stdio_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: a valid array of three pollfd; poll only reads fds and writes revents.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if rc < 0 {
        return;
    }
    for pollfd in fds {
        if pollfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: the path is a NUL-terminated literal; the fd opened is the lowest free
            // one, which is this closed standard descriptor, and is kept for the process.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn preparing_keeps_the_standard_descriptors_and_ignores_sigpipe() {
        super::prepare();
        // SAFETY: reading a disposition with a null new action.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
        assert_eq!(old.sa_sigaction, libc::SIG_IGN);
        for fd in 0..3 {
            // SAFETY: fcntl F_GETFD on a small fd number only reads.
            assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0, "fd {fd}");
        }
    }
}
