//! The node simulator's checkers, one file per property. Each judges from the simulator's
//! truth ([`super::truth`]): the disks' durable images, the applications, the frames on the
//! wire and the answers clients got. A checker that cannot fail proves nothing: each file has
//! negative controls.
//!
//! For the sensitivity tests a run can listen to one checker only ([`NodeCheckers::only`]):
//! an injected bug counts as caught only by the checker meant to catch it.

mod acknowledged_writes_durable;
mod election_safety;
mod exactly_once_in_order_delivery;
mod failed_writes_never_commit;
mod linearizability;
mod log_matching;
mod quiesced_no_election;
mod range_ownership;
mod state_machine_safety;

pub(super) use acknowledged_writes_durable::AcknowledgedWritesDurable;
pub(super) use election_safety::ElectionSafety;
pub(super) use exactly_once_in_order_delivery::ExactlyOnceInOrderDelivery;
pub(super) use failed_writes_never_commit::FailedWritesNeverCommit;
pub(super) use linearizability::Linearizability;
pub(super) use log_matching::LogMatching;
pub(super) use quiesced_no_election::QuiescedNoElection;
pub(super) use range_ownership::{RangeHistory, RangeOwnership, RoutedWrite};
pub(super) use state_machine_safety::StateMachineSafety;

use crate::sim::checkers::Violation;

/// Every checker's name. Besides the properties: `recovery` (a crash image that does not
/// recover, a restore that fails), `shard_failure` (a shard that fails without an injected
/// disk fault: a panic or an unexpected WAL error), `codec` (a frame the codec does not read
/// back) and `liveness` (no write and read served on every partition once faults stop).
pub const CHECKERS: [&str; 13] = [
    AcknowledgedWritesDurable::NAME,
    FailedWritesNeverCommit::NAME,
    ExactlyOnceInOrderDelivery::NAME,
    StateMachineSafety::NAME,
    ElectionSafety::NAME,
    LogMatching::NAME,
    Linearizability::NAME,
    RangeOwnership::NAME,
    QuiescedNoElection::NAME,
    RECOVERY,
    SHARD_FAILURE,
    CODEC,
    LIVENESS,
];

/// A crash image that does not recover, or a restore that fails.
pub(super) const RECOVERY: &str = "recovery";
/// A shard failed without an injected disk fault.
pub(super) const SHARD_FAILURE: &str = "shard_failure";
/// A frame the codec did not read back.
pub(super) const CODEC: &str = "codec";
/// No progress once faults stopped.
pub(super) const LIVENESS: &str = "liveness";

/// The checkers' state, and which of them the run listens to.
#[derive(Debug, Default)]
pub(super) struct NodeCheckers {
    /// Listen to this checker only (sensitivity tests); `None`: all.
    only: Option<&'static str>,
    /// Violations of the checkers not listened to (they do not stop the run).
    pub(super) ignored: u64,
    pub(super) election_safety: ElectionSafety,
    pub(super) quiesced_no_election: QuiescedNoElection,
}

impl NodeCheckers {
    /// Checkers listening only to `name`.
    pub(super) fn only(name: &'static str) -> Self {
        Self {
            only: Some(name),
            ..Self::default()
        }
    }

    /// Reports a violation of `checker`: an error when the run listens to it.
    ///
    /// # Errors
    /// The violation, when `checker` is listened to.
    pub(super) fn judge(
        &mut self,
        checker: &'static str,
        verdict: Result<(), String>,
    ) -> Result<(), Violation> {
        let Err(detail) = verdict else {
            return Ok(());
        };
        if self.only.is_some_and(|only| only != checker) {
            self.ignored += 1;
            return Ok(());
        }
        Err(Violation { checker, detail })
    }

    /// Whether the run listens to `checker` (work only it needs may be skipped otherwise).
    pub(super) fn listens(&self, checker: &'static str) -> bool {
        self.only.is_none_or(|only| only == checker)
    }
}

#[cfg(test)]
mod tests {
    use super::NodeCheckers;

    #[test]
    fn a_run_listening_to_one_checker_ignores_the_others() {
        let mut checkers = NodeCheckers::only("log_matching");
        assert!(checkers.judge("recovery", Err("x".into())).is_ok());
        assert_eq!(checkers.ignored, 1);
        let violation = checkers
            .judge("log_matching", Err("y".into()))
            .expect_err("the listened checker reports");
        assert_eq!(violation.checker, "log_matching");
        assert!(
            NodeCheckers::default()
                .judge("recovery", Err("z".into()))
                .is_err()
        );
        assert!(NodeCheckers::default().judge("recovery", Ok(())).is_ok());
    }
}
