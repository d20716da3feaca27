//! Readies: gathering the Ready of every partition touched this turn and carrying out its
//! obligations in the order the core's `Ready` contract sets — publish the soft state, hand
//! what must persist to the WalScheduler (with the messages that wait for it), queue the
//! send-now messages, deliver the committed entries, announce a leader change once it is due
//! (`announce.rs`), answer the outcomes and read states.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Worker;
use super::announce::announce_leader;
use super::delivery::{Recipients, deliver_live};
use super::membership::membership_changed;
use super::partition::Slot;
use super::restore::Restore;
use crate::core::{LogIndex, PartitionId, Ready, Replica, Role};
#[cfg(feature = "sim-bugs")]
use crate::shard::NodeBug;
use crate::shard::{
    LeaderTable, LogProgress, Refusal, ReplicationResult, SYSTEM_PARTITION, outcome_key,
};

/// The Readies a partition's replica hands over in one turn at most: a Ready can make another
/// one possible (applied → compaction), and a few rounds keep latency low without starving the
/// other partitions (the rest waits for the next turn).
const READY_ROUNDS_PER_TURN: u32 = 4;

impl Worker {
    /// Handles the Readies of the touched partitions at `now` (counting again who subscribes
    /// to each one's progress when `recount`: `Worker::tick_all`), handing what they append
    /// to the WalScheduler (`Worker::submit_appended` submits it). Returns whether there was
    /// any.
    pub(super) fn gather_readies(&mut self, recount: bool, now: Instant) -> bool {
        if self.failed() {
            return false;
        }
        let mut worked = false;
        let lag_max = self.config.membership.promotion_lag_entries_max;
        let touched = self.partitions.take_touched();
        // One Ready for every replica of the turn: its vectors keep their capacity.
        let mut ready = std::mem::take(&mut self.ready);
        for &partition in &touched {
            let Some(mut slot) = self.partitions.gathered(partition) else {
                continue;
            };
            if slot.installing {
                // Held while its import finishes; marked again when it is released. Held, it
                // is not caught up: the membership work looks at it.
                self.partitions.membership_due(partition);
                continue;
            }
            // One lookup of the slot per Ready: the one after a Ready is handled serves to
            // take the next or to end the gathering (at 4096 active partitions each lookup
            // cost a cache miss or two, and there were six).
            let mut rounds = 0;
            let (more, membership_due) = loop {
                let ready_left = slot.replica.as_ref().is_some_and(Replica::has_ready);
                if !ready_left || rounds == READY_ROUNDS_PER_TURN {
                    publish_progress(&self.leaders, slot, partition, recount);
                    break (ready_left, membership_changed(slot, lag_max));
                }
                if let Some(replica) = slot.replica.as_mut() {
                    replica.ready_into(&mut ready);
                }
                rounds += 1;
                worked = true;
                self.handle_ready(partition, &mut ready, now);
                if self.failed() {
                    return true;
                }
                let Some(next) = self.partitions.get_mut(partition) else {
                    break (false, false);
                };
                slot = next;
            };
            if more {
                // More to do: next turn (after the other partitions had theirs).
                self.partitions.mark_dirty(partition);
            }
            if membership_due {
                self.partitions.membership_due(partition);
            }
        }
        self.partitions.recycle_touched(touched);
        // Its entries hold payloads: dropped now, not at the next Ready.
        ready.clear();
        self.ready = ready;
        worked
    }

    /// Submits what this turn's Readies appended to the WAL as ONE write. The turn calls it
    /// after it handed its messages to the transport: a leader's appends leave before its own
    /// write is submitted (the submission's system call is not on the followers' path), which
    /// is safe because nothing that waits for durability is sent before the WAL says it is.
    pub(super) fn submit_appended(&mut self, now: Instant) {
        if self.failed() || !self.writes.has_appended() {
            return;
        }
        self.stats.wal_submissions.fetch_add(1, Ordering::Relaxed);
        let result = self.writes.submit(&mut self.wal, now);
        self.check_wal(result);
        #[cfg(feature = "sim-bugs")]
        if self.config.bug == Some(NodeBug::DurableWithoutFsync) && !self.failed() {
            // The bug: what was just submitted counts as durable, synced or not.
            let submitted = self.wal.next_lsn();
            self.writes.acknowledge(
                submitted,
                &mut self.outbox,
                now,
                super::persisted(&mut self.partitions),
            );
            self.outbox.flush(&*self.transport);
        }
    }

