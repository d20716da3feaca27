//! Test hooks (Kommander's `ForceLeaderForTestingAsync`, `StepDownAsync`,
//! `TransferLeadershipAsync`, `SuspendHeartbeatsAsync`, `ResumeHeartbeatsAsync`), reached
//! through [`Raft::testing`] only.

use std::time::{Duration, Instant};

use crate::core::{Message, MessageBody, NodeId, PartitionId, Role, Status};
use crate::node::events::LeaderView;
use crate::shard::Request;

use super::Raft;

/// Leadership controls for deterministic tests and fault injection: [`Raft::testing`].
#[derive(Clone, Copy, Debug)]
pub struct TestHooks<'a> {
    pub(super) raft: &'a Raft,
}

impl TestHooks<'_> {
    /// Makes this node campaign for `partition` at once (as if its leader had handed over
    /// with `TimeoutNow`) and waits until it leads. Already leading: returns at once.
    ///
    /// # Errors
    ///
    /// `ProposalTimeout` when it does not lead within `timeout` (its log may be behind);
    /// the refusals of [`Raft::partition_status`].
    pub async fn force_leader(
        &self,
        partition: PartitionId,
        timeout: Duration,
    ) -> Result<(), Status> {
        let raft = self.raft;
        let status = raft.partition_status(partition).await?;
        if status.role == Role::Leader {
            return Ok(());
        }
        let local = raft.local_node_id();
        let from = status
            .leader
            .filter(|&l| l != local)
            .or_else(|| raft.inner.discovery.peers().first().map(|p| p.node_id))
            .ok_or(Status::Errored)?;
        raft.inner.runtime.deliver(vec![Message {
            partition,
            from,
            to: local,
            term: status.term,
            body: MessageBody::TimeoutNow,
        }]);
        self.wait_until(partition, timeout, |v| v.role == Role::Leader)
            .await
    }

    /// The leader of `partition` steps down and asks the most up-to-date voter to campaign.
    ///
    /// # Errors
    ///
    /// `NodeIsNotLeader` on a follower; the refusals of [`Raft::partition_status`].
    pub async fn step_down(&self, partition: PartitionId) -> Result<(), Status> {
        self.raft
            .ask(partition, |reply| Request::StepDown { reply })
            .await
    }

    /// Hands leadership of `partition` to `target` and waits until it leads (as seen here).
    ///
    /// # Errors
    ///
    /// `NodeIsNotLeader` on a follower; `LeaderAlreadyElected` for this node;
    /// `Errored` for a target that is not a voter; `ProposalTimeout` when `target` does not
    /// lead within `timeout`.
    pub async fn transfer_leadership(
        &self,
        partition: PartitionId,
        target: NodeId,
        timeout: Duration,
    ) -> Result<(), Status> {
        self.raft
            .ask(partition, |reply| Request::TransferLeadership {
                target,
                reply,
            })
            .await?;
        self.wait_until(partition, timeout, |v| v.leader == Some(target))
            .await
    }

    /// The leader of `partition` stops sending heartbeats and appends (followers will time
    /// out and elect another leader).
    ///
    /// # Errors
    ///
    /// `NodeIsNotLeader` on a follower; the refusals of [`Raft::partition_status`].
    pub async fn suspend_heartbeats(&self, partition: PartitionId) -> Result<(), Status> {
        self.raft
            .ask(partition, |reply| Request::SuspendHeartbeats { reply })
            .await
    }

    /// Resumes heartbeats suspended by [`TestHooks::suspend_heartbeats`].
    ///
    /// # Errors
    ///
    /// As [`TestHooks::suspend_heartbeats`].
    pub async fn resume_heartbeats(&self, partition: PartitionId) -> Result<(), Status> {
        self.raft
            .ask(partition, |reply| Request::ResumeHeartbeats { reply })
            .await
    }

    async fn wait_until(
        &self,
        partition: PartitionId,
        timeout: Duration,
        done: impl Fn(&LeaderView) -> bool,
    ) -> Result<(), Status> {
        let deadline = Instant::now() + timeout;
        let poll = self.raft.inner.config.tick_interval();
        loop {
            if self.raft.leader_view(partition).is_some_and(|v| done(&v)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Status::ProposalTimeout);
            }
            self.raft.inner.timer.sleep(poll).await;
        }
    }
}
