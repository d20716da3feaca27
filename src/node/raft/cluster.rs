//! Cluster state and routing (Kommander's `Joined`, `IsInitialized`, `GetNodes`,
//! `GetLocalEndpoint`, `GetLocalNodeId`, `GetLocalNodeName`, `GetLastNodeActivity`,
//! `GetActiveNodes`, `GetPartitionMap`, `GetPartitionGeneration`, `GetPartitionKey`,
//! `GetPrefixPartitionKey`): answered from this node's own state, without waiting.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::clock::HlcTimestamp;
use crate::core::{NodeId, PartitionId};
use crate::node::discovery::RaftNode;
use crate::node::partition_map::{NoRouteError, PartitionMap, key_hash};

use super::Raft;

impl Raft {
    /// Whether [`Raft::join_cluster`] opened the system partition (and the node is not shut
    /// down).
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
            .shards
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

    /// The partition map in force on this node (version 0 before initialization).
    #[must_use]
    pub fn partition_map(&self) -> Arc<PartitionMap> {
        self.inner.system.map()
    }

    /// The newest partition map this node's partition 0 committed and applied (version 0:
    /// none yet). The map in force ([`Raft::partition_map`]) becomes it once every shard of
    /// this node opened and closed the partitions it changes; a map change answered by
    /// [`Raft::create_partition`] and the others is in this one when the call returns.
    #[must_use]
    pub fn committed_partition_map(&self) -> Arc<PartitionMap> {
        self.inner.system.committed_map()
    }

    /// The partition owning `key` (Kommander's `GetPartitionKey`: the prefix before the last
    /// `/` decides).
    ///
    /// # Errors
    ///
    /// [`NoRouteError`] before initialization or when no active range holds the hash.
    pub fn partition_for_key(&self, key: &str) -> Result<PartitionId, NoRouteError> {
        self.inner.system.routes().partition_for_key(key)
    }

    /// The routing hash of `key`: the point of the hash space [`Raft::partition_for_key`]
    /// looks up (xxHash64 of the prefix before the last `/`, in `0..=i32::MAX`). An
    /// application that exports a split's or merge's range
    /// ([`StateTransfer::export_range`](crate::StateTransfer::export_range)) picks its keys
    /// with it: a key moves when [`RangeTransfer::holds`](crate::RangeTransfer::holds) its
    /// hash.
    #[must_use]
    pub fn key_hash(key: &str) -> i32 {
        key_hash(key)
    }

    /// The partition owning keys with prefix `prefix` (Kommander's `GetPrefixPartitionKey`).
    ///
    /// # Errors
    ///
    /// As [`Raft::partition_for_key`].
    pub fn partition_for_prefix(&self, prefix: &str) -> Result<PartitionId, NoRouteError> {
        self.inner.system.routes().partition_for_prefix(prefix)
    }

    /// The generation of `partition` in this node's map (0 when absent).
    #[must_use]
    pub fn partition_generation(&self, partition: PartitionId) -> u64 {
        self.partition_map()
            .get(partition)
            .map_or(0, |r| r.generation)
    }
}
