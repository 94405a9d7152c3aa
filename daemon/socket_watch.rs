//! Notices when the socket file is deleted or renamed away under the running daemon (a
//! `rm` in /tmp, a cleaner of $XDG_RUNTIME_DIR), so the accept loop can bind it again: clients
//! find the daemon by that path only, and without it they would try to start a second one.
//! inotify on the socket's directory wakes a thread of its own; nothing polls.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

/// Watches `socket`'s directory and wakes the returned `Notify` each time an entry of that
/// name is deleted or moved away. The thread lives as long as the daemon.
pub fn watch(socket: &Path) -> io::Result<Arc<Notify>> {
    let dir = socket.parent().unwrap_or(Path::new("."));
    let name = socket
        .file_name()
        .ok_or_else(|| io::Error::other("the socket path has no file name"))?
        .to_os_string();
    let dir_c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("the socket directory's path holds a NUL byte"))?;
    // SAFETY: plain syscalls on a descriptor this function owns.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dir_c` is a valid C string for the duration of the call.
    let wd = unsafe {
        libc::inotify_add_watch(fd, dir_c.as_ptr(), libc::IN_DELETE | libc::IN_MOVED_FROM)
    };
    if wd < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let gone = Arc::new(Notify::new());
    let wake = gone.clone();
    std::thread::Builder::new()
        .name("socket-watch".into())
        .spawn(move || read_events(fd, &name, &wake))?;
    Ok(gone)
}

fn read_events(fd: i32, name: &OsString, wake: &Notify) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: reading into a buffer we own, at most its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!(
                "watching the socket's directory failed: {}",
                io::Error::last_os_error()
            );
            return;
        }
        if names_in(&buf[..n as usize]).any(|n| n == name.as_os_str()) {
            wake.notify_one();
        }
    }
}

/// The names in a buffer of `inotify_event`s: a fixed header, then `len` bytes of name
/// padded with NULs.
fn names_in(mut buf: &[u8]) -> impl Iterator<Item = &OsStr> {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    std::iter::from_fn(move || {
        if buf.len() < HEADER {
            return None;
        }
        let len = u32::from_ne_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
        let end = (HEADER + len).min(buf.len());
        let raw = &buf[HEADER..end];
        let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        buf = &buf[end..];
        Some(OsStr::from_bytes(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, padded: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&1i32.to_ne_bytes());
        v.extend_from_slice(&libc::IN_DELETE.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(padded, 0);
        v.extend_from_slice(&n);
        v
    }

    #[test]
    fn names_are_read_from_a_run_of_events() {
        let mut buf = event("other", 16);
        buf.extend(event("openclaw.sock", 16));
        let names: Vec<&OsStr> = names_in(&buf).collect();
        assert_eq!(names, [OsStr::new("other"), OsStr::new("openclaw.sock")]);
    }

    #[test]
    fn a_deleted_socket_wakes_the_watcher() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("s.sock");
        std::fs::write(dir.path().join("unrelated"), "").expect("write");
        std::fs::write(&socket, "").expect("write");
        let gone = watch(&socket).expect("watch");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let woken = gone.notified();
            std::fs::remove_file(dir.path().join("unrelated")).expect("rm");
            std::fs::remove_file(&socket).expect("rm");
            tokio::time::timeout(std::time::Duration::from_secs(20), woken)
                .await
                .expect("woken by the socket's deletion");
        });
    }
}
