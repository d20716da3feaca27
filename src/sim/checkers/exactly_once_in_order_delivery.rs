//! Exactly-once, in-order delivery (Kommander's write model): each replica hands committed
//! entries to the application strictly in log order, each at most once, never past its commit
//! index; a two-phase (`auto_commit = false`) entry only after a Commit marker for its ticket
//! committed, holding everything behind it until then; a rolled-back entry never. Kommander's
//! Jepsen finding 1 (a later batch advancing the applied frontier past an entry still in
//! flight) is exactly what this catches.

use std::collections::HashMap;

use super::Checker;
use crate::sim::observation::{ClusterView, Observation, ObservedKind};

/// How a held entry was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// A Commit marker released it.
    Commit,
    /// A Rollback marker discarded it.
    Rollback,
}

/// Committed markers of each partition by ticket, in index order.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    by_ticket: HashMap<(usize, u64), Vec<(u64, Resolution)>>,
    frontier: Vec<u64>,
}

impl Markers {
    /// Records markers committed since the last call.
    pub(crate) fn update(&mut self, view: &ClusterView) {
        self.frontier.resize(view.partitions(), 0);
        for partition in 0..view.partitions() {
            let end = view.committed_len(partition);
            for index in self.frontier[partition] + 1..=end {
                let Some(committed) = view.committed(partition, index) else {
                    continue;
                };
                let (ticket, resolution) = match committed.entry.kind {
                    ObservedKind::CommitMarker { ticket } => (ticket, Resolution::Commit),
                    ObservedKind::RollbackMarker { ticket } => (ticket, Resolution::Rollback),
                    _ => continue,
                };
                self.by_ticket
                    .entry((partition, ticket))
                    .or_default()
                    .push((index, resolution));
            }
            self.frontier[partition] = end;
        }
    }

    /// The first marker for `ticket` after `index` and at or below `commit`.
    pub(crate) fn resolution(
        &self,
        partition: usize,
        ticket: u64,
        index: u64,
        commit: u64,
    ) -> Option<(u64, Resolution)> {
        self.by_ticket
            .get(&(partition, ticket))?
            .iter()
            .find(|(at, _)| *at > index)
            .filter(|(at, _)| *at <= commit)
            .copied()
    }
}

/// Last delivered index per replica (incarnation-aware) and the committed markers.
#[derive(Debug, Default)]
pub struct ExactlyOnceInOrderDelivery {
    delivered: HashMap<(usize, usize), u64>,
    markers: Markers,
}

