//! The worker's side of the partition map (decision 0006 point 5): on every tick each shard
//! compares the committed map ([`MapTable`](crate::shard::partitions::MapTable)) with the
//! partitions it hosts, and
//!
//! * opens every partition the map holds (not removed) that [`shard_of`] places here and that
//!   it does not host: created, or restored when its WAL holds its log, with its first
//!   configuration — the one its range carries when a map change created it (partition 0's
//!   committed configuration when the change was proposed, the same on every node and at every
//!   restart), else (the ranges of the cluster's first map) the one this node decided when it
//!   joined;
//! * closes every partition it hosts that the map removed (a tombstone): its waiters are
//!   refused `NotHosted`, its restore and transfers end, its leadership shows no leader, and
//!   its WAL records are deleted so that its segments are reclaimed — once the map that
//!   removed it is durable on this node ([`MapTable::durable_version`]: partition 0's commit
//!   of it is on the disk). Deleted sooner, a restart that read back an older map would open
//!   the partition again from an empty log: a replica that forgot its term and its vote.
//!
//! Partition 0's shard says when a map is durable: a map published by its Readies (or by
//! its restore's delivery) is durable once the WAL holds everything appended when it was
//! published (`note_map_written`, `note_map_durable`).
//!
//! A partition a map change created that opens here without a log, this node being its
//! [`first_candidate`], has its first election started at once rather than after an election
//! timeout (decision 0006, amendment "a created partition's first leader").
//!
//! Once it followed the map through, it records it (`MapTable::followed`): the newest map
//! every shard followed is the map in force, which the node reports as initialized.
//!
//! Partitions opened by an explicit `ShardHost::open_partition` (partition 0, or a test's
//! partitions without a map) are left alone unless the map removes them.

use std::time::Instant;

use super::Worker;
use crate::core::{NodeId, PartitionId, Role, SoftState, Term};
#[cfg(doc)]
use crate::shard::partitions::MapTable;
use crate::shard::partitions::{FirstMembers, RangeState};
use crate::shard::{Refusal, shard_of};

impl Worker {
    /// The tick's map work (see the module docs). A partition whose open is refused (beyond
    /// `partitions_max`) is tried again at the next tick: the map is followed only once all
    /// of this shard's partitions of it are open. A restore that fails later is not retried
    /// before the next map.
    pub(super) fn follow_map(&mut self, now: Instant) {
        if self.failed() {
            return;
        }
        self.delete_closed();
        let map = self.maps.map();
        if map.version == self.map_followed {
            return;
        }
        let shards = self.config.shard_count;
        let mut done = true;
        for range in &map.partitions {
            let partition = range.partition_id;
            if shard_of(partition, shards) != self.shard {
                continue;
            }
            if range.state == RangeState::Removed {
                self.close(partition, map.version, now);
            } else if self.partitions.get(partition).is_none() {
                let (voters, learners) = match &range.first {
                    Some(first) => (first.voters.clone(), first.learners.clone()),
                    None => self.first_configuration(),
                };
                let candidate = range
                    .first
                    .as_ref()
                    .and_then(|f| first_candidate(partition, f));
                match self.open_partition(partition, voters, learners) {
                    Ok(opened) if !opened.restoring && candidate == Some(self.node) => {
                        self.campaign_first(partition);
                    }
                    Ok(_) => {}
                    Err(refusal) => {
                        tracing::debug!(
                            %partition,
                            ?refusal,
                            "partition map: the partition does not open; tried again next tick"
                        );
                        done = false;
                    }
                }
            }
            if self.failed() {
                return;
            }
        }
        if done {
            self.map_followed = map.version;
            self.maps.followed(self.shard, shards, map.version);
        }
    }

    /// The first configuration of a partition of the cluster's first map (its log governs
    /// above it; a partition a map change created carries its own): what
    /// this node decided when it joined (`MapTable::set_first_members`), else the cluster the
    /// shards were started with, voters all. It must be the same at every open of the
    /// partition on this node, restores included: until the partition's log holds a
    /// configuration entry, it is the voter set the replica counts quorums with (a restart
    /// opening it from the roster in force then, which may have moved, would count with
    /// another).
    fn first_configuration(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        self.maps
            .first_members()
            .unwrap_or_else(|| (self.config.cluster.keys().copied().collect(), Vec::new()))
    }

