//! The one event type of the library, [`RaftEvent`]: emitted by the shards (leadership,
//! restore, replication errors, shard failure) and by the node (partition map changes) into an
//! [`EventSink`]; the node's sink forwards them to the application's subscriptions.
//!
//! The application's verdict callbacks (replication received, log restored) are not events:
//! they are the [`StateMachine`](super::StateMachine) trait, called on the shard thread in log
//! order.

use std::sync::Arc;

use super::LogEntry;
use super::codec::CodecError;
use crate::core::{LogIndex, NodeId, PartitionId, Term};

/// Something that happened on a node (Kommander's `On…` events).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftEvent {
    /// The leader a partition's replica names, or its term, changed (Kommander's
    /// `OnLeaderChanged`), announced once the leader can serve:
    ///
    /// - a leader is announced once an entry of its term has committed on this node: on the
    ///   leader itself, its no-op (Kommander's published leadership,
    ///   [`Leadership::leads`](super::Leadership::leads)); on a follower, the leader's no-op
    ///   or a later entry of its term, learned committed from the leader. The committed
    ///   entries before it were handed to the [`StateMachine`](super::StateMachine) first. A
    ///   leader elected but never established (its no-op does not commit) is never announced;
    /// - no leader (`leader: None`: a candidacy, a higher term learned without its leader, a
    ///   leader stepping down, a pre-vote) is announced at once, as Kommander's
    ///   `OnLeaderChanged("")`.
    ///
    /// Each change of the announced (term, leader) is one event: a pair is never announced
    /// twice in a row, so a stable leader is announced once per term on each node. Role
    /// changes that name the same leader in the same term are in the leadership table only.
    LeaderChanged {
        /// The partition.
        partition: PartitionId,
        /// The leader now known (`None`: none known).
        leader: Option<NodeId>,
        /// Its endpoint, from the node's discovery (`None`: no leader, or not resolvable).
        endpoint: Option<String>,
        /// The term.
        term: Term,
    },
    /// A partition started restoring from the WAL (Kommander's `OnRestoreStarted`).
    RestoreStarted {
        /// The partition.
        partition: PartitionId,
    },
    /// A partition finished restoring: every committed entry it held was handed to
    /// [`StateMachine::on_log_restored`](super::StateMachine::on_log_restored) (Kommander's
    /// `OnRestoreFinished`).
    RestoreFinished {
        /// The partition.
        partition: PartitionId,
        /// How many entries were handed to the application.
        entries_delivered: u64,
    },
    /// A partition could not be restored (its WAL content is inconsistent); it stays closed.
    RestoreFailed {
        /// The partition.
        partition: PartitionId,
        /// What was wrong.
        reason: String,
    },
    /// An entry was not applied, or a follower cannot be served (Kommander's
    /// `OnReplicationError`).
    ReplicationError {
        /// The partition.
        partition: PartitionId,
        /// The entry's index (0 when not about one entry).
        index: LogIndex,
        /// The entry the application refused, as it was handed over (Kommander's handler
        /// gets the `RaftLog`): its log type and payload share the log's bytes, nothing is
        /// copied, so an event kept holds them (a slice of a WAL segment or of a received
        /// frame) alive. `Some` exactly when `reason` is
        /// [`Rejected`](ReplicationErrorReason::Rejected): a malformed entry has no log type
        /// or payload to give, and a follower that cannot be served is not about one entry.
        entry: Option<LogEntry>,
        /// Why.
        reason: ReplicationErrorReason,
    },
    /// A leader finished sending a snapshot: `follower`, which needed entries below the
    /// compaction floor, installed the application's state at `index`.
    SnapshotSent {
        /// The partition.
        partition: PartitionId,
        /// The follower.
        follower: NodeId,
        /// The snapshot's last index.
        index: LogIndex,
        /// The snapshot's size in bytes.
        bytes: u64,
    },
    /// This node installed a snapshot from `leader`: the application imported its state at
    /// `index` and the log restarts after it.
    SnapshotInstalled {
        /// The partition.
        partition: PartitionId,
        /// The leader that sent it.
        leader: NodeId,
        /// The snapshot's last index.
        index: LogIndex,
        /// The snapshot's size in bytes.
        bytes: u64,
    },
    /// A committed partition map was applied on this node (Kommander's
    /// `OnPartitionMapChanged`); `Raft::partition_map` returns it (or a newer one).
    PartitionMapChanged {
        /// The version of the map applied.
        version: u64,
    },
    /// A newer committed roster reached this node (Kommander's `OnMembershipChanged`);
    /// `Raft::membership` returns it (or a newer one).
    MembershipChanged {
        /// The roster's version.
        version: u64,
    },
    /// A shard stopped: its WAL failed (poisoned) or its thread panicked. Its partitions
    /// refuse every request with a fatal `ShardFailed` until the node restarts.
    ShardFailed {
        /// The shard.
        shard: usize,
        /// The WAL error or the panic message.
        reason: Arc<str>,
    },
    /// Another live process holds this node's id and keeps it: the node stopped, and every
    /// later request is refused with the fatal `DuplicateNode` (decision 0005, "Duplicate
    /// node ids"; Kommander exits the process).
    DuplicateNode {
        /// This node's id.
        node: NodeId,
        /// Who refused this process, or who connected, and why.
        reason: Arc<str>,
    },
}

/// Why a replication error was reported.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationErrorReason {
    /// The application's callback returned `false`.
    Rejected,
    /// The committed entry's envelope does not decode (a misbehaving peer or damaged disk).
    Malformed(CodecError),
    /// A follower needs entries below the compaction floor and the application registered no
    /// `StateTransfer`: only a snapshot could catch it up, so it stays behind (reported once
    /// each time its leader finds it there).
    SnapshotUnsupported(NodeId),
}

/// Receives [`RaftEvent`]s, on shard threads and the node's threads. Must not block (forward
/// to a bounded or broadcast channel).
pub trait EventSink: Send + Sync + 'static {
    /// Called once per event.
    fn emit(&self, event: RaftEvent);
}

/// An [`EventSink`] that forgets every event (for tests that start a shard host alone).
#[cfg(feature = "sim")]
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

#[cfg(feature = "sim")]
impl EventSink for NoEvents {
    fn emit(&self, _event: RaftEvent) {}
}
