//! The inbound side: an acceptor thread admits connections under the caps
//! (`connections_max`, `handshakes_pending_max`; one more is answered with a `Reject` of code
//! `Busy`), and one thread per connection runs the acceptor's handshake, then serves it by its
//! role: a peer of the current peer set (the only nodes admitted as peers) has its frames read
//! and their messages handed to the node's [`Inbound`]; a membership call (any node but this
//! one and 0, at most `calls_max` at once) is answered once (`calls.rs`). Every authenticated
//! connector passes the duplicate-node rule (`duplicate.rs`) before its `Welcome`. Every
//! refusal and every dropped connection is logged with its reason.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{debug, info, warn};

use super::connections::{Claimant, Established, Refusal};
use super::handshake::{
    self, Admission, ConnectionRole, HANDSHAKE_FRAME_BYTES_MAX, Hello, RejectCode, reject_busy,
};
use super::reader::{Deadlines, FrameReader};
use super::{TcpShared, calls, duplicate};
use crate::core::NodeId;
use crate::shard::Inbound;
use crate::transport::codec::{FrameError, FrameKind, decode_messages};

/// Stack of a connection thread: it only parses frames.
const CONNECTION_STACK_BYTES: usize = 256 << 10;

/// The acceptor thread.
pub(super) fn run(shared: &Arc<TcpShared>, listener: &TcpListener, inbound: &Arc<dyn Inbound>) {
    for accepted in listener.incoming() {
        if shared.stopping() {
            return;
        }
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                // Out of descriptors or a connection reset before accept: keep serving.
                warn!(%error, "accept failed");
                std::thread::sleep(
                    shared
                        .poll_interval()
                        .min(std::time::Duration::from_millis(50)),
                );
                continue;
            }
        };
        let addr = stream
            .peer_addr()
            .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
        let id = match shared.connections.admit(&stream, &shared.config) {
            Ok(id) => id,
            Err(Refusal::Busy(reason)) => {
                shared
                    .stats
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                warn!(
                    from = %addr,
                    %reason,
                    "refusing connection: connections_max or handshakes_pending_max reached"
                );
                reject_busy(stream, reason);
                continue;
            }
            Err(Refusal::Io(error)) => {
                shared
                    .stats
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                warn!(from = %addr, %error, "refusing connection: cannot keep a handle to it");
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
        };
        let shared_for_thread = Arc::clone(shared);
        let inbound = Arc::clone(inbound);
        let spawned = std::thread::Builder::new()
            .name("kommander-tcp-conn".to_owned())
            .stack_size(CONNECTION_STACK_BYTES)
            .spawn(move || {
                serve(&shared_for_thread, stream, id, &addr, inbound.as_ref());
                shared_for_thread.connections.remove(id);
            });
        if let Err(error) = spawned {
            warn!(%error, "cannot spawn a connection thread; closing the connection");
            shared.connections.remove(id);
        }
    }
}

fn serve(shared: &TcpShared, mut stream: TcpStream, id: u64, addr: &str, inbound: &dyn Inbound) {
    let config = &shared.config;
    if let Err(error) = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(shared.poll_interval())))
        .and_then(|()| {
            stream.set_write_timeout(Some(std::time::Duration::from_millis(
                config.handshake_timeout_ms,
            )))
        })
    {
        warn!(from = addr, %error, "socket setup failed; closing");
        return;
    }
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    let heard_ms = Arc::new(AtomicU64::new(0));
    let admission = PeerPort {
        shared,
        id,
        heard_ms: &heard_ms,
    };
    let hello = match handshake::accept(
        &mut stream,
        &mut reader,
        &shared.identity(),
        shared.stamp(),
        &admission,
        shared.handshake_deadlines(),
    ) {
        Ok(hello) => hello,
        Err(error) => {
            shared
                .stats
                .handshakes_failed
                .fetch_add(1, Ordering::Relaxed);
            warn!(from = addr, %error, "handshake failed; closing");
            return;
        }
    };
    let (role, node) = (hello.role, hello.node);
    // Authenticated now: the connector's clock may move this node's.
    shared.merge_stamp(node, reader.last_stamp());
    match role {
        ConnectionRole::Call => {
            shared.connections.call_established(id);
            calls::answer(shared, stream, reader, node, addr, inbound);
        }
        // Refused by `admit`.
        ConnectionRole::Client => {}
        ConnectionRole::Peer => serve_peer(shared, stream, reader, &heard_ms, node, addr, inbound),
    }
}

