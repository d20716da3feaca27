//! The write fence (decision 0006 point 4): whether this node's committed map lets a write to
//! a partition through. Judged on the partition's shard thread at the moment the write is
//! proposed, not on the caller's thread: a map change that commits while the write waits in
//! the shard's queue is seen, and once a write is refused nothing of it reaches the log.
//!
//! A write names its partition and, optionally, the generation of the partition's range the
//! caller routed with (Kommander's `expectedGeneration`, 0 meaning none). The map refuses
//!
//! * every write to a range it removed (a tombstone), fenced or not: its partition is closing
//!   on every node, and what it accepted now would be deleted with its WAL records;
//! * a fenced write whose generation is not the range's — the range moved (split, merged,
//!   removed) since the caller routed, or the map does not hold the partition (generation 0).
//!   A `Splitting` or `Draining` range is no exception: its phase 1 bumped the source's
//!   generation, so a write routed with the map before it is refused, and one routed with the
//!   phase-1 map is accepted, for the range the source still owns.
//!
//! An unfenced write to a range that is not removed passes whatever its state, as in Kommander
//! (generation 0 passes), and so does one to a partition the map does not hold (partition 0,
//! which no map routes; a partition opened without a map). Pure: no I/O, no state.

use std::num::NonZeroU64;

use super::map::{PartitionMap, RangeState};
use crate::core::PartitionId;

impl PartitionMap {
    /// Whether this map (the node's committed map) lets through a write to `partition` routed
    /// with `expected_generation` (`None`: unfenced). See the module docs.
    pub(crate) fn admits_write(
        &self,
        partition: PartitionId,
        expected_generation: Option<NonZeroU64>,
    ) -> bool {
        let range = self.get(partition);
        if range.is_some_and(|r| r.state == RangeState::Removed) {
            return false;
        }
        expected_generation
            .is_none_or(|expected| range.map_or(0, |r| r.generation) == expected.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::SYSTEM_PARTITION;

    const P1: PartitionId = PartitionId(1);
    const P2: PartitionId = PartitionId(2);

    fn generation(g: u64) -> Option<NonZeroU64> {
        Some(NonZeroU64::new(g).expect("a generation"))
    }

    /// Partition 1 at generation 3 in `state`, partition 2 active at generation 1.
    fn map_with(state: RangeState) -> PartitionMap {
        let mut map = PartitionMap::initial(2).expect("a map");
        map.partitions[0].generation = 3;
        map.partitions[0].state = state;
        map.version = 2;
        map.validate().expect("a valid map");
        map
    }

    /// In every state but removed, only the range's generation passes a fenced write, and an
    /// unfenced write passes; a removed range refuses both.
    #[test]
    fn only_the_ranges_generation_passes_in_every_state() {
        for state in [
            RangeState::Active,
            RangeState::Splitting,
            RangeState::Draining,
        ] {
            let map = map_with(state);
            assert!(map.admits_write(P1, generation(3)), "{state:?}: current");
            assert!(!map.admits_write(P1, generation(2)), "{state:?}: stale");
            assert!(!map.admits_write(P1, generation(4)), "{state:?}: ahead");
            assert!(map.admits_write(P1, None), "{state:?}: unfenced");
            assert!(map.admits_write(P2, generation(1)), "{state:?}: neighbour");
        }
        let removed = map_with(RangeState::Removed);
        assert!(!removed.admits_write(P1, generation(3)), "tombstone's own");
        assert!(!removed.admits_write(P1, generation(2)), "stale");
        assert!(!removed.admits_write(P1, None), "unfenced");
        assert!(removed.admits_write(P2, generation(1)), "neighbour");
    }

    /// A partition the map does not hold (partition 0, one opened without a map) has
    /// generation 0: a fenced write is refused, an unfenced one passes.
    #[test]
    fn a_partition_outside_the_map_passes_only_unfenced() {
        for map in [PartitionMap::default(), map_with(RangeState::Active)] {
            for partition in [SYSTEM_PARTITION, PartitionId(9)] {
                assert!(map.admits_write(partition, None), "{partition} unfenced");
                assert!(!map.admits_write(partition, generation(1)), "{partition}");
            }
        }
    }
}
