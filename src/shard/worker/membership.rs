//! The worker's side of membership (decision 0004; the types and rules are in
//! `shard/membership/`). On every tick:
//!
//! 1. The shard hosting partition 0 publishes the roster its replica has committed (the
//!    [`MembershipTable`](crate::shard::membership::MembershipTable)) and hands its members
//!    to the transport as its peers (`Transport::set_peers`). As partition 0's established
//!    leader it makes two changes itself: the genesis roster restated with the endpoints of
//!    the nodes the cluster started with, and a leaving member removed once every partition
//!    of its node let it go (committed a configuration without it).
//! 2. Every shard records each partition's standing (caught up with its leader, a voter: what
//!    a joining node waits on), which of its partitions have committed the roster's
//!    configuration, and the partitions it leads (no transfer running) take their next step
//!    towards the roster (`reconcile.rs`), which the core refuses until the no-op of the
//!    leader's term has committed and while another change is in flight. Only the partitions
//!    that may have changed since the last look are looked at (those whose membership facts —
//!    held, leading, caught up, the configuration in force and the commit index up to it, a
//!    transfer — changed after a gathering, those stepped or whose step waits, those whose
//!    standing still counts towards the promotion window), all of them when the roster
//!    changed: a tick costs the partitions whose membership changed, not the hosted ones nor
//!    the written ones (issue 15).
//!
//! Roster changes ([`Request::ChangeMembership`](crate::shard::Request::ChangeMembership)) are
//! carried out here too, on partition 0's leader.

use std::sync::atomic::Ordering;

use crate::core::{
    EntryKind, LogIndex, NodeId, PartitionId, Replica, ReplicaConfig, Status, Ticket,
};
use crate::shard::ShardConfig;
use crate::shard::membership::{
    MemberRole, MembershipTable, Roster, RosterChange, RosterError, Step, Target, next_step,
    roster_version_of,
};
use crate::shard::partitions::map_entry;
use crate::shard::{RaftEvent, Refusal, ReplicationResult, Reply, SYSTEM_PARTITION, Transport};

use super::Worker;
use super::partition::Slot;

/// The ticket of an entry the shard proposes itself (a configuration, a generation or import
/// entry): the top bit set and the
/// index the entry will take, unique in the partition's log. An HLC ticket (milliseconds in
/// its high 42 bits) leaves the top bit clear until 2^41 ms (September 2039), and could equal
/// one of these only in the minutes after it (while `index >> 22` milliseconds pass). Even
/// then an equal ticket misleads nothing: outcome waiters are keyed by entry kind and index,
/// not ticket, and only two-phase writes (never a configuration) are held or resolved by
/// ticket.
pub(super) fn system_ticket(replica: &Replica) -> Ticket {
    Ticket(1 << 63 | (replica.last_index().0 + 1))
}

/// Numbers `replica`'s committed configuration with the roster version it follows (what its
/// vote requests carry, and what lifts a withheld vote).
pub(super) fn number_committed_configuration(partition: PartitionId, replica: &mut Replica) {
    let version = roster_version_of(partition, replica.committed_configuration());
    replica.set_configuration_version(version);
}

/// A partition's standing this tick, (caught up, voter): whether its replica is caught up
/// (it leads, or a leader it knows told it a commit index it has applied within `lag_max`
/// of) and whether its committed configuration lists `node` as a voter. A joining node asks
/// for its promotion once every partition it hosts stayed caught up for the promotion window;
/// a held partition (restoring, installing a snapshot) is not caught up.
fn standing(slot: &Slot, node: NodeId, lag_max: u64) -> (bool, bool) {
    let held = slot.held();
    let Some(replica) = slot.replica.as_ref().filter(|_| !held) else {
        return (false, false);
    };
    (
        caught_up(replica, lag_max),
        replica.committed_configuration().is_voter(node),
    )
}

/// Whether `replica` is caught up: it leads, or a leader it knows told it a commit index it
/// has applied within `lag_max` of.
fn caught_up(replica: &Replica, lag_max: u64) -> bool {
    let told = replica.leader_commit();
    replica.is_leader()
        || (replica.leader().is_some()
            && told > LogIndex::ZERO
            && replica.applied_index().0.saturating_add(lag_max) >= told.0)
}

/// What the membership work's look at a partition reads of it, but the configurations' own
/// members (which change only with the indices here): a look when none of it changed since
/// the last one, against the same roster, would find the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MembershipFacts {
    held: bool,
    leads: bool,
    caught_up: bool,
    /// The index of the configuration in force.
    configuration_at: LogIndex,
    /// The commit index up to the configuration in force: the committed configuration is the
    /// one in force there.
    committed_to: LogIndex,
    transfer: bool,
}

