//! The key routing of the elastic runs' clients: the partition map a client last learnt from
//! a node (possibly stale: that is the point), a register's key routed through it to a
//! partition and the generation the client fences its request with, and the sign that the map
//! is stale: a refusal `NotHosted` (the handle's `PartitionMoved`), after which the client
//! learns the map of the node that refused. Routing only: `client.rs` sends the requests and
//! judges their answers.

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::core::PartitionId;
use crate::shard::Refusal;
use crate::shard::partitions::PartitionMap;

/// Where a client sends a key: the partition its map routes the key to, and that range's
/// generation, which the fenced request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Route {
    pub(super) partition: PartitionId,
    pub(super) generation: NonZeroU64,
}

/// The partition map a client last learnt from a node (none yet by default).
#[derive(Debug, Default)]
pub(super) struct LearntMap(Option<Arc<PartitionMap>>);

impl LearntMap {
    /// Register `key`'s route through the learnt map, by the routing hash of the key's decimal
    /// string (`app::register_hash`). `None` without a map, when no active range holds the
    /// key, or when its range has generation 0 (which no fenced request may name).
    pub(super) fn route(&self, key: u64) -> Option<Route> {
        let map = self.0.as_ref()?;
        let partition = map.partition_for_key(&key.to_string()).ok()?;
        let generation = NonZeroU64::new(map.get(partition)?.generation)?;
        Some(Route {
            partition,
            generation,
        })
    }

    /// Learns `map` (a node's committed map) in place of the one learnt before.
    pub(super) fn learn(&mut self, map: Arc<PartitionMap>) {
        self.0 = Some(map);
    }
}

/// Whether an answer (`None`: none came) says the partition moved, so the client's map is
/// stale: a refusal `NotHosted`, the handle's `PartitionMoved`.
pub(super) fn partition_moved<T>(answer: Option<&Result<T, Refusal>>) -> bool {
    matches!(answer, Some(Err(Refusal::NotHosted)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::partitions::RangeState;

    fn map_of(count: u32) -> Arc<PartitionMap> {
        Arc::new(PartitionMap::initial(count).expect("a first map"))
    }

    #[test]
    fn no_route_before_a_map_is_learnt() {
        assert_eq!(LearntMap::default().route(4), None);
    }

    #[test]
    fn a_key_routes_to_its_ranges_partition_and_generation() {
        let map = map_of(4);
        let mut learnt = LearntMap::default();
        learnt.learn(Arc::clone(&map));
        for key in 0..64 {
            let owner = map.partition_for_key(&key.to_string()).expect("routed");
            let route = learnt.route(key).expect("a route");
            assert_eq!(route.partition, owner, "key {key}");
            assert_eq!(route.generation.get(), 1, "key {key}");
        }
    }

    #[test]
    fn a_learnt_map_replaces_the_one_before() {
        let key = 4;
        let stale = map_of(2);
        let owner = stale.partition_for_key(&key.to_string()).expect("routed");
        let mut newer = (*stale).clone();
        newer.version += 1;
        for range in &mut newer.partitions {
            if range.partition_id == owner {
                range.generation = 7;
            }
        }
        let mut learnt = LearntMap::default();
        learnt.learn(stale);
        assert_eq!(learnt.route(key).map(|r| r.generation.get()), Some(1));
        learnt.learn(Arc::new(newer));
        assert_eq!(
            learnt.route(key),
            Some(Route {
                partition: owner,
                generation: NonZeroU64::new(7).expect("not 0"),
            })
        );
    }

    #[test]
    fn no_route_without_an_active_range_or_at_generation_zero() {
        let key = 4;
        let map = map_of(2);
        let owner = map.partition_for_key(&key.to_string()).expect("routed");
        let with_owner = |change: &dyn Fn(&mut crate::shard::partitions::PartitionRange)| {
            let mut map = (*map).clone();
            for range in &mut map.partitions {
                if range.partition_id == owner {
                    change(range);
                }
            }
            let mut learnt = LearntMap::default();
            learnt.learn(Arc::new(map));
            learnt.route(key)
        };
        assert_eq!(with_owner(&|range| range.state = RangeState::Removed), None);
        assert_eq!(with_owner(&|range| range.generation = 0), None);
    }

    #[test]
    fn only_not_hosted_says_the_partition_moved() {
        assert!(partition_moved::<()>(Some(&Err(Refusal::NotHosted))));
        assert!(!partition_moved::<()>(Some(&Err(Refusal::QueueFull))));
        assert!(!partition_moved::<()>(Some(&Err(Refusal::ShutDown))));
        assert!(!partition_moved(Some(&Ok(()))));
        assert!(!partition_moved::<()>(None));
    }
}
