//! The errors of the [`Raft`](crate::node::Raft) handle: one type per family of operations,
//! and the ONE mapping of every error to its IRaft [`Status`] (the compatibility view, e.g. for
//! wire protocols that carry a status code).
//!
//! | family | methods |
//! |---|---|
//! | [`ReplicateError`] | `replicate_logs`, `replicate_batch`, `replicate_checkpoint`, `commit_logs`, `rollback_logs` |
//! | [`QueryError`] | `partition_status`, `follower_lag`, `am_i_leader`, `wait_for_leader`, `wait_for_leader_stable`, `confirm_leadership`, `confirm_local_application`, the test hooks |
//! | [`JoinError`] | `join_cluster`, `join_cluster_with_seeds` |
//! | [`MembershipError`] | `change_membership`, `leave_cluster`, `remove_member` |
//! | [`PartitionLifecycleError`] | `create_partition`, `remove_partition` |
//! | [`StartError`] | `RaftBuilder::start` |
//! | [`PeerError`] | the transport entry points: `handshake`, `request_vote`, `vote`, `append_logs`, `complete_append_logs` |
//!
//! Every error is either **retryable** (`is_retryable()`: the same call may succeed later, on
//! this node or on the one a [`ReplicateError::NotLeader`] names), **fatal** (a [`Fatal`]
//! nested in the family: this node cannot serve the partition until it restarts), or a
//! rejection of this particular request (invalid input, unknown ticket). `docs/api-errors.md`
//! has the whole table: error → `Status` → retryable.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::HlcTimestamp;
use crate::core::{NodeId, PartitionId, Status};
use crate::node::config::ConfigError;
use crate::shard::HostStartError;
use crate::shard::partitions::MapOperationError;

/// A condition after which this node cannot serve the partition (or anything) until it is
/// restarted. Never retryable here; the cluster may still be served by the other nodes.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// The shard hosting the partition stopped: its WAL failed (poisoned) or an internal
    /// assertion or an application callback panicked on its thread. Restarting the node
    /// recovers from what is durable.
    #[error("shard {shard} failed: {reason}")]
    ShardFailed {
        /// The shard.
        shard: usize,
        /// What failed (the WAL error or the panic message).
        reason: Arc<str>,
    },
    /// The node was shut down ([`Raft::shutdown`](crate::node::Raft::shutdown)).
    #[error("the node is shut down")]
    ShutDown,
    /// The node stopped because another live process holds its node id and keeps it (the
    /// roster names that process's incarnation, or it was running first): a peer refused this
    /// process's handshake with `DuplicateNode`, or that process connected to this one
    /// (decision 0005, "Duplicate node ids"). Kommander exits the process. Restarting with
    /// the same id is refused again while the other process lives; give this node another
    /// id, or stop the other process first.
    #[error("node {node} stopped: another live process holds its id ({reason})")]
    DuplicateNode {
        /// This node's id.
        node: NodeId,
        /// Who refused this process, or who connected, and why.
        reason: Arc<str>,
    },
}

