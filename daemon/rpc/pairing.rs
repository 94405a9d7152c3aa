//! Handlers of `pairing.*`: another user's device proves itself (`authenticate`), and the
//! owner lists, approves, rejects and revokes.

use std::sync::Arc;

use crate::device::{Proof, fingerprint_of_hex};
use crate::protocol::{
    ApproveParams, AuthenticateParams, AuthenticateResult, ErrorKind, NoParams, PairedDevice,
    PairingListResult, PendingRequest, RejectParams, RevokeParams, RevokeResult, RpcError, scopes,
};
use crate::timefmt::{now_ms, rfc3339_ms};
use serde_json::{Value, json};

use super::{Ctx, to_value};
use crate::daemon::connection::DeviceAuth;
use crate::daemon::store::pairing::{self, PairingError};

fn rpc_error(e: PairingError) -> RpcError {
    match e {
        PairingError::NoRequest(_) | PairingError::NoDevice(_) => {
            RpcError::not_found(e.to_string())
        }
        PairingError::Ambiguous(_) => RpcError::invalid_params(e.to_string()),
        PairingError::TooMany { .. } => RpcError::busy(e.to_string(), 60_000),
        PairingError::Sqlite(_) | PairingError::Store(_) => {
            RpcError::internal(format!("the daemon's store failed: {e}"))
        }
    }
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

/// `pairing.authenticate`: a signature over this connection's nonce proves the device. A
/// paired device gets its scopes on this connection; an unknown one gets a pending request.
pub async fn authenticate(ctx: &Arc<Ctx>, p: AuthenticateParams) -> Result<Value, RpcError> {
    let Some(uid) = ctx.peer.uid else {
        return Err(RpcError::app(
            ErrorKind::Forbidden,
            "the kernel did not say who this client is",
        ));
    };
    let socket = ctx.daemon.paths.socket.display().to_string();
    let proof = Proof {
        nonce: &ctx.conn.nonce,
        uid,
        socket: &socket,
        daemon_id: &ctx.daemon.daemon_id,
    };
    if !proof.verify(&p.public_key, &p.signature) {
        return Err(RpcError::app(
            ErrorKind::Forbidden,
            "the device signature does not match this connection: a signature is good only for the connection, user and daemon it was made for",
        ));
    }
    let fingerprint = fingerprint_of_hex(&p.public_key)
        .ok_or_else(|| RpcError::invalid_params("publicKey must be hex"))?;
    if ctx.peer.trust.is_trusted() {
        // The owner needs no pairing; say what it holds.
        return to_value(&AuthenticateResult {
            fingerprint,
            scopes: scopes::ALL.iter().map(|s| s.to_string()).collect(),
        });
    }
    let fp = fingerprint.clone();
    let device = ctx
        .engine
        .store
        .admin(move |c| pairing::paired(c, &fp, uid))
        .await
        .map_err(rpc_error)?;
    if let Some(device) = device {
        let auth = DeviceAuth {
            fingerprint: device.fingerprint.clone(),
            scopes: device.scopes.clone(),
        };
        *ctx.conn.device.lock().unwrap_or_else(|p| p.into_inner()) = Some(auth);
        ctx.daemon
            .device_connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                ctx.conn.id,
                (device.fingerprint.clone(), ctx.conn.kill.clone()),
            );
        // A revoke that ran between the lookup and the registration found nothing to drop:
        // look again now that a revoke would find this connection.
        let fp = device.fingerprint.clone();
        let still = ctx
            .engine
            .store
            .admin(move |c| pairing::paired(c, &fp, uid))
            .await;
        if !matches!(still, Ok(Some(_))) {
            *ctx.conn.device.lock().unwrap_or_else(|p| p.into_inner()) = None;
            ctx.conn.kill.cancel();
            return Err(RpcError::app(
                ErrorKind::Forbidden,
                "this device's pairing was revoked while it was signing in",
            ));
        }
        return to_value(&AuthenticateResult {
            fingerprint: device.fingerprint,
            scopes: device.scopes,
        });
    }
    let config = ctx.engine.config.pairing;
    let ttl = (config.request_ttl_minutes.min(1 << 30) as i64) * 60_000;
    let user = crate::daemon::auth::user_name(uid);
    let (fp, pk) = (fingerprint.clone(), p.public_key.clone());
    let request = ctx
        .engine
        .store
        .admin(move |c| {
            let who = pairing::Applicant {
                uid,
                user: user.as_deref(),
                fingerprint: &fp,
                public_key: &pk,
            };
            pairing::request(c, &who, now_ms(), ttl, config.max_pending_per_uid)
        })
        .await
        .map_err(rpc_error)?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let id = short(&request.id);
    Err(RpcError::app(
        ErrorKind::PairingRequired,
        format!(
            "this device is not paired with the daemon owned by uid {euid} (request {id}…). Ask the owner to run: openclaw pairing approve {id}"
        ),
    )
    .with_data("requestId", request.id.clone().into())
    .with_data("fingerprint", fingerprint.into()))
}

/// `pairing.list`: pending requests and paired devices.
pub async fn list(ctx: &Arc<Ctx>, _: NoParams) -> Result<Value, RpcError> {
    let (pending, devices) = ctx
        .engine
        .store
        .admin(|c| pairing::list(c, now_ms()))
        .await
        .map_err(rpc_error)?;
    to_value(&PairingListResult {
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

/// `pairing.approve`: pairs the request's device with the given scopes.
pub async fn approve(ctx: &Arc<Ctx>, p: ApproveParams) -> Result<Value, RpcError> {
    let granted = p.scopes.unwrap_or_else(|| {
        vec![
            scopes::SESSIONS_READ.to_string(),
            scopes::SESSIONS_WRITE.to_string(),
        ]
    });
    if let Some(bad) = granted.iter().find(|s| !scopes::ALL.contains(&s.as_str())) {
        return Err(RpcError::invalid_params(format!(
            "unknown scope \"{bad}\"; scopes are {}",
            scopes::ALL.join(", ")
        )));
    }
    let id = p.request_id;
    let device = ctx
        .engine
        .store
        .admin(move |c| pairing::approve(c, &id, &granted, now_ms()))
        .await
        .map_err(rpc_error)?;
    to_value(
        &json!({ "fingerprint": device.fingerprint, "uid": device.uid, "scopes": device.scopes }),
    )
}

/// `pairing.reject`: drops a pending request.
pub async fn reject(ctx: &Arc<Ctx>, p: RejectParams) -> Result<Value, RpcError> {
    let id = p.request_id;
    let removed = ctx
        .engine
        .store
        .admin(move |c| pairing::reject(c, &id))
        .await
        .map_err(rpc_error)?;
    to_value(&json!({ "requestId": removed, "rejected": true }))
}

/// `pairing.revoke`: unpairs a device and drops its open connections at once.
pub async fn revoke(ctx: &Arc<Ctx>, p: RevokeParams) -> Result<Value, RpcError> {
    let device = p.device;
    let fingerprint = ctx
        .engine
        .store
        .admin(move |c| pairing::revoke(c, &device, now_ms()))
        .await
        .map_err(rpc_error)?;
    let mut dropped = 0;
    {
        let conns = ctx
            .daemon
            .device_connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (fp, close) in conns.values() {
            if *fp == fingerprint {
                close.cancel();
                dropped += 1;
            }
        }
    }
    to_value(&RevokeResult {
        fingerprint,
        revoked: true,
        dropped_connections: dropped,
    })
}
