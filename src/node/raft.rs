//! The public handle of a node: [`Raft`], Kommander's `IRaft` in Rust.
//!
//! ```text
//! Raft::builder(config)                 the configuration
//!     .state_machine(app)               committed entries, on the shard threads, in log order
//!     .transport(transport)             this node's outgoing messages
//!     .start().await?                   shard threads + WALs (recovered off the caller's thread)
//! raft.subscribe()                      events (subscribe before join to see restores)
//! raft.join_cluster(timeout).await?     opens P0, waits for the first partition map
//!   (or join_cluster_with_seeds(seeds, timeout): admitted through a seed, then a voter)
//! raft.replicate_logs(p, type, data, ..).await? → Written { ticket, log_index }
//! raft.confirm_leadership(p, timeout).await?       → the read index, applied here (leader)
//! raft.confirm_local_application(p, timeout).await? → the same on any node, via the leader
//! raft.shutdown().await                 stops this node (everything appended is durable)
//! ```
//!
//! # Async without a runtime
//!
//! Every `async` method returns a `Send + 'static` future that owns what it needs (so it can
//! be spawned without cloning the handle) and awaits `tokio::sync::oneshot` / `watch` answers
//! from the shard threads, so it works on any executor (tokio, async-std, a hand-rolled
//! `block_on`) and never blocks the caller's thread. The library needs no runtime of the
//! caller's: deadlines come from a small timer thread owned by the node, a current-thread tokio
//! runtime that drives only tokio's timer wheel (`timers_max` pending at once; one more is
//! refused with a retryable `QueueFull`). Waits are woken by the
//! change they wait for (the leadership table's `watch`), never by polling. A request is handed
//! to its shard when the method is called (calls made in order on one thread reach the shard
//! in that order); the future awaits the answer. To cancel an operation, drop its future; a
//! proposal already handed to its shard may still commit.
//!
//! # Errors
//!
//! Fallible methods return `Result` with one error type per family ([`crate::node::error`]);
//! each maps to exactly one IRaft [`Status`](crate::core::Status) through `status()`.
//!
//! # What is not here
//!
//! Elastic partitions (create, remove, split, merge) have their own issue: every partition is
//! replicated on every member of the roster.

mod builder;
mod cluster;
mod entry;
mod hooks;
mod join;
mod leader_call;
mod leadership;
mod leave;
mod membership;
mod partitions;
mod read;
mod refusal;
mod replicate;
mod timer;
mod wait;

pub use builder::RaftBuilder;
pub use entry::HandshakeRequest;
pub use hooks::{SteppedDown, TestHooks};
pub use read::ReadOptions;
pub use replicate::{ReplicateOptions, Written};

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, mpsc};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot, watch};

use crate::clock::HybridLogicalClock;
use crate::core::{NodeId, PartitionId};
use crate::node::config::NodeConfig;
use crate::node::discovery::{RaftNode, StaticDiscovery};
use crate::node::error::Fatal;
use crate::node::events::EventHub;
use crate::node::identity::Identity;
use crate::node::system::SystemState;
use crate::shard::{
    EventSink, Inbound, LeaderTable, RaftEvent, Refusal, Reply, Request, ShardCounters, ShardHost,
    Transport,
};
use timer::Timer;

struct Inner {
    config: Arc<NodeConfig>,
    /// The data directory's incarnation and partition 0's first configuration.
    identity: Arc<Identity>,
    shards: ShardHost,
    leaders: Arc<LeaderTable>,
    transport: Arc<dyn Transport>,
    hlc: Arc<HybridLogicalClock>,
    discovery: StaticDiscovery,
    nodes: RwLock<Vec<RaftNode>>,
    hub: Arc<EventHub>,
    system: Arc<SystemState>,
    timer: Arc<Timer>,
    inbound: Arc<dyn Inbound>,
    joined: AtomicBool,
    /// Dropping it (at shutdown, or with the last handle) wakes the node's stop thread, which
    /// stops and joins every other thread of the node: joining never happens on the caller's
    /// thread, which may be an executor's.
    stop_signal: Mutex<Option<mpsc::Sender<()>>>,
    /// Turns `true` once every thread of the node has stopped.
    stopped: watch::Receiver<bool>,
    /// Why the node stopped, when not by [`Raft::shutdown`]: what requests are refused with.
    stop_cause: OnceLock<Fatal>,
    /// The incarnation each peer's last accepted [`Raft::handshake`] presented (custom
    /// transports; at most one entry per configured peer).
    handshakes: Mutex<HashMap<NodeId, u64>>,
}

