//! Ongaro's single-server hazard (2015: a change made before the no-op of its leader's term
//! commits) needs more than one cut; the simulator provokes it on partition 0, whose changes
//! the operator makes, in the seeds where it makes them, whatever the build:
//!
//! 1. *Stranded*: the first time a leader sends a configuration entry of its own term (C1), with
//!    `stranded_configuration_per_million`, the network is cut so that the leader keeps only
//!    the nodes the change brings in, provided the others hold a majority of the configuration
//!    before it: the change stays on a minority, and the others can elect a leader without it.
//! 2. *At the first append*: the watch follows partition 0's newest configuration entry on the
//!    wire (its sender and the nodes it was sent to over a link not cut, less those sent
//!    another entry at its index since: its holders). When a leader that does not hold it sends
//!    the first append of a later term (its no-op, sent to every peer in the turn it won), the
//!    network is cut before that frame is routed, if the roster the leader knows admits a
//!    change C1' (the operator's eager change: a voter demoted, a learner promoted) and a side
//!    for the leader such that the side holds no holder and a majority of C1', and the other
//!    side a majority of C1 with a holder voting in it. The operator's eager change to that
//!    leader is then C1'. A leader that waits for its no-op to commit before it takes a change
//!    is stuck (the no-op needs a majority of the configuration before C1', which the side
//!    lacks); one that does not commits C1' and its no-op on its side, while the other side
//!    elects a holder under C1 (none of its voters holds an entry of the new leader's term) and
//!    commits C1 at the same index.

use std::collections::BTreeSet;

use crate::core::{Configuration, Entry, EntryKind, LogIndex, NodeId, Term};
use crate::shard::membership::{MemberRole, Roster, RosterChange};

use super::NodeSimulation;
use super::configuration_cut::{newcomers, node_index};
use super::membership::PlannedChange;
use crate::sim::rng::SimRng;

/// Most nodes the cut at a first append searches the sides of (every subset: the simulated
/// clusters have up to five nodes).
const SIDE_SEARCH_NODES_MAX: usize = 10;

/// Mixed into the run's seed for the dice of the provocation of Ongaro's hazard (its own, so
/// that no other draw of a seed moves).
const PROVOCATION_SEED: u64 = 0x4E0D_E51A_0000_0C17;

/// What the provocation follows on the wire, and its dice.
#[derive(Debug, Default)]
pub(super) struct HazardWatch {
    /// Partition 0's newest configuration entry and its holders.
    spread: Option<Spread>,
    /// The newest term of partition 0 whose first append was seen.
    first_append_term: Term,
    /// The provocation's dice, seeded from the run's seed at their first use.
    dice: Option<SimRng>,
}

/// Partition 0's newest configuration entry seen on the wire, and the nodes that hold it.
#[derive(Debug)]
struct Spread {
    index: LogIndex,
    term: Term,
    configuration: Configuration,
    /// By index: its sender and the nodes it was sent to over a link not cut, less those sent
    /// another entry at its index since.
    holders: BTreeSet<usize>,
}

/// A cut at a new leader's first append: the leader's side, and the eager change to send it
/// (the node moved, the change).
type FirstAppendPlan = (Vec<usize>, NodeId, RosterChange);

impl HazardWatch {
    /// Follows partition 0's newest configuration entry through `entries`, sent by `from` to
    /// `to` (`None`: over a cut link, or to no simulated node).
    pub(super) fn follow_spread(&mut self, from: usize, to: Option<usize>, entries: &[Entry]) {
        for entry in entries {
            let reached = |holders: &mut BTreeSet<usize>| {
                holders.insert(from);
                holders.extend(to);
            };
            match self.spread.as_mut() {
                Some(spread) if (spread.index, spread.term) == (entry.index, entry.term) => {
                    reached(&mut spread.holders);
                    continue;
                }
                Some(spread) if spread.index > entry.index => continue,
                Some(spread)
                    if spread.index == entry.index && entry.kind != EntryKind::Configuration =>
                {
                    // The receiver's copy is overwritten (so is the sender's).
                    spread.holders.remove(&from);
                    if let Some(to) = to {
                        spread.holders.remove(&to);
                    }
                    continue;
                }
                _ => {}
            }
            if entry.kind != EntryKind::Configuration {
                continue;
            }
            let Ok(configuration) = Configuration::decode(&entry.payload) else {
                continue;
            };
            let mut holders = BTreeSet::new();
            reached(&mut holders);
            self.spread = Some(Spread {
                index: entry.index,
                term: entry.term,
                configuration,
                holders,
            });
        }
    }

    /// The provocation's dice.
    pub(super) fn dice(&mut self, seed: u64) -> &mut SimRng {
        self.dice
            .get_or_insert_with(|| SimRng::new(seed ^ PROVOCATION_SEED))
    }
}

impl NodeSimulation {
    /// Whether the run provokes Ongaro's hazard (the module docs): during the faults, in a
    /// seed whose operator changes the roster.
    pub(super) fn provoking(&self) -> bool {
        self.healed_at.is_none()
            && self.config.nodes > 1
            && self.config.membership_interval_ms_max > 0
    }

