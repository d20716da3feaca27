//! The partition map's data: which user partition owns which slice of the key-hash space, the
//! ranges' states and generations, the map's validation and its encoding (the payload of a
//! `_RaftSystem` entry of partition 0, the map part of partition 0's floor meta and the head of
//! its snapshots). No I/O; routing a key through a map is `routing.rs`.

use serde::{Deserialize, Serialize};

use crate::core::{Configuration, ConfigurationError, NodeId, PartitionId};
use crate::shard::SYSTEM_PARTITION;

/// The top of the key-hash space (inclusive); the bottom is 0.
pub const HASH_SPACE_END: i32 = i32::MAX;

/// How many hash values the space holds (`0..=HASH_SPACE_END`): `2^31`.
pub(super) const HASH_SPACE_SIZE: u32 = HASH_SPACE_END as u32 + 1;

/// How keys reach a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoutingMode {
    /// Keys whose hash falls in the range route here.
    HashRange,
    /// Never chosen by key routing; addressed by partition id only.
    Unrouted,
}

/// The lifecycle state of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeState {
    /// Serving.
    Active,
    /// Being split (second phase pending).
    Splitting,
    /// Being merged away (second phase pending).
    Draining,
    /// Gone; kept as a tombstone so its id is never reused.
    Removed,
}

/// The longest encoding of one range in a map ([`PartitionMap::encode`]): every number at its
/// widest (a validated range's bounds are never negative), the longest state and routing, and
/// both transfer partners named.
const RANGE_ENCODED_BYTES_MAX: usize = r#"{"partition_id":4294967295,"start":2147483647,"end":2147483647,"generation":18446744073709551615,"state":"Splitting","routing":"HashRange","importing_from":4294967295,"exporting_to":4294967295}"#.len();

/// The first configuration of a partition created after the cluster's first map: partition
/// 0's committed voters and learners when its leader proposed the creation. Every node opens
/// the partition with exactly these (its log governs above them), at every restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstMembers {
    /// The voters.
    #[serde(with = "node_ids")]
    pub voters: Vec<NodeId>,
    /// The learners.
    #[serde(with = "node_ids")]
    pub learners: Vec<NodeId>,
}

/// Node ids encoded as their numbers (the core's types carry no serde).
mod node_ids {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::core::NodeId;

    pub(super) fn serialize<S: Serializer>(ids: &[NodeId], to: S) -> Result<S::Ok, S::Error> {
        let numbers: Vec<u64> = ids.iter().map(|id| id.0).collect();
        numbers.serialize(to)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<NodeId>, D::Error> {
        Ok(Vec::<u64>::deserialize(from)?
            .into_iter()
            .map(NodeId)
            .collect())
    }
}

/// One user partition and the hash range it owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    /// The partition id (never the system partition, 0).
    pub partition_id: PartitionId,
    /// First hash owned (inclusive).
    pub start: i32,
    /// Last hash owned (inclusive).
    pub end: i32,
    /// Bumped on every change of this range; writes may fence on it (`PartitionMoved`).
    pub generation: u64,
    /// Lifecycle state.
    pub state: RangeState,
    /// How keys reach it.
    pub routing: RoutingMode,
    /// While a split or merge fills this range: the partition whose data it imports (a
    /// `Splitting` target, or a merge's survivor). Absent from the encoding otherwise, so maps
    /// written before splits existed decode unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importing_from: Option<PartitionId>,
    /// While a split or merge empties (part of) this range: the partition its data moves to (a
    /// `Splitting` source, or a `Draining` range). Absent from the encoding otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporting_to: Option<PartitionId>,
    /// The first configuration of a partition created by a map change (absent from the
    /// ranges of the cluster's first map, which every node opens with the configuration it
    /// decided when it joined, and from tombstones, which no node opens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<FirstMembers>,
}

