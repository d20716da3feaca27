//! The node layer: everything one process needs beside the shards — the public [`Raft`]
//! handle, configuration, discovery, errors, the event sink and the system partition
//! coordinator; the partition map and key routing, which live in the shard layer, are
//! re-exported here (`partition_map`). The shards it runs on are the shard layer's
//! [`ShardHost`](crate::shard::ShardHost); its hybrid logical clock is `crate::clock`'s (the
//! transports stamp frames with it).

pub mod config;
pub mod discovery;
mod durable_file;
pub mod error;
pub(crate) mod events;
mod identity;
pub mod partition_map;
pub mod raft;
pub mod system;

pub use crate::clock::{
    ClockDriftError, HlcTimestamp, HybridLogicalClock, PhysicalClock, SystemClock,
};
pub use config::{ConfigError, NodeConfig, WalBackend};
pub use discovery::{RaftNode, StaticDiscovery};
pub use error::{
    Fatal, InvalidWrite, JoinError, MembershipError, PartitionLifecycleError, PeerError,
    QueryError, ReplicateError, StartError,
};
pub use partition_map::{PartitionMap, PartitionMapError, PartitionRange};
pub use raft::{
    HandshakeRequest, Raft, RaftBuilder, ReadOptions, ReplicateOptions, SteppedDown, TestHooks,
    Written,
};