    /// The first step of the provocation: `leader`, sending the change from `previous` to
    /// `next` for the first time, keeps only the nodes the change brings in, if the others
    /// hold a majority of `previous` (they can elect a leader without the change).
    pub(super) fn strand(&mut self, leader: usize, previous: &Configuration, next: &Configuration) {
        let n = self.nodes.len();
        let side = newcomers(leader, previous, next, n);
        let others_voting = previous
            .voters()
            .iter()
            .filter(|id| node_index(**id, n).is_some_and(|i| !side.contains(&i)))
            .count();
        if others_voting < previous.quorum() {
            return;
        }
        self.cut(
            leader,
            &side,
            "stranded configuration",
            &format!("{previous} -> {next}"),
        );
    }

    /// The second step of the provocation: the first append of `leader`'s `term` on partition
    /// 0. If partition 0's newest configuration entry is of an earlier term and `leader` does
    /// not hold it, the network is cut with a side [`first_append_plans`] draws and the
    /// operator's eager change to `leader` in `term` is the one drawn with it.
    pub(super) fn cut_at_first_append(&mut self, leader: usize, term: Term) {
        if term <= self.hazard.first_append_term {
            return;
        }
        self.hazard.first_append_term = term;
        if !self.provoking() {
            return;
        }
        let Some(spread) = self
            .hazard
            .spread
            .as_ref()
            .filter(|spread| spread.term < term && !spread.holders.contains(&leader))
        else {
            return;
        };
        let Some(roster) = self.nodes[leader]
            .running
            .as_ref()
            .and_then(|running| running.host.membership().roster())
        else {
            return;
        };
        let mut plans = first_append_plans(
            leader,
            &roster,
            &spread.configuration,
            &spread.holders,
            self.nodes.len(),
        );
        if plans.is_empty() {
            return;
        }
        let detail = format!(
            "holders {:?} of {} at {} (term {})",
            spread.holders.iter().map(|i| i + 1).collect::<Vec<_>>(),
            spread.configuration,
            spread.index,
            spread.term
        );
        let pick = self.hazard.dice(self.seed).index(plans.len());
        let (side, moved, change) = plans.swap_remove(pick);
        self.cut(
            leader,
            &side,
            "first append cut",
            &format!("{detail}, eager {change:?}"),
        );
        self.membership.plan(PlannedChange {
            node: leader,
            term,
            moved,
            change,
        });
    }
}

