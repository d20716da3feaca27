//! Shards: one OS thread per shard, each running an event loop over its partitions' replicas
//! with its own WAL (`<data_dir>/shard-<n>`), started and fed by the [`ShardHost`].
//!
//! # Placement
//!
//! Partition `p` lives on shard [`shard_of`]`(p, shards) = p % shards`: stable for a given
//! shard count, the system partition 0 always on shard 0, consecutive partitions spread
//! round-robin. Changing the shard count of an existing data directory moves partitions away
//! from the WAL holding their log: the host refuses that (see [`ShardHost::start`]).
//!
//! # The loop
//!
//! See [`worker`] for one loop turn, the WalScheduler (one WAL submission per turn), restore
//! and what a tick costs. This module holds the types the node talks to shards with: requests
//! ([`Request`]) answered on runtime-agnostic oneshot channels with a [`Refusal`] when they
//! are not carried out, the application callbacks ([`StateMachine`]), the events
//! ([`RaftEvent`], [`EventSink`]) and the leadership table ([`LeaderTable`]). The shard layer
//! imports nothing from the node or the transport implementations: its settings come as a
//! [`ShardConfig`], the network as the [`Transport`] and [`Inbound`] traits defined here.

mod activity;
pub mod codec;
pub mod config;
pub mod event;
pub mod host;
pub mod leaders;
#[cfg(test)]
pub(crate) mod log_capture;
pub mod membership;
mod outbox;
pub mod partitions;
mod read_scheduler;
mod router;
mod snapshot;
pub mod state_transfer;
#[cfg(feature = "sim")]
mod stepped;
pub mod transport;
pub(crate) mod waker;
mod wal_records;
mod wal_scheduler;
pub mod worker;

#[cfg(feature = "sim-bugs")]
pub use config::NodeBug;
pub use config::{MembershipConfig, ShardConfig, SnapshotConfig};
#[cfg(feature = "sim")]
pub use event::NoEvents;
pub use event::{EventSink, RaftEvent, ReplicationErrorReason};
pub use host::{HostStartError, ShardCounters, ShardHost};
pub use leaders::{EndpointLookup, LeaderTable, Leadership, LogProgress, PartitionState};
pub use state_transfer::{
    RangeTransfer, SnapshotExport, SnapshotImport, SnapshotPoint, StateTransfer,
};
#[cfg(feature = "sim")]
pub use stepped::ShardStepper;
pub use transport::{Inbound, Transport};

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::core::{
    Configuration, EntryKind, LogIndex, NodeId, PartitionId, Role, Status, Term, Ticket,
};

/// A hash map whose iteration order depends only on the keys inserted (and their order), not
/// on a per-process random seed: a loop turn visits partitions and peers in the same order in
/// every run, so the simulator can replay a shard step by step. Its hasher is foldhash's fast
/// one with a fixed seed: the keys are partition ids, node ids and tickets, and SipHash was
/// 8 % of a shard's CPU with 4096 active partitions.
pub(crate) type StableHashMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The system partition: it holds the roster (and, in the node, the partition map), and lives
/// on shard 0.
pub const SYSTEM_PARTITION: PartitionId = PartitionId(0);

/// The shard hosting `partition` among `shards` shards: `partition % shards`.
///
/// # Panics
///
/// Never for `shards > 0` (the runtime validates the shard count).
#[must_use]
pub fn shard_of(partition: PartitionId, shards: usize) -> usize {
    assert!(shards > 0, "at least one shard");
    partition.0 as usize % shards
}

/// The answer channel of a request: a `tokio::sync::oneshot` sender. Receiving works from any
/// executor (or `blocking_recv` outside one); the shard never blocks sending.
pub type Reply<T> = oneshot::Sender<Result<T, Refusal>>;

