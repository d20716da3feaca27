//! Events of a node, observed through a bounded broadcast subscription
//! ([`Raft::subscribe`](crate::node::Raft::subscribe)), and the node's published per-partition
//! leadership state (what `am_i_leader_quick` reads).
//!
//! The application's verdict callbacks (replication received, log restored) are not events:
//! they are the [`StateMachine`](crate::shard::StateMachine) trait, called on the shard thread
//! in log order.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::broadcast;

use crate::core::{LogIndex, NodeId, PartitionId, Role, Term};
use crate::node::discovery::StaticDiscovery;
use crate::node::partition_map::PartitionMap;
use crate::shard::{EventSink, ReplicationErrorReason, RuntimeEvent};

/// Something that happened on this node. Subscribers that fall more than
/// `events_buffered_max` events behind miss the oldest ones (`RecvError::Lagged`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftEvent {
    /// A partition started restoring from the WAL (Kommander's `OnRestoreStarted`).
    RestoreStarted {
        /// The partition.
        partition: PartitionId,
    },
    /// A partition finished restoring: every committed entry was handed to
    /// `on_log_restored` (Kommander's `OnRestoreFinished`).
    RestoreFinished {
        /// The partition.
        partition: PartitionId,
        /// Entries handed to the application.
        entries_delivered: u64,
    },
    /// A partition's WAL content is inconsistent; it stays closed.
    RestoreFailed {
        /// The partition.
        partition: PartitionId,
        /// What was wrong.
        reason: String,
    },
    /// An entry was not applied (the application returned `false`, or it does not decode),
    /// or a follower cannot be served (Kommander's `OnReplicationError`).
    ReplicationError {
        /// The partition.
        partition: PartitionId,
        /// The entry's index (0 when not about one entry).
        index: LogIndex,
        /// Why.
        reason: ReplicationErrorReason,
    },
    /// The leader known for a partition changed (Kommander's `OnLeaderChanged`).
    LeaderChanged {
        /// The partition.
        partition: PartitionId,
        /// The leader now known, if any.
        leader: Option<NodeId>,
        /// Its endpoint (`""` when none is known, as in Kommander).
        leader_endpoint: String,
        /// The term.
        term: Term,
    },
    /// A committed partition map was applied (Kommander's `OnPartitionMapChanged`).
    PartitionMapChanged {
        /// The map now in force.
        map: Arc<PartitionMap>,
    },
    /// A shard's WAL failed: its partitions refuse every request from now on.
    ShardFailed {
        /// The shard.
        shard: usize,
        /// The WAL error.
        reason: String,
    },
}

/// The leadership of one partition as published by its replica on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader known, if any.
    pub leader: Option<NodeId>,
    /// This replica's role.
    pub role: Role,
    /// The term.
    pub term: Term,
    /// When this view was published.
    pub since: Instant,
}

/// Receives the runtime's events on the shard threads, publishes leadership and forwards
/// everything to the broadcast channel. Never blocks.
pub(crate) struct EventHub {
    sender: broadcast::Sender<RaftEvent>,
    leaders: RwLock<HashMap<PartitionId, LeaderView>>,
    discovery: StaticDiscovery,
    on_system_leader: Box<dyn Fn() + Send + Sync>,
}

impl EventHub {
    pub(crate) fn new(
        capacity: usize,
        discovery: StaticDiscovery,
        on_system_leader: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            leaders: RwLock::new(HashMap::new()),
            discovery,
            on_system_leader,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RaftEvent> {
        self.sender.subscribe()
    }

    pub(crate) fn publish(&self, event: RaftEvent) {
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    pub(crate) fn leader_view(&self, partition: PartitionId) -> Option<LeaderView> {
        self.leaders
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&partition)
            .copied()
    }
}

impl EventSink for EventHub {
    fn emit(&self, event: RuntimeEvent) {
        let event = match event {
            RuntimeEvent::LeaderChanged {
                partition,
                leader,
                role,
                term,
            } => {
                let view = LeaderView {
                    leader,
                    role,
                    term,
                    since: Instant::now(),
                };
                let previous = self
                    .leaders
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(partition, view);
                if partition == PartitionId(0) {
                    (self.on_system_leader)();
                }
                if previous.is_some_and(|p| p.leader == leader && p.term == term) {
                    return;
                }
                RaftEvent::LeaderChanged {
                    partition,
                    leader,
                    leader_endpoint: leader
                        .and_then(|n| self.discovery.endpoint_of(n))
                        .unwrap_or("")
                        .to_owned(),
                    term,
                }
            }
            RuntimeEvent::RestoreStarted { partition } => RaftEvent::RestoreStarted { partition },
            RuntimeEvent::RestoreFinished {
                partition,
                entries_delivered,
            } => RaftEvent::RestoreFinished {
                partition,
                entries_delivered,
            },
            RuntimeEvent::RestoreFailed { partition, reason } => {
                RaftEvent::RestoreFailed { partition, reason }
            }
            RuntimeEvent::ReplicationError {
                partition,
                index,
                reason,
            } => RaftEvent::ReplicationError {
                partition,
                index,
                reason,
            },
            RuntimeEvent::ShardFailed { shard, reason } => RaftEvent::ShardFailed { shard, reason },
        };
        self.publish(event);
    }
}
