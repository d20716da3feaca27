//! The one event type of the library, [`RaftEvent`]: emitted by the shards (leadership,
//! restore, replication errors, shard failure) and by the node (partition map changes) into an
//! [`EventSink`]; the node's sink forwards them to the application's subscriptions.
//!
//! The application's verdict callbacks (replication received, log restored) are not events:
//! they are the [`StateMachine`](super::StateMachine) trait, called on the shard thread in log
//! order.

use std::sync::Arc;

use super::codec::CodecError;
use crate::core::{LogIndex, NodeId, PartitionId, Term};

/// Something that happened on a node (Kommander's `On…` events).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftEvent {
    /// The leader (or the term) a partition's replica knows changed (Kommander's
    /// `OnLeaderChanged`). Role changes within a term (a candidate that loses, the leader's
    /// no-op committing) are in the leadership table, not here.
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
