//! No partition commits a write for a range it does not own (decision 0006, amendment "split
//! and merge, precisely"): judged from the simulator's truth, never from what a node says.
//!
//! * When an application is handed a workload write of partition P at index i, the entries
//!   below i in that node's durable log of P are the committed log (a handed entry is
//!   committed and durable on its node, and a log that holds it holds the committed prefix
//!   below it). No generation entry there above the log's floor may be newer than the
//!   generation the write was routed with, and none may be a draining one: the source of a
//!   split or merge froze its range at that entry, so a write committed after it was routed
//!   with a map the split or merge had moved on from. (The generation a floor meta keeps is
//!   the replica's highest when it compacted, entries above the floor included: it says
//!   nothing of the entries just above the floor, so it is not judged.)
//! * At the end, every committed write routed with a generation must have a key whose hash
//!   lies in the range its partition had at that generation, in some partition map that
//!   partition 0's disks held (its floor map and its map entries, gathered whenever a disk's
//!   durable image is read): the write reached the partition that owned its key.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::{LogIndex, NodeId, PartitionId, Term};
use crate::shard::partitions::{PartitionMap, RangeState};

use super::super::app::register_hash;
use super::super::truth::DurableLog;
use super::super::workload::Op;

/// The ranges each (partition, generation) had in the maps partition 0's disks held, and
/// every distinct map seen of each version: a version is not a map's identity, since a leader
/// that loses partition 0 before its map entry commits leaves that entry on some disks, and
/// the next leader proposes another map of the same version (elastic seed 5979: a merge's
/// phase 2 committed as version 13 after another version 13 had reached one disk).
#[derive(Debug, Default)]
pub(in crate::sim::node) struct RangeHistory {
    ranges: BTreeMap<(PartitionId, u64), BTreeSet<(i32, i32)>>,
    maps: BTreeMap<u64, Vec<PartitionMap>>,
}

impl RangeHistory {
    /// Takes `map` (one partition 0's disks held) into account.
    pub(in crate::sim::node) fn note(&mut self, map: &PartitionMap) {
        let seen = self.maps.entry(map.version).or_default();
        if seen.contains(map) {
            return;
        }
        for range in &map.partitions {
            self.ranges
                .entry((range.partition_id, range.generation))
                .or_default()
                .insert((range.start, range.end));
        }
        seen.push(map.clone());
    }

    /// Every map seen, by version.
    fn all(&self) -> impl Iterator<Item = &PartitionMap> {
        self.maps.values().flatten()
    }

    /// Whether a map held `partition` as a tombstone (removed, or merged away): every node
    /// closes it and deletes its WAL records once that map is committed.
    pub(in crate::sim::node) fn removed(&self, partition: PartitionId) -> bool {
        self.all().any(|map| {
            map.get(partition)
                .is_some_and(|range| range.state == RangeState::Removed)
        })
    }

    /// The voters of `partition`'s first configuration, when a map created it (a split's
    /// target, a created partition): partition 0's committed voters when its leader proposed
    /// it, recorded in the map entry.
    pub(in crate::sim::node) fn first_voters(&self, partition: PartitionId) -> Option<Vec<NodeId>> {
        self.all().find_map(|map| {
            let first = map.get(partition)?.first.as_ref()?;
            Some(first.voters.clone())
        })
    }

    /// The highest partition id any map held.
    pub(in crate::sim::node) fn highest_partition(&self) -> u32 {
        self.ranges.keys().map(|(p, _)| p.0).max().unwrap_or(0)
    }

    /// Splits and merges whose phase 2 shows between two consecutive versions seen: a
    /// `Splitting` target made `Active`, a `Draining` source made a tombstone (each counted
    /// once, whichever maps of those versions show it).
    pub(in crate::sim::node) fn completed(&self) -> (u64, u64) {
        let (mut splits, mut merges) = (BTreeSet::new(), BTreeSet::new());
        for (version, nexts) in &self.maps {
            let Some(befores) = self.maps.get(&(version - 1)) else {
                continue;
            };
            for (before, next) in befores
                .iter()
                .flat_map(|b| nexts.iter().map(move |n| (b, n)))
            {
                for range in &next.partitions {
                    let Some(was) = before.get(range.partition_id) else {
                        continue;
                    };
                    let step = (range.partition_id, range.generation);
                    match (was.state, range.state) {
                        (RangeState::Splitting, RangeState::Active)
                            if was.importing_from.is_some() =>
                        {
                            splits.insert(step);
                        }
                        (RangeState::Draining, RangeState::Removed) => {
                            merges.insert(step);
                        }
                        _ => {}
                    }
                }
            }
        }
        (splits.len() as u64, merges.len() as u64)
    }
}

/// A committed workload write routed with a generation: judged against the ranges at the end.
#[derive(Debug, Clone, Copy)]
pub(in crate::sim::node) struct RoutedWrite {
    pub(in crate::sim::node) partition: PartitionId,
    pub(in crate::sim::node) index: LogIndex,
    pub(in crate::sim::node) key: u64,
    pub(in crate::sim::node) generation: u64,
}

/// The property's checks.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct RangeOwnership;

impl RangeOwnership {
    pub(in crate::sim::node) const NAME: &'static str = "range_ownership";