impl MembershipFacts {
    /// `slot`'s facts (reads only the replica's own fields: no configuration's memory).
    fn of(slot: &Slot, lag_max: u64) -> Self {
        let held = slot.held();
        let Some(replica) = slot.replica.as_ref() else {
            // Read back from the WAL: held.
            return Self {
                held,
                leads: false,
                caught_up: false,
                configuration_at: LogIndex::ZERO,
                committed_to: LogIndex::ZERO,
                transfer: false,
            };
        };
        let configuration_at = replica.configuration_index();
        Self {
            held,
            leads: replica.is_leader(),
            caught_up: !held && caught_up(replica, lag_max),
            configuration_at,
            committed_to: replica.commit_index().min(configuration_at),
            transfer: replica.transfer_target().is_some(),
        }
    }
}

/// Whether `slot`'s membership facts changed since they were last noted, noting them: after
/// each gathering of its Readies (whatever changes a replica touches it, and every touched
/// partition is gathered), a partition is listed for the next tick's membership work only
/// then. A partition whose writes only moved its log on is not looked at again (issue 15: at
/// 4096 active partitions the membership work looked at every partition at every tick).
pub(super) fn membership_changed(slot: &mut Slot, lag_max: u64) -> bool {
    let facts = MembershipFacts::of(slot, lag_max);
    slot.membership_facts_changed(facts)
}

/// `partition`'s core configuration on this node: a data directory admitted through a seed
/// withholds its replicas' votes until their partition committed a configuration of the
/// roster version that admitted it (decision 0004, "A replaced disk's vote").
pub(super) fn replica_config(
    config: &ShardConfig,
    membership: &MembershipTable,
    partition: PartitionId,
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
) -> ReplicaConfig {
    #[allow(unused_mut)]
    let mut withheld_below = membership.admitted_version();
    #[cfg(feature = "sim-bugs")]
    if config.bug == Some(crate::shard::NodeBug::ReplacedDiskVotesAtOnce) {
        withheld_below = 0;
    }
    ReplicaConfig {
        votes_withheld_below_version: withheld_below,
        ..config.partition_config(partition, voters, learners)
    }
}

impl Worker {
    /// The tick's membership work (see the module docs), on the partitions that may have
    /// changed since the last tick (`Partitions::take_membership_due`: those whose facts
    /// changed, those it stepped or whose step waits, those whose standing still counts) —
    /// every hosted partition only when the roster changed. A partition left alone, quiesced
    /// or not, is unchanged since it was last looked at, against the same roster: looking
    /// again would record the same standing and reconciliation and take the same step
    /// (none).
    pub(super) fn membership_tick(&mut self) {
        if self.failed() {
            return;
        }
        self.publish_roster();
        let roster = self.membership.roster();
        let mut due = self.partitions.take_membership_due(self.ticks);
        if let Some(roster) = &roster
            && self.roster_followed != Some(roster.version())
        {
            // A new roster: every partition's target moved.
            self.roster_followed = Some(roster.version());
            due = self.partitions.ids();
        }
        self.stats
            .partition_visits
            .fetch_add(due.len() as u64, Ordering::Relaxed);
        // One visit of each partition (at 4096 active partitions each walk of the slots
        // misses the cache): its standing, then its reconciliation and next step.
        let target = roster
            .as_ref()
            .map(|roster| (Target::of(roster), roster.version()));
        let lag_max = self.config.membership.promotion_lag_entries_max;
        let mut standings = Vec::new();
        let mut reconciled = Vec::new();
        let mut touched = Vec::new();
        let mut waiting = Vec::new();
        for &partition in &due {
            let Some(slot) = self.partitions.membership_visit(partition) else {
                continue;
            };
            let standing = standing(slot, self.node, lag_max);
            // The same standing as last recorded changes nothing in the table.
            if slot.standing_changed(standing) {
                standings.push((partition, standing.0, standing.1));
            }
            let Some((target, version)) = &target else {
                continue;
            };
            if let Some(replica) = slot.replica.as_mut() {
                let withheld = replica.votes_withheld();
                number_committed_configuration(partition, replica);
                if replica.votes_withheld() != withheld {
                    // It may campaign now: its next visit is looked at again (`gathered`).
                    touched.push(partition);
                }
            }
            if partition == SYSTEM_PARTITION {
                continue;
            }
            let held = slot.held();
            let matched = slot.replica.as_ref().filter(|_| !held).and_then(|r| {
                target
                    .is_met_by(r.committed_configuration())
                    .then_some(*version)
            });
            if slot.reconciled_changed(matched) {
                reconciled.push((partition, matched));
            }
            let Some(replica) = slot.replica.as_mut().filter(|_| !held) else {
                continue;
            };
            if !replica.is_leader() {
                continue;
            }
            // Whether a configuration may be proposed now (the no-op of the term committed,
            // no change in flight) is the core's to say: a refusal is tried again next tick,
            // as is a step waiting for a transfer or for a newcomer.
            if replica.transfer_target().is_some() {
                waiting.push(partition);
                continue;
            }
            let step = next_step(
                replica.configuration(),
                target,
                self.node,
                replica.commit_index(),
                lag_max,
                |node| replica.progress(node).map(|p| p.match_index),
            );
            let done = match step {
                Step::Done => continue,
                Step::Wait => {
                    waiting.push(partition);
                    continue;
                }
                Step::Propose(configuration) => {
                    let ticket = system_ticket(replica);
                    replica
                        .propose_configuration(ticket, configuration)
                        .map(drop)
                }
                Step::Transfer(target) => replica.transfer_leadership(target),
            };
            if let Err(status) = done {
                tracing::debug!(
                    partition = partition.0,
                    ?status,
                    "membership: the partition's next step was refused; tried again next tick"
                );
            }
            touched.push(partition);
        }
        self.partitions.recycle_membership_due(due);
        self.record_standings(standings);
        if target.is_some() {
            self.membership.set_reconciled(reconciled);
        }
        // A step taken is looked at again next tick, as is a refused one (tried again).
        for partition in touched {
            self.partitions.mark_dirty(partition);
            self.partitions.membership_due(partition);
        }
        for partition in waiting {
            self.partitions.membership_due(partition);
        }
    }

