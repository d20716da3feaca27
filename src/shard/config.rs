//! [`ShardConfig`]: the values the shard host and its threads run with. The node derives it
//! from its own configuration (`ShardConfig::from(&NodeConfig)`) and validates it there
//! (`NodeConfig::validate`, whose errors name the node's field); nothing in the shard layer
//! reads settings from anywhere else.

use std::path::PathBuf;
use std::time::Duration;

use kommander_wal::WalConfig;

use crate::core::{self, NodeId, PartitionId};

/// The configuration of a node's shards (see the field docs of `NodeConfig`, which sets each
/// of them under the same name).
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Every node of the cluster, this one included: the nodes whose last message is recorded.
    pub cluster_nodes: Vec<NodeId>,
    /// Number of shard threads (at least 1). A data directory keeps the count it was created
    /// with.
    pub shard_count: usize,
    /// Directory holding one WAL directory per shard (`shard-<n>`).
    pub data_dir: PathBuf,
    /// The period of each shard's single timer (one tick of every replica).
    pub tick_interval: Duration,
    /// Requests queued per shard; a full queue refuses with `QueueFull`.
    pub shard_commands_max: usize,
    /// Inbound message batches queued per shard; a full queue drops (and counts) the batch.
    pub shard_inbound_batches_max: usize,
    /// Requests and inbound batches one loop turn takes from each queue.
    pub shard_inputs_per_turn_max: usize,
    /// Entries restore reads from the WAL, or hands to `on_log_restored`, per loop turn.
    pub restore_entries_per_turn_max: usize,
    /// Partitions one node hosts at most.
    pub partitions_max: usize,
    /// Entries in one proposal at most.
    pub proposal_entries_max: usize,
    /// Bytes of a `log_type` string at most.
    pub log_type_bytes_max: usize,
    /// The core configuration every partition's replica starts from: [`Self::partition_config`]
    /// sets its partition, voters and learners.
    pub core: core::ReplicaConfig,
    /// The WAL configuration of every shard.
    pub wal: WalConfig,
    /// Simulator sensitivity hooks (feature `sim-bugs` only): the node-level bug to inject.
    #[cfg(feature = "sim-bugs")]
    pub bug: Option<NodeBug>,
}

/// A known node-level bug the simulator must catch (feature `sim-bugs`): each is a minimal hook
/// at the spot of the shard code whose guarantee it breaks. With the feature off none of this
/// code exists. (The core's own bugs are `core::InjectedBug`.)
#[cfg(feature = "sim-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeBug {
    /// Persist-gated messages (votes, append acks) leave with the submission of their Ready's
    /// write, not after it is durable.
    ReleaseGatedBeforeDurable,
    /// A proposal's waiter is answered success as soon as its entries are appended to the WAL
    /// for this turn's submission (before durability and commit).
    AckProposalBeforeDurable,
    /// The WalScheduler treats a submitted write as durable (`Replica::persisted`, gated
    /// messages released) at submission, without waiting for the WAL's durable LSN.
    DurableWithoutFsync,
    /// After a restore, live delivery starts again from the floor: entries already handed to
    /// `on_log_restored` reach `on_replication_received` too.
    RedeliverAfterRestore,
    /// A ReadIndex request is answered at once with the local applied index, on any replica,
    /// without a leadership round.
    ReadWithoutReadIndex,
    /// The WAL is compacted to every applied checkpoint without waiting for the application's
    /// durable index (`StateMachine::durable_index`).
    CompactPastDurableIndex,
}

#[cfg(feature = "sim-bugs")]
impl NodeBug {
    /// Every injectable node-level bug.
    pub const ALL: [Self; 6] = [
        Self::ReleaseGatedBeforeDurable,
        Self::AckProposalBeforeDurable,
        Self::DurableWithoutFsync,
        Self::RedeliverAfterRestore,
        Self::ReadWithoutReadIndex,
        Self::CompactPastDurableIndex,
    ];
}

impl ShardConfig {
    /// The core configuration of `partition`'s replica on this node.
    #[must_use]
    pub fn partition_config(
        &self,
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    ) -> core::ReplicaConfig {
        core::ReplicaConfig {
            id: self.node_id,
            partition,
            voters,
            learners,
            ..self.core.clone()
        }
    }
}