impl Inner {
    /// Signals the stop thread (the first call does; later calls only observe).
    fn stop(&self) -> watch::Receiver<bool> {
        self.joined.store(false, Ordering::Release);
        drop(
            self.stop_signal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        self.stopped.clone()
    }

    /// Stops the node on a fatal condition: `fatal` is what every later request is refused
    /// with, `event` what the subscribers are told (once: a second call changes nothing).
    fn fail(&self, fatal: Fatal, event: RaftEvent) {
        if self.stop_cause.set(fatal).is_err() {
            return;
        }
        tracing::error!(error = %self.stopped_error(), "the node stops");
        self.hub.emit(event);
        drop(self.stop());
    }

    /// The fatal error of a request refused because the node stopped: its cause, or
    /// [`Fatal::ShutDown`].
    fn stopped_error(&self) -> Fatal {
        self.stop_cause.get().cloned().unwrap_or(Fatal::ShutDown)
    }

    /// Whether [`Inner::stop`] was called.
    fn stopping(&self) -> bool {
        self.stop_signal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

/// A node of a kommander-raft cluster: the application's handle (Kommander's `IRaft`).
///
/// Cheap to clone (an `Arc`), `Send + Sync`; every `async` method returns a `Send + 'static`
/// future. The node stops at [`Raft::shutdown`] or when the last clone is dropped (its threads
/// are then stopped and joined by the node's own stop thread, never by the dropping thread).
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

    /// A builder for a node with `config`: give it the state machine and the transport, then
    /// [`RaftBuilder::start`].
    pub fn builder(config: NodeConfig) -> RaftBuilder {
        RaftBuilder::new(config)
    }

    /// The receiving side to register with the network: peers' message batches go here
    /// (the node records each peer's last message). It does not keep the node running.
    #[must_use]
    pub fn inbound(&self) -> Arc<dyn Inbound> {
        Arc::clone(&self.inner.inbound)
    }

    /// Stops this node: its partitions (every entry appended is made durable first) and its
    /// background threads, which are joined by the node's stop thread (never the caller's).
    /// Later calls answer [`Fatal::ShutDown`]; calling it again
    /// only waits for the stop.
    ///
    /// It does not leave the cluster's roster: the other nodes keep this one as a (silent)
    /// member. [`Raft::leave_cluster`] leaves, then shuts down.
    ///
    /// # Durability
    ///
    /// Every entry appended to this node's WALs before the call is durable when the future
    /// completes (unless a WAL had failed, which was reported as a shard failure).
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut stopped = self.inner.stop();
        async move {
            // An error means the node's state is gone: it stopped.
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    }

    /// Re-reads the other nodes and returns them (Kommander's `UpdateNodes`): the members of
    /// the roster (voters, learners and leaving members, which all receive the log) but this
    /// node, once the roster records endpoints; before that, discovery's list (the
    /// configuration's peers).
    pub fn update_nodes(&self) -> Vec<RaftNode> {
        let local = self.local_node_id();
        let nodes = match self.membership().filter(|r| r.version() > 0) {
            Some(roster) => roster
                .members()
                .iter()
                .filter(|m| m.node != local)
                .map(|m| RaftNode {
                    node_id: m.node,
                    endpoint: m.endpoint.clone(),
                })
                .collect(),
            None => self.inner.discovery.peers().to_vec(),
        };
        *self
            .inner
            .nodes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = nodes.clone();
        nodes
    }

    // ----- events -----

    /// A bounded subscription to this node's [`RaftEvent`]s (restore started/finished,
    /// replication errors, leader changes, partition map changes, shard failures). Subscribe
    /// before [`Raft::join_cluster`] to see the restores. A subscriber more than
    /// `events_buffered_max` events behind misses the oldest (`RecvError::Lagged`).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<RaftEvent> {
        self.inner.hub.subscribe()
    }

    // ----- components -----

    /// The configuration the node runs with.
    #[must_use]
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The node's hybrid logical clock: tickets come from it, and so does the stamp on every
    /// frame this node sends to a peer; the stamps of the frames it receives are merged into
    /// it (one further ahead of its wall clock than `hlc_drift_ms_max` is not), so it is past
    /// every timestamp the node heard of. It follows the system clock, or the one given to
    /// [`RaftBuilder::physical_clock`](crate::RaftBuilder::physical_clock).
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
    pub fn shard_counters(&self) -> ShardCounters {
        self.inner.shards.stats()
    }

    // ----- test hooks -----

    /// Leadership controls for tests and fault injection (Kommander's
    /// `ForceLeaderForTestingAsync`, `StepDownAsync`, `TransferLeadershipAsync`,
    /// `SuspendHeartbeatsAsync`, `ResumeHeartbeatsAsync`). Not for application traffic.
    #[must_use]
    pub fn testing(&self) -> TestHooks {
        TestHooks { raft: self.clone() }
    }

    /// Sends `make(reply)` to `partition`'s shard and awaits the answer.
    fn ask<T: Send + 'static, F: FnOnce(Reply<T>) -> Request>(
        &self,
        partition: PartitionId,
        make: F,
    ) -> impl Future<Output = Result<T, Refusal>> + Send + 'static + use<T, F> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.shards.send(partition, make(reply));
        async move {
            sent?;
            answer.await.unwrap_or(Err(refusal::SHARD_GONE))
        }
    }
}

