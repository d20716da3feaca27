//! What a failed write says about its entry: refused before anything was proposed, or its
//! outcome unknown. The client port answers the first with a refusal and the second with
//! `Unknown`; `bench` retries the first and counts the second apart (neither written nor
//! refused).

use kommander_raft::ReplicateError;

/// Whether the entry of a write that failed with `error` may be committed (now, or later
/// under another leader): its wait ran out (`Timeout`), leadership was lost before it
/// committed (`LeadershipLost`), or the node stopped or its shard failed (`Fatal`: the node
/// cannot say whether the proposal got through first). Every other error refused the write
/// before anything was proposed. An error this function does not name counts as unknown: it
/// never claims that a write was not made.
pub(crate) fn outcome_unknown(error: &ReplicateError) -> bool {
    !matches!(
        error,
        ReplicateError::NotLeader { .. }
            | ReplicateError::QueueFull
            | ReplicateError::RestoreInProgress
            | ReplicateError::PartitionMoved { .. }
            | ReplicateError::ActiveProposal
            | ReplicateError::ProposalNotFound { .. }
            | ReplicateError::TicketConflict { .. }
            | ReplicateError::Invalid(_)
    )
}

#[cfg(test)]
mod tests {
    use kommander_raft::{Fatal, HlcTimestamp, InvalidWrite, PartitionId};

    use super::*;

    #[test]
    fn indeterminate_and_fatal_errors_are_unknown_refusals_are_not() {
        let ticket = HlcTimestamp::ZERO;
        let unknown = [
            ReplicateError::Timeout { ticket },
            ReplicateError::LeadershipLost { ticket },
            ReplicateError::Fatal(Fatal::ShutDown),
            ReplicateError::Fatal(Fatal::ShardFailed {
                shard: 0,
                reason: "WAL poisoned".into(),
            }),
        ];
        for error in &unknown {
            assert!(outcome_unknown(error), "{error}");
        }
        let refused = [
            ReplicateError::NotLeader {
                leader: None,
                endpoint: None,
            },
            ReplicateError::QueueFull,
            ReplicateError::RestoreInProgress,
            ReplicateError::PartitionMoved {
                partition: PartitionId(9),
                generation: 0,
            },
            ReplicateError::Invalid(InvalidWrite::LogTypeTooLong {
                bytes: 300,
                max: 255,
            }),
            ReplicateError::Invalid(InvalidWrite::EntryTooLarge { bytes: 9, max: 8 }),
        ];
        for error in &refused {
            assert!(!outcome_unknown(error), "{error}");
        }
    }
}