/// Who may connect to the peer port, and the duplicate-node rule once they authenticated.
struct PeerPort<'a> {
    shared: &'a TcpShared,
    /// The connection.
    id: u64,
    /// Its last-frame time, once it serves a peer.
    heard_ms: &'a Arc<AtomicU64>,
}

impl PeerPort<'_> {
    /// Whether `hello` claims this node's own id from another incarnation (another process).
    fn claims_this_node(&self, hello: &Hello) -> bool {
        hello.node == self.shared.identity.node
            && duplicate::conflict(self.shared.incarnation(), hello.incarnation)
    }

    /// The duplicate-node rule for an authenticated connector claiming this node's own id:
    /// the connector is refused `DuplicateNode` unless the roster names its incarnation, in
    /// which case this process is the one to stop.
    fn confirm_own_id(&self, hello: &Hello) -> Result<(), (RejectCode, String)> {
        let shared = self.shared;
        let (me, mine) = (shared.identity.node, shared.incarnation());
        let roster = shared.roster_incarnation(me);
        if duplicate::newcomer_keeps(roster, hello.incarnation) {
            shared.holds_duplicate_id(format!(
                "a process of incarnation {:#x}, the one the roster names for {me}, connected to \
                 this one (incarnation {mine:#x})",
                hello.incarnation
            ));
            return Err((
                RejectCode::UnknownNode,
                format!("{me} of incarnation {mine:#x} is not the roster's and stops"),
            ));
        }
        Err((
            RejectCode::DuplicateNode,
            format!(
                "{me} is this live process (incarnation {mine:#x}{}), not yours ({:#x})",
                if roster == Some(mine) {
                    ", the roster's member"
                } else {
                    ", already running"
                },
                hello.incarnation
            ),
        ))
    }

    /// The words of a refusal of `hello` because a live connection of `incumbent` holds its id.
    fn duplicate_of(&self, hello: &Hello, incumbent: u64) -> (RejectCode, String) {
        let roster = self.shared.roster_incarnation(hello.node);
        (
            RejectCode::DuplicateNode,
            format!(
                "{} is connected to {} from another live process (incarnation {incumbent:#x}{}), \
                 not yours ({:#x})",
                hello.node,
                self.shared.identity.node,
                if roster == Some(incumbent) {
                    ", the roster's member"
                } else {
                    ", connected first"
                },
                hello.incarnation
            ),
        )
    }
}

