//! An operation answered with a definite failure (refused before it was appended, or rolled
//! back) is never applied anywhere. Answers that leave the outcome open (leadership lost, a
//! timeout, a failed shard, a crash) are not definite and are not judged here.

use std::collections::HashMap;

use crate::core::{LogIndex, PartitionId};

/// The property's checks.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct FailedWritesNeverCommit;

impl FailedWritesNeverCommit {
    pub(in crate::sim::node) const NAME: &'static str = "failed_writes_never_commit";

    /// Operation `id` was just answered `answer` (a definite failure).
    ///
    /// # Errors
    /// It was already applied.
    pub(in crate::sim::node) fn on_failed(
        id: u64,
        answer: &str,
        applied: &HashMap<u64, (PartitionId, LogIndex)>,
    ) -> Result<(), String> {
        match applied.get(&id) {
            Some((partition, index)) => Err(format!(
                "operation {id} was answered {answer} (a definite failure) but was applied at partition {partition} index {index}"
            )),
            None => Ok(()),
        }
    }

    /// Operation `id` was just applied at `partition`/`index`.
    ///
    /// # Errors
    /// It had been answered with a definite failure.
    pub(in crate::sim::node) fn on_applied(
        id: u64,
        partition: PartitionId,
        index: LogIndex,
        failed: &HashMap<u64, (PartitionId, u64, String)>,
    ) -> Result<(), String> {
        match failed.get(&id) {
            Some((_, at, answer)) => Err(format!(
                "operation {id} applied at partition {partition} index {index} had been answered {answer} (a definite failure) at {at} ms"
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::FailedWritesNeverCommit;
    use crate::core::{LogIndex, PartitionId};

    #[test]
    fn a_failed_operation_that_is_applied_is_flagged_in_either_order() {
        let mut applied = HashMap::new();
        let mut failed = HashMap::new();
        assert!(FailedWritesNeverCommit::on_failed(7, "NotLeader", &applied).is_ok());
        failed.insert(7, (PartitionId(1), 10, "NotLeader".to_owned()));
        assert!(
            FailedWritesNeverCommit::on_applied(7, PartitionId(1), LogIndex(3), &failed).is_err()
        );
        assert!(
            FailedWritesNeverCommit::on_applied(8, PartitionId(1), LogIndex(4), &failed).is_ok()
        );
        applied.insert(9, (PartitionId(1), LogIndex(5)));
        assert!(FailedWritesNeverCommit::on_failed(9, "rolled back", &applied).is_err());
    }
}
