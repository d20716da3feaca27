//! The TCP transport: framed, authenticated connections between the nodes of a cluster.
//!
//! ```text
//! Transport::send(peer, batch) ─► lane (lane.rs): connection free and quiet? ─► writev by
//!             (peers.rs: the table of lanes)         the sending thread itself ─► one connection
//!                                  else ─► bounded queue ─► writer thread (link.rs) ─┘
//!                                          connect + handshake, coalesce, finish rests, writev
//! listener thread (listener.rs) ─► connection thread per inbound peer ─► Inbound::deliver
//!                                   handshake, frame reader with deadlines, total decoding
//! Transport::call(endpoint, call) ─► thread + connection per call (calls.rs, role Call)
//!     ─► the callee's listener ─► connection thread ─► Inbound::call ─► one answer, close
//! ```
//!
//! The peers are [`TcpCluster::peers`] at start; [`Transport::set_peers`] replaces them while
//! the transport runs (a new peer gets its writer thread, a removed one loses its threads and
//! connections and is refused from then on; see `peers.rs`).
//!
//! * [`codec`](crate::transport::codec): the frames (24-byte `zerocopy` header: magic,
//!   version, kind, flags, length, the sender's HLC stamp, CRC32C; vectored writes; every
//!   frame to a peer is stamped with the node's clock and every stamp received is merged
//!   into it, a handshake's once the peer is authenticated) and the `Messages` body (entry
//!   payloads are never copied on the send path).
//! * `reader.rs`: `FrameReader`, the socket reader of frames (deadlines, limits before
//!   allocation, one copy per frame).
//! * `handshake.rs`: protocol version, cluster name, node id and incarnation, connection role
//!   (peer, client, membership call) and HMAC-SHA256 mutual authentication over fresh nonces.
//! * `duplicate.rs`: the duplicate-node rule. Two live processes claiming one node id: the
//!   one the roster does not name with its incarnation is refused (`DuplicateNode`) and
//!   stops; a transport that learns it holds a duplicate id stops all its traffic and tells
//!   the node ([`Inbound::duplicate_node`]), which stops as on a fatal error.
//! * `calls.rs`: membership calls ([`Transport::call`]) on the peer port, both sides: a
//!   joiner calls a seed it is nobody's peer of, any member calls partition 0's leader.
//! * [`client`]: the client protocol (the `kommander` binary's client port) over the same
//!   frames and handshake.
//! * [`TcpConfig`]: every address, secret, deadline and limit; [`TcpCluster`]: this node's
//!   id, its cluster's name and its peers. The transport reads no other configuration.
//!
//! Each direction between two nodes uses its own connection (A's writer → B's listener), so a
//! connection is read by one thread and written by one thread at a time (the peer's writer
//! thread, or a sender while the writer thread lets it: `lane.rs`); a membership call has a
//! connection of its own, apart from the peers' (a member's call leaves its peer connection
//! alone). A node refuses to listen on a non-loopback address without `auth_secret` unless
//! `allow_unauthenticated` is set.
//!
//! Data frames after the handshake carry a CRC32C but no MAC: the handshake authenticates the
//! peer, not each frame. On an untrusted network put the cluster behind a VPN or TLS tunnel
//! (TLS inside the transport is not built).

mod calls;
pub mod client;
mod client_endpoints;
mod config;
mod connections;
pub(crate) mod duplicate;
// The handshake and the frame reader are internals of this transport, public only to this
// crate's tests and fuzz targets (the `sim` feature: unstable, not semver surface).
#[cfg(feature = "sim")]
pub mod handshake;
#[cfg(not(feature = "sim"))]
#[allow(unreachable_pub, reason = "public with the `sim` feature only")]
pub(crate) mod handshake;
mod lane;
mod link;
mod listener;
mod peers;
#[cfg(feature = "sim")]
pub mod reader;
#[cfg(not(feature = "sim"))]
#[allow(unreachable_pub, reason = "public with the `sim` feature only")]
pub(crate) mod reader;
mod unsent;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel::{self, Receiver, Sender};
use tracing::{debug, error, info};