/// A committed version of the partition map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMap {
    /// Starts at 1 for the first committed map, +1 per change; 0 means "no map yet".
    pub version: u64,
    /// The ranges, ordered by partition id.
    pub partitions: Vec<PartitionRange>,
}

/// Why a partition map was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionMapError {
    /// `initial_partitions` must be at least 1.
    #[error("initial_partitions must be at least 1")]
    NoPartitions,
    /// More initial partitions than hash values (`2^31`): some range would be empty.
    #[error("{0} initial partitions are more than the 2^31 hash values they split")]
    TooManyPartitions(u32),
    /// A range names the system partition.
    #[error("partition {SYSTEM_PARTITION} is the system partition and cannot own keys")]
    SystemPartitionInMap,
    /// Two ranges share an id.
    #[error("partition {0} appears twice in the map")]
    DuplicatePartition(PartitionId),
    /// The ranges are not ordered by partition id (`after` follows `before`).
    #[error("partition {after} follows partition {before}: the ranges must be ordered by id")]
    Unordered {
        /// The range that comes first.
        before: PartitionId,
        /// The range after it, with a lower id.
        after: PartitionId,
    },
    /// A range has `start > end` or reaches outside `0..=i32::MAX`.
    #[error("partition {partition_id} has the invalid hash range [{start}, {end}]")]
    InvalidRange {
        /// The partition.
        partition_id: PartitionId,
        /// Its start.
        start: i32,
        /// Its end.
        end: i32,
    },
    /// Two active hash-routed ranges overlap.
    #[error("partitions {0} and {1} own overlapping hash ranges")]
    Overlap(PartitionId, PartitionId),
    /// A range names a transfer partner (`importing_from`, `exporting_to`) that is not in the
    /// map, is itself, is removed, or does not name it back.
    #[error(
        "partition {partition_id} names partition {partner} as its transfer partner, which does not name it back"
    )]
    UnpairedTransfer {
        /// The range naming the partner.
        partition_id: PartitionId,
        /// The partner it names.
        partner: PartitionId,
    },
    /// A range's first configuration is not a valid configuration.
    #[error("partition {partition_id}'s first configuration: {error}")]
    InvalidFirstMembers {
        /// The partition.
        partition_id: PartitionId,
        /// What is wrong with it.
        error: ConfigurationError,
    },
    /// The bytes are not a partition map.
    #[error("malformed partition map: {0}")]
    Malformed(String),
}

impl PartitionMap {
    /// The first map of a cluster, Kommander's `DivideIntoRanges`: partitions `1..=count`
    /// splitting the `2^31` hash values of `0..=i32::MAX` into contiguous ranges of
    /// `2^31 / count` values, the leftover `2^31 % count` values going one each to the first
    /// ranges; generation 1, active, hash-routed, map version 1.
    ///
    /// # Errors
    /// [`PartitionMapError::NoPartitions`] when `count` is 0,
    /// [`PartitionMapError::TooManyPartitions`] when it exceeds `2^31` (a range would be empty).
    pub fn initial(count: u32) -> Result<Self, PartitionMapError> {
        if count == 0 {
            return Err(PartitionMapError::NoPartitions);
        }
        if count > HASH_SPACE_SIZE {
            return Err(PartitionMapError::TooManyPartitions(count));
        }
        let base = HASH_SPACE_SIZE / count;
        let leftover = HASH_SPACE_SIZE % count;
        let mut next_start: u32 = 0;
        let partitions = (0..count)
            .map(|i| {
                // At least 1, as count <= 2^31; the sizes add up to 2^31, so `end` (and
                // `start`) stay within `0..=i32::MAX` and the casts below are lossless.
                let size = base + u32::from(i < leftover);
                let start = next_start;
                let end = start + (size - 1);
                next_start = end + 1;
                PartitionRange {
                    partition_id: PartitionId(i + 1),
                    start: start as i32,
                    end: end as i32,
                    generation: 1,
                    state: RangeState::Active,
                    routing: RoutingMode::HashRange,
                    importing_from: None,
                    exporting_to: None,
                    first: None,
                }
            })
            .collect();
        debug_assert_eq!(
            next_start, HASH_SPACE_SIZE,
            "the ranges cover the hash space"
        );
        let map = Self {
            version: 1,
            partitions,
        };
        map.validate()?;
        Ok(map)
    }

