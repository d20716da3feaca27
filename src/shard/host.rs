//! The shard host: starts a node's shard threads (one WAL each), routes requests and inbound
//! messages to them (through its `Router`) and stops them. The node's `Raft` handle is built
//! on top of it.
//!
//! ```text
//! ShardHost::start(config, transport, app, events) → one thread + one WAL per shard
//! host.open_partition(p, voters, learners)         → create or restore p's replica on its shard
//! host.send(p, Request::Propose { .. })             → bounded queue; answer on a oneshot
//! host.deliver(messages)                            → transport entry point (Inbound)
//! host.shutdown()                                   → stop, make everything appended durable
//! ```
//!
//! `ShardHost::start_stepped` (feature `sim`, `stepped.rs`) builds the same host without
//! threads: the caller turns each shard's loop itself. Both build their shards from one
//! `HostParts`.
//!
//! Nothing here blocks the caller: queues are bounded (`shard_commands_max`,
//! `shard_inbound_batches_max`); a full request queue answers `QueueFull`, a full inbound
//! queue drops and counts the batch. Answers come on `tokio::sync::oneshot` channels, which
//! work from any executor (or `blocking_recv` outside one).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use crossbeam::channel;
use kommander_wal::Wal;
use tokio::sync::oneshot;

use super::activity::NodeActivity;
use super::config::ShardConfig;
use super::membership::{CallWait, MembershipCall, MembershipTable, Roster};
use super::router::{Router, ShardQueues};
use super::snapshot::pump::Pump;
use super::transport::{Inbound, Transport};
use super::waker::{Input, Waker};
use super::worker::{ShardInput, ShardParams, ShardStats, Worker};
use super::{Application, EventSink, LeaderTable, Opened, Refusal, Request, shard_of};
#[cfg(feature = "sim")]
use super::{Leadership, LogProgress};
use crate::core::{Message, NodeId, PartitionId};
use crate::metrics::ShardMetrics;

/// Why the shard host could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HostStartError {
    /// The data directory was written with another shard count: partitions would not find
    /// their logs.
    #[error(
        "data directory {dir} holds {found} shard directories but `shards` resolves to \
         {configured}; start with the shard count it was created with"
    )]
    ShardCountChanged {
        /// The data directory.
        dir: PathBuf,
        /// Shard directories found.
        found: usize,
        /// Shards configured.
        configured: usize,
    },
    /// A shard's WAL could not be opened (or recovered).
    #[error("shard {shard}: opening its WAL failed: {source}")]
    Wal {
        /// The shard.
        shard: usize,
        /// The WAL error.
        source: kommander_wal::Error,
    },
    /// A shard thread could not be spawned, or the data directory could not be read.
    #[error("starting the shards: {0}")]
    Io(#[from] std::io::Error),
}

struct Inner {
    config: Arc<ShardConfig>,
    membership: Arc<MembershipTable>,
    /// Read by the tests' `leadership` (the node reads its own handle to the table).
    #[cfg(feature = "sim")]
    leaders: Arc<LeaderTable>,
    router: Router,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn stop(&self) {
        let threads = std::mem::take(
            &mut *self
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        stop_all(&self.stop, self.router.shards(), threads);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node's running shards and the routes to them. Cheap to clone (an `Arc`); the shards
/// stop at [`ShardHost::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct ShardHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ShardHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardHost")
            .field("node", &self.inner.config.node_id)
            .field("shards", &self.inner.config.shard_count)
            .finish_non_exhaustive()
    }
}

/// Counters summed over the shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// Inbound batches dropped on a full shard queue.
    pub inbound_batches_dropped: u64,
    /// Inbound messages dropped (unknown or restoring partition, failed shard, wrong node).
    pub inbound_messages_dropped: u64,
    /// Inbound messages refused by a replica.
    pub inbound_messages_refused: u64,
    /// WAL submissions.
    pub wal_submissions: u64,
    /// Readies that appended WAL records.
    pub readies_persisted: u64,
    /// Loop turns.
    pub turns: u64,
    /// Replica visits of the tick turns: the leaders (and the held or just woken replicas) at
    /// every tick, an awake follower when its election timer runs out, a quiesced one never.
    pub replica_ticks: u64,
    /// Replicas quiesced at the shards' last ticks (decision 0007).
    pub quiesced_replicas: u64,
    /// Partitions the tick turns visited (replicas ticked, partitions the membership work
    /// looked at): grows with the leading and changing partitions, not the hosted ones.
    pub partition_visits: u64,
    /// Tick turns: turns at which the shard's timer was due.
    pub tick_turns: u64,
    /// Ticks an idle shard slept through instead of turning (tickless idle, decision 0007):
    /// the tick turn after the sleep stands for them too.
    pub ticks_skipped: u64,
}

