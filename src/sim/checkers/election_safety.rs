//! Election safety: at most one leader per term (Raft §5.2), per partition, over all time.

use std::collections::HashMap;

use super::Checker;
use crate::sim::observation::{ClusterView, Observation};

/// Remembers who led each (partition, term); a second leader for a term is a violation.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    leaders: HashMap<(usize, u64), usize>,
}

impl Checker for ElectionSafety {
    fn name(&self) -> &'static str {
        "election_safety"
    }

    fn observe(&mut self, observation: &Observation, _view: &ClusterView) -> Result<(), String> {
        if let Observation::Role {
            node,
            partition,
            term,
            leader: true,
        } = observation
        {
            let first = *self.leaders.entry((*partition, *term)).or_insert(*node);
            if first != *node {
                return Err(format!(
                    "partition {partition} term {term}: node {node} became leader, \
                     but node {first} already led that term"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::*;

    #[test]
    fn two_leaders_in_one_term_are_flagged() {
        assert_flagged_by(
            "election_safety",
            3,
            vec![leader(0, 2), follower(0, 3), leader(1, 3), leader(2, 3)],
        );
    }

    #[test]
    fn one_leader_per_term_passes_even_when_it_claims_twice() {
        run(
            3,
            vec![leader(0, 1), leader(0, 1), leader(1, 2), leader(2, 3)],
        )
        .expect("legal");
    }
}