    /// Checks the map's invariants: ranges ordered by partition id, no system partition,
    /// unique ids, well-formed ranges, valid first configurations, no overlap between active
    /// hash-routed ranges, and transfer partners that exist, are not removed, and name each
    /// other (`importing_from` of one is the other's `exporting_to`).
    ///
    /// # Errors
    /// The first violated invariant.
    pub fn validate(&self) -> Result<(), PartitionMapError> {
        if let Some(w) = self
            .partitions
            .windows(2)
            .find(|w| w[0].partition_id >= w[1].partition_id)
        {
            let (before, after) = (w[0].partition_id, w[1].partition_id);
            return Err(if before == after {
                PartitionMapError::DuplicatePartition(before)
            } else {
                PartitionMapError::Unordered { before, after }
            });
        }
        for r in &self.partitions {
            if r.partition_id == SYSTEM_PARTITION {
                return Err(PartitionMapError::SystemPartitionInMap);
            }
            if r.start < 0 || r.start > r.end {
                return Err(PartitionMapError::InvalidRange {
                    partition_id: r.partition_id,
                    start: r.start,
                    end: r.end,
                });
            }
            if let Some(first) = &r.first {
                Configuration::new(first.voters.clone(), first.learners.clone()).map_err(
                    |error| PartitionMapError::InvalidFirstMembers {
                        partition_id: r.partition_id,
                        error,
                    },
                )?;
            }
        }
        let mut routed: Vec<&PartitionRange> = self.routable().collect();
        routed.sort_by_key(|r| r.start);
        if let Some(w) = routed.windows(2).find(|w| w[1].start <= w[0].end) {
            return Err(PartitionMapError::Overlap(
                w[0].partition_id,
                w[1].partition_id,
            ));
        }
        self.validate_transfers()
    }

    /// Every named transfer partner exists, is another range, is not removed (nor is the
    /// range naming it), and names the range back.
    fn validate_transfers(&self) -> Result<(), PartitionMapError> {
        for r in &self.partitions {
            if let Some(partner) = r.importing_from {
                self.check_partner(r, partner, |p| p.exporting_to)?;
            }
            if let Some(partner) = r.exporting_to {
                self.check_partner(r, partner, |p| p.importing_from)?;
            }
        }
        Ok(())
    }

    /// The longest encoding ([`PartitionMap::encode`]) of a map of `ranges` ranges (tombstones
    /// included) without first configurations: what partition 0's floor meta and a map entry
    /// must have room for. The ranges a map change creates carry their first configuration,
    /// which this bound does not reserve: such a map is checked by its real encoding
    /// (`map_for_floor`), and refused when it does not fit.
    #[must_use]
    pub fn encoded_bytes_max(ranges: usize) -> usize {
        // `{"version":<u64>,"partitions":[` … `]}`, the ranges separated by commas.
        const FRAME: usize = r#"{"version":18446744073709551615,"partitions":[]}"#.len();
        FRAME + ranges * (RANGE_ENCODED_BYTES_MAX + 1)
    }

    /// The map encoded for a system-partition entry.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data with derived impls into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and validates a map from a system-partition entry.
    ///
    /// # Errors
    /// [`PartitionMapError::Malformed`] for bytes that are not a map, or the first violated
    /// invariant of [`PartitionMap::validate`].
    pub fn decode(bytes: &[u8]) -> Result<Self, PartitionMapError> {
        let map: Self = serde_json::from_slice(bytes)
            .map_err(|e| PartitionMapError::Malformed(e.to_string()))?;
        map.validate()?;
        Ok(map)
    }

