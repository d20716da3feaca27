//! Liveness after healing: once every fault has stopped (links healed, every node restarted)
//! and the cluster had time to settle, every partition has exactly one leader, all replicas of
//! the members of its latest committed configuration hold the same log, have committed all of
//! it, and delivered everything deliverable; and no two-phase entry is left unresolved. A node
//! outside that configuration is owed nothing, but may not lead.

use super::exactly_once_in_order_delivery::{Markers, Resolution};
use crate::sim::observation::{ClusterView, ObservedKind};

/// Checks convergence of every partition of `view`.
///
/// # Errors
/// The first partition that has not converged, and how.
pub fn check_converged(view: &ClusterView) -> Result<(), String> {
    let mut markers = Markers::default();
    markers.update(view);
    for partition in 0..view.partitions() {
        let all: Vec<_> = (0..view.nodes())
            .map(|node| view.replica(node, partition))
            .collect();
        if let Some(node) = all.iter().position(|replica| !replica.up) {
            return Err(format!("partition {partition}: node {node} is down"));
        }
        let members = view.committed_members(partition);
        let leaders: Vec<usize> = (0..all.len()).filter(|node| all[*node].leader).collect();
        let max_term = all.iter().map(|replica| replica.term).max().unwrap_or(0);
        if leaders.len() != 1
            || all[leaders[0]].term != max_term
            || members & (1 << leaders[0]) == 0
        {
            return Err(format!(
                "partition {partition}: leaders {leaders:?}, terms {:?}, members {members:#b}",
                all.iter().map(|r| r.term).collect::<Vec<_>>()
            ));
        }
        let end = all[leaders[0]].log.last_index();
        let replicas = all
            .iter()
            .enumerate()
            .filter(|(node, _)| members & (1 << node) != 0);
        for (node, replica) in replicas {
            if replica.log.last_index() != end || replica.commit != end {
                return Err(format!(
                    "partition {partition}: node {node} has log end {} and commit {}, the \
                     leader's log ends at {end}",
                    replica.log.last_index(),
                    replica.commit
                ));
            }
            for entry in replica.log.entries() {
                let agreed = view
                    .committed(partition, entry.index)
                    .is_some_and(|committed| committed.entry.identity() == entry.identity());
                if !agreed {
                    return Err(format!(
                        "partition {partition}: node {node} holds {entry:?}, the cluster \
                         committed {:?}",
                        view.committed(partition, entry.index)
                    ));
                }
            }
            for index in replica.delivered + 1..=replica.commit {
                let Some(committed) = view.committed(partition, index) else {
                    continue;
                };
                let ObservedKind::Data {
                    ticket,
                    auto_commit,
                } = committed.entry.kind
                else {
                    continue;
                };
                let resolution = markers.resolution(partition, ticket, index, replica.commit);
                match (auto_commit, resolution) {
                    (false, Some((_, Resolution::Rollback))) => {}
                    (false, None) => {
                        return Err(format!(
                            "partition {partition}: held entry {index} (ticket {ticket}) was \
                             never committed or rolled back"
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "partition {partition}: node {node} never delivered entry {index} \
                             (delivered up to {})",
                            replica.delivered
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Checkers;
    use super::super::history::*;

    fn converge(history: Vec<crate::sim::observation::Observation>) -> Result<(), String> {
        let mut checkers = Checkers::all(2, 1, 0b11);
        for observation in history {
            checkers.observe(observation).map_err(|v| v.to_string())?;
        }
        checkers.check_converged().map_err(|v| v.to_string())
    }

    fn settled() -> Vec<crate::sim::observation::Observation> {
        let entry = data(1, 1, 10);
        vec![
            leader(0, 1),
            follower(1, 1),
            append(0, &[entry]),
            append(1, &[entry]),
            commit(0, 1),
            commit(1, 1),
            deliver(0, entry),
            deliver(1, entry),
        ]
    }

    #[test]
    fn a_settled_cluster_converges() {
        converge(settled()).expect("converged");
    }

    #[test]
    fn no_leader_lagging_replica_and_undelivered_entries_are_flagged() {
        let mut history = settled();
        history.push(follower(0, 2));
        assert!(
            converge(history)
                .expect_err("no leader")
                .contains("leaders []")
        );

        let mut history = settled();
        history.pop();
        assert!(
            converge(history)
                .expect_err("undelivered")
                .contains("never delivered")
        );

        let mut history = settled();
        history.push(append(0, &[data(2, 1, 11)]));
        assert!(
            converge(history)
                .expect_err("lagging")
                .contains("the leader's log ends at 2")
        );

        let mut history = settled();
        history.push(append(0, &[held(2, 1, 5)]));
        history.push(append(1, &[held(2, 1, 5)]));
        history.push(commit(0, 2));
        history.push(commit(1, 2));
        assert!(
            converge(history)
                .expect_err("held")
                .contains("never committed or rolled back")
        );
    }
}
