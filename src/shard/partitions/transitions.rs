//! Split and merge as pure transforms of a committed map (decision 0006, amendment "split and
//! merge, precisely"): each takes the map in force and gives the next one (version + 1), or
//! the typed reason Kommander refuses it (`kommander-behaviour.md` §5.2, §5.3). Proposing the
//! result on partition 0 and deciding *when* phase 2 may run is the caller's; nothing here
//! reads a log or a clock.
//!
//! * Split, phase 1: the `Active` source `[S, E]` shrinks to `[S, B−1]`, `Splitting`,
//!   generation + 1, `exporting_to` the target; the target `[B, E]`, `Splitting`, generation
//!   1, `importing_from` the source (an unrouted source makes an unrouted target `[0, 0]`).
//! * Split, phase 2: both `Active` at generation + 1, the partners cleared.
//! * Merge, phase 1: the `Active` source `Draining`, generation + 1, `exporting_to` the
//!   survivor; the `Active` survivor unchanged but `importing_from` the source.
//! * Merge, phase 2: the survivor owns both ranges at generation + 1; the source a tombstone
//!   at generation + 1.
//!
//! [`transfer_into`] says what a range being filled imports: the plan the target's leader
//! exports and proposes into the target's log.

use super::map::{PartitionMap, PartitionRange, RangeState, RoutingMode};
use crate::core::PartitionId;
use crate::shard::SYSTEM_PARTITION;
use crate::shard::state_transfer::RangeTransfer;

/// Why a split or merge is refused (each is Kommander's `Errored`, named).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The map has no such partition, or only its tombstone.
    #[error("partition {0} is not in the map")]
    UnknownPartition(PartitionId),
    /// The partition is not `Active` (a split or merge is under way, or it is removed).
    #[error("partition {partition} is {state:?}, not Active")]
    NotActive {
        /// The partition.
        partition: PartitionId,
        /// Its state.
        state: RangeState,
    },
    /// The split's target id is taken (by a range or a tombstone: ids are never reused), or
    /// is the system partition.
    #[error("partition id {0} is taken")]
    TargetTaken(PartitionId),
    /// No partition id is left above the highest one ever used.
    #[error("no partition id is left")]
    IdsExhausted,
    /// A range of one hash value cannot be split.
    #[error("partition {0} owns a single hash value and cannot be split")]
    Unsplittable(PartitionId),
    /// The boundary is not in `start < boundary <= end` of the source.
    #[error("boundary {boundary} is outside ({start}, {end}] of the source")]
    InvalidBoundary {
        /// The boundary asked for.
        boundary: i32,
        /// The source's first hash.
        start: i32,
        /// The source's last hash.
        end: i32,
    },
    /// A merge of a partition with itself.
    #[error("partition {0} cannot merge with itself")]
    SamePartition(PartitionId),
    /// A merge of partitions routed differently.
    #[error("partitions {0} and {1} are routed differently")]
    RoutingDiffers(PartitionId, PartitionId),
    /// A merge of hash ranges that do not touch.
    #[error("the hash ranges of partitions {0} and {1} are not adjacent")]
    NotAdjacent(PartitionId, PartitionId),
    /// The partition is the survivor of a merge under way (`Active`, importing the source's
    /// range): its range cannot change before the merge's phase 2. (Splitting it, merging it
    /// again or removing it would leave the merge's source naming a partner that no longer
    /// names it back: a map every node refuses.)
    #[error("partition {partition} is importing from partition {from}: a merge is under way")]
    Importing {
        /// The partition.
        partition: PartitionId,
        /// The merge's source it imports from.
        from: PartitionId,
    },
    /// Phase 2 of a transfer that is not in the map (no `Splitting` source or `Draining`
    /// range exporting to a partner that imports from it).
    #[error("partition {0} is not the source of a split or merge under way")]
    NoTransfer(PartitionId),
}

