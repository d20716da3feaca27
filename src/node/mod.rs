//! The node layer: everything one process needs beside the shards — the hybrid logical clock,
//! the partition map and key routing (and, as the runtime lands, configuration, membership
//! and events).

pub mod config;
pub mod hlc;
pub mod partition_map;
pub mod runtime;

pub use config::{ConfigError, NodeConfig, WalBackend};
pub use hlc::{ClockDriftError, HlcTimestamp, HybridLogicalClock, PhysicalClock, SystemClock};
pub use partition_map::{PartitionMap, PartitionMapError, PartitionRange};
pub use runtime::{Runtime, RuntimeStats, StartError};
