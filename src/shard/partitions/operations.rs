//! Map operations (decision 0006 point 3): from the committed map and an operation, the next
//! map (version + 1) or why there is none — Kommander's rules for each (`CreatePartitionAsync`,
//! `RemovePartitionAsync`, and the cluster's first map). Pure: partition 0's leader's shard
//! proposes the map this returns as one `_RaftSystem` entry (`shard/worker/map_change.rs`).
//!
//! * [`MapOperation::Initialize`]: the first map ([`PartitionMap::initial`]) when none is
//!   committed; already done once one is.
//! * [`MapOperation::Create`]: a new id (not 0); an id the map holds answers already done with
//!   its generation, unless it is a tombstone, which is never recreated. An unrouted partition
//!   takes the range `[0, 0]` unless one is given; a hash-routed one needs a range
//!   `start <= end` inside `0..=i32::MAX` overlapping no routable range. Generation 1, active,
//!   with the first configuration the proposer gives.
//! * [`MapOperation::Remove`]: the id must be in the map; a tombstone is already done with its
//!   generation; a range being split or merged is refused (a merge's survivor included);
//!   otherwise it becomes a tombstone,
//!   generation + 1, keeping its range (its first configuration goes: no node opens it).
//! * [`MapOperation::Split`]: phase 1 of the split ([`PartitionMap::split_phase_1`], refused as
//!   Kommander refuses it), the target's first configuration the one the proposer gives; the
//!   answer is the source's generation. Already done when the explicit target imports from the
//!   source (phase 1 committed), or when, hash-routed past its first generation, it starts
//!   right after the source's last hash (and at the boundary, when one is given: phase 2 left
//!   no partner to check). A split with an automatic target cannot tell a retry from a new
//!   split: once the first took effect a retry is refused while the source is `Splitting`,
//!   and after phase 2 it splits the source again into the next id.
//! * [`MapOperation::Merge`]: phase 1 of the merge ([`PartitionMap::merge_phase_1`]); the
//!   answer is the survivor's generation. Already done while the source drains into the
//!   survivor, or once the source is a hash-routed tombstone at an edge of the survivor's
//!   range (phase 2 widened it over the source's).
//!
//! Phase 2 of either is no operation: partition 0's leader proposes it on its own once the
//! import ended (`shard/worker/phase_two.rs`).
//!
//! Every next map is validated and must fit partition 0's floor meta with its real encoding
//! (`floor_meta.rs`), and the partitions it hosts must stay within `partitions_max`.

use super::floor_meta::floor_meta_len_with;
use super::map::{
    FirstMembers, HASH_SPACE_END, PartitionMap, PartitionMapError, PartitionRange, RangeState,
    RoutingMode,
};
use super::transitions::TransitionError;
use crate::core::PartitionId;
use crate::shard::SYSTEM_PARTITION;

/// A change of the partition map, carried out by partition 0's leader (Kommander's partition
/// lifecycle operations).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapOperation {
    /// The cluster's first map, of `partitions` hash ranges ([`PartitionMap::initial`]).
    Initialize {
        /// How many user partitions.
        partitions: u32,
    },
    /// Create a partition (Kommander's `CreatePartitionAsync`).
    Create {
        /// The new partition's id.
        partition: PartitionId,
        /// How keys reach it.
        spec: CreatePartition,
    },
    /// Remove a partition (Kommander's `RemovePartitionAsync`): its range becomes a tombstone,
    /// never reused.
    Remove {
        /// The partition.
        partition: PartitionId,
    },
    /// Phase 1 of splitting a partition in two (Kommander's `SplitPartitionAsync`); partition
    /// 0's leader proposes phase 2 once the target imported the moved range.
    Split {
        /// The partition split: it keeps the lower hashes.
        source: PartitionId,
        /// The target and the boundary.
        plan: SplitPlan,
    },
    /// Phase 1 of merging a partition into another (Kommander's `MergePartitionsAsync`);
    /// partition 0's leader proposes phase 2 once the survivor imported the source's range.
    Merge {
        /// The partition that stays and owns both ranges.
        survivor: PartitionId,
        /// The partition that drains into it and becomes a tombstone.
        source: PartitionId,
    },
}