impl ShardHost {
    /// Opens (recovering) one WAL per shard under `data_dir/shard-<n>` and starts the shard
    /// threads. No partition is open yet: see [`ShardHost::open_partition`]. `config` comes
    /// from a validated node configuration (`NodeConfig::validate`).
    ///
    /// `transport` carries this node's outgoing messages; register [`ShardHost::inbound`]
    /// with the network so that peers' messages reach the shards. `app`'s state machine is
    /// called on the shard threads, its snapshot reads and writes on one transfer thread per
    /// shard; `events` receives [`RaftEvent`](super::RaftEvent)s; the shards write
    /// every replica's leadership into `leaders`.
    ///
    /// # Errors
    ///
    /// [`HostStartError::ShardCountChanged`]; [`HostStartError::Wal`] when a shard's WAL
    /// cannot be opened or recovered (already started shards are stopped);
    /// [`HostStartError::Io`].
    ///
    /// # Durability
    ///
    /// Everything the WALs recovered is durable when this returns.
    pub fn start(
        config: ShardConfig,
        transport: Arc<dyn Transport>,
        app: Application,
        events: Arc<dyn EventSink>,
        leaders: Arc<LeaderTable>,
    ) -> Result<Self, HostStartError> {
        let parts = HostParts::new(config, transport, app, events, leaders);
        let shard_count = parts.config.shard_count;
        check_shard_dirs(&parts.config.data_dir, shard_count)?;
        let mut shards = Vec::with_capacity(shard_count);
        let mut threads = Vec::with_capacity(shard_count);
        let mut opened = Vec::with_capacity(shard_count);
        for shard in 0..shard_count {
            let (queues, params) = match parts.shard(shard, true) {
                Ok(built) => built,
                Err(error) => {
                    stop_all(&parts.stop, &shards, threads);
                    return Err(HostStartError::Io(error));
                }
            };
            let dir = parts.config.data_dir.join(format!("shard-{shard}"));
            let wal_config = parts.config.wal.clone();
            let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
            // The WAL (and its io_uring ring) is opened on the thread that drives it.
            let spawned = std::thread::Builder::new()
                .name(format!("kommander-shard-{shard}"))
                .spawn(move || match Wal::open(&dir, wal_config) {
                    Ok(wal) => {
                        let _ = opened_tx.send(Ok(()));
                        Worker::new(params, wal, Instant::now()).run();
                    }
                    Err(error) => {
                        let _ = opened_tx.send(Err(error));
                    }
                });
            let thread = match spawned {
                Ok(thread) => thread,
                Err(error) => {
                    stop_all(&parts.stop, &shards, threads);
                    return Err(HostStartError::Io(error));
                }
            };
            threads.push(thread);
            opened.push(opened_rx);
            shards.push(queues);
        }
        for (shard, opened_rx) in opened.into_iter().enumerate() {
            let error = match opened_rx.recv() {
                Ok(Ok(())) => continue,
                Ok(Err(source)) => HostStartError::Wal { shard, source },
                Err(_) => HostStartError::Io(std::io::Error::other(format!(
                    "shard {shard} exited before opening its WAL"
                ))),
            };
            stop_all(&parts.stop, &shards, threads);
            return Err(error);
        }
        Ok(parts.into_host(shards, threads))
    }

