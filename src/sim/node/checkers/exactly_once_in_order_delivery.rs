//! Each node's application is handed each committed entry once per incarnation, in log order,
//! and ends with exactly the state the committed log gives: within an incarnation every
//! hand-over (restored or live) is above the last one; once the run has settled, every node's
//! registers equal the replay of the committed log up to its applied index, the registers a
//! split's or merge's import entries carried included (nothing missed, nothing extra, across
//! every restart).

use std::collections::{BTreeMap, HashMap};

use crate::core::{LogIndex, NodeId, PartitionId};

use super::super::app::{AppState, Delivered};
use super::super::truth::{Applied, Imports};
use super::super::workload::Op;

/// The property's checks.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct ExactlyOnceInOrderDelivery;

impl ExactlyOnceInOrderDelivery {
    pub(in crate::sim::node) const NAME: &'static str = "exactly_once_in_order_delivery";

    /// `node`'s application was just handed `delivered`.
    ///
    /// # Errors
    /// The index is not above what this incarnation was handed before.
    pub(in crate::sim::node) fn on_delivered(
        node: NodeId,
        delivered: &Delivered,
    ) -> Result<(), String> {
        if delivered.index > delivered.handed_before {
            return Ok(());
        }
        Err(format!(
            "node {node} partition {} was handed index {} ({:?}) after index {} in the same incarnation",
            delivered.partition, delivered.index, delivered.path, delivered.handed_before
        ))
    }

    /// At the end: `state` (a node's live state of `partition`) must be the committed log
    /// replayed up to its index: the writes `applied` holds and the registers each import
    /// entry in `imports` carried (a split's or merge's moved range), in index order.
    ///
    /// # Errors
    /// The first register that differs, or an index the truth never saw applied.
    pub(in crate::sim::node) fn check_final_state(
        node: NodeId,
        partition: PartitionId,
        state: &AppState,
        applied: &HashMap<(PartitionId, LogIndex), Applied>,
        imports: &Imports,
    ) -> Result<(), String> {
        let mut replay: BTreeMap<LogIndex, Vec<(u64, u64)>> = BTreeMap::new();
        for ((p, index), entry) in applied {
            if *p == partition
                && *index <= state.index
                && let Some(Op::Write { key, value, .. }) = entry.op
            {
                replay.insert(*index, vec![(key, value)]);
            }
        }
        for ((p, index), registers) in imports {
            if *p == partition && *index <= state.index {
                replay.insert(*index, registers.clone());
            }
        }
        let registers: BTreeMap<u64, u64> = replay.into_values().flatten().collect();
        if registers == state.registers {
            return Ok(());
        }
        Err(format!(
            "node {node} partition {partition} at index {} holds {:?}, the committed log gives {registers:?}",
            state.index, state.registers
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::ExactlyOnceInOrderDelivery;
    use crate::core::{EntryKind, LogIndex, NodeId, PartitionId, Term};
    use crate::sim::node::app::{AppState, Delivered, Path};
    use crate::sim::node::truth::Applied;
    use crate::sim::node::workload::Op;

    #[test]
    fn a_repeated_or_backward_hand_over_is_flagged() {
        let delivered = |index, before| Delivered {
            partition: PartitionId(1),
            index: LogIndex(index),
            term: Term(1),
            kind: EntryKind::Normal,
            path: Path::Live,
            op: None,
            handed_before: LogIndex(before),
        };
        assert!(ExactlyOnceInOrderDelivery::on_delivered(NodeId(1), &delivered(3, 2)).is_ok());
        assert!(ExactlyOnceInOrderDelivery::on_delivered(NodeId(1), &delivered(2, 2)).is_err());
        assert!(ExactlyOnceInOrderDelivery::on_delivered(NodeId(1), &delivered(1, 2)).is_err());
    }

    #[test]
    fn a_final_state_missing_or_adding_a_write_is_flagged() {
        let p = PartitionId(1);
        let applied: HashMap<_, _> = [(1, 10), (2, 20), (3, 30)]
            .into_iter()
            .map(|(i, value)| {
                let op = Some(Op::Write {
                    key: i % 2,
                    value,
                    generation: 0,
                });
                (
                    (p, LogIndex(i)),
                    Applied {
                        term: Term(1),
                        kind: EntryKind::Normal,
                        op,
                    },
                )
            })
            .collect();
        let state = |index, pairs: &[(u64, u64)]| AppState {
            index: LogIndex(index),
            registers: pairs.iter().copied().collect::<BTreeMap<_, _>>(),
        };
        let mut imports = HashMap::new();
        let check = |s: &AppState, imports: &HashMap<_, _>| {
            ExactlyOnceInOrderDelivery::check_final_state(NodeId(1), p, s, &applied, imports)
        };
        assert!(check(&state(3, &[(1, 30), (0, 20)]), &imports).is_ok());
        assert!(check(&state(2, &[(1, 10), (0, 20)]), &imports).is_ok());
        assert!(
            check(&state(3, &[(1, 10), (0, 20)]), &imports).is_err(),
            "missed index 3"
        );
        assert!(
            check(&state(1, &[(1, 10), (0, 20)]), &imports).is_err(),
            "applied beyond its index"
        );
        // An import at index 4 sets key 5 and overwrites key 1; a write after it wins.
        imports.insert((p, LogIndex(4)), vec![(5, 50), (1, 40)]);
        assert!(check(&state(4, &[(1, 40), (0, 20), (5, 50)]), &imports).is_ok());
        assert!(
            check(&state(4, &[(1, 30), (0, 20)]), &imports).is_err(),
            "missed the import"
        );
    }
}