/// Kommander's default split boundary of `[start, end]`: `start + (end − start) / 2`, so the
/// source keeps `[start, boundary − 1]` (computed in 64 bits: no overflow).
#[must_use]
pub fn default_boundary(start: i32, end: i32) -> i32 {
    let middle = i64::from(start) + (i64::from(end) - i64::from(start)) / 2;
    // Between start and end: fits an i32.
    i32::try_from(middle).unwrap_or(end)
}

impl PartitionMap {
    /// Phase 1 of splitting `source` at `boundary` (default: Kommander's midpoint,
    /// `start + (end − start) / 2`) into `target` (default: [`PartitionMap::next_available_partition_id`]).
    ///
    /// # Errors
    /// [`TransitionError`]: the source unknown or not `Active`, the target taken, the range a
    /// single value, the boundary outside `start < boundary <= end`.
    pub fn split_phase_1(
        &self,
        source: PartitionId,
        boundary: Option<i32>,
        target: Option<PartitionId>,
    ) -> Result<Self, TransitionError> {
        let range = self.active(source)?;
        let target = match target {
            Some(target) => target,
            None => self
                .next_available_partition_id()
                .ok_or(TransitionError::IdsExhausted)?,
        };
        if target == SYSTEM_PARTITION || self.get(target).is_some() {
            return Err(TransitionError::TargetTaken(target));
        }
        let (kept, moved) = if range.routing == RoutingMode::Unrouted {
            ((range.start, range.end), (0, 0))
        } else {
            if range.start == range.end {
                return Err(TransitionError::Unsplittable(source));
            }
            let boundary = boundary.unwrap_or_else(|| default_boundary(range.start, range.end));
            if boundary <= range.start || boundary > range.end {
                return Err(TransitionError::InvalidBoundary {
                    boundary,
                    start: range.start,
                    end: range.end,
                });
            }
            ((range.start, boundary - 1), (boundary, range.end))
        };
        let new_target = PartitionRange {
            partition_id: target,
            start: moved.0,
            end: moved.1,
            generation: 1,
            state: RangeState::Splitting,
            routing: range.routing,
            importing_from: Some(source),
            exporting_to: None,
            // Set by the map change that proposes it (partition 0's committed members then).
            first: None,
        };
        let mut next = self.next_version();
        let shrunk = next.range_mut(source)?;
        (shrunk.start, shrunk.end) = kept;
        shrunk.generation += 1;
        shrunk.state = RangeState::Splitting;
        shrunk.exporting_to = Some(target);
        next.partitions.push(new_target);
        next.partitions.sort_by_key(|r| r.partition_id);
        Ok(next)
    }

    /// Phase 2 of the split whose source is `source`: source and target `Active` at
    /// generation + 1, the partners cleared.
    ///
    /// # Errors
    /// [`TransitionError::NoTransfer`] when `source` is not a `Splitting` source whose target
    /// imports from it.
    pub fn split_phase_2(&self, source: PartitionId) -> Result<Self, TransitionError> {
        let target = self.partner_of(source, RangeState::Splitting)?;
        let mut next = self.next_version();
        for id in [source, target] {
            let range = next.range_mut(id)?;
            range.state = RangeState::Active;
            range.generation += 1;
            range.importing_from = None;
            range.exporting_to = None;
        }
        Ok(next)
    }

    /// Phase 1 of merging `source` into `survivor`: both `Active`, routed alike, adjacent when
    /// hash-routed; the source `Draining` at generation + 1, the survivor importing from it.
    ///
    /// # Errors
    /// [`TransitionError`]: either unknown or not `Active`, the same partition, routed
    /// differently, not adjacent.
    pub fn merge_phase_1(
        &self,
        survivor: PartitionId,
        source: PartitionId,
    ) -> Result<Self, TransitionError> {
        if survivor == source {
            return Err(TransitionError::SamePartition(source));
        }
        let kept = self.active(survivor)?;
        let gone = self.active(source)?;
        if kept.routing != gone.routing {
            return Err(TransitionError::RoutingDiffers(survivor, source));
        }
        let adjacent = i64::from(kept.end) + 1 == i64::from(gone.start)
            || i64::from(gone.end) + 1 == i64::from(kept.start);
        if kept.routing == RoutingMode::HashRange && !adjacent {
            return Err(TransitionError::NotAdjacent(survivor, source));
        }
        let mut next = self.next_version();
        let draining = next.range_mut(source)?;
        draining.state = RangeState::Draining;
        draining.generation += 1;
        draining.exporting_to = Some(survivor);
        next.range_mut(survivor)?.importing_from = Some(source);
        Ok(next)
    }