use self::client_endpoints::ClientEndpoints;
pub use self::config::{AUTH_SECRET_BYTES_MIN, TcpCluster, TcpConfig, TcpConfigError};
use self::connections::Connections;
use self::handshake::Identity;
pub use self::handshake::{ConnectionHandshakeError, RejectCode};
use self::peers::{Links, PeerTable};
use self::reader::Deadlines;
use crate::clock::HybridLogicalClock;
use crate::core::{Message, NodeId};
use crate::metrics::{TransportDrop, TransportMetrics};
use crate::shard::membership::{CallReply, MembershipCall};
use crate::shard::transport::PeerSetError;
use crate::shard::{Inbound, Transport};
use crate::transport::stamp;

/// Why the TCP transport could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The configuration is invalid (the error names the field).
    #[error(transparent)]
    Config(#[from] TcpConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on `{address}`: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Listening on a non-loopback address without authentication was not allowed.
    #[error(
        "refusing to listen on non-loopback address {0} without transport.auth_secret \
         (set transport.allow_unauthenticated = true to accept unauthenticated peers)"
    )]
    Unauthenticated(SocketAddr),
    /// [`TcpTransport::serve`] was called twice, or
    /// [`TcpTransport::advertise_client_endpoint`] after it.
    #[error("the transport is already serving")]
    AlreadyServing,
    /// [`TcpTransport::advertise_client_endpoint`] was given an endpoint clients cannot
    /// connect to, or was called twice.
    #[error("cannot advertise the client endpoint {endpoint:?}: {reason}")]
    ClientEndpoint {
        /// The endpoint.
        endpoint: String,
        /// Why not.
        reason: String,
    },
    /// A thread could not be spawned or the socket queried.
    #[error("starting the transport: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of one transport (monotonic since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages dropped: full peer queue, unknown peer, no connection, or too large.
    pub messages_dropped: u64,
    /// Frames written.
    pub frames_sent: u64,
    /// Of `frames_sent`, those the sending thread began writing itself (the connection was
    /// free), with no hand-over to the peer's writer thread.
    pub frames_sent_directly: u64,
    /// Bytes written (headers included).
    pub bytes_sent: u64,
    /// `Messages` frames received.
    pub frames_received: u64,
    /// Body bytes received.
    pub bytes_received: u64,
    /// Outbound connections established (handshake done).
    pub connects: u64,
    /// Outbound connection attempts that failed.
    pub connect_failures: u64,
    /// Inbound connections refused on accept (caps reached: answered `Busy`).
    pub connections_refused: u64,
    /// Inbound handshakes that failed (bad cluster, node, secret, timeout, garbage).
    pub handshakes_failed: u64,
    /// Established inbound connections closed for a bad frame, a deadline or an error.
    pub connections_dropped: u64,
    /// Peers' frame stamps the node's clock refused to merge: further ahead of its wall clock
    /// than `hlc_drift_ms_max` (the frames were processed all the same).
    pub stamps_refused: u64,
}

#[derive(Default)]
struct Counters {
    messages_dropped: AtomicU64,
    frames_sent: AtomicU64,
    frames_sent_directly: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    connections_refused: AtomicU64,
    handshakes_failed: AtomicU64,
    connections_dropped: AtomicU64,
    stamps_refused: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            messages_dropped: get(&self.messages_dropped),
            frames_sent: get(&self.frames_sent),
            frames_sent_directly: get(&self.frames_sent_directly),
            bytes_sent: get(&self.bytes_sent),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            connections_refused: get(&self.connections_refused),
            handshakes_failed: get(&self.handshakes_failed),
            connections_dropped: get(&self.connections_dropped),
            stamps_refused: get(&self.stamps_refused),
        }
    }
}

