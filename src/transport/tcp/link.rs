//! The outbound side: one writer thread per peer owns the connection to it, connects (with
//! jittered exponential backoff), runs the handshake, and writes every batch queued for the
//! peer as frames. Batches that arrive together leave in one frame. Once the connection is
//! up it is shared with the senders (`lane.rs`): while the writer thread has nothing to do,
//! a sending shard writes its batch on the socket itself, and the writer thread finishes what
//! such a write left (a full send buffer) before anything of its own. [`Link`] is the handle
//! the transport keeps of a writer thread: it ends the thread when the peer is removed or
//! moves to another endpoint. Its `connect` (resolve, connect with timeout, handshake) also
//! opens the connections of membership calls (`calls.rs`).
//!
//! Heartbeats are coalesced: a `Heartbeat` or `HeartbeatResponse` goes to a per-peer board
//! (latest per partition wins) that is flushed once per heartbeat interval as part of one
//! frame, or earlier as a passenger of any other frame this thread writes (a sender's direct
//! write carries none). One carrying a read round the board has not seen yet (a
//! linearizable read is waiting on it) leaves at once.

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError};
use tracing::{info, warn};

use super::TcpShared;
use super::handshake::{
    self, ConnectionHandshakeError, ConnectionRole, HANDSHAKE_FRAME_BYTES_MAX, RejectCode,
};
use super::lane::{Lane, Outgoing, Route};
use super::reader::FrameReader;
use super::unsent::Unsent;
use crate::core::rng::SplitMix64;
use crate::core::{Message, MessageBody, NodeId, PartitionId};
use crate::metrics::TransportDrop;

/// A running writer thread of one peer, as the transport keeps it.
pub(super) struct Link {
    address: String,
    retired: Arc<AtomicBool>,
    route: Arc<Route>,
    thread: JoinHandle<()>,
}

impl Link {
    /// Starts the writer thread of `peer` at `address`; returns it with the send path to the
    /// peer (its bounded queue, `peer_queue_batches_max` items, and the direct path).
    ///
    /// # Errors
    ///
    /// The thread could not be spawned.
    pub(super) fn spawn(
        shared: &Arc<TcpShared>,
        peer: NodeId,
        address: &str,
    ) -> std::io::Result<(Self, Lane)> {
        let (queue, receiver) = channel::bounded(shared.config.peer_queue_batches_max);
        let retired = Arc::new(AtomicBool::new(false));
        let route = Arc::new(Route::default());
        let thread = {
            let (shared, retired, route, address) = (
                Arc::clone(shared),
                Arc::clone(&retired),
                Arc::clone(&route),
                address.to_owned(),
            );
            std::thread::Builder::new()
                .name(format!("kommander-tcp-{peer}"))
                .spawn(move || {
                    let link = Writer {
                        shared: &shared,
                        peer,
                        queue: &receiver,
                        route: &route,
                        retired: &retired,
                    };
                    link.run(&address);
                })?
        };
        let link = Self {
            address: address.to_owned(),
            retired,
            route: Arc::clone(&route),
            thread,
        };
        Ok((link, Lane::new(queue, route)))
    }

    /// The endpoint it connects to.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// Tells the thread to end, closing its connection, and returns it to be joined. It
    /// notices at once when it waits on its queue and that queue's sender is dropped after
    /// this call; a connection attempt under way ends first (bounded by `connect_timeout_ms`
    /// and `handshake_timeout_ms`), a write by `write_timeout_ms`. Batches still queued are
    /// not sent.
    pub(super) fn retire(self) -> JoinHandle<()> {
        self.retired.store(true, Ordering::Release);
        // Nothing more is written directly: the senders see no connection.
        self.route.disconnected();
        self.thread
    }
}

/// The latest heartbeat (and heartbeat response) per partition, waiting for the next flush.
#[derive(Default)]
struct Board {
    entries: HashMap<(PartitionId, bool), (Message, bool)>,
}

/// The read round of a heartbeat or heartbeat response (`None`: another message). These go
/// to the board.
pub(super) const fn read_round(body: &MessageBody) -> Option<u64> {
    match body {
        MessageBody::Heartbeat { read_round, .. }
        | MessageBody::HeartbeatResponse { read_round } => Some(*read_round),
        _ => None,
    }
}