/// Why a shard did not carry out a request: the `Err` of every [`Reply`] and of queueing a
/// request. The node turns it into its public errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This replica does not lead the partition; `leader` is the leader it knew when it
    /// refused (`None`: none known).
    NotLeader {
        /// The leader this replica knew at the moment of refusal.
        leader: Option<NodeId>,
    },
    /// Any other refusal of the replica (`ActiveProposal`, `ProposalNotFound`, an invalid
    /// request: `Errored`, ...).
    Replica(Status),
    /// The shard's request queue, or the replica's window of uncommitted entries or pending
    /// reads, is full: retry later.
    QueueFull,
    /// The partition is being restored from the WAL.
    RestoreInProgress,
    /// The partition is not open on this node, or this node's committed partition map
    /// refused the write (a removed range, or another generation than the one it was routed
    /// with: [`Request::Fenced`]). Nothing was written.
    NotHosted,
    /// The shard failed (its WAL is poisoned, or a panic on its thread): it refuses every
    /// request until the node restarts.
    ShardFailed {
        /// The shard.
        shard: usize,
        /// What failed: the WAL error or the panic message.
        reason: Arc<str>,
    },
    /// The shard stopped in an orderly way (the node shut down).
    ShutDown,
}

impl Refusal {
    /// A refusal of `replica`'s core: `NodeIsNotLeader` names the leader the replica knows,
    /// `ProposalQueueFull` (its window is full) is [`Refusal::QueueFull`].
    pub(crate) fn of_replica(replica: &crate::core::Replica, status: Status) -> Self {
        match status {
            Status::NodeIsNotLeader => Self::NotLeader {
                leader: replica.leader(),
            },
            Status::ProposalQueueFull => Self::QueueFull,
            other => Self::Replica(other),
        }
    }
}

/// One application entry of a proposal: its type tag (Kommander's `logType`) and payload,
/// encoded once, on the proposing thread, into the envelope the log holds
/// ([`codec::encode_envelope`]); the shard thread stores it as it is, without a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposedEntry {
    envelope: Bytes,
    /// The log type's length before encoding (the envelope holds at most `u16::MAX` bytes of
    /// it): the shard refuses a type longer than `log_type_bytes_max` by this.
    log_type_len: usize,
}

impl ProposedEntry {
    /// The entry of type `log_type` (at most `log_type_bytes_max` bytes; longer, the shard
    /// refuses the proposal) holding `payload`.
    #[must_use]
    pub fn new(log_type: &str, payload: &[u8]) -> Self {
        Self {
            envelope: codec::encode_envelope(log_type, payload),
            log_type_len: log_type.len(),
        }
    }

    /// The entry's log type as the envelope holds it.
    pub(crate) fn log_type(&self) -> &[u8] {
        codec::envelope_log_type(&self.envelope).unwrap_or_default()
    }
}

/// The entries of one proposal: one is held inline, so a single write allocates nothing but
/// its envelope (the vector a proposal of one entry allocated was freed on the shard's thread,
/// a slow path of the allocator on both threads: 2–3 % of `kommander bench`'s CPU, issue 15).
pub type ProposedEntries = smallvec::SmallVec<[ProposedEntry; 1]>;

/// How an accepted operation ended (Kommander's `RaftReplicationResult` without the
/// partition): `status` is `Success` once a quorum holds it, `ReplicationFailed` when
/// leadership was lost first (indeterminate: it may still commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationResult {
    /// `Success` or `ReplicationFailed`.
    pub status: Status,
    /// The operation's ticket.
    pub ticket: Ticket,
    /// The last log index of the operation.
    pub index: LogIndex,
}

/// A partition's state as seen by its replica on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionStatus {
    /// This replica's role.
    pub role: Role,
    /// The leader this replica knows, if any.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: Term,
    /// The commit index.
    pub commit: LogIndex,
    /// The last log index.
    pub last_index: LogIndex,
    /// The application's applied index (delivered and acknowledged).
    pub applied: LogIndex,
    /// The compaction floor of the log in memory.
    pub floor: LogIndex,
    /// The WAL's compaction floor: below `floor` while a compaction waits for the
    /// application's durable index ([`StateMachine::durable_index`]).
    pub wal_floor: LogIndex,
}

