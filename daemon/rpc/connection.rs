//! One JSON-RPC connection: read frames, dispatch each request on its own task (so a long
//! wait never blocks the next request, and pipelined calls are served concurrently), and
//! write replies and notifications through one writer task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use serde_json::Value;
use tokio::io::BufReader;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{Conn, Outbound};
use super::{AfterReply, Ctx, dispatch};
use crate::client::SharedRead;
use crate::daemon::service::strangers::StrangerPass;
use crate::daemon::service::{Caller, PeerFacts, SessionService};
use crate::frame::{Frame, FrameReader, write_frame};
use crate::protocol::{ErrorKind, Id, Response, RpcError};

/// Replies waiting for the writer; a peer that stops reading stalls its own handlers only.
const OUTBOUND_QUEUE: usize = 256;
/// Requests of one connection handled at once; past this the daemon stops reading from it
/// until some finish, so a pipelining client gets backpressure instead of unbounded tasks.
const MAX_IN_FLIGHT: usize = 1024;
/// Requests in one batch; a batch is answered as a whole, so it is bounded like the calls in
/// flight on a connection.
const MAX_BATCH: usize = 1024;
/// How long in-flight calls may take to answer once the daemon is stopping.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(1);

pub async fn serve(
    stream: Stream,
    service: Arc<SessionService>,
    peer: PeerFacts,
    // Another user's place in its uid's unauthenticated count (taken when it connected),
    // given back once it authenticates or closes.
    pass: Option<StrangerPass>,
    shutdown: CancellationToken,
    max_frame: usize,
) {
    let stream = Arc::new(stream);
    let limits = service.engine().config().limits;
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(OUTBOUND_QUEUE);
    let buffered = service.daemon.buffered.clone();
    let write_half = stream.clone();
    let writer_buffered = buffered.clone();
    let kill = CancellationToken::new();
    let writer_kill = kill.clone();
    let (written_tx, written_rx) = tokio::sync::watch::channel(0u64);
    let writer = tokio::spawn(async move {
        let mut w: &Stream = &write_half;
        loop {
            let next = tokio::select! {
                b = out_rx.recv() => b,
                _ = writer_kill.cancelled() => None,
            };
            let Some(bytes) = next else { break };
            writer_buffered.fetch_sub(1, Ordering::Relaxed);
            let written = tokio::select! {
                r = write_frame(&mut w, &bytes) => r.is_ok(),
                _ = writer_kill.cancelled() => false,
            };
            if written {
                written_tx.send_modify(|n| *n += 1);
            }
            if !written {
                // The peer is gone (or dropped): its remaining replies have nowhere to go, and
                // its pending calls need not run on.
                writer_kill.cancel();
                break;
            }
        }
        out_rx.close();
        while out_rx.try_recv().is_ok() {
            writer_buffered.fetch_sub(1, Ordering::Relaxed);
        }
    });
    let out = Outbound::new(
        out_tx.clone(),
        buffered,
        kill.clone(),
        Duration::from_secs(limits.stalled_reader_seconds.max(1)),
        written_rx,
    );
    let conn = Arc::new(Conn::new(out, peer, kill.clone()));
    conn.hold_stranger_pass(pass);
    if !peer.trusted {
        // Another user's client must prove a paired device promptly, or make room.
        let (conn, deadline) = (
            conn.clone(),
            Duration::from_millis(limits.handshake_timeout_ms),
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(deadline) => {}
                _ = conn.closed.cancelled() => return,
            }
            if matches!(conn.caller(), Caller::Stranger { .. }) {
                tracing::info!("closing an unauthenticated connection at its handshake deadline");
                conn.kill.cancel();
            }
        });
    }
    let ctx = Arc::new(Ctx {
        service,
        conn: conn.clone(),
    });

    let inflight = TaskTracker::new();
    let in_flight = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut frames = FrameReader::new(BufReader::new(SharedRead(stream.clone())), max_frame);
    loop {
        // Who the connection is decides how it is read: until it authenticates, one small
        // request at a time (service/strangers.rs).
        let rules = ctx.service.connection_rules(&conn.caller());
        frames.set_limit(rules.max_frame);
        if rules.one_at_a_time && !paced(&ctx, peer.uid, &shutdown).await {
            break;
        }
        let frame = tokio::select! {
            f = frames.next_frame() => f,
            _ = shutdown.cancelled() => break,
            _ = conn.kill.cancelled() => break,
        };
        match frame {
            Ok(Some(Frame::Line(bytes))) if rules.one_at_a_time => {
                let counted = unauthenticated_in_flight(&ctx, &in_flight);
                let (reply, after) = handle_frame(&ctx, bytes, rules.batches).await;
                let answered = match reply {
                    Some(reply) => ctx.conn.out.send(reply).await && ctx.conn.out.flushed().await,
                    None => true,
                };
                drop(counted);
                if !answered {
                    break;
                }
                for task in after {
                    ctx.conn.tasks.spawn(task);
                }
            }
            Ok(Some(Frame::Line(bytes))) => {
                let slot = tokio::select! {
                    s = slots.clone().acquire_owned() => s,
                    _ = shutdown.cancelled() => break,
                };
                let Ok(slot) = slot else { break };
                let ctx = ctx.clone();
                let counted = unauthenticated_in_flight(&ctx, &in_flight);
                inflight.spawn(async move {
                    let (reply, after) = handle_frame(&ctx, bytes, rules.batches).await;
                    if let Some(reply) = reply {
                        let _ = ctx.conn.out.send(reply).await;
                    }
                    drop(counted);
                    // Subscriptions this request opened start now: their reply is queued
                    // ahead of anything they send.
                    for task in after {
                        ctx.conn.tasks.spawn(task);
                    }
                    drop(slot);
                });
            }
            Ok(Some(Frame::TooLarge { limit })) => {
                let message = crate::daemon::service::strangers::frame_too_large_message(
                    limit,
                    rules.close_on_oversize,
                );
                let err = RpcError::app(ErrorKind::FrameTooLarge, message)
                    .with_data("limit", limit.into());
                conn.out.send(encode(&Response::err(Id::Null, err))).await;
                if rules.close_on_oversize {
                    // The rest of the frame is not read: the writer sends the error, then
                    // the connection closes.
                    break;
                }
            }
            Ok(None) => {
                if peer_hung_up(&stream) {
                    // Gone for good, not just done sending: nothing it asked for can be
                    // answered, so its calls (a day-long wait, say) need not hold its slot.
                    conn.kill.cancel();
                }
                break;
            }
            Err(e) => {
                tracing::debug!("connection ended: {e}");
                break;
            }
        }
    }
    inflight.close();
    if shutdown.is_cancelled() {
        // Subscriptions end themselves, telling the peer why; calls get a moment to answer.
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN, inflight.wait()).await;
        conn.tasks.close();
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN, conn.tasks.wait()).await;
    } else {
        // The peer stopped sending (it may still read: `printf ... | nc -N` half-closes):
        // every request it sent is answered, then its subscriptions end with the connection.
        inflight.wait().await;
        conn.tasks.close();
    }
    conn.closed.cancel();
    conn.tasks.wait().await;
    drop(ctx);
    drop(conn);
    drop(out_tx);
    if shutdown.is_cancelled() {
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN, writer).await;
    } else {
        let _ = writer.await;
    }
}

