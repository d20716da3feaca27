//! Test hooks (Kommander's `ForceLeaderForTestingAsync`, `StepDownAsync`,
//! `TransferLeadershipAsync`, `SuspendHeartbeatsAsync`, `ResumeHeartbeatsAsync`), reached
//! through [`Raft::testing`] only.

use std::future::Future;
use std::time::Duration;

use crate::core::{Message, MessageBody, NodeId, PartitionId, Role};
use crate::node::error::QueryError;
use crate::shard::{Reply, Request};

use super::Raft;
use super::wait::WaitStep;

/// Leadership controls for deterministic tests and fault injection: [`Raft::testing`].
#[derive(Clone, Debug)]
pub struct TestHooks {
    pub(super) raft: Raft,
}

impl TestHooks {
    /// Makes this node campaign for `partition` at once (as if its leader had handed over
    /// with `TimeoutNow`) and waits until it leads with its no-op committed, at most
    /// `timeout` (`None`: no limit). Already leading: returns at once.
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

    /// The leader of `partition` steps down and asks the most up-to-date voter to campaign.
    ///
    /// # Errors
    ///
    /// [`QueryError::NotLeader`] on a follower; the errors of [`Raft::partition_status`].
    pub fn step_down(
        &self,
        partition: PartitionId,
    ) -> impl Future<Output = Result<(), QueryError>> + Send + 'static + use<> {
        self.control(partition, |reply| Request::StepDown { reply })
    }

    /// Hands leadership of `partition` to `target` and waits until it leads (as seen here),
    /// at most `timeout` (`None`: no limit).
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
    /// As [`TestHooks::step_down`].
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
    /// As [`TestHooks::step_down`].
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