/// A partition's voters and learners as its replica on this node knows them
/// (`Raft::partition_configuration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionConfiguration {
    /// The configuration in force: the latest in the replica's log, committed or not.
    pub current: Configuration,
    /// The latest committed one, as far as the replica knows.
    pub committed: Configuration,
}

/// How far a follower trails its leader, as the leader sees it (`Raft::follower_lag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerLag {
    /// The follower's highest index known to match the leader's log.
    pub match_index: LogIndex,
    /// The leader's last index.
    pub leader_last_index: LogIndex,
    /// The snapshot being streamed to the follower, when it is below the leader's compaction
    /// floor and catching up by one (its entries behind stay as they were until it is
    /// installed).
    pub snapshot: Option<SnapshotProgress>,
}

/// A snapshot being streamed to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// The snapshot's last index: the follower's log continues after it.
    pub index: LogIndex,
    /// Bytes of the snapshot sent so far (its size is known once the last chunk is read).
    pub bytes_sent: u64,
}

impl FollowerLag {
    /// Entries the follower is behind.
    #[must_use]
    pub fn entries_behind(&self) -> u64 {
        self.leader_last_index.0.saturating_sub(self.match_index.0)
    }
}

/// The result of opening a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The shard hosting it.
    pub shard: usize,
    /// Whether the shard's WAL held a log for it (a restore is running; its end is signalled
    /// by [`RaftEvent::RestoreFinished`]).
    pub restoring: bool,
}

