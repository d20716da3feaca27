//! The partition map: which user partition owns which slice of the key-hash space.
//!
//! The map is replicated through the system partition (partition 0) and applied on every node;
//! this module only holds the data type, its validation and the key routing, and does no I/O.
//!
//! Keys route as in Kommander (`PartitionRoutingTable.GetPartitionKey`): the key's *prefix*
//! (everything before its last `/`, or the whole key when it has none) is hashed with xxHash64
//! (seed 0) over its UTF-8 bytes, the hash is truncated to its low 32 bits as an `i32` and
//! negated when negative, and the first active (not removed), hash-routed range containing it
//! owns the key. So `orders/17/line/3` and `orders/17/line/4` always land together. The prefix
//! variant (`GetPrefixPartitionKey`) hashes the whole string.
//!
//! One departure, on purpose: the truncated hash `i32::MIN`. Kommander negates with C#'s
//! unchecked `-rangeId` (the C# default; Kommander does not enable overflow checks), which
//! leaves `int.MinValue` negative, so it matches no range and the key can never be written
//! (`RaftException`; a checked negation or `Math.Abs` would throw instead, refused all the
//! same). Here negation saturates: `i32::MIN` routes as `i32::MAX`, the top of the space.
//! Mirroring Kommander would leave one key prefix in 2^32 unwritable for ever, with no remedy
//! but renaming the key; saturating only answers where Kommander has no answer, so every key
//! Kommander routes still routes exactly as in Kommander.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh64::xxh64;

use crate::core::PartitionId;

pub use crate::shard::SYSTEM_PARTITION;

/// The top of the key-hash space (inclusive); the bottom is 0.
pub const HASH_SPACE_END: i32 = i32::MAX;

/// How many hash values the space holds (`0..=HASH_SPACE_END`): `2^31`.
const HASH_SPACE_SIZE: u32 = HASH_SPACE_END as u32 + 1;

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
    /// The bytes are not a partition map.
    #[error("malformed partition map: {0}")]
    Malformed(String),
}

/// No active hash-routed range holds the key's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no partition owns hash {hash} (map version {map_version})")]
pub struct NoRouteError {
    /// The key's hash.
    pub hash: i32,
    /// The map consulted.
    pub map_version: u64,
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

    /// Checks the map's invariants: no system partition, unique ids, well-formed ranges, and
    /// no overlap between active hash-routed ranges.
    ///
    /// # Errors
    /// The first violated invariant.
    pub fn validate(&self) -> Result<(), PartitionMapError> {
        let mut ids: Vec<PartitionId> = self.partitions.iter().map(|r| r.partition_id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PartitionMapError::DuplicatePartition(w[0]));
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
        }
        let mut routed: Vec<&PartitionRange> = self.routable().collect();
        routed.sort_by_key(|r| r.start);
        if let Some(w) = routed.windows(2).find(|w| w[1].start <= w[0].end) {
            return Err(PartitionMapError::Overlap(
                w[0].partition_id,
                w[1].partition_id,
            ));
        }
        Ok(())
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

    /// The range of `partition_id`, if the map has it (tombstones included).
    pub fn get(&self, partition_id: PartitionId) -> Option<&PartitionRange> {
        self.partitions
            .iter()
            .find(|r| r.partition_id == partition_id)
    }

    /// The partitions every node hosts: those of the map not removed.
    pub fn hosted(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.partitions
            .iter()
            .filter(|r| r.state != RangeState::Removed)
            .map(|r| r.partition_id)
    }

    /// The partition that owns `key` (routed by the hash of its prefix before the last `/`).
    ///
    /// # Errors
    /// [`NoRouteError`] when no active hash-routed range holds the hash.
    pub fn partition_for_key(&self, key: &str) -> Result<PartitionId, NoRouteError> {
        self.partition_for_hash(key_hash(key))
    }

    /// The partition that owns `prefix`, hashing the whole string.
    ///
    /// # Errors
    /// [`NoRouteError`] when no active hash-routed range holds the hash.
    pub fn partition_for_prefix(&self, prefix: &str) -> Result<PartitionId, NoRouteError> {
        self.partition_for_hash(prefix_hash(prefix))
    }

    fn partition_for_hash(&self, hash: i32) -> Result<PartitionId, NoRouteError> {
        self.routable()
            .find(|r| r.start <= hash && hash <= r.end)
            .map(|r| r.partition_id)
            .ok_or(NoRouteError {
                hash,
                map_version: self.version,
            })
    }

    fn routable(&self) -> impl Iterator<Item = &PartitionRange> {
        self.partitions
            .iter()
            .filter(|r| r.routing == RoutingMode::HashRange && r.state != RangeState::Removed)
    }
}

/// The routing hash of a key: [`prefix_hash`] of the part before its last `/` (the whole key
/// when it has none; Kommander's `HashUtils.InversePrefixedStaticHash(key, '/')`).
pub fn key_hash(key: &str) -> i32 {
    prefix_hash(key.rsplit_once('/').map_or(key, |(prefix, _)| prefix))
}

/// The routing hash of a whole string: xxHash64 (seed 0) of its UTF-8 bytes
/// (`HashUtils.SimpleHash`), then Kommander's `(int)` cast — the low 32 bits, two's
/// complement — and negation when negative.
///
/// `i32::MIN` has no negation in `i32`. In Kommander (C#, unchecked) it stays `int.MinValue`,
/// which no range holds, so its keys are refused for ever; here the negation saturates to
/// `i32::MAX` (the top of the space), so every key has a partition. The result is always in
/// `0..=HASH_SPACE_END`.
pub fn prefix_hash(s: &str) -> i32 {
    // The cast keeps the low 32 bits on purpose: it is C#'s unchecked `(int)ulong`.
    let truncated = xxh64(s.as_bytes(), 0) as u32 as i32;
    truncated.saturating_abs()
}

#[cfg(test)]
mod tests {
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
    fn keys_sharing_a_prefix_route_together() {
        let map = PartitionMap::initial(64).expect("valid count");
        let a = map.partition_for_key("orders/17/line/3").expect("routed");
        let b = map.partition_for_key("orders/17/line/4").expect("routed");
        assert_eq!(a, b);
        assert_eq!(key_hash("orders/17/line/3"), prefix_hash("orders/17/line"));
        assert_eq!(key_hash("plain"), prefix_hash("plain"));
        assert_eq!(
            map.partition_for_prefix("orders/17/line").expect("routed"),
            a
        );
    }

    #[test]
    fn removed_and_unrouted_ranges_never_route() {
        let mut map = PartitionMap::initial(1).expect("valid count");
        map.partitions[0].state = RangeState::Removed;
        let err = map.partition_for_key("k").expect_err("nothing active");
        assert_eq!(err.map_version, 1);
        map.partitions[0].state = RangeState::Active;
        map.partitions[0].routing = RoutingMode::Unrouted;
        assert!(map.partition_for_key("k").is_err());
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
