//! The public handle of a node: [`Raft`], Kommander's `IRaft` in Rust.
//!
//! ```text
//! Raft::start(config, transport, app)   shard threads + WALs; nothing open yet
//! raft.subscribe()                      events (subscribe before join to see restores)
//! raft.join_cluster(timeout)            opens P0, waits for the first partition map
//! raft.replicate_logs(p, type, data, ..) → ReplicationResult { status, ticket, log_index }
//! raft.leave_cluster()                  stops this node (everything appended is durable)
//! ```
//!
//! # Async without a runtime
//!
//! Every `async` method awaits `tokio::sync::oneshot` answers from the shard threads or from
//! the node's timer thread, so it works on any executor (tokio, async-std, a hand-rolled
//! `block_on`) and never blocks the caller's thread. The library needs no tokio runtime:
//! timeouts are served by a small timer thread owned by the node (`timers_max` pending at
//! once). To cancel an operation, drop its future (for example with `tokio::time::timeout`);
//! a proposal already handed to its shard may still commit.
//!
//! # What is not here
//!
//! Membership changes (`GetMembership`, `LocalRole`, `OnMembershipChanged`, seed joins) and
//! elastic partitions (create, remove, split, merge, state-machine transfer) have their own
//! issue; every partition is replicated on every node of the static configuration.

mod entry;
mod hooks;
mod timer;

pub use entry::{HandshakeError, HandshakeRequest};
pub use hooks::TestHooks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{broadcast, oneshot};

use crate::core::{LogIndex, NodeId, PartitionId, Role, Status, Ticket};
use crate::node::config::ConfigError;
use crate::node::config::NodeConfig;
use crate::node::discovery::{RaftNode, StaticDiscovery};
use crate::node::events::{EventHub, LeaderView, RaftEvent};
use crate::node::hlc::{HlcTimestamp, HybridLogicalClock};
use crate::node::partition_map::{NoRouteError, PartitionMap};
use crate::node::system::{Coordinator, SYSTEM_LOG_TYPE, SystemApp, SystemState};
use crate::shard::{
    HostStartError, Inbound, PartitionStatus, ProposedEntry, Refusal, Reply, Request, RuntimeStats,
    ShardHost, StateMachine, Transport,
};
use timer::Timer;

/// The outcome of a replication, commit or rollback (Kommander's `RaftReplicationResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationResult {
    /// `Success`, or why not (see the calling method's `# Errors`).
    pub status: Status,
    /// The proposal's ticket: pass it to [`Raft::commit_logs`] / [`Raft::rollback_logs`].
    pub ticket: HlcTimestamp,
    /// The last log index of the operation (`None` when it was refused before getting one).
    pub log_index: Option<LogIndex>,
}

impl ReplicationResult {
    /// Whether `status` is `Success`.
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.status == Status::Success
    }

    fn refused(status: Status, ticket: HlcTimestamp) -> Self {
        Self {
            status,
            ticket,
            log_index: None,
        }
    }
}

/// Options of [`Raft::replicate_logs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicateOptions {
    /// Deliver the entries once committed (`true`, the default), or hold them until
    /// [`Raft::commit_logs`] / [`Raft::rollback_logs`] with the returned ticket.
    pub auto_commit: bool,
    /// When non-zero, the write is refused with `PartitionMoved` unless the partition's
    /// generation in this node's map equals it.
    pub expected_generation: u64,
    /// How long to wait for the outcome (`None`: until known). Running out answers
    /// `ProposalTimeout`; the proposal may still commit.
    pub timeout: Option<Duration>,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        Self {
            auto_commit: true,
            expected_generation: 0,
            timeout: None,
        }
    }
}

/// Why a node could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The shards could not start (shard count changed, a WAL that does not open).
    #[error(transparent)]
    Shards(#[from] HostStartError),
    /// A node thread could not be spawned.
    #[error("starting the node: {0}")]
    Io(#[from] std::io::Error),
}

/// Why [`Raft::join_cluster`] failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// No partition map was applied within the caller's timeout or the `join_timeout_ms`
    /// ceiling. The node keeps trying in the background; `is_initialized` turns true later.
    #[error("the cluster did not initialize within {waited:?} (P0 leader: {leader:?})")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
        /// The P0 leader this node knew when it gave up.
        leader: Option<NodeId>,
    },
    /// The system partition could not be opened.
    #[error("opening the system partition failed: {0}")]
    Refused(Status),
    /// The node left the cluster.
    #[error("the node left the cluster")]
    Left,
}

