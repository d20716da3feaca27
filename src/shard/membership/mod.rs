//! Membership (decision 0004): the roster on partition 0 and every other partition's voters
//! reconciled with it, one configuration entry at a time, through each partition's own log.
//!
//! * [`roster`]: the roster (members, roles, endpoints, incarnations, version), kept in the
//!   context of partition 0's configuration, and its changes ([`RosterChange`]).
//! * [`call`]: roster changes asked of another node over the network (join, leave, remove,
//!   promotion), answered by partition 0's leader or with a leader hint.
//! * `reconcile.rs`: the next step of a partition towards the roster's voters and learners
//!   (pure: the worker proposes it).
//! * [`MembershipTable`]: what the shards of a node share: the committed roster as partition
//!   0's replica on this node knows it (published by the shard hosting partition 0), and which
//!   partitions' committed configurations match it.
//!
//! The worker's side (`worker/membership.rs`) publishes the roster, restates the genesis
//! roster with the endpoints, carries out roster changes on partition 0's leader and
//! reconciles the partitions this node leads, on every tick.

pub mod call;
mod reconcile;
pub mod roster;

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

pub use self::call::{CallAnswer, CallError, CallReply, CallWait, MembershipCall};
pub(crate) use self::reconcile::{Step, Target, next_step};
pub use self::roster::{ENDPOINT_BYTES_MAX, Member, MemberRole, Roster, RosterChange, RosterError};
use super::StableHashMap;
use crate::core::PartitionId;

/// The committed roster of a node and how far its partitions have followed it. Written by the
/// shards, read by anyone; each new roster is also a `RaftEvent::MembershipChanged`.
#[derive(Debug)]
pub struct MembershipTable {
    roster: watch::Sender<Option<Arc<Roster>>>,
    /// Partitions other than 0: the roster version whose voters and learners their committed
    /// configuration on this node matches (`None`: none, or restoring).
    reconciled: Mutex<StableHashMap<PartitionId, Option<u64>>>,
}

impl Default for MembershipTable {
    fn default() -> Self {
        Self {
            roster: watch::channel(None).0,
            reconciled: Mutex::new(StableHashMap::default()),
        }
    }
}

impl MembershipTable {
    /// The committed roster (`None` until partition 0's replica on this node is open).
    #[must_use]
    pub fn roster(&self) -> Option<Arc<Roster>> {
        self.roster.borrow().clone()
    }

    /// Publishes `roster` when it differs from the one known (the shard of partition 0);
    /// returns whether it did.
    pub(crate) fn publish(&self, roster: &Roster) -> bool {
        self.roster.send_if_modified(|known| {
            if known.as_deref() == Some(roster) {
                return false;
            }
            *known = Some(Arc::new(roster.clone()));
            true
        })
    }

    /// Records, for each partition, the roster version its committed configuration matches.
    pub(crate) fn set_reconciled(
        &self,
        partitions: impl IntoIterator<Item = (PartitionId, Option<u64>)>,
    ) {
        self.reconciled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(partitions);
    }

    /// Whether every partition of this node (but 0) has committed the configuration of the
    /// roster at `version`.
    pub(crate) fn all_reconciled(&self, version: u64) -> bool {
        self.reconciled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .all(|&matched| matched == Some(version))
    }
}
