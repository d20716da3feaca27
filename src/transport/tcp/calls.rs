//! Membership calls over the peer port: a connection of its own per call, role `Call`.
//!
//! ```text
//! caller (Transport::call)                          answerer (the peer listener)
//!   [calls_outgoing_max, else CallError::Busy]
//!   thread: connect (connect_timeout_ms)  ───────►    admits any node but itself and 0,
//!           handshake, role Call                       [calls_max, else Reject(Busy)]
//!           CallRequest                   ───────►    decode_call (malformed: Reject, close)
//!                                                      Inbound::call, CallWait::wait
//!                                                      (call_answer_timeout_ms, then Unknown)
//!           CallAnswer  (call_timeout_ms) ◄───────    CallAnswer, close
//!   reply: Ok(answer) or a CallError, close
//! ```
//!
//! The caller never blocks: it checks and encodes the call, takes a slot of
//! `calls_outgoing_max` and leaves the rest to a thread of the call's own, which answers the
//! reply once (with the answer or why there is none) and ends. The connector does not know
//! the id of the node at the endpoint: it accepts any node but itself (a joiner calls a seed);
//! the acceptor admits any node but itself and the reserved 0 (a joiner is in nobody's peer
//! set), with the same cluster name and shared-secret proof as a peer.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::TcpShared;
use super::handshake::{self, ConnectionHandshakeError, ConnectionRole, RejectCode};
use super::link::{self, ConnectError};
use super::reader::{Deadlines, FrameReader};
use crate::core::NodeId;
use crate::shard::Inbound;
use crate::shard::membership::{CallAnswer, CallError, CallReply, MembershipCall};
use crate::transport::codec::{
    CALL_ANSWER_BYTES_MAX, CALL_REQUEST_BYTES_MAX, FrameError, FrameKind, decode_call,
    decode_call_answer, encode_call, encode_call_answer, write_frame,
};

/// Stack of a call's thread: it connects, encodes and decodes one call.
const CALL_STACK_BYTES: usize = 256 << 10;

/// A slot of `calls_outgoing_max`, given back when dropped (the call's thread ended).
struct Slot(Arc<TcpShared>);