    /// A node's application was just handed `op` at `partition`/`index` in `term`; `log` is
    /// that node's durable log of the partition now. Judged only when the log holds that entry
    /// (it does: a handed entry is durable on its node).
    ///
    /// # Errors
    /// A generation entry below the write newer than its routed generation, or a draining one.
    pub(in crate::sim::node) fn on_applied(
        partition: PartitionId,
        index: LogIndex,
        term: Term,
        op: Op,
        log: &DurableLog,
    ) -> Result<(), String> {
        let Op::Write { generation, .. } = op else {
            return Ok(());
        };
        if log
            .entries
            .get(&index)
            .is_none_or(|(t, o)| *t != term || *o != Some(op))
        {
            return Ok(());
        }
        for (at, mark) in log.marks.range(..index) {
            let stale = generation != 0 && mark.generation > generation;
            if stale || mark.draining {
                return Err(format!(
                    "partition {partition} committed {op:?} at index {index} (term {term}) after \
                     its generation entry at index {at} (generation {}, draining {}): the write \
                     was routed with generation {generation}",
                    mark.generation, mark.draining
                ));
            }
        }
        Ok(())
    }

    /// At the end: every committed write routed with a generation hashes into a range its
    /// partition had at that generation.
    ///
    /// # Errors
    /// The first write outside every such range.
    pub(in crate::sim::node) fn check_ranges(
        writes: &[RoutedWrite],
        history: &RangeHistory,
    ) -> Result<(), String> {
        for write in writes {
            let hash = register_hash(write.key);
            let ranges = history.ranges.get(&(write.partition, write.generation));
            let owned = ranges.is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|(start, end)| *start <= hash && hash <= *end)
            });
            if !owned {
                return Err(format!(
                    "partition {} committed a write of key {} (hash {hash}) at index {}, routed \
                     with generation {}, whose ranges at that generation were {ranges:?}",
                    write.partition, write.key, write.index, write.generation
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::partitions::marks::GenerationMark;

    const P1: PartitionId = PartitionId(1);

    fn write(generation: u64) -> Op {
        Op::Write {
            key: 4,
            value: 10,
            generation,
        }
    }

    /// Partition 1's log: the write at index 5, a generation entry (generation 3) at index 3.
    fn log_with(op: Op, mark: GenerationMark) -> DurableLog {
        let mut log = DurableLog::default();
        log.entries.insert(LogIndex(5), (Term(2), Some(op)));
        log.marks.insert(LogIndex(3), mark);
        log
    }

    #[test]
    fn a_write_after_a_newer_generation_entry_or_a_draining_one_is_flagged() {
        let check = |op: Op, mark| {
            RangeOwnership::on_applied(P1, LogIndex(5), Term(2), op, &log_with(op, mark))
        };
        let frozen = |generation, draining| GenerationMark {
            generation,
            draining,
        };
        assert!(check(write(3), frozen(3, false)).is_ok());
        assert!(check(write(2), frozen(3, false)).is_err(), "stale");
        assert!(check(write(0), frozen(3, false)).is_ok(), "unfenced");
        assert!(check(write(3), frozen(3, true)).is_err(), "drained");
        assert!(
            check(write(0), frozen(3, true)).is_err(),
            "drained, unfenced"
        );
        // Not the floor's: it may be newer than the entries above the floor.
        let mut log = log_with(write(2), frozen(2, false));
        log.floor = LogIndex(2);
        log.floor_mark = frozen(3, false);
        assert!(RangeOwnership::on_applied(P1, LogIndex(5), Term(2), write(2), &log).is_ok());
        // Not judged when the log does not hold the handed entry.
        let log = log_with(write(1), frozen(3, false));
        assert!(RangeOwnership::on_applied(P1, LogIndex(5), Term(3), write(1), &log).is_ok());
    }

    #[test]
    fn a_write_outside_its_partitions_range_at_its_generation_is_flagged() {
        let mut history = RangeHistory::default();
        let mut map = PartitionMap::initial(2).expect("a map");
        map.version = 1;
        history.note(&map);
        let key = 4;
        let owner = map.partition_for_key(&key.to_string()).expect("routed");
        let other = if owner == P1 { PartitionId(2) } else { P1 };
        let routed = |partition, generation| RoutedWrite {
            partition,
            index: LogIndex(7),
            key,
            generation,
        };
        assert!(RangeOwnership::check_ranges(&[routed(owner, 1)], &history).is_ok());
        assert!(RangeOwnership::check_ranges(&[routed(other, 1)], &history).is_err());
        assert!(
            RangeOwnership::check_ranges(&[routed(owner, 2)], &history).is_err(),
            "a generation no map held"
        );
    }
    #[test]
    fn every_map_of_a_version_counts_not_only_the_first_seen() {
        let mut first = PartitionMap::initial(2).expect("a map");
        first.version = 1;
        let draining = first.merge_phase_1(P1, PartitionId(2)).expect("phase 1");
        let merged = draining.merge_phase_2(PartitionId(2)).expect("phase 2");
        // Another map of phase 2's version, proposed by a leader that lost partition 0 before
        // it committed: here the merge is not through in it.
        let mut stale = draining.clone();
        stale.version = merged.version;
        let mut history = RangeHistory::default();
        for map in [&first, &draining, &stale, &merged, &merged] {
            history.note(map);
        }
        assert!(
            history.removed(PartitionId(2)),
            "the committed phase 2 counts"
        );
        assert_eq!(history.completed(), (0, 1), "one merge, seen once");
        let kept = merged.get(P1).expect("the survivor");
        let key = (0..).find(|k: &u64| {
            let hash = register_hash(*k);
            hash < draining.get(P1).expect("P1").start || hash > draining.get(P1).expect("P1").end
        });
        let routed = RoutedWrite {
            partition: P1,
            index: LogIndex(9),
            key: key.expect("a key of the merged-away range"),
            generation: kept.generation,
        };
        assert!(
            RangeOwnership::check_ranges(&[routed], &history).is_ok(),
            "the survivor's widened range at its new generation"
        );
    }
}
