//! The node's client port: the client protocol of `kommander_raft::transport::tcp::client`
//! served on its own listener (`ClientListener`, `AcceptedClient`, `write_response`).
//!
//! ```text
//! acceptor thread ── admits under --client-connections-max (beyond: Reject Busy) ──►
//!   per connection:
//!   reader thread: handshake (role Client only) ─► ClientRequest frames
//!       Replicate ─► raft.replicate_logs, proposed on this thread  ─┐ bounded queue
//!       Leader    ─► answered at once from raft.watch_partition     ─┤ (--client-inflight-max)
//!       Ping      ─► Pong                                           ─┤
//!       Members   ─► answered at once from raft.membership          ─┤
//!       RemoveMember ─► raft.remove_member (through partition 0's leader) ─┤
//!       Partitions, Route ─► answered at once from raft.committed_partition_map ─┤
//!       Create/Remove/Split/MergePartition(s) ─► raft.create_partition... (this node
//!         must lead partition 0)                                    ─┤
//!       FencedReplicate ─► raft.replicate_logs with expected_generation ─┤
//!   writer thread: takes the queue in request order, awaits each answer, writes ◄┘
//!       ClientResponse frames (buffered; flushed before it waits)
//! ```
//!
//! Requests of one connection are proposed in the order they arrived, run concurrently
//! (pipelining) and are answered in that order. A full queue stops the reader (backpressure on the client's socket).
//! A `Replicate` to the system partition 0 is answered `Failed` (nothing written): the node
//! never checkpoints that partition, so a client's entry would stay in its log for good.
//! A `Replicate` is answered `Replicated` (committed, or a retryable refusal), `Failed` (an
//! invalid entry) or `Unknown` (`outcome.rs`: timed out after `--client-request-timeout-ms`,
//! leadership lost, the node stopped first).
//! `Leader` answers carry the leader's node id and its client endpoint, from any node: each
//! node advertises its client port to the peers in the handshake (`ClientPort::bind`, before
//! the transport serves; for `0.0.0.0:P` the host of the node's peer endpoint, never the
//! unspecified address), and answers with the endpoint the leader advertised (empty when it
//! has none, or this node has not connected to it). A connection on
//! which no request arrived for `transport.idle_timeout_ms` is closed (logged at debug: an
//! idle client is not a fault).

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, Sender, TryRecvError};
use kommander_raft::transport::codec::FrameError;
use kommander_raft::transport::tcp::client::{
    AcceptedClient, ClientError, ClientListener, ClientRequest, ClientResponse, PartitionInfo,
    ReplicaState, reject_busy, write_response,
};
use kommander_raft::transport::tcp::{TcpCluster, TcpConfig, TcpTransport};
use kommander_raft::{
    MembershipError, PartitionId, PartitionLifecycleError, Raft, ReplicateError, ReplicateOptions,
    SYSTEM_PARTITION, Status,
};
use tracing::{debug, info, warn};

use crate::outcome::outcome_unknown;

/// Bytes the writer buffers before a write (answers are small; many fit).
const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// Settings of the client port: the peer port's (cluster name, node id, secret, limits and
/// deadlines of the node's `[transport]` table) and the CLI options.
#[derive(Clone, Debug)]
pub(crate) struct ClientPortConfig {
    /// Limits, deadlines and the shared secret, as for peers.
    pub(crate) transport: TcpConfig,
    /// The cluster's name and this node's id (clients must present the name).
    pub(crate) cluster: TcpCluster,
    /// Client connections open at once.
    pub(crate) connections_max: usize,
    /// Unanswered requests per connection.
    pub(crate) inflight_max: usize,
    /// A replication's answer is `ProposalTimeout` this long after its request arrived.
    pub(crate) request_timeout: Duration,
}

/// Counters of the client port.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClientPortStats {
    /// Connections open now.
    pub(crate) connections_open: usize,
    /// Requests received since start.
    pub(crate) requests: u64,
}

