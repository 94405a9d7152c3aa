//! Whether the process listening at a socket is a daemon this user should talk to (issue 15).
//!
//! Anyone can create `/tmp/openclaw-$UID/` before its owner does, listen there, and receive
//! every task and message a cron job sends (cron has no `XDG_RUNTIME_DIR`, so the fallback is
//! used). The daemon's own directory checks cannot protect the client from an impostor, so
//! the client checks, before it sends a byte:
//!
//! - the socket's directory: owned by this user or root (or, when the socket was named on
//!   purpose or this device paired there, by the daemon's owner), and not writable by group or
//!   others (anyone who can write it can replace the socket);
//! - the peer's credentials (`SO_PEERCRED`, fixed at `connect`): this user, root, or the uid
//!   this device paired with at that socket. A socket named on purpose (`OPENCLAW_SOCKET`)
//!   with no pairing recorded yet may belong to another user: that is how a device reaches
//!   another user's daemon to pair with it the first time.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The credentials of the process at the other end of a Unix socket, as they were when it
/// called `listen` or `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `SO_PEERCRED` of a connected Unix socket.
pub fn peer_credentials(socket: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the fd is borrowed
    // open for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials {
        pid: u32::try_from(cred.pid).unwrap_or(0),
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Whom this client accepts as the daemon at a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// This process's effective uid.
    pub own_uid: u32,
    /// The uid this device paired with at this socket, if it ever did.
    pub paired_uid: Option<u32>,
    /// The socket was named on purpose (`OPENCLAW_SOCKET`) rather than derived: with no
    /// pairing recorded, another user's daemon there is allowed, for a first pairing.
    pub named: bool,
}

impl Expected {
    /// Only this user's own daemon (or root's).
    pub fn own(own_uid: u32) -> Expected {
        Expected {
            own_uid,
            paired_uid: None,
            named: false,
        }
    }

    fn accepts(&self, uid: u32) -> bool {
        uid == self.own_uid || uid == 0 || Some(uid) == self.paired_uid
    }

    /// Another user's daemon is acceptable at this socket: named on purpose, first contact.
    fn open_to_others(&self) -> bool {
        self.named && self.paired_uid.is_none()
    }
}

/// Why a socket was not used. Each message names the path, who owns it, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    DirectoryOwner {
        dir: PathBuf,
        owner: u32,
        own_uid: u32,
    },
    DirectoryWritable {
        dir: PathBuf,
        owner: u32,
        mode: u32,
    },
    Peer {
        socket: PathBuf,
        peer: PeerCredentials,
        own_uid: u32,
        paired_uid: Option<u32>,
    },
    /// The peer's credentials could not be read: nothing to judge it by.
    Unknown {
        socket: PathBuf,
        error: String,
    },
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Untrusted::DirectoryOwner {
                dir,
                owner,
                own_uid,
            } => write!(
                f,
                "refusing to use the socket directory {dir}: it belongs to {owner}, not to you ({you}) or root, so whoever created it could receive everything you send. Remove it (as its owner or root: `rm -r {dir}`) or put the socket elsewhere (XDG_RUNTIME_DIR, OPENCLAW_HOME or OPENCLAW_SOCKET); to reach another user's daemon on purpose, name its socket with OPENCLAW_SOCKET",
                dir = dir.display(),
                owner = describe_uid(*owner),
                you = describe_uid(*own_uid),
            ),
            Untrusted::DirectoryWritable { dir, owner, mode } => write!(
                f,
                "refusing to use the socket directory {dir} (owned by {owner}): other users can write to it (mode {mode:04o}), so any of them could replace the socket with their own. Run `chmod 700 {dir}` (or go-w) as its owner, or put the socket elsewhere",
                dir = dir.display(),
                owner = describe_uid(*owner),
                mode = mode & 0o7777,
            ),
            Untrusted::Peer {
                socket,
                peer,
                own_uid,
                paired_uid,
            } => {
                write!(
                    f,
                    "refusing to talk to the process listening at {socket}: it runs as {peer_user} (pid {pid}), not as you ({you}) or root",
                    socket = socket.display(),
                    peer_user = describe_uid(peer.uid),
                    pid = peer.pid,
                    you = describe_uid(*own_uid),
                )?;
                match paired_uid {
                    Some(paired) => write!(
                        f,
                        ", and this device paired with {} at that socket; something else may be listening in its place. Nothing was sent. Ask that user whether their daemon moved; to pair afresh, remove that socket from paired-daemons.json in your config directory",
                        describe_uid(*paired)
                    ),
                    None => write!(
                        f,
                        ", so it may be an impostor. Nothing was sent. Stop that process or remove the socket (as its owner or root: `rm {socket}`), then run the command again; to use another user's daemon on purpose, name its socket with OPENCLAW_SOCKET",
                        socket = socket.display()
                    ),
                }
            }
            Untrusted::Unknown { socket, error } => write!(
                f,
                "refusing to talk to the process listening at {}: its credentials cannot be read ({error}). Nothing was sent",
                socket.display()
            ),
        }
    }
}

/// Checks the directory of `socket` before connecting. `Ok(None)` when it does not exist
/// (then nothing listens there; starting a daemon creates it). Otherwise its owner.
pub fn check_directory(socket: &Path, expected: &Expected) -> Result<Option<u32>, Untrusted> {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::metadata(dir) {
        Ok(meta) => judge_directory(dir, meta.uid(), meta.mode(), expected).map(Some),
        // Missing, or not ours to look into: connecting will say what is wrong.
        Err(_) => Ok(None),
    }
}

