//! Shard-layer tests of decision 0006: the partition map followed by every shard, and the
//! write fence its shard applies to a partition's writes, split and merge on the partitions.

mod fence;
mod map_open;
mod split_merge;
