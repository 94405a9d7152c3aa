//! Pairing records: requests from other users' devices, the devices the owner approved (with
//! their scopes), and revocations. Written through the one writer like everything else
//! (`Store::pairing`), so a full disk or a busy store is handled in one place.

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone, PartialEq)]
pub struct PairingRequest {
    pub id: String,
    pub uid: u32,
    pub user: Option<String>,
    pub fingerprint: String,
    pub requested_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    pub fingerprint: String,
    pub uid: u32,
    pub user: Option<String>,
    pub scopes: Vec<String>,
    pub approved_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error("no pending pairing request matches \"{0}\"; `openclaw pairing list` shows them")]
    NoRequest(String),
    #[error("no paired device matches \"{0}\"; `openclaw pairing list` shows them")]
    NoDevice(String),
    #[error("\"{0}\" matches more than one; give more of the id")]
    Ambiguous(String),
    #[error(
        "uid {uid} already has {cap} pending pairing requests; ask the owner to approve or reject them first"
    )]
    TooMany { uid: u32, cap: u32 },
    #[error("\"{0}\" is too short to name one: give at least 4 characters of it")]
    ShortPrefix(String),
    #[error("device {0} is already revoked")]
    AlreadyRevoked(String),
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

impl From<rusqlite::Error> for PairingError {
    fn from(e: rusqlite::Error) -> Self {
        PairingError::Store(e.into())
    }
}

/// Who asks to be paired.
pub struct Applicant<'a> {
    pub uid: u32,
    pub user: Option<&'a str>,
    pub fingerprint: &'a str,
    pub public_key: &'a str,
}

