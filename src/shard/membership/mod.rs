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
//!   0's replica on this node knows it (published by the shard hosting partition 0), which
//!   partitions' committed configurations match it, and each partition's [`Standing`] (caught
//!   up with its leader, a voter), which a joining or leaving node waits on.
//!
//! The worker's side (`worker/membership.rs`) publishes the roster, restates the genesis
//! roster with the endpoints, carries out roster changes on partition 0's leader and
//! reconciles the partitions this node leads, on every tick.

pub mod call;
mod reconcile;
pub mod roster;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

pub use self::call::{CallAnswer, CallError, CallReply, CallWait, MembershipCall};
pub(crate) use self::reconcile::{Step, Target, next_step, roster_version_of};
pub use self::roster::{ENDPOINT_BYTES_MAX, Member, MemberRole, Roster, RosterChange, RosterError};
use super::StableHashMap;
use crate::core::PartitionId;

/// How one partition's replica on this node stands, as a joining node needs to know it
/// (written by its shard on every tick).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// Whether the replica has been caught up for the whole promotion window: on every tick
    /// of `membership.promotion_window_ms`, in a row, it led the partition, or it knew a
    /// leader that had told it a commit index and had applied within
    /// `membership.promotion_lag_entries_max` entries of it (decision 0004 point 5: the
    /// learner judges its own lag).
    pub caught_up: bool,
    /// Whether its committed configuration lists this node as a voter.
    pub voter: bool,
}

/// A partition's standing with the shard tick its replica's current run of caught-up ticks
/// began at.
#[derive(Clone, Copy, Debug, Default)]
struct Tracked {
    /// The first tick of the run of ticks in which it was caught up (`None`: not caught up
    /// at its last recorded tick). A shard records a partition at every tick where it may have
    /// changed: between two records its replica stood still, caught up or not, so the run
    /// counts the ticks between them too.
    caught_up_since: Option<u64>,
    standing: Standing,
}

/// The committed roster of a node and how far its partitions have followed it. Written by the
/// shards, read by anyone; each new roster is also a `RaftEvent::MembershipChanged`.
#[derive(Debug)]
pub struct MembershipTable {
    roster: watch::Sender<Option<Arc<Roster>>>,
    /// Partitions other than 0: the roster version whose voters and learners their committed
    /// configuration on this node matches (`None`: none, or restoring).
    reconciled: Mutex<Reconciled>,
    /// Every partition of this node (0 included): its standing.
    standings: Mutex<StableHashMap<PartitionId, Tracked>>,
    /// Counts the changes of the roster and of the standings: what a node waiting to be
    /// promoted or let go awaits.
    changes: watch::Sender<u64>,
    /// The roster version that admitted this node's data directory through a seed (0: the
    /// static configuration's nodes): its replicas withhold their votes until their partition
    /// committed a configuration of that version.
    admitted_version: AtomicU64,
}

impl Default for MembershipTable {
    fn default() -> Self {
        Self {
            roster: watch::channel(None).0,
            reconciled: Mutex::new(Reconciled::default()),
            standings: Mutex::new(StableHashMap::default()),
            changes: watch::channel(0).0,
            admitted_version: AtomicU64::new(0),
        }
    }
}

impl MembershipTable {
    /// The committed roster (`None` until partition 0's replica on this node is open).
    #[must_use]
    pub fn roster(&self) -> Option<Arc<Roster>> {
        self.roster.borrow().clone()
    }

    /// Records the roster version that admitted this node's data directory (decision 0004, "A
    /// replaced disk's vote"): every replica opened after this withholds its votes until its
    /// partition's committed configuration follows that version. Set before the node opens
    /// its partitions.
    pub(crate) fn set_admitted_version(&self, version: u64) {
        self.admitted_version.store(version, Ordering::Release);
    }

    /// The roster version that admitted this node's data directory (0: none recorded).
    pub(crate) fn admitted_version(&self) -> u64 {
        self.admitted_version.load(Ordering::Acquire)
    }

