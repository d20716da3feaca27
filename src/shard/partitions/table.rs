//! [`MapTable`]: the partition map as partition 0's replica on this node committed it, shared
//! by the shards and the node (as the roster is shared in the `MembershipTable`), and the map
//! in force: the newest one every shard has followed (opened what it adds, closed what it
//! removed).
//!
//! Published only by partition 0's shard — from the floor meta and the log when partition 0 is
//! restored, by each committed map entry it delivers, and by an installed snapshot of
//! partition 0 — and only ever to a higher map version: two leaders in a row may both commit a
//! version-1 map, and the first one committed stays.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use super::map::PartitionMap;
use super::progress::SplitProgress;
use super::routing::Routes;
use crate::core::NodeId;

/// Called after each publication and each new map in force (the node wakes its coordinator).
type Listener = Box<dyn Fn() + Send + Sync>;

/// Voters and learners.
pub(crate) type Members = (Vec<NodeId>, Vec<NodeId>);

/// The first configuration of the partitions the map adds (see
/// [`MapTable::set_first_members`]).
type FirstMembers = Box<dyn Fn() -> Members + Send + Sync>;

/// The committed partition map of this node (see the module docs).
#[derive(Default)]
pub struct MapTable {
    map: RwLock<Arc<PartitionMap>>,
    /// A map read from the data directory of an earlier version (`<data_dir>/partition-map`),
    /// taken by partition 0's restore when its floor meta holds none.
    upgrade: Mutex<Option<PartitionMap>>,
    listener: Mutex<Option<Listener>>,
    /// Per shard, the version of the map it last followed (0: none yet).
    followed: Mutex<Vec<u64>>,
    /// The newest map every shard has followed (version 0: none yet), and its routes.
    in_force: RwLock<(Arc<PartitionMap>, Arc<Routes>)>,
    /// The version of the newest map this node's restart would publish again (its commit
    /// durable in partition 0's WAL; 0: none yet).
    durable: AtomicU64,
    first_members: Mutex<Option<FirstMembers>>,
    /// How far this node's replicas applied their split entries.
    progress: SplitProgress,
}

impl std::fmt::Debug for MapTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapTable")
            .field("version", &self.map().version)
            .finish_non_exhaustive()
    }
}

impl MapTable {
    /// The committed map (version 0: none yet).
    #[must_use]
    pub fn map(&self) -> Arc<PartitionMap> {
        Arc::clone(&self.map.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// How far this node's replicas applied the split entries of their logs (the source's
    /// generation entry, the target's import): what a split or merge waits for.
    #[must_use]
    pub fn progress(&self) -> &SplitProgress {
        &self.progress
    }

    /// Publishes `map` when its version is above the one known; returns whether it did.
    pub(crate) fn publish(&self, map: PartitionMap) -> bool {
        {
            let mut known = self.map.write().unwrap_or_else(PoisonError::into_inner);
            if map.version <= known.version {
                return false;
            }
            *known = Arc::new(map);
        }
        self.notify();
        true
    }

    /// The version of the newest map a restart of this node would publish again: partition
    /// 0's WAL holds its entry and a commit index that covers it (or its floor holds it). A
    /// shard deletes a removed partition's records only once the map that removed it is
    /// this durable: a node whose commit index had not reached the disk restarts with an
    /// older map, which would open the partition again from an empty log, a replica that
    /// forgot its term and vote (elastic seed 6027: two leaders in one term).
    pub(crate) fn durable_version(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Records that the map of `version` (and every older one) is durable as
    /// [`MapTable::durable_version`] says.
    pub(crate) fn made_durable(&self, version: u64) {
        self.durable.fetch_max(version, Ordering::AcqRel);
    }

    /// Publishes `map`, read back from this node's disk (so durable), as
    /// [`MapTable::publish`] does.
    pub(crate) fn publish_durable(&self, map: PartitionMap) {
        self.made_durable(map.version);
        self.publish(map);
    }

    /// The map in force: the newest committed map every shard of this node has followed, its
    /// partitions open (created, or restoring) and those it removed closed (version 0: none
    /// yet).
    #[must_use]
    pub fn in_force(&self) -> Arc<PartitionMap> {
        Arc::clone(&self.read_in_force().0)
    }

    /// The routes of the map in force ([`MapTable::in_force`]).
    #[must_use]
    pub fn routes(&self) -> Arc<Routes> {
        Arc::clone(&self.read_in_force().1)
    }

    fn read_in_force(&self) -> RwLockReadGuard<'_, (Arc<PartitionMap>, Arc<Routes>)> {
        self.in_force.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `shard` (of `shards`) followed the map of `version`; once every shard
    /// followed the newest committed map, it is the map in force. Returns whether it just
    /// became so (the listener is called then).
    pub(crate) fn followed(&self, shard: usize, shards: usize, version: u64) -> bool {
        let all = {
            let mut followed = self.followed.lock().unwrap_or_else(PoisonError::into_inner);
            followed.resize(shards, 0);
            followed[shard] = version;
            followed.iter().all(|&v| v == version)
        };
        let map = self.map();
        if !all || map.version != version {
            return false;
        }
        {
            let mut in_force = self
                .in_force
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if in_force.0.version >= version {
                return false;
            }
            let routes = Arc::new(Routes::of(&map));
            *in_force = (map, routes);
        }
        self.notify();
        true
    }

    /// Calls the listener, if there is one.
    fn notify(&self) {
        if let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            listener();
        }
    }

    /// Sets the first configuration (voters, learners) of the user partitions the map adds on
    /// this node, created or restored (their logs govern above it). Asked each time such a
    /// partition opens, so it may follow what the node decides after it started (the first
    /// configuration of a join through a seed); it must answer the same for a data directory
    /// at every start. Set it before partition 0 opens; without it, the cluster the shards
    /// were started with votes.
    pub fn set_first_members(
        &self,
        first: impl Fn() -> (Vec<NodeId>, Vec<NodeId>) + Send + Sync + 'static,
    ) {
        *self
            .first_members
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(first));
    }

    /// What [`MapTable::set_first_members`] set, asked now (`None`: nothing set).
    pub(crate) fn first_members(&self) -> Option<Members> {
        self.first_members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|first| first())
    }

    /// Calls `listener` after each publication and each new map in force from now on.
    pub fn on_publish(&self, listener: impl Fn() + Send + Sync + 'static) {
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(listener));
    }

    /// Hands partition 0's restore the map an earlier version of this node kept in a file of
    /// its own: it stands for the map at partition 0's floor when the floor meta holds none
    /// (the map entries below it were compacted away under that version). Call it before
    /// partition 0 is opened.
    pub fn offer_upgrade(&self, map: PartitionMap) {
        *self.upgrade.lock().unwrap_or_else(PoisonError::into_inner) = Some(map);
    }

    /// The map [`MapTable::offer_upgrade`] handed over, once.
    pub(crate) fn take_upgrade(&self) -> Option<PartitionMap> {
        self.upgrade
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
