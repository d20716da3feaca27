//! How the handle turns a shard's refusal into its public errors: the one place that knows the
//! shard's answers, so each family's error says what happened and where to retry.

use crate::core::{NodeId, PartitionId, Status};
use crate::node::error::{Fatal, JoinError, QueryError, ReplicateError};
use crate::node::hlc::HlcTimestamp;

use super::Raft;

/// A shard's refusal of a request.
pub(super) type Refused = Status;

/// What an answer channel whose shard side was dropped means: the shard stopped.
pub(super) const SHARD_GONE: Refused = Status::Errored;

/// The write a refusal answers (the same refusal means different things for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    Propose,
    Checkpoint,
    Commit,
    Rollback,
}

impl Raft {
    /// The leader this node knows for `partition` (not itself) and its endpoint.
    fn leader_hint(&self, partition: PartitionId) -> (Option<NodeId>, Option<String>) {
        let leader = self
            .inner
            .leaders
            .get(partition)
            .and_then(|l| l.leader)
            .filter(|&leader| leader != self.local_node_id());
        let endpoint = leader.and_then(|leader| self.inner.leaders.endpoint_of(leader));
        (leader, endpoint)
    }

    pub(super) fn replicate_error(
        &self,
        refused: Refused,
        partition: PartitionId,
        ticket: HlcTimestamp,
        write: Write,
    ) -> ReplicateError {
        match refused {
            Status::NodeIsNotLeader => {
                let (leader, endpoint) = self.leader_hint(partition);
                ReplicateError::NotLeader { leader, endpoint }
            }
            Status::ProposalQueueFull => ReplicateError::QueueFull,
            Status::RestoreInProgress => ReplicateError::RestoreInProgress,
            Status::PartitionMoved => ReplicateError::PartitionMoved {
                partition,
                generation: self.partition_generation(partition),
            },
            Status::ActiveProposal => ReplicateError::ActiveProposal,
            Status::ProposalNotFound => ReplicateError::ProposalNotFound { ticket },
            Status::ReplicationFailed => ReplicateError::LeadershipLost { ticket },
            Status::ProposalTimeout => ReplicateError::Timeout { ticket },
            _ if matches!(write, Write::Commit | Write::Rollback) => {
                ReplicateError::TicketConflict { ticket }
            }
            _ => ReplicateError::Fatal(Fatal::ShutDown),
        }
    }

    pub(super) fn query_error(&self, refused: Refused, partition: PartitionId) -> QueryError {
        match refused {
            Status::NodeIsNotLeader => {
                let (leader, endpoint) = self.leader_hint(partition);
                QueryError::NotLeader { leader, endpoint }
            }
            Status::ProposalQueueFull => QueryError::QueueFull,
            Status::RestoreInProgress => QueryError::RestoreInProgress,
            Status::PartitionMoved => QueryError::PartitionMoved { partition },
            _ => QueryError::Fatal(Fatal::ShutDown),
        }
    }

    pub(super) fn transfer_error(
        &self,
        refused: Refused,
        partition: PartitionId,
        target: NodeId,
    ) -> QueryError {
        match refused {
            Status::LeaderAlreadyElected => QueryError::AlreadyLeader { node: target },
            Status::Errored => QueryError::NotAVoter { node: target },
            refused => self.query_error(refused, partition),
        }
    }

    pub(super) fn join_error(&self, refused: Refused) -> JoinError {
        match refused {
            Status::ProposalQueueFull => JoinError::QueueFull,
            _ => JoinError::Fatal(Fatal::ShutDown),
        }
    }
}
