//! The write fence (decision 0006 point 4 and its amendment): whether this node's committed
//! map, and the partition's own log, let a request to a partition through. Judged on the
//! partition's shard thread at the moment the request is carried out, not on the caller's
//! thread: a map change that commits while the request waits in the shard's queue is seen,
//! and once a write is refused nothing of it reaches the log.
//!
//! A request names its partition and, optionally, the generation of the partition's range
//! the caller routed with (Kommander's `expectedGeneration`, 0 meaning none). The partition's
//! generation is the higher of its range's in the map and the highest generation entry its
//! log held (`marks.rs`): a source's leader whose node lags on partition 0's map still fences
//! with the generation its log recorded. Refused:
//!
//! * every write to a range the map removed (a tombstone), fenced or not: its partition is
//!   closing on every node, and what it accepted now would be deleted with its WAL records;
//! * every client write (a proposal, a two-phase commit) and every fenced read to a range
//!   being filled by a split (a `Splitting` target, until phase 2: it does not hold the data
//!   yet) or being emptied by a merge (`Draining` in the map, or a draining generation entry
//!   in its log: what it accepted after the export would be lost) — where Kommander refuses
//!   only fenced writes there;
//! * a fenced request whose generation is not the partition's — the range moved (split,
//!   merged, removed) since the caller routed, or the map does not hold the partition
//!   (generation 0). A `Splitting` source is no exception: its phase 1 bumped its generation,
//!   so a write routed with the map before it is refused, and one routed with the phase-1 map
//!   is accepted, for the range the source still owns.
//!
//! A fenced read is judged twice (decision 0006, amendment "fenced reads"): when the request is carried
//! out, and again when it is answered, once this replica's application applied the read
//! index (`worker/partition.rs`, `Slot::answer_read`). The first judgement is enough on the
//! leader, whose log holds every committed generation entry; a follower's log may not yet
//! hold one committed before the read began (and its map may lag partition 0's), but once it
//! applied through the read index — at or above that entry — its log marks hold it, so the
//! second judgement refuses a read that began after the range moved wherever it is served.
//!
//! An unfenced write to a range that is neither removed, filled nor drained passes whatever
//! its generation, as in Kommander (generation 0 passes), and so does one to a partition the
//! map does not hold (partition 0, which no map routes; a partition opened without a map).
//! Pure: no I/O, no state.

use std::num::NonZeroU64;

use super::map::{PartitionMap, RangeState};
use super::marks::GenerationMark;
use crate::core::PartitionId;

/// What a request does to a partition, as far as the fence cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// A client write: a proposal, or the commit of a two-phase one.
    Write,
    /// A linearizable read.
    Read,
    /// Anything else (a checkpoint, a rollback, a status, leadership requests).
    Other,
}