/// What the transport's threads share.
struct TcpShared {
    config: TcpConfig,
    identity: Identity,
    /// The current peers' queues (the send path, the listener's admission).
    peers: PeerTable,
    heartbeat_interval: Duration,
    stop: AtomicBool,
    stats: Counters,
    metrics: TransportMetrics,
    connections: Connections,
    /// Membership calls this node makes now (at most `calls_outgoing_max`).
    calls_outgoing: AtomicUsize,
    /// The node's inbound side, once [`TcpTransport::serve`] was called: its clock stamps the
    /// frames this node sends and takes the stamps of the frames it receives; its incarnation
    /// is presented in every handshake; its roster decides between duplicates.
    inbound: OnceLock<Arc<dyn Inbound>>,
    /// Dropped (disconnecting [`TcpShared::served`]) once the transport serves or stops.
    serving: Mutex<Option<Sender<()>>>,
    /// Disconnected once the transport serves or stops: the writer threads wait on it before
    /// they connect (a connection before `serve` would present no incarnation).
    served: Receiver<()>,
    /// Where clients reach this node, told to every connector (the handshake's `Welcome`);
    /// set before `serve` or never.
    client_endpoint: OnceLock<String>,
    /// Where clients reach the peers, as each told this node.
    client_endpoints: ClientEndpoints,
    /// Set once this process learned that another live process holds its node id: every
    /// thread stops as at shutdown (which still joins them).
    duplicate: AtomicBool,
    /// The origin of the connections' last-frame times.
    epoch: Instant,
}

impl TcpShared {
    /// Counts `messages` dropped messages, in the stats and in the metrics.
    fn dropped(&self, reason: TransportDrop, messages: usize) {
        self.stats
            .messages_dropped
            .fetch_add(messages as u64, Ordering::Relaxed);
        self.metrics.dropped(reason, messages);
    }

    fn clock(&self) -> Option<&HybridLogicalClock> {
        self.inbound.get().and_then(|inbound| inbound.clock())
    }