/// Where a split cuts and what it makes: Kommander's split arguments, each optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SplitPlan {
    /// The new partition's id (`None`: the next available id, tombstones counted).
    pub target: Option<PartitionId>,
    /// The first hash the target owns (`None`: Kommander's midpoint of the source's range
    /// `[start, end]`, `start + (end − start) / 2`); ignored for an unrouted source, whose
    /// target is unrouted too.
    pub boundary: Option<i32>,
}

/// How a partition is created: Kommander's routing mode and optional hash range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreatePartition {
    /// How keys reach it ([`RoutingMode::Unrouted`] by default: by partition id only).
    pub routing: RoutingMode,
    /// The hash range, both ends inclusive: required for [`RoutingMode::HashRange`]; an
    /// unrouted partition takes `[0, 0]` without one.
    pub range: Option<(i32, i32)>,
}

impl Default for CreatePartition {
    /// Kommander's defaults: unrouted, no range.
    fn default() -> Self {
        Self {
            routing: RoutingMode::Unrouted,
            range: None,
        }
    }
}

impl CreatePartition {
    /// An unrouted partition (addressed by id only).
    #[must_use]
    pub fn unrouted() -> Self {
        Self::default()
    }

    /// A hash-routed partition owning the hashes `start..=end`.
    #[must_use]
    pub fn hash_range(start: i32, end: i32) -> Self {
        Self {
            routing: RoutingMode::HashRange,
            range: Some((start, end)),
        }
    }
}

/// Why a map operation was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapOperationError {
    /// The operation names partition 0, the system partition, which no map holds.
    #[error("partition {SYSTEM_PARTITION} is the system partition")]
    SystemPartition,
    /// No map is committed yet (the cluster is not initialized).
    #[error("no partition map is committed yet")]
    NoMap,
    /// The id is a tombstone: a removed partition's id is never reused.
    #[error("partition {0} was removed; its id is never reused")]
    Tombstoned(PartitionId),
    /// The partition is not in the map.
    #[error("partition {0} is not in the map")]
    NotFound(PartitionId),
    /// A hash-routed partition needs a hash range.
    #[error("a hash-routed partition needs a hash range")]
    MissingRange,
    /// The range is not `start <= end` inside `0..=i32::MAX`.
    #[error("the hash range [{start}, {end}] is not inside 0..={HASH_SPACE_END} with start <= end")]
    InvalidRange {
        /// Its start.
        start: i32,
        /// Its end.
        end: i32,
    },
    /// The range overlaps the routable range of `0`.
    #[error("the hash range overlaps partition {0}'s")]
    Overlap(PartitionId),
    /// The partition is being split or merged: its range cannot change before that ends.
    #[error("partition {partition} is {state:?}")]
    InTransition {
        /// The partition.
        partition: PartitionId,
        /// Its state.
        state: RangeState,
    },
    /// The map would hold more partitions than a node hosts (`partitions_max`, partition 0
    /// included).
    #[error("the map would hold more partitions than partitions_max = {max}")]
    TooManyPartitions {
        /// The limit.
        max: usize,
    },
    /// The next map's encoding would not fit partition 0's floor meta
    /// (`partition_map_ranges_max`).
    #[error("the next map needs a floor meta of {len} bytes, over {max}")]
    TooLarge {
        /// The floor meta it needs.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The next map is not a valid map (an invalid first map: no partition, too many).
    #[error(transparent)]
    Map(#[from] PartitionMapError),
    /// A split or merge breaks one of Kommander's rules for it.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// How partition 0's leader answered a map change ([`Request::ChangeMap`](crate::shard::Request::ChangeMap)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapChangeAnswer {
    /// The map entry committed and is the map partition 0's shard applied.
    Changed {
        /// The version of the new map.
        version: u64,
        /// The generation of the operation's range in it.
        generation: u64,
    },
    /// The operation was already true of the committed map (a retry): nothing was proposed.
    AlreadyDone {
        /// The generation of the operation's range.
        generation: u64,
    },
    /// The operation breaks a rule or a limit: nothing changed.
    Refused(MapOperationError),
    /// Another map change is in flight on partition 0's leader, or the leader has not applied
    /// every committed map yet (a new leader): nothing changed. Retry.
    InFlight,
    /// The entry committed but another map of the same version was applied before it (two
    /// leaders in a row proposed one each): the change did not take effect. Retry.
    Superseded,
    /// Leadership was lost before the entry committed: it may still commit. Retry: a retry of
    /// a change that took effect answers [`MapChangeAnswer::AlreadyDone`].
    Unknown,
}

/// What an operation does to the committed map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Planned {
    /// The next map (version + 1) to propose; `generation` is the operation's range's in it.
    Next {
        /// The map.
        map: PartitionMap,
        /// The generation of the range the operation made (1 for the first map's ranges).
        generation: u64,
    },
    /// The operation is already true of the map (a retry): nothing to propose.
    AlreadyDone {
        /// The generation of the operation's range.
        generation: u64,
    },
}