struct Inner {
    config: Arc<NodeConfig>,
    runtime: ShardHost,
    transport: Arc<dyn Transport>,
    hlc: Arc<HybridLogicalClock>,
    discovery: StaticDiscovery,
    nodes: RwLock<Vec<RaftNode>>,
    hub: Arc<EventHub>,
    system: Arc<SystemState>,
    coordinator: Coordinator,
    timer: Timer,
    inbound: Arc<dyn Inbound>,
    joined: AtomicBool,
    left: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.coordinator.stop();
        self.runtime.shutdown();
        self.timer.stop();
    }
}

/// A node of a kommander-raft cluster: the application's handle (Kommander's `IRaft`).
///
/// Cheap to clone (an `Arc`), `Send + Sync`; the node stops at [`Raft::leave_cluster`] or
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Raft {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Raft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raft")
            .field("node", &self.inner.config.node_id)
            .field("joined", &self.joined())
            .field("initialized", &self.is_initialized())
            .finish_non_exhaustive()
    }
}

impl Raft {
    // ----- lifecycle -----

    /// Validates `config`, opens one WAL per shard (recovering it) and starts the shard
    /// threads, the system coordinator and the timer. No partition is open yet: subscribe to
    /// events ([`Raft::subscribe`]), register [`Raft::inbound`] with the network, then call
    /// [`Raft::join_cluster`].
    ///
    /// `transport` carries this node's outgoing messages. `app` receives committed entries
    /// (replication received, log restored) on the shard threads, in log order per partition.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] naming the invalid field; [`StartError::Shards`] with the
    /// errors of [`ShardHost::start`]; [`StartError::Io`].
    pub fn start(
        config: NodeConfig,
        transport: Arc<dyn Transport>,
        app: Arc<dyn StateMachine>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let config = Arc::new(config);
        let node = u32::try_from(config.node_id).map_err(|_| {
            StartError::Config(ConfigError::InvalidField {
                field: "node_id",
                reason: "must fit in 32 bits (it stamps HLC timestamps)".to_owned(),
            })
        })?;
        let hlc = Arc::new(HybridLogicalClock::new(node, config.hlc_drift_ms_max));
        let discovery = StaticDiscovery::from_config(&config);
        let system = Arc::new(SystemState::new());
        let wake = Arc::clone(&system);
        let hub = Arc::new(EventHub::new(
            config.events_buffered_max,
            discovery.clone(),
            Box::new(move || wake.wake()),
        ));
        let app = Arc::new(SystemApp {
            system: Arc::clone(&system),
            app,
        });
        let runtime = ShardHost::start(
            config.shard_config(),
            Arc::clone(&transport),
            app,
            Arc::clone(&hub) as _,
        )?;
        let timer = Timer::start(config.timers_max)?;
        let coordinator = Coordinator::start(
            Arc::clone(&config),
            runtime.clone(),
            Arc::clone(&system),
            Arc::clone(&hub),
            Arc::clone(&hlc),
        )?;
        let inbound = runtime.inbound();
        let nodes = RwLock::new(discovery.peers().to_vec());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                runtime,
                transport,
                hlc,
                discovery,
                nodes,
                hub,
                system,
                coordinator,
                timer,
                inbound,
                joined: AtomicBool::new(false),
                left: AtomicBool::new(false),
            }),
        })
    }

    /// The receiving side to register with the network: peers' message batches go here
    /// (the runtime records each peer's last message). It does not keep the node running.
    #[must_use]
    pub fn inbound(&self) -> Arc<dyn Inbound> {
        Arc::clone(&self.inner.inbound)
    }

    /// Joins the cluster of the configuration's peers (static discovery): opens (or restores)
    /// the system partition and waits until the first partition map is applied
    /// ([`Raft::is_initialized`]). Calling it again only waits.
    ///
    /// Waits at most `timeout` and never longer than `join_timeout_ms` (60 s by default).
    /// Dropping the future cancels the wait, not the join.
    ///
    /// # Errors
    ///
    /// [`JoinError::Timeout`] (the node keeps joining in the background);
    /// [`JoinError::Refused`] when the system partition cannot be opened (a full shard queue,
    /// a failed shard); [`JoinError::Left`] after [`Raft::leave_cluster`].
    pub async fn join_cluster(&self, timeout: Option<Duration>) -> Result<(), JoinError> {
        let inner = &self.inner;
        if inner.left.load(Ordering::Acquire) {
            return Err(JoinError::Left);
        }
        let ceiling = Duration::from_millis(inner.config.join_timeout_ms);
        let limit = timeout.map_or(ceiling, |t| t.min(ceiling));
        let started = Instant::now();
        if !inner.joined.load(Ordering::Acquire) {
            let answer = inner
                .runtime
                .open_partition(
                    crate::node::system::SYSTEM_PARTITION,
                    inner.discovery.voters(),
                    Vec::new(),
                )
                .map_err(|refusal| JoinError::Refused(refusal_status(&refusal)))?;
            match inner.timer.limit(Some(limit), answer).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err(refusal))) => return Err(JoinError::Refused(refusal_status(&refusal))),
                Ok(Err(_)) => return Err(JoinError::Refused(Status::Errored)),
                Err(Status::ProposalTimeout) => return Err(self.join_timeout(started)),
                Err(status) => return Err(JoinError::Refused(status)),
            }
            inner.joined.store(true, Ordering::Release);
        }
        let mut initialized = inner.system.initialized();
        let remaining = limit.saturating_sub(started.elapsed());
        match inner
            .timer
            .limit(Some(remaining), initialized.wait_for(|ready| *ready))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(JoinError::Left),
            Err(Status::ProposalTimeout) => Err(self.join_timeout(started)),
            Err(status) => Err(JoinError::Refused(status)),
        }
    }

    fn join_timeout(&self, started: Instant) -> JoinError {
        JoinError::Timeout {
            waited: started.elapsed(),
            leader: self
                .inner
                .hub
                .leader_view(crate::node::system::SYSTEM_PARTITION)
                .and_then(|v| v.leader),
        }
    }

    /// Leaves: stops this node's partitions (every entry appended is made durable first) and
    /// its background threads. Later calls answer `Errored`/[`JoinError::Left`]. Removing the
    /// node from the cluster's roster is a membership change, which is not implemented yet:
    /// the other nodes keep it as a (silent) voter.
    pub async fn leave_cluster(&self) {
        let inner = &self.inner;
        if inner.left.swap(true, Ordering::AcqRel) {
            return;
        }
        inner.joined.store(false, Ordering::Release);
        // Stopping joins the coordinator and shard threads: do it off the caller's thread.
        let this = self.clone();
        let (done, finished) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("kommander-leave".to_owned())
            .spawn(move || {
                this.inner.coordinator.stop();
                this.inner.runtime.shutdown();
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => {
                let _ = finished.await;
            }
            Err(_) => {
                inner.coordinator.stop();
                inner.runtime.shutdown();
            }
        }
    }

    /// Re-reads the node list from discovery and returns it. With static discovery the list
    /// is the configuration's peers, so this returns the same nodes every time.
    pub fn update_nodes(&self) -> Vec<RaftNode> {
        let nodes = self.inner.discovery.peers().to_vec();
        *self
            .inner
            .nodes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = nodes.clone();
        nodes
    }

    // ----- cluster state -----

    /// Whether [`Raft::join_cluster`] opened the system partition (and the node has not left).
    #[must_use]
    pub fn joined(&self) -> bool {
        self.inner.joined.load(Ordering::Acquire)
    }

    /// Whether a committed partition map has been applied on this node (its user partitions
    /// are open).
    #[must_use]
    pub fn is_initialized(&self) -> bool {
        self.inner.system.is_initialized()
    }

    /// The other nodes of the cluster (Kommander's `GetNodes`).
    #[must_use]
    pub fn nodes(&self) -> Vec<RaftNode> {
        self.inner
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// This node's endpoint.
    #[must_use]
    pub fn local_endpoint(&self) -> &str {
        &self.inner.config.endpoint
    }

    /// This node's id.
    #[must_use]
    pub fn local_node_id(&self) -> NodeId {
        NodeId(self.inner.config.node_id)
    }

    /// This node's name.
    #[must_use]
    pub fn local_node_name(&self) -> &str {
        &self.inner.config.node_name
    }

    /// When this node last received a message from the peer at `endpoint`, as an HLC
    /// timestamp of this node (physical milliseconds of the arrival, logical 0;
    /// [`HlcTimestamp::ZERO`]: never, or not a peer).
    #[must_use]
    pub fn last_node_activity(&self, endpoint: &str) -> HlcTimestamp {
        let Some(peer) = self.inner.discovery.peer_at(endpoint) else {
            return HlcTimestamp::ZERO;
        };
        self.inner
            .runtime
            .last_heard(peer.node_id)
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(HlcTimestamp::ZERO, |since| HlcTimestamp {
                physical_ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
                logical: 0,
                node: self.inner.hlc.node(),
            })
    }

    /// The endpoints of the peers heard from within `within`.
    #[must_use]
    pub fn active_nodes(&self, within: Duration) -> Vec<String> {
        let now = self.inner.hlc.now();
        let window = i128::try_from(within.as_millis()).unwrap_or(i128::MAX);
        self.inner
            .discovery
            .peers()
            .iter()
            .filter(|p| {
                let last = self.last_node_activity(&p.endpoint);
                last != HlcTimestamp::ZERO && now.millis_since(last) <= window
            })
            .map(|p| p.endpoint.clone())
            .collect()
    }

    /// How many entries the follower at `endpoint` trails this node on `partition`, when this
    /// node leads it (`None`: not the leader, or no progress known for that follower).
    ///
    /// # Errors
    ///
    /// `RestoreInProgress`, `PartitionMoved` (not open here), `ProposalQueueFull` (shard
    /// queue full), `Errored` (node stopped).
    pub async fn follower_lag(
        &self,
        partition: PartitionId,
        endpoint: &str,
    ) -> Result<Option<u64>, Status> {
        let Some(node) = self.inner.discovery.peer_at(endpoint).map(|p| p.node_id) else {
            return Ok(None);
        };
        match self
            .ask(partition, |reply| Request::FollowerLag { node, reply })
            .await
        {
            Ok(lag) => Ok(Some(lag.entries_behind())),
            Err(Status::NodeIsNotLeader | Status::Errored) => Ok(None),
            Err(status) => Err(status),
        }
    }

    // ----- leadership -----

    /// Whether this node leads `partition`, from its last published state (no round trip).
    #[must_use]
    pub fn am_i_leader_quick(&self, partition: PartitionId) -> bool {
        self.leader_view(partition)
            .is_some_and(|v| v.role == Role::Leader)
    }

    /// The leadership of `partition` last published on this node.
    #[must_use]
    pub fn leader_view(&self, partition: PartitionId) -> Option<LeaderView> {
        self.inner.hub.leader_view(partition)
    }

    /// Whether this node leads `partition`, asked of its replica.
    ///
    /// # Errors
    ///
    /// As [`Raft::partition_status`].
    pub async fn am_i_leader(&self, partition: PartitionId) -> Result<bool, Status> {
        Ok(self.partition_status(partition).await?.role == Role::Leader)
    }

    /// The state of `partition`'s replica on this node (role, leader, term, commit, applied).
    ///
    /// # Errors
    ///
    /// `RestoreInProgress`, `PartitionMoved` (not open here), `ProposalQueueFull`, `Errored`.
    pub async fn partition_status(
        &self,
        partition: PartitionId,
    ) -> Result<PartitionStatus, Status> {
        self.ask(partition, |reply| Request::Status { reply }).await
    }

    /// Waits until a leader of `partition` is known and returns it.
    ///
    /// # Errors
    ///
    /// `ProposalTimeout` when none is known within `timeout`.
    pub async fn wait_for_leader(
        &self,
        partition: PartitionId,
        timeout: Duration,
    ) -> Result<RaftNode, Status> {
        self.wait_for_leader_stable(partition, Duration::ZERO, timeout)
            .await
    }

    /// Waits until the same leader of `partition` has been known for at least
    /// `min_stable_for` and returns it.
    ///
    /// # Errors
    ///
    /// `ProposalTimeout` when that does not happen within `timeout`.
    pub async fn wait_for_leader_stable(
        &self,
        partition: PartitionId,
        min_stable_for: Duration,
        timeout: Duration,
    ) -> Result<RaftNode, Status> {
        let deadline = Instant::now() + timeout;
        let poll = self.inner.config.tick_interval();
        loop {
            if let Some(view) = self.leader_view(partition)
                && let Some(leader) = view.leader
                && view.since.elapsed() >= min_stable_for
            {
                return Ok(RaftNode {
                    node_id: leader,
                    endpoint: self
                        .inner
                        .discovery
                        .endpoint_of(leader)
                        .unwrap_or("")
                        .to_owned(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Status::ProposalTimeout);
            }
            self.inner.timer.sleep(poll).await;
        }
    }

    // ----- replication -----

    /// Replicates one entry of type `log_type` on `partition` (this node must lead it).
    /// Returns once the outcome is known: `Success` when a quorum holds it (and, with
    /// `auto_commit`, it is delivered to the application on every node in log order).
    ///
    /// # Errors
    ///
    /// In `status`: `NodeIsNotLeader`; `ProposalQueueFull` (shard queue, uncommitted entries
    /// or bytes, timers full: retry with backoff); `RestoreInProgress`; `PartitionMoved` (not
    /// open here, or `expected_generation` differs); `ReplicationFailed` (leadership lost
    /// first: indeterminate); `ProposalTimeout` (`timeout` ran out: indeterminate);
    /// `Errored` (invalid entry: empty batch, reserved or oversize `log_type`, oversize
    /// payload; or the node stopped).
    pub async fn replicate_logs(
        &self,
        partition: PartitionId,
        log_type: &str,
        payload: impl Into<Bytes>,
        options: ReplicateOptions,
    ) -> ReplicationResult {
        self.replicate_batch(partition, log_type, vec![payload.into()], options)
            .await
    }

    /// Replicates several entries as one proposal: one ticket, contiguous indexes; the result
    /// carries the last index.
    ///
    /// # Errors
    ///
    /// As [`Raft::replicate_logs`].
    pub async fn replicate_batch(
        &self,
        partition: PartitionId,
        log_type: &str,
        payloads: Vec<Bytes>,
        options: ReplicateOptions,
    ) -> ReplicationResult {
        let ticket = self.inner.hlc.now();
        if log_type == SYSTEM_LOG_TYPE {
            return ReplicationResult::refused(Status::Errored, ticket);
        }
        if options.expected_generation != 0
            && self.partition_generation(partition) != options.expected_generation
        {
            return ReplicationResult::refused(Status::PartitionMoved, ticket);
        }
        let entries = payloads
            .into_iter()
            .map(|payload| ProposedEntry {
                log_type: log_type.to_owned(),
                payload,
            })
            .collect();
        let auto_commit = options.auto_commit;
        self.operation(partition, ticket, options.timeout, |ticket, reply| {
            Request::Propose {
                entries,
                auto_commit,
                ticket,
                reply,
            }
        })
        .await
    }

    /// Replicates a checkpoint on `partition`: once committed and applied, the log below it
    /// may be compacted (the application must hold that state durably itself).
    ///
    /// # Errors
    ///
    /// In `status`: `ActiveProposal` while a two-phase proposal is unresolved; otherwise as
    /// [`Raft::replicate_logs`].
    pub async fn replicate_checkpoint(&self, partition: PartitionId) -> ReplicationResult {
        let ticket = self.inner.hlc.now();
        self.operation(partition, ticket, None, |ticket, reply| {
            Request::Checkpoint { ticket, reply }
        })
        .await
    }

    /// Commits the held entries of the two-phase proposal `ticket` (proposed with
    /// `auto_commit: false`): they are delivered once the commit marker is committed.
    ///
    /// # Errors
    ///
    /// In `status`: `ProposalNotFound` (unknown ticket, or already resolved and delivered);
    /// `Errored` (the ticket was rolled back); `NodeIsNotLeader`; otherwise as
    /// [`Raft::replicate_logs`].
    pub async fn commit_logs(
        &self,
        partition: PartitionId,
        ticket: HlcTimestamp,
    ) -> ReplicationResult {
        self.operation(partition, ticket, None, |ticket, reply| Request::Commit {
            ticket,
            reply,
        })
        .await
    }

    /// Rolls back the two-phase proposal `ticket`: its entries are never delivered.
    ///
    /// # Errors
    ///
    /// As [`Raft::commit_logs`] (`Errored` when it was committed).
    pub async fn rollback_logs(
        &self,
        partition: PartitionId,
        ticket: HlcTimestamp,
    ) -> ReplicationResult {
        self.operation(partition, ticket, None, |ticket, reply| Request::Rollback {
            ticket,
            reply,
        })
        .await
    }

    async fn operation(
        &self,
        partition: PartitionId,
        ticket: HlcTimestamp,
        timeout: Option<Duration>,
        make: impl FnOnce(Ticket, Reply<crate::shard::ReplicationResult>) -> Request,
    ) -> ReplicationResult {
        let (reply, answer) = oneshot::channel();
        if let Err(refusal) = self
            .inner
            .runtime
            .send(partition, make(Ticket(ticket.packed()), reply))
        {
            return ReplicationResult::refused(refusal_status(&refusal), ticket);
        }
        let outcome = match self.inner.timer.limit(timeout, answer).await {
            Ok(Ok(outcome)) => outcome.map_err(|refusal| refusal_status(&refusal)),
            Ok(Err(_)) => Err(Status::Errored),
            Err(status) => Err(status),
        };
        match outcome {
            Ok(result) => ReplicationResult {
                status: result.status,
                ticket,
                log_index: Some(result.index),
            },
            Err(status) => ReplicationResult::refused(status, ticket),
        }
    }

    async fn ask<T>(
        &self,
        partition: PartitionId,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, Status> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .runtime
            .send(partition, make(reply))
            .map_err(|refusal| refusal_status(&refusal))?;
        match answer.await {
            Ok(answer) => answer.map_err(|refusal| refusal_status(&refusal)),
            Err(_) => Err(Status::Errored),
        }
    }

    // ----- events -----

    /// A bounded subscription to this node's [`RaftEvent`]s (restore started/finished,
    /// replication errors, leader changes, partition map changes). Subscribe before
    /// [`Raft::join_cluster`] to see the restores.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<RaftEvent> {
        self.inner.hub.subscribe()
    }

    // ----- partition map and routing -----

    /// The partition map in force on this node (version 0 before initialization).
    #[must_use]
    pub fn partition_map(&self) -> Arc<PartitionMap> {
        self.inner.system.map()
    }

    /// The partition owning `key` (Kommander's `GetPartitionKey`: the prefix before the last
    /// `/` decides).
    ///
    /// # Errors
    ///
    /// [`NoRouteError`] before initialization or when no active range holds the hash.
    pub fn partition_for_key(&self, key: &str) -> Result<PartitionId, NoRouteError> {
        let map = self.partition_map();
        map.partition_for_key(key).map(to_partition_id)
    }

    /// The partition owning keys with prefix `prefix` (Kommander's `GetPrefixPartitionKey`).
    ///
    /// # Errors
    ///
    /// As [`Raft::partition_for_key`].
    pub fn partition_for_prefix(&self, prefix: &str) -> Result<PartitionId, NoRouteError> {
        let map = self.partition_map();
        map.partition_for_prefix(prefix).map(to_partition_id)
    }

    /// The generation of `partition` in this node's map (0 when absent).
    #[must_use]
    pub fn partition_generation(&self, partition: PartitionId) -> u64 {
        self.partition_map()
            .get(u64::from(partition.0))
            .map_or(0, |r| r.generation)
    }

    // ----- components -----

    /// The configuration the node runs with.
    #[must_use]
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The node's hybrid logical clock (tickets come from it).
    #[must_use]
    pub fn hlc(&self) -> &HybridLogicalClock {
        &self.inner.hlc
    }

    /// The node's discovery (static, from the configuration).
    #[must_use]
    pub fn discovery(&self) -> &StaticDiscovery {
        &self.inner.discovery
    }

    /// The transport this node sends with (Kommander's `Communication`).
    #[must_use]
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// Counters of the shards (WAL submissions, persisted readies, dropped messages): the
    /// WAL and its schedulers live on the shard threads and are observed through these.
    #[must_use]
    pub fn runtime_stats(&self) -> RuntimeStats {
        self.inner.runtime.stats()
    }

    // ----- test hooks -----

    /// Leadership controls for tests and fault injection (Kommander's
    /// `ForceLeaderForTestingAsync`, `StepDownAsync`, `TransferLeadershipAsync`,
    /// `SuspendHeartbeatsAsync`, `ResumeHeartbeatsAsync`). Not for application traffic.
    #[must_use]
    pub fn testing(&self) -> TestHooks<'_> {
        TestHooks { raft: self }
    }
}

/// The [`Status`] a shard's [`Refusal`] is reported as.
pub(crate) fn refusal_status(refusal: &Refusal) -> Status {
    match refusal {
        Refusal::NotLeader { .. } => Status::NodeIsNotLeader,
        Refusal::Replica(status) => *status,
        Refusal::QueueFull => Status::ProposalQueueFull,
        Refusal::RestoreInProgress => Status::RestoreInProgress,
        Refusal::NotHosted => Status::PartitionMoved,
        Refusal::ShardFailed { .. } | Refusal::ShutDown => Status::Errored,
    }
}

fn to_partition_id(id: u64) -> PartitionId {
    // Map ids come from `PartitionMap::initial(u32)`.
    PartitionId(u32::try_from(id).unwrap_or(u32::MAX))
}
