//! The cut around a configuration change, the adversarial timing of Raft's single-server
//! changes (the core simulator's `cluster/membership.rs` makes the same cut): the moment a
//! leader sends a configuration entry (one it just proposed, or one still uncommitted that a
//! new leader sends on in its term), the network is cut so that the leader keeps the nodes the
//! change brings in and just enough other voters of the new configuration for a bare majority
//! of it; every other node is on the other side, where a majority of the previous configuration
//! may be. Only the overlap of any two configurations' majorities (one voter change at a time,
//! each after the no-op of its leader's term has committed) keeps both sides from committing.
//!
//! Seen on the wire (the frames the nodes send, decoded once by the real codec), before the
//! frame that carries the entry is routed: the entry reaches the leader's side only. A cut is
//! drawn once per (partition, sender's term, entry index) with
//! `configuration_cut_per_million`, during the fault phase, and heals later like the
//! nemesis's cuts. A frame that carries several configuration entries is cut around the
//! newest (from the one before the first): a leader with two changes in flight keeps a bare
//! majority of the second, whose majorities need not meet the first's predecessor's. Two
//! fresh configuration entries of the sender's own term in one frame (a leader that took a
//! change while another was in flight, which the one-at-a-time rule forbids) are always cut
//! around, in the seeds that make these cuts.
//!
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

use std::collections::{BTreeMap, BTreeSet};

use crate::core::{
    Configuration, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, PartitionId, Term,
};
use crate::shard::SYSTEM_PARTITION;
use crate::shard::membership::{MemberRole, Roster, RosterChange};

use super::NodeSimulation;
use super::membership::PlannedChange;
use crate::sim::rng::SimRng;

/// Configurations kept per partition (the newest): enough to find the one before an entry a
/// new leader sends on.
const CONFIGURATIONS_KEPT_MAX: usize = 16;

/// Most nodes the cut at a first append searches the sides of (every subset: the simulated
/// clusters have up to five nodes).
const SIDE_SEARCH_NODES_MAX: usize = 10;

/// Mixed into the run's seed for the dice of the provocation of Ongaro's hazard (its own, so
/// that no other draw of a seed moves).
const PROVOCATION_SEED: u64 = 0x4E0D_E51A_0000_0C17;

/// The configuration entries seen on the wire, and which were drawn for a cut.
#[derive(Debug, Default)]
pub(super) struct ConfigurationWatch {
    /// Per partition: (index, term, configuration) of the newest entries seen, by index; an
    /// entry of another term at a known index replaces it and the ones after (the log was
    /// overwritten there).
    seen: BTreeMap<PartitionId, Vec<(LogIndex, Term, Configuration)>>,
    /// Per partition: the newest (sender's term, index) a cut was drawn for.
    drawn: BTreeMap<PartitionId, (Term, LogIndex)>,
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

impl ConfigurationWatch {
    /// Records the configuration entry at `index` of `term`; returns the configuration before
    /// it (`None`: none seen; the partition's first one then governs).
    fn record(
        &mut self,
        partition: PartitionId,
        index: LogIndex,
        term: Term,
        configuration: &Configuration,
    ) -> Option<Configuration> {
        let seen = self.seen.entry(partition).or_default();
        let at = seen.partition_point(|(i, _, _)| *i < index);
        let previous = at.checked_sub(1).map(|k| seen[k].2.clone());
        match seen.get(at) {
            Some((i, t, _)) if *i == index && *t == term => {}
            _ => {
                seen.truncate(at);
                seen.push((index, term, configuration.clone()));
                if seen.len() > CONFIGURATIONS_KEPT_MAX {
                    seen.remove(0);
                }
            }
        }
        previous
    }

    /// Whether the entry at `index`, sent in `term`, is new to the draw (each is drawn once per
    /// term of a leader that sends it).
    fn first_sight(&mut self, partition: PartitionId, term: Term, index: LogIndex) -> bool {
        let drawn = self
            .drawn
            .entry(partition)
            .or_insert((Term(0), LogIndex(0)));
        if (term, index) <= *drawn {
            return false;
        }
        *drawn = (term, index);
        true
    }