    /// The range of `partition_id`, if the map has it (tombstones included). A binary search:
    /// the shard looks up the range of every write's partition (its generation fence), and a
    /// map [`PartitionMap::validate`] accepts is ordered by partition id.
    pub fn get(&self, partition_id: PartitionId) -> Option<&PartitionRange> {
        self.partitions
            .binary_search_by_key(&partition_id, |r| r.partition_id)
            .ok()
            .and_then(|at| self.partitions.get(at))
    }

    /// The partitions every node hosts: those of the map not removed.
    pub fn hosted(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.partitions
            .iter()
            .filter(|r| r.state != RangeState::Removed)
            .map(|r| r.partition_id)
    }

    /// `partner`, named by `r`, is another live range that names `r` back (`back`).
    fn check_partner(
        &self,
        r: &PartitionRange,
        partner: PartitionId,
        back: impl Fn(&PartitionRange) -> Option<PartitionId>,
    ) -> Result<(), PartitionMapError> {
        let names_back = self.get(partner).is_some_and(|p| {
            p.partition_id != r.partition_id
                && p.state != RangeState::Removed
                && r.state != RangeState::Removed
                && back(p) == Some(r.partition_id)
        });
        if names_back {
            return Ok(());
        }
        Err(PartitionMapError::UnpairedTransfer {
            partition_id: r.partition_id,
            partner,
        })
    }

