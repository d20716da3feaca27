//! Commit monotonicity: while a replica runs, its commit index never moves backwards and never
//! points past the end of its log. (A restart may recover a lower, durable commit index; the
//! safety of what it then re-commits is [`super::StateMachineSafety`]'s business.)

use std::collections::HashMap;

use super::Checker;
use crate::sim::observation::{ClusterView, Observation};

/// The last commit index seen per replica in its current incarnation.
#[derive(Debug, Default)]
pub struct CommitMonotonicity {
    last: HashMap<(usize, usize), u64>,
}

impl Checker for CommitMonotonicity {
    fn name(&self) -> &'static str {
        "commit_monotonicity"
    }

    fn observe(&mut self, observation: &Observation, view: &ClusterView) -> Result<(), String> {
        match observation {
            Observation::Committed {
                node,
                partition,
                commit,
            } => {
                let last = self.last.entry((*node, *partition)).or_insert(0);
                if *commit < *last {
                    return Err(format!(
                        "partition {partition}: node {node} commit index went back from {last} \
                         to {commit}"
                    ));
                }
                *last = *commit;
                let log_end = view.replica(*node, *partition).log.last_index();
                if *commit > log_end {
                    return Err(format!(
                        "partition {partition}: node {node} commit index {commit} is past its \
                         log end {log_end}"
                    ));
                }
            }
            Observation::SnapshotInstalled {
                node,
                partition,
                index,
                ..
            } => {
                let last = self.last.entry((*node, *partition)).or_insert(0);
                *last = (*last).max(*index);
            }
            Observation::Restarted {
                node,
                partition,
                commit,
                ..
            } => {
                self.last.insert((*node, *partition), *commit);
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
    fn a_commit_index_moving_back_is_flagged() {
        assert_flagged_by(
            "commit_monotonicity",
            1,
            vec![
                append(0, &[data(1, 1, 10), data(2, 1, 11)]),
                commit(0, 2),
                commit(0, 1),
            ],
        );
    }

    #[test]
    fn a_commit_index_past_the_log_end_is_flagged() {
        // The follower learned commit 3 from the leader but only holds one entry: it must cap
        // its commit at the last entry it has (min(leaderCommit, last new entry)).
        let mut history = vec![append(0, &[data(1, 1, 10)])];
        history.push(commit(0, 1));
        let mut checkers = crate::sim::checkers::Checkers::all(1, 1, 1);
        for observation in history {
            checkers.observe(observation).expect("legal prefix");
        }
        // State machine safety fires first when the log has no entry; check this checker alone.
        let mut checker = super::CommitMonotonicity::default();
        use super::Checker;
        let err = checker
            .observe(&commit(0, 3), checkers.view())
            .expect_err("commit past the end");
        assert!(err.contains("past its log end"), "{err}");
    }
}