impl Slot {
    fn take(shared: &Arc<TcpShared>) -> Option<Self> {
        let max = shared.config.calls_outgoing_max;
        shared
            .calls_outgoing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < max).then_some(taken + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(shared)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.calls_outgoing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The calling side of [`Transport::call`](crate::shard::Transport::call): answers `reply` at
/// once when the call cannot start (stopped transport, invalid call, no slot, no thread), and
/// otherwise from the call's own thread.
pub(super) fn start(
    shared: &Arc<TcpShared>,
    endpoint: &str,
    call: &MembershipCall,
    reply: CallReply,
) {
    let unreachable = |reason: String| CallError::Unreachable {
        endpoint: endpoint.to_owned(),
        reason,
    };
    if shared.stopping() {
        let _ = reply.send(Err(unreachable(
            "this node's transport is shut down".to_owned(),
        )));
        return;
    }
    let me = shared.identity.node;
    if call.from != me {
        let _ = reply.send(Err(CallError::Invalid {
            reason: format!(
                "the call is from {} but this transport is node {me} (the connection says who \
                 calls)",
                call.from
            ),
        }));
        return;
    }
    let request = match encode_call(call) {
        Ok(request) => request,
        Err(error) => {
            let _ = reply.send(Err(CallError::Invalid {
                reason: error.to_string(),
            }));
            return;
        }
    };
    let Some(slot) = Slot::take(shared) else {
        let _ = reply.send(Err(CallError::Busy {
            max: shared.config.calls_outgoing_max,
        }));
        return;
    };
    // The reply goes to the thread, or comes back here if there is no thread.
    let reply = Arc::new(Mutex::new(Some(reply)));
    let send = |reply: &Mutex<Option<CallReply>>, result| {
        let taken = reply.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(reply) = taken {
            let _ = reply.send(result);
        }
    };
    let spawned = {
        let (reply, endpoint) = (Arc::clone(&reply), endpoint.to_owned());
        std::thread::Builder::new()
            .name("kommander-tcp-call".to_owned())
            .stack_size(CALL_STACK_BYTES)
            .spawn(move || {
                let result = make(&slot.0, &endpoint, request);
                match &result {
                    Ok(answer) => debug!(endpoint, ?answer, "membership call answered"),
                    Err(error) => debug!(%error, "membership call failed"),
                }
                send(&reply, result);
            })
    };
    if let Err(error) = spawned {
        send(
            &reply,
            Err(unreachable(format!("no thread for the call: {error}"))),
        );
    }
}

/// Makes one call on a connection of its own: connect, handshake, request, answer, close.
fn make(shared: &TcpShared, endpoint: &str, request: Bytes) -> Result<CallAnswer, CallError> {
    let unreachable = |reason: String| CallError::Unreachable {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let rejected = |reason: String| CallError::Rejected {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let (mut stream, mut reader, callee) =
        match link::connect(shared, endpoint, ConnectionRole::Call, None) {
            Ok(connected) => connected,
            Err(ConnectError::Handshake(ConnectionHandshakeError::Rejected {
                code: RejectCode::DuplicateNode,
                reason,
            })) => {
                shared.holds_duplicate_id(format!("the node at {endpoint} refused it: {reason}"));
                return Err(rejected(refusal_in_words(
                    RejectCode::DuplicateNode,
                    &reason,
                )));
            }
            Err(ConnectError::Handshake(
                ConnectionHandshakeError::Rejected { code, reason }
                | ConnectionHandshakeError::Refused { code, reason },
            )) => return Err(rejected(refusal_in_words(code, &reason))),
            Err(error) => return Err(unreachable(error.to_string())),
        };
    write_frame(
        &mut stream,
        FrameKind::CallRequest,
        shared.stamp(),
        &[request],
    )
    .map_err(|error| unreachable(format!("sending the call: {error}")))?;
    let config = &shared.config;
    reader.set_limits(
        CALL_ANSWER_BYTES_MAX,
        config.read_chunk_bytes.min(CALL_ANSWER_BYTES_MAX),
    );
    let waited = Duration::from_millis(config.call_timeout_ms);
    let deadlines = Deadlines {
        frame_timeout: Duration::from_millis(config.frame_read_timeout_ms),
        // The reader counts from the last frame it read: the handshake's `Welcome`, just
        // before the request was sent.
        idle_timeout: waited,
    };
    let frame = match reader.read_frame(&mut stream, deadlines, &|| shared.stopping()) {
        Ok(frame) => frame,
        Err(FrameError::Idle(_)) => {
            return Err(CallError::Timeout {
                endpoint: endpoint.to_owned(),
                waited,
            });
        }
        Err(FrameError::Shutdown) => {
            return Err(unreachable(
                "this node's transport shut down before the answer".to_owned(),
            ));
        }
        Err(FrameError::Closed { .. }) => {
            return Err(unreachable(
                "the connection closed before the answer".to_owned(),
            ));
        }
        Err(error) => return Err(unreachable(format!("reading the answer: {error}"))),
    };
    match frame.kind {
        FrameKind::CallAnswer => {
            let answer = decode_call_answer(&frame.body)
                .map_err(|error| unreachable(format!("a malformed answer: {error}")))?;
            shared.merge_stamp(callee, frame.stamp);
            Ok(answer)
        }
        FrameKind::Reject => {
            let (code, reason) = handshake::rejection(&frame.body);
            Err(rejected(refusal_in_words(code, &reason)))
        }
        other => Err(unreachable(format!(
            "a {other:?} frame instead of the answer"
        ))),
    }
}

/// A refusal by either side of a call's handshake, in words.
fn refusal_in_words(code: RejectCode, reason: &str) -> String {
    match code {
        RejectCode::Busy => format!("no room for another membership call ({reason})"),
        RejectCode::Auth => format!("authentication failed ({reason})"),
        RejectCode::Cluster => format!("another cluster ({reason})"),
        RejectCode::Version => format!("another protocol version ({reason})"),
        RejectCode::DuplicateNode => {
            format!("another live process holds this node's id ({reason}); this node stops")
        }
        RejectCode::UnknownNode | RejectCode::Role | RejectCode::Malformed => reason.to_owned(),
    }
}

/// The answering side, on a connection whose `Call` handshake `caller` completed: reads one
/// `CallRequest`, hands it to `inbound`, waits at most `call_answer_timeout_ms` for the
/// answer (`Unknown` then), writes it; the connection closes as `stream` drops. A malformed
/// request is refused with a `Reject` and changes nothing. The wait does not watch the
/// transport's stop flag: a node that stops answers its calls (its shard's answer channel
/// closes), and a stopped transport's closed socket ends the write.
pub(super) fn answer(
    shared: &TcpShared,
    mut stream: TcpStream,
    mut reader: FrameReader,
    caller: NodeId,
    addr: &str,
    inbound: &dyn Inbound,
) {
    let config = &shared.config;
    let dropped = |what: &str, error: &dyn std::fmt::Display| {
        shared
            .stats
            .connections_dropped
            .fetch_add(1, Ordering::Relaxed);
        warn!(%caller, from = addr, %error, "membership call: {what}; closing");
    };
    reader.set_limits(
        CALL_REQUEST_BYTES_MAX,
        config.read_chunk_bytes.min(CALL_REQUEST_BYTES_MAX),
    );
    let deadlines = Deadlines {
        frame_timeout: Duration::from_millis(config.frame_read_timeout_ms),
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
    };
    let frame = match reader.read_frame(&mut stream, deadlines, &|| shared.stopping()) {
        Ok(frame) => frame,
        Err(FrameError::Shutdown) => return,
        Err(error) => return dropped("no request", &error),
    };
    if frame.kind != FrameKind::CallRequest {
        let error = handshake::refuse(
            &mut stream,
            RejectCode::Malformed,
            format!("expected a CallRequest frame, got {:?}", frame.kind),
        );
        return dropped("an unexpected frame", &error);
    }
    let call = match decode_call(&frame.body, caller) {
        Ok(call) => call,
        Err(error) => {
            let error = handshake::refuse(
                &mut stream,
                RejectCode::Malformed,
                format!("a malformed CallRequest: {error}"),
            );
            return dropped("a malformed request", &error);
        }
    };
    shared.merge_stamp(caller, frame.stamp);
    info!(%caller, from = addr, change = ?call.change, "membership call");
    let deadline = Instant::now() + Duration::from_millis(config.call_answer_timeout_ms);
    let answer = inbound.call(call).wait(deadline);
    let body = match encode_call_answer(&answer) {
        Ok(body) => body,
        Err(error) => return dropped("the answer does not encode", &error),
    };
    if let Err(error) = write_frame(&mut stream, FrameKind::CallAnswer, shared.stamp(), &[body]) {
        return dropped("writing the answer failed", &error);
    }
    debug!(%caller, ?answer, "membership call answered");
}
