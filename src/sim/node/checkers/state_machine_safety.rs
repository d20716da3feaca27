//! No two applications are handed different entries at the same index of a partition: the
//! first entry handed over at an index is the truth every later hand-over there must match.

use std::collections::HashMap;

use crate::core::{LogIndex, NodeId, PartitionId};

use super::super::app::Delivered;
use super::super::truth::Applied;

/// The property's checks.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct StateMachineSafety;

impl StateMachineSafety {
    pub(in crate::sim::node) const NAME: &'static str = "state_machine_safety";

    /// `node` was handed `delivered`; records it in `applied` when it is the first at its index.
    ///
    /// # Errors
    /// Another entry was handed over at that index before.
    pub(in crate::sim::node) fn on_delivered(
        node: NodeId,
        delivered: &Delivered,
        applied: &mut HashMap<(PartitionId, LogIndex), Applied>,
    ) -> Result<(), String> {
        let entry = Applied {
            term: delivered.term,
            kind: delivered.kind,
            op: delivered.op,
        };
        let first = *applied
            .entry((delivered.partition, delivered.index))
            .or_insert(entry);
        if first == entry {
            return Ok(());
        }
        Err(format!(
            "node {node} was handed {entry:?} at partition {} index {}, where {first:?} was handed before",
            delivered.partition, delivered.index
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::StateMachineSafety;
    use crate::core::{EntryKind, LogIndex, NodeId, PartitionId, Term};
    use crate::sim::node::app::{Delivered, Path};
    use crate::sim::node::workload::Op;

    #[test]
    fn two_entries_at_one_index_are_flagged() {
        let delivered = |term, value| Delivered {
            partition: PartitionId(1),
            index: LogIndex(4),
            term: Term(term),
            kind: EntryKind::Normal,
            path: Path::Live,
            op: Some(Op::Write {
                key: 0,
                value,
                generation: 0,
            }),
            handed_before: LogIndex(3),
        };
        let mut applied = HashMap::new();
        assert!(
            StateMachineSafety::on_delivered(NodeId(1), &delivered(2, 5), &mut applied).is_ok()
        );
        assert!(
            StateMachineSafety::on_delivered(NodeId(2), &delivered(2, 5), &mut applied).is_ok()
        );
        assert!(
            StateMachineSafety::on_delivered(NodeId(3), &delivered(3, 5), &mut applied).is_err()
        );
        assert!(
            StateMachineSafety::on_delivered(NodeId(3), &delivered(2, 6), &mut applied).is_err()
        );
    }
}