    /// This node's id.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// The configuration the shards run with.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn config(&self) -> &ShardConfig {
        &self.inner.config
    }

    /// The roster (membership) and how far this node's partitions follow it.
    #[must_use]
    pub fn membership(&self) -> &Arc<MembershipTable> {
        &self.inner.membership
    }

    /// The number of shards.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.inner.config.shard_count
    }

    /// The shard hosting `partition` ([`shard_of`]).
    #[must_use]
    pub fn shard_of(&self, partition: PartitionId) -> usize {
        shard_of(partition, self.shard_count())
    }

    /// The metric handles of `partition`'s shard (for the node's write path).
    pub(crate) fn metrics(&self, partition: PartitionId) -> &ShardMetrics {
        &self.inner.router.shards()[self.shard_of(partition)].metrics
    }

    /// Creates `partition`'s replica on its shard, or restores it when the shard's WAL holds
    /// its log (then requests get `RestoreInProgress` until `RestoreFinished` is emitted).
    /// Opening an open partition answers as for the first open. The answer arrives on the
    /// returned channel.
    ///
    /// # Errors
    ///
    /// [`Refusal::QueueFull`] when the shard's request queue is full; [`Refusal::ShutDown`]
    /// after the node stopped. On the channel: `Replica(Errored)` for an invalid membership
    /// (this node in neither list, duplicates), `ShardFailed` for a failed shard, `QueueFull`
    /// beyond `partitions_max`.
    pub fn open_partition(
        &self,
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    ) -> Result<oneshot::Receiver<Result<Opened, Refusal>>, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.inner.router.request(
            partition,
            ShardInput::Open {
                partition,
                voters,
                learners,
                reply,
            },
        )?;
        Ok(answer)
    }

    /// Queues `request` for `partition`'s shard; the answer arrives on the request's reply
    /// channel. Never blocks.
    ///
    /// # Errors
    ///
    /// [`Refusal::QueueFull`] when the shard's request queue (`shard_commands_max`) is full;
    /// [`Refusal::ShutDown`] after the node stopped. The request (and its reply sender) is
    /// dropped.
    pub fn send(&self, partition: PartitionId, request: Request) -> Result<(), Refusal> {
        self.inner
            .router
            .request(partition, ShardInput::Request { partition, request })
    }

    /// Routes messages received from the network to the shards of their partitions. Never
    /// blocks: a batch for a full shard queue is dropped and counted.
    pub fn deliver(&self, messages: Vec<Message>) {
        self.inner.router.deliver(messages);
    }

    /// What this node's replica of `partition` last reported about leadership (no round trip
    /// to the shard; may lag by one loop turn). `None` before the replica reported anything.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn leadership(&self, partition: PartitionId) -> Option<Leadership> {
        self.inner.leaders.get(partition)
    }

    /// How far this node's replica of `partition` has come, as of the end of its shard's last
    /// loop turn (zero before it reported).
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn log_progress(&self, partition: PartitionId) -> LogProgress {
        self.inner.leaders.subscribe(partition).borrow().progress
    }

    /// When a message from `node` last arrived (`None`: never, or not a cluster member).
    #[must_use]
    pub fn last_heard(&self, node: NodeId) -> Option<SystemTime> {
        self.inner.router.activity().last_heard(node)
    }

    /// The inbound side to register with a transport (see `MemoryNetwork::register`). It
    /// holds only the shards' queues: it does not keep the node running.
    #[must_use]
    pub fn inbound(&self) -> Arc<dyn Inbound> {
        Arc::new(self.inner.router.clone())
    }

    /// Counters summed over the shards.
    #[must_use]
    pub fn stats(&self) -> ShardCounters {
        let mut total = ShardCounters::default();
        for shard in self.inner.router.shards() {
            let s = &shard.stats;
            total.inbound_batches_dropped += s.inbound_batches_dropped.load(Ordering::Relaxed);
            total.inbound_messages_dropped += s.inbound_messages_dropped.load(Ordering::Relaxed);
            total.inbound_messages_refused += s.inbound_messages_refused.load(Ordering::Relaxed);
            total.wal_submissions += s.wal_submissions.load(Ordering::Relaxed);
            total.readies_persisted += s.readies_persisted.load(Ordering::Relaxed);
            total.turns += s.turns.load(Ordering::Relaxed);
            total.replica_ticks += s.replica_ticks.load(Ordering::Relaxed);
            total.quiesced_replicas += s.quiesced_replicas.load(Ordering::Relaxed);
            total.partition_visits += s.partition_visits.load(Ordering::Relaxed);
            total.tick_turns += s.tick_turns.load(Ordering::Relaxed);
            total.ticks_skipped += s.ticks_skipped.load(Ordering::Relaxed);
        }
        total
    }

    /// Stops the shards: each finishes its turn, makes everything appended to its WAL durable
    /// and exits; pending requests are answered [`Refusal::ShutDown`] (one queued while its
    /// shard exits is dropped: its receiver sees the sender gone). Later calls do nothing;
    /// later requests get [`Refusal::ShutDown`]. Called on a shard thread (from an
    /// application callback) it does not wait for that shard, which stops after its turn.
    ///
    /// # Durability
    ///
    /// Every record appended before the call is durable when it returns (unless the WAL
    /// failed, which was reported as `ShardFailed`).
    pub fn shutdown(&self) {
        self.inner.stop();
    }
}

impl Inbound for ShardHost {
    fn deliver(&self, messages: Vec<Message>) {
        ShardHost::deliver(self, messages);
    }

    fn call(&self, call: MembershipCall) -> CallWait {
        self.inner.router.call(call)
    }

    fn roster(&self) -> Option<Arc<Roster>> {
        self.inner.router.roster()
    }
}

