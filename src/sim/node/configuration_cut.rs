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
//! A partition-0 leader's first change of its term may also be stranded, and a later leader's
//! first append cut, to provoke Ongaro's single-server hazard: `hazard_provocation.rs`.

use std::collections::BTreeMap;

use crate::core::{
    Configuration, EntryKind, LogIndex, Message, MessageBody, NodeId, PartitionId, Term,
};
use crate::shard::SYSTEM_PARTITION;

use super::NodeSimulation;
use crate::sim::rng::SimRng;

/// Configurations kept per partition (the newest): enough to find the one before an entry a
/// new leader sends on.
const CONFIGURATIONS_KEPT_MAX: usize = 16;

/// The configuration entries seen on the wire, and which were drawn for a cut.
#[derive(Debug, Default)]
pub(super) struct ConfigurationWatch {
    /// Per partition: (index, term, configuration) of the newest entries seen, by index; an
    /// entry of another term at a known index replaces it and the ones after (the log was
    /// overwritten there).
    seen: BTreeMap<PartitionId, Vec<(LogIndex, Term, Configuration)>>,
    /// Per partition: the newest (sender's term, index) a cut was drawn for.
    drawn: BTreeMap<PartitionId, (Term, LogIndex)>,
}

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
            if self.hazard.dice(self.seed).chance(chance) {
                let previous = previous.unwrap_or_else(|| self.first_configuration());
                self.strand(node, &previous, &next);
            }
        }
        if system {
            // After the cuts: the frame is routed through them.
            let to = (message.to.0 as usize)
                .checked_sub(1)
                .filter(|&to| to < self.nodes.len() && !self.network.is_cut(node, to));
            self.hazard.follow_spread(node, to, entries);
        }
    }

    /// Cuts the network between `side`, `leader`'s, and the others (`what` and `detail` for a
    /// replay's trace).
    pub(super) fn cut(&mut self, leader: usize, side: &[usize], what: &str, detail: &str) {
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
    pub(super) fn first_configuration(&self) -> Configuration {
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
pub(super) fn newcomers(
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
pub(super) fn node_index(id: NodeId, nodes: usize) -> Option<usize> {
    (id.0 as usize).checked_sub(1).filter(|&i| i < nodes)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::sim::node) fn configuration(voters: &[u64]) -> Configuration {
        with_learners(voters, &[])
    }

    pub(in crate::sim::node) fn with_learners(voters: &[u64], learners: &[u64]) -> Configuration {
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