impl Board {
    /// Keeps `message` as the partition's latest; `true` when it must leave now (a read round
    /// the peer has not been sent yet).
    fn offer(&mut self, message: Message, round: u64) -> bool {
        let key = (
            message.partition,
            matches!(message.body, MessageBody::HeartbeatResponse { .. }),
        );
        let urgent = match self.entries.get(&key) {
            Some((old, _)) => read_round(&old.body).is_some_and(|old| round > old),
            None => round > 0,
        };
        self.entries.insert(key, (message, true));
        urgent
    }

    fn has_pending(&self) -> bool {
        self.entries.values().any(|(_, dirty)| *dirty)
    }

    fn drain_into(&mut self, out: &mut Vec<Message>) {
        for (message, dirty) in self.entries.values_mut() {
            if std::mem::take(dirty) {
                out.push(message.clone());
            }
        }
    }
}

/// The writer thread of the link to one peer, until the transport stops or the link is
/// retired.
struct Writer<'a> {
    shared: &'a Arc<TcpShared>,
    peer: NodeId,
    queue: &'a Receiver<Outgoing>,
    /// Shared with the senders: who writes on the connection now.
    route: &'a Route,
    retired: &'a AtomicBool,
}

impl Writer<'_> {
    fn ended(&self) -> bool {
        self.shared.stopping() || self.retired.load(Ordering::Acquire)
    }

    /// Connects to the peer at `address` and serves the connection, again and again, until
    /// the link ends.
    fn run(&self, address: &str) {
        let (shared, peer) = (self.shared, self.peer);
        let config = &shared.config;
        let mut rng = SplitMix64::new(shared.identity.node.get() ^ peer.get().rotate_left(32));
        let mut backoff = Duration::from_millis(config.reconnect_backoff_min_ms);
        let mut board = Board::default();
        let repeat = Duration::from_millis(config.connect_failure_log_interval_ms);
        let mut failures = FailureLog::default();
        // Not before the transport serves: a connection presents the node's incarnation.
        while !self.ended() && shared.inbound.get().is_none() {
            shared.wait_served();
        }
        while !self.ended() {
            match connect(shared, address, ConnectionRole::Peer, Some(peer)) {
                Ok(_) if self.ended() => return,
                Ok((stream, _, _)) => {
                    info!(%peer, address, "connected");
                    failures = FailureLog::default();
                    backoff = Duration::from_millis(config.reconnect_backoff_min_ms);
                    shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                    let error = self.serve(stream, &mut board);
                    self.route.disconnected();
                    if let Some(error) = error {
                        let what = lost_connection(peer, &error, config.write_timeout_ms);
                        warn!(%peer, address, "connection lost: {what}; reconnecting");
                    }
                }
                Err(ConnectError::Handshake(ConnectionHandshakeError::Rejected {
                    code: RejectCode::DuplicateNode,
                    reason,
                })) => {
                    shared.holds_duplicate_id(format!("{peer} at {address} refused it: {reason}"));
                    return;
                }
                Err(error) => {
                    let text = failed_connection(&error);
                    if let Some(attempts) = failures.record(&text, Instant::now(), repeat) {
                        warn!(%peer, address, error = %text, attempts, "cannot connect");
                    }
                    shared
                        .stats
                        .connect_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            // Sleep the jittered backoff, dropping what is queued meanwhile (stale by the time
            // a connection exists; Raft resends from its progress state).
            let jitter = f64::from(rng.range(500, 1500)) / 1000.0;
            let deadline = Instant::now() + backoff.mul_f64(jitter);
            while !self.ended() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match self.queue.recv_timeout(deadline - now) {
                    Ok(item) => {
                        if let Outgoing::Messages(batch) = item {
                            shared.dropped(TransportDrop::NotConnected, batch.len());
                        }
                        self.route.dealt_with(1);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    // The link was retired (or the transport stopped): the loop ends.
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            backoff = (backoff * 2).min(Duration::from_millis(config.reconnect_backoff_max_ms));
        }
    }

    /// Writes queued batches on `stream` (shared with the direct senders meanwhile) until it
    /// fails (the error) or the link ends (`None`: the transport stops or the link was
    /// retired; the connection closes once the senders let go of it too).
    fn serve(&self, stream: TcpStream, board: &mut Board) -> Option<std::io::Error> {
        let (shared, peer) = (self.shared, self.peer);
        let config = &shared.config;
        // From now on writes never block: the senders' must not, this thread's wait in
        // `write_patiently` (up to `write_timeout_ms` without progress).
        if let Err(error) = stream.set_nonblocking(true) {
            return Some(error);
        }
        let stream = Arc::new(stream);
        self.route.connected(Arc::clone(&stream));
        let write_timeout = Duration::from_millis(config.write_timeout_ms);
        let keepalive =
            Duration::from_millis(config.idle_timeout_ms / 3).max(Duration::from_millis(1));
        let mut last_write = Instant::now();
        let mut next_flush = Instant::now() + shared.heartbeat_interval;
        let mut pending: Vec<Message> = Vec::new();
        let mut out: Vec<Message> = Vec::new();
        loop {
            if self.ended() {
                return None;
            }
            let wake = if board.has_pending() {
                next_flush.min(last_write + keepalive)
            } else {
                last_write + keepalive
            };
            let timeout = wake.saturating_duration_since(Instant::now());
            // Queue items taken now: the route counts them dealt with once written.
            let mut items = 0;
            match self.queue.recv_timeout(timeout) {
                Ok(item) => {
                    items += 1;
                    take(item, &mut pending);
                    while pending.len() < config.frame_messages_max {
                        match self.queue.try_recv() {
                            Ok(item) => {
                                items += 1;
                                take(item, &mut pending);
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
            let mut urgent = false;
            for message in pending.drain(..) {
                match read_round(&message.body) {
                    Some(round) => urgent |= board.offer(message, round),
                    None => out.push(message),
                }
            }
            let now = Instant::now();
            if !out.is_empty() || urgent || (now >= next_flush && board.has_pending()) {
                board.drain_into(&mut out);
                next_flush = now + shared.heartbeat_interval;
            }
            let keepalive_due = now.duration_since(last_write) >= keepalive;
            if out.is_empty() && !keepalive_due && items == 0 {
                continue;
            }
            if self.ended() {
                return None;
            }
            // Ownership of the socket: no direct write until released; a direct write's rest
            // is written first.
            let rest = self.route.acquire();
            let writes = !out.is_empty() || keepalive_due || rest.is_some();
            let written = (|| {
                let rested = rest.is_some();
                if let Some(mut rest) = rest {
                    rest.write_patiently(&stream, write_timeout)?;
                    rest.count_sent(shared, true);
                }
                // An empty list is a keepalive, unless the rest just went.
                if !out.is_empty() || (keepalive_due && !rested) {
                    let mut frames = Unsent::encode(shared, peer, &mut out);
                    frames.write_patiently(&stream, write_timeout)?;
                    frames.count_sent(shared, false);
                }
                std::io::Result::Ok(())
            })();
            self.route.release(items, writes);
            if let Err(error) = written {
                return Some(error);
            }
            if writes {
                last_write = Instant::now();
            }
        }
    }
}

/// Adds a queue item's messages to `pending` (a `Finish` has none: the rest is the route's).
fn take(item: Outgoing, pending: &mut Vec<Message>) {
    match item {
        Outgoing::Messages(batch) => pending.extend(batch),
        Outgoing::Finish => {}
    }
}

/// A failed connection attempt in words: a refusal by the peer says why it refused.
fn failed_connection(error: &ConnectError) -> String {
    match error {
        ConnectError::Handshake(ConnectionHandshakeError::Rejected {
            code: RejectCode::Busy,
            reason,
        }) => format!("the peer has no room for another connection ({reason}); backing off"),
        ConnectError::Handshake(ConnectionHandshakeError::Rejected {
            code: RejectCode::UnknownNode,
            reason,
        }) => format!("the peer does not know this node as a peer ({reason})"),
        other => other.to_string(),
    }
}

/// A lost connection's error in words: a write that timed out (the socket's write timeout
/// surfaces as `EAGAIN`, "Resource temporarily unavailable", which says nothing to an
/// operator) and a connection the peer closed are named; only an error of another kind
/// keeps the system's text.
fn lost_connection(peer: NodeId, error: &std::io::Error, write_timeout_ms: u64) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
            "timed out writing to peer {peer} after {write_timeout_ms} ms \
             (transport.write_timeout_ms): it read nothing meanwhile"
        ),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            format!("peer {peer} closed the connection")
        }
        _ => format!("writing to peer {peer} failed: {error}"),
    }
}

/// When a peer that cannot be reached is logged: at the first failure, when the reason
/// changes, and again once `repeat` passed (with the attempts since the last line), so that a
/// peer down for minutes is neither silent nor logged at every attempt.
#[derive(Debug, Default)]
struct FailureLog {
    reason: String,
    logged_at: Option<Instant>,
    attempts: u64,
}

impl FailureLog {
    /// A failure for `reason` at `now`: the attempts to report if it is to be logged.
    fn record(&mut self, reason: &str, now: Instant, repeat: Duration) -> Option<u64> {
        self.attempts += 1;
        let due = match self.logged_at {
            None => true,
            Some(at) => reason != self.reason || now.duration_since(at) >= repeat,
        };
        if !due {
            return None;
        }
        reason.clone_into(&mut self.reason);
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.attempts))
    }
}

/// Why a connection to another node failed before its handshake completed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("resolving the address: {0}")]
    Resolve(std::io::Error),
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] ConnectionHandshakeError),
}

