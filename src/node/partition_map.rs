//! The partition map and key routing, as the node exposes them: they live in the shard layer
//! (`shard::partitions`, decision 0006), which keeps the map with partition 0's log.

pub use crate::shard::SYSTEM_PARTITION;
#[cfg_attr(
    not(feature = "sim"),
    allow(
        unused_imports,
        reason = "the node module is public with the `sim` feature only"
    )
)]
pub use crate::shard::partitions::{
    CreatePartition, FirstMembers, HASH_SPACE_END, MapOperationError, NoRouteError, PartitionMap,
    PartitionMapError, PartitionRange, RangeState, Routes, RoutingMode, SplitPlan, key_hash,
    prefix_hash,
};
