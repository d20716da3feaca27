//! Test hooks (Kommander's `ForceLeaderForTestingAsync`, `StepDownAsync`,
//! `TransferLeadershipAsync`, `SuspendHeartbeatsAsync`, `ResumeHeartbeatsAsync`), reached
//! through [`Raft::testing`] only.

use std::future::Future;
use std::time::Duration;

use crate::core::{Message, MessageBody, NodeId, PartitionId, Role, Status};
use crate::node::discovery::RaftNode;
use crate::node::error::QueryError;
use crate::shard::{Reply, Request};

use super::Raft;
use super::wait::WaitStep;

/// Leadership controls for deterministic tests and fault injection: [`Raft::testing`].
///
/// Each waits at most its `timeout`, `None` being the node's `leader_wait_timeout_ms` (10 s by
/// default, Kommander's bound), `Some(Duration::MAX)` no limit.
#[derive(Clone, Debug)]
pub struct TestHooks {
    pub(super) raft: Raft,
}

/// What [`TestHooks::step_down`] saw after this node stepped down (Kommander's
/// `StepDownAsync` answers `Success` or `Pending`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SteppedDown {
    /// Another node leads the partition now, as this node knows it.
    Succeeded {
        /// The new leader.
        leader: RaftNode,
    },
    /// No other leader was known here within the timeout (Kommander's `Pending`): this node
    /// no longer leads, and an election may still be running (or this node was elected
    /// again).
    NoSuccessorYet,
}

impl SteppedDown {
    /// The IRaft status of the outcome: `Success` or `Pending`.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            Self::Succeeded { .. } => Status::Success,
            Self::NoSuccessorYet => Status::Pending,
        }
    }
}

impl TestHooks {
    /// Makes this node campaign for `partition` at once (as if its leader had handed over
    /// with `TimeoutNow`) and waits until it leads with its no-op committed, at most
    /// `timeout` (`None`: `leader_wait_timeout_ms`). Already leading: returns at once.
    ///
    /// # Errors
    ///
    /// [`QueryError::Timeout`] when it does not lead in time (its log may be behind); the
    /// errors of [`Raft::partition_status`].
    pub fn force_leader(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), QueryError>> + Send + 'static + use<> {
        let raft = self.raft.clone();
        async move {
            let status = raft.partition_status(partition).await?;
            if status.role != Role::Leader {
                let local = raft.local_node_id();
                // The campaign needs a `TimeoutNow` from another voter; a node without peers
                // elects itself anyway.
                let from = status
                    .leader
                    .filter(|&l| l != local)
                    .or_else(|| raft.inner.discovery.peers().first().map(|p| p.node_id));
                if let Some(from) = from {
                    raft.inner.shards.deliver(vec![Message {
                        partition,
                        from,
                        to: local,
                        term: status.term,
                        body: MessageBody::TimeoutNow,
                    }]);
                }
            }
            raft.wait(partition, timeout, |l, _| match l {
                Some(l) if l.leads() => WaitStep::Done(()),
                _ => WaitStep::Changed,
            })
            .await
        }
    }

    /// The leader of `partition` steps down and asks the most up-to-date voter to campaign,
    /// then waits until another leader is known here, at most `timeout` (`None`:
    /// `leader_wait_timeout_ms`), as Kommander's `StepDownAsync` waits up to 10 s for a
    /// successor. Returns what it saw: the new leader, or [`SteppedDown::NoSuccessorYet`].
    ///
    /// # Errors
    ///
    /// [`QueryError::NotLeader`] on a follower; [`QueryError::QueueFull`] when the node's
    /// timers are all taken; the errors of [`Raft::partition_status`].
    pub fn step_down(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<SteppedDown, QueryError>> + Send + 'static + use<> {
        let raft = self.raft.clone();
        let local = raft.local_node_id();
        let asked = raft.ask(partition, |reply| Request::StepDown { reply });
        async move {
            asked
                .await
                .map_err(|refusal| raft.query_error(refusal, partition))?;
            // Stepped down: the replica no longer names itself, so any leader it names next
            // is another node.
            let successor = raft.wait(partition, timeout, move |l, _| {
                match l.and_then(|l| l.leader) {
                    Some(leader) if leader != local => WaitStep::Done(leader),
                    _ => WaitStep::Changed,
                }
            });
            match successor.await {
                Ok(leader) => Ok(SteppedDown::Succeeded {
                    leader: raft.raft_node(leader),
                }),
                Err(QueryError::Timeout { .. }) => Ok(SteppedDown::NoSuccessorYet),
                Err(error) => Err(error),
            }
        }
    }

    /// Hands leadership of `partition` to `target` and waits until it leads (as seen here),
    /// at most `timeout` (`None`: `leader_wait_timeout_ms`, Kommander's 10 s).
    ///
    /// # Errors
    ///
    /// [`QueryError::NotLeader`] on a follower; [`QueryError::AlreadyLeader`] for this node;
    /// [`QueryError::NotAVoter`]; [`QueryError::Timeout`] when `target` does not lead in time.
    pub fn transfer_leadership(
        &self,
        partition: PartitionId,
        target: NodeId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), QueryError>> + Send + 'static + use<> {
        let raft = self.raft.clone();
        let asked = raft.ask(partition, move |reply| Request::TransferLeadership {
            target,
            reply,
        });
        async move {
            asked
                .await
                .map_err(|refusal| raft.transfer_error(refusal, partition, target))?;
            raft.wait(partition, timeout, move |l, _| match l {
                Some(l) if l.leader == Some(target) => WaitStep::Done(()),
                _ => WaitStep::Changed,
            })
            .await
        }
    }

    /// The leader of `partition` stops sending heartbeats and appends (followers will time
    /// out and elect another leader).
    ///
    /// # Errors
    ///
    /// [`QueryError::NotLeader`] on a follower; the errors of [`Raft::partition_status`].
    pub fn suspend_heartbeats(
        &self,
        partition: PartitionId,
    ) -> impl Future<Output = Result<(), QueryError>> + Send + 'static + use<> {
        self.control(partition, |reply| Request::SuspendHeartbeats { reply })
    }

    /// Resumes heartbeats suspended by [`TestHooks::suspend_heartbeats`].
    ///
    /// # Errors
    ///
    /// As [`TestHooks::suspend_heartbeats`].
    pub fn resume_heartbeats(
        &self,
        partition: PartitionId,
    ) -> impl Future<Output = Result<(), QueryError>> + Send + 'static + use<> {
        self.control(partition, |reply| Request::ResumeHeartbeats { reply })
    }

    fn control<F: FnOnce(Reply<()>) -> Request>(
        &self,
        partition: PartitionId,
        make: F,
    ) -> impl Future<Output = Result<(), QueryError>> + Send + 'static + use<F> {
        let raft = self.raft.clone();
        let asked = raft.ask(partition, make);
        async move {
            asked
                .await
                .map_err(|refusal| raft.query_error(refusal, partition))
        }
    }
}