/// What every shard of one host shares: the production host ([`ShardHost::start`]) and the
/// threadless one (`ShardHost::start_stepped`, feature `sim`) build their shards and their
/// router from it alike.
pub(super) struct HostParts {
    pub(super) config: Arc<ShardConfig>,
    transport: Arc<dyn Transport>,
    app: Application,
    events: Arc<dyn EventSink>,
    leaders: Arc<LeaderTable>,
    membership: Arc<MembershipTable>,
    /// Raised at shutdown: the router refuses requests, the shard threads finish.
    pub(super) stop: Arc<AtomicBool>,
}

impl HostParts {
    pub(super) fn new(
        config: ShardConfig,
        transport: Arc<dyn Transport>,
        app: Application,
        events: Arc<dyn EventSink>,
        leaders: Arc<LeaderTable>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            transport,
            app,
            events,
            leaders,
            membership: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Shard `shard`'s bounded queues with their wake-up: the producer side (for the router)
    /// and what its worker is built from; its snapshot transfers run on a thread of their own
    /// when `threaded` (else where they are submitted: the stepped host).
    ///
    /// # Errors
    ///
    /// The wake-up's eventfd could not be created, or the transfer thread not spawned.
    pub(super) fn shard(
        &self,
        shard: usize,
        threaded: bool,
    ) -> std::io::Result<(ShardQueues, ShardParams)> {
        let (command_tx, command_rx) = channel::bounded(self.config.shard_commands_max);
        let (inbound_tx, inbound_rx) = channel::bounded(self.config.shard_inbound_batches_max);
        let stats = Arc::new(ShardStats::default());
        let metrics = ShardMetrics::new(shard);
        let waker = Arc::new(Waker::new()?);
        let pump = if threaded {
            let snapshot = &self.config.snapshot;
            Pump::spawn(
                shard,
                snapshot.transfers_max + snapshot.sessions_max,
                snapshot.transfer_thread_nice,
                Arc::clone(&waker),
            )?
        } else {
            Pump::inline()
        };
        let params = ShardParams {
            pump,
            transfer: self.app.transfer.clone(),
            waker: Arc::clone(&waker),
            shard,
            config: Arc::clone(&self.config),
            transport: Arc::clone(&self.transport),
            app: Arc::clone(&self.app.state_machine),
            events: Arc::clone(&self.events),
            commands: command_rx,
            inbound: inbound_rx,
            stop: Arc::clone(&self.stop),
            stats: Arc::clone(&stats),
            metrics: metrics.clone(),
            leaders: Arc::clone(&self.leaders),
            membership: Arc::clone(&self.membership),
            maps: Arc::clone(&self.app.maps),
        };
        let queues = ShardQueues {
            commands: command_tx,
            inbound: inbound_tx,
            stats,
            metrics,
            waker,
        };
        Ok((queues, params))
    }

    /// The host routing to `shards` (`threads`: the shard threads to join at the stop).
    pub(super) fn into_host(
        self,
        shards: Vec<ShardQueues>,
        threads: Vec<JoinHandle<()>>,
    ) -> ShardHost {
        let nodes: Vec<NodeId> = self.config.cluster.keys().copied().collect();
        let activity = Arc::new(NodeActivity::new(&nodes));
        let router = Router::new(
            self.config.node_id,
            activity,
            Arc::clone(&self.membership),
            shards,
            Arc::clone(&self.stop),
        );
        ShardHost {
            inner: Arc::new(Inner {
                config: self.config,
                #[cfg(feature = "sim")]
                leaders: self.leaders,
                membership: self.membership,
                router,
                stop: self.stop,
                threads: Mutex::new(threads),
            }),
        }
    }
}

/// Raises the stop flag, wakes every shard and joins their threads, except the calling one:
/// the last clone of the host may be dropped by the application on a shard thread, which
/// exits on its own once it sees the flag.
fn stop_all(stop: &AtomicBool, shards: &[ShardQueues], threads: Vec<JoinHandle<()>>) {
    stop.store(true, Ordering::Release);
    for shard in shards {
        let _ = shard.commands.try_send(ShardInput::Wake);
        shard.waker.wake(Input::Command);
    }
    let current = std::thread::current().id();
    for thread in threads {
        if thread.thread().id() != current {
            let _ = thread.join();
        }
    }
}

/// Refuses a data directory created with another shard count.
fn check_shard_dirs(dir: &std::path::Path, configured: usize) -> Result<(), HostStartError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(HostStartError::Io(error)),
    };
    let mut found = 0;
    for entry in entries {
        let name = entry?.file_name();
        if name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .is_some_and(|n| n.parse::<usize>().is_ok())
        {
            found += 1;
        }
    }
    if found != 0 && found != configured {
        return Err(HostStartError::ShardCountChanged {
            dir: dir.to_path_buf(),
            found,
            configured,
        });
    }
    Ok(())
}
