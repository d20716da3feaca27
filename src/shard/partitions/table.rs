//! [`MapTable`]: the partition map as partition 0's replica on this node committed it, shared
//! by the shards and the node (as the roster is shared in the `MembershipTable`).
//!
//! Published only by partition 0's shard — from the floor meta and the log when partition 0 is
//! restored, by each committed map entry it delivers, and by an installed snapshot of
//! partition 0 — and only ever to a higher map version: two leaders in a row may both commit a
//! version-1 map, and the first one committed stays.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::map::PartitionMap;

/// Called after each publication (the node wakes its coordinator).
type Listener = Box<dyn Fn() + Send + Sync>;

/// The committed partition map of this node (see the module docs).
#[derive(Default)]
pub struct MapTable {
    map: RwLock<Arc<PartitionMap>>,
    /// A map read from the data directory of an earlier version (`<data_dir>/partition-map`),
    /// taken by partition 0's restore when its floor meta holds none.
    upgrade: Mutex<Option<PartitionMap>>,
    listener: Mutex<Option<Listener>>,
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

    /// Publishes `map` when its version is above the one known; returns whether it did.
    pub(crate) fn publish(&self, map: PartitionMap) -> bool {
        {
            let mut known = self.map.write().unwrap_or_else(PoisonError::into_inner);
            if map.version <= known.version {
                return false;
            }
            *known = Arc::new(map);
        }
        if let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            listener();
        }
        true
    }

    /// Calls `listener` after each publication from now on.
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
