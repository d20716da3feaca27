//! How the handle turns a shard's [`Refusal`] into its public errors: the one place that knows
//! the shard's answers, so each family's error says what happened and where to retry.

use crate::clock::HlcTimestamp;
use crate::core::{NodeId, PartitionId, Status};
use crate::node::error::{
    Fatal, InvalidWrite, JoinError, MembershipError, PartitionLifecycleError, QueryError,
    ReplicateError,
};
use crate::shard::Refusal;

use super::Raft;

/// What an answer channel whose shard side was dropped means: the shard stopped.
pub(super) const SHARD_GONE: Refusal = Refusal::ShutDown;

/// The write a refusal answers (the core's generic refusal means a different thing for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteKind {
    Propose,
    Checkpoint,
    Commit,
    Rollback,
}

impl Raft {
    /// `NotLeader` with the leader the refusing replica knew (never this node: a leader
    /// handing over refuses too) and its endpoint from discovery.
    fn not_leader(&self, leader: Option<NodeId>) -> (Option<NodeId>, Option<String>) {
        let leader = leader.filter(|&leader| leader != self.local_node_id());
        let endpoint = leader.and_then(|leader| self.inner.leaders.endpoint_of(leader));
        (leader, endpoint)
    }

    pub(super) fn replicate_error(
        &self,
        refusal: Refusal,
        partition: PartitionId,
        ticket: HlcTimestamp,
        write: WriteKind,
    ) -> ReplicateError {
        match refusal {
            Refusal::NotLeader { leader } => {
                let (leader, endpoint) = self.not_leader(leader);
                ReplicateError::NotLeader { leader, endpoint }
            }
            Refusal::QueueFull => ReplicateError::QueueFull,
            Refusal::RestoreInProgress => ReplicateError::RestoreInProgress,
            // Not open here, or fenced off on the shard by its committed partition map (a
            // removed range, or not the generation the caller routed with): nothing written.
            Refusal::NotHosted => ReplicateError::PartitionMoved {
                partition,
                generation: self.partition_generation(partition),
            },
            Refusal::ShardFailed { shard, reason } => {
                ReplicateError::Fatal(Fatal::ShardFailed { shard, reason })
            }
            Refusal::ShutDown => ReplicateError::Fatal(self.inner.stopped_error()),
            Refusal::Replica(status) => match (status, write) {
                (Status::ActiveProposal, _) => ReplicateError::ActiveProposal,
                (Status::ProposalNotFound, _) => ReplicateError::ProposalNotFound { ticket },
                // The core's generic refusal of a commit or rollback: resolved the other way,
                // or not committed yet.
                (_, WriteKind::Commit | WriteKind::Rollback) => {
                    ReplicateError::TicketConflict { ticket }
                }
                // The core refuses only an empty proposal this way; the shard's other bounds
                // are the ones `check_write` applied before sending.
                (_, WriteKind::Propose | WriteKind::Checkpoint) => InvalidWrite::Empty.into(),
            },
        }
    }

    pub(super) fn membership_error(&self, refusal: Refusal) -> MembershipError {
        match refusal {
            Refusal::NotLeader { leader } => {
                let (leader, endpoint) = self.not_leader(leader);
                MembershipError::NotLeader { leader, endpoint }
            }
            Refusal::QueueFull => MembershipError::QueueFull,
            Refusal::RestoreInProgress | Refusal::NotHosted => MembershipError::RestoreInProgress,
            Refusal::ShardFailed { shard, reason } => {
                MembershipError::Fatal(Fatal::ShardFailed { shard, reason })
            }
            Refusal::ShutDown => MembershipError::Fatal(self.inner.stopped_error()),
            Refusal::Replica(Status::StaleMembership) => MembershipError::Stale {
                current: self.membership().map_or(0, |r| r.version()),
            },
            Refusal::Replica(Status::ConcurrentMembershipChange) => {
                MembershipError::ConcurrentChange
            }
            Refusal::Replica(Status::InsufficientVoters) => MembershipError::InsufficientVoters,
            Refusal::Replica(status) => MembershipError::Invalid {
                reason: format!("refused by partition 0's leader: {status}"),
            },
        }
    }

    pub(super) fn lifecycle_error(&self, refusal: Refusal) -> PartitionLifecycleError {
        match refusal {
            Refusal::NotLeader { leader } => {
                let (leader, endpoint) = self.not_leader(leader);
                PartitionLifecycleError::NotLeader { leader, endpoint }
            }
            Refusal::QueueFull => PartitionLifecycleError::QueueFull,
            Refusal::RestoreInProgress | Refusal::NotHosted => {
                PartitionLifecycleError::RestoreInProgress
            }
            Refusal::ShardFailed { shard, reason } => {
                PartitionLifecycleError::Fatal(Fatal::ShardFailed { shard, reason })
            }
            Refusal::ShutDown => PartitionLifecycleError::Fatal(self.inner.stopped_error()),
            Refusal::Replica(status) => PartitionLifecycleError::Rejected { status },
        }
    }

    pub(super) fn query_error(&self, refusal: Refusal, partition: PartitionId) -> QueryError {
        match refusal {
            Refusal::NotLeader { leader } => {
                let (leader, endpoint) = self.not_leader(leader);
                QueryError::NotLeader { leader, endpoint }
            }
            Refusal::QueueFull => QueryError::QueueFull,
            Refusal::RestoreInProgress => QueryError::RestoreInProgress,
            Refusal::NotHosted => QueryError::PartitionMoved { partition },
            Refusal::ShardFailed { shard, reason } => {
                QueryError::Fatal(Fatal::ShardFailed { shard, reason })
            }
            Refusal::ShutDown => QueryError::Fatal(self.inner.stopped_error()),
            // The replica refuses the state query and the hooks only as not leading (the
            // follower lag and transfer refusals are read by their callers first).
            Refusal::Replica(_) => QueryError::NotLeader {
                leader: None,
                endpoint: None,
            },
        }
    }

    pub(super) fn transfer_error(
        &self,
        refusal: Refusal,
        partition: PartitionId,
        target: NodeId,
    ) -> QueryError {
        match refusal {
            Refusal::Replica(Status::LeaderAlreadyElected) => {
                QueryError::AlreadyLeader { node: target }
            }
            Refusal::Replica(_) => QueryError::NotAVoter { node: target },
            refusal => self.query_error(refusal, partition),
        }
    }

    pub(super) fn join_error(&self, refusal: Refusal) -> JoinError {
        match refusal {
            Refusal::QueueFull => JoinError::QueueFull,
            Refusal::ShardFailed { shard, reason } => {
                JoinError::Fatal(Fatal::ShardFailed { shard, reason })
            }
            // Opening the system partition is refused otherwise only once the shard stopped
            // (or for an invalid membership, which the validated configuration rules out).
            Refusal::NotLeader { .. }
            | Refusal::Replica(_)
            | Refusal::RestoreInProgress
            | Refusal::NotHosted
            | Refusal::ShutDown => JoinError::Fatal(self.inner.stopped_error()),
        }
    }
}