    /// The ranges key routing may choose: hash-routed and not removed.
    pub(super) fn routable(&self) -> impl Iterator<Item = &PartitionRange> {
        self.partitions
            .iter()
            .filter(|r| r.routing == RoutingMode::HashRange && r.state != RangeState::Removed)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn initial_map_covers_the_hash_space_leftover_first() {
        for count in [1, 2, 3, 7, 10, 64, 1000, 1024] {
            let map = PartitionMap::initial(count).expect("valid count");
            assert_eq!(map.version, 1);
            assert_eq!(map.partitions.len(), count as usize);
            assert_eq!(map.partitions[0].start, 0);
            assert_eq!(map.partitions.last().map(|r| r.end), Some(HASH_SPACE_END));
            for w in map.partitions.windows(2) {
                assert_eq!(w[0].end + 1, w[1].start, "contiguous at {count}");
            }
            // Kommander's DivideIntoRanges: the leftover values go one each to the first ranges.
            let base = i64::from(HASH_SPACE_SIZE / count);
            let leftover = HASH_SPACE_SIZE % count;
            for (i, r) in (0..).zip(&map.partitions) {
                assert_eq!(r.partition_id, PartitionId(i + 1));
                let size = i64::from(r.end) - i64::from(r.start) + 1;
                let expected = base + i64::from(i < leftover);
                assert_eq!(size, expected, "range {i} of {count}");
                assert_eq!((r.generation, r.state), (1, RangeState::Active));
                assert_eq!(r.routing, RoutingMode::HashRange);
            }
        }
        assert_eq!(
            PartitionMap::initial(0),
            Err(PartitionMapError::NoPartitions)
        );
        // Refused before anything is allocated: a range each would need more than 2^31 values.
        assert_eq!(
            PartitionMap::initial(HASH_SPACE_SIZE + 1),
            Err(PartitionMapError::TooManyPartitions(HASH_SPACE_SIZE + 1))
        );
    }

    #[test]
    fn a_range_is_found_by_its_id_among_many_and_an_absent_id_is_not() {
        let mut map = PartitionMap::initial(1024).expect("valid count");
        // A gap: ids 1..=1024 without 500.
        map.partitions.remove(499);
        for id in (1..=1024).filter(|&id| id != 500) {
            let range = map.get(PartitionId(id)).expect("present");
            assert_eq!(range.partition_id, PartitionId(id));
        }
        for absent in [0, 500, 1025, u32::MAX] {
            assert_eq!(map.get(PartitionId(absent)), None);
        }
    }

    #[test]
    fn invalid_maps_are_refused_with_the_reason() {
        let mut map = PartitionMap::initial(2).expect("valid count");
        map.partitions[1].start = map.partitions[0].end;
        assert_eq!(
            map.validate(),
            Err(PartitionMapError::Overlap(PartitionId(1), PartitionId(2)))
        );
        let mut map = PartitionMap::initial(2).expect("valid count");
        map.partitions[1].partition_id = PartitionId(1);
        assert_eq!(
            map.validate(),
            Err(PartitionMapError::DuplicatePartition(PartitionId(1)))
        );
        let mut map = PartitionMap::initial(3).expect("valid count");
        map.partitions.swap(0, 2);
        assert_eq!(
            map.validate(),
            Err(PartitionMapError::Unordered {
                before: PartitionId(3),
                after: PartitionId(2)
            })
        );
        let mut map = PartitionMap::initial(1).expect("valid count");
        map.partitions[0].partition_id = SYSTEM_PARTITION;
        assert_eq!(map.validate(), Err(PartitionMapError::SystemPartitionInMap));
        let mut map = PartitionMap::initial(1).expect("valid count");
        map.partitions[0].start = 10;
        map.partitions[0].end = 5;
        assert!(matches!(
            map.validate(),
            Err(PartitionMapError::InvalidRange { .. })
        ));
    }

    /// A transfer partner must exist, be another live range, and name the range back.
    #[test]
    fn transfer_partners_must_name_each_other() {
        let paired = || {
            let mut map = PartitionMap::initial(3).expect("valid count");
            map.partitions[0].exporting_to = Some(PartitionId(2));
            map.partitions[1].importing_from = Some(PartitionId(1));
            map
        };
        assert_eq!(paired().validate(), Ok(()));
        let unpaired = |partition_id: u32, partner: u32| {
            Err(PartitionMapError::UnpairedTransfer {
                partition_id: PartitionId(partition_id),
                partner: PartitionId(partner),
            })
        };
        let mut map = paired();
        map.partitions[1].importing_from = None;
        assert_eq!(map.validate(), unpaired(1, 2));
        let mut map = paired();
        map.partitions[1].importing_from = Some(PartitionId(3));
        assert_eq!(map.validate(), unpaired(1, 2));
        let mut map = paired();
        map.partitions[0].exporting_to = Some(PartitionId(9));
        assert_eq!(map.validate(), unpaired(1, 9));
        let mut map = paired();
        map.partitions[1].state = RangeState::Removed;
        assert_eq!(map.validate(), unpaired(1, 2));
        let mut map = PartitionMap::initial(1).expect("valid count");
        map.partitions[0].exporting_to = Some(PartitionId(1));
        map.partitions[0].importing_from = Some(PartitionId(1));
        assert_eq!(map.validate(), unpaired(1, 1));
    }

    /// A map without transfer partners encodes without the fields, as before they existed.
    #[test]
    fn absent_partners_are_left_out_of_the_encoding() {
        let map = PartitionMap::initial(1).expect("valid count");
        let text = String::from_utf8(map.encode()).expect("JSON");
        assert!(!text.contains("importing_from") && !text.contains("exporting_to"));
        let mut paired = PartitionMap::initial(2).expect("valid count");
        paired.partitions[0].exporting_to = Some(PartitionId(2));
        paired.partitions[1].importing_from = Some(PartitionId(1));
        assert_eq!(PartitionMap::decode(&paired.encode()), Ok(paired));
    }

    #[test]
    fn encoding_round_trips_and_garbage_is_a_typed_error() {
        let map = PartitionMap::initial(3).expect("valid count");
        assert_eq!(
            PartitionMap::decode(&map.encode()).expect("round trip"),
            map
        );
        assert!(matches!(
            PartitionMap::decode(b"\xff\x00garbage"),
            Err(PartitionMapError::Malformed(_))
        ));
        let mut bad = map.clone();
        bad.partitions[2].start = 0;
        assert!(matches!(
            PartitionMap::decode(&bad.encode()),
            Err(PartitionMapError::Overlap(..))
        ));
    }

    /// A created range's first configuration travels in the encoding and is validated; the
    /// ranges without one encode as before (no field).
    #[test]
    fn a_first_configuration_round_trips_and_an_invalid_one_is_refused() {
        let mut map = PartitionMap::initial(2).expect("valid count");
        let plain = String::from_utf8(map.encode()).expect("JSON");
        assert!(!plain.contains("first"), "{plain}");
        map.partitions[1].first = Some(FirstMembers {
            voters: vec![NodeId(1), NodeId(2)],
            learners: vec![NodeId(3)],
        });
        assert_eq!(PartitionMap::decode(&map.encode()), Ok(map.clone()));
        map.partitions[1].first = Some(FirstMembers {
            voters: Vec::new(),
            learners: vec![NodeId(3)],
        });
        assert_eq!(
            PartitionMap::decode(&map.encode()),
            Err(PartitionMapError::InvalidFirstMembers {
                partition_id: PartitionId(2),
                error: ConfigurationError::NoVoter,
            })
        );
    }

    /// A map of `n` ranges with every number at its widest and the longest state and routing
    /// (an encoding only: these ranges overlap, so it does not validate).
    pub(in crate::shard::partitions) fn widest(n: u32) -> PartitionMap {
        PartitionMap {
            version: u64::MAX,
            partitions: (0..n)
                .map(|i| PartitionRange {
                    partition_id: PartitionId(u32::MAX - i),
                    start: i32::MAX,
                    end: i32::MAX,
                    generation: u64::MAX,
                    state: RangeState::Splitting,
                    routing: RoutingMode::HashRange,
                    importing_from: Some(PartitionId(u32::MAX)),
                    exporting_to: Some(PartitionId(u32::MAX)),
                    first: None,
                })
                .collect(),
        }
    }

    /// The bound holds for the widest map, and is tight: a range at every maximum reaches it.
    #[test]
    fn the_encoding_bound_is_the_widest_maps_length() {
        for n in [0, 1, 3] {
            // n ranges take n - 1 commas: the bound counts one per range.
            assert_eq!(
                widest(n).encode().len() + usize::from(n > 0),
                PartitionMap::encoded_bytes_max(n as usize),
                "{n} ranges"
            );
        }
    }

    /// A map persisted (`<data_dir>/partition-map`) or sent in a P0 snapshot by an earlier
    /// version, whose initial map gave the leftover hash values to the last range, still
    /// decodes and routes by its own ranges: a cluster keeps the map it committed.
    #[test]
    fn a_map_with_the_earlier_initial_layout_still_decodes() {
        let range = |id: u32, start: i32, end: i32| {
            format!(
                r#"{{"partition_id":{id},"start":{start},"end":{end},"generation":1,"state":"Active","routing":"HashRange"}}"#
            )
        };
        let earlier = format!(
            r#"{{"version":1,"partitions":[{},{},{}]}}"#,
            range(1, 0, 715_827_881),
            range(2, 715_827_882, 1_431_655_763),
            range(3, 1_431_655_764, i32::MAX)
        );
        let map = PartitionMap::decode(earlier.as_bytes()).expect("earlier layout decodes");
        assert_eq!(map.partitions[0].end, 715_827_881);
        assert_eq!(map.partitions[2].start, 1_431_655_764);
        assert_eq!(map.partition_for_hash(715_827_882), Ok(PartitionId(2)));
        assert_eq!(map.partition_for_hash(1_431_655_764), Ok(PartitionId(3)));
        // The current initial map draws the boundaries one and two values later.
        let current = PartitionMap::initial(3).expect("valid count");
        assert_eq!(current.partition_for_hash(715_827_882), Ok(PartitionId(1)));
        assert_eq!(
            current.partition_for_hash(1_431_655_764),
            Ok(PartitionId(2))
        );
        assert_eq!(PartitionMap::decode(&map.encode()), Ok(map));
    }
}
