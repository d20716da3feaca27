//! Output: assembling the numbered [`Ready`] batches and taking their durability
//! acknowledgements (`persisted`), which let the leader count its own log and the follower
//! release its gated messages.

use super::*;
use crate::core::ready::move_into;

impl Replica {
    /// Whether [`Replica::ready`] has anything to hand out.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.read_states.is_empty()
            || !self.outcomes.is_empty()
            || !self.snapshot_required.is_empty()
            || !self.snapshot_messages.is_empty()
            || self.compaction_floor.is_some()
            || self.installed_snapshot.is_some()
            || self.log.has_unstable()
            || self.hard_state() != self.prev_hard_state
            || self.soft_state_changed()
            || self.is_quiesced() != self.prev_quiesced
            || self.next_delivery_possible()
            || self.leader_has_sends()
    }

    /// Whether the soft state differs from the one last reported, without reading the log
    /// when it cannot: in the term and role it reported, a leader whose no-op had committed
    /// still has it committed (its commit index only grows, over entries of its term), so
    /// only a replica not yet reported established looks up the term at its commit index (at
    /// many active partitions that lookup is a cache miss on every visit).
    fn soft_state_changed(&self) -> bool {
        let prev = &self.prev_soft_state;
        prev.role != self.role
            || prev.leader != self.leader
            || prev.term != self.term
            || (!prev.noop_committed && self.is_leader_established())
    }

    /// Takes the next batch of work. Returns an empty Ready (still numbered) when there is
    /// nothing to do; check [`Replica::has_ready`] first to avoid that.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn ready(&mut self) -> Ready {
        let mut ready = Ready::default();
        self.ready_into(&mut ready);
        ready
    }

    /// [`Replica::ready`] into `ready`: its previous content is dropped, its vectors keep
    /// their capacity. A runtime that hands the same `Ready` to every replica it drives
    /// allocates no vectors per Ready (the replica keeps the capacity of its own buffers too,
    /// until it quiesces).
    pub fn ready_into(&mut self, ready: &mut Ready) {
        ready.clear();
        if self.role == Role::Leader {
            self.send_appends();
            self.assign_read_rounds();
        }
        self.ready_number += 1;
        let number = self.ready_number;
        let hard_state = self.hard_state();
        let hard_state = (hard_state != self.prev_hard_state).then(|| {
            self.prev_hard_state = hard_state;
            hard_state
        });
        let mut durability_awaited = false;
        if let Some(hard_state) = hard_state
            && hard_state.term > self.durable_term
        {
            self.pending_terms.push_back((number, hard_state.term));
            durability_awaited = true;
        }
        let soft_state = self.soft_state_changed().then(|| {
            self.prev_soft_state = self.soft_state();
            self.prev_soft_state
        });
        self.log.take_unstable_into(&mut ready.entries);
        if let Some(last) = ready.entries.last() {
            self.pending_persist
                .push_back((number, last.index, last.term));
            durability_awaited = true;
            #[cfg(feature = "sim-bugs")]
            if self.bug(InjectedBug::AckBeforePersist) {
                self.log.persisted = self.log.last_index();
                if self.role == Role::Leader {
                    self.maybe_commit();
                }
            }
        }
        ready.committed_through = self.collect_deliveries_into(&mut ready.committed_entries);
        ready.number = number;
        ready.soft_state = soft_state;
        ready.hard_state = hard_state;
        ready.durability_awaited = durability_awaited;
        // Rare: `clear` left both `None`, and a `Floor` is too large to write back for nothing.
        if let Some(floor) = self.compaction_floor.take() {
            ready.compaction_floor = Some(*floor);
        }
        if let Some(floor) = self.installed_snapshot.take() {
            ready.installed_snapshot = Some(*floor);
        }
        move_into(&mut ready.messages, &mut self.messages);
        ready
            .persisted_messages
            .refill(number, &mut self.persisted_messages);
        move_into(&mut ready.read_states, &mut self.read_states);
        move_into(&mut ready.outcomes, &mut self.outcomes);
        move_into(&mut ready.snapshot_required, &mut self.snapshot_required);
        move_into(&mut ready.snapshot_messages, &mut self.snapshot_messages);
        let quiesced = self.is_quiesced();
        ready.quiescence = (quiesced != self.prev_quiesced).then(|| {
            self.prev_quiesced = quiesced;
            if quiesced {
                self.release_idle_capacity();
            }
            quiesced
        });
    }

    /// Acknowledges that every Ready numbered up to `ready_number` is durable.
    pub fn persisted(&mut self, ready_number: u64) {
        while let Some(&(number, index, term)) = self.pending_persist.front() {
            if number > ready_number {
                break;
            }
            self.pending_persist.pop_front();
            // The entry may have been replaced by a later, not yet durable Ready: by Log
            // Matching an equal term at the same index means it is the same entry.
            if index > self.log.persisted && self.log.term(index) == Some(term) {
                self.log.persisted = index;
            }
        }
        while let Some(&(number, term)) = self.pending_terms.front() {
            if number > ready_number {
                break;
            }
            self.pending_terms.pop_front();
            self.durable_term = self.durable_term.max(term);
        }
        match self.role {
            Role::Leader => self.maybe_commit(),
            Role::Candidate => self.win_alone_once_durable(),
            _ => {}
        }
    }
}