/// Waits until `uid` may have its next unauthenticated request read (its pace is shared by
/// all its connections); false if the connection or the daemon ends first.
async fn paced(ctx: &Ctx, uid: Option<u32>, shutdown: &CancellationToken) -> bool {
    while let Some(pause) = ctx.service.unauthenticated_pause(uid) {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return false,
            _ = ctx.conn.kill.cancelled() => return false,
        }
    }
    true
}

/// Counts a request of an unauthenticated connection from when it is read until its answer
/// is written (for `daemon.status`); nothing for an authenticated one.
fn unauthenticated_in_flight(ctx: &Ctx, count: &Arc<AtomicU64>) -> Option<InFlight> {
    if !matches!(ctx.caller(), Caller::Stranger { .. }) {
        return None;
    }
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    ctx.service.note_unauthenticated_in_flight(n);
    Some(InFlight(count.clone()))
}

struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn encode(r: &Response) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"could not encode the reply"},"id":null}"#.to_vec()
    })
}

/// Whether the peer closed its whole connection (not just its sending side, as
/// `printf ... | nc -N` does): POLLHUP on a Unix socket means both directions are shut.
fn peer_hung_up(stream: &Stream) -> bool {
    use std::os::fd::{AsFd, AsRawFd};
    let Stream::UdSocket(uds) = stream;
    let mut pfd = libc::pollfd {
        fd: uds.as_fd().as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout: this only inspects the socket's state.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready > 0 && pfd.revents & libc::POLLHUP != 0
}

/// One frame: a request, a notification or a batch. The reply (`None` when nothing is to be
/// sent back) and what to start once it is queued. Takes the bytes by value: they are
/// dropped once parsed, so a long call does not keep its (possibly padded) request in memory.
async fn handle_frame(
    ctx: &Arc<Ctx>,
    bytes: Vec<u8>,
    batches: bool,
) -> (Option<Vec<u8>>, Vec<AfterReply>) {
    let parsed = serde_json::from_slice::<Value>(&bytes);
    drop(bytes);
    let value: Value = match parsed {
        Ok(v) => v,
        Err(e) => {
            let err = RpcError::parse_error(format!(
                "parse error: {e}; each line must be one JSON-RPC 2.0 request"
            ));
            return (Some(encode(&Response::err(Id::Null, err))), Vec::new());
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => (
            Some(encode(&Response::err(
                Id::Null,
                RpcError::invalid_request("an empty batch is not a valid request"),
            ))),
            Vec::new(),
        ),
        Value::Array(_) if !batches => (
            Some(encode(&Response::err(
                Id::Null,
                RpcError::invalid_request(crate::daemon::service::strangers::BATCH_REFUSED),
            ))),
            Vec::new(),
        ),
        Value::Array(items) if items.len() > MAX_BATCH => (
            Some(encode(&Response::err(
                Id::Null,
                RpcError::invalid_request(format!(
                    "a batch of {} requests is more than this daemon takes at once ({MAX_BATCH}); split it",
                    items.len()
                )),
            ))),
            Vec::new(),
        ),
        Value::Array(items) => {
            let mut set = tokio::task::JoinSet::new();
            for (i, item) in items.into_iter().enumerate() {
                let ctx = ctx.clone();
                set.spawn(async move { (i, handle_request(&ctx, item).await) });
            }
            let mut replies: Vec<(usize, Response)> = Vec::new();
            let mut after = Vec::new();
            while let Some(done) = set.join_next().await {
                if let Ok((i, (reply, then))) = done {
                    if let Some(r) = reply {
                        replies.push((i, r));
                    }
                    after.extend(then);
                }
            }
            if replies.is_empty() {
                return (None, after);
            }
            replies.sort_by_key(|(i, _)| *i);
            let replies: Vec<Response> = replies.into_iter().map(|(_, r)| r).collect();
            (
                Some(serde_json::to_vec(&replies).unwrap_or_default()),
                after,
            )
        }
        other => {
            let (reply, then) = handle_request(ctx, other).await;
            (reply.map(|r| encode(&r)), then.into_iter().collect())
        }
    }
}

/// Validates the envelope and dispatches. No reply for notifications.
async fn handle_request(ctx: &Arc<Ctx>, value: Value) -> (Option<Response>, Option<AfterReply>) {
    let Value::Object(mut obj) = value else {
        let err = RpcError::invalid_request("a request must be a JSON object");
        return (Some(Response::err(Id::Null, err)), None);
    };
    let id = match obj.remove("id") {
        None => None,
        Some(Value::Null) => Some(Id::Null),
        Some(Value::String(s)) => Some(Id::Str(s)),
        Some(Value::Number(n)) if n.is_i64() => Some(Id::Num(n.as_i64().unwrap_or_default())),
        Some(_) => {
            let err = RpcError::invalid_request("id must be a string, an integer or null");
            return (Some(Response::err(Id::Null, err)), None);
        }
    };
    let reply_id = id.clone().unwrap_or(Id::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        let err = RpcError::invalid_request("\"jsonrpc\" must be exactly \"2.0\"");
        return (Some(Response::err(reply_id, err)), None);
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => {
            let err = RpcError::invalid_request("\"method\" must be a string");
            return (Some(Response::err(reply_id, err)), None);
        }
    };
    let params = obj.remove("params");
    if let Some(p) = &params
        && !(p.is_object() || p.is_array())
    {
        let err =
            RpcError::invalid_request("\"params\" must be an object or an array when present");
        return (Some(Response::err(reply_id, err)), None);
    }
    // On its own task, so that a bug in one handler answers -32603 instead of hanging.
    let task_ctx = ctx.clone();
    tracing::debug!(method = %method, "request");
    let stranger = matches!(ctx.caller(), Caller::Stranger { .. });
    let mut handler = tokio::spawn(async move { dispatch(&task_ctx, &method, params).await });
    let joined = tokio::select! {
        j = &mut handler => j,
        // The peer is gone: nobody to answer, and its connection need not wait. A trusted
        // call is not aborted (a submit half-way would leave its session's queue waiting
        // for it): it finishes on its own, holding nothing but memory. A stranger's (hello,
        // a signature check) can do nothing of the kind, and stops with its connection.
        _ = ctx.conn.kill.cancelled() => {
            if stranger {
                handler.abort();
            }
            return (None, None);
        }
    };
    let (result, then) = match joined {
        Ok(answer) => (answer.result, answer.then),
        Err(e) => {
            tracing::error!("handler failed: {e}");
            (
                Err(RpcError::internal(
                    "the daemon failed while handling this request; see its log",
                )),
                None,
            )
        }
    };
    let Some(id) = id else {
        // A notification gets no reply, whatever happened; what it started still starts.
        return (None, then);
    };
    let reply = match result {
        Ok(v) => Response::ok(id, v),
        Err(e) => Response::err(id, e),
    };
    (Some(reply), then)
}
