//! Shard-layer tests of decision 0006: the partition map followed by every shard, and the
//! write fence its shard applies to a partition's writes, split and merge on the partitions.

mod fence;
mod first_election;
mod import_pace;
mod map_change;
mod map_open;
mod split_merge;

use std::path::Path;

use kommander_raft::node::NodeConfig;

/// Node `id` of three on the memory transport, two shards each, with fast ticks, small WAL
/// segments and records, and room for 16 ranges in the map.
fn three_node_config(id: u64, dir: &Path) -> NodeConfig {
    let mut config = NodeConfig::new(id, dir.join(format!("node-{id}")));
    config.endpoint = format!("memory:{id}");
    config.peers = (1..=3)
        .filter(|&n| n != id)
        .map(|n| (n, format!("memory:{n}")))
        .collect();
    config.shards = 2;
    config.tick_interval_ms = 5;
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 2;
    config.wal_segment_bytes = 256 << 10;
    config.wal_batch_bytes_max = 64 << 10;
    config.wal_record_bytes_max = 16 << 10;
    config.partition_map_ranges_max = 16;
    config
}
