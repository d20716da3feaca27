//! What a run returns: its report (the proof it was not vacuous) or the first property it
//! violated, with the command that replays it.

use super::*;

/// The command that replays a failing seed.
pub fn replay_command(seed: u64, bug: Option<&str>) -> String {
    let bug = bug.map_or(String::new(), |bug| format!("KOMMANDER_SIM_BUG={bug} "));
    format!("{bug}KOMMANDER_SIM_SEED={seed} cargo test --profile ci sim::replay -- --nocapture")
}

/// What one run did (its proof of non-vacuity) and its trace hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Hash of every event of the run.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Proposals that got a success answer.
    pub acknowledged: u64,
    /// Faults the nemesis injected (crashes, cuts, partitions, stalls).
    pub faults: u64,
    /// Node crashes among them.
    pub crashes: u64,
    /// Leadership claims observed.
    pub elections: u64,
    /// Entries delivered to applications (all replicas).
    pub delivered: u64,
    /// Log compactions at a committed checkpoint (all replicas).
    pub compactions: u64,
    /// Snapshots installed on followers that were behind the floor.
    pub snapshots: u64,
    /// Configuration changes a leader accepted.
    pub membership_changes: u64,
    /// Simulated milliseconds until every partition had converged after the faults stopped.
    pub settle_ms: u64,
}

/// A run that violated a property: the seed, when, what, and how to replay it (of either
/// simulator: this one, or the whole-node one of `sim::node`).
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// Simulated time of the violation (ms).
    pub at_ms: u64,
    /// The violated property.
    pub violation: Violation,
    /// The injected bug, if any (by name).
    pub bug: Option<String>,
    /// The command that replays the run.
    pub replay: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} at {} ms: {}\n  replay: {}",
            self.seed, self.at_ms, self.violation, self.replay
        )
    }
}

impl std::error::Error for SimFailure {}

impl Simulation {
    pub(super) fn fail(&self, violation: Violation) -> SimFailure {
        SimFailure {
            seed: self.seed,
            at_ms: self.now,
            violation,
            bug: self.bug_name.clone(),
            replay: replay_command(self.seed, self.bug_name.as_deref()),
        }
    }
}