/// The limits a next map must stay within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MapLimits {
    /// Partitions a node hosts at most (partition 0 included).
    pub(crate) partitions_max: usize,
    /// Partition 0's WAL `floor_meta_bytes_max`.
    pub(crate) floor_meta_bytes_max: usize,
}

impl PartitionMap {
    /// What `operation` does to this map (the committed one): the next map or already done;
    /// `first` is the first configuration of a partition it creates. See the module docs.
    ///
    /// # Errors
    /// The rule the operation breaks, or the limit the next map would break.
    pub(crate) fn plan(
        &self,
        operation: &MapOperation,
        first: &FirstMembers,
        limits: MapLimits,
    ) -> Result<Planned, MapOperationError> {
        let planned = match operation {
            MapOperation::Initialize { partitions } => {
                if self.version > 0 {
                    return Ok(Planned::AlreadyDone { generation: 1 });
                }
                Planned::Next {
                    map: Self::initial(*partitions)?,
                    generation: 1,
                }
            }
            MapOperation::Create { partition, spec } => self.create(*partition, *spec, first)?,
            MapOperation::Remove { partition } => self.remove(*partition)?,
            MapOperation::Split { source, plan } => self.split(*source, *plan, first)?,
            MapOperation::Merge { survivor, source } => self.merge(*survivor, *source)?,
        };
        if let Planned::Next { map, .. } = &planned {
            map.validate()?;
            // Partition 0 beside the map's partitions.
            if map.hosted().count() + 1 > limits.partitions_max {
                return Err(MapOperationError::TooManyPartitions {
                    max: limits.partitions_max,
                });
            }
            let len = floor_meta_len_with(map.encode().len());
            if len > limits.floor_meta_bytes_max {
                return Err(MapOperationError::TooLarge {
                    len,
                    max: limits.floor_meta_bytes_max,
                });
            }
        }
        Ok(planned)
    }

    /// The id after the highest one the map holds, tombstones included (Kommander's
    /// `NextAvailablePartitionId`): 1 for an empty map; `None` when the highest is
    /// `u32::MAX`.
    #[must_use]
    pub fn next_available_partition_id(&self) -> Option<PartitionId> {
        let highest = self
            .partitions
            .iter()
            .map(|r| r.partition_id.0)
            .max()
            .unwrap_or(0);
        highest.checked_add(1).map(PartitionId)
    }

    fn create(
        &self,
        partition: PartitionId,
        spec: CreatePartition,
        first: &FirstMembers,
    ) -> Result<Planned, MapOperationError> {
        if partition == SYSTEM_PARTITION {
            return Err(MapOperationError::SystemPartition);
        }
        if self.version == 0 {
            return Err(MapOperationError::NoMap);
        }
        if let Some(existing) = self.get(partition) {
            if existing.state == RangeState::Removed {
                return Err(MapOperationError::Tombstoned(partition));
            }
            return Ok(Planned::AlreadyDone {
                generation: existing.generation,
            });
        }
        let (start, end) = match (spec.routing, spec.range) {
            (_, Some(range)) => range,
            (RoutingMode::Unrouted, None) => (0, 0),
            (RoutingMode::HashRange, None) => return Err(MapOperationError::MissingRange),
        };
        if start < 0 || start > end {
            return Err(MapOperationError::InvalidRange { start, end });
        }
        if spec.routing == RoutingMode::HashRange
            && let Some(other) = self.routable().find(|r| r.start <= end && start <= r.end)
        {
            return Err(MapOperationError::Overlap(other.partition_id));
        }
        let mut map = self.clone();
        map.version += 1;
        let at = map
            .partitions
            .partition_point(|r| r.partition_id < partition);
        map.partitions.insert(
            at,
            PartitionRange {
                partition_id: partition,
                start,
                end,
                generation: 1,
                state: RangeState::Active,
                routing: spec.routing,
                importing_from: None,
                exporting_to: None,
                first: Some(first.clone()),
            },
        );
        Ok(Planned::Next { map, generation: 1 })
    }