    /// Records `standings` (partition, caught up, voter) of this tick in the membership
    /// table, and looks again at each partition still counting towards the promotion window
    /// at the tick it would reach it.
    fn record_standings(&mut self, standings: Vec<(PartitionId, bool, bool)>) {
        let window = self
            .config
            .membership
            .promotion_window_ticks(self.config.tick_interval);
        for (partition, at) in self.membership.record_tick(standings, self.ticks, window) {
            self.partitions.standing_settles_at(partition, at);
        }
    }

    /// As the shard of partition 0 (on every tick and every Ready of partition 0): publishes
    /// its committed roster when it changed and, as partition 0's established leader, makes
    /// its own changes (the genesis roster restated with the endpoints, a leaving member
    /// removed once every partition let it go).
    pub(super) fn publish_roster(&mut self) {
        let Some(slot) = self.partitions.get_mut(SYSTEM_PARTITION) else {
            return;
        };
        let held = slot.held();
        let Some(replica) = slot.replica.as_mut().filter(|_| !held) else {
            return;
        };
        let committed = replica.committed_configuration();
        let roster = match Roster::of(committed) {
            Ok(roster) => roster,
            Err(error) => {
                tracing::error!(%error, "membership: partition 0's committed configuration");
                return;
            }
        };
        if self.membership.publish(&roster) {
            self.events.emit(RaftEvent::MembershipChanged {
                version: roster.version(),
            });
            follow_roster_peers(&*self.transport, self.node, &roster);
        }
        if !replica.is_leader_established() || replica.configuration_change_pending() {
            return;
        }
        // The changes partition 0's leader makes itself: the genesis roster restated with the
        // endpoints, a leaving member removed once every partition let it go.
        let own = if roster.version() == 0 {
            Some(RosterChange::Endpoints {
                endpoints: self
                    .config
                    .cluster
                    .iter()
                    .filter(|(node, _)| roster.member(**node).is_some())
                    .map(|(&node, endpoint)| (node, endpoint.clone()))
                    .collect(),
            })
        } else {
            roster
                .members()
                .iter()
                .find(|m| m.role == MemberRole::Leaving)
                .filter(|_| {
                    self.membership
                        .all_reconciled(roster.version(), self.maps.map().hosted())
                })
                .map(|m| RosterChange::Remove { node: m.node })
        };
        let Some(change) = own.filter(|_| map_is_current(replica, self.map_change.is_some()))
        else {
            return;
        };
        match roster.configuration_after(&change, Some(roster.version())) {
            Ok(Some(configuration)) => {
                let ticket = system_ticket(replica);
                if replica.propose_configuration(ticket, configuration).is_ok() {
                    self.partitions.mark_dirty(SYSTEM_PARTITION);
                }
            }
            Ok(None) => {}
            // Endpoints that are not valid (an in-process cluster's may be empty): the roster
            // stays at its genesis version, every change still works.
            Err(error) => {
                tracing::debug!(%error, "membership: partition 0's leader's own change is refused");
            }
        }
    }

