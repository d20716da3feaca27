//! Every acknowledged write is durable on a majority of the voters when it is acknowledged,
//! and stays durable through every crash and power loss. The voters are those of the
//! configuration in force at the write's index in the durable logs that hold it (without a
//! configuration entry, the first voters: the nodes the simulator started the cluster with),
//! or, in a run that changes memberships, of a
//! configuration one voter away from it: a leader counts the latest configuration in its log,
//! which may be one uncommitted change past the write's, not yet durable on any disk nor sent
//! (one change at a time, each one voter). That is weaker than the leader's own configuration
//! (which no disk or wire may show yet) only for configurations of one or two voters. "Durable" is what the disk's model
//! would keep after a power cut now (its durable image, recovered), not what the node says.
//! A node holds the write when its durable log has the write's operation at the write's index,
//! or its floor passed the index and the entry applied there was that write (compacted after
//! a checkpoint the application made durable). A node whose disks were replaced also holds
//! what its lost disks held when they were replaced: that loss is the one failure the cluster
//! tolerates (the node must not count as a voter until it holds the log again), so a write
//! the other voters' disks lose after it is still flagged.

use std::collections::{BTreeMap, HashMap};

use crate::core::{Configuration, LogIndex, NodeId, PartitionId};

use super::super::truth::{Acknowledged, Applied, DurableLog};

/// The property's checks.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct AcknowledgedWritesDurable;

impl AcknowledgedWritesDurable {
    pub(in crate::sim::node) const NAME: &'static str = "acknowledged_writes_durable";

    /// Checks that `ack` is held by a majority of the voters (see the module docs) among
    /// `logs` (one entry per node: the partition's durable logs on that node's disk first, then
    /// on the disks it lost to replacements; empty when none holds anything of it);
    /// `first_voters` are the voters of every partition's first configuration;
    /// `changes_memberships` admits the configurations one voter away.
    ///
    /// # Errors
    /// Which nodes hold it and which do not.
    pub(in crate::sim::node) fn check(
        ack: &Acknowledged,
        logs: &[Vec<&DurableLog>],
        applied: &HashMap<(PartitionId, LogIndex), Applied>,
        first_voters: &[NodeId],
        changes_memberships: bool,
    ) -> Result<(), String> {
        let holds = |log: &DurableLog| match log.entries.get(&ack.index) {
            Some((_, op)) => *op == Some(ack.op),
            None => {
                log.floor >= ack.index
                    && applied
                        .get(&(ack.partition, ack.index))
                        .is_some_and(|a| a.op == Some(ack.op))
            }
        };
        let holding: Vec<(usize, &DurableLog)> = (0..logs.len())
            .filter_map(|n| {
                logs[n]
                    .iter()
                    .copied()
                    .find(|log| holds(log))
                    .map(|log| (n, log))
            })
            .collect();
        let holders: Vec<usize> = holding.iter().map(|(n, _)| *n).collect();
        let mut candidates: Vec<Option<&Configuration>> = holding
            .iter()
            .map(|(_, log)| log.configuration_at(ack.index))
            .collect();
        if candidates.is_empty() {
            candidates.push(None);
        }
        let every_node: Vec<NodeId> = (1..=logs.len() as u64).map(NodeId).collect();
        let neighbours: Vec<Configuration> = candidates
            .iter()
            .filter(|_| changes_memberships)
            .flat_map(|c| {
                let voters = c.map_or_else(|| first_voters.to_vec(), |c| c.voters().to_vec());
                one_voter_away(&voters, &every_node)
            })
            .collect();
        candidates.extend(neighbours.iter().map(Some));
        let majority_of = |configuration: Option<&Configuration>| {
            let voters = configuration.map_or(first_voters, Configuration::voters);
            let holding = voters
                .iter()
                .filter(|id| holders.contains(&(id.0 as usize - 1)))
                .count();
            holding * 2 > voters.len()
        };
        if candidates.iter().any(|c| majority_of(*c)) {
            return Ok(());
        }
        let holding = holders.len();
        let voters: Vec<Vec<NodeId>> = candidates
            .iter()
            .map(|c| c.map_or_else(|| first_voters.to_vec(), |c| c.voters().to_vec()))
            .collect();
        let describe: BTreeMap<usize, String> = logs
            .iter()
            .enumerate()
            .map(|(node, log)| {
                let what = match log.first() {
                    None => "nothing".to_owned(),
                    Some(log) => match log.entries.get(&ack.index) {
                        Some((term, op)) => format!("{term} {op:?}"),
                        None => format!(
                            "no entry (floor {}, last {:?})",
                            log.floor,
                            log.entries.keys().next_back()
                        ),
                    },
                };
                (node + 1, what)
            })
            .collect();
        Err(format!(
            "{:?} acknowledged at {} ms as partition {} index {} is durable on {holding} of {} disks, a majority of none of the voters it may have been counted by ({voters:?}); at that index the durable logs hold {describe:?}",
            ack.op,
            ack.at,
            ack.partition,
            ack.index,
            logs.len()
        ))
    }
}