    /// Publishes `roster` when it differs from the one known (the shard of partition 0);
    /// returns whether it did.
    pub(crate) fn publish(&self, roster: &Roster) -> bool {
        let published = self.roster.send_if_modified(|known| {
            if known.as_deref() == Some(roster) {
                return false;
            }
            *known = Some(Arc::new(roster.clone()));
            true
        });
        if published {
            self.changes
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        published
    }

    /// Records, for each partition, the roster version its committed configuration matches.
    pub(crate) fn set_reconciled(
        &self,
        partitions: impl IntoIterator<Item = (PartitionId, Option<u64>)>,
    ) {
        let mut reconciled = self
            .reconciled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (partition, version) in partitions {
            reconciled.set(partition, Some(version));
        }
    }

    /// Forgets `partition`, closed on this node (the map removed it): it no longer holds a
    /// roster change back, nor counts in a joining node's standings.
    pub(crate) fn forget(&self, partition: PartitionId) {
        self.reconciled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set(partition, None);
        self.standings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&partition);
    }

    /// Whether every partition of this node (but 0) has committed the configuration of the
    /// roster at `version`: every one its shards recorded, and every one of `hosted` (the
    /// partitions the committed map holds open). A partition the map created that its shard
    /// has not recorded yet (it opens it at its next tick) has committed nothing: it holds the
    /// roster back like one recorded without the configuration (node sim seed 5991 of the
    /// joining sweep: a voter made leaving before the partition created with it opened, which
    /// then never had the quorum to elect a leader).
    pub(crate) fn all_reconciled(
        &self,
        version: u64,
        hosted: impl IntoIterator<Item = PartitionId>,
    ) -> bool {
        let reconciled = self
            .reconciled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reconciled.all_at(version)
            && hosted
                .into_iter()
                .all(|partition| reconciled.by_partition.contains_key(&partition))
    }

    /// Records each partition's state at shard tick `tick` (a shard, for the partitions it
    /// hosts that may have changed since they were last recorded): whether its replica is
    /// caught up now and whether its committed configuration lists this node as a voter. A
    /// partition is [`Standing::caught_up`] once it was caught up on `window_ticks` ticks in a
    /// row (at least one). Returns the partitions still counting towards the window (caught
    /// up, not yet for long enough) with the tick their standing turns caught up at, if they
    /// stay caught up: the shard records them again then.
    pub(crate) fn record_tick(
        &self,
        partitions: impl IntoIterator<Item = (PartitionId, bool, bool)>,
        tick: u64,
        window_ticks: u64,
    ) -> Vec<(PartitionId, u64)> {
        let window_ticks = window_ticks.max(1);
        let mut changed = false;
        let mut counting = Vec::new();
        {
            let mut standings = self
                .standings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (partition, caught_up, voter) in partitions {
                let tracked = standings.entry(partition).or_default();
                tracked.caught_up_since = if caught_up {
                    Some(tracked.caught_up_since.unwrap_or(tick))
                } else {
                    None
                };
                let settles_at = tracked
                    .caught_up_since
                    .map(|since| since.saturating_add(window_ticks - 1));
                let standing = Standing {
                    caught_up: settles_at.is_some_and(|at| at <= tick),
                    voter,
                };
                if let Some(at) = settles_at.filter(|&at| at > tick) {
                    counting.push((partition, at));
                }
                changed |= standing != tracked.standing;
                tracked.standing = standing;
            }
        }
        if changed {
            self.changes
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        counting
    }

    /// `partition`'s standing on this node (`None`: not hosted here, or not ticked yet).
    #[must_use]
    pub fn standing(&self, partition: PartitionId) -> Option<Standing> {
        self.standings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&partition)
            .map(|tracked| tracked.standing)
    }

