//! Pairing: another local user's device proves itself (`authenticate`), and the owner lists,
//! approves, rejects and revokes.

use tokio_util::sync::CancellationToken;

use super::{Caller, DeviceAuth, DeviceLink, Result, ServiceError, SessionService};
use crate::daemon::store::pairing;
use crate::device::{Proof, fingerprint_of_hex};
use crate::protocol::{
    ApproveParams, AuthenticateParams, AuthenticateResult, PairedDevice, PairingListResult,
    PendingRequest, RejectParams, RevokeParams, RevokeResult, methods, scopes,
};
use crate::timefmt::{now_ms, rfc3339_ms};

/// What a successful `authenticate` changes: who the connection is from now on, and the
/// link that lets a revocation drop it.
pub struct Authenticated {
    pub result: AuthenticateResult,
    pub caller: Caller,
    pub link: Option<DeviceLink>,
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

impl SessionService {
    /// A signature over this connection's `nonce` proves the device. A paired device gets its
    /// scopes; an unknown one gets a pending request (and `pairing_required` naming it).
    /// `close` drops the connection if the device is revoked later.
    pub async fn authenticate(
        &self,
        caller: &Caller,
        uid: Option<u32>,
        nonce: &str,
        close: CancellationToken,
        p: AuthenticateParams,
    ) -> Result<Authenticated> {
        let Some(uid) = uid else {
            return Err(ServiceError::forbidden(
                "the kernel did not say who this client is",
            ));
        };
        if !matches!(caller, Caller::Operator | Caller::Run(_)) {
            // Checking a signature costs the daemon far more than sending one costs the
            // peer: another user gets a few a second.
            let rate = self.engine.config().limits.auth_attempts_per_second;
            self.strangers
                .check_allowed(Some(uid), rate, std::time::Instant::now())
                .map_err(|wait| super::strangers::checks_exhausted(Some(uid), rate, wait))?;
        }
        let socket = self.daemon.paths.socket.display().to_string();
        let proof = Proof {
            nonce,
            uid,
            socket: &socket,
            daemon_id: &self.daemon.daemon_id,
        };
        if !proof.verify(&p.public_key, &p.signature) {
            return Err(ServiceError::forbidden(
                "the device signature does not match this connection: a signature is good only for the connection, user and daemon it was made for",
            ));
        }
        let fingerprint = fingerprint_of_hex(&p.public_key)
            .ok_or_else(|| ServiceError::InvalidParams("publicKey must be hex".into()))?;
        if !matches!(caller, Caller::Stranger { .. } | Caller::Device(_)) {
            // The owner needs no pairing; say what it holds.
            return Ok(Authenticated {
                result: AuthenticateResult {
                    fingerprint,
                    scopes: caller.scopes(),
                },
                caller: caller.clone(),
                link: None,
            });
        }
        let store = &self.engine.store;
        let fp = fingerprint.clone();
        let device = store
            .pairing_read(move |c| pairing::paired(c, &fp, uid))
            .await?;
        if let Some(device) = device {
            let link = self.link_device(&device.fingerprint, close.clone());
            // A revoke that ran between the lookup and the link found nothing to drop: look
            // again now that a revoke would find this connection.
            let fp = device.fingerprint.clone();
            let still = store
                .pairing_read(move |c| pairing::paired(c, &fp, uid))
                .await;
            if !matches!(still, Ok(Some(_))) {
                close.cancel();
                return Err(ServiceError::forbidden(
                    "this device's pairing was revoked while it was signing in",
                ));
            }
            return Ok(Authenticated {
                result: AuthenticateResult {
                    fingerprint: device.fingerprint.clone(),
                    scopes: device.scopes.clone(),
                },
                caller: Caller::Device(DeviceAuth {
                    fingerprint: device.fingerprint,
                    scopes: device.scopes,
                }),
                link: Some(link),
            });
        }
        let config = self.engine.config().pairing;
        let ttl = (config.request_ttl_minutes.min(1 << 30) as i64) * 60_000;
        let user = crate::daemon::auth::user_name(uid);
        let (fp, pk) = (fingerprint.clone(), p.public_key.clone());
        let request = store
            .pairing(move |c| {
                let who = pairing::Applicant {
                    uid,
                    user: user.as_deref(),
                    fingerprint: &fp,
                    public_key: &pk,
                };
                pairing::request(c, &who, now_ms(), ttl, config.max_pending_per_uid)
            })
            .await?;
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        let id = short(&request.id);
        Err(ServiceError::PairingRequired {
            message: format!(
                "this device is not paired with the daemon owned by uid {euid} (request {id}…). Ask the owner to run: openclaw pairing approve {id}"
            ),
            request: Some((request.id.clone(), fingerprint)),
        })
    }

