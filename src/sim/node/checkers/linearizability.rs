//! Every partition's register history (reads through ReadIndex, writes through proposals, as
//! the clients saw them) is linearizable, judged by the Wing-Gong-Lowe checker of
//! [`crate::sim::linearizability`] at the end of the run. With keys routed through the
//! partition map (the elastic operator's runs) there is one history, each key one register
//! whichever partition served it: across splits and merges.

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

    /// Checks `partition`'s history (`None`: the history of the keys routed through the map);
    /// returns the states explored.
    ///
    /// # Errors
    /// The violation, or a search cut short.
    pub(in crate::sim::node) fn check(
        partition: Option<PartitionId>,
        history: &History,
    ) -> Result<usize, String> {
        let whose = partition.map_or_else(
            || "the routed keys".to_owned(),
            |partition| format!("partition {partition}"),
        );
        match linearizability::check(history, EXPLORED_MAX) {
            Verdict::Linearizable { explored } => Ok(explored),
            Verdict::Violation(violation) => Err(format!("{whose}: {violation}")),
            Verdict::Inconclusive { key, explored } => Err(format!(
                "{whose}: the search of key {key} was cut short after {explored} states (no proof either way)"
            )),
        }
    }
}