    /// Phase 2 of the merge whose source is `source`: the survivor owns both ranges at
    /// generation + 1, the source is a tombstone at generation + 1.
    ///
    /// # Errors
    /// [`TransitionError::NoTransfer`] when `source` is not `Draining` into a survivor that
    /// imports from it.
    pub fn merge_phase_2(&self, source: PartitionId) -> Result<Self, TransitionError> {
        let survivor = self.partner_of(source, RangeState::Draining)?;
        let mut next = self.next_version();
        let gone = next.range_mut(source)?.clone();
        let kept = next.range_mut(survivor)?;
        if kept.routing == RoutingMode::HashRange {
            kept.start = kept.start.min(gone.start);
            kept.end = kept.end.max(gone.end);
        }
        kept.generation += 1;
        kept.importing_from = None;
        let removed = next.range_mut(source)?;
        removed.state = RangeState::Removed;
        removed.generation += 1;
        removed.exporting_to = None;
        // As a removed partition's: no node opens a tombstone.
        removed.first = None;
        Ok(next)
    }

    /// The range of `partition` when it is `Active` and no merge's survivor.
    fn active(&self, partition: PartitionId) -> Result<&PartitionRange, TransitionError> {
        let range = self
            .get(partition)
            .filter(|r| r.state != RangeState::Removed)
            .ok_or(TransitionError::UnknownPartition(partition))?;
        if range.state != RangeState::Active {
            return Err(TransitionError::NotActive {
                partition,
                state: range.state,
            });
        }
        if let Some(from) = range.importing_from {
            return Err(TransitionError::Importing { partition, from });
        }
        Ok(range)
    }

    /// The partner `source` (in `state`) exports to, which imports from it.
    fn partner_of(
        &self,
        source: PartitionId,
        state: RangeState,
    ) -> Result<PartitionId, TransitionError> {
        self.get(source)
            .filter(|r| r.state == state)
            .and_then(|r| r.exporting_to)
            .filter(|&p| self.get(p).and_then(|p| p.importing_from) == Some(source))
            .ok_or(TransitionError::NoTransfer(source))
    }

    /// A copy at the next version.
    fn next_version(&self) -> Self {
        Self {
            version: self.version + 1,
            partitions: self.partitions.clone(),
        }
    }

    /// The range of `partition` (callers looked it up in the map this was copied from).
    fn range_mut(
        &mut self,
        partition: PartitionId,
    ) -> Result<&mut PartitionRange, TransitionError> {
        self.partitions
            .iter_mut()
            .find(|r| r.partition_id == partition)
            .ok_or(TransitionError::UnknownPartition(partition))
    }
}

/// What `target` imports while the map has it filled: the range that moves to it (a split's
/// target: its own range; a merge's survivor: the draining source's range) and the source's
/// generation the import is of. `None` when `target` imports nothing.
#[must_use]
pub fn transfer_into(map: &PartitionMap, target: PartitionId) -> Option<RangeTransfer> {
    let range = map.get(target)?;
    let source = map.get(range.importing_from?)?;
    if source.exporting_to != Some(target) {
        return None;
    }
    let moved = match (range.state, source.state) {
        (RangeState::Splitting, RangeState::Splitting) => range,
        (RangeState::Active, RangeState::Draining) => source,
        _ => return None,
    };
    Some(RangeTransfer {
        source: source.partition_id,
        target,
        generation: source.generation,
        start: moved.start,
        end: moved.end,
    })
}