/// Why a write was refused or its outcome is unknown ([`Raft::replicate_logs`],
/// [`Raft::replicate_batch`], [`Raft::replicate_checkpoint`], [`Raft::commit_logs`],
/// [`Raft::rollback_logs`]).
///
/// [`Raft::replicate_logs`]: crate::node::Raft::replicate_logs
/// [`Raft::replicate_batch`]: crate::node::Raft::replicate_batch
/// [`Raft::replicate_checkpoint`]: crate::node::Raft::replicate_checkpoint
/// [`Raft::commit_logs`]: crate::node::Raft::commit_logs
/// [`Raft::rollback_logs`]: crate::node::Raft::rollback_logs
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicateError {
    /// This node does not lead the partition (or is handing leadership over). Retry on the
    /// leader it names, when it knows one.
    #[error("not the leader (leader: {leader:?} at {endpoint:?})")]
    NotLeader {
        /// The leader this node's replica knew when it refused.
        leader: Option<NodeId>,
        /// That leader's endpoint, from discovery.
        endpoint: Option<String>,
    },
    /// A bounded queue is full (the shard's request queue, the partition's uncommitted
    /// entries or bytes, the node's timers). Retry with backoff.
    #[error("a queue is full; retry with backoff")]
    QueueFull,
    /// The caller's timeout ran out first. Indeterminate: the write may still commit.
    #[error("timed out waiting for the outcome of ticket {ticket}")]
    Timeout {
        /// The write's ticket (roll it back if it was a two-phase proposal).
        ticket: HlcTimestamp,
    },
    /// Leadership was lost before the outcome was known. Indeterminate: the write may still
    /// commit under the next leader.
    #[error("leadership was lost before the outcome of ticket {ticket} was known")]
    LeadershipLost {
        /// The write's ticket.
        ticket: HlcTimestamp,
    },
    /// The partition is still restoring from the WAL; retry shortly.
    #[error("the partition is restoring")]
    RestoreInProgress,
    /// The partition is not open on this node, or its generation is not the expected one:
    /// refresh the partition map and retry on the current owner.
    #[error("partition {partition} moved (generation here: {generation})")]
    PartitionMoved {
        /// The partition.
        partition: PartitionId,
        /// Its generation in this node's map (0: not in the map).
        generation: u64,
    },
    /// A checkpoint was asked for while a two-phase proposal is unresolved: commit or roll it
    /// back, then retry.
    #[error("a two-phase proposal is unresolved")]
    ActiveProposal,
    /// Commit or rollback of a ticket the leader does not know (never proposed, already
    /// resolved and delivered, or not in this leader's log). After a leader change this is not
    /// final: a later leader whose log holds the proposal may commit it, and its held entries
    /// then stop the partition's delivery until the ticket is resolved. An application whose
    /// two-phase proposal had an unknown outcome should keep resolving the ticket (now and
    /// then) until a `Success` or a `TicketConflict` settles it.
    #[error("ticket {ticket} is unknown")]
    ProposalNotFound {
        /// The ticket.
        ticket: HlcTimestamp,
    },
    /// Commit of a rolled-back ticket, rollback of a committed one, or either before the
    /// proposal itself committed.
    #[error("ticket {ticket} cannot be resolved that way")]
    TicketConflict {
        /// The ticket.
        ticket: HlcTimestamp,
    },
    /// The write itself is invalid; nothing was proposed.
    #[error("invalid write: {0}")]
    Invalid(#[from] InvalidWrite),
    /// This node cannot serve the partition any more.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// What is wrong with a write ([`ReplicateError::Invalid`]).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWrite {
    /// A batch without entries.
    #[error("a batch needs at least one entry")]
    Empty,
    /// More entries than `proposal_entries_max`.
    #[error("{entries} entries in one proposal, at most {max}")]
    TooManyEntries {
        /// Entries in the batch.
        entries: usize,
        /// `proposal_entries_max`.
        max: usize,
    },
    /// `_RaftSystem` (the system partition's map entries), `_RaftGeneration` and `_RaftImport`
    /// (a split's or merge's entries) are written by the library itself.
    #[error("the log types `_RaftSystem`, `_RaftGeneration` and `_RaftImport` are reserved")]
    ReservedLogType,
    /// A log type longer than `log_type_bytes_max`.
    #[error("a log type of {bytes} bytes, at most {max}")]
    LogTypeTooLong {
        /// Its length.
        bytes: usize,
        /// `log_type_bytes_max`.
        max: usize,
    },
    /// An entry (log type and payload) larger than a WAL record may hold
    /// (`wal_record_bytes_max` less the entry header).
    #[error("an entry of {bytes} bytes, at most {max}")]
    EntryTooLarge {
        /// Log type and payload bytes.
        bytes: usize,
        /// The largest allowed.
        max: usize,
    },
}

/// Why a query of a partition's state, a leadership wait, a linearizable read or a leadership
/// control (test hook) failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The operation needs this node to lead the partition; it does not. Retry on the leader
    /// it names, when it knows one.
    #[error("not the leader (leader: {leader:?} at {endpoint:?})")]
    NotLeader {
        /// The leader this node's replica knew when it refused.
        leader: Option<NodeId>,
        /// That leader's endpoint, from discovery.
        endpoint: Option<String>,
    },
    /// A bounded queue is full (the shard's request queue, the node's timers, the reads
    /// waiting on the partition: `read_index_pending_max`). Retry with backoff.
    #[error("a queue is full; retry with backoff")]
    QueueFull,
    /// What was waited for did not happen within the timeout.
    #[error("not within {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// The partition is still restoring from the WAL; retry shortly.
    #[error("the partition is restoring")]
    RestoreInProgress,
    /// The node has not opened the partition yet: it has not joined the cluster (the system
    /// partition), or no partition map is applied yet ([`Raft::is_initialized`], a user
    /// partition). Kommander's `RaftNodeNotReadyException`. Retry once
    /// [`Raft::join_cluster`] returned.
    ///
    /// [`Raft::is_initialized`]: crate::node::Raft::is_initialized
    /// [`Raft::join_cluster`]: crate::node::Raft::join_cluster
    #[error("partition {partition} is not open yet: the node has not joined or initialized")]
    NotReady {
        /// The partition.
        partition: PartitionId,
    },
    /// The partition is not open on this node: refresh the partition map.
    #[error("partition {partition} is not open on this node")]
    PartitionMoved {
        /// The partition.
        partition: PartitionId,
    },
    /// A leadership transfer to the node that already leads.
    #[error("node {node} already leads")]
    AlreadyLeader {
        /// The target, which is this (leading) node.
        node: NodeId,
    },
    /// A leadership transfer to a node that is not a voter of the partition.
    #[error("node {node} is not a voter of the partition")]
    NotAVoter {
        /// The target.
        node: NodeId,
    },
    /// This node cannot serve the partition any more.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Why a roster change ([`Raft::change_membership`](crate::node::Raft::change_membership),
/// [`Raft::leave_cluster`](crate::node::Raft::leave_cluster),
/// [`Raft::remove_member`](crate::node::Raft::remove_member)) failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// This node does not lead partition 0. Retry on the leader it names, when it knows one.
    #[error("not partition 0's leader (leader: {leader:?} at {endpoint:?})")]
    NotLeader {
        /// The leader this node's replica knew when it refused.
        leader: Option<NodeId>,
        /// That leader's endpoint, from discovery.
        endpoint: Option<String>,
    },
    /// The change was computed against another roster version (IRaft's `StaleMembership`):
    /// read the roster again and retry against it.
    #[error("the roster is at version {current}")]
    Stale {
        /// The roster version known here.
        current: u64,
    },
    /// Another change is in flight, or a partition has not followed the last one yet (IRaft's
    /// `ConcurrentMembershipChange`). Retry after it completes.
    #[error("another membership change is in flight")]
    ConcurrentChange,
    /// The change would leave no voter (IRaft's `InsufficientVoters`). Do not retry blindly.
    #[error("the change would leave the cluster without a voter")]
    InsufficientVoters,
    /// The change names a node that is not a member in the role it needs.
    #[error("node {0} is not a member that can take this change")]
    MemberNotFound(NodeId),
    /// The change is invalid (node id 0, an invalid endpoint, too many members; also when
    /// partition 0's leader refused a `leave_cluster` or `remove_member` that way), or cannot
    /// be asked (a transport that does not carry membership calls, on a node that does not
    /// lead partition 0).
    #[error("invalid membership change: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// A bounded queue is full (partition 0's shard queue, the node's timers). Retry with
    /// backoff.
    #[error("a queue is full; retry with backoff")]
    QueueFull,
    /// Partition 0 is not open here yet, or restoring: retry shortly.
    #[error("partition 0 is not serving yet")]
    RestoreInProgress,
    /// The caller's timeout ran out first. Indeterminate: the change may still commit.
    #[error("timed out after {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// Leadership of partition 0 was lost before the change committed. Indeterminate.
    #[error("leadership was lost before the change committed")]
    LeadershipLost,
    /// This node cannot serve partition 0 any more.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Why a partition lifecycle operation
/// ([`Raft::create_partition`](crate::node::Raft::create_partition),
/// [`Raft::remove_partition`](crate::node::Raft::remove_partition),
/// [`Raft::split_partition`](crate::node::Raft::split_partition),
/// [`Raft::merge_partitions`](crate::node::Raft::merge_partitions)) failed: Kommander's
/// `RaftPartitionLifecycleResult` without success. The map is unchanged by this call, unless
/// the error is indeterminate ([`PartitionLifecycleError::Timeout`],
/// [`PartitionLifecycleError::LeadershipLost`]): a retry then answers with the generation if it
/// took effect.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionLifecycleError {
    /// This node does not lead partition 0 (Kommander requires the caller to): call the leader
    /// it names, when it knows one.
    #[error("not partition 0's leader (leader: {leader:?} at {endpoint:?})")]
    NotLeader {
        /// The leader this node's replica of partition 0 knew when it refused.
        leader: Option<NodeId>,
        /// That leader's endpoint, from discovery.
        endpoint: Option<String>,
    },
    /// The operation breaks one of Kommander's rules (partition 0, a tombstoned id, an
    /// unknown partition, an invalid or overlapping range, a partition being split or merged,
    /// a split or merge Kommander refuses, no map yet) or a limit (`partitions_max`,
    /// `partition_map_ranges_max`). Do not retry as it is.
    #[error("refused: {0}")]
    Refused(MapOperationError),
    /// Another map change is in flight on partition 0's leader, or it has not applied every
    /// committed map yet (it was just elected), or another map of the same version took
    /// effect instead of this one. Retry after a short delay.
    #[error("another partition map change is in flight")]
    ConcurrentChange,
    /// Partition 0's replica refused the map entry with this status.
    #[error("partition 0 refused the map entry: {status}")]
    Rejected {
        /// Its status.
        status: Status,
    },
    /// The map change could not be queued for partition 0 (its shard's queue, or the node's
    /// timers, are full): nothing was asked. Retry with backoff.
    #[error("the map change could not be queued; retry with backoff")]
    QueueFull,
    /// Partition 0 is not open on this node yet, or restoring: no map change can be asked of
    /// it. Retry shortly.
    #[error("partition 0 is not serving map changes yet")]
    RestoreInProgress,
    /// No answer within the caller's timeout. Indeterminate: the map change may still take
    /// effect (a retry answers its generation).
    #[error("no answer to the map change after {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// Leadership of partition 0 was lost before the map entry committed. Indeterminate.
    #[error("leadership was lost before the map change committed")]
    LeadershipLost,
    /// This node cannot serve partition 0 any more.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Why [`Raft::join_cluster`](crate::node::Raft::join_cluster) or
/// [`Raft::join_cluster_with_seeds`](crate::node::Raft::join_cluster_with_seeds) failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The join did not complete within the caller's timeout or the `join_timeout_ms`
    /// ceiling: no partition map was applied, or (through seeds) no seed or leader admitted
    /// this node, or it was not promoted to a voter everywhere. The node keeps what it did
    /// (partition 0 open, a learner); call again to keep waiting.
    #[error("the join did not complete within {waited:?} (system partition leader: {leader:?})")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
        /// The system partition's leader this node knew when it gave up.
        leader: Option<NodeId>,
    },
    /// The shard hosting the system partition has a full request queue, or the node's timers
    /// are full. Retry with backoff.
    #[error("the system partition's shard queue is full; retry with backoff")]
    QueueFull,
    /// The join cannot be done as asked: no seed but this node's own endpoint, an `endpoint`
    /// the roster cannot record (empty, too long), a transport that does not carry
    /// membership calls, or a node that opened partition 0 from its static configuration
    /// ([`Raft::join_cluster`](crate::node::Raft::join_cluster)) and is not a member of the
    /// roster. Nothing was asked of the cluster.
    #[error("this join cannot be done: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// Partition 0's leader refused to admit or promote this node, for good: its status
    /// (`InsufficientVoters`: the only voter's data directory was replaced, and re-admitting
    /// it as a learner would leave no voter; `Errored`: the change is invalid, e.g. the roster
    /// is full).
    #[error("partition 0's leader refused this node: {status}")]
    Refused {
        /// The leader's answer.
        status: Status,
    },
    /// The roster took this node out (leaving or removed, by another node) before it became
    /// a voter.
    #[error("roster version {version} takes this node out")]
    Removed {
        /// The roster version that does.
        version: u64,
    },
    /// The node's `identity` file in its data directory could not be written (the first
    /// configuration of partition 0 is kept there before it opens): nothing was opened.
    #[error("the data directory: {reason}")]
    Storage {
        /// The I/O error, in words.
        reason: String,
    },
    /// This node cannot serve the system partition any more.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Why a node could not start ([`RaftBuilder::start`](crate::node::RaftBuilder::start)).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid (the error names the field).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The builder was not given a required component.
    #[error("the builder needs a {0}")]
    Missing(&'static str),
    /// The shards could not start: the data directory was written with another shard count, a
    /// WAL could not be opened or recovered, or a thread could not be spawned.
    #[error(transparent)]
    Shards(#[from] HostStartError),
    /// A thread of the node (coordinator, timer) could not be spawned.
    #[error("starting the node's threads: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a transport entry point ([`Raft::handshake`], [`Raft::request_vote`], [`Raft::vote`],
/// [`Raft::append_logs`], [`Raft::complete_append_logs`]) refused a peer's hello or messages.
/// Nothing is recorded or delivered then.
///
/// [`Raft::handshake`]: crate::node::Raft::handshake
/// [`Raft::request_vote`]: crate::node::Raft::request_vote
/// [`Raft::vote`]: crate::node::Raft::vote
/// [`Raft::append_logs`]: crate::node::Raft::append_logs
/// [`Raft::complete_append_logs`]: crate::node::Raft::complete_append_logs
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The peer belongs to another cluster.
    #[error("cluster name mismatch: this node is in `{expected}`, the peer in `{received}`")]
    ClusterMismatch {
        /// This node's cluster.
        expected: String,
        /// The peer's.
        received: String,
    },
    /// The node id is not a peer in this node's configuration (or is this node's own id).
    #[error("node {0} is not a peer of this node")]
    UnknownNode(NodeId),
    /// The node id is known under another endpoint.
    #[error("node {node} is configured at `{expected}`, not `{received}`")]
    EndpointMismatch {
        /// The node.
        node: NodeId,
        /// Its configured endpoint.
        expected: String,
        /// The endpoint it claimed.
        received: String,
    },
    /// A message of a kind this entry point does not carry.
    #[error("a message of another kind than this entry point carries")]
    UnexpectedMessage,
    /// A message addressed to another node.
    #[error("a message addressed to node {to}")]
    Misaddressed {
        /// Its receiver.
        to: NodeId,
    },
    /// Another live process holds the node id the peer claims (decision 0005, "Duplicate
    /// node ids"): this node's own id from another incarnation, or a node whose handshake
    /// with another incarnation is live here. The peer must stop.
    #[error(
        "node {node} is held by another live process (incarnation {incumbent:#x}), not the \
         peer's (incarnation {incarnation:#x})"
    )]
    DuplicateNode {
        /// The node id claimed.
        node: NodeId,
        /// The peer's incarnation.
        incarnation: u64,
        /// The incarnation of the process that keeps the id.
        incumbent: u64,
    },
}

