//! Index uniqueness: an acknowledged proposal owns its index forever, and one proposal is
//! committed at one index only. Kommander's Jepsen suite found both broken (an index handed
//! out twice across a term change; an acknowledged append absent at its index).

use std::collections::HashMap;

use super::Checker;
use crate::sim::observation::{ClusterView, Observation, ObservedKind};

/// Acknowledged and committed positions of every proposal.
#[derive(Debug, Default)]
pub struct IndexUniqueness {
    acknowledged_index: HashMap<(usize, u64), u64>,
    acknowledged_id: HashMap<(usize, u64), u64>,
    committed_index: HashMap<(usize, u64), u64>,
    frontier: Vec<u64>,
}

impl Checker for IndexUniqueness {
    fn name(&self) -> &'static str {
        "index_uniqueness"
    }

    fn observe(&mut self, observation: &Observation, view: &ClusterView) -> Result<(), String> {
        match observation {
            Observation::Acknowledged {
                partition,
                id,
                index,
            } => {
                let earlier = *self
                    .acknowledged_index
                    .entry((*partition, *id))
                    .or_insert(*index);
                if earlier != *index {
                    return Err(format!(
                        "partition {partition}: proposal {id} acknowledged at {index} and at \
                         {earlier}"
                    ));
                }
                let owner = *self
                    .acknowledged_id
                    .entry((*partition, *index))
                    .or_insert(*id);
                if owner != *id {
                    return Err(format!(
                        "partition {partition}: index {index} acknowledged to proposal {id} and \
                         to proposal {owner}"
                    ));
                }
                match view.committed(*partition, *index) {
                    Some(committed) if committed.entry.id == *id => {}
                    other => {
                        return Err(format!(
                            "partition {partition}: proposal {id} acknowledged at {index}, where \
                             the cluster committed {other:?}"
                        ));
                    }
                }
            }
            Observation::Committed { partition, .. } => {
                if self.frontier.len() <= *partition {
                    self.frontier.resize(view.partitions(), 0);
                }
                let end = view.committed_len(*partition);
                for index in self.frontier[*partition] + 1..=end {
                    let Some(committed) = view.committed(*partition, index) else {
                        continue;
                    };
                    if let Some(owner) = self.acknowledged_id.get(&(*partition, index))
                        && *owner != committed.entry.id
                    {
                        return Err(format!(
                            "partition {partition}: index {index} was acknowledged to proposal \
                             {owner} but {:?} committed there",
                            committed.entry
                        ));
                    }
                    if matches!(committed.entry.kind, ObservedKind::Data { .. }) {
                        let first = *self
                            .committed_index
                            .entry((*partition, committed.entry.id))
                            .or_insert(index);
                        if first != index {
                            return Err(format!(
                                "partition {partition}: proposal {} committed at {first} and \
                                 again at {index}",
                                committed.entry.id
                            ));
                        }
                    }
                }
                self.frontier[*partition] = end;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::*;
    use crate::sim::observation::Observation;

    fn ack(id: u64, index: u64) -> Observation {
        Observation::Acknowledged {
            partition: 0,
            id,
            index,
        }
    }

    #[test]
    fn one_proposal_committed_at_two_indexes_is_flagged() {
        assert_flagged_by(
            "index_uniqueness",
            1,
            vec![append(0, &[data(1, 1, 10), data(2, 2, 10)]), commit(0, 2)],
        );
    }

    #[test]
    fn an_acknowledgement_naming_the_wrong_index_is_flagged() {
        assert_flagged_by(
            "index_uniqueness",
            1,
            vec![
                append(0, &[data(1, 1, 10), data(2, 1, 11)]),
                commit(0, 2),
                ack(11, 1),
            ],
        );
    }

    #[test]
    fn an_acknowledged_entry_must_be_committed() {
        assert_flagged_by(
            "index_uniqueness",
            1,
            vec![append(0, &[data(1, 1, 10)]), ack(10, 1)],
        );
    }
}
