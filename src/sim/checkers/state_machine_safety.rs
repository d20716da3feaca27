//! State machine safety (Raft §5.4.3): no two replicas commit or deliver different entries at
//! the same index, and a committed entry is never overwritten in a replica's log.

use std::collections::HashMap;

use super::Checker;
use crate::sim::observation::{ClusterView, Observation};

/// Per replica, how far its committed prefix has been compared with the cluster's.
#[derive(Debug, Default)]
pub struct StateMachineSafety {
    checked: HashMap<(usize, usize), u64>,
}

impl Checker for StateMachineSafety {
    fn name(&self) -> &'static str {
        "state_machine_safety"
    }

    fn observe(&mut self, observation: &Observation, view: &ClusterView) -> Result<(), String> {
        match observation {
            Observation::Committed {
                node,
                partition,
                commit,
            } => {
                let replica = view.replica(*node, *partition);
                let checked = self.checked.entry((*node, *partition)).or_insert(0);
                let first = (*checked).max(replica.log.floor_index()) + 1;
                for index in first..=*commit {
                    let Some(entry) = replica.log.get(index) else {
                        return Err(format!(
                            "partition {partition}: node {node} commits index {commit} but its \
                             log ends at {}",
                            replica.log.last_index()
                        ));
                    };
                    if let Some(committed) = view.committed(*partition, index)
                        && committed.entry.identity() != entry.identity()
                    {
                        return Err(format!(
                            "partition {partition} index {index}: node {node} commits {entry:?}, \
                             the cluster committed {:?}",
                            committed.entry
                        ));
                    }
                }
                *checked = *commit;
            }
            Observation::Appended {
                node,
                partition,
                entries,
            } => {
                let replica = view.replica(*node, *partition);
                for entry in entries.iter().filter(|entry| entry.index <= replica.commit) {
                    if let Some(committed) = view.committed(*partition, entry.index)
                        && committed.entry.identity() != entry.identity()
                    {
                        return Err(format!(
                            "partition {partition}: node {node} overwrote committed entry {:?} \
                             with {entry:?}",
                            committed.entry
                        ));
                    }
                }
            }
            Observation::Delivered {
                node,
                partition,
                entry,
            } => match view.committed(*partition, entry.index) {
                Some(committed) if committed.entry.identity() == entry.identity() => {}
                other => {
                    return Err(format!(
                        "partition {partition}: node {node} delivered {entry:?}, the cluster \
                         committed {other:?} at that index"
                    ));
                }
            },
            Observation::SnapshotInstalled {
                node,
                partition,
                index,
                term,
            } => {
                // A snapshot is the committed prefix up to `index`: its last entry must be the
                // one the cluster committed there.
                match view.committed(*partition, *index) {
                    Some(committed) if committed.entry.term != *term => {
                        return Err(format!(
                            "partition {partition}: node {node} installed a snapshot ending at \
                             {index} in term {term}, the cluster committed {:?} there",
                            committed.entry
                        ));
                    }
                    None if *index > view.committed_len(*partition) => {
                        return Err(format!(
                            "partition {partition}: node {node} installed a snapshot up to \
                             {index}, beyond anything committed ({})",
                            view.committed_len(*partition)
                        ));
                    }
                    _ => {}
                }
                self.checked.insert((*node, *partition), *index);
            }
            Observation::Restarted {
                node,
                partition,
                log,
                ..
            } => {
                // Re-check the recovered committed prefix from the floor up at the next commit.
                self.checked.insert((*node, *partition), log.floor_index());
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
    fn two_replicas_committing_different_entries_at_one_index_is_flagged() {
        assert_flagged_by(
            "state_machine_safety",
            2,
            vec![
                append(0, &[data(1, 1, 10)]),
                append(1, &[data(1, 2, 20)]),
                commit(0, 1),
                commit(1, 1),
            ],
        );
    }

    #[test]
    fn overwriting_a_committed_entry_is_flagged() {
        assert_flagged_by(
            "state_machine_safety",
            1,
            vec![
                append(0, &[data(1, 1, 10), data(2, 1, 11)]),
                commit(0, 2),
                append(0, &[data(2, 2, 12)]),
            ],
        );
    }

    #[test]
    fn a_snapshot_beyond_the_committed_prefix_is_flagged() {
        assert_flagged_by(
            "state_machine_safety",
            1,
            vec![
                append(0, &[data(1, 1, 10)]),
                commit(0, 1),
                crate::sim::observation::Observation::SnapshotInstalled {
                    node: 0,
                    partition: 0,
                    index: 1,
                    term: 2,
                },
            ],
        );
    }

    #[test]
    fn delivering_an_uncommitted_entry_is_flagged() {
        assert_flagged_by(
            "state_machine_safety",
            1,
            vec![append(0, &[data(1, 1, 10)]), deliver(0, data(1, 1, 10))],
        );
    }
}