/// Phase 2 of the first split or merge under way in `map` whose import this node's replica of
/// the importing partition applied through its end (`imported`: [`SplitProgress::import_applied`](super::SplitProgress::import_applied)),
/// of the source's current generation and range ([`transfer_into`]): the next map, and the
/// importing partition's generation in it. `None` when no transfer has ended.
pub(crate) fn phase_2(
    map: &PartitionMap,
    imported: impl Fn(PartitionId) -> Option<RangeTransfer>,
) -> Option<(PartitionMap, u64)> {
    map.partitions.iter().find_map(|range| {
        let source = range.importing_from?;
        let plan = transfer_into(map, range.partition_id)?;
        if imported(range.partition_id) != Some(plan) {
            return None;
        }
        let next = if range.state == RangeState::Splitting {
            map.split_phase_2(source)
        } else {
            map.merge_phase_2(source)
        }
        .ok()?;
        let generation = next.get(range.partition_id)?.generation;
        Some((next, generation))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: PartitionId = PartitionId(1);
    const P2: PartitionId = PartitionId(2);
    const P3: PartitionId = PartitionId(3);

    #[test]
    fn the_default_boundary_is_kommanders_midpoint() {
        assert_eq!(default_boundary(0, i32::MAX), 1_073_741_823);
        assert_eq!(default_boundary(10, 11), 10);
        assert_eq!(default_boundary(10, 13), 11);
        assert_eq!(default_boundary(i32::MAX - 1, i32::MAX), i32::MAX - 1);
    }

    #[test]
    fn a_split_shrinks_the_source_and_adds_the_target_then_activates_both() {
        let map = PartitionMap::initial(2).expect("a map");
        let (start, end) = (map.partitions[0].start, map.partitions[0].end);
        let one = map.split_phase_1(P1, None, None).expect("phase 1");
        one.validate().expect("a valid map");
        assert_eq!(one.version, 2);
        let boundary = default_boundary(start, end);
        let source = one.get(P1).expect("source");
        assert_eq!((source.start, source.end), (start, boundary - 1));
        assert_eq!(
            (source.generation, source.state),
            (2, RangeState::Splitting)
        );
        assert_eq!(source.exporting_to, Some(P3));
        let target = one.get(P3).expect("target, the next id");
        assert_eq!((target.start, target.end), (boundary, end));
        assert_eq!(
            (target.generation, target.state),
            (1, RangeState::Splitting)
        );
        assert_eq!(target.importing_from, Some(P1));
        assert_eq!(
            transfer_into(&one, P3),
            Some(RangeTransfer {
                source: P1,
                target: P3,
                generation: 2,
                start: boundary,
                end,
            })
        );
        assert_eq!(transfer_into(&one, P2), None);
        // Routing: the upper half now belongs to the target.
        assert_eq!(one.partition_for_hash(boundary), Ok(P3));
        assert_eq!(one.partition_for_hash(boundary - 1), Ok(P1));

        let two = one.split_phase_2(P1).expect("phase 2");
        two.validate().expect("a valid map");
        assert_eq!(two.version, 3);
        for (id, generation) in [(P1, 3), (P3, 2)] {
            let range = two.get(id).expect("range");
            assert_eq!(
                (range.state, range.generation),
                (RangeState::Active, generation)
            );
            assert_eq!((range.importing_from, range.exporting_to), (None, None));
        }
        assert_eq!(transfer_into(&two, P3), None);
        assert_eq!(two.split_phase_2(P1), Err(TransitionError::NoTransfer(P1)));
    }

    #[test]
    fn a_split_is_refused_as_kommander_refuses_it() {
        let map = PartitionMap::initial(2).expect("a map");
        let (start, end) = (map.partitions[0].start, map.partitions[0].end);
        assert_eq!(
            map.split_phase_1(PartitionId(7), None, None),
            Err(TransitionError::UnknownPartition(PartitionId(7)))
        );
        assert_eq!(
            map.split_phase_1(P1, None, Some(P2)),
            Err(TransitionError::TargetTaken(P2))
        );
        assert_eq!(
            map.split_phase_1(P1, None, Some(SYSTEM_PARTITION)),
            Err(TransitionError::TargetTaken(SYSTEM_PARTITION))
        );
        for boundary in [start, end + 1, -5] {
            assert_eq!(
                map.split_phase_1(P1, Some(boundary), None),
                Err(TransitionError::InvalidBoundary {
                    boundary,
                    start,
                    end
                })
            );
        }
        // The boundary may be the last value: the target owns one hash.
        let edge = map
            .split_phase_1(P1, Some(end), Some(PartitionId(9)))
            .expect("edge");
        let target = edge.get(PartitionId(9)).expect("target");
        assert_eq!((target.start, target.end), (end, end));
        // A single value cannot split; a splitting range cannot split again.
        assert_eq!(
            edge.split_phase_1(PartitionId(9), None, None),
            Err(TransitionError::NotActive {
                partition: PartitionId(9),
                state: RangeState::Splitting
            })
        );
        let two = edge.split_phase_2(P1).expect("phase 2");
        assert_eq!(
            two.split_phase_1(PartitionId(9), None, None),
            Err(TransitionError::Unsplittable(PartitionId(9)))
        );
        // A tombstone's id is never reused, and counts for the next id.
        let mut removed = map.clone();
        removed.partitions[1].state = RangeState::Removed;
        assert_eq!(
            removed.split_phase_1(P1, None, Some(P2)),
            Err(TransitionError::TargetTaken(P2))
        );
        assert_eq!(
            removed.split_phase_1(P2, None, None),
            Err(TransitionError::UnknownPartition(P2))
        );
        assert_eq!(removed.next_available_partition_id(), Some(P3));
    }

    #[test]
    fn an_unrouted_split_makes_an_unrouted_target() {
        let mut map = PartitionMap::initial(1).expect("a map");
        map.partitions[0].routing = RoutingMode::Unrouted;
        let one = map.split_phase_1(P1, None, None).expect("phase 1");
        one.validate().expect("a valid map");
        let target = one.get(P2).expect("target");
        assert_eq!((target.start, target.end), (0, 0));
        assert_eq!(target.routing, RoutingMode::Unrouted);
        assert_eq!(one.get(P1).map(|r| (r.start, r.end)), Some((0, i32::MAX)));
    }

    #[test]
    fn a_merge_drains_the_source_then_widens_the_survivor_and_tombstones_the_source() {
        let mut map = PartitionMap::initial(3).expect("a map");
        // A source created by a map change carries its first configuration.
        map.partitions[2].first = Some(crate::shard::partitions::FirstMembers {
            voters: vec![crate::core::NodeId(1)],
            learners: Vec::new(),
        });
        let one = map.merge_phase_1(P2, P3).expect("phase 1");
        one.validate().expect("a valid map");
        let source = one.get(P3).expect("source");
        assert_eq!((source.state, source.generation), (RangeState::Draining, 2));
        assert_eq!(source.exporting_to, Some(P2));
        let survivor = one.get(P2).expect("survivor");
        assert_eq!(survivor.state, RangeState::Active);
        assert_eq!(survivor.generation, 1);
        assert_eq!(survivor.importing_from, Some(P3));
        assert_eq!(
            transfer_into(&one, P2),
            Some(RangeTransfer {
                source: P3,
                target: P2,
                generation: 2,
                start: map.partitions[2].start,
                end: i32::MAX,
            })
        );
        let two = one.merge_phase_2(P3).expect("phase 2");
        two.validate().expect("a valid map");
        let survivor = two.get(P2).expect("survivor");
        assert_eq!(
            (survivor.start, survivor.end, survivor.generation),
            (map.partitions[1].start, i32::MAX, 2)
        );
        assert_eq!(survivor.importing_from, None);
        let gone = two.get(P3).expect("tombstone");
        assert_eq!((gone.state, gone.generation), (RangeState::Removed, 3));
        assert_eq!((gone.exporting_to, gone.first.clone()), (None, None));
        assert_eq!(two.partition_for_hash(i32::MAX), Ok(P2));
        // The survivor may be the upper range too.
        let down = map.merge_phase_1(P2, P1).expect("phase 1");
        let two = down.merge_phase_2(P1).expect("phase 2");
        let survivor = two.get(P2).expect("survivor");
        assert_eq!((survivor.start, survivor.end), (0, map.partitions[1].end));
    }

    #[test]
    fn a_merge_is_refused_as_kommander_refuses_it() {
        let map = PartitionMap::initial(3).expect("a map");
        assert_eq!(
            map.merge_phase_1(P1, P1),
            Err(TransitionError::SamePartition(P1))
        );
        assert_eq!(
            map.merge_phase_1(P1, P3),
            Err(TransitionError::NotAdjacent(P1, P3))
        );
        assert_eq!(
            map.merge_phase_1(P1, PartitionId(4)),
            Err(TransitionError::UnknownPartition(PartitionId(4)))
        );
        let mut unrouted = map.clone();
        unrouted.partitions[1].routing = RoutingMode::Unrouted;
        assert_eq!(
            unrouted.merge_phase_1(P1, P2),
            Err(TransitionError::RoutingDiffers(P1, P2))
        );
        let draining = map.merge_phase_1(P1, P2).expect("phase 1");
        assert_eq!(
            draining.merge_phase_1(P3, P2),
            Err(TransitionError::NotActive {
                partition: P2,
                state: RangeState::Draining
            })
        );
        assert_eq!(
            draining.split_phase_1(P2, None, None),
            Err(TransitionError::NotActive {
                partition: P2,
                state: RangeState::Draining
            })
        );
        // The survivor is Active but importing: neither split nor merged again (the node
        // simulator's elastic sweep split a survivor mid-merge; phase 2 then left the source
        // naming a partner that did not name it back).
        let importing = Err(TransitionError::Importing {
            partition: P1,
            from: P2,
        });
        assert_eq!(draining.split_phase_1(P1, None, None), importing);
        assert_eq!(draining.merge_phase_1(P1, P3), importing);
        assert_eq!(
            draining.merge_phase_2(P1),
            Err(TransitionError::NoTransfer(P1))
        );
        assert_eq!(
            draining.split_phase_2(P2),
            Err(TransitionError::NoTransfer(P2))
        );
    }

    #[test]
    fn phase_2_is_due_once_the_import_of_the_sources_current_generation_ended() {
        let map = PartitionMap::initial(3).expect("a map");
        let split = map
            .split_phase_1(P1, None, Some(PartitionId(4)))
            .expect("phase 1");
        let plan = transfer_into(&split, PartitionId(4)).expect("imports");
        assert_eq!(phase_2(&split, |_| None), None);
        let stale = RangeTransfer {
            generation: plan.generation - 1,
            ..plan
        };
        assert_eq!(phase_2(&split, |_| Some(stale)), None, "an older import");
        let (next, generation) =
            phase_2(&split, |t| (t == PartitionId(4)).then_some(plan)).expect("due");
        assert_eq!(next, split.split_phase_2(P1).expect("phase 2"));
        assert_eq!(generation, 2);
        // Nothing is due once it took effect.
        assert_eq!(phase_2(&next, |_| Some(plan)), None);

        let merge = map.merge_phase_1(P2, P3).expect("phase 1");
        let plan = transfer_into(&merge, P2).expect("imports");
        let (next, generation) = phase_2(&merge, |t| (t == P2).then_some(plan)).expect("due");
        assert_eq!(next, merge.merge_phase_2(P3).expect("phase 2"));
        assert_eq!(generation, 2);
    }
}