/// A request to one partition, answered on its [`Reply`]. Refused requests get a [`Refusal`]:
/// `RestoreInProgress` while the partition restores, `NotHosted` for a partition not open on
/// this node (and for a write the partition map fences off), `ShardFailed` after a WAL
/// failure, `ShutDown` once the shard stopped, and the replica's own refusals (`NotLeader`,
/// `QueueFull`, `Replica(ActiveProposal)`, ...).
#[non_exhaustive]
#[derive(Debug)]
pub enum Request {
    /// Propose entries sharing one ticket. Answered when their outcome is known.
    Propose {
        /// The entries (at least one, at most `proposal_entries_max`).
        entries: ProposedEntries,
        /// Deliver on commit (`true`) or hold until a Commit/Rollback for `ticket`.
        auto_commit: bool,
        /// The proposal's ticket (an HLC timestamp).
        ticket: Ticket,
        /// The answer.
        reply: Reply<ReplicationResult>,
    },
    /// Commit a held two-phase proposal. Answered when the Commit marker's outcome is known.
    Commit {
        /// The proposal's ticket.
        ticket: Ticket,
        /// The answer.
        reply: Reply<ReplicationResult>,
    },
    /// Roll back a held two-phase proposal (its entries are never delivered).
    Rollback {
        /// The proposal's ticket.
        ticket: Ticket,
        /// The answer.
        reply: Reply<ReplicationResult>,
    },
    /// `request`, carried out only while this node's committed partition map lets a write
    /// routed with `expected_generation` through to the partition (decision 0006's generation
    /// fence, `shard/partitions/fence.rs`): the partition's range is not removed and has that
    /// generation, whatever its state (`Splitting` and `Draining` included). Judged on the
    /// shard when the request is carried out; otherwise refused `NotHosted` and nothing is
    /// written. A fenced `ReadIndex` is judged again when it is answered, once this replica
    /// applied the read index (what a follower needs: `partitions/fence.rs`). The handle fences a proposal whose caller gave a generation (Kommander's
    /// `expectedGeneration`); an unfenced [`Request::Propose`] is refused only by a removed
    /// range.
    Fenced {
        /// The generation of the partition's range the caller routed with.
        expected_generation: NonZeroU64,
        /// The request carried out when the fence lets it through.
        request: Box<Request>,
    },
    /// Propose a checkpoint (the compaction floor once committed and applied).
    Checkpoint {
        /// The checkpoint's ticket.
        ticket: Ticket,
        /// The answer.
        reply: Reply<ReplicationResult>,
    },
    /// Change the roster (sent to partition 0, carried out by its leader; see
    /// [`membership`]). Answered when the change committed on partition 0 (the other
    /// partitions follow it on their own), or at once with `Success` when it changes nothing
    /// (a retry of a committed change; `index` is then the commit index). Refused with
    /// `NotLeader`, `Replica(StaleMembership)` when `expected_version` is not the roster's,
    /// `Replica(ConcurrentMembershipChange)` while a change is in flight on partition 0 or a
    /// partition of this node has not committed the roster's configuration,
    /// `Replica(InsufficientVoters)` when no voter would remain, `Replica(Errored)` for an
    /// invalid change (promoting a node that is not a learner, node id 0, an invalid endpoint,
    /// too many members).
    ChangeMembership {
        /// The change.
        change: membership::RosterChange,
        /// The roster version the change was computed against (`None`: any).
        expected_version: Option<u64>,
        /// The change's ticket.
        ticket: Ticket,
        /// The answer.
        reply: Reply<ReplicationResult>,
    },
    /// Change the partition map (sent to partition 0, carried out by its established leader's
    /// shard; see [`partitions::MapOperation`]): the whole next map is proposed as one
    /// `_RaftSystem` entry, and the answer comes once that entry committed and is the map
    /// partition 0's shard applied, or at once when the operation is already true of the
    /// committed map (a retry). One change at a time. Refused with `NotLeader` (the leader
    /// this replica knows), `RestoreInProgress`, `QueueFull`; the operation's own refusals and
    /// the retryable ones are [`partitions::MapChangeAnswer`]s.
    ChangeMap {
        /// The operation.
        operation: partitions::MapOperation,
        /// The ticket of the map entry.
        ticket: Ticket,
        /// The answer.
        reply: Reply<partitions::MapChangeAnswer>,
    },
    /// The partition's configurations on this replica: the one in force and the committed one.
    Configuration {
        /// The answer.
        reply: Reply<PartitionConfiguration>,
    },
    /// The partition's state on this node.
    Status {
        /// The answer.
        reply: Reply<PartitionStatus>,
    },
    /// A linearizable read point (ReadIndex): the leader's commit index, confirmed by a
    /// same-term quorum heartbeat round, answered once this node's application has applied it
    /// (a read of the local state is then linearizable). A follower asks its leader for the
    /// index. Pending reads (waiting for their index or for the application) are bounded by
    /// `read_index_pending_max` per partition (`QueueFull`); a read whose caller is gone holds
    /// no room. Reads still waiting for their index when the replica's leader or term changes
    /// are refused with `NotLeader` (a forwarded one would never be answered).
    ReadIndex {
        /// `true`: only this node, leading with its leadership published (the no-op of its
        /// term committed), may confirm the read; otherwise `NotLeader` at once (Kommander's
        /// `ConfirmLeadership`). `false`: any replica, a follower asking its leader
        /// (`ConfirmLocalApplication`).
        leader_only: bool,
        /// The answer: the read index.
        reply: Reply<LogIndex>,
    },
    /// Hand leadership to `target` (answered when the transfer started).
    TransferLeadership {
        /// The voter to hand over to.
        target: NodeId,
        /// The answer.
        reply: Reply<()>,
    },
    /// Step down (the most up-to-date voter is asked to campaign).
    StepDown {
        /// The answer.
        reply: Reply<()>,
    },
    /// Test hook: the leader stops sending heartbeats and appends.
    SuspendHeartbeats {
        /// The answer.
        reply: Reply<()>,
    },
    /// Test hook: resume heartbeats.
    ResumeHeartbeats {
        /// The answer.
        reply: Reply<()>,
    },
    /// How far `node` trails this leader.
    FollowerLag {
        /// The follower.
        node: NodeId,
        /// The answer.
        reply: Reply<FollowerLag>,
    },
}

