//! The next step of a partition towards the roster (decision 0004 §4): its leader changes
//! the partition's configuration one voter at a time, learners freely, and never takes its own
//! vote away while it can hand leadership over first.
//!
//! Order of the steps: a voter the roster no longer has (a leaving or removed member) is taken
//! out first, so that a dead node stops counting in the quorum before anyone is added; a
//! member the roster makes a voter is added as a learner, then promoted once it is within
//! `promotion_lag_entries_max` entries of the commit index; when the leader itself must go, it
//! transfers leadership to the voter that stays and is furthest ahead (or, with none left,
//! promotes a newcomer first).
//!
//! Each configuration a leader proposes carries the roster version it follows in its context;
//! a leader whose roster is older than the partition's (its partition 0 lags) does nothing, so
//! two leaders with different rosters never undo each other's steps.

use bytes::Bytes;

use super::Roster;
use crate::core::{Configuration, LogIndex, NodeId, PartitionId};
use crate::shard::SYSTEM_PARTITION;

/// What a partition's leader does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The configuration matches the roster.
    Done,
    /// Nothing now: a newcomer is catching up, or this node's roster is older than the
    /// partition's configuration.
    Wait,
    /// Propose this configuration.
    Propose(Configuration),
    /// Hand leadership to this voter first: this leader leaves the voters.
    Transfer(NodeId),
}

/// The roster version `configuration` was reconciled to (0 when it carries none: the first
/// configuration).
pub(crate) fn reconciled_version(configuration: &Configuration) -> u64 {
    <[u8; 8]>::try_from(configuration.context().as_ref()).map_or(0, u64::from_le_bytes)
}

/// The roster version `partition`'s `configuration` follows: partition 0's configuration is
/// the roster, another partition's carries the version it was reconciled to. Replicas number
/// their committed configurations with it (`Replica::set_configuration_version`).
pub(crate) fn roster_version_of(partition: PartitionId, configuration: &Configuration) -> u64 {
    if partition == SYSTEM_PARTITION {
        Roster::version_of(configuration)
    } else {
        reconciled_version(configuration)
    }
}

/// What a partition converges to: the voters and learners of the roster at `version`
/// (`Roster::partition_target`), in a configuration made under a roster at least as new as
/// the last change that altered them (`Roster::target_version`).
pub(crate) struct Target {
    pub(crate) version: u64,
    /// `Roster::target_version`: a configuration reconciled to an older roster is not the
    /// target, whatever its members.
    pub(crate) since: u64,
    pub(crate) voters: Vec<NodeId>,
    pub(crate) learners: Vec<NodeId>,
}

impl Target {
    /// What a partition converges to under `roster`.
    pub(crate) fn of(roster: &Roster) -> Self {
        let (voters, learners) = roster.partition_target();
        Self {
            version: roster.version(),
            since: roster.target_version(),
            voters,
            learners,
        }
    }

    /// Whether `configuration` (committed, or in force) is the target: its voters and
    /// learners, made under a roster at or after the last change of them. Members that match
    /// under an older version are restated under the roster's, whether they match by chance
    /// (a replica that missed a demotion and the promotion that undid it, while the
    /// partition's majority had yet to take the promotion: joining sweep seed 11483) or
    /// because the roster admitted a data directory whose node was a learner already (the
    /// admitted node's replica needs a committed configuration of the admission's version to
    /// lift its withheld vote: decision 0004, "A replaced disk's vote").
    pub(crate) fn is_met_by(&self, configuration: &Configuration) -> bool {
        configuration.voters() == self.voters.as_slice()
            && configuration.learners() == self.learners.as_slice()
            && reconciled_version(configuration) >= self.since
    }
}