    fn remove(&self, partition: PartitionId) -> Result<Planned, MapOperationError> {
        if partition == SYSTEM_PARTITION {
            return Err(MapOperationError::SystemPartition);
        }
        if self.version == 0 {
            return Err(MapOperationError::NoMap);
        }
        let Some(existing) = self.get(partition) else {
            return Err(MapOperationError::NotFound(partition));
        };
        match existing.state {
            RangeState::Removed => {
                return Ok(Planned::AlreadyDone {
                    generation: existing.generation,
                });
            }
            state @ (RangeState::Splitting | RangeState::Draining) => {
                return Err(MapOperationError::InTransition { partition, state });
            }
            RangeState::Active => {}
        }
        if let Some(from) = existing.importing_from {
            // A merge's survivor: the merge's source would name a tombstone as its partner.
            return Err(TransitionError::Importing { partition, from }.into());
        }
        let mut map = self.clone();
        map.version += 1;
        let mut generation = 0;
        for range in &mut map.partitions {
            if range.partition_id == partition {
                range.state = RangeState::Removed;
                range.generation += 1;
                range.first = None;
                generation = range.generation;
            }
        }
        Ok(Planned::Next { map, generation })
    }

    fn split(
        &self,
        source: PartitionId,
        plan: SplitPlan,
        first: &FirstMembers,
    ) -> Result<Planned, MapOperationError> {
        if source == SYSTEM_PARTITION {
            return Err(MapOperationError::SystemPartition);
        }
        if self.version == 0 {
            return Err(MapOperationError::NoMap);
        }
        if let Some(generation) = self.split_done(source, plan) {
            return Ok(Planned::AlreadyDone { generation });
        }
        let mut map = self.split_phase_1(source, plan.boundary, plan.target)?;
        let kept = map.get(source).map(|r| (r.generation, r.exporting_to));
        let Some((generation, target)) = kept else {
            return Err(MapOperationError::NotFound(source));
        };
        for range in &mut map.partitions {
            if Some(range.partition_id) == target {
                range.first = Some(first.clone());
            }
        }
        Ok(Planned::Next { map, generation })
    }

    /// The source's generation when the split of `source` into `plan.target` already took
    /// effect (see the module docs); `None` for an automatic target.
    fn split_done(&self, source: PartitionId, plan: SplitPlan) -> Option<u64> {
        let target_id = plan.target?;
        let kept = self
            .get(source)
            .filter(|r| r.state != RangeState::Removed)?;
        let target = self
            .get(target_id)
            .filter(|r| r.state != RangeState::Removed)?;
        let under_way = kept.state == RangeState::Splitting
            && kept.exporting_to == Some(target_id)
            && target.importing_from == Some(source);
        let hash_routed = kept.routing == RoutingMode::HashRange;
        let completed = hash_routed
            && target.routing == RoutingMode::HashRange
            && target.generation > 1
            && i64::from(kept.end) + 1 == i64::from(target.start);
        let at_boundary = !hash_routed || plan.boundary.is_none_or(|b| b == target.start);
        ((under_way || completed) && at_boundary).then_some(kept.generation)
    }