impl PartitionMap {
    /// Whether this map (the node's committed map) and `log`, the highest generation entry of
    /// the partition's log, let a request of kind `access` to `partition` routed with
    /// `expected_generation` (`None`: unfenced) through. See the module docs.
    pub(crate) fn admits(
        &self,
        partition: PartitionId,
        log: GenerationMark,
        access: Access,
        expected_generation: Option<NonZeroU64>,
    ) -> bool {
        let range = self.get(partition);
        if range.is_some_and(|r| r.state == RangeState::Removed) {
            return access != Access::Write && expected_generation.is_none();
        }
        let filled =
            range.is_some_and(|r| r.state == RangeState::Splitting && r.importing_from.is_some());
        let drained = log.draining || range.is_some_and(|r| r.state == RangeState::Draining);
        let frozen = filled || drained;
        match access {
            Access::Write if frozen => return false,
            Access::Read if frozen && expected_generation.is_some() => return false,
            _ => {}
        }
        let generation = range.map_or(0, |r| r.generation).max(log.generation);
        expected_generation.is_none_or(|expected| generation == expected.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::SYSTEM_PARTITION;

    const P1: PartitionId = PartitionId(1);
    const P2: PartitionId = PartitionId(2);
    const NO_LOG: GenerationMark = GenerationMark {
        generation: 0,
        draining: false,
    };

    fn generation(g: u64) -> Option<NonZeroU64> {
        Some(NonZeroU64::new(g).expect("a generation"))
    }

    /// Partition 1 at generation 3 in `state`, partition 2 active at generation 1.
    fn map_with(state: RangeState) -> PartitionMap {
        let mut map = PartitionMap::initial(2).expect("a map");
        map.partitions[0].generation = 3;
        map.partitions[0].state = state;
        map.version = 2;
        map
    }

    fn write(
        map: &PartitionMap,
        p: PartitionId,
        log: GenerationMark,
        g: Option<NonZeroU64>,
    ) -> bool {
        map.admits(p, log, Access::Write, g)
    }

    /// In every state but removed, only the range's generation passes a fenced write to a
    /// source, and an unfenced write passes while the range is not drained; a removed range
    /// refuses both.
    #[test]
    fn only_the_ranges_generation_passes_in_every_state() {
        for state in [RangeState::Active, RangeState::Splitting] {
            let map = map_with(state);
            assert!(write(&map, P1, NO_LOG, generation(3)), "{state:?}: current");
            assert!(!write(&map, P1, NO_LOG, generation(2)), "{state:?}: stale");
            assert!(!write(&map, P1, NO_LOG, generation(4)), "{state:?}: ahead");
            assert!(write(&map, P1, NO_LOG, None), "{state:?}: unfenced");
            assert!(
                write(&map, P2, NO_LOG, generation(1)),
                "{state:?}: neighbour"
            );
        }
        let removed = map_with(RangeState::Removed);
        assert!(
            !write(&removed, P1, NO_LOG, generation(3)),
            "tombstone's own"
        );
        assert!(!write(&removed, P1, NO_LOG, generation(2)), "stale");
        assert!(!write(&removed, P1, NO_LOG, None), "unfenced");
        assert!(write(&removed, P2, NO_LOG, generation(1)), "neighbour");
    }

    /// A partition the map does not hold (partition 0, one opened without a map) has
    /// generation 0: a fenced write is refused, an unfenced one passes.
    #[test]
    fn a_partition_outside_the_map_passes_only_unfenced() {
        for map in [PartitionMap::default(), map_with(RangeState::Active)] {
            for partition in [SYSTEM_PARTITION, PartitionId(9)] {
                assert!(write(&map, partition, NO_LOG, None), "{partition} unfenced");
                assert!(
                    !write(&map, partition, NO_LOG, generation(1)),
                    "{partition}"
                );
            }
        }
    }

    /// The log's generation entry fences even when the map lags behind it: the map's
    /// generation 3 is refused once the log holds generation 4.
    #[test]
    fn the_logs_generation_fences_when_the_map_lags() {
        let map = map_with(RangeState::Active);
        let log = GenerationMark {
            generation: 4,
            draining: false,
        };
        assert!(
            !write(&map, P1, log, generation(3)),
            "routed with the old map"
        );
        assert!(
            write(&map, P1, log, generation(4)),
            "routed with the new map"
        );
        assert!(write(&map, P1, log, None), "unfenced");
        // The map ahead of the log: the map's generation.
        let older = GenerationMark {
            generation: 2,
            draining: false,
        };
        assert!(write(&map, P1, older, generation(3)));
    }

    /// A split's target and a draining range refuse client writes (fenced or not) and fenced
    /// reads; unfenced reads and other requests pass.
    #[test]
    fn a_filled_or_drained_range_refuses_client_writes_and_fenced_reads() {
        let mut target = map_with(RangeState::Splitting);
        target.partitions[0].importing_from = Some(P2);
        target.partitions[1].exporting_to = Some(P1);
        target.partitions[1].state = RangeState::Splitting;
        let draining = map_with(RangeState::Draining);
        let draining_log = GenerationMark {
            generation: 3,
            draining: true,
        };
        for (map, log, case) in [
            (&target, NO_LOG, "splitting target"),
            (&draining, NO_LOG, "draining in the map"),
            (
                &map_with(RangeState::Active),
                draining_log,
                "draining in the log",
            ),
        ] {
            assert!(!write(map, P1, log, generation(3)), "{case}: fenced write");
            assert!(!write(map, P1, log, None), "{case}: unfenced write");
            assert!(
                !map.admits(P1, log, Access::Read, generation(3)),
                "{case}: fenced read"
            );
            assert!(
                map.admits(P1, log, Access::Read, None),
                "{case}: unfenced read"
            );
            assert!(
                map.admits(P1, log, Access::Other, generation(3)),
                "{case}: checkpoint"
            );
        }
        // The source of the split keeps serving its own range at its generation.
        assert!(write(&target, P2, NO_LOG, generation(1)));
    }
}
