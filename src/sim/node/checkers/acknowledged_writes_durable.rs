//! Every acknowledged write is durable on a majority of the disks when it is acknowledged,
//! and stays durable through every crash and power loss. "Durable" is what the disk's model
//! would keep after a power cut now (its durable image, recovered), not what the node says.
//! A node holds the write when its durable log has the write's operation at the write's index,
//! or its floor passed the index and the entry applied there was that write (compacted after
//! a checkpoint the application made durable).

use std::collections::{BTreeMap, HashMap};

use crate::core::{LogIndex, PartitionId};

use super::super::truth::{Acknowledged, Applied, DurableLog};

/// The property's checks.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct AcknowledgedWritesDurable;

impl AcknowledgedWritesDurable {
    pub(in crate::sim::node) const NAME: &'static str = "acknowledged_writes_durable";

    /// Checks that `ack` is held by a majority of `logs` (one per node, the partition's
    /// durable log on that node's disk: `None` when the disk holds nothing of it).
    ///
    /// # Errors
    /// Which nodes hold it and which do not.
    pub(in crate::sim::node) fn check(
        ack: &Acknowledged,
        logs: &[Option<&DurableLog>],
        applied: &HashMap<(PartitionId, LogIndex), Applied>,
    ) -> Result<(), String> {
        let holds = |log: &Option<&DurableLog>| {
            log.is_some_and(|log| match log.entries.get(&ack.index) {
                Some((_, op)) => *op == Some(ack.op),
                None => {
                    log.floor >= ack.index
                        && applied
                            .get(&(ack.partition, ack.index))
                            .is_some_and(|a| a.op == Some(ack.op))
                }
            })
        };
        let holding = logs.iter().filter(|log| holds(log)).count();
        if holding * 2 > logs.len() {
            return Ok(());
        }
        let describe: BTreeMap<usize, String> = logs
            .iter()
            .enumerate()
            .map(|(node, log)| {
                let what = match log {
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
            "{:?} acknowledged at {} ms as partition {} index {} is durable on {holding} of {} disks; at that index the durable logs hold {describe:?}",
            ack.op,
            ack.at,
            ack.partition,
            ack.index,
            logs.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::AcknowledgedWritesDurable;
    use crate::core::{EntryKind, LogIndex, PartitionId, Term};
    use crate::sim::node::truth::{Acknowledged, Applied, DurableLog};
    use crate::sim::node::workload::Op;

    fn log(floor: u64, entries: &[(u64, Op)]) -> DurableLog {
        DurableLog {
            floor: LogIndex(floor),
            floor_term: Term(if floor == 0 { 0 } else { 1 }),
            entries: entries
                .iter()
                .map(|&(i, op)| (LogIndex(i), (Term(1), Some(op))))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_majority_must_hold_the_write_or_have_compacted_it() {
        let op = Op::Write { key: 1, value: 9 };
        let other = Op::Write { key: 1, value: 8 };
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
        let ok = |logs: &[Option<&DurableLog>], applied: &HashMap<_, _>| {
            AcknowledgedWritesDurable::check(&ack, logs, applied).is_ok()
        };
        assert!(ok(&[Some(&holds), Some(&holds), None], &applied));
        assert!(!ok(&[Some(&holds), Some(&lacks), None], &applied));
        assert!(!ok(
            &[Some(&holds), Some(&replaced), Some(&lacks)],
            &applied
        ));
        assert!(!ok(&[Some(&holds), Some(&compacted), None], &applied));
        applied.insert(
            (PartitionId(1), LogIndex(2)),
            Applied {
                term: Term(1),
                kind: EntryKind::Normal,
                op: Some(op),
            },
        );
        assert!(ok(&[Some(&holds), Some(&compacted), None], &applied));
        assert!(!ok(&[Some(&holds), Some(&lacks)], &applied));
    }
}