impl Admission for PeerPort<'_> {
    fn admit(&self, hello: &Hello) -> Result<(), (RejectCode, String)> {
        let (shared, me, node) = (self.shared, self.shared.identity.node, hello.node);
        match hello.role {
            ConnectionRole::Client => Err((
                RejectCode::Role,
                "this is the peer port; clients connect to the client port".to_owned(),
            )),
            // Another process claiming this node's id: judged once it authenticated.
            ConnectionRole::Peer | ConnectionRole::Call if self.claims_this_node(hello) => Ok(()),
            ConnectionRole::Peer if node == me || !shared.peers.contains(node) => Err((
                RejectCode::UnknownNode,
                format!("{node} is not a peer of {me}"),
            )),
            ConnectionRole::Peer => Ok(()),
            ConnectionRole::Call if node == me || node == NodeId::ZERO => Err((
                RejectCode::UnknownNode,
                format!("{node} cannot call {me} (its own id, or the reserved id 0)"),
            )),
            ConnectionRole::Call => shared
                .connections
                .claim_call(self.id, shared.config.calls_max)
                .map_err(|reason| (RejectCode::Busy, reason)),
        }
    }

    fn confirm(&self, hello: &Hello) -> Result<(), (RejectCode, String)> {
        let shared = self.shared;
        if self.claims_this_node(hello) {
            return self.confirm_own_id(hello);
        }
        let (now_ms, window_ms) = (shared.now_ms(), shared.liveness_window_ms());
        match hello.role {
            ConnectionRole::Peer => {
                let claimant = Claimant {
                    id: self.id,
                    peer: hello.node,
                    incarnation: hello.incarnation,
                    heard_ms: self.heard_ms,
                };
                let roster = shared.roster_incarnation(hello.node);
                match shared.connections.establish(
                    claimant,
                    &shared.peers,
                    roster,
                    now_ms,
                    window_ms,
                ) {
                    Established::Admitted => Ok(()),
                    Established::NotAPeer => Err((
                        RejectCode::UnknownNode,
                        format!(
                            "{} was removed from {}'s peers during its handshake",
                            hello.node, shared.identity.node
                        ),
                    )),
                    Established::Duplicate { incumbent } => {
                        Err(self.duplicate_of(hello, incumbent))
                    }
                }
            }
            ConnectionRole::Call => {
                let incumbent = shared.connections.live_incumbent(
                    hello.node,
                    hello.incarnation,
                    now_ms,
                    window_ms,
                );
                match incumbent {
                    Some(incumbent)
                        if !duplicate::newcomer_keeps(
                            shared.roster_incarnation(hello.node),
                            hello.incarnation,
                        ) =>
                    {
                        Err(self.duplicate_of(hello, incumbent))
                    }
                    _ => Ok(()),
                }
            }
            // Refused by `admit`.
            ConnectionRole::Client => Ok(()),
        }
    }
}

/// Serves the connection of `peer`, authenticated: hands the messages of its frames to
/// `inbound` until it closes, fails, or the transport stops.
fn serve_peer(
    shared: &TcpShared,
    mut stream: TcpStream,
    mut reader: FrameReader,
    heard_ms: &AtomicU64,
    peer: NodeId,
    addr: &str,
    inbound: &dyn Inbound,
) {
    let (config, me) = (&shared.config, shared.identity.node);
    reader.set_limits(config.frame_bytes_max, config.read_chunk_bytes);
    info!(%peer, from = addr, "peer connected");
    let deadlines = Deadlines {
        frame_timeout: std::time::Duration::from_millis(config.frame_read_timeout_ms),
        idle_timeout: std::time::Duration::from_millis(config.idle_timeout_ms),
    };
    let stop = || shared.stopping();
    loop {
        let frame = match reader.read_frame(&mut stream, deadlines, &stop) {
            Ok(frame) => frame,
            Err(FrameError::Shutdown) => return,
            Err(FrameError::Closed { mid_frame: false }) => {
                info!(%peer, from = addr, "peer closed the connection");
                return;
            }
            Err(error) => {
                shared
                    .stats
                    .connections_dropped
                    .fetch_add(1, Ordering::Relaxed);
                warn!(%peer, from = addr, %error, "closing connection");
                return;
            }
        };
        heard_ms.store(shared.now_ms(), Ordering::Relaxed);
        shared.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .bytes_received
            .fetch_add(frame.body.len() as u64, Ordering::Relaxed);
        if frame.kind != FrameKind::Messages {
            shared
                .stats
                .connections_dropped
                .fetch_add(1, Ordering::Relaxed);
            warn!(%peer, from = addr, kind = ?frame.kind, "unexpected frame after the handshake; closing");
            return;
        }
        match decode_messages(&frame.body, peer, me, config.frame_messages_max) {
            Ok(messages) => {
                shared.merge_stamp(peer, frame.stamp);
                if messages.is_empty() {
                    debug!(%peer, "keepalive");
                } else {
                    inbound.deliver(messages);
                }
            }
            Err(error) => {
                shared
                    .stats
                    .connections_dropped
                    .fetch_add(1, Ordering::Relaxed);
                warn!(%peer, from = addr, %error, "malformed Messages frame; closing");
                return;
            }
        }
    }
}