    /// Follows partition 0's newest configuration entry through `entries`, sent by `from` to
    /// `to` (`None`: over a cut link, or to no simulated node).
    fn follow_spread(&mut self, from: usize, to: Option<usize>, entries: &[Entry]) {
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
    fn dice(&mut self, seed: u64) -> &mut SimRng {
        self.dice
            .get_or_insert_with(|| SimRng::new(seed ^ PROVOCATION_SEED))
    }
}

impl NodeSimulation {
    /// Looks at a message `node` sends: a configuration entry in an append may cut the
    /// network around its sender (see the module docs).
    pub(super) fn watch_configurations(&mut self, node: usize, message: &Message) {
        let MessageBody::AppendRequest { entries, .. } = &message.body else {
            return;
        };
        let system = message.partition == SYSTEM_PARTITION;
        if system {
            self.cut_at_first_append(node, message.term);
        }
        // A fresh configuration entry of partition 0 of the sender's own term: the one before
        // it and it (the first of the frame).
        let mut own_system_change = None;
        // The configuration before the frame's first configuration entry, the newest one it
        // carries, and whether a cut was drawn.
        let mut before: Option<Option<Configuration>> = None;
        let mut newest = None;
        let mut drawn = false;
        // Fresh configuration entries of the sender's own term: more than one is a leader
        // with two changes in flight.
        let mut own_fresh = 0;
        for entry in entries {
            if entry.kind != EntryKind::Configuration {
                continue;
            }
            // The shards wrote it: it decodes (a frame that does not is the codec checker's).
            let Ok(next) = Configuration::decode(&entry.payload) else {
                continue;
            };
            let previous =
                self.configuration_watch
                    .record(message.partition, entry.index, entry.term, &next);
            let fresh =
                self.configuration_watch
                    .first_sight(message.partition, message.term, entry.index);
            own_fresh += usize::from(fresh && entry.term == message.term);
            if system && fresh && entry.term == message.term && own_system_change.is_none() {
                own_system_change = Some((previous.clone(), next.clone()));
            }
            before.get_or_insert(previous);
            drawn = drawn
                || fresh
                    && self.healed_at.is_none()
                    && self.config.nodes > 1
                    && self
                        .nemesis_rng
                        .chance(self.config.configuration_cut_per_million);
            newest = Some(next);
        }
        let two_in_flight = own_fresh > 1
            && self.healed_at.is_none()
            && self.config.configuration_cut_per_million > 0;
        if let (true, Some(next)) = (drawn || two_in_flight, newest) {
            // Around the newest configuration the frame carries: a leader that appended two
            // changes before sending keeps a bare majority of the second.
            let previous = before
                .flatten()
                .unwrap_or_else(|| self.first_configuration());
            self.cut_around(node, &previous, &next);
        } else if let Some((previous, next)) = own_system_change
            && self.provoking()
        {
            let chance = self.config.stranded_configuration_per_million;
            if self.configuration_watch.dice(self.seed).chance(chance) {
                let previous = previous.unwrap_or_else(|| self.first_configuration());
                self.strand(node, &previous, &next);
            }
        }
        if system {
            // After the cuts: the frame is routed through them.
            let to = (message.to.0 as usize)
                .checked_sub(1)
                .filter(|&to| to < self.nodes.len() && !self.network.is_cut(node, to));
            self.configuration_watch.follow_spread(node, to, entries);
        }
    }

    /// Whether the run provokes Ongaro's hazard (the module docs): during the faults, in a
    /// seed whose operator changes the roster.
    fn provoking(&self) -> bool {
        self.healed_at.is_none()
            && self.config.nodes > 1
            && self.config.membership_interval_ms_max > 0
    }