    /// Carries out a roster change on partition 0 (this node must lead it, with the no-op of
    /// its term committed): refused while a change is in flight on partition 0 or any
    /// partition of this node has not committed the roster's configuration yet.
    pub(super) fn change_membership(
        &mut self,
        change: &RosterChange,
        expected_version: Option<u64>,
        ticket: Ticket,
        reply: Reply<ReplicationResult>,
    ) {
        let map = self.maps.map();
        let reconciled_to = |version| self.membership.all_reconciled(version, map.hosted());
        let map_in_flight = self.map_change.is_some();
        let slot = match self.partitions.leading(SYSTEM_PARTITION) {
            Ok(slot) => slot,
            Err(refusal) => {
                let _ = reply.send(Err(refusal));
                return;
            }
        };
        let Some(replica) = slot.replica.as_mut() else {
            // Never: `leading` found it.
            let _ = reply.send(Err(Refusal::RestoreInProgress));
            return;
        };
        let concurrent = Refusal::Replica(Status::ConcurrentMembershipChange);
        #[allow(unused_mut)]
        let mut established = replica.is_leader_established();
        #[cfg(feature = "sim-bugs")]
        if self.config.bug == Some(crate::shard::NodeBug::RosterChangeBeforeNoOp) {
            established = true;
        }
        #[allow(unused_mut)]
        let mut one_at_a_time = true;
        #[cfg(feature = "sim-bugs")]
        if self.config.bug == Some(crate::shard::NodeBug::ConcurrentRosterChanges) {
            one_at_a_time = false;
        }
        if !established || (one_at_a_time && replica.configuration_change_pending()) {
            let _ = reply.send(Err(concurrent));
            return;
        }
        // Nothing uncommitted: the configuration in force is the committed roster.
        let roster = match Roster::of(replica.configuration()) {
            Ok(roster) => roster,
            Err(_) => {
                let _ = reply.send(Err(Refusal::Replica(Status::Errored)));
                return;
            }
        };
        // The partitions a change waits for are those of the newest map: none while a map
        // not applied here yet is in partition 0's log.
        let settled = |version| map_is_current(replica, map_in_flight) && reconciled_to(version);
        let result = match roster.configuration_after(change, expected_version) {
            Ok(Some(_)) if one_at_a_time && !settled(roster.version()) => Err(concurrent),
            Ok(Some(configuration)) => replica
                .propose_configuration(ticket, configuration)
                .map_err(|status| Refusal::of_replica(replica, status)),
            Ok(None) => {
                // Nothing to change (a retry of a change that committed): answered at once.
                let _ = reply.send(Ok(ReplicationResult {
                    status: Status::Success,
                    ticket,
                    index: replica.commit_index(),
                }));
                return;
            }
            Err(error) => Err(Refusal::Replica(roster_status(&error))),
        };
        Self::wait_outcome(slot, EntryKind::Configuration, result, reply);
    }
}

/// Whether the map this shard applied is the newest of partition 0's log, as partition 0's
/// established leader (`replica`) sees it: no map change of its own is in flight and no map
/// entry lies in its log above the applied index (committed and not delivered yet, or not
/// committed; the established leader holds that tail in memory). A roster change waits for
/// every partition of the applied map (`MembershipTable::all_reconciled`); a newer map names
/// partitions the change cannot wait for yet (node sim seed 7251 of the joining sweep: two
/// nodes, the first map in flight naming both as voters of every partition, then one demoted
/// and removed from partition 0 before it learnt that map committed; it never opened the
/// partitions, which never had the quorum to elect a leader). Only map entries hold it back:
/// writes to partition 0 going on do not.
fn map_is_current(replica: &Replica, map_in_flight: bool) -> bool {
    let unapplied = replica.applied_index().next().0..=replica.last_index().0;
    !map_in_flight
        && !unapplied.into_iter().any(|index| {
            replica
                .entry(LogIndex(index))
                .is_some_and(|entry| map_entry(SYSTEM_PARTITION, entry).is_some())
        })
}

/// Hands `transport` the roster's members (but `node`) as its peers, once the roster records
/// endpoints (the genesis roster does not: the transport keeps the peers it was built with).
fn follow_roster_peers(transport: &dyn Transport, node: NodeId, roster: &Roster) {
    if roster.version() == 0 {
        return;
    }
    if let Err(error) = transport.set_peers(&roster.peers_of(node)) {
        tracing::warn!(
            %error,
            version = roster.version(),
            "membership: the transport refused the roster's peers; it keeps the previous ones"
        );
    }
}

/// The status of a refused roster change.
fn roster_status(error: &RosterError) -> Status {
    match error {
        RosterError::Stale { .. } => Status::StaleMembership,
        RosterError::InsufficientVoters => Status::InsufficientVoters,
        _ => Status::Errored,
    }
}