    /// A receiver that sees every change of the roster or of a partition's standing.
    #[must_use]
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Which roster version each partition's committed configuration matches, with how many
/// partitions match each: whether all match one is answered without looking at each (partition
/// 0's leader asks on every tick).
#[derive(Debug, Default)]
struct Reconciled {
    by_partition: StableHashMap<PartitionId, Option<u64>>,
    /// Per matched version (`None`: none), the partitions matching it; no zero counts.
    counts: StableHashMap<Option<u64>, usize>,
}

impl Reconciled {
    /// Records that `partition` matches `version` (`Some(version)`), or forgets it (`None`).
    fn set(&mut self, partition: PartitionId, version: Option<Option<u64>>) {
        let previous = match version {
            Some(version) => {
                *self.counts.entry(version).or_default() += 1;
                self.by_partition.insert(partition, version)
            }
            None => self.by_partition.remove(&partition),
        };
        if let Some(previous) = previous
            && let Some(count) = self.counts.get_mut(&previous)
        {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&previous);
            }
        }
    }

    /// Whether every partition recorded matches `version`.
    fn all_at(&self, version: u64) -> bool {
        self.counts.get(&Some(version)).copied().unwrap_or(0) == self.by_partition.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition the map removed no longer holds roster changes back (a tombstone would
    /// otherwise refuse every later change `ConcurrentMembershipChange`).
    #[test]
    fn a_forgotten_partition_no_longer_holds_the_roster_back() {
        let table = MembershipTable::default();
        table.set_reconciled([(PartitionId(1), Some(3)), (PartitionId(2), None)]);
        table.record_tick([(PartitionId(2), true, true)], 1, 1);
        assert!(!table.all_reconciled(3, []));
        table.forget(PartitionId(2));
        assert!(table.all_reconciled(3, []));
        assert_eq!(table.standing(PartitionId(2)), None);
    }

    /// A partition recorded only where it may have changed counts the ticks between two
    /// records towards the promotion window, as if it had been recorded at each; a tick not
    /// caught up starts the window again.
    #[test]
    fn the_promotion_window_counts_the_ticks_between_records() {
        let table = MembershipTable::default();
        let p = PartitionId(4);
        assert_eq!(table.record_tick([(p, true, false)], 10, 5), vec![(p, 14)]);
        assert_eq!(table.standing(p).map(|s| s.caught_up), Some(false));
        assert_eq!(table.record_tick([(p, true, false)], 13, 5), vec![(p, 14)]);
        assert_eq!(table.standing(p).map(|s| s.caught_up), Some(false));
        assert!(table.record_tick([(p, true, true)], 14, 5).is_empty());
        assert_eq!(
            table.standing(p),
            Some(Standing {
                caught_up: true,
                voter: true
            })
        );
        assert!(table.record_tick([(p, false, true)], 20, 5).is_empty());
        assert_eq!(table.standing(p).map(|s| s.caught_up), Some(false));
        assert_eq!(table.record_tick([(p, true, true)], 21, 5), vec![(p, 25)]);
        assert_eq!(table.standing(p).map(|s| s.caught_up), Some(false));
    }

    /// Whether every partition matches a roster version is kept as counts: moving partitions
    /// between versions and forgetting them keeps the answer right.
    #[test]
    fn all_reconciled_follows_every_partitions_version() {
        let table = MembershipTable::default();
        assert!(table.all_reconciled(1, []), "no partition holds it back");
        table.set_reconciled([(PartitionId(1), Some(1)), (PartitionId(2), Some(1))]);
        assert!(table.all_reconciled(1, []));
        table.set_reconciled([(PartitionId(2), Some(2))]);
        assert!(!table.all_reconciled(1, []));
        assert!(!table.all_reconciled(2, []));
        table.set_reconciled([(PartitionId(1), Some(2)), (PartitionId(3), None)]);
        assert!(!table.all_reconciled(2, []));
        table.set_reconciled([(PartitionId(3), Some(2))]);
        assert!(table.all_reconciled(2, []));
        table.set_reconciled([(PartitionId(3), Some(2))]);
        assert!(
            table.all_reconciled(2, []),
            "recording the same twice counts it once"
        );
        table.forget(PartitionId(1));
        assert!(table.all_reconciled(2, []));
    }

    /// A partition the map holds open that no shard recorded yet holds the roster back; once
    /// recorded with the roster's configuration it does not.
    #[test]
    fn a_hosted_partition_not_recorded_yet_holds_the_roster_back() {
        let table = MembershipTable::default();
        table.set_reconciled([(PartitionId(1), Some(2))]);
        assert!(table.all_reconciled(2, [PartitionId(1)]));
        assert!(!table.all_reconciled(2, [PartitionId(1), PartitionId(2)]));
        table.set_reconciled([(PartitionId(2), None)]);
        assert!(!table.all_reconciled(2, [PartitionId(1), PartitionId(2)]));
        table.set_reconciled([(PartitionId(2), Some(2))]);
        assert!(table.all_reconciled(2, [PartitionId(1), PartitionId(2)]));
    }
}