impl Checker for ExactlyOnceInOrderDelivery {
    fn name(&self) -> &'static str {
        "exactly_once_in_order_delivery"
    }

    fn observe(&mut self, observation: &Observation, view: &ClusterView) -> Result<(), String> {
        match observation {
            Observation::Restarted {
                node,
                partition,
                delivered,
                log,
                ..
            } => {
                // What the application consumed must still be in the durable log: otherwise
                // it was delivered before it was durable, and the log may now diverge from it.
                if *delivered > log.last_index() {
                    return Err(format!(
                        "partition {partition}: node {node} restarted with entries up to \
                         {delivered} delivered but a durable log ending at {}",
                        log.last_index()
                    ));
                }
                self.delivered.insert((*node, *partition), *delivered);
            }
            Observation::SnapshotInstalled {
                node,
                partition,
                index,
                ..
            } => {
                // The application's state now covers everything up to `index`.
                let last = self.delivered.entry((*node, *partition)).or_insert(0);
                *last = (*last).max(*index);
            }
            Observation::Delivered {
                node,
                partition,
                entry,
            } => {
                self.markers.update(view);
                let last = self.delivered.entry((*node, *partition)).or_insert(0);
                if entry.index <= *last {
                    return Err(format!(
                        "partition {partition}: node {node} delivered index {} after index \
                         {last} (duplicate or out of order)",
                        entry.index
                    ));
                }
                let commit = view.replica(*node, *partition).commit;
                if entry.index > commit {
                    return Err(format!(
                        "partition {partition}: node {node} delivered index {} beyond its \
                         commit index {commit}",
                        entry.index
                    ));
                }
                if let ObservedKind::Data {
                    ticket,
                    auto_commit: false,
                } = entry.kind
                {
                    match self
                        .markers
                        .resolution(*partition, ticket, entry.index, commit)
                    {
                        Some((_, Resolution::Commit)) => {}
                        Some((at, Resolution::Rollback)) => {
                            return Err(format!(
                                "partition {partition}: node {node} delivered rolled-back entry \
                                 {} (rollback marker at {at})",
                                entry.index
                            ));
                        }
                        None => {
                            return Err(format!(
                                "partition {partition}: node {node} delivered held entry {} \
                                 before a Commit marker for ticket {ticket} committed",
                                entry.index
                            ));
                        }
                    }
                }
                for skipped in *last + 1..entry.index {
                    let Some(committed) = view.committed(*partition, skipped) else {
                        continue;
                    };
                    let ObservedKind::Data {
                        ticket,
                        auto_commit,
                    } = committed.entry.kind
                    else {
                        continue;
                    };
                    let resolution = if auto_commit {
                        None
                    } else {
                        self.markers.resolution(*partition, ticket, skipped, commit)
                    };
                    if !matches!(resolution, Some((_, Resolution::Rollback))) {
                        return Err(format!(
                            "partition {partition}: node {node} delivered index {} but skipped \
                             entry {skipped} ({:?}, resolution {resolution:?})",
                            entry.index, committed.entry
                        ));
                    }
                }
                *last = entry.index;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::*;

    #[test]
    fn delivering_twice_is_flagged() {
        let entry = data(1, 1, 10);
        assert_flagged_by(
            "exactly_once_in_order_delivery",
            1,
            vec![
                append(0, &[entry]),
                commit(0, 1),
                deliver(0, entry),
                deliver(0, entry),
            ],
        );
    }

    #[test]
    fn delivering_out_of_order_is_flagged() {
        let (a, b) = (data(1, 1, 10), data(2, 1, 11));
        assert_flagged_by(
            "exactly_once_in_order_delivery",
            1,
            vec![
                append(0, &[a, b]),
                commit(0, 2),
                deliver(0, b),
                deliver(0, a),
            ],
        );
    }

    #[test]
    fn delivering_a_held_entry_before_its_commit_marker_is_flagged() {
        let entry = held(1, 1, 7);
        assert_flagged_by(
            "exactly_once_in_order_delivery",
            1,
            vec![append(0, &[entry]), commit(0, 1), deliver(0, entry)],
        );
    }

    #[test]
    fn delivering_a_rolled_back_entry_is_flagged() {
        let entry = held(1, 1, 7);
        assert_flagged_by(
            "exactly_once_in_order_delivery",
            1,
            vec![
                append(0, &[entry, marker(2, 1, 7, false)]),
                commit(0, 2),
                deliver(0, entry),
            ],
        );
    }

    #[test]
    fn delivering_past_a_held_entry_is_flagged() {
        let later = data(2, 1, 11);
        assert_flagged_by(
            "exactly_once_in_order_delivery",
            1,
            vec![
                append(0, &[held(1, 1, 7), later]),
                commit(0, 2),
                deliver(0, later),
            ],
        );
    }

    #[test]
    fn a_delivered_entry_missing_from_the_durable_log_after_restart_is_flagged() {
        let entry = data(1, 1, 10);
        let mut history = vec![append(0, &[entry]), commit(0, 1), deliver(0, entry)];
        history.push(crate::sim::observation::Observation::Crashed { node: 0 });
        history.push(crate::sim::observation::Observation::Restarted {
            node: 0,
            partition: 0,
            term: 1,
            log: crate::sim::observation::ObservedLog::default(),
            commit: 0,
            delivered: 1,
        });
        assert_flagged_by("exactly_once_in_order_delivery", 1, history);
    }

    #[test]
    fn released_and_rolled_back_entries_are_handled_legally() {
        let (a, b, c) = (held(1, 1, 7), held(2, 1, 8), data(5, 1, 12));
        run(
            1,
            vec![
                append(0, &[a, b, marker(3, 1, 8, false), marker(4, 1, 7, true), c]),
                commit(0, 5),
                deliver(0, a),
                deliver(0, c),
            ],
        )
        .expect("legal");
    }
}
