//! Key routing through a partition map, as Kommander routes (`PartitionRoutingTable.GetPartitionKey`):
//! the key's *prefix* (everything before its last `/`, or the whole key when it has none) is
//! hashed with xxHash64 (seed 0) over its UTF-8 bytes, the hash is truncated to its low 32 bits
//! as an `i32` and negated when negative, and the first active (not removed), hash-routed range
//! containing it owns the key. So `orders/17/line/3` and `orders/17/line/4` always land
//! together. The prefix variant (`GetPrefixPartitionKey`) hashes the whole string. A pure
//! function of the map: no I/O, no state.
//!
//! One departure, on purpose: the truncated hash `i32::MIN`. Kommander negates with C#'s
//! unchecked `-rangeId` (the C# default; Kommander does not enable overflow checks), which
//! leaves `int.MinValue` negative, so it matches no range and the key can never be written
//! (`RaftException`; a checked negation or `Math.Abs` would throw instead, refused all the
//! same). Here negation saturates: `i32::MIN` routes as `i32::MAX`, the top of the space.
//! Mirroring Kommander would leave one key prefix in 2^32 unwritable for ever, with no remedy
//! but renaming the key; saturating only answers where Kommander has no answer, so every key
//! Kommander routes still routes exactly as in Kommander.

use xxhash_rust::xxh64::xxh64;

use super::map::PartitionMap;
use crate::core::PartitionId;

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

    pub(super) fn partition_for_hash(&self, hash: i32) -> Result<PartitionId, NoRouteError> {
        self.routable()
            .find(|r| r.start <= hash && hash <= r.end)
            .map(|r| r.partition_id)
            .ok_or(NoRouteError {
                hash,
                map_version: self.version,
            })
    }
}

/// A map's routable ranges ordered by where they start: key lookups by binary search, where
/// [`PartitionMap::partition_for_key`] walks the map's ranges (`cargo bench --bench routing`).
/// The node builds them once per map in force for `Raft::partition_for_key`; build them once
/// per map to route many keys. The ranges of a map [`PartitionMap::validate`] accepts do not
/// overlap, so the one that can hold a hash is the last to start at or below it, and the
/// answers are the map's own.
#[derive(Debug, Default)]
pub struct Routes {
    map_version: u64,
    /// `(start, end, partition)` of every routable range, by `start`.
    by_start: Vec<(i32, i32, PartitionId)>,
}

impl Routes {
    /// The routes of `map`.
    #[must_use]
    pub fn of(map: &PartitionMap) -> Self {
        let mut by_start: Vec<_> = map
            .routable()
            .map(|r| (r.start, r.end, r.partition_id))
            .collect();
        by_start.sort_unstable();
        Self {
            map_version: map.version,
            by_start,
        }
    }

    /// [`PartitionMap::partition_for_key`] of the map these routes were built of.
    ///
    /// # Errors
    /// [`NoRouteError`] when no active hash-routed range holds the key's hash.
    pub fn partition_for_key(&self, key: &str) -> Result<PartitionId, NoRouteError> {
        self.partition_for_hash(key_hash(key))
    }

    /// [`PartitionMap::partition_for_prefix`] of the map these routes were built of.
    ///
    /// # Errors
    /// [`NoRouteError`] when no active hash-routed range holds the prefix's hash.
    pub fn partition_for_prefix(&self, prefix: &str) -> Result<PartitionId, NoRouteError> {
        self.partition_for_hash(prefix_hash(prefix))
    }

    fn partition_for_hash(&self, hash: i32) -> Result<PartitionId, NoRouteError> {
        let after = self.by_start.partition_point(|&(start, ..)| start <= hash);
        after
            .checked_sub(1)
            .and_then(|at| self.by_start.get(at))
            .filter(|&&(_, end, _)| hash <= end)
            .map(|&(.., partition)| partition)
            .ok_or(NoRouteError {
                hash,
                map_version: self.map_version,
            })
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
    use crate::shard::partitions::RangeState;
    use crate::shard::partitions::RoutingMode;

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
    fn the_routes_of_a_map_answer_as_the_map_does() {
        // A map with a split (its new range starts mid-space but comes last by id), a
        // tombstone and an unrouted range: every boundary hash and its neighbours.
        let mut map = PartitionMap::initial(8).expect("valid count");
        let split_at =
            map.partitions[2].start + (map.partitions[2].end - map.partitions[2].start) / 2;
        let mut upper = map.partitions[2].clone();
        upper.partition_id = PartitionId(9);
        upper.start = split_at + 1;
        map.partitions[2].end = split_at;
        map.partitions.push(upper);
        map.partitions[4].state = RangeState::Removed;
        map.partitions[6].routing = RoutingMode::Unrouted;
        map.validate().expect("valid");
        let routes = Routes::of(&map);
        let mut hashes = vec![0, 1, i32::MAX - 1, i32::MAX];
        for r in &map.partitions {
            hashes.extend([r.start - 1, r.start, r.end, r.end.saturating_add(1)]);
        }
        for hash in hashes.into_iter().filter(|&h| h >= 0) {
            assert_eq!(
                routes.partition_for_hash(hash),
                map.partition_for_hash(hash),
                "{hash}"
            );
        }
        for key in ["orders/17/line/3", "plain", "", "a/b/c"] {
            assert_eq!(routes.partition_for_key(key), map.partition_for_key(key));
            assert_eq!(
                routes.partition_for_prefix(key),
                map.partition_for_prefix(key)
            );
        }
        let empty = PartitionMap::default();
        assert_eq!(
            Routes::of(&empty).partition_for_key("k"),
            empty.partition_for_key("k")
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
}
