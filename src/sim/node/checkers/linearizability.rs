//! Every partition's register history (reads through ReadIndex, writes through proposals, as
//! the clients saw them) is linearizable, judged by the Wing-Gong-Lowe checker of
//! [`crate::sim::linearizability`] at the end of the run.

use crate::core::PartitionId;
use crate::sim::linearizability::{self, History, Verdict};

/// Search states the checker may explore per partition before it gives up (then the run
/// fails as inconclusive: a pass must be a proof).
const EXPLORED_MAX: usize = 2_000_000;

/// The property's check.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct Linearizability;

impl Linearizability {
    pub(in crate::sim::node) const NAME: &'static str = "linearizability";

    /// Checks `partition`'s history; returns the states explored.
    ///
    /// # Errors
    /// The violation, or a search cut short.
    pub(in crate::sim::node) fn check(
        partition: PartitionId,
        history: &History,
    ) -> Result<usize, String> {
        match linearizability::check(history, EXPLORED_MAX) {
            Verdict::Linearizable { explored } => Ok(explored),
            Verdict::Violation(violation) => Err(format!("partition {partition}: {violation}")),
            Verdict::Inconclusive { key, explored } => Err(format!(
                "partition {partition}: the search of key {key} was cut short after {explored} states (no proof either way)"
            )),
        }
    }
}
