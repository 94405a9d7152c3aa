//! This device's identity, for talking to a daemon owned by another user: an Ed25519 key
//! pair kept private in the user's config directory. Its fingerprint (SHA-256 of the public
//! key) is what the daemon's owner approves; its signature over the daemon's per-connection
//! nonce proves possession, and cannot be replayed to another connection or daemon.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

pub const KEY_FILE: &str = "device.key";

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "the device key {path} can be read by other users (mode {mode:04o}); anyone who reads it can act as you — run `chmod 600 {path}` (or delete it to make a new one, which then needs approving again)"
    )]
    KeyReadableByOthers { path: PathBuf, mode: u32 },
    #[error("cannot read the device key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the device key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the device key {path} is not a valid Ed25519 key; delete it to make a new one (it then needs approving again)"
    )]
    Invalid { path: PathBuf },
    #[error("the system's random number generator failed")]
    Random,
    #[error("cannot read {path} ({reason}); delete it, and pair again where needed")]
    Pairings { path: PathBuf, reason: String },
}

pub struct Device {
    key: Ed25519KeyPair,
}

impl Device {
    /// Loads the key from `dir`, creating it (0600, in a 0700 directory) on first use. A key
    /// file others can read is refused, not used.
    pub fn load_or_create(dir: &Path) -> Result<Device, DeviceError> {
        let path = dir.join(KEY_FILE);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(DeviceError::KeyReadableByOthers { path, mode });
                }
                let bytes = std::fs::read(&path).map_err(|source| DeviceError::Read {
                    path: path.clone(),
                    source,
                })?;
                let key = Ed25519KeyPair::from_pkcs8(&bytes)
                    .map_err(|_| DeviceError::Invalid { path: path.clone() })?;
                Ok(Device { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Device::create(dir, &path),
            Err(source) => Err(DeviceError::Read { path, source }),
        }
    }

    fn create(dir: &Path, path: &Path) -> Result<Device, DeviceError> {
        let write_err = |source| DeviceError::Write {
            path: path.to_path_buf(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err)?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| DeviceError::Random)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_err)?;
        file.write_all(pkcs8.as_ref()).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| DeviceError::Invalid {
            path: path.to_path_buf(),
        })?;
        Ok(Device { key })
    }

    pub fn public_key_hex(&self) -> String {
        hex(self.key.public_key().as_ref())
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.key.public_key().as_ref())
    }

    /// Signs the proof for one connection.
    pub fn sign_proof(&self, proof: &Proof<'_>) -> String {
        hex(self.key.sign(proof.message().as_bytes()).as_ref())
    }
}

/// What a device signs: bound to this connection (nonce), this user, this socket and this
/// daemon, so the signature is worth nothing anywhere else.
pub struct Proof<'a> {
    pub nonce: &'a str,
    pub uid: u32,
    pub socket: &'a str,
    pub daemon_id: &'a str,
}

impl Proof<'_> {
    pub fn message(&self) -> String {
        format!(
            "openclaw-device-proof-v1\nnonce={}\nuid={}\nsocket={}\ndaemon={}\n",
            self.nonce, self.uid, self.socket, self.daemon_id
        )
    }

    /// Checks a signature (hex) by a public key (hex).
    pub fn verify(&self, public_key_hex: &str, signature_hex: &str) -> bool {
        let (Some(key), Some(sig)) = (unhex(public_key_hex), unhex(signature_hex)) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, key)
            .verify(self.message().as_bytes(), &sig)
            .is_ok()
    }
}

/// SHA-256 of a public key, hex.
pub fn fingerprint(public_key: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, public_key).as_ref())
}

pub fn fingerprint_of_hex(public_key_hex: &str) -> Option<String> {
    unhex(public_key_hex).map(|k| fingerprint(&k))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Bytes from hex (either case); `None` for anything else, or for more than 512 bytes (no key,
/// signature or token is longer, and input from a peer is bounded before it is decoded).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 1024 {
        return None;
    }
    hex::decode(s).ok()
}

/// The daemons of other users this device paired with: for each socket path (as this user
/// names it), the uid of the daemon that admitted the device. A client then accepts only that
/// uid at that socket, so something else listening there later is refused before anything is
/// sent (see [`crate::client::trust`]). Kept beside the key, 0600.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedDaemons {
    #[serde(default)]
    pub daemons: Vec<PairedDaemon>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDaemon {
    pub socket: String,
    pub uid: u32,
    pub daemon_id: String,
}