/// Every configuration (voters only) one voter away from `voters`, among `nodes`.
fn one_voter_away(voters: &[NodeId], nodes: &[NodeId]) -> Vec<Configuration> {
    let removed = voters
        .iter()
        .filter(|_| voters.len() > 1)
        .map(|gone| voters.iter().copied().filter(|v| v != gone).collect());
    let added = nodes
        .iter()
        .filter(|n| !voters.contains(n))
        .map(|new| voters.iter().copied().chain([*new]).collect());
    removed
        .chain(added)
        .filter_map(|voters: Vec<NodeId>| Configuration::new(voters, Vec::new()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::AcknowledgedWritesDurable;
    use crate::core::{Configuration, EntryKind, LogIndex, NodeId, PartitionId, Term};
    use crate::sim::node::truth::{Acknowledged, Applied, DurableLog};

    /// The first voters of the cases: three nodes.
    const THREE: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
    use crate::sim::node::workload::Op;

    fn log(floor: u64, entries: &[(u64, Op)]) -> DurableLog {
        DurableLog {
            floor_configuration: None,
            configurations: BTreeMap::new(),
            floor: LogIndex(floor),
            floor_term: Term(if floor == 0 { 0 } else { 1 }),
            entries: entries
                .iter()
                .map(|&(i, op)| (LogIndex(i), (Term(1), Some(op))))
                .collect::<BTreeMap<_, _>>(),
            ..DurableLog::default()
        }
    }

    #[test]
    fn a_majority_must_hold_the_write_or_have_compacted_it() {
        let op = Op::Write {
            key: 1,
            value: 9,
            generation: 0,
        };
        let other = Op::Write {
            key: 1,
            value: 8,
            generation: 0,
        };
        let ack = Acknowledged {
            partition: PartitionId(1),
            index: LogIndex(2),
            op,
            at: 5,
        };
        let holds = log(0, &[(1, other), (2, op)]);
        let lacks = log(0, &[(1, other)]);
        let replaced = log(0, &[(1, other), (2, other)]);
        let compacted = log(3, &[]);
        let mut applied = HashMap::new();
        let ok = |logs: &[Vec<&DurableLog>], applied: &HashMap<_, _>| {
            AcknowledgedWritesDurable::check(&ack, logs, applied, &THREE, false).is_ok()
        };
        assert!(ok(&[vec![&holds], vec![&holds], vec![]], &applied));
        assert!(!ok(&[vec![&holds], vec![&lacks], vec![]], &applied));
        assert!(!ok(
            &[vec![&holds], vec![&replaced], vec![&lacks]],
            &applied
        ));
        assert!(!ok(&[vec![&holds], vec![&compacted], vec![]], &applied));
        applied.insert(
            (PartitionId(1), LogIndex(2)),
            Applied {
                term: Term(1),
                kind: EntryKind::Normal,
                op: Some(op),
            },
        );
        assert!(ok(&[vec![&holds], vec![&compacted], vec![]], &applied));
        assert!(!ok(&[vec![&holds], vec![&lacks]], &applied));
        // A disk lost to a replacement still counts for its node; alone it is no majority.
        assert!(ok(&[vec![&holds], vec![&lacks, &holds], vec![]], &applied));
        assert!(!ok(&[vec![&lacks], vec![&lacks, &holds], vec![]], &applied));
    }

    #[test]
    fn the_majority_is_of_the_voters_in_force_or_of_one_change_past_them() {
        let op = Op::Write {
            key: 1,
            value: 9,
            generation: 0,
        };
        let ack = Acknowledged {
            partition: PartitionId(1),
            index: LogIndex(3),
            op,
            at: 5,
        };
        let in_force = |voters: &[u64]| {
            let mut log = log(0, &[(3, op)]);
            let voters = voters.iter().copied().map(NodeId).collect();
            let configuration = Configuration::new(voters, Vec::new()).expect("valid");
            log.configurations.insert(LogIndex(2), configuration);
            log
        };
        let lacks = log(0, &[]);
        let applied = HashMap::new();
        let check = |logs: &[Vec<&DurableLog>]| {
            AcknowledgedWritesDurable::check(&ack, logs, &applied, &THREE, true).is_ok()
        };
        // Voters {2} from index 2: node 2 alone is their majority.
        let two = in_force(&[2]);
        assert!(check(&[vec![&lacks], vec![&two], vec![&lacks]]));
        // Node 1 alone: a majority of neither {2} nor {1, 2} nor {2, 3}.
        assert!(!check(&[vec![&two], vec![&lacks], vec![&lacks]]));
        // Voters {1, 3}, held by 2 and 3: a majority of {1, 2, 3}, one promotion away.
        let one_three = in_force(&[1, 3]);
        assert!(check(&[vec![&lacks], vec![&one_three], vec![&one_three]]));
        // Held by 2 alone: a majority of nothing one change from {1, 3}.
        assert!(!check(&[vec![&lacks], vec![&one_three], vec![&lacks]]));
    }
}