/// The next step of the partition whose configuration in force is `current`, led by `me`,
/// towards `target`. `match_index` is the leader's view of a member's log (`None`: unknown).
pub(crate) fn next_step(
    current: &Configuration,
    target: &Target,
    me: NodeId,
    commit: LogIndex,
    promotion_lag_entries_max: u64,
    match_index: impl Fn(NodeId) -> Option<LogIndex>,
) -> Step {
    if reconciled_version(current) > target.version {
        return Step::Wait;
    }
    let (voters, learners) = (target.voters.as_slice(), target.learners.as_slice());
    if target.is_met_by(current) {
        return Step::Done;
    }
    let context = Bytes::copy_from_slice(&target.version.to_le_bytes());
    if current.voters() == voters && current.learners() == learners {
        // The members match; the configuration's version is older than their last change.
        return match current.clone().with_context(context) {
            Ok(restated) => Step::Propose(restated),
            Err(_) => Step::Wait,
        };
    }
    let caught_up = |node: NodeId| {
        current.is_learner(node)
            && match_index(node)
                .is_some_and(|m| m.0.saturating_add(promotion_lag_entries_max) >= commit.0)
    };
    let leaving: Vec<NodeId> = current
        .voters()
        .iter()
        .copied()
        .filter(|n| !voters.contains(n))
        .collect();
    let promotable = voters
        .iter()
        .copied()
        .find(|&n| !current.is_voter(n) && caught_up(n));
    let mut next_voters = current.voters().to_vec();
    if let Some(gone) = leaving.iter().copied().find(|&n| n != me) {
        next_voters.retain(|&n| n != gone);
    } else if leaving.contains(&me) {
        let successor = current
            .voters()
            .iter()
            .copied()
            .filter(|&n| n != me && voters.contains(&n))
            .max_by_key(|&n| match_index(n).unwrap_or(LogIndex(0)));
        if let Some(successor) = successor {
            return Step::Transfer(successor);
        }
        next_voters.extend(promotable);
    } else {
        next_voters.extend(promotable);
    }
    let next_learners = voters
        .iter()
        .chain(learners)
        .copied()
        .filter(|n| !next_voters.contains(n))
        .collect();
    let Ok(next) = Configuration::new(next_voters, next_learners) else {
        return Step::Wait;
    };
    if next.voters() == current.voters() && next.learners() == current.learners() {
        return Step::Wait;
    }
    match next.with_context(context) {
        Ok(next) => Step::Propose(next),
        Err(_) => Step::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::membership::{Roster, RosterChange};

    /// `next_step` towards `roster`.
    fn step_to(
        current: &Configuration,
        roster: &Roster,
        me: NodeId,
        commit: LogIndex,
        lag: u64,
        match_index: impl Fn(NodeId) -> Option<LogIndex>,
    ) -> Step {
        next_step(current, &Target::of(roster), me, commit, lag, match_index)
    }

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    fn configuration(voters: &[u64], learners: &[u64]) -> Configuration {
        Configuration::new(ids(voters), ids(learners)).expect("valid")
    }

    fn roster(voters: &[u64], changes: &[RosterChange]) -> Roster {
        let mut roster = Roster::of(&configuration(voters, &[])).expect("genesis");
        for change in changes {
            roster = roster.change(change, None).expect("ok").expect("changed");
        }
        roster
    }

    fn add(node: u64) -> RosterChange {
        RosterChange::Add {
            node: NodeId(node),
            endpoint: format!("n{node}:1"),
            incarnation: 1,
        }
    }

    /// A partition whose members already match the roster when it admits a data directory
    /// restates them under the admission's version (what lifts the admitted node's withheld
    /// vote), then is done.
    #[test]
    fn matching_members_are_restated_under_the_latest_admission() {
        let roster = roster(&[1, 2], &[add(3)]);
        let current = configuration(&[1, 2], &[3]);
        let Step::Propose(restated) =
            step_to(&current, &roster, NodeId(1), LogIndex(10), 0, |_| None)
        else {
            panic!("the members are restated");
        };
        assert_eq!(restated.voters(), current.voters());
        assert_eq!(restated.learners(), current.learners());
        assert_eq!(reconciled_version(&restated), roster.version());
        assert!(Target::of(&roster).is_met_by(&restated));
        assert!(!Target::of(&roster).is_met_by(&current));
        assert_eq!(
            step_to(&restated, &roster, NodeId(1), LogIndex(10), 0, |_| None),
            Step::Done
        );
        // How replicas number their committed configurations: partition 0's is the roster.
        let system = roster.configuration().expect("valid");
        assert_eq!(roster_version_of(SYSTEM_PARTITION, &system), 1);
        assert_eq!(roster_version_of(SYSTEM_PARTITION, &current), 0, "genesis");
        assert_eq!(roster_version_of(PartitionId(1), &restated), 1);
    }

    /// A replica that missed a demotion and the promotion that undid it holds the roster's
    /// members under an older version: not reconciled, restated (joining sweep seed 11483,
    /// where such a replica let the roster change while its partition's majority still had
    /// to promote the node).
    #[test]
    fn members_that_match_by_chance_under_an_older_roster_are_restated() {
        let before = roster(&[1, 3, 4], &[add(5)]);
        let stale = configuration(&[1, 3, 4], &[5])
            .with_context(Bytes::copy_from_slice(&before.version().to_le_bytes()))
            .expect("short");
        assert!(Target::of(&before).is_met_by(&stale));
        let after = roster(
            &[1, 3, 4],
            &[
                add(5),
                RosterChange::Demote { node: NodeId(1) },
                RosterChange::Promote { node: NodeId(1) },
            ],
        );
        assert_eq!(after.partition_target(), before.partition_target());
        assert!(!Target::of(&after).is_met_by(&stale));
        let Step::Propose(restated) = step_to(&stale, &after, NodeId(3), LogIndex(9), 0, |_| None)
        else {
            panic!("the members are restated");
        };
        assert_eq!(reconciled_version(&restated), after.version());
        assert!(Target::of(&after).is_met_by(&restated));
    }

    /// Follows the steps from `start` with every member caught up, leadership following the
    /// transfers; returns each configuration and the leader at the end.
    fn walk(start: Configuration, roster: &Roster, mut leader: u64) -> (Vec<Configuration>, u64) {
        let mut current = start;
        let mut seen = Vec::new();
        for _ in 0..10 {
            match step_to(&current, roster, NodeId(leader), LogIndex(100), 0, |_| {
                Some(LogIndex(100))
            }) {
                Step::Done => return (seen, leader),
                Step::Wait => panic!("stuck at {current}"),
                Step::Transfer(to) => leader = to.0,
                Step::Propose(next) => {
                    assert!(current.voter_changes(&next) <= 1, "{current} -> {next}");
                    assert_eq!(reconciled_version(&next), roster.version());
                    current = next.clone();
                    seen.push(next);
                }
            }
        }
        panic!("no end");
    }

    #[test]
    fn a_newcomer_is_a_learner_then_a_voter() {
        let roster = roster(
            &[1, 2, 3],
            &[add(4), RosterChange::Promote { node: NodeId(4) }],
        );
        let (steps, _) = walk(configuration(&[1, 2, 3], &[]), &roster, 1);
        let shown: Vec<String> = steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "voters [1,2,3] learners [4]",
                "voters [1,2,3,4] learners []"
            ]
        );
    }

    #[test]
    fn a_lagging_learner_waits_for_promotion() {
        let roster = roster(&[1], &[add(2), RosterChange::Promote { node: NodeId(2) }]);
        let current = configuration(&[1], &[2]);
        let behind = |n: NodeId| Some(LogIndex(if n == NodeId(2) { 10 } else { 100 }));
        assert_eq!(
            step_to(&current, &roster, NodeId(1), LogIndex(100), 50, behind),
            Step::Wait
        );
        assert!(matches!(
            step_to(&current, &roster, NodeId(1), LogIndex(100), 90, behind),
            Step::Propose(_)
        ));
    }

    #[test]
    fn a_leaving_leader_hands_over_first_and_a_dead_voter_goes_before_a_newcomer_comes() {
        let roster = roster(&[1, 2, 3], &[RosterChange::Leave { node: NodeId(1) }]);
        let (steps, leader) = walk(configuration(&[1, 2, 3], &[]), &roster, 1);
        assert_ne!(leader, 1);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].voters(), ids(&[2, 3]).as_slice());
        // Replace 3 by 4: 3 goes first.
        let replace = roster_with(
            &[1, 2, 3],
            &[RosterChange::Remove { node: NodeId(3) }, add(4)],
        );
        let (steps, _) = walk(configuration(&[1, 2, 3], &[]), &replace, 1);
        assert_eq!(steps[0].to_string(), "voters [1,2] learners [4]");
    }

    fn roster_with(voters: &[u64], changes: &[RosterChange]) -> Roster {
        let mut all = changes.to_vec();
        all.push(RosterChange::Promote { node: NodeId(4) });
        roster(voters, &all)
    }

    #[test]
    fn the_only_voter_leaving_promotes_its_successor_first() {
        let roster = roster(
            &[1],
            &[
                add(2),
                RosterChange::Promote { node: NodeId(2) },
                RosterChange::Remove { node: NodeId(1) },
            ],
        );
        let (steps, leader) = walk(configuration(&[1], &[2]), &roster, 1);
        assert_eq!(leader, 2);
        assert_eq!(steps.last().map(|c| c.voters().to_vec()), Some(ids(&[2])));
    }

    #[test]
    fn a_leader_with_an_older_roster_leaves_the_partition_alone() {
        let old = roster(&[1, 2, 3], &[]);
        let newer = configuration(&[1, 2], &[])
            .with_context(Bytes::copy_from_slice(&5u64.to_le_bytes()))
            .expect("short");
        assert_eq!(
            step_to(&newer, &old, NodeId(1), LogIndex(1), 0, |_| None),
            Step::Wait
        );
    }
}
