//! Partition 0's partition map, owned by the shard layer (decision 0006): which user partition
//! owns which slice of the key-hash space ([`map`](PartitionMap)), how a key routes through it
//! (`routing.rs`), how partition 0 keeps it with its WAL floor (`floor_meta.rs`) and ships it in
//! its snapshots ([`MapTransfer`]), the table the shards and the node read it from
//! ([`MapTable`]), the fence a write passes on its shard (`fence.rs`), and the operations that
//! change it ([`MapOperation`], `operations.rs`), carried out by partition 0's leader.
//!
//! A map is an ordinary entry of partition 0 (log type [`SYSTEM_LOG_TYPE`]) until compaction;
//! at compaction partition 0's floor meta holds the configuration and the map in force at the
//! floor, so the map is durable exactly when its entry is and recovery finds it from the floor
//! meta and the log, without a file of its own.

mod fence;
mod floor_meta;
mod map;
pub(crate) mod marks;
mod operations;
mod progress;
mod routing;
mod snapshot;
mod table;
mod transitions;

#[cfg_attr(
    not(feature = "sim"),
    allow(
        unused_imports,
        reason = "the shard layer's API, public with the `sim` feature; without it the crate names only `transfer_into` here"
    )
)]
pub use self::{
    marks::{GENERATION_LOG_TYPE, IMPORT_LOG_TYPE},
    transitions::{default_boundary, transfer_into},
};
pub(crate) use fence::Access;
pub(crate) use floor_meta::{
    FloorMeta, decode_floor_meta, encode_floor_meta, encode_marks_floor_meta, floor_meta_bytes_max,
    map_for_floor,
};
pub use map::{
    FirstMembers, HASH_SPACE_END, PartitionMap, PartitionMapError, PartitionRange, RangeState,
    RoutingMode,
};
pub use operations::{
    CreatePartition, MapChangeAnswer, MapOperation, MapOperationError, SplitPlan,
};
pub(crate) use operations::{MapLimits, Planned};
#[cfg_attr(
    not(feature = "sim"),
    allow(
        unused_imports,
        reason = "reached through `MapTable::progress`; named by the tests"
    )
)]
pub use progress::SplitProgress;
pub use routing::{NoRouteError, Routes, key_hash, prefix_hash};
pub use snapshot::MapTransfer;
pub use table::MapTable;
pub use transitions::TransitionError;
pub(crate) use transitions::phase_2;

use bytes::Bytes;

use crate::core::{Entry, EntryKind, PartitionId, Ticket};
use crate::shard::codec::decode_envelope;
use crate::shard::{ProposedEntry, ReplicationResult, Reply, Request, SYSTEM_PARTITION};

/// The log type of partition 0's system entries (each a whole partition map); applications
/// may not write it, and partition 0's shard never hands it to the application.
pub const SYSTEM_LOG_TYPE: &str = "_RaftSystem";

/// The encoded map `entry` of `partition` carries, when it is one of partition 0's system
/// entries (whether the map is valid is [`map_for_floor`]'s to say).
pub(crate) fn map_entry(partition: PartitionId, entry: &Entry) -> Option<Bytes> {
    if partition != SYSTEM_PARTITION || entry.kind != EntryKind::Normal {
        return None;
    }
    let (log_type, payload) = decode_envelope(&entry.payload).ok()?;
    (log_type == SYSTEM_LOG_TYPE.as_bytes()).then_some(payload)
}

/// The request that proposes `map` as an entry of partition 0 (send it to partition 0; its
/// leader carries it out, and every node publishes the map once it commits there). It names
/// no generation: the map is partition 0's, which no map routes.
pub(crate) fn map_proposal(
    map: &PartitionMap,
    ticket: Ticket,
    reply: Reply<ReplicationResult>,
) -> Request {
    Request::Propose {
        entries: smallvec::smallvec![ProposedEntry::new(SYSTEM_LOG_TYPE, &map.encode())],
        auto_commit: true,
        ticket,
        reply,
    }
}