    /// Closes `partition`, which the map of `version` removed, and deletes its WAL records once
    /// that map is durable (`delete_when_durable`); when it is not hosted here, deletes its
    /// records all the same, if the WAL holds any (a node that restarted after the tombstone
    /// committed never opens the partition again: the node simulator's elastic sweep found its
    /// records kept for ever).
    fn close(&mut self, partition: PartitionId, version: u64, now: Instant) {
        let Some(mut slot) = self.partitions.remove(partition) else {
            self.delete_when_durable(partition, version);
            return;
        };
        slot.refuse_waiters(&Refusal::NotHosted);
        self.restoring.retain(|&p| p != partition);
        self.compactions_waiting.retain(|&p| p != partition);
        self.reads.forget(partition);
        self.membership.forget(partition);
        self.end_transfers(partition);
        let term = slot
            .replica
            .as_ref()
            .map_or(Term(0), |r| r.soft_state().term);
        self.leaders.update(
            partition,
            SoftState {
                role: Role::Follower,
                leader: None,
                term,
                noop_committed: false,
            },
            now,
        );
        self.delete_when_durable(partition, version);
        tracing::info!(%partition, "partition map: the partition is removed; closed");
    }

    /// Deletes the WAL records of `partition`, closed, if the map of `version` that removed it
    /// is durable on this node (see the module docs), else leaves the deletion to
    /// `delete_closed` at a later tick.
    fn delete_when_durable(&mut self, partition: PartitionId, version: u64) {
        if version <= self.maps.durable_version() {
            let deleted = self.writes.delete_partition(&mut self.wal, partition);
            self.check_wal(deleted);
        } else if !self.deletions_waiting.iter().any(|(p, _)| *p == partition) {
            self.deletions_waiting.push((partition, version));
        }
    }

    /// Deletes the WAL records of the closed partitions whose removing map became durable on
    /// this node since they were closed; the others wait for a later tick. A partition opened again
    /// meanwhile (a restart read back an older map and its log) is closed again when the
    /// map comes back.
    fn delete_closed(&mut self) {
        if self.deletions_waiting.is_empty() {
            return;
        }
        let durable = self.maps.durable_version();
        let mut waiting = std::mem::take(&mut self.deletions_waiting);
        waiting.retain(|&(partition, version)| {
            if version > durable || self.failed() {
                return true;
            }
            if self.partitions.get(partition).is_none() {
                let deleted = self.writes.delete_partition(&mut self.wal, partition);
                self.check_wal(deleted);
            }
            false
        });
        self.deletions_waiting = waiting;
    }

    /// After partition 0's Ready was scheduled, or its restore delivered entries: a map
    /// published since the last note is durable once the WAL holds everything appended now
    /// (the commit index that covers the map's entry was appended with that Ready or an
    /// earlier one). A newer map replaces an older one not yet durable, which then waits
    /// for the newer one's records.
    pub(super) fn note_map_written(&mut self) {
        let version = self.maps.map().version;
        if version > self.maps.durable_version()
            && self
                .map_written
                .is_none_or(|(_, written)| written < version)
        {
            self.map_written = Some((self.wal.next_lsn(), version));
        }
    }

    /// After each poll of the WAL: the map noted written is durable once the WAL is.
    pub(super) fn note_map_durable(&mut self) {
        if let Some((lsn, version)) = self.map_written
            && self.wal.durable_lsn() >= lsn
        {
            self.maps.made_durable(version);
            self.map_written = None;
        }
    }

    /// Starts the first election of `partition`, created by a map change and opened here
    /// without a log, this node being its [`first_candidate`]. Its peers open it when partition
    /// 0's commit of the map reaches them: its leader's next heartbeat, within a heartbeat
    /// interval, and their next tick. A pre-vote sent before that is dropped, so it is asked
    /// again after twice the heartbeat interval and a tick (at most the minimum election
    /// timeout, which the node's configuration keeps above twice the heartbeat interval).
    fn campaign_first(&mut self, partition: PartitionId) {
        let retry_ticks = self
            .config
            .core
            .heartbeat_interval_ticks
            .saturating_mul(2)
            .saturating_add(1);
        let Some(replica) = self.partitions.replica_mut(partition) else {
            return;
        };
        if replica.campaign_first(retry_ticks) {
            self.partitions.mark_dirty(partition);
            tracing::debug!(%partition, "partition map: a created partition; campaigning first");
        }
    }
}

/// The member of a created partition's first configuration that campaigns as soon as it opens
/// it (decision 0006, amendment "a created partition's first leader"): of its voters in
/// ascending id order, the one at the partition id modulo their number, so that successive
/// partitions' first leaders spread over the voters. A function of the map entry alone: every
/// node names the same one, at every restart. `None` without voters (no valid configuration).
fn first_candidate(partition: PartitionId, first: &FirstMembers) -> Option<NodeId> {
    let mut voters = first.voters.clone();
    voters.sort_unstable();
    let count = u32::try_from(voters.len()).ok().filter(|&n| n > 0)?;
    voters
        .get(usize::try_from(partition.0 % count).ok()?)
        .copied()
}
