//! Log matching over the disks: when two nodes' durable logs of a partition hold an entry with
//! the same index and term, they hold the same entries up to that index (above both floors).
//! Checked on the durable images (what recovery finds), at every crash, power loss and at the
//! end, so the logs recovered at restart are judged too.

use crate::core::PartitionId;

use super::super::truth::DurableLog;

/// The property's checks.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct LogMatching;

impl LogMatching {
    pub(in crate::sim::node) const NAME: &'static str = "log_matching";

    /// Checks every pair of `logs` (one per node holding the partition).
    ///
    /// # Errors
    /// The first pair and index where the property fails.
    pub(in crate::sim::node) fn check(
        partition: PartitionId,
        logs: &[(usize, &DurableLog)],
    ) -> Result<(), String> {
        for (i, (node_a, a)) in logs.iter().enumerate() {
            for (node_b, b) in &logs[i + 1..] {
                // The highest index where both hold an entry of the same term.
                let anchor = a.entries.iter().rev().find(|(index, (term, _))| {
                    b.entries.get(index).is_some_and(|(t, _)| t == term)
                });
                let Some((&anchor, _)) = anchor else {
                    continue;
                };
                for (index, entry) in a.entries.range(..=anchor) {
                    if let Some(other) = b.entries.get(index)
                        && other != entry
                    {
                        return Err(format!(
                            "partition {partition}: nodes {} and {} agree at index {anchor} but differ at index {index}: {entry:?} vs {other:?}",
                            node_a + 1,
                            node_b + 1
                        ));
                    }
                }
                let first = a.floor.max(b.floor);
                let holes = a
                    .entries
                    .range(first.next()..=anchor)
                    .filter(|(index, _)| !b.entries.contains_key(index))
                    .count();
                if holes > 0 {
                    return Err(format!(
                        "partition {partition}: nodes {} and {} agree at index {anchor} but node {} lacks {holes} entries below it",
                        node_a + 1,
                        node_b + 1,
                        node_b + 1
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::LogMatching;
    use crate::core::{LogIndex, PartitionId, Term};
    use crate::sim::node::truth::DurableLog;
    use crate::sim::node::workload::Op;

    fn log(floor: u64, terms: &[(u64, u64, u64)]) -> DurableLog {
        DurableLog {
            floor_configuration: None,
            configurations: std::collections::BTreeMap::new(),
            floor: LogIndex(floor),
            floor_term: Term(if floor == 0 { 0 } else { 1 }),
            entries: terms
                .iter()
                .map(|&(i, t, v)| {
                    (
                        LogIndex(i),
                        (
                            Term(t),
                            Some(Op::Write {
                                key: 0,
                                value: v,
                                generation: 0,
                            }),
                        ),
                    )
                })
                .collect(),
            ..DurableLog::default()
        }
    }

    #[test]
    fn logs_that_agree_at_an_index_but_differ_below_are_flagged() {
        let p = PartitionId(1);
        let a = log(0, &[(1, 1, 1), (2, 1, 2), (3, 2, 3)]);
        let same = log(0, &[(1, 1, 1), (2, 1, 2), (3, 2, 3), (4, 2, 4)]);
        let diverged_tail = log(0, &[(1, 1, 1), (2, 1, 2), (3, 3, 9)]);
        let differs_below = log(0, &[(1, 1, 1), (2, 1, 7), (3, 2, 3)]);
        let compacted = log(2, &[(3, 2, 3)]);
        let hole = log(0, &[(1, 1, 1), (3, 2, 3)]);
        assert!(LogMatching::check(p, &[(0, &a), (1, &same)]).is_ok());
        assert!(LogMatching::check(p, &[(0, &a), (1, &diverged_tail)]).is_ok());
        assert!(LogMatching::check(p, &[(0, &a), (1, &compacted)]).is_ok());
        assert!(LogMatching::check(p, &[(0, &a), (1, &differs_below)]).is_err());
        assert!(LogMatching::check(p, &[(0, &a), (1, &hole)]).is_err());
    }
}