impl Request {
    /// Answers the request with `refusal` without executing it.
    pub fn refuse(self, refusal: Refusal) {
        match self {
            Self::Propose { reply, .. }
            | Self::Commit { reply, .. }
            | Self::Rollback { reply, .. }
            | Self::Checkpoint { reply, .. } => {
                let _ = reply.send(Err(refusal));
            }
            Self::Fenced { request, .. } => request.refuse(refusal),
            Self::ChangeMembership { reply, .. } => {
                let _ = reply.send(Err(refusal));
            }
            Self::ChangeMap { reply, .. } => {
                let _ = reply.send(Err(refusal));
            }
            Self::Configuration { reply } => {
                let _ = reply.send(Err(refusal));
            }
            Self::Status { reply } => {
                let _ = reply.send(Err(refusal));
            }
            Self::ReadIndex { reply, .. } => {
                let _ = reply.send(Err(refusal));
            }
            Self::TransferLeadership { reply, .. }
            | Self::StepDown { reply }
            | Self::SuspendHeartbeats { reply }
            | Self::ResumeHeartbeats { reply } => {
                let _ = reply.send(Err(refusal));
            }
            Self::FollowerLag { reply, .. } => {
                let _ = reply.send(Err(refusal));
            }
        }
    }
}

/// A committed entry handed to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its log index.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
    /// The ticket of the proposal that created it.
    pub ticket: Ticket,
    /// `Normal` or `Checkpoint` (markers and no-ops are never delivered).
    pub kind: EntryKind,
    log_type: Bytes,
    /// The application payload (a slice of the WAL mapping or of the received message).
    pub payload: Bytes,
}

impl LogEntry {
    /// The application's type tag.
    #[must_use]
    pub fn log_type(&self) -> &str {
        // Validated as UTF-8 when decoded.
        std::str::from_utf8(&self.log_type).unwrap_or("")
    }

    pub(crate) fn decode(entry: &crate::core::Entry) -> Result<Self, codec::CodecError> {
        let (log_type, payload) = codec::decode_envelope(&entry.payload)?;
        Ok(Self {
            index: entry.index,
            term: entry.term,
            ticket: entry.ticket,
            kind: entry.kind,
            log_type,
            payload,
        })
    }
}

/// The application: called on the shard thread, in log order per partition, exactly once per
/// entry and node incarnation. Implementations must not block (hand heavy work to a channel):
/// every partition of the shard waits while a callback runs. A callback that panics fails the
/// shard ([`RaftEvent::ShardFailed`] with the panic message): its partitions refuse every
/// request until the node restarts.
///
/// # Several consumers
///
/// Kommander's `OnReplicationReceived` and `OnLogRestored` take several handlers; a node here
/// has one state machine, the one owner of the applied state (decision 0005 §9). Several
/// consumers are composed in one type, which says what a list of handlers leaves open: the
/// order in which they see an entry, how their verdicts make one, and what is durable.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::sync::mpsc::SyncSender;
///
/// use kommander_raft::{LogEntry, LogIndex, PartitionId, StateMachine};
///
/// /// The applied state: the last payload per log type.
/// #[derive(Default)]
/// struct Store(Mutex<HashMap<(PartitionId, String), Vec<u8>>>);
///
/// impl Store {
///     fn apply(&self, partition: PartitionId, entry: &LogEntry) -> bool {
///         let key = (partition, entry.log_type().to_owned());
///         let mut state = self.0.lock().expect("store");
///         state.insert(key, entry.payload.to_vec());
///         true
///     }
/// }
///
/// /// The node's state machine: the store applies each entry, then an observer on another
/// /// thread hears of it (bounded, never blocking: a full channel drops the notice).
/// struct App {
///     store: Store,
///     applied: SyncSender<(PartitionId, LogIndex)>,
/// }
///
/// impl StateMachine for App {
///     fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
///         let applied = self.store.apply(partition, entry);
///         let _ = self.applied.try_send((partition, entry.index));
///         // The store's verdict is the entry's; a `false` is one `ReplicationError`.
///         applied
///     }
///
///     fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
///         self.on_replication_received(partition, entry)
///     }
///
///     // `durable_index` left at its default: the store is durable at every checkpoint it
///     // applied. A composition reports an index only when every part keeps one: the least.
/// }
///
/// let (applied, _notices) = std::sync::mpsc::sync_channel(1024);
/// let _app = App { store: Store::default(), applied };
/// ```
pub trait StateMachine: Send + Sync + 'static {
    /// A committed entry arrived through replication. `false` reports a replication error
    /// ([`RaftEvent::ReplicationError`], carrying the entry); the delivery cursor advances
    /// anyway (as in Kommander).
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool;

    /// A committed entry restored from the WAL at start, before any live delivery of the
    /// partition. Same verdict rules as [`StateMachine::on_replication_received`].
    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool;

    /// The index through which the application's state of `partition` is durable on its own
    /// (it survives a crash of the process and of the machine), if the application keeps
    /// track (Kommander's durability provider). A restore then hands
    /// [`StateMachine::on_log_restored`] only the committed entries above it, and the WAL is
    /// never compacted past it: a checkpoint's compaction waits until the application has
    /// caught up. It may lag the truth (more is replayed), never lead it: entries at or below
    /// it are not handed over again (it may lie beyond the log, after a snapshot import). Called on the shard thread when a partition restores and,
    /// while a compaction waits for it, once per tick.
    ///
    /// The default, `None`, keeps the checkpoint rule: the application's state is durable at
    /// every checkpoint it has applied, and restore replays everything above the WAL's floor.
    fn durable_index(&self, partition: PartitionId) -> Option<LogIndex> {
        let _ = partition;
        None
    }
}