    fn handle_ready(&mut self, partition: PartitionId, ready: &mut Ready, now: Instant) {
        if let Some(quiesced) = ready.quiescence {
            self.partitions.quiescence_reported(partition, quiesced);
        }
        if let Some(soft) = ready.soft_state {
            self.transfers_follow(partition, soft);
        }
        let Some(slot) = self.partitions.get_mut(partition) else {
            return;
        };
        if let Some(soft) = ready.soft_state {
            let previous_term = self.leaders.get(partition).map(|l| l.term);
            if self.leaders.update(partition, soft, now) {
                // A candidate or a leader in a term it did not report before ran an election
                // (a lone voter wins within one Ready: its candidacy is never reported).
                let campaigned = matches!(soft.role, Role::Candidate | Role::Leader);
                if campaigned && previous_term != Some(soft.term) {
                    self.metrics.election_started();
                }
                if soft.leader.is_some() {
                    self.metrics.leader_changed();
                }
            }
            // Forwarded reads may never be answered by a deposed leader. The commit of the
            // leader's no-op is the one change that deposes nobody (role, leader and term are
            // those of the previous report).
            if !soft.noop_committed {
                for (_, read) in slot.reads.drain() {
                    let _ = read.reply.send(Err(Refusal::NotLeader {
                        leader: soft.leader,
                    }));
                }
            }
        }
        #[cfg(feature = "sim-bugs")]
        if self.config.bug == Some(NodeBug::ReleaseGatedBeforeDurable) {
            // The bug: votes and append acks leave with this turn's submission, durable or not.
            let gated = std::mem::take(&mut ready.persisted_messages);
            if let Ok(messages) = gated.release(ready.number) {
                for message in messages {
                    self.outbox.push(message);
                }
            }
        }
        let app = &*self.app;
        let durable_index = || app.durable_index(partition);
        #[cfg(feature = "sim-bugs")]
        let durable_index = || {
            // The bug: the compaction never waits for the application.
            (self.config.bug != Some(NodeBug::CompactPastDurableIndex))
                .then(durable_index)
                .flatten()
        };
        let scheduled = self.writes.schedule(
            &mut self.wal,
            partition,
            ready,
            &mut slot.view,
            durable_index,
        );
        if slot.view.compaction_waits() && !self.compactions_waiting.contains(&partition) {
            self.compactions_waiting.push(partition);
        }
        match scheduled {
            Err(error) => {
                // The slot is not used again: the failure is recorded as any WAL error.
                self.check_wal::<()>(Err(error));
                return;
            }
            Ok(true) => {
                self.stats.readies_persisted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
        }
        let slot = if partition == SYSTEM_PARTITION {
            // Before the outcomes are answered: a roster change's caller finds the roster it
            // committed published.
            self.publish_roster();
            let Some(slot) = self.partitions.get_mut(partition) else {
                return;
            };
            slot
        } else {
            slot
        };
        #[cfg(feature = "sim-bugs")]
        if self.config.bug == Some(NodeBug::AckProposalBeforeDurable) {
            // The bug: an operation is answered success once its entries are in this turn's
            // submission, before they are durable or committed.
            for entry in &ready.entries {
                let key = outcome_key(entry.kind, entry.index);
                for reply in slot
                    .waiters
                    .remove(&key)
                    .into_iter()
                    .flat_map(super::partition::Waiting::into_replies)
                {
                    let _ = reply.send(Ok(ReplicationResult {
                        status: crate::core::Status::Success,
                        ticket: entry.ticket,
                        index: entry.index,
                    }));
                }
            }
        }
        for message in ready.messages.drain(..) {
            self.outbox.push(message);
        }
        if let Some(Restore::Delivering(delivery)) = slot.restore.as_deref_mut() {
            // Restored entries go to `on_log_restored`, in restore's chunks.
            delivery.backlog.extend(ready.committed_entries.drain(..));
            delivery.through = delivery.through.max(ready.committed_through);
        } else {
            deliver_live(
                &Recipients::of(
                    &self.app,
                    &self.events,
                    &self.maps,
                    self.transfer.as_ref(),
                    &self.config,
                ),
                partition,
                slot,
                ready,
            );
        }
        // After the delivery: the application has what committed before the leader's entry.
        let reported = ready.soft_state.is_some();
        announce_leader(slot, partition, reported, &self.leaders, &*self.events);
        for outcome in ready.outcomes.drain(..) {
            if let Some(waiters) = slot
                .waiters
                .remove(&outcome_key(outcome.kind, outcome.index))
            {
                for reply in waiters.into_replies() {
                    let _ = reply.send(Ok(ReplicationResult {
                        status: outcome.status,
                        ticket: outcome.ticket,
                        index: outcome.index,
                    }));
                }
            }
        }
        let applied = slot
            .replica
            .as_ref()
            .map_or(LogIndex::ZERO, Replica::applied_index);
        for state in ready.read_states.drain(..) {
            let Some(read) = slot.reads.remove(&state.context) else {
                continue;
            };
            match state.result {
                Ok(index) if index <= applied => {
                    slot.answer_read(partition, &self.maps.map(), index, read);
                }
                Ok(index) => slot.reads_waiting_apply.push((index, read)),
                Err(status) => {
                    let refusal = match slot.replica.as_ref() {
                        Some(replica) => Refusal::of_replica(replica, status),
                        None => Refusal::Replica(status),
                    };
                    let _ = read.reply.send(Err(refusal));
                }
            }
        }
        self.start_transfers(partition, std::mem::take(&mut ready.snapshot_required));
        self.snapshot_messages(partition, std::mem::take(&mut ready.snapshot_messages));
        if partition == SYSTEM_PARTITION {
            self.note_map_written();
        }
    }
}

/// Publishes `partition`'s log progress in the leadership table if it moved since the
/// last publication (once per turn at most: the partition is gathered once per turn) and
/// someone subscribes. Whether someone does is looked at when the slot takes its channel,
/// after each publication and when `recount` (a tick turn, every active partition
/// gathered, after a new subscription anywhere in the table).
fn publish_progress(leaders: &LeaderTable, slot: &mut Slot, partition: PartitionId, recount: bool) {
    let Some(replica) = slot.replica.as_ref() else {
        return;
    };
    let progress = LogProgress {
        last_index: replica.last_index(),
        commit_index: replica.commit_index(),
        applied_index: replica.applied_index(),
    };
    if progress != slot.published {
        let quiesced = slot.is_quiesced();
        // Publishing takes the channel's lock and each of its waiter lists' locks, per
        // write per replica (3.7 % of the CPU samples at 1024 partitions), so it waits for
        // a subscriber. Even counting them is a cache miss per partition (the channel's
        // shared state: 3.6 % of the samples at 4096 active partitions, counted at every
        // tick), so the count is read when the slot takes its channel, after a
        // publication (the channel's state is at hand) and, at a tick turn, only if the
        // table counted a new subscription since the last: a new subscriber sees the
        // progress within a tick. A quiesced partition is not gathered at ticks: its
        // progress is published when it quiesces.
        let fresh = slot.state.is_none();
        let state = slot
            .state
            .get_or_insert_with(|| leaders.state_of(partition));
        if fresh || recount {
            slot.subscribed = state.receiver_count() > 0;
        }
        if slot.subscribed || quiesced {
            slot.published = progress;
            LeaderTable::publish_progress(state, progress);
            slot.subscribed = state.receiver_count() > 0;
        }
    }
}
