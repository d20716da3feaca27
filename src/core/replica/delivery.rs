//! Delivery to the application (strict log order, two-phase holds) and compaction.

use super::*;

impl Replica {
    /// Reports that the application applied every delivered entry up to `index`.
    pub fn applied(&mut self, index: LogIndex) {
        let index = index.min(self.delivered);
        if index > self.applied {
            self.applied = index;
        }
        self.compact_applied_checkpoints();
    }

    pub(super) fn delivery_limit(&self) -> LogIndex {
        self.log.committed.min(self.log.persisted)
    }

    pub(super) fn next_delivery_possible(&self) -> bool {
        let limit = self.delivery_limit();
        if self.delivered >= limit {
            return false;
        }
        match self.log.entry(self.delivered.next()) {
            Some(e) if e.is_two_phase() => self.holds.verdict(e.ticket, limit) != Verdict::Block,
            Some(_) => true,
            None => false,
        }
    }

    /// Moves the delivery cursor as far as the durable commit index and the holds allow,
    /// appending the entries to deliver to `out` (empty); returns where the cursor is.
    pub(super) fn collect_deliveries_into(&mut self, out: &mut Vec<Entry>) -> LogIndex {
        let limit = self.delivery_limit();
        let ready = usize::try_from(limit.0.saturating_sub(self.delivered.0)).unwrap_or(usize::MAX);
        out.reserve(ready.min(self.config.deliver_entries_max));
        let mut cursor = self.delivered;
        while cursor < limit && out.len() < self.config.deliver_entries_max {
            let index = cursor.next();
            let Some(e) = self.log.entry(index) else {
                break;
            };
            match e.kind {
                EntryKind::NoOp | EntryKind::Configuration => {}
                EntryKind::Commit | EntryKind::Rollback => {
                    let ticket = e.ticket;
                    let remember = self.config.resolved_tickets_max;
                    self.holds.on_marker_delivered(ticket, index, remember);
                }
                EntryKind::Checkpoint => {
                    self.checkpoints.push_back(index);
                    out.push(e.clone());
                }
                EntryKind::Normal if e.auto_commit => out.push(e.clone()),
                EntryKind::Normal => match self.holds.verdict(e.ticket, limit) {
                    Verdict::Deliver => out.push(e.clone()),
                    Verdict::Skip => {}
                    Verdict::Block => break,
                },
            }
            cursor = index;
        }
        self.delivered = cursor;
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::DeliverOutOfOrder) {
            out.reverse();
        }
        cursor
    }

    pub(super) fn compact_applied_checkpoints(&mut self) {
        let mut floor = None;
        while let Some(&cp) = self.checkpoints.front() {
            if cp > self.applied {
                break;
            }
            floor = Some(cp);
            self.checkpoints.pop_front();
        }
        if let Some(floor) = floor
            && floor > self.checkpoint_floor
            && let (Some(term), Some(configuration)) =
                (self.log.term(floor), self.configurations.at(floor))
        {
            // A delivered checkpoint is above the in-memory floor, which only moves up to the
            // checkpoint floor: its term and configuration are known.
            self.checkpoint_floor = floor;
            self.compaction_floor = Some(Box::new(Floor {
                index: floor,
                term,
                configuration: configuration.clone(),
            }));
        }
        self.compact_memory();
    }

    /// Drops in-memory entries up to the applied checkpoint. A leader keeps up to
    /// `compaction_retain_entries_max` entries below it for followers that still need them,
    /// so a follower lagging a little behind a checkpoint catches up without a snapshot.
    pub(super) fn compact_memory(&mut self) {
        let mut target = self.checkpoint_floor;
        if target <= self.log.floor() {
            return;
        }
        if self.role == Role::Leader {
            let retain_from = LogIndex(
                target
                    .0
                    .saturating_sub(self.config.compaction_retain_entries_max),
            );
            let lowest_match = self
                .progress
                .iter()
                .map(|(_, p)| p.match_index)
                .min()
                .unwrap_or(target);
            target = target.min(lowest_match.max(retain_from));
        }
        if target > self.log.floor() {
            self.log.compact_to(target);
            self.configurations.compact_to(self.log.floor());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::restore::tests::{config, durable, normal};
    use super::*;

    #[test]
    fn delivery_is_bounded_per_ready() {
        let config = ReplicaConfig {
            deliver_entries_max: 2,
            ..config()
        };
        let entries = (1..=5).map(|i| normal(i, 1)).collect();
        let mut replica = Replica::new(config, durable(entries, 5, 0)).expect("valid");
        let mut batches = Vec::new();
        while replica.has_ready() {
            let ready = replica.ready();
            batches.push(ready.committed_entries.len());
            replica.applied(ready.committed_through);
        }
        assert_eq!(batches, vec![2, 2, 1]);
    }
}
