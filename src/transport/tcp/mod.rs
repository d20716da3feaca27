//! The TCP transport: framed, authenticated connections between the nodes of a cluster.
//!
//! ```text
//! Transport::send(peer, batch) ─► bounded queue ─► writer thread (link.rs) ─► one connection
//!                                                   connect + handshake, coalesce, writev
//! listener thread (listener.rs) ─► connection thread per inbound peer ─► Inbound::deliver
//!                                   handshake, frame reader with deadlines, total decoding
//! ```
//!
//! * [`codec`](crate::transport::codec): the frames (16-byte `zerocopy` header: magic,
//!   version, kind, flags, length, CRC32C; vectored writes) and the `Messages` body (entry
//!   payloads are never copied on the send path).
//! * `reader.rs`: `FrameReader`, the socket reader of frames (deadlines, limits before
//!   allocation, one copy per frame).
//! * `handshake.rs`: protocol version, cluster name, node id and HMAC-SHA256 mutual
//!   authentication over fresh nonces.
//! * [`client`]: the client protocol (the `kommander` binary's client port) over the same
//!   frames and handshake.
//! * [`TcpConfig`]: every address, secret, deadline and limit; [`TcpCluster`]: this node's
//!   id, its cluster's name and its peers. The transport reads no other configuration.
//!
//! Each direction between two nodes uses its own connection (A's writer → B's listener), so a
//! connection is written by one thread and read by one thread. A node refuses to listen on a
//! non-loopback address without `auth_secret` unless `allow_unauthenticated` is set.
//!
//! Data frames after the handshake carry a CRC32C but no MAC: the handshake authenticates the
//! peer, not each frame. On an untrusted network put the cluster behind a VPN or TLS tunnel
//! (TLS inside the transport is not built).

pub mod client;
mod config;
// The handshake and the frame reader are internals of this transport, public only to this
// crate's tests and fuzz targets (the `sim` feature: unstable, not semver surface).
#[cfg(feature = "sim")]
pub mod handshake;
#[cfg(not(feature = "sim"))]
#[allow(unreachable_pub, reason = "public with the `sim` feature only")]
pub(crate) mod handshake;
mod link;
mod listener;
#[cfg(feature = "sim")]
pub mod reader;
#[cfg(not(feature = "sim"))]
#[allow(unreachable_pub, reason = "public with the `sim` feature only")]
pub(crate) mod reader;

use std::collections::{BTreeMap, HashMap};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam::channel::{self, Sender, TrySendError};
use tracing::info;

pub use self::config::{AUTH_SECRET_BYTES_MIN, TcpCluster, TcpConfig, TcpConfigError};
use self::handshake::Identity;
pub use self::handshake::{ConnectionHandshakeError, RejectCode};
use self::reader::Deadlines;
use crate::core::{Message, NodeId};
use crate::metrics::{TransportDrop, TransportMetrics};
use crate::shard::{Inbound, Transport};

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
    /// [`TcpTransport::serve`] was called twice.
    #[error("the transport is already serving")]
    AlreadyServing,
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
    /// Inbound connections refused on accept (caps reached).
    pub connections_refused: u64,
    /// Inbound handshakes that failed (bad cluster, node, secret, timeout, garbage).
    pub handshakes_failed: u64,
    /// Established inbound connections closed for a bad frame, a deadline or an error.
    pub connections_dropped: u64,
}

#[derive(Default)]
struct Counters {
    messages_dropped: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    connections_refused: AtomicU64,
    handshakes_failed: AtomicU64,
    connections_dropped: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            messages_dropped: get(&self.messages_dropped),
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            connections_refused: get(&self.connections_refused),
            handshakes_failed: get(&self.handshakes_failed),
            connections_dropped: get(&self.connections_dropped),
        }
    }
}

/// Open inbound connections, for the caps, the replacement of a peer's older connection and
/// shutdown.
#[derive(Default)]
struct Connections {
    table: Mutex<ConnectionTable>,
}

#[derive(Default)]
struct ConnectionTable {
    next_id: u64,
    /// id → (peer once authenticated, a handle to shut the socket down).
    open: HashMap<u64, (Option<NodeId>, TcpStream)>,
    pending: usize,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection in its handshake; `None` when a cap is reached.
    fn admit(&self, stream: &TcpStream, config: &TcpConfig) -> Option<u64> {
        let mut table = self.lock();
        if table.open.len() >= config.connections_max
            || table.pending >= config.handshakes_pending_max
        {
            return None;
        }
        let handle = stream.try_clone().ok()?;
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(id, (None, handle));
        table.pending += 1;
        Some(id)
    }