struct PortShared {
    config: ClientPortConfig,
    listener: ClientListener,
    /// The peers' client endpoints (the `Leader` answers).
    transport: Arc<TcpTransport>,
    raft: Raft,
    runtime: tokio::runtime::Handle,
    stop: AtomicBool,
    next_id: AtomicU64,
    requests: AtomicU64,
    /// Open connections: id → a handle to shut the socket down.
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl PortShared {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// A running client port. [`ClientPort::shutdown`] stops it.
pub(crate) struct ClientPort {
    shared: Arc<PortShared>,
    acceptor: Option<JoinHandle<()>>,
}

/// A client port bound and advertised to the peers, not serving yet: connections wait in the
/// listen backlog until [`BoundClientPort::start`].
pub(crate) struct BoundClientPort {
    listener: ClientListener,
    transport: Arc<TcpTransport>,
}

impl BoundClientPort {
    /// Starts accepting clients; writers await answers with `runtime`.
    ///
    /// # Errors
    ///
    /// The thread-spawn error.
    pub(crate) fn start(
        self,
        config: ClientPortConfig,
        raft: Raft,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<ClientPort> {
        let local_addr = self.listener.local_addr();
        let advertised = self.transport.client_endpoint(config.cluster.node_id);
        let shared = Arc::new(PortShared {
            config,
            listener: self.listener,
            transport: self.transport,
            raft,
            runtime,
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("kommander-client-accept".to_owned())
            .spawn(move || accept_loop(&for_thread))?;
        info!(client = %local_addr, advertised = ?advertised, "client port listening");
        Ok(ClientPort {
            shared,
            acceptor: Some(acceptor),
        })
    }
}

impl ClientPort {
    /// Binds `address` and advertises the port to the peers through `transport`, which must
    /// not serve yet (every peer then learns it in its handshake with this node): `address`
    /// as bound, or for an unspecified address (`0.0.0.0:P`, `[::]:P`) the host of
    /// `peer_endpoint` (where the peers reach this machine) with the bound port.
    ///
    /// # Errors
    ///
    /// The bind error, or why the endpoint cannot be advertised, in words.
    pub(crate) fn bind(
        address: &str,
        peer_endpoint: &str,
        transport: &Arc<TcpTransport>,
    ) -> Result<BoundClientPort, String> {
        let listener =
            ClientListener::bind(address).map_err(|e| format!("client port {address}: {e}"))?;
        let advertised = advertised_endpoint(listener.local_addr(), peer_endpoint);
        transport
            .advertise_client_endpoint(&advertised)
            .map_err(|e| format!("client port {address}: {e}"))?;
        Ok(BoundClientPort {
            listener,
            transport: Arc::clone(transport),
        })
    }

    /// The address the port listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.shared.listener.local_addr()
    }

    /// The counters.
    pub(crate) fn stats(&self) -> ClientPortStats {
        ClientPortStats {
            connections_open: self.shared.open().len(),
            requests: self.shared.requests.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and stops reading every connection; answers of requests already
    /// received are still written (until the node stops).
    pub(crate) fn shutdown(mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.listener.stop();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.shared.open().values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }
}

/// Where clients elsewhere reach a client port bound at `bound`: `bound` itself, or for an
/// unspecified address the host of `peer_endpoint` (`host:port`) with `bound`'s port.
fn advertised_endpoint(bound: SocketAddr, peer_endpoint: &str) -> String {
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    match peer_endpoint.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{}", bound.port()),
        // Not `host:port` (a validated configuration has one): advertising it is refused.
        None => bound.to_string(),
    }
}

fn accept_loop(shared: &Arc<PortShared>) {
    while let Some(accepted) = shared.listener.accept() {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%error, "client accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let addr = stream
            .peer_addr()
            .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = shared.open();
            if open.len() >= shared.config.connections_max {
                drop(open);
                warn!(from = %addr, "refusing client connection: --client-connections-max reached");
                reject_busy(
                    stream,
                    format!(
                        "{} client connections are open, the node's --client-connections-max",
                        shared.config.connections_max
                    ),
                );
                continue;
            }
            match stream.try_clone() {
                Ok(handle) => {
                    open.insert(id, handle);
                }
                Err(error) => {
                    warn!(from = %addr, %error, "cannot register a client connection; closing");
                    continue;
                }
            }
        }
        let for_thread = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("kommander-client-read".to_owned())
            .spawn(move || {
                serve_connection(&for_thread, stream, &addr);
                for_thread.open().remove(&id);
            });
        if let Err(error) = spawned {
            warn!(%error, "cannot spawn a client connection thread; closing");
            if let Some(stream) = shared.open().remove(&id) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// The outcome of a request handed to its shard, still to be awaited.
type Answer = Pin<Box<dyn Future<Output = ClientResponse> + Send>>;

/// An answer in the making, queued in request order.
enum Pending {
    /// Known already.
    Ready(u64, ClientResponse),
    /// Handed to its shard, the outcome not known yet.
    Waiting {
        /// The request's id.
        id: u64,
        /// The outcome.
        answer: Answer,
        /// When to give up waiting.
        deadline: tokio::time::Instant,
        /// The answer then (`ProposalTimeout`; the request may still take effect).
        timed_out: ClientResponse,
    },
}

fn serve_connection(shared: &Arc<PortShared>, stream: TcpStream, addr: &str) {
    let config = &shared.config;
    let mut client = match AcceptedClient::accept(stream, &config.transport, &config.cluster) {
        Ok(client) => client,
        Err(error) => {
            warn!(from = addr, %error, "client handshake failed; closing");
            return;
        }
    };
    debug!(from = addr, "client connected");
    let writer_stream = match client.try_clone_stream() {
        Ok(s) => s,
        Err(error) => {
            warn!(from = addr, %error, "client socket setup failed; closing");
            return;
        }
    };
    let (queue, answers) = channel::bounded(config.inflight_max);
    let for_writer = Arc::clone(shared);
    let writer_addr = addr.to_owned();
    let writer = match std::thread::Builder::new()
        .name("kommander-client-write".to_owned())
        .spawn(move || write_answers(&for_writer, writer_stream, &answers, &writer_addr))
    {
        Ok(writer) => writer,
        Err(error) => {
            warn!(from = addr, %error, "cannot spawn a client writer thread; closing");
            return;
        }
    };
    read_requests(shared, &mut client, &queue, addr);
    drop(queue);
    let _ = writer.join();
    debug!(from = addr, "client disconnected");
}

fn read_requests(
    shared: &PortShared,
    client: &mut AcceptedClient,
    queue: &Sender<Pending>,
    addr: &str,
) {
    let stop = || shared.stopping();
    loop {
        let (id, request) = match client.next_request(&stop) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            // Idle clients are normal: they reconnect (or ping) when they have work.
            Err(error @ ClientError::Frame(FrameError::Idle(_))) => {
                debug!(from = addr, %error, "closing an idle client connection");
                return;
            }
            Err(error) => {
                warn!(from = addr, %error, "closing client connection");
                return;
            }
        };
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let pending = match request {
            Ok(request) => dispatch(shared, id, request),
            Err(error) => {
                // The frame itself was intact (checksum): answer and keep the connection.
                debug!(from = addr, %error, "malformed client request");
                Pending::Ready(
                    id,
                    ClientResponse::Failed {
                        reason: format!("malformed request: {error}"),
                    },
                )
            }
        };
        if queue.send(pending).is_err() {
            // The writer failed (the client went away): stop reading.
            return;
        }
    }
}

fn dispatch(shared: &PortShared, id: u64, request: ClientRequest) -> Pending {
    match request {
        // The node never checkpoints the system partition: a client's entry there would stay
        // in its log (and be replayed at every restart) for good.
        ClientRequest::Replicate { partition, .. }
        | ClientRequest::FencedReplicate { partition, .. }
            if partition == SYSTEM_PARTITION =>
        {
            Pending::Ready(
                id,
                ClientResponse::Failed {
                    reason: format!(
                        "{partition} is the system partition: clients cannot write to it \
                         (nothing was written)"
                    ),
                },
            )
        }
        ClientRequest::FencedReplicate { generation: 0, .. } => Pending::Ready(
            id,
            ClientResponse::Failed {
                reason: "a fenced write names the generation it was routed with, 1 or more \
                         (nothing was written)"
                    .to_owned(),
            },
        ),
        ClientRequest::Replicate {
            partition,
            log_type,
            payload,
        } => replicate(shared, id, partition, &log_type, payload, 0),
        ClientRequest::FencedReplicate {
            partition,
            generation,
            log_type,
            payload,
        } => replicate(shared, id, partition, &log_type, payload, generation),
        // The committed map: what a change's answer refers to, and what the shards fence
        // writes with (the map in force follows once every shard opened and closed what it
        // changes).
        ClientRequest::Partitions => {
            let map = shared.raft.committed_partition_map();
            Pending::Ready(
                id,
                ClientResponse::Partitions {
                    status: Status::Success,
                    version: map.version,
                    partitions: PartitionInfo::of_map(&map),
                },
            )
        }
        ClientRequest::Route { key } => {
            // One map answers both: the partition and its generation.
            let map = shared.raft.committed_partition_map();
            let routed = map.partition_for_key(&key).ok();
            Pending::Ready(
                id,
                ClientResponse::Routed {
                    status: if routed.is_some() {
                        Status::Success
                    } else {
                        Status::Errored
                    },
                    partition: routed,
                    generation: routed.and_then(|p| map.get(p)).map_or(0, |r| r.generation),
                    version: map.version,
                },
            )
        }
        ClientRequest::CreatePartition { partition, spec } => {
            // An automatic id is resolved here, so that the answer can name it.
            let Some(partition) = partition.or_else(|| shared.raft.next_available_partition_id())
            else {
                return Pending::Ready(
                    id,
                    ClientResponse::PartitionChanged {
                        status: Status::Errored,
                        partition: None,
                        generation: 0,
                        version: 0,
                        reason: "no partition id is left (nothing changed)".to_owned(),
                    },
                );
            };
            let timeout = Some(shared.config.request_timeout);
            let created = shared.raft.create_partition(partition, spec, timeout);
            change_partitions(shared, id, partition, created)
        }
        ClientRequest::RemovePartition { partition } => {
            let timeout = Some(shared.config.request_timeout);
            let removed = shared.raft.remove_partition(partition, timeout);
            change_partitions(shared, id, partition, removed)
        }
        ClientRequest::SplitPartition { source, plan } => {
            let timeout = Some(shared.config.request_timeout);
            let split = shared.raft.split_partition(source, plan, timeout);
            change_partitions(shared, id, source, split)
        }
        ClientRequest::MergePartitions { survivor, source } => {
            let timeout = Some(shared.config.request_timeout);
            let merged = shared.raft.merge_partitions(survivor, source, timeout);
            change_partitions(shared, id, survivor, merged)
        }
        ClientRequest::Leader { partition } => {
            // The library's rule for a partition this node does not host (`PartitionMoved`),
            // as `Replicate` and `Status` answer it.
            let (status, leader) = match shared.raft.watch_partition(partition) {
                Ok(state) => (
                    Status::Success,
                    state.borrow().leadership.and_then(|l| l.leader),
                ),
                Err(error) => (error.status(), None),
            };
            let endpoint = leader
                .and_then(|leader| shared.transport.client_endpoint(leader))
                .unwrap_or_default();
            Pending::Ready(
                id,
                ClientResponse::Leader {
                    status,
                    leader,
                    endpoint,
                },
            )
        }
        ClientRequest::Ping => Pending::Ready(id, ClientResponse::Pong),
        ClientRequest::Members => Pending::Ready(id, members(&shared.raft)),
        ClientRequest::RemoveMember { node } => {
            let removed = shared
                .raft
                .remove_member(node, Some(shared.config.request_timeout));
            let answer: Answer = Box::pin(async move {
                match removed.await {
                    Ok(version) => ClientResponse::Removed {
                        status: Status::Success,
                        version,
                        reason: String::new(),
                    },
                    Err(error) => removal_refused_or_unknown(&error),
                }
            });
            start(shared, id, answer, timed_out_unknown(shared, "removal"))
        }
        ClientRequest::Status { partition } => {
            let status = shared.raft.partition_status(partition);
            let answer: Answer = Box::pin(async move {
                match status.await {
                    Ok(s) => ClientResponse::Status {
                        status: Status::Success,
                        state: ReplicaState {
                            leader: s.leader,
                            term: s.term.get(),
                            commit: s.commit.get(),
                            last_index: s.last_index.get(),
                            applied: s.applied.get(),
                        },
                    },
                    Err(error) => ClientResponse::Status {
                        status: error.status(),
                        state: ReplicaState::default(),
                    },
                }
            });
            let timed_out = ClientResponse::Status {
                status: Status::ProposalTimeout,
                state: ReplicaState::default(),
            };
            start(shared, id, answer, timed_out)
        }
    }
}

/// Replicates one entry on `partition`, fenced on `generation` unless it is 0.
fn replicate(
    shared: &PortShared,
    id: u64,
    partition: PartitionId,
    log_type: &str,
    payload: bytes::Bytes,
    generation: u64,
) -> Pending {
    let options = ReplicateOptions {
        expected_generation: generation,
        ..ReplicateOptions::default()
    };
    let written = shared
        .raft
        .replicate_logs(partition, log_type, payload, options);
    let answer: Answer = Box::pin(async move {
        match written.await {
            Ok(written) => ClientResponse::Replicated {
                status: Status::Success,
                index: Some(written.log_index.get()),
                ticket: written.ticket.packed(),
            },
            Err(error) => refused_or_unknown(&error),
        }
    });
    start(shared, id, answer, timed_out_unknown(shared, "entry"))
}

/// Awaits a partition change naming `partition`: its generation and the version of the map
/// this node's partition 0 committed then (it holds the change), a refusal, or `Unknown`.
fn change_partitions(
    shared: &PortShared,
    id: u64,
    partition: PartitionId,
    change: impl Future<Output = Result<u64, PartitionLifecycleError>> + Send + 'static,
) -> Pending {
    let raft = shared.raft.clone();
    let answer: Answer = Box::pin(async move {
        match change.await {
            Ok(generation) => ClientResponse::PartitionChanged {
                status: Status::Success,
                partition: Some(partition),
                generation,
                version: raft.committed_partition_map().version,
                reason: String::new(),
            },
            Err(error) => change_refused_or_unknown(partition, &error),
        }
    });
    start(shared, id, answer, timed_out_unknown(shared, "change"))
}

/// The answer to a partition change that failed with `error`: `Unknown` when it may still
/// take effect, else the refusal's status (nothing changed).
fn change_refused_or_unknown(
    partition: PartitionId,
    error: &PartitionLifecycleError,
) -> ClientResponse {
    match error {
        PartitionLifecycleError::Timeout { .. }
        | PartitionLifecycleError::LeadershipLost
        | PartitionLifecycleError::Fatal(_) => ClientResponse::Unknown {
            reason: format!("{error}; the change may or may not take effect"),
        },
        refused => ClientResponse::PartitionChanged {
            status: refused.status(),
            partition: Some(partition),
            generation: 0,
            version: 0,
            reason: match refused {
                PartitionLifecycleError::NotLeader { leader, endpoint } => {
                    let leader = match (leader, endpoint) {
                        (Some(leader), Some(endpoint)) => {
                            format!("node {} (peer endpoint {endpoint})", leader.get())
                        }
                        (Some(leader), None) => format!("node {}", leader.get()),
                        (None, _) => "not known yet".to_owned(),
                    };
                    format!(
                        "this node does not lead partition 0, which carries out map changes; \
                         its leader: {leader} (nothing changed)"
                    )
                }
                // The rule in words (the status says it was refused).
                PartitionLifecycleError::Refused(rule) => format!("{rule} (nothing changed)"),
                refused => format!("{refused} (nothing changed)"),
            },
        },
    }
}

/// The answer to a request whose outcome (of `what`: the entry, the removal, the change) is
/// still not known `--client-request-timeout-ms` after it arrived.
fn timed_out_unknown(shared: &PortShared, what: &str) -> ClientResponse {
    ClientResponse::Unknown {
        reason: format!(
            "no outcome within --client-request-timeout-ms ({} ms); the {what} may still commit",
            shared.config.request_timeout.as_millis()
        ),
    }
}

/// The roster as `raft` knows it (`RestoreInProgress` before its partition 0 is open).
fn members(raft: &Raft) -> ClientResponse {
    match raft.membership() {
        Some(roster) => ClientResponse::Members {
            status: Status::Success,
            version: roster.version(),
            members: roster.members().to_vec(),
        },
        None => ClientResponse::Members {
            status: Status::RestoreInProgress,
            version: 0,
            members: Vec::new(),
        },
    }
}

/// The answer to a `RemoveMember` that failed with `error`: `Unknown` when the change may
/// still commit, else the refusal's status (nothing changed).
fn removal_refused_or_unknown(error: &MembershipError) -> ClientResponse {
    let status = match error {
        MembershipError::Timeout { .. }
        | MembershipError::LeadershipLost
        | MembershipError::Fatal(_) => {
            return ClientResponse::Unknown {
                reason: format!("{error}; the removal may or may not commit"),
            };
        }
        MembershipError::NotLeader { .. } => Status::NodeIsNotLeader,
        MembershipError::Stale { .. } => Status::StaleMembership,
        MembershipError::ConcurrentChange => Status::ConcurrentMembershipChange,
        MembershipError::InsufficientVoters => Status::InsufficientVoters,
        MembershipError::QueueFull => Status::ProposalQueueFull,
        MembershipError::RestoreInProgress => Status::RestoreInProgress,
        // Invalid, MemberNotFound and what later versions add: refused as asked.
        _ => Status::Errored,
    };
    ClientResponse::Removed {
        status,
        version: 0,
        reason: format!("{error} (nothing changed)"),
    }
}

/// The answer to a `Replicate` that failed with `error`: `Unknown` when the entry may be
/// committed, `Failed` for an invalid entry (the same request fails again), else the
/// retryable refusal's status (nothing was written either way but the first).
fn refused_or_unknown(error: &ReplicateError) -> ClientResponse {
    match error {
        error if outcome_unknown(error) => ClientResponse::Unknown {
            reason: format!("{error}; the entry may or may not be committed"),
        },
        ReplicateError::Invalid(invalid) => ClientResponse::Failed {
            reason: format!("invalid entry: {invalid} (nothing was written)"),
        },
        refused => ClientResponse::Replicated {
            status: refused.status(),
            index: None,
            ticket: 0,
        },
    }
}

/// Polls `answer` once, for an answer known at once (a refusal). The request already reached
/// its shard when the `Raft` method was called, on this thread, so the requests of a
/// connection reach their shards in the order they arrived (consecutive indexes for pipelined
/// writes to one partition). The writer polls it again (with a real waker) when it is this
/// answer's turn; the `Raft` futures need no runtime. `timed_out` is the answer if the
/// outcome is still unknown `request_timeout` after now.
fn start(shared: &PortShared, id: u64, mut answer: Answer, timed_out: ClientResponse) -> Pending {
    match answer
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(response) => Pending::Ready(id, response),
        Poll::Pending => Pending::Waiting {
            id,
            answer,
            deadline: tokio::time::Instant::now() + shared.config.request_timeout,
            timed_out,
        },
    }
}

/// Writes the answers in request order; buffered, flushed whenever it would wait.
fn write_answers(shared: &PortShared, stream: TcpStream, answers: &Receiver<Pending>, addr: &str) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, stream);
    let result = (|| -> std::io::Result<()> {
        loop {
            let pending = match answers.try_recv() {
                Ok(pending) => pending,
                Err(TryRecvError::Empty) => {
                    out.flush()?;
                    match answers.recv() {
                        Ok(pending) => pending,
                        Err(_) => return out.flush(),
                    }
                }
                Err(TryRecvError::Disconnected) => return out.flush(),
            };
            let (id, response) = match pending {
                Pending::Ready(id, response) => (id, response),
                Pending::Waiting {
                    id,
                    mut answer,
                    deadline,
                    timed_out,
                } => {
                    let ready = answer
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()));
                    let response = match ready {
                        Poll::Ready(response) => response,
                        Poll::Pending => {
                            // About to wait: what is buffered goes out first.
                            out.flush()?;
                            // tokio's timeout (freed when the answer comes), not
                            // `ReplicateOptions::timeout`, whose node timer slot stays taken
                            // until the deadline.
                            // (Created inside `block_on`: a tokio timer needs the runtime.)
                            let answer =
                                async move { tokio::time::timeout_at(deadline, answer).await };
                            shared.runtime.block_on(answer).unwrap_or(timed_out)
                        }
                    };
                    (id, response)
                }
            };
            write_response(&mut out, id, &response)?;
        }
    })();
    if let Err(error) = result {
        debug!(from = addr, %error, "client write failed; closing");
        let _ = out.get_ref().shutdown(Shutdown::Both);
    }
}