pub const PAIRED_FILE: &str = "paired-daemons.json";

impl PairedDaemons {
    /// The record in `dir`; empty when there is none yet.
    pub fn load(dir: &Path) -> Result<PairedDaemons, DeviceError> {
        let path = dir.join(PAIRED_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DeviceError::Pairings {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PairedDaemons::default()),
            Err(source) => Err(DeviceError::Read { path, source }),
        }
    }

    /// The uid this device paired with at `socket`.
    pub fn uid_for(&self, socket: &str) -> Option<u32> {
        self.daemons
            .iter()
            .find(|d| d.socket == socket)
            .map(|d| d.uid)
    }

    /// Records (or replaces) the daemon at `socket`, writing the file atomically.
    pub fn record(dir: &Path, daemon: PairedDaemon) -> Result<(), DeviceError> {
        let mut all = PairedDaemons::load(dir)?;
        if all.daemons.contains(&daemon) {
            return Ok(());
        }
        all.daemons.retain(|d| d.socket != daemon.socket);
        all.daemons.push(daemon);
        let path = dir.join(PAIRED_FILE);
        let write_err = |source| DeviceError::Write {
            path: path.clone(),
            source,
        };
        let tmp = dir.join(format!("{PAIRED_FILE}.{}.tmp", std::process::id()));
        let mut bytes = serde_json::to_vec_pretty(&all).map_err(|e| DeviceError::Pairings {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(write_err)?;
        std::fs::rename(&tmp, &path).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof<'a>(nonce: &'a str) -> Proof<'a> {
        Proof {
            nonce,
            uid: 1001,
            socket: "/run/x.sock",
            daemon_id: "d1",
        }
    }

    #[test]
    fn a_key_is_created_private_and_loads_again() {
        let dir = tempfile::tempdir().unwrap();
        let a = Device::load_or_create(&dir.path().join("cfg")).unwrap();
        let mode = std::fs::metadata(dir.path().join("cfg").join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Device::load_or_create(&dir.path().join("cfg")).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
    }

    #[test]
    fn a_key_readable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        Device::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Device::load_or_create(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("0644"), "{err}");
    }

    #[test]
    fn hex_round_trips_and_bounds_its_input() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"00".repeat(513)), None);
    }

    #[test]
    fn paired_daemons_are_recorded_per_socket_and_private() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            PairedDaemons::load(dir.path()).unwrap(),
            PairedDaemons::default()
        );
        let daemon = |socket: &str, uid| PairedDaemon {
            socket: socket.into(),
            uid,
            daemon_id: "d".into(),
        };
        PairedDaemons::record(dir.path(), daemon("/a.sock", 1001)).unwrap();
        PairedDaemons::record(dir.path(), daemon("/b.sock", 1002)).unwrap();
        PairedDaemons::record(dir.path(), daemon("/a.sock", 1003)).unwrap();
        let all = PairedDaemons::load(dir.path()).unwrap();
        assert_eq!(all.uid_for("/a.sock"), Some(1003));
        assert_eq!(all.uid_for("/b.sock"), Some(1002));
        assert_eq!(all.uid_for("/c.sock"), None);
        let mode = std::fs::metadata(dir.path().join(PAIRED_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(PAIRED_FILE), "{not json").unwrap();
        let err = PairedDaemons::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(PAIRED_FILE), "{err}");
    }

    #[test]
    fn a_signature_verifies_only_for_its_own_connection_and_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let d = Device::load_or_create(dir.path()).unwrap();
        let sig = d.sign_proof(&proof("n1"));
        assert!(proof("n1").verify(&d.public_key_hex(), &sig));
        assert!(
            !proof("n2").verify(&d.public_key_hex(), &sig),
            "another connection's nonce"
        );
        let other_daemon = Proof {
            daemon_id: "d2",
            ..proof("n1")
        };
        assert!(!other_daemon.verify(&d.public_key_hex(), &sig));
        let other_uid = Proof {
            uid: 0,
            ..proof("n1")
        };
        assert!(!other_uid.verify(&d.public_key_hex(), &sig));
        assert!(!proof("n1").verify(&d.public_key_hex(), "zz"));
    }
}
