//! This device's identity, for talking to a daemon owned by another user: an Ed25519 key
//! pair kept private in the user's config directory. Its fingerprint (SHA-256 of the public
//! key) is what the daemon's owner approves; its signature over the daemon's per-connection
//! nonce proves possession, and cannot be replayed to another connection or daemon.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 1024 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
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