/// The cuts at the first append of `leader` (by index, of `nodes`), which knows `roster` and
/// does not hold `stranded`, held by `holders`: each a side for the leader and a change of
/// `roster` (a voter but the leader demoted, a learner promoted) such that the side holds
/// no holder and a majority of the voters after the change, and the other side a majority of
/// `stranded`'s voters, a holder voting in `stranded` among them. Two configurations one voter
/// change from one base can have majorities that do not meet (the base has an even number
/// of voters): the new leader commits the change on its side, a holder wins the other's.
fn first_append_plans(
    leader: usize,
    roster: &Roster,
    stranded: &Configuration,
    holders: &BTreeSet<usize>,
    nodes: usize,
) -> Vec<FirstAppendPlan> {
    if nodes > SIDE_SEARCH_NODES_MAX
        || !holders
            .iter()
            .any(|&h| stranded.is_voter(NodeId(h as u64 + 1)))
    {
        return Vec::new();
    }
    let voters = roster.voters().count();
    let changes: Vec<(NodeId, Configuration, RosterChange)> = roster
        .members()
        .iter()
        .filter(|member| node_index(member.node, nodes).is_some_and(|i| i != leader))
        .filter_map(|member| {
            let change = match member.role {
                MemberRole::Voter if voters > 1 => RosterChange::Demote { node: member.node },
                MemberRole::Learner => RosterChange::Promote { node: member.node },
                _ => return None,
            };
            let next = roster.configuration_after(&change, None).ok()??;
            Some((member.node, next, change))
        })
        .collect();
    let counted = |configuration: &Configuration, side: u32| {
        configuration
            .voters()
            .iter()
            .filter(|id| node_index(**id, nodes).is_some_and(|i| side & (1 << i) != 0))
            .count()
    };
    let all = (1u32 << nodes) - 1;
    let mut plans = Vec::new();
    for side in 0..=all {
        let held = holders.iter().any(|&h| side & (1 << h) != 0);
        if side & (1 << leader) == 0 || held {
            continue;
        }
        if counted(stranded, all & !side) < stranded.quorum() {
            continue;
        }
        for (moved, next, change) in &changes {
            if counted(next, side) >= next.quorum() {
                let members = (0..nodes).filter(|&i| side & (1 << i) != 0).collect();
                plans.push((members, *moved, change.clone()));
            }
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::sim::node::configuration_cut::tests::{configuration, with_learners};

    /// The plans as (side, change) with node ids, sorted.
    fn plans(
        leader: u64,
        roster: &Configuration,
        stranded: &Configuration,
        holders: &[u64],
        nodes: usize,
    ) -> Vec<(Vec<u64>, RosterChange)> {
        let roster = Roster::of(roster).expect("a genesis roster");
        let holders = holders.iter().map(|&h| h as usize - 1).collect();
        let mut plans: Vec<(Vec<u64>, RosterChange)> =
            first_append_plans(leader as usize - 1, &roster, stranded, &holders, nodes)
                .into_iter()
                .map(|(side, moved, change)| {
                    let (RosterChange::Demote { node } | RosterChange::Promote { node }) = change
                    else {
                        panic!("only demotions and promotions: {change:?}");
                    };
                    assert_eq!(node, moved);
                    (side.into_iter().map(|i| i as u64 + 1).collect(), change)
                })
                .collect();
        plans.sort_by_key(|(side, change)| (side.clone(), format!("{change:?}")));
        plans
    }

    #[test]
    fn the_first_append_is_cut_off_the_holders_with_a_change_whose_majority_avoids_theirs() {
        let demote = |node| RosterChange::Demote { node: NodeId(node) };
        let promote = |node| RosterChange::Promote { node: NodeId(node) };
        // Ongaro's example: n1 promoted n5 and only n5 got it; n2 leads without it. The
        // others keep n1, n5 and a third voter of five; n2 keeps a majority of the four
        // voters less the one demoted.
        let base = with_learners(&[1, 2, 3, 4], &[5]);
        let promoted = configuration(&[1, 2, 3, 4, 5]);
        assert_eq!(
            plans(2, &base, &promoted, &[1, 5], 5),
            [
                (vec![2, 3], demote(1)),
                (vec![2, 3], demote(4)),
                (vec![2, 4], demote(1)),
                (vec![2, 4], demote(3)),
            ]
        );
        // n1 demoted n4 and kept it: n1 and one of n2, n3 on the other side; n4 leads and
        // demotes a voter (two of three) or promotes n5 (three of five).
        let demoted = with_learners(&[1, 2, 3], &[4, 5]);
        assert_eq!(
            plans(4, &base, &demoted, &[1], 5),
            [
                (vec![2, 4], demote(1)),
                (vec![2, 4], demote(3)),
                (vec![2, 4, 5], demote(1)),
                (vec![2, 4, 5], demote(3)),
                (vec![2, 4, 5], promote(5)),
                (vec![3, 4], demote(1)),
                (vec![3, 4], demote(2)),
                (vec![3, 4, 5], demote(1)),
                (vec![3, 4, 5], demote(2)),
                (vec![3, 4, 5], promote(5)),
            ]
        );
        // Bases with an odd number of voters: the majorities of any two changes meet.
        let three = with_learners(&[1, 2, 3], &[4]);
        assert!(plans(2, &three, &configuration(&[1, 2, 3, 4]), &[1, 4], 5).is_empty());
        assert!(plans(2, &three, &with_learners(&[1, 2], &[3, 4]), &[1], 5).is_empty());
        let five = configuration(&[1, 2, 3, 4, 5]);
        assert!(plans(2, &five, &with_learners(&[1, 2, 3, 4], &[5]), &[1], 5).is_empty());
        // No holder votes in the stranded configuration: none of them can win under it.
        assert!(plans(2, &base, &with_learners(&[1, 2, 3], &[4, 5]), &[4], 5).is_empty());
    }

    #[test]
    fn the_holders_are_the_nodes_the_newest_entry_reached_and_not_overwritten() {
        let entry = |index, term, kind, payload: Bytes| Entry {
            index: LogIndex(index),
            term: Term(term),
            kind,
            ticket: crate::core::Ticket(0),
            auto_commit: true,
            payload,
        };
        let change = |index, term, voters: &[u64]| {
            entry(
                index,
                term,
                EntryKind::Configuration,
                configuration(voters).encode(),
            )
        };
        let no_op = |index, term| entry(index, term, EntryKind::NoOp, Bytes::new());
        let mut watch = HazardWatch::default();
        let holders = |watch: &HazardWatch| -> Vec<usize> {
            watch
                .spread
                .as_ref()
                .map_or(Vec::new(), |s| s.holders.iter().copied().collect())
        };
        watch.follow_spread(0, Some(4), &[no_op(4, 1), change(5, 1, &[1, 2])]);
        assert_eq!(holders(&watch), [0, 4]);
        // Over a cut link: the sender only.
        watch.follow_spread(0, None, &[change(5, 1, &[1, 2])]);
        watch.follow_spread(4, Some(3), &[change(5, 1, &[1, 2])]);
        assert_eq!(holders(&watch), [0, 3, 4]);
        // An older entry changes nothing; another entry at its index overwrites it there.
        watch.follow_spread(1, Some(2), &[change(3, 1, &[1])]);
        watch.follow_spread(1, Some(3), &[no_op(5, 2)]);
        assert_eq!(holders(&watch), [0, 4]);
        // A newer configuration entry is followed instead.
        watch.follow_spread(1, Some(2), &[no_op(5, 2), change(6, 2, &[2])]);
        assert_eq!(holders(&watch), [1, 2]);
        assert_eq!(watch.spread.as_ref().map(|s| s.index), Some(LogIndex(6)));
    }
}