    /// The connection authenticated as `peer`: an older connection from it is closed (the
    /// peer reconnected; its old socket may linger half-open).
    fn established(&self, id: u64, peer: NodeId) {
        let mut table = self.lock();
        if let Some(entry) = table.open.get_mut(&id) {
            entry.0 = Some(peer);
            table.pending -= 1;
        }
        for (other, (p, stream)) in &table.open {
            if *other != id && *p == Some(peer) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    fn remove(&self, id: u64) {
        let mut table = self.lock();
        if let Some((peer, _)) = table.open.remove(&id)
            && peer.is_none()
        {
            table.pending -= 1;
        }
    }

    fn close_all(&self) -> usize {
        let table = self.lock();
        for (_, stream) in table.open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        table.open.len()
    }
}

/// What the transport's threads share.
struct TcpShared {
    config: TcpConfig,
    identity: Identity,
    peers: BTreeMap<NodeId, String>,
    heartbeat_interval: Duration,
    stop: AtomicBool,
    stats: Counters,
    metrics: TransportMetrics,
    connections: Connections,
}

impl TcpShared {
    /// Counts `messages` dropped messages, in the stats and in the metrics.
    fn dropped(&self, reason: TransportDrop, messages: usize) {
        self.stats
            .messages_dropped
            .fetch_add(messages as u64, Ordering::Relaxed);
        self.metrics.dropped(reason, messages);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
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
    links: HashMap<NodeId, Sender<Vec<Message>>>,
    local_addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node", &self.shared.identity.node)
            .field("local_addr", &self.local_addr)
            .field("peers", &self.shared.peers)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Binds `config.listen_address` and starts one writer thread per peer of `cluster` (they
    /// connect in the background and keep reconnecting). Inbound connections are served once
    /// [`TcpTransport::serve`] is called.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] for an invalid configuration or an empty address;
    /// [`TransportError::Bind`]; [`TransportError::Unauthenticated`]; [`TransportError::Io`].
    pub fn bind(config: &TcpConfig, cluster: &TcpCluster) -> Result<Arc<Self>, TransportError> {
        config.validate()?;
        cluster.validate()?;
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
        config.validate()?;
        cluster.validate()?;
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
        let shared = Arc::new(TcpShared {
            config: config.clone(),
            identity: Identity {
                cluster: cluster.cluster_name.clone(),
                node: cluster.node_id,
                secret: config
                    .auth_secret
                    .as_ref()
                    .map(|s| Bytes::copy_from_slice(s.as_bytes())),
            },
            peers: cluster.peers.clone(),
            heartbeat_interval: cluster.heartbeat_interval,
            stop: AtomicBool::new(false),
            stats: Counters::default(),
            metrics: TransportMetrics::new(),
            connections: Connections::default(),
        });
        let mut links = HashMap::new();
        let mut threads = Vec::new();
        for (&peer, address) in &shared.peers {
            let (tx, rx) = channel::bounded(config.peer_queue_batches_max);
            let for_thread = Arc::clone(&shared);
            let address = address.clone();
            let thread = std::thread::Builder::new()
                .name(format!("kommander-tcp-{peer}"))
                .spawn(move || link::run(&for_thread, peer, &address, &rx));
            match thread {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    shared.stop.store(true, Ordering::Release);
                    drop(links);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(error.into());
                }
            }
            links.insert(peer, tx);
        }
        info!(node = cluster.node_id.get(), %local_addr, peers = links.len(), "transport listening");
        Ok(Arc::new(Self {
            shared,
            links,
            local_addr,
            listener: Mutex::new(Some(listener)),
            threads: Mutex::new(threads),
        }))
    }

    /// Starts accepting peers' connections; their messages go to `inbound` (the node's
    /// `Raft::inbound`).
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
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("kommander-tcp-accept".to_owned())
            .spawn(move || listener::run(&shared, &listener, &inbound))?;
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(thread);
        Ok(())
    }

    /// The address the transport listens on (the real port when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> TransportStats {
        self.shared.stats.snapshot()
    }

    /// Stops every thread and closes every connection; later sends are dropped. Waits for
    /// the writer and acceptor threads, and up to one second for connection threads.
    pub fn shutdown(&self) {
        if self.shared.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        wake_acceptor(self.local_addr);
        for link in self.links.values() {
            let _ = link.try_send(Vec::new());
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
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

impl Transport for TcpTransport {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        if messages.is_empty() || self.shared.stopping() {
            return;
        }
        let Some(link) = self.links.get(&to) else {
            self.shared
                .dropped(TransportDrop::UnknownPeer, messages.len());
            return;
        };
        if let Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) =
            link.try_send(messages)
        {
            self.shared.dropped(TransportDrop::QueueFull, batch.len());
        }
    }
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
