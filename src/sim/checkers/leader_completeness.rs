//! Leader completeness (Raft §5.4): an entry committed in term t is present in the log of every
//! leader of a term greater than t.
//!
//! The term an entry was committed in is approximated from above by the term of the first
//! replica whose commit index covered it (the committing leader's, or a follower's that learned
//! of it later), which can only make the check weaker, never wrong. Checked when a replica
//! claims leadership (against everything committed so far) and when the cluster's commit
//! frontier grows (against every current leader).

use super::Checker;
use crate::sim::observation::{ClusterView, CommittedEntry, Observation, ReplicaView};

/// Tracks how far each partition's commit frontier has been checked against current leaders.
#[derive(Debug, Default)]
pub struct LeaderCompleteness {
    checked_frontier: Vec<u64>,
}

fn holds(replica: &ReplicaView, index: u64, committed: &CommittedEntry) -> bool {
    index <= replica.log.floor_index()
        || replica
            .log
            .get(index)
            .is_some_and(|entry| entry.identity() == committed.entry.identity())
}

impl Checker for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "leader_completeness"
    }

    fn observe(&mut self, observation: &Observation, view: &ClusterView) -> Result<(), String> {
        match observation {
            Observation::Role {
                node,
                partition,
                term,
                leader: true,
            } => {
                let replica = view.replica(*node, *partition);
                for index in 1..=view.committed_len(*partition) {
                    if let Some(committed) = view.committed(*partition, index)
                        && committed.commit_term < *term
                        && !holds(replica, index, committed)
                    {
                        return Err(format!(
                            "partition {partition}: node {node} leads term {term} without entry \
                             {index} ({:?}) committed in term {}; its log has {:?}",
                            committed.entry,
                            committed.commit_term,
                            replica.log.get(index)
                        ));
                    }
                }
            }
            Observation::Committed { partition, .. } => {
                if self.checked_frontier.len() <= *partition {
                    self.checked_frontier.resize(view.partitions(), 0);
                }
                let frontier = view.committed_len(*partition);
                for index in self.checked_frontier[*partition] + 1..=frontier {
                    let Some(committed) = view.committed(*partition, index) else {
                        continue;
                    };
                    for node in 0..view.nodes() {
                        let replica = view.replica(node, *partition);
                        if replica.up
                            && replica.leader
                            && replica.term > committed.commit_term
                            && !holds(replica, index, committed)
                        {
                            return Err(format!(
                                "partition {partition}: entry {index} ({:?}) committed in term {} \
                                 is missing from node {node}, leader of term {}",
                                committed.entry, committed.commit_term, replica.term
                            ));
                        }
                    }
                }
                self.checked_frontier[*partition] = frontier;
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
    fn a_leader_missing_a_committed_entry_is_flagged() {
        // Entry 1 is committed in term 1 on nodes 0 and 1; node 2, which never got it, then
        // claims leadership of term 2 (e.g. because a vote was granted to a stale log).
        assert_flagged_by(
            "leader_completeness",
            3,
            vec![
                leader(0, 1),
                append(0, &[data(1, 1, 10)]),
                append(1, &[data(1, 1, 10)]),
                commit(0, 1),
                follower(2, 2),
                leader(2, 2),
            ],
        );
    }

    #[test]
    fn a_stale_leader_of_an_older_term_is_not_required_to_hold_newer_commits() {
        run(
            3,
            vec![
                leader(2, 1),
                leader(0, 2),
                append(0, &[data(1, 2, 10)]),
                append(1, &[data(1, 2, 10)]),
                commit(0, 1),
            ],
        )
        .expect("legal");
    }
}