/// A reference to any error of the handle, for the one [`Status`] mapping.
#[derive(Clone, Copy)]
enum AnyError<'a> {
    Fatal(&'a Fatal),
    Replicate(&'a ReplicateError),
    Query(&'a QueryError),
    Join(&'a JoinError),
    Membership(&'a MembershipError),
    Lifecycle(&'a PartitionLifecycleError),
    Start(&'a StartError),
    Peer(&'a PeerError),
}

/// THE mapping of every error to its IRaft status: each error type's `status()` calls it, and
/// `docs/api-errors.md` is this table.
fn status_of(error: AnyError<'_>) -> Status {
    use AnyError as E;
    match error {
        E::Fatal(Fatal::ShardFailed { .. } | Fatal::ShutDown | Fatal::DuplicateNode { .. }) => {
            Status::Errored
        }
        E::Start(
            StartError::Config(_)
            | StartError::Missing(_)
            | StartError::Shards(_)
            | StartError::Io(_),
        ) => Status::Errored,
        E::Replicate(error) => match error {
            ReplicateError::NotLeader { .. } => Status::NodeIsNotLeader,
            ReplicateError::QueueFull => Status::ProposalQueueFull,
            ReplicateError::Timeout { .. } => Status::ProposalTimeout,
            ReplicateError::LeadershipLost { .. } => Status::ReplicationFailed,
            ReplicateError::RestoreInProgress => Status::RestoreInProgress,
            ReplicateError::PartitionMoved { .. } => Status::PartitionMoved,
            ReplicateError::ActiveProposal => Status::ActiveProposal,
            ReplicateError::ProposalNotFound { .. } => Status::ProposalNotFound,
            ReplicateError::TicketConflict { .. } | ReplicateError::Invalid(_) => Status::Errored,
            ReplicateError::Fatal(fatal) => status_of(E::Fatal(fatal)),
        },
        E::Query(error) => match error {
            QueryError::NotLeader { .. } => Status::NodeIsNotLeader,
            QueryError::QueueFull => Status::ProposalQueueFull,
            QueryError::Timeout { .. } => Status::ProposalTimeout,
            // Kommander's not-ready exception has no status: the closest is "retry after a
            // short delay".
            QueryError::RestoreInProgress | QueryError::NotReady { .. } => {
                Status::RestoreInProgress
            }
            QueryError::PartitionMoved { .. } => Status::PartitionMoved,
            QueryError::AlreadyLeader { .. } => Status::LeaderAlreadyElected,
            QueryError::NotAVoter { .. } => Status::Errored,
            QueryError::Fatal(fatal) => status_of(E::Fatal(fatal)),
        },
        E::Join(error) => match error {
            JoinError::Timeout { .. } => Status::ProposalTimeout,
            JoinError::QueueFull => Status::ProposalQueueFull,
            JoinError::Refused { status } => *status,
            JoinError::Invalid { .. } | JoinError::Removed { .. } | JoinError::Storage { .. } => {
                Status::Errored
            }
            JoinError::Fatal(fatal) => status_of(E::Fatal(fatal)),
        },
        E::Membership(error) => match error {
            MembershipError::NotLeader { .. } => Status::NodeIsNotLeader,
            MembershipError::Stale { .. } => Status::StaleMembership,
            MembershipError::ConcurrentChange => Status::ConcurrentMembershipChange,
            MembershipError::InsufficientVoters => Status::InsufficientVoters,
            MembershipError::MemberNotFound(_) | MembershipError::Invalid { .. } => Status::Errored,
            MembershipError::QueueFull => Status::ProposalQueueFull,
            MembershipError::RestoreInProgress => Status::RestoreInProgress,
            MembershipError::Timeout { .. } => Status::ProposalTimeout,
            MembershipError::LeadershipLost => Status::ReplicationFailed,
            MembershipError::Fatal(fatal) => status_of(E::Fatal(fatal)),
        },
        E::Lifecycle(error) => match error {
            PartitionLifecycleError::NotLeader { .. } => Status::NodeIsNotLeader,
            PartitionLifecycleError::Refused(_) => Status::Errored,
            PartitionLifecycleError::ConcurrentChange => Status::ActiveProposal,
            PartitionLifecycleError::Rejected { status } => *status,
            PartitionLifecycleError::QueueFull => Status::ProposalQueueFull,
            PartitionLifecycleError::RestoreInProgress => Status::RestoreInProgress,
            PartitionLifecycleError::Timeout { .. } => Status::ProposalTimeout,
            PartitionLifecycleError::LeadershipLost => Status::ReplicationFailed,
            PartitionLifecycleError::Fatal(fatal) => status_of(E::Fatal(fatal)),
        },
        E::Peer(error) => match error {
            PeerError::UnknownNode(_) => Status::LogsFromAnotherLeader,
            PeerError::ClusterMismatch { .. }
            | PeerError::EndpointMismatch { .. }
            | PeerError::DuplicateNode { .. }
            | PeerError::UnexpectedMessage
            | PeerError::Misaddressed { .. } => Status::Errored,
        },
    }
}

/// Whether an error with this status may succeed when retried (later, or on the leader a
/// `NotLeader` names). Retryability is a property of the status, so the table has one column
/// for both.
fn is_retryable(status: Status) -> bool {
    matches!(
        status,
        Status::NodeIsNotLeader
            | Status::ProposalQueueFull
            | Status::ProposalTimeout
            | Status::ReplicationFailed
            | Status::RestoreInProgress
            | Status::PartitionMoved
            | Status::ActiveProposal
            | Status::StaleMembership
            | Status::ConcurrentMembershipChange
    )
}

macro_rules! compatibility_view {
    ($($error:ident => $variant:ident),* $(,)?) => {$(
        impl $error {
            /// The IRaft status of this error (the compatibility view; see the module's
            /// table).
            #[must_use]
            pub fn status(&self) -> Status {
                status_of(AnyError::$variant(self))
            }

            /// Whether the same call may succeed when retried (after a backoff, a refresh of
            /// the partition map, or on the leader a `NotLeader` names).
            #[must_use]
            pub fn is_retryable(&self) -> bool {
                is_retryable(self.status())
            }
        }
    )*};
}

compatibility_view!(
    Fatal => Fatal,
    ReplicateError => Replicate,
    QueryError => Query,
    JoinError => Join,
    MembershipError => Membership,
    PartitionLifecycleError => Lifecycle,
    StartError => Start,
    PeerError => Peer,
);

impl ReplicateError {
    /// Whether this node can no longer serve the partition ([`Fatal`]).
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }
}

impl QueryError {
    /// Whether this node can no longer serve the partition ([`Fatal`]).
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }
}

impl JoinError {
    /// Whether this node can no longer serve the system partition ([`Fatal`]).
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_and_fatal_errors_are_separated() {
        let retryable = [
            ReplicateError::NotLeader {
                leader: None,
                endpoint: None,
            },
            ReplicateError::QueueFull,
            ReplicateError::Timeout {
                ticket: HlcTimestamp::ZERO,
            },
            ReplicateError::LeadershipLost {
                ticket: HlcTimestamp::ZERO,
            },
            ReplicateError::RestoreInProgress,
            ReplicateError::PartitionMoved {
                partition: PartitionId(1),
                generation: 0,
            },
            ReplicateError::ActiveProposal,
        ];
        for error in retryable {
            assert!(error.is_retryable(), "{error:?}");
            assert!(!error.is_fatal(), "{error:?}");
        }
        let fatal = [
            Fatal::ShardFailed {
                shard: 1,
                reason: "WAL poisoned".into(),
            },
            Fatal::ShutDown,
            Fatal::DuplicateNode {
                node: NodeId(2),
                reason: "node 1 refused it".into(),
            },
        ];
        for fatal in fatal {
            let error = ReplicateError::from(fatal.clone());
            assert!(!error.is_retryable() && error.is_fatal(), "{error:?}");
            assert_eq!(error.status(), Status::Errored);
            let error = QueryError::from(fatal.clone());
            assert!(!error.is_retryable() && error.is_fatal(), "{error:?}");
            let error = JoinError::from(fatal);
            assert!(!error.is_retryable() && error.is_fatal(), "{error:?}");
        }
        let rejected = [
            ReplicateError::ProposalNotFound {
                ticket: HlcTimestamp::ZERO,
            },
            ReplicateError::TicketConflict {
                ticket: HlcTimestamp::ZERO,
            },
            ReplicateError::Invalid(InvalidWrite::Empty),
        ];
        for error in rejected {
            assert!(!error.is_retryable() && !error.is_fatal(), "{error:?}");
        }
    }

    #[test]
    fn no_error_maps_to_success_or_pending() {
        let errors = [
            status_of(AnyError::Fatal(&Fatal::ShutDown)),
            ReplicateError::QueueFull.status(),
            QueryError::QueueFull.status(),
            JoinError::QueueFull.status(),
            PeerError::UnexpectedMessage.status(),
            StartError::Missing("transport").status(),
        ];
        for status in errors {
            assert_ne!(status, Status::Success);
            assert_ne!(status, Status::Pending);
        }
    }
}
