//! The node layer: everything one process needs beside the shards — the public [`Raft`]
//! handle, the hybrid logical clock, the partition map and key routing, configuration,
//! discovery, events and the system partition coordinator. The shards it runs on are the
//! shard layer's [`ShardHost`](crate::shard::ShardHost).

pub mod config;
pub mod discovery;
pub mod events;
pub mod hlc;
pub mod partition_map;
pub mod raft;
pub mod system;

pub use config::{ConfigError, NodeConfig, WalBackend};
pub use discovery::{RaftNode, StaticDiscovery};
pub use events::{LeaderView, RaftEvent};
pub use hlc::{ClockDriftError, HlcTimestamp, HybridLogicalClock, PhysicalClock, SystemClock};
pub use partition_map::{PartitionMap, PartitionMapError, PartitionRange};
pub use raft::{
    HandshakeError, HandshakeRequest, JoinError, Raft, ReplicateOptions, ReplicationResult,
    StartError, TestHooks,
};
