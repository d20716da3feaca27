//! Invariant checkers, one per safety property, each in a file named after the property
//! (openraft style). They run after every simulated step on the stream of
//! [`Observation`]s and the [`ClusterView`] it builds, keep their own incremental state, and
//! never look at the core's internals.
//!
//! Every checker has negative controls: hand-made violating histories it must flag. A checker
//! that cannot fail proves nothing.

mod commit_monotonicity;
mod election_safety;
mod exactly_once_in_order_delivery;
mod index_uniqueness;
mod leader_completeness;
mod liveness;
mod log_matching;
mod state_machine_safety;

pub use commit_monotonicity::CommitMonotonicity;
pub use election_safety::ElectionSafety;
pub use exactly_once_in_order_delivery::ExactlyOnceInOrderDelivery;
pub use index_uniqueness::IndexUniqueness;
pub use leader_completeness::LeaderCompleteness;
pub use liveness::check_converged;
pub use log_matching::LogMatching;
pub use state_machine_safety::StateMachineSafety;

use std::fmt;

use super::observation::{ClusterView, Observation};

/// One safety property, checked incrementally.
pub trait Checker: Send {
    /// The property's name (also the file it lives in).
    fn name(&self) -> &'static str;

    /// Checks the property after `observation` was applied to `view`.
    ///
    /// # Errors
    /// A description of the violation.
    fn observe(&mut self, observation: &Observation, view: &ClusterView) -> Result<(), String>;
}

/// A property that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Name of the checker that fired (`observer` for a malformed observation, `liveness`).
    pub checker: &'static str,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.checker, self.detail)
    }
}

impl std::error::Error for Violation {}

/// The cluster view plus every checker: feed it observations, it stops at the first violation.
pub struct Checkers {
    view: ClusterView,
    checkers: Vec<Box<dyn Checker>>,
    observations: u64,
}

impl fmt::Debug for Checkers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkers")
            .field("observations", &self.observations)
            .field(
                "checkers",
                &self.checkers.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Checkers {
    /// All safety checkers over a cluster of `nodes` × `partitions` whose partitions start
    /// with the voters in the mask `first_voters` (bit `n`: node index `n`).
    pub fn all(nodes: usize, partitions: usize, first_voters: u64) -> Self {
        Self {
            view: ClusterView::new(nodes, partitions, first_voters),
            checkers: vec![
                Box::new(ElectionSafety::default()),
                Box::new(LogMatching::default()),
                Box::new(LeaderCompleteness::default()),
                Box::new(StateMachineSafety::default()),
                Box::new(CommitMonotonicity::default()),
                Box::new(IndexUniqueness::default()),
                Box::new(ExactlyOnceInOrderDelivery::default()),
            ],
            observations: 0,
        }
    }

    /// Keeps only the checker named `name` (the sensitivity tests: a bug counts as caught only
    /// by the checker meant to catch it).
    #[must_use]
    pub fn only(mut self, name: &str) -> Self {
        self.checkers.retain(|checker| checker.name() == name);
        self
    }

    /// The view built so far.
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// Number of observations checked.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// Applies `observation` to the view and runs every checker on it.
    ///
    /// # Errors
    /// The first violated property.
    pub fn observe(&mut self, observation: Observation) -> Result<(), Violation> {
        self.observations += 1;
        self.view.apply(&observation).map_err(|detail| Violation {
            checker: "observer",
            detail,
        })?;
        for checker in &mut self.checkers {
            checker
                .observe(&observation, &self.view)
                .map_err(|detail| Violation {
                    checker: checker.name(),
                    detail: format!("{detail} (after {observation:?})"),
                })?;
        }
        Ok(())
    }

    /// Liveness: after faults stopped, every partition has one leader and all replicas agree.
    ///
    /// # Errors
    /// What has not converged.
    pub fn check_converged(&self) -> Result<(), Violation> {
        check_converged(&self.view).map_err(|detail| Violation {
            checker: "liveness",
            detail,
        })
    }
}

#[cfg(test)]
pub(crate) mod history {
    //! Builders for hand-made histories used by the negative controls.
    use super::super::observation::{Observation, ObservedEntry, ObservedKind};

    pub(crate) fn data(index: u64, term: u64, id: u64) -> ObservedEntry {
        ObservedEntry {
            index,
            term,
            id,
            kind: ObservedKind::Data {
                ticket: id,
                auto_commit: true,
            },
        }
    }

    pub(crate) fn held(index: u64, term: u64, ticket: u64) -> ObservedEntry {
        ObservedEntry {
            index,
            term,
            id: ticket,
            kind: ObservedKind::Data {
                ticket,
                auto_commit: false,
            },
        }
    }

    pub(crate) fn marker(index: u64, term: u64, ticket: u64, commit: bool) -> ObservedEntry {
        ObservedEntry {
            index,
            term,
            id: 1_000_000 + ticket * 2 + u64::from(commit),
            kind: if commit {
                ObservedKind::CommitMarker { ticket }
            } else {
                ObservedKind::RollbackMarker { ticket }
            },
        }
    }

    pub(crate) fn leader(node: usize, term: u64) -> Observation {
        Observation::Role {
            node,
            partition: 0,
            term,
            leader: true,
        }
    }

    pub(crate) fn follower(node: usize, term: u64) -> Observation {
        Observation::Role {
            node,
            partition: 0,
            term,
            leader: false,
        }
    }

    pub(crate) fn append(node: usize, entries: &[ObservedEntry]) -> Observation {
        Observation::Appended {
            node,
            partition: 0,
            entries: entries.to_vec(),
        }
    }

    pub(crate) fn commit(node: usize, commit: u64) -> Observation {
        Observation::Committed {
            node,
            partition: 0,
            commit,
        }
    }

    pub(crate) fn deliver(node: usize, entry: ObservedEntry) -> Observation {
        Observation::Delivered {
            node,
            partition: 0,
            entry,
        }
    }

    /// Runs `history` through every checker; returns the first violation's checker name.
    pub(crate) fn run(nodes: usize, history: Vec<Observation>) -> Result<(), super::Violation> {
        let mut checkers = super::Checkers::all(nodes, 1, (1 << nodes) - 1);
        for observation in history {
            checkers.observe(observation)?;
        }
        Ok(())
    }

    /// Asserts that `history` is flagged by exactly the checker `name` (first to fire).
    pub(crate) fn assert_flagged_by(name: &str, nodes: usize, history: Vec<Observation>) {
        match run(nodes, history) {
            Ok(()) => panic!("{name}: violating history was accepted"),
            Err(violation) => assert_eq!(violation.checker, name, "{violation}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::history::*;

    /// A legal history: elect, replicate, commit, deliver on every node; nothing fires.
    #[test]
    fn a_correct_history_passes_every_checker() {
        let entries = [data(1, 1, 11), data(2, 1, 12)];
        let mut history = vec![leader(0, 1), follower(1, 1), follower(2, 1)];
        for node in 0..3 {
            history.push(append(node, &entries));
        }
        for node in 0..3 {
            history.push(commit(node, 2));
            history.push(deliver(node, entries[0]));
            history.push(deliver(node, entries[1]));
        }
        history.push(super::Observation::Acknowledged {
            partition: 0,
            id: 12,
            index: 2,
        });
        run(3, history).expect("legal history");
    }

    #[test]
    fn a_log_gap_is_reported_by_the_observer() {
        assert_flagged_by("observer", 1, vec![append(0, &[data(2, 1, 1)])]);
    }
}