/// Compile-time proof that the handle is `Send + Sync` and that the future of every public
/// `async` method is `Send + 'static` (spawnable on any multi-threaded executor). The closure
/// is never called: it only has to compile.
const _: fn(&Raft) = |raft| {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn spawnable<T: Future + Send + 'static>(_: T) {}
    send_sync::<Raft>();
    send_sync::<TestHooks>();
    let p = PartitionId(1);
    let ticket = raft.hlc().now();
    let none = None;
    spawnable(Raft::builder(NodeConfig::default()).start());
    spawnable(raft.join_cluster(none));
    spawnable(raft.join_cluster_with_seeds(Vec::new(), none));
    spawnable(raft.leave_cluster(none));
    spawnable(raft.remove_member(crate::core::NodeId(2), none));
    spawnable(raft.shutdown());
    spawnable(raft.replicate_logs(p, "t", "x", ReplicateOptions::default()));
    spawnable(raft.replicate_batch(p, "t", Vec::new(), ReplicateOptions::default()));
    spawnable(raft.replicate_checkpoint(p));
    spawnable(raft.commit_logs(p, ticket));
    spawnable(raft.rollback_logs(p, ticket));
    spawnable(raft.partition_status(p));
    spawnable(raft.follower_lag(p, "x"));
    spawnable(raft.am_i_leader(p, none));
    spawnable(raft.wait_for_leader(p, none));
    spawnable(raft.wait_for_leader_stable(p, Duration::ZERO, none));
    spawnable(raft.confirm_leadership(p, none));
    spawnable(raft.confirm_local_application(p, none));
    let hooks = raft.testing();
    spawnable(hooks.force_leader(p, none));
    spawnable(hooks.step_down(p, none));
    spawnable(hooks.transfer_leadership(p, crate::core::NodeId(2), none));
    spawnable(hooks.suspend_heartbeats(p));
    spawnable(hooks.resume_heartbeats(p));
};