/// The pending request of this device, existing or new. Expired requests are dropped first;
/// a uid may hold at most `cap` at once.
pub fn request(
    c: &Connection,
    who: &Applicant<'_>,
    now: i64,
    ttl_ms: i64,
    cap: u32,
) -> Result<PairingRequest, PairingError> {
    let Applicant {
        uid,
        user,
        fingerprint,
        public_key,
    } = *who;
    c.execute("DELETE FROM pairing_requests WHERE expires_at <= ?1", [now])?;
    if let Some(existing) = c
        .query_row(
            "SELECT id, uid, user, fingerprint, requested_at, expires_at FROM pairing_requests WHERE fingerprint = ?1 AND uid = ?2",
            params![fingerprint, uid],
            request_from_row,
        )
        .optional()?
    {
        return Ok(existing);
    }
    let pending: u32 = c.query_row(
        "SELECT count(*) FROM pairing_requests WHERE uid = ?1",
        [uid],
        |r| r.get(0),
    )?;
    if pending >= cap {
        return Err(PairingError::TooMany { uid, cap });
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    c.execute(
        "INSERT INTO pairing_requests (id, uid, user, fingerprint, public_key, requested_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, uid, user, fingerprint, public_key, now, now + ttl_ms],
    )?;
    Ok(PairingRequest {
        id,
        uid,
        user: user.map(str::to_string),
        fingerprint: fingerprint.to_string(),
        requested_at: now,
        expires_at: now + ttl_ms,
    })
}

fn request_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PairingRequest> {
    Ok(PairingRequest {
        id: r.get(0)?,
        uid: r.get(1)?,
        user: r.get(2)?,
        fingerprint: r.get(3)?,
        requested_at: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let scopes: String = r.get(3)?;
    Ok(DeviceRecord {
        fingerprint: r.get(0)?,
        uid: r.get(1)?,
        user: r.get(2)?,
        scopes: scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        approved_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

/// A paired, not revoked device with this fingerprint and public key.
pub fn paired(
    c: &Connection,
    fingerprint: &str,
    uid: u32,
) -> Result<Option<DeviceRecord>, PairingError> {
    Ok(c.query_row(
        "SELECT fingerprint, uid, user, scopes, approved_at, revoked_at FROM devices WHERE fingerprint = ?1 AND uid = ?2 AND revoked_at IS NULL",
        params![fingerprint, uid],
        device_from_row,
    )
    .optional()?)
}

pub fn list(
    c: &Connection,
    now: i64,
) -> Result<(Vec<PairingRequest>, Vec<DeviceRecord>), PairingError> {
    let pending = c
        .prepare(
            "SELECT id, uid, user, fingerprint, requested_at, expires_at FROM pairing_requests WHERE expires_at > ?1 ORDER BY requested_at",
        )?
        .query_map([now], request_from_row)?
        .collect::<Result<_, _>>()?;
    let devices = c
        .prepare(
            "SELECT fingerprint, uid, user, scopes, approved_at, revoked_at FROM devices ORDER BY approved_at",
        )?
        .query_map([], device_from_row)?
        .collect::<Result<_, _>>()?;
    Ok((pending, devices))
}

/// Finds the one id starting with `prefix` (at least 4 characters) in `column` of `table`.
fn unique_prefix(
    c: &Connection,
    table: &str,
    column: &str,
    prefix: &str,
    extra: &str,
) -> Result<Option<String>, PairingError> {
    let prefix = prefix.trim().trim_end_matches('…');
    if prefix.chars().count() < 4 {
        return Err(PairingError::ShortPrefix(prefix.to_string()));
    }
    if !prefix.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let sql =
        format!("SELECT {column} FROM {table} WHERE substr({column}, 1, ?2) = ?1 {extra} LIMIT 2");
    let found: Vec<String> = c
        .prepare(&sql)?
        .query_map(
            params![prefix.to_ascii_lowercase(), prefix.len() as i64],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.into_iter().next()),
        _ => Err(PairingError::Ambiguous(prefix.to_string())),
    }
}

/// Approves a pending request: its device is paired with `scopes`.
pub fn approve(
    tx: &Connection,
    request_prefix: &str,
    scopes: &[String],
    now: i64,
) -> Result<DeviceRecord, PairingError> {
    let id = unique_prefix(tx, "pairing_requests", "id", request_prefix, "")?
        .ok_or_else(|| PairingError::NoRequest(request_prefix.to_string()))?;
    let (uid, user, fingerprint, public_key): (u32, Option<String>, String, String) = tx
        .query_row(
            "SELECT uid, user, fingerprint, public_key FROM pairing_requests WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    let scopes_text = scopes.join(",");
    tx.execute(
        "INSERT INTO devices (fingerprint, public_key, uid, user, scopes, approved_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
         ON CONFLICT(fingerprint) DO UPDATE SET public_key = ?2, uid = ?3, user = ?4, scopes = ?5, approved_at = ?6, revoked_at = NULL",
        params![fingerprint, public_key, uid, user, scopes_text, now],
    )?;
    tx.execute("DELETE FROM pairing_requests WHERE id = ?1", [&id])?;
    Ok(DeviceRecord {
        fingerprint,
        uid,
        user,
        scopes: scopes.to_vec(),
        approved_at: now,
        revoked_at: None,
    })
}

pub fn reject(c: &Connection, request_prefix: &str) -> Result<String, PairingError> {
    let id = unique_prefix(c, "pairing_requests", "id", request_prefix, "")?
        .ok_or_else(|| PairingError::NoRequest(request_prefix.to_string()))?;
    c.execute("DELETE FROM pairing_requests WHERE id = ?1", [&id])?;
    Ok(id)
}

/// Revokes a paired device; returns its fingerprint.
pub fn revoke(c: &Connection, device_prefix: &str, now: i64) -> Result<String, PairingError> {
    let fp = unique_prefix(c, "devices", "fingerprint", device_prefix, "")?
        .ok_or_else(|| PairingError::NoDevice(device_prefix.to_string()))?;
    let revoked: Option<i64> = c.query_row(
        "SELECT revoked_at FROM devices WHERE fingerprint = ?1",
        [&fp],
        |r| r.get(0),
    )?;
    if revoked.is_some() {
        return Err(PairingError::AlreadyRevoked(fp));
    }
    c.execute(
        "UPDATE devices SET revoked_at = ?2 WHERE fingerprint = ?1",
        params![fp, now],
    )?;
    Ok(fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32, fingerprint: &str) -> Applicant<'_> {
        Applicant {
            uid,
            user: Some("reports"),
            fingerprint,
            public_key: "pk",
        }
    }

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        c
    }

    #[test]
    fn a_request_is_reused_capped_and_expires() {
        let c = db();
        let a = request(&c, &who(1001, "fp1"), 1000, 500, 2).unwrap();
        let again = request(&c, &who(1001, "fp1"), 1100, 500, 2).unwrap();
        assert_eq!(a.id, again.id);
        request(&c, &who(1001, "fp2"), 1100, 500, 2).unwrap();
        assert!(matches!(
            request(&c, &who(1001, "fp3"), 1200, 500, 2),
            Err(PairingError::TooMany { .. })
        ));
        // Another uid has its own cap.
        request(&c, &who(1002, "fp3"), 1200, 500, 2).unwrap();
        // Once expired, the cap frees up and a new request gets a new id.
        let later = request(&c, &who(1001, "fp1"), 2000, 500, 2).unwrap();
        assert_ne!(later.id, a.id);
    }

    #[test]
    fn approve_by_prefix_then_revoke() {
        let c = db();
        let r = request(&c, &who(1001, "abcd1234"), 1000, 60_000, 5).unwrap();
        assert!(paired(&c, "abcd1234", 1001).unwrap().is_none());
        let scopes = vec!["sessions.read".to_string()];
        let d = approve(&c, &r.id[..6], &scopes, 1500).unwrap();
        assert_eq!(d.scopes, scopes);
        assert_eq!(
            paired(&c, "abcd1234", 1001).unwrap().unwrap().scopes,
            scopes
        );
        assert!(
            paired(&c, "abcd1234", 1002).unwrap().is_none(),
            "bound to the uid that asked"
        );
        let (pending, devices) = list(&c, 1600).unwrap();
        assert!(pending.is_empty());
        assert_eq!(devices.len(), 1);
        assert_eq!(revoke(&c, "abcd", 1700).unwrap(), "abcd1234");
        assert!(paired(&c, "abcd1234", 1001).unwrap().is_none());
        assert!(matches!(
            revoke(&c, "abcd", 1800),
            Err(PairingError::AlreadyRevoked(_))
        ));
        assert!(matches!(
            revoke(&c, "ffff", 1800),
            Err(PairingError::NoDevice(_))
        ));
    }

    #[test]
    fn short_or_unknown_prefixes_are_refused() {
        let c = db();
        request(&c, &who(1, "f"), 0, 60_000, 5).unwrap();
        let err = approve(&c, "ab", &[], 1).unwrap_err();
        assert!(matches!(err, PairingError::ShortPrefix(_)));
        assert!(err.to_string().contains("at least 4 characters"), "{err}");
        assert!(matches!(
            reject(&c, "ffffffff"),
            Err(PairingError::NoRequest(_))
        ));
    }
}