/// What the application gives the shards: its state machine, and its snapshots when it
/// supports them.
#[derive(Clone)]
pub struct Application {
    /// Called on the shard threads in log order.
    pub state_machine: Arc<dyn StateMachine>,
    /// Exports and imports snapshots (`None`: a follower below its leader's compaction floor
    /// stays behind, reported as `ReplicationError(SnapshotUnsupported)`).
    pub transfer: Option<Arc<dyn StateTransfer>>,
    /// Where partition 0's shard publishes the committed partition map (a node registers
    /// [`partitions::MapTransfer`] over the same table to ship it in partition 0's snapshots).
    pub maps: Arc<partitions::MapTable>,
}

impl Application {
    /// `state_machine` without snapshot support.
    #[must_use]
    pub fn new(state_machine: Arc<dyn StateMachine>) -> Self {
        Self {
            state_machine,
            transfer: None,
            maps: Arc::default(),
        }
    }

    /// With snapshots exported and imported by `transfer`.
    #[must_use]
    pub fn with_transfer(mut self, transfer: Arc<dyn StateTransfer>) -> Self {
        self.transfer = Some(transfer);
        self
    }

    /// With the committed partition map published in `maps`.
    #[must_use]
    pub fn with_maps(mut self, maps: Arc<partitions::MapTable>) -> Self {
        self.maps = maps;
        self
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("transfer", &self.transfer.is_some())
            .finish_non_exhaustive()
    }
}

/// The outcome key of an operation: (entry kind code, last index).
pub(crate) fn outcome_key(kind: EntryKind, index: LogIndex) -> (u8, u64) {
    (kind.code(), index.0)
}

#[cfg(test)]
mod tests {
    use super::ProposedEntry;

    #[test]
    fn a_log_type_longer_than_an_envelope_holds_keeps_its_length_for_the_shard_to_refuse() {
        let entry = ProposedEntry::new(&"t".repeat(70_000), b"payload");
        assert_eq!(entry.log_type().len(), usize::from(u16::MAX));
        assert_eq!(entry.log_type_len, 70_000);
        let entry = ProposedEntry::new("kv", b"payload");
        assert_eq!((entry.log_type(), entry.log_type_len), (&b"kv"[..], 2));
    }
}
