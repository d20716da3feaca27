//! Shard-layer tests of decision 0006: the partition map followed by every shard.

mod map_open;