/// Connects to the node at `address` (`expected`, or any node but this one for `None`) and
/// runs the handshake as `role`, merging the acceptor's stamp once it is authenticated;
/// returns the connection, the reader that read the handshake (its limits are the
/// handshake's) and the acceptor's node id.
///
/// # Errors
///
/// [`ConnectError`]: nothing is left open.
pub(super) fn connect(
    shared: &TcpShared,
    address: &str,
    role: ConnectionRole,
    expected: Option<NodeId>,
) -> Result<(TcpStream, FrameReader, NodeId), ConnectError> {
    let config = &shared.config;
    let timeout = Duration::from_millis(config.connect_timeout_ms);
    let mut last = std::io::Error::other("the address resolves to nothing");
    let mut stream = None;
    for addr in address.to_socket_addrs().map_err(ConnectError::Resolve)? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(ConnectError::Connect(last))?;
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| {
            stream.set_write_timeout(Some(Duration::from_millis(config.write_timeout_ms)))
        })
        .and_then(|()| stream.set_read_timeout(Some(shared.poll_interval())));
    setup.map_err(ConnectError::Connect)?;
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    let welcomed = handshake::connect(
        &mut stream,
        &mut reader,
        &shared.identity(),
        shared.stamp(),
        role,
        expected,
        shared.handshake_deadlines(),
    )?;
    let acceptor = welcomed.acceptor;
    shared.merge_stamp(acceptor, reader.last_stamp());
    shared.learn_client_endpoint(acceptor, welcomed.client_endpoint);
    Ok((stream, reader, acceptor))
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};
    use std::time::{Duration, Instant};

    use std::collections::BTreeMap;
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::Arc;

    use super::{ConnectError, FailureLog, Link, failed_connection, lost_connection};
    use crate::core::{Message, MessageBody, NodeId, PartitionId, Term};
    use crate::shard::Inbound;
    use crate::transport::codec::UNSTAMPED;
    use crate::transport::tcp::handshake::{
        self, ConnectionHandshakeError, HANDSHAKE_FRAME_BYTES_MAX, Hello, Identity, RejectCode,
    };
    use crate::transport::tcp::reader::{Deadlines, FrameReader};
    use crate::transport::tcp::{TcpCluster, TcpConfig, TcpTransport};

    #[test]
    fn a_retired_link_sends_nothing_of_what_was_queued_for_it() {
        let patience = Duration::from_secs(20);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let config = TcpConfig {
            listen_address: "127.0.0.1:0".to_owned(),
            ..TcpConfig::default()
        };
        let cluster = TcpCluster {
            cluster_name: "c".to_owned(),
            node_id: NodeId(1),
            peers: BTreeMap::new(),
            heartbeat_interval: Duration::from_millis(50),
        };
        let transport = TcpTransport::bind(&config, &cluster).expect("transport");
        // Writers connect once the transport serves.
        struct Nowhere;
        impl Inbound for Nowhere {
            fn deliver(&self, _: Vec<Message>) {}
        }
        transport.serve(Arc::new(Nowhere)).expect("serve");
        let (link, lane) = Link::spawn(&transport.shared, NodeId(2), &address).expect("spawn");
        // The writer connected and waits in its handshake for this side's answer.
        let (mut stream, _) = listener.accept().expect("accept");
        let batch = vec![Message {
            partition: PartitionId(1),
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::ReadIndexRequest { context: 1 },
        }];
        // Not connected yet: queued for the writer thread.
        lane.send(&transport.shared, NodeId(2), batch);
        let thread = link.retire();
        drop(lane);
        let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
        let me = Identity {
            cluster: "c".to_owned(),
            node: NodeId(2),
            incarnation: 0,
            secret: None,
            client_endpoint: None,
        };
        let deadlines = Deadlines {
            frame_timeout: patience,
            idle_timeout: patience,
        };
        let admit_any = |_: &Hello| Ok(());
        handshake::accept(
            &mut stream,
            &mut reader,
            &me,
            UNSTAMPED,
            &admit_any,
            deadlines,
        )
        .expect("handshake");
        stream.set_read_timeout(Some(patience)).expect("timeout");
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .expect("the writer closes the connection");
        assert!(
            rest.is_empty(),
            "{} bytes sent after retirement",
            rest.len()
        );
        thread.join().expect("the writer ended");
        assert_eq!(
            transport.stats().connects,
            0,
            "a retired link's connection is not counted"
        );
        transport.shutdown();
    }

    #[test]
    fn a_refusal_by_the_peer_is_said_in_words() {
        let rejected = |code| {
            ConnectError::Handshake(ConnectionHandshakeError::Rejected {
                code,
                reason: "its words".to_owned(),
            })
        };
        assert_eq!(
            failed_connection(&rejected(RejectCode::Busy)),
            "the peer has no room for another connection (its words); backing off"
        );
        assert_eq!(
            failed_connection(&rejected(RejectCode::UnknownNode)),
            "the peer does not know this node as a peer (its words)"
        );
        assert_eq!(
            failed_connection(&rejected(RejectCode::Auth)),
            "handshake: rejected by the other side (Auth): its words"
        );
    }

    #[test]
    fn a_lost_connection_is_said_in_words() {
        let peer = NodeId(2);
        // What a socket write timeout returns on Linux: EAGAIN.
        let stalled = lost_connection(peer, &Error::from_raw_os_error(11), 5_000);
        assert_eq!(
            stalled,
            "timed out writing to peer n2 after 5000 ms (transport.write_timeout_ms): it read \
             nothing meanwhile"
        );
        let stalled = lost_connection(peer, &Error::from(ErrorKind::TimedOut), 5_000);
        assert!(
            stalled.starts_with("timed out writing to peer n2"),
            "{stalled}"
        );
        let closed = lost_connection(peer, &Error::from(ErrorKind::BrokenPipe), 5_000);
        assert_eq!(closed, "peer n2 closed the connection");
        let other = lost_connection(peer, &Error::other("disk on fire"), 5_000);
        assert_eq!(other, "writing to peer n2 failed: disk on fire");
    }

    #[test]
    fn a_peer_that_stays_down_is_logged_again_at_the_interval_and_on_a_new_reason() {
        let (start, repeat) = (Instant::now(), Duration::from_secs(60));
        let mut log = FailureLog::default();
        assert_eq!(
            log.record("refused", start, repeat),
            Some(1),
            "the first failure"
        );
        for second in 1..60 {
            let now = start + Duration::from_secs(second);
            assert_eq!(log.record("refused", now, repeat), None);
        }
        let later = start + Duration::from_secs(60);
        assert_eq!(
            log.record("refused", later, repeat),
            Some(60),
            "again, with the count"
        );
        assert_eq!(
            log.record("timed out", later, repeat),
            Some(1),
            "a new reason"
        );
    }
}