    /// The first step of the provocation: `leader`, sending the change from `previous` to
    /// `next` for the first time, keeps only the nodes the change brings in, if the others
    /// hold a majority of `previous` (they can elect a leader without the change).
    fn strand(&mut self, leader: usize, previous: &Configuration, next: &Configuration) {
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
    fn cut_at_first_append(&mut self, leader: usize, term: Term) {
        if term <= self.configuration_watch.first_append_term {
            return;
        }
        self.configuration_watch.first_append_term = term;
        if !self.provoking() {
            return;
        }
        let Some(spread) = self
            .configuration_watch
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
        let pick = self.configuration_watch.dice(self.seed).index(plans.len());
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

    /// Cuts the network between `side`, `leader`'s, and the others (`what` and `detail` for a
    /// replay's trace).
    fn cut(&mut self, leader: usize, side: &[usize], what: &str, detail: &str) {
        if self.tracing {
            let shown: Vec<usize> = side.iter().map(|i| i + 1).collect();
            eprintln!(
                "{:>8} ms    {what}: n{} keeps {shown:?} ({detail})",
                self.now,
                leader + 1
            );
        }
        self.trace
            .event(21, &[self.now, leader as u64, side.len() as u64]);
        self.network.partition(side);
        self.heal_later();
        self.report.faults.configuration_cuts += 1;
    }

    /// The configuration every partition starts with: the initial members vote.
    fn first_configuration(&self) -> Configuration {
        let voters = (1..=self.config.initial_members as u64)
            .map(NodeId)
            .collect();
        Configuration::new(voters, Vec::new()).expect("the initial members are valid")
    }

    /// Cuts `leader` off with the side [`leader_side`] draws.
    fn cut_around(&mut self, leader: usize, previous: &Configuration, next: &Configuration) {
        let n = self.nodes.len();
        let side = leader_side(leader, previous, next, n, &mut self.nemesis_rng);
        if side.len() == n {
            // Everyone on one side: no cut.
            return;
        }
        self.cut(
            leader,
            &side,
            "configuration cut",
            &format!("{previous} -> {next}"),
        );
    }
}

/// The side of a cut around the change from `previous` to `next` sent by `leader` (of `nodes`,
/// by index): the leader, the nodes the change brings in (new members, new voters) and just
/// enough other voters of `next`, drawn with `rng`, for a bare majority of it.
fn leader_side(
    leader: usize,
    previous: &Configuration,
    next: &Configuration,
    nodes: usize,
    rng: &mut SimRng,
) -> Vec<usize> {
    let index = |id: NodeId| node_index(id, nodes);
    let mut side = newcomers(leader, previous, next, nodes);
    let counted = |side: &[usize]| {
        next.voters()
            .iter()
            .filter(|&&id| index(id).is_some_and(|i| side.contains(&i)))
            .count()
    };
    let mut others: Vec<usize> = next
        .voters()
        .iter()
        .filter_map(|&id| index(id))
        .filter(|i| !side.contains(i))
        .collect();
    while counted(&side) < next.quorum() && !others.is_empty() {
        let pick = rng.index(others.len());
        side.push(others.swap_remove(pick));
    }
    side
}

/// `leader` and the nodes the change from `previous` to `next` brings in (new members, new
/// voters), by index (of `nodes`).
fn newcomers(
    leader: usize,
    previous: &Configuration,
    next: &Configuration,
    nodes: usize,
) -> Vec<usize> {
    let mut side = vec![leader];
    side.extend(
        next.members()
            .filter(|&id| !previous.is_member(id) || !previous.is_voter(id) && next.is_voter(id))
            .filter_map(|id| node_index(id, nodes))
            .filter(|&i| i != leader),
    );
    side
}

/// The index of node `id` among `nodes` simulated ones.
fn node_index(id: NodeId, nodes: usize) -> Option<usize> {
    (id.0 as usize).checked_sub(1).filter(|&i| i < nodes)
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

    fn configuration(voters: &[u64]) -> Configuration {
        with_learners(voters, &[])
    }

    fn with_learners(voters: &[u64], learners: &[u64]) -> Configuration {
        let ids = |list: &[u64]| list.iter().copied().map(NodeId).collect();
        Configuration::new(ids(voters), ids(learners)).expect("valid")
    }

    /// The side's node ids, sorted.
    fn side(leader: u64, previous: &Configuration, next: &Configuration, seed: u64) -> Vec<u64> {
        let mut rng = SimRng::new(seed);
        let mut side: Vec<u64> = leader_side(leader as usize - 1, previous, next, 5, &mut rng)
            .into_iter()
            .map(|i| i as u64 + 1)
            .collect();
        side.sort_unstable();
        side
    }

    #[test]
    fn the_leader_keeps_the_newcomers_and_a_bare_majority_of_the_new_voters() {
        for seed in 0..20 {
            // A voter demoted out of four: the leader and one other voter of three.
            let demoted = side(
                1,
                &configuration(&[1, 2, 3, 4]),
                &with_learners(&[1, 2, 3], &[4]),
                seed,
            );
            assert!(demoted == [1, 2] || demoted == [1, 3], "{demoted:?}");
            // A learner promoted: it goes with the leader, and one more voter makes three of four.
            let promoted = side(
                2,
                &with_learners(&[1, 2, 3], &[4]),
                &configuration(&[1, 2, 3, 4]),
                seed,
            );
            assert_eq!(promoted.len(), 3, "{promoted:?}");
            assert!(
                promoted.contains(&2) && promoted.contains(&4),
                "{promoted:?}"
            );
            // A leader demoting itself keeps the one voter left.
            assert_eq!(
                side(1, &configuration(&[1, 2]), &with_learners(&[2], &[1]), seed),
                [1, 2]
            );
            // A node added as a learner goes with the leader; two of three voters.
            let added = side(
                3,
                &configuration(&[1, 2, 3]),
                &with_learners(&[1, 2, 3], &[5]),
                seed,
            );
            assert_eq!(added.len(), 3, "{added:?}");
            assert!(added.contains(&3) && added.contains(&5), "{added:?}");
        }
    }

    #[test]
    fn the_previous_configuration_is_the_one_below_and_an_overwritten_index_drops_the_rest() {
        let mut watch = ConfigurationWatch::default();
        let p = PartitionId(1);
        let (a, b, c) = (
            configuration(&[1, 2]),
            configuration(&[1]),
            configuration(&[2]),
        );
        assert_eq!(watch.record(p, LogIndex(3), Term(1), &a), None);
        assert_eq!(watch.record(p, LogIndex(5), Term(1), &b), Some(a.clone()));
        // Sent again (to another follower, or by a later leader): nothing changes.
        assert_eq!(watch.record(p, LogIndex(5), Term(1), &b), Some(a.clone()));
        assert_eq!(watch.record(p, LogIndex(7), Term(2), &c), Some(b.clone()));
        // A leader of term 3 overwrote index 5: the entries from 5 on were another log's.
        assert_eq!(watch.record(p, LogIndex(5), Term(3), &c), Some(a.clone()));
        assert_eq!(watch.record(p, LogIndex(6), Term(3), &b), Some(c));
        assert_eq!(watch.seen[&p].len(), 3);
        // Other partitions are apart.
        assert_eq!(watch.record(PartitionId(2), LogIndex(6), Term(3), &a), None);
    }

    #[test]
    fn an_entry_is_drawn_once_per_term_of_a_leader_sending_it() {
        let mut watch = ConfigurationWatch::default();
        let p = PartitionId(1);
        assert!(watch.first_sight(p, Term(2), LogIndex(5)));
        assert!(!watch.first_sight(p, Term(2), LogIndex(5)));
        assert!(!watch.first_sight(p, Term(2), LogIndex(4)));
        assert!(watch.first_sight(p, Term(2), LogIndex(6)));
        // A new leader sending the entry on.
        assert!(watch.first_sight(p, Term(3), LogIndex(5)));
        assert!(watch.first_sight(PartitionId(2), Term(1), LogIndex(1)));
    }

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
        let mut watch = ConfigurationWatch::default();
        let holders = |watch: &ConfigurationWatch| -> Vec<usize> {
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

    #[test]
    fn only_the_newest_configurations_are_kept() {
        let mut watch = ConfigurationWatch::default();
        let p = PartitionId(1);
        for index in 1..=CONFIGURATIONS_KEPT_MAX as u64 + 5 {
            watch.record(p, LogIndex(index), Term(1), &configuration(&[1]));
        }
        assert_eq!(watch.seen[&p].len(), CONFIGURATIONS_KEPT_MAX);
        assert_eq!(watch.seen[&p][0].0, LogIndex(6));
    }
}