    fn merge(
        &self,
        survivor: PartitionId,
        source: PartitionId,
    ) -> Result<Planned, MapOperationError> {
        if survivor == SYSTEM_PARTITION || source == SYSTEM_PARTITION {
            return Err(MapOperationError::SystemPartition);
        }
        if self.version == 0 {
            return Err(MapOperationError::NoMap);
        }
        if let (Some(kept), Some(gone)) = (self.get(survivor), self.get(source))
            && survivor != source
            && kept.state != RangeState::Removed
        {
            let under_way = gone.state == RangeState::Draining
                && gone.exporting_to == Some(survivor)
                && kept.importing_from == Some(source);
            let completed = gone.state == RangeState::Removed
                && kept.routing == RoutingMode::HashRange
                && gone.routing == RoutingMode::HashRange
                && kept.start <= gone.start
                && gone.end <= kept.end
                && (gone.start == kept.start || gone.end == kept.end);
            if under_way || completed {
                return Ok(Planned::AlreadyDone {
                    generation: kept.generation,
                });
            }
        }
        let map = self.merge_phase_1(survivor, source)?;
        let generation = map.get(survivor).map_or(0, |r| r.generation);
        Ok(Planned::Next { map, generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeId;
    use crate::shard::partitions::floor_meta_bytes_max;
    use crate::shard::partitions::transitions::TransitionError;

    const LIMITS: MapLimits = MapLimits {
        partitions_max: 64,
        floor_meta_bytes_max: usize::MAX,
    };

    fn first() -> FirstMembers {
        FirstMembers {
            voters: vec![NodeId(1), NodeId(2)],
            learners: vec![NodeId(3)],
        }
    }

    fn plan(map: &PartitionMap, operation: MapOperation) -> Result<Planned, MapOperationError> {
        map.plan(&operation, &first(), LIMITS)
    }

    fn create(partition: u32, spec: CreatePartition) -> MapOperation {
        MapOperation::Create {
            partition: PartitionId(partition),
            spec,
        }
    }

    fn remove(partition: u32) -> MapOperation {
        MapOperation::Remove {
            partition: PartitionId(partition),
        }
    }

    fn next(planned: Result<Planned, MapOperationError>) -> (PartitionMap, u64) {
        match planned {
            Ok(Planned::Next { map, generation }) => (map, generation),
            other => panic!("expected a next map, got {other:?}"),
        }
    }

    /// Partitions 1 and 2 of the first map, 2 removed: its range (the upper half) is free.
    fn with_room() -> PartitionMap {
        next(plan(&PartitionMap::initial(2).expect("a map"), remove(2))).0
    }

    #[test]
    fn the_first_map_is_proposed_once() {
        let (map, generation) = next(plan(
            &PartitionMap::default(),
            MapOperation::Initialize { partitions: 3 },
        ));
        assert_eq!(map, PartitionMap::initial(3).expect("a map"));
        assert_eq!(generation, 1);
        assert_eq!(
            plan(&map, MapOperation::Initialize { partitions: 5 }),
            Ok(Planned::AlreadyDone { generation: 1 })
        );
        assert_eq!(
            plan(
                &PartitionMap::default(),
                MapOperation::Initialize { partitions: 0 }
            ),
            Err(MapOperationError::Map(PartitionMapError::NoPartitions))
        );
    }

    #[test]
    fn create_adds_an_active_range_at_generation_1_with_its_first_configuration() {
        let map = with_room();
        let (unrouted, generation) = next(plan(&map, create(7, CreatePartition::unrouted())));
        assert_eq!(generation, 1);
        assert_eq!(unrouted.version, map.version + 1);
        let range = unrouted.get(PartitionId(7)).expect("created");
        assert_eq!((range.start, range.end), (0, 0));
        assert_eq!((range.generation, range.state), (1, RangeState::Active));
        assert_eq!(range.routing, RoutingMode::Unrouted);
        assert_eq!(range.first, Some(first()));
        // Ordered by id, the others untouched.
        let ids: Vec<u32> = unrouted
            .partitions
            .iter()
            .map(|r| r.partition_id.0)
            .collect();
        assert_eq!(ids, [1, 2, 7]);
        assert_eq!(unrouted.partitions[..2], map.partitions[..]);
        // An unrouted partition overlaps nothing, even with a range given.
        let (_, _) = next(plan(
            &map,
            create(
                8,
                CreatePartition {
                    routing: RoutingMode::Unrouted,
                    range: Some((0, 10)),
                },
            ),
        ));

        let free = map.get(PartitionId(2)).expect("the tombstone").clone();
        let (routed, _) = next(plan(
            &map,
            create(3, CreatePartition::hash_range(free.start, free.end)),
        ));
        let range = routed.get(PartitionId(3)).expect("created");
        assert_eq!((range.start, range.end), (free.start, free.end));
        assert_eq!(range.routing, RoutingMode::HashRange);
        assert_eq!(routed.partition_for_hash(free.end), Ok(PartitionId(3)));
        assert_eq!(
            routed.partition_for_hash(HASH_SPACE_END),
            Ok(PartitionId(3))
        );
    }

    #[test]
    fn create_is_idempotent_and_never_reuses_a_tombstone() {
        let map = with_room();
        let (created, _) = next(plan(&map, create(5, CreatePartition::unrouted())));
        // A retry (even with another spec) answers with the partition's generation.
        assert_eq!(
            plan(&created, create(5, CreatePartition::hash_range(1, 2))),
            Ok(Planned::AlreadyDone { generation: 1 })
        );
        assert_eq!(
            plan(&created, create(1, CreatePartition::unrouted())),
            Ok(Planned::AlreadyDone { generation: 1 })
        );
        assert_eq!(
            plan(&created, create(2, CreatePartition::unrouted())),
            Err(MapOperationError::Tombstoned(PartitionId(2)))
        );
    }

    #[test]
    fn create_refuses_what_kommander_refuses() {
        let map = with_room();
        let p1 = map.get(PartitionId(1)).expect("p1").clone();
        let cases = [
            (
                create(0, CreatePartition::unrouted()),
                MapOperationError::SystemPartition,
            ),
            (
                create(
                    3,
                    CreatePartition {
                        routing: RoutingMode::HashRange,
                        range: None,
                    },
                ),
                MapOperationError::MissingRange,
            ),
            (
                create(3, CreatePartition::hash_range(10, 9)),
                MapOperationError::InvalidRange { start: 10, end: 9 },
            ),
            (
                create(3, CreatePartition::hash_range(-1, 9)),
                MapOperationError::InvalidRange { start: -1, end: 9 },
            ),
            (
                create(
                    3,
                    CreatePartition {
                        routing: RoutingMode::Unrouted,
                        range: Some((5, 4)),
                    },
                ),
                MapOperationError::InvalidRange { start: 5, end: 4 },
            ),
            // Touching partition 1's last hash.
            (
                create(3, CreatePartition::hash_range(p1.end, HASH_SPACE_END)),
                MapOperationError::Overlap(PartitionId(1)),
            ),
            (
                create(3, CreatePartition::hash_range(p1.start, p1.start)),
                MapOperationError::Overlap(PartitionId(1)),
            ),
        ];
        for (operation, error) in cases {
            assert_eq!(plan(&map, operation.clone()), Err(error), "{operation:?}");
        }
        assert_eq!(
            plan(
                &PartitionMap::default(),
                create(3, CreatePartition::unrouted())
            ),
            Err(MapOperationError::NoMap)
        );
        // A tombstone's range is free; adjacent ranges do not overlap.
        next(plan(
            &map,
            create(3, CreatePartition::hash_range(p1.end + 1, p1.end + 1)),
        ));
    }

    #[test]
    fn remove_leaves_a_tombstone_with_its_range_and_the_next_generation() {
        let map = PartitionMap::initial(3).expect("a map");
        let (removed, generation) = next(plan(&map, remove(2)));
        assert_eq!(generation, 2);
        assert_eq!(removed.version, 2);
        let tombstone = removed.get(PartitionId(2)).expect("kept");
        let before = map.get(PartitionId(2)).expect("p2");
        assert_eq!((tombstone.start, tombstone.end), (before.start, before.end));
        assert_eq!(
            (tombstone.state, tombstone.generation),
            (RangeState::Removed, 2)
        );
        assert_eq!(
            removed.hosted().collect::<Vec<_>>(),
            [PartitionId(1), PartitionId(3)]
        );
        // A retry answers with the tombstone's generation.
        assert_eq!(
            plan(&removed, remove(2)),
            Ok(Planned::AlreadyDone { generation: 2 })
        );
        // A created partition's tombstone drops its first configuration: no node opens it.
        let (created, _) = next(plan(&removed, create(9, CreatePartition::unrouted())));
        let (gone, _) = next(plan(&created, remove(9)));
        assert_eq!(gone.get(PartitionId(9)).and_then(|r| r.first.clone()), None);
    }

    #[test]
    fn remove_refuses_what_kommander_refuses() {
        let mut map = PartitionMap::initial(3).expect("a map");
        map.partitions[0].state = RangeState::Splitting;
        map.partitions[1].state = RangeState::Draining;
        assert_eq!(
            plan(&map, remove(1)),
            Err(MapOperationError::InTransition {
                partition: PartitionId(1),
                state: RangeState::Splitting
            })
        );
        assert_eq!(
            plan(&map, remove(2)),
            Err(MapOperationError::InTransition {
                partition: PartitionId(2),
                state: RangeState::Draining
            })
        );
        assert_eq!(
            plan(&map, remove(4)),
            Err(MapOperationError::NotFound(PartitionId(4)))
        );
        let merging = PartitionMap::initial(3)
            .expect("a map")
            .merge_phase_1(PartitionId(3), PartitionId(2))
            .expect("phase 1");
        assert_eq!(
            plan(&merging, remove(3)),
            Err(MapOperationError::Transition(TransitionError::Importing {
                partition: PartitionId(3),
                from: PartitionId(2)
            }))
        );
        assert_eq!(
            plan(&map, remove(0)),
            Err(MapOperationError::SystemPartition)
        );
        assert_eq!(
            plan(&PartitionMap::default(), remove(1)),
            Err(MapOperationError::NoMap)
        );
    }

    #[test]
    fn a_next_map_beyond_the_limits_is_refused() {
        let map = PartitionMap::initial(2).expect("a map");
        // Partition 0 and the map's two: a third is one too many for 3.
        let three = MapLimits {
            partitions_max: 3,
            ..LIMITS
        };
        let operation = create(3, CreatePartition::unrouted());
        assert_eq!(
            map.plan(&operation, &first(), three),
            Err(MapOperationError::TooManyPartitions { max: 3 })
        );
        // Removing frees room; a tombstone is not hosted.
        let (removed, _) = next(map.plan(&remove(2), &first(), three));
        next(removed.plan(&operation, &first(), three));
        // The real encoding is checked, first configuration included: a bound with room for
        // the map as it is has none for a third range.
        let tight = MapLimits {
            floor_meta_bytes_max: floor_meta_len_with(removed.encode().len()),
            ..LIMITS
        };
        assert!(matches!(
            removed.plan(&operation, &first(), tight),
            Err(MapOperationError::TooLarge { .. })
        ));
        let roomy = MapLimits {
            floor_meta_bytes_max: floor_meta_bytes_max(4),
            ..LIMITS
        };
        next(removed.plan(&operation, &first(), roomy));
    }

    #[test]
    fn the_next_available_id_counts_tombstones() {
        assert_eq!(
            PartitionMap::default().next_available_partition_id(),
            Some(PartitionId(1))
        );
        let map = PartitionMap::initial(3).expect("a map");
        assert_eq!(map.next_available_partition_id(), Some(PartitionId(4)));
        let (removed, _) = next(plan(&map, remove(3)));
        assert_eq!(removed.next_available_partition_id(), Some(PartitionId(4)));
        let (high, _) = next(plan(
            &removed,
            create(u32::MAX, CreatePartition::unrouted()),
        ));
        assert_eq!(high.next_available_partition_id(), None);
    }

    fn split(source: u32, target: Option<u32>, boundary: Option<i32>) -> MapOperation {
        MapOperation::Split {
            source: PartitionId(source),
            plan: SplitPlan {
                target: target.map(PartitionId),
                boundary,
            },
        }
    }

    fn merge(survivor: u32, source: u32) -> MapOperation {
        MapOperation::Merge {
            survivor: PartitionId(survivor),
            source: PartitionId(source),
        }
    }

    #[test]
    fn a_split_gives_its_target_the_proposers_first_configuration_and_answers_the_sources_generation()
     {
        let map = PartitionMap::initial(2).expect("a map");
        let (one, generation) = next(plan(&map, split(1, Some(5), Some(100))));
        assert_eq!(generation, 2, "the source's generation");
        let target = one.get(PartitionId(5)).expect("target");
        assert_eq!(target.first, Some(first()));
        assert_eq!((target.start, target.state), (100, RangeState::Splitting));
        assert_eq!(one.get(PartitionId(1)).and_then(|r| r.first.clone()), None);
        // Kommander's refusals, typed.
        assert_eq!(
            plan(&map, split(1, Some(2), None)),
            Err(MapOperationError::Transition(TransitionError::TargetTaken(
                PartitionId(2)
            )))
        );
        assert_eq!(
            plan(&map, split(0, None, None)),
            Err(MapOperationError::SystemPartition)
        );
        assert_eq!(
            plan(&PartitionMap::default(), split(1, None, None)),
            Err(MapOperationError::NoMap)
        );
    }

    #[test]
    fn a_split_retried_with_its_explicit_target_is_already_done_in_either_phase() {
        let map = PartitionMap::initial(2).expect("a map");
        let (one, _) = next(plan(&map, split(1, Some(5), Some(100))));
        let done = Ok(Planned::AlreadyDone { generation: 2 });
        assert_eq!(plan(&one, split(1, Some(5), Some(100))), done);
        assert_eq!(plan(&one, split(1, Some(5), None)), done);
        // Another boundary is another split: refused, the source is splitting.
        assert!(matches!(
            plan(&one, split(1, Some(5), Some(200))),
            Err(MapOperationError::Transition(
                TransitionError::NotActive { .. }
            ))
        ));
        // An automatic target cannot tell a retry: refused while the source splits...
        assert!(matches!(
            plan(&one, split(1, None, Some(100))),
            Err(MapOperationError::Transition(
                TransitionError::NotActive { .. }
            ))
        ));
        let two = one.split_phase_2(PartitionId(1)).expect("phase 2");
        assert_eq!(
            plan(&two, split(1, Some(5), Some(100))),
            Ok(Planned::AlreadyDone { generation: 3 })
        );
        // ... and splits again after phase 2.
        let (again, _) = next(plan(&two, split(1, None, None)));
        assert!(again.get(PartitionId(6)).is_some());
        // Two ranges of the first map that merely touch are no split of one another.
        assert_eq!(
            plan(&map, split(1, Some(2), None)),
            Err(MapOperationError::Transition(TransitionError::TargetTaken(
                PartitionId(2)
            )))
        );
    }

    #[test]
    fn a_merge_retried_is_already_done_while_draining_and_once_the_source_is_a_tombstone() {
        let map = PartitionMap::initial(3).expect("a map");
        let (one, generation) = next(plan(&map, merge(2, 3)));
        assert_eq!(
            generation, 1,
            "the survivor's generation, unchanged by phase 1"
        );
        assert_eq!(
            plan(&one, merge(2, 3)),
            Ok(Planned::AlreadyDone { generation: 1 })
        );
        let two = one.merge_phase_2(PartitionId(3)).expect("phase 2");
        assert_eq!(
            plan(&two, merge(2, 3)),
            Ok(Planned::AlreadyDone { generation: 2 })
        );
        // A tombstone the survivor does not cover is no merge into it.
        let (removed, _) = next(plan(&map, remove(3)));
        assert_eq!(
            plan(&removed, merge(2, 3)),
            Err(MapOperationError::Transition(
                TransitionError::UnknownPartition(PartitionId(3))
            ))
        );
        assert_eq!(
            plan(&map, merge(1, 3)),
            Err(MapOperationError::Transition(TransitionError::NotAdjacent(
                PartitionId(1),
                PartitionId(3)
            )))
        );
        assert_eq!(
            plan(&map, merge(0, 3)),
            Err(MapOperationError::SystemPartition)
        );
    }
}