/// The directory rule as a pure function of its owner and mode.
pub fn judge_directory(
    dir: &Path,
    owner: u32,
    mode: u32,
    expected: &Expected,
) -> Result<u32, Untrusted> {
    if !expected.accepts(owner) && !expected.open_to_others() {
        return Err(Untrusted::DirectoryOwner {
            dir: dir.to_path_buf(),
            owner,
            own_uid: expected.own_uid,
        });
    }
    if mode & 0o022 != 0 {
        return Err(Untrusted::DirectoryWritable {
            dir: dir.to_path_buf(),
            owner,
            mode,
        });
    }
    Ok(owner)
}

/// Checks the process at the other end of a connected `socket`. `dir_owner` is what
/// [`check_directory`] found: another user's daemon must also own the directory it listens in.
pub fn judge_peer(
    socket: &Path,
    peer: PeerCredentials,
    dir_owner: Option<u32>,
    expected: &Expected,
) -> Result<(), Untrusted> {
    let refused = || Untrusted::Peer {
        socket: socket.to_path_buf(),
        peer,
        own_uid: expected.own_uid,
        paired_uid: expected.paired_uid,
    };
    if expected.accepts(peer.uid) {
        return Ok(());
    }
    // First contact with another user's daemon, at a socket named on purpose: it must be
    // the owner of the directory too, so that a third user cannot stand in for it.
    if expected.open_to_others() && dir_owner.is_none_or(|owner| owner == peer.uid) {
        return Ok(());
    }
    Err(refused())
}

/// `uid 65534 (nobody)`: the name from /etc/passwd when it has one. Read directly, not through
/// NSS, so that a statically linked client never loads NSS modules for a message.
pub fn describe_uid(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    name_in_passwd(&passwd, uid)
}

fn name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let id: u32 = fields.next()?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 1000;
    const OTHER: u32 = 1001;
    const THIRD: u32 = 1002;

    fn creds(uid: u32) -> PeerCredentials {
        PeerCredentials {
            pid: 42,
            uid,
            gid: uid,
        }
    }

    fn sock() -> &'static Path {
        Path::new("/tmp/openclaw-1000/openclaw.sock")
    }

    #[test]
    fn own_and_root_directories_are_fine_unless_others_can_write() {
        let me = Expected::own(ME);
        let dir = Path::new("/d");
        assert_eq!(judge_directory(dir, ME, 0o40700, &me), Ok(ME));
        assert_eq!(judge_directory(dir, 0, 0o40755, &me), Ok(0));
        let err = judge_directory(dir, ME, 0o40777, &me).unwrap_err();
        assert!(matches!(err, Untrusted::DirectoryWritable { .. }));
        let text = err.to_string();
        assert!(
            text.contains("/d") && text.contains("0777") && text.contains("chmod 700"),
            "{text}"
        );
        assert!(judge_directory(dir, ME, 0o40770, &me).is_err());
    }

    #[test]
    fn a_directory_of_another_user_is_refused_with_its_owner_named() {
        let err = judge_directory(
            Path::new("/tmp/openclaw-1000"),
            OTHER,
            0o40700,
            &Expected::own(ME),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/tmp/openclaw-1000"), "{text}");
        assert!(text.contains("uid 1001"), "{text}");
        assert!(text.contains("OPENCLAW_SOCKET"), "{text}");
    }

    #[test]
    fn the_peer_must_be_me_root_or_the_paired_uid() {
        let me = Expected::own(ME);
        assert!(judge_peer(sock(), creds(ME), Some(ME), &me).is_ok());
        assert!(judge_peer(sock(), creds(0), Some(ME), &me).is_ok());
        let err = judge_peer(sock(), creds(OTHER), Some(ME), &me).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("uid 1001") && text.contains("pid 42"),
            "{text}"
        );
        assert!(text.contains("Nothing was sent"), "{text}");

        let paired = Expected {
            paired_uid: Some(OTHER),
            ..Expected::own(ME)
        };
        assert!(judge_peer(sock(), creds(OTHER), Some(OTHER), &paired).is_ok());
        let err = judge_peer(sock(), creds(THIRD), Some(THIRD), &paired).unwrap_err();
        assert!(err.to_string().contains("paired with uid 1001"), "{err}");
    }

    #[test]
    fn a_named_socket_may_reach_another_users_daemon_before_pairing() {
        let named = Expected {
            named: true,
            ..Expected::own(ME)
        };
        assert_eq!(
            judge_directory(Path::new("/srv/o"), OTHER, 0o40755, &named),
            Ok(OTHER)
        );
        assert!(judge_peer(sock(), creds(OTHER), Some(OTHER), &named).is_ok());
        // ...but not a third user's process listening in that user's directory.
        assert!(judge_peer(sock(), creds(THIRD), Some(OTHER), &named).is_err());
        // Once paired, only that uid.
        let paired = Expected {
            paired_uid: Some(OTHER),
            ..named
        };
        assert!(judge_directory(Path::new("/srv/t"), THIRD, 0o40755, &paired).is_err());
        assert!(judge_peer(sock(), creds(THIRD), Some(THIRD), &paired).is_err());
    }

    #[test]
    fn user_names_come_from_passwd_lines() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\nbroken\n";
        assert_eq!(name_in_passwd(passwd, 65534).as_deref(), Some("nobody"));
        assert_eq!(name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_in_passwd(passwd, 7), None);
    }

    #[test]
    fn peer_credentials_of_a_socket_pair_are_our_own() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsFd;
        let creds = peer_credentials(a.as_fd()).unwrap();
        // SAFETY: geteuid has no preconditions.
        assert_eq!(creds.uid, unsafe { libc::geteuid() });
        assert_eq!(creds.pid, std::process::id());
    }
}