    /// Pending requests and paired devices.
    pub async fn pairing_list(&self, caller: &Caller) -> Result<PairingListResult> {
        self.authorize(caller, methods::PAIRING_LIST, scopes::ADMIN)?;
        let (pending, devices) = self
            .engine
            .store
            .pairing_read(|c| pairing::list(c, now_ms()))
            .await?;
        Ok(PairingListResult {
            pending: pending
                .into_iter()
                .map(|r| PendingRequest {
                    request_id: r.id,
                    uid: r.uid,
                    user: r.user,
                    fingerprint: r.fingerprint,
                    requested_at: rfc3339_ms(r.requested_at),
                    expires_at: rfc3339_ms(r.expires_at),
                })
                .collect(),
            devices: devices
                .into_iter()
                .map(|d| PairedDevice {
                    fingerprint: d.fingerprint,
                    uid: d.uid,
                    user: d.user,
                    scopes: d.scopes,
                    approved_at: rfc3339_ms(d.approved_at),
                    revoked_at: d.revoked_at.map(rfc3339_ms),
                })
                .collect(),
        })
    }

    /// Pairs the request's device with the given scopes.
    pub async fn pairing_approve(
        &self,
        caller: &Caller,
        p: ApproveParams,
    ) -> Result<pairing::DeviceRecord> {
        self.authorize(caller, methods::PAIRING_APPROVE, scopes::ADMIN)?;
        let granted = p.scopes.unwrap_or_else(|| {
            vec![
                scopes::SESSIONS_READ.to_string(),
                scopes::SESSIONS_WRITE.to_string(),
            ]
        });
        if let Some(bad) = granted.iter().find(|s| !scopes::ALL.contains(&s.as_str())) {
            return Err(ServiceError::InvalidParams(format!(
                "unknown scope \"{bad}\"; scopes are {}",
                scopes::ALL.join(", ")
            )));
        }
        let id = p.request_id;
        Ok(self
            .engine
            .store
            .pairing(move |c| pairing::approve(c, &id, &granted, now_ms()))
            .await?)
    }

    /// Drops a pending request; returns its id.
    pub async fn pairing_reject(&self, caller: &Caller, p: RejectParams) -> Result<String> {
        self.authorize(caller, methods::PAIRING_REJECT, scopes::ADMIN)?;
        let id = p.request_id;
        Ok(self
            .engine
            .store
            .pairing(move |c| pairing::reject(c, &id))
            .await?)
    }

    /// Unpairs a device and drops its open connections at once.
    pub async fn pairing_revoke(&self, caller: &Caller, p: RevokeParams) -> Result<RevokeResult> {
        self.authorize(caller, methods::PAIRING_REVOKE, scopes::ADMIN)?;
        let device = p.device;
        let fingerprint = self
            .engine
            .store
            .pairing(move |c| pairing::revoke(c, &device, now_ms()))
            .await?;
        let mut dropped = 0;
        for (fp, close) in self
            .devices
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            if *fp == fingerprint {
                close.cancel();
                dropped += 1;
            }
        }
        Ok(RevokeResult {
            fingerprint,
            revoked: true,
            dropped_connections: dropped,
        })
    }
}
