//! Service errors as JSON-RPC errors: the code and `data.kind` from the error's kind, and
//! what only the connection knows added (the nonce a device must sign).

use super::Ctx;
use crate::daemon::service::ServiceError;
use crate::protocol::{ErrorKind, RpcError};

pub fn rpc_error(ctx: &Ctx, e: ServiceError) -> RpcError {
    let message = e.to_string();
    match e {
        ServiceError::InvalidParams(_) => RpcError::invalid_params(message),
        ServiceError::Busy { retry_after_ms, .. } => RpcError::busy(message, retry_after_ms),
        ServiceError::Forbidden { scope, .. } => {
            let err = RpcError::app(ErrorKind::Forbidden, message);
            match scope {
                Some(scope) => err.with_data("scope", scope.into()),
                None => err,
            }
        }
        ServiceError::PairingRequired { request, .. } => {
            let err = RpcError::app(ErrorKind::PairingRequired, message);
            match request {
                Some((request_id, fingerprint)) => err
                    .with_data("requestId", request_id.into())
                    .with_data("fingerprint", fingerprint.into()),
                // How to prove a device on this connection: sign its nonce, naming the
                // socket path the daemon serves (the client may have reached it another way).
                None => err
                    .with_data("nonce", ctx.conn.nonce.clone().into())
                    .with_data("daemonId", ctx.service.daemon.daemon_id.clone().into())
                    .with_data(
                        "socket",
                        ctx.service.daemon.paths.socket.display().to_string().into(),
                    ),
            }
        }
        ServiceError::Store(store) => {
            if store.is_transient() {
                RpcError::internal(message)
            } else {
                RpcError::internal(format!("the daemon's store failed: {message}"))
            }
        }
        ServiceError::Internal(_) => RpcError::internal(message),
        other => match other.kind() {
            Some(kind) => RpcError::app(kind, message),
            None => RpcError::internal(message),
        },
    }
}