    /// Wakes the writer threads waiting for `serve` (or shutdown).
    fn release_writers(&self) {
        drop(
            self.serving
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// The stamp of a frame sent now: the node's clock, or none before `serve`.
    fn stamp(&self) -> u64 {
        stamp::stamp(self.clock())
    }

    /// Merges the stamp of a frame from `peer` (authenticated) into the node's clock; a stamp
    /// too far ahead is counted, not merged.
    fn merge_stamp(&self, peer: NodeId, stamp: u64) {
        if let Err(error) = stamp::merge(self.clock(), peer, stamp) {
            self.stats.stamps_refused.fetch_add(1, Ordering::Relaxed);
            self.metrics.stamp_refused();
            debug!(%peer, %error, "frame stamp not merged");
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.duplicate.load(Ordering::Acquire)
    }

    /// The node's incarnation (0 before `serve`, or for an inbound side without one).
    fn incarnation(&self) -> u64 {
        self.inbound
            .get()
            .map_or(0, |inbound| inbound.incarnation())
    }

    /// This side of a handshake, with the node's incarnation and advertised client endpoint.
    fn identity(&self) -> Identity {
        Identity {
            incarnation: self.incarnation(),
            client_endpoint: self.client_endpoint.get().cloned(),
            ..self.identity.clone()
        }
    }

    /// Records the client endpoint `acceptor` advertised in the `Welcome` of a connection
    /// this node made (kept while it is a peer).
    fn learn_client_endpoint(&self, acceptor: NodeId, advertised: Option<String>) {
        self.client_endpoints
            .learn(acceptor, advertised, &|node| self.peers.contains(node));
    }

    /// The incarnation the node's roster records for `node`, if it knows the node.
    fn roster_incarnation(&self, node: NodeId) -> Option<u64> {
        let roster = self.inbound.get()?.roster()?;
        roster.member(node).map(|member| member.incarnation)
    }

    /// Milliseconds since the transport started (the connections' last-frame times).
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How recent a peer connection's last frame must be for it to count as alive.
    fn liveness_window_ms(&self) -> u64 {
        duplicate::liveness_window_ms(Duration::from_millis(self.config.idle_timeout_ms))
    }

    /// Waits until the transport serves (or stops), at most one poll interval.
    fn wait_served(&self) {
        let _ = self.served.recv_timeout(self.poll_interval());
    }

    /// This process holds a node id another live process keeps: every connection closes, every
    /// thread ends, nothing is sent or accepted any more, and the node is told once
    /// ([`Inbound::duplicate_node`]) so that it stops.
    fn holds_duplicate_id(&self, reason: String) {
        if self.duplicate.swap(true, Ordering::AcqRel) {
            return;
        }
        error!(
            node = self.identity.node.get(),
            incarnation = self.incarnation(),
            %reason,
            "another live process holds this node's id: the transport stops, the node stops"
        );
        self.connections.close_all();
        if let Some(inbound) = self.inbound.get() {
            inbound.duplicate_node(reason);
        }
    }

    /// The socket read timeout: how often blocked readers check deadlines and the stop flag.
    fn poll_interval(&self) -> Duration {
        let c = &self.config;
        let shortest = c
            .frame_read_timeout_ms
            .min(c.idle_timeout_ms)
            .min(c.handshake_timeout_ms);
        Duration::from_millis((shortest / 4).clamp(5, 250))
    }

    fn handshake_deadlines(&self) -> Deadlines {
        let timeout = Duration::from_millis(self.config.handshake_timeout_ms);
        Deadlines {
            frame_timeout: timeout,
            idle_timeout: timeout,
        }
    }
}

/// The TCP transport of one node. Create it with [`TcpTransport::bind`] (or
/// [`TcpTransport::with_listener`]), give it to `Raft::start`, then call
/// [`TcpTransport::serve`] with the node's inbound side.
pub struct TcpTransport {
    shared: Arc<TcpShared>,
    /// The writer threads; its lock orders the changes of the peer set (and shutdown).
    links: Mutex<Links>,
    local_addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
    /// The acceptor thread, once serving.
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node", &self.shared.identity.node)
            .field("local_addr", &self.local_addr)
            .field("peers", &self.shared.peers.ids())
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Binds `config.listen_address` and starts one writer thread per peer of `cluster` (they
    /// connect in the background and keep reconnecting). Inbound connections are served once
    /// [`TcpTransport::serve`] is called. The peers may change later
    /// ([`Transport::set_peers`]).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] for an invalid configuration (more peers than
    /// [`TcpConfig::peers_max`] included: field `peers`) or an empty address;
    /// [`TransportError::Bind`]; [`TransportError::Unauthenticated`]; [`TransportError::Io`].
    pub fn bind(config: &TcpConfig, cluster: &TcpCluster) -> Result<Arc<Self>, TransportError> {
        validate(config, cluster)?;
        let address = &config.listen_address;
        if address.is_empty() {
            return Err(TcpConfigError {
                field: "transport.listen_address",
                reason: "neither listen_address nor endpoint is set".to_owned(),
            }
            .into());
        }
        let listener = TcpListener::bind(address).map_err(|source| TransportError::Bind {
            address: address.clone(),
            source,
        })?;
        Self::start(config, cluster, listener)
    }

    /// As [`TcpTransport::bind`], on a listener the caller bound (for example on port 0,
    /// before the peers' addresses were known); `config.listen_address` is not used.
    ///
    /// # Errors
    ///
    /// As [`TcpTransport::bind`].
    pub fn with_listener(
        config: &TcpConfig,
        cluster: &TcpCluster,
        listener: TcpListener,
    ) -> Result<Arc<Self>, TransportError> {
        validate(config, cluster)?;
        Self::start(config, cluster, listener)
    }

    /// Starts the transport with a validated configuration.
    fn start(
        config: &TcpConfig,
        cluster: &TcpCluster,
        listener: TcpListener,
    ) -> Result<Arc<Self>, TransportError> {
        let local_addr = listener.local_addr()?;
        if !local_addr.ip().is_loopback()
            && config.auth_secret.is_none()
            && !config.allow_unauthenticated
        {
            return Err(TransportError::Unauthenticated(local_addr));
        }
        let (serving, served) = channel::bounded(0);
        let shared = Arc::new(TcpShared {
            config: config.clone(),
            identity: Identity {
                cluster: cluster.cluster_name.clone(),
                node: cluster.node_id,
                incarnation: 0,
                secret: config
                    .auth_secret
                    .as_ref()
                    .map(|s| Bytes::copy_from_slice(s.as_bytes())),
                client_endpoint: None,
            },
            peers: PeerTable::default(),
            heartbeat_interval: cluster.heartbeat_interval,
            stop: AtomicBool::new(false),
            stats: Counters::default(),
            metrics: TransportMetrics::new(),
            connections: Connections::default(),
            calls_outgoing: AtomicUsize::new(0),
            inbound: OnceLock::new(),
            serving: Mutex::new(Some(serving)),
            served,
            client_endpoint: OnceLock::new(),
            client_endpoints: ClientEndpoints::default(),
            duplicate: AtomicBool::new(false),
            epoch: Instant::now(),
        });
        let mut links = Links::default();
        if let Err(error) = links.replace(&shared, &cluster.peers) {
            shared.stop.store(true, Ordering::Release);
            links.shutdown(&shared);
            return Err(match error {
                PeerSetError::Io { source, .. } => source.into(),
                // Checked by `validate` before.
                other => TcpConfigError {
                    field: "peers",
                    reason: other.to_string(),
                }
                .into(),
            });
        }
        info!(node = cluster.node_id.get(), %local_addr, peers = cluster.peers.len(), "transport listening");
        Ok(Arc::new(Self {
            shared,
            links: Mutex::new(links),
            local_addr,
            listener: Mutex::new(Some(listener)),
            acceptor: Mutex::new(None),
        }))
    }

    /// Starts accepting peers' connections; their messages go to `inbound` (the node's
    /// `Raft::inbound`). The writer threads connect to the peers from now on (presenting
    /// `inbound`'s incarnation); what was sent before waits in their queues.
    ///
    /// # Errors
    ///
    /// [`TransportError::AlreadyServing`] on a second call; [`TransportError::Io`].
    pub fn serve(&self, inbound: Arc<dyn Inbound>) -> Result<(), TransportError> {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(TransportError::AlreadyServing)?;
        // The first call only (the listener was taken above).
        let _ = self.shared.inbound.set(Arc::clone(&inbound));
        self.shared.release_writers();
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("kommander-tcp-accept".to_owned())
            .spawn(move || listener::run(&shared, &listener, &inbound))?;
        *self.acceptor.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
        Ok(())
    }

    /// The address the transport listens on (the real port when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Advertises `endpoint` (`host:port`) as where clients reach this node's client port:
    /// every node connecting to this one learns it in the handshake, and answers
    /// [`TcpTransport::client_endpoint`] with it. Call it before [`TcpTransport::serve`], at
    /// most once; without it this node advertises no client endpoint.
    ///
    /// # Errors
    ///
    /// [`TransportError::AlreadyServing`] after `serve`; [`TransportError::ClientEndpoint`]
    /// for an endpoint a client cannot connect to (not `host:port`, port 0, the unspecified
    /// address `0.0.0.0` or `[::]`, empty or longer than
    /// [`ENDPOINT_BYTES_MAX`](crate::ENDPOINT_BYTES_MAX) bytes) or on a second call.
    pub fn advertise_client_endpoint(&self, endpoint: &str) -> Result<(), TransportError> {
        let refused = |reason: String| TransportError::ClientEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        client_endpoints::check_advertised(endpoint).map_err(refused)?;
        // `serve` takes the listener under this lock: no handshake runs before it.
        let listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        if listener.is_none() {
            return Err(TransportError::AlreadyServing);
        }
        self.shared
            .client_endpoint
            .set(endpoint.to_owned())
            .map_err(|_| refused("a client endpoint is advertised already".to_owned()))
    }

    /// Where clients reach `node`: this node's advertised client endpoint, or the one the
    /// peer `node` advertised when this node last connected to it (`None`: none advertised,
    /// not connected yet, or not a peer).
    #[must_use]
    pub fn client_endpoint(&self, node: NodeId) -> Option<String> {
        if node == self.shared.identity.node {
            return self.shared.client_endpoint.get().cloned();
        }
        if !self.shared.peers.contains(node) {
            return None;
        }
        self.shared.client_endpoints.of(node)
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> TransportStats {
        self.shared.stats.snapshot()
    }

    /// The current peers, in id order.
    #[must_use]
    pub fn peers(&self) -> Vec<NodeId> {
        self.shared.peers.ids()
    }

    /// Stops every thread and closes every connection; later sends are dropped, later peer
    /// sets ignored and later calls answered `Unreachable`. Waits for the writer threads
    /// (those of removed peers too) and the acceptor, and up to one second for connection
    /// threads. Calls in progress are not waited for: each ends within its connect and
    /// handshake deadlines, or at once while it waits for its answer, and answers
    /// `Unreachable`.
    pub fn shutdown(&self) {
        if self.shared.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.release_writers();
        wake_acceptor(self.local_addr);
        self.lock_links().shutdown(&self.shared);
        let acceptor = self
            .acceptor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = acceptor {
            let _ = thread.join();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while self.shared.connections.close_all() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl TcpTransport {
    fn lock_links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for TcpTransport {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        if messages.is_empty() || self.shared.stopping() {
            return;
        }
        self.shared.peers.send(&self.shared, to, messages);
    }

    /// Replaces the peers as [`Transport::set_peers`] says: a new peer gets its writer thread
    /// (and bounded queue), a removed peer's writer thread ends (its outbound connection
    /// closes, what was queued for it is dropped), its inbound connections are closed and
    /// its later handshakes refused (`UnknownNode`); a peer whose endpoint changed gets a new
    /// writer thread on the new endpoint; an unchanged peer keeps its connections. Returns
    /// without waiting for any thread: those of removed peers are joined by a later call or
    /// by [`TcpTransport::shutdown`]. After `shutdown`, changes nothing.
    ///
    /// # Errors
    ///
    /// [`PeerSetError::TooMany`] over [`TcpConfig::peers_max`],
    /// [`PeerSetError::InvalidPeer`] for this node's id or 0, [`PeerSetError::Io`] when a
    /// writer thread cannot be spawned; the previous peers stay.
    fn set_peers(&self, peers: &BTreeMap<NodeId, String>) -> Result<(), PeerSetError> {
        self.lock_links().replace(&self.shared, peers)
    }

    /// Makes the call as [`Transport::call`] says, over the peer port of the node at
    /// `endpoint` (module `calls.rs`): a connection of its own with the handshake's role
    /// `Call`, one request, one answer, on a thread of its own. `call.from` must be this
    /// node (the handshake says who calls).
    ///
    /// What `reply` gets: the answer; [`CallError::Busy`](crate::CallError::Busy) at once
    /// over [`TcpConfig::calls_outgoing_max`] calls in progress;
    /// [`CallError::Invalid`](crate::CallError::Invalid) at once for a call the wire format
    /// cannot carry or one from another node; [`CallError::Unreachable`](crate::CallError::Unreachable)
    /// when connecting or the connection fails (a stopped transport: at once);
    /// [`CallError::Rejected`](crate::CallError::Rejected) when either side refuses the
    /// handshake (another cluster, authentication, the callee's
    /// [`TcpConfig::calls_max`] reached, the callee is this node) or the callee refuses a
    /// malformed request; [`CallError::Timeout`](crate::CallError::Timeout) when no answer
    /// came within [`TcpConfig::call_timeout_ms`] of the request.
    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
        calls::start(&self.shared, endpoint, &call, reply);
    }
}

/// Checks the configuration, the cluster, and the number of peers against `peers_max`.
fn validate(config: &TcpConfig, cluster: &TcpCluster) -> Result<(), TcpConfigError> {
    config.validate()?;
    cluster.validate()?;
    if cluster.peers.len() > config.peers_max {
        return Err(TcpConfigError {
            field: "peers",
            reason: format!(
                "{} peers are more than transport.peers_max ({})",
                cluster.peers.len(),
                config.peers_max
            ),
        });
    }
    Ok(())
}

/// Wakes a thread blocked in `accept` on a listener bound to `addr` (by connecting to it, on
/// loopback when `addr` is unspecified), so that it sees a stop flag set before.
pub(crate) fn wake_acceptor(addr: SocketAddr) {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let _ = TcpStream::connect_timeout(&target, Duration::from_millis(200));
}
