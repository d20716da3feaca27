//! Membership (Kommander's `GetMembership`, `LocalRole`, and the roster changes of its
//! coordinator): the roster of partition 0 as this node has committed it, and changes sent to
//! partition 0's leader. Each partition's voters then follow the roster through the partition's
//! own log (decision 0004): [`Raft::change_membership`] returns once partition 0 committed the
//! change; the next change is accepted once every partition followed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::core::{PartitionId, Status};
use crate::node::error::{MembershipError, QueryError};
use crate::shard::membership::{MemberRole, Roster, RosterChange, RosterError};
use crate::shard::{PartitionConfiguration, Request, SYSTEM_PARTITION};

use super::Raft;
use super::refusal::SHARD_GONE;
use super::timer::{Elapsed, TimerError, race};

impl Raft {
    /// The committed roster as this node knows it (Kommander's `GetMembership`): a snapshot,
    /// `None` until partition 0 is open here ([`Raft::join_cluster`]). Its version grows by one
    /// per change; [`RaftEvent::MembershipChanged`](crate::shard::RaftEvent) tells when.
    #[must_use]
    pub fn membership(&self) -> Option<Arc<Roster>> {
        self.inner.shards.membership().roster()
    }

    /// This node's role in the roster (Kommander's `LocalRole`): `None` while no roster is
    /// known or when this node is not a member.
    #[must_use]
    pub fn local_role(&self) -> Option<MemberRole> {
        let roster = self.membership()?;
        roster.member(self.local_node_id()).map(|m| m.role)
    }

    /// `partition`'s voters and learners as its replica on this node knows them: the
    /// configuration in force (the last in its log) and the last committed one. Every
    /// partition's leader moves its partition's configuration towards the roster, one voter at
    /// a time.
    ///
    /// # Errors
    ///
    /// As [`Raft::partition_status`].
    pub fn partition_configuration(
        &self,
        partition: PartitionId,
    ) -> impl Future<Output = Result<PartitionConfiguration, QueryError>> + Send + 'static + use<>
    {
        let asked = self.ask(partition, |reply| Request::Configuration { reply });
        let this = self.clone();
        async move {
            asked
                .await
                .map_err(|refusal| this.query_error(refusal, partition))
        }
    }

    /// Changes the roster on partition 0's leader, which must be this node (a follower refuses
    /// with [`MembershipError::NotLeader`] naming the leader), against `expected_version` when
    /// given, waiting at most `timeout` (`None`: the node's `proposal_timeout_ms`, as for
    /// every write). Returns the roster version once partition 0 committed the change; the other
    /// partitions follow it on their own. A change that changes nothing (a retry of one that
    /// committed) returns at once.
    ///
    /// # Errors
    ///
    /// Checked against this node's roster first, then on the leader:
    /// [`MembershipError::Stale`], [`MembershipError::InsufficientVoters`],
    /// [`MembershipError::MemberNotFound`], [`MembershipError::Invalid`];
    /// [`MembershipError::ConcurrentChange`] while another change is in flight or a partition
    /// has not followed the last one; [`MembershipError::NotLeader`],
    /// [`MembershipError::QueueFull`], [`MembershipError::RestoreInProgress`],
    /// [`MembershipError::Timeout`] and [`MembershipError::LeadershipLost`] (both
    /// indeterminate: the change may still commit), [`MembershipError::Fatal`].
    pub fn change_membership(
        &self,
        change: RosterChange,
        expected_version: Option<u64>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<u64, MembershipError>> + Send + 'static + use<> {
        let this = self.clone();
        let checked = match self.membership() {
            Some(roster) => roster
                .change(&change, expected_version)
                .map(drop)
                .map_err(roster_error),
            None => Err(MembershipError::RestoreInProgress),
        };
        let waited = self.proposal_timeout(timeout);
        let sent = checked.and_then(|()| match self.inner.timer.deadline(Some(waited)) {
            Ok(deadline) => {
                let (reply, answer) = oneshot::channel();
                let request = Request::ChangeMembership {
                    change,
                    expected_version,
                    ticket: crate::core::Ticket(self.inner.hlc.now().packed()),
                    reply,
                };
                self.inner
                    .shards
                    .send(SYSTEM_PARTITION, request)
                    .map(|()| (deadline, answer))
                    .map_err(|refusal| this.membership_error(refusal))
            }
            Err(TimerError::Full) => Err(MembershipError::QueueFull),
            Err(TimerError::Stopped) => Err(MembershipError::Fatal(self.inner.stopped_error())),
        });
        async move {
            let (deadline, answer) = sent?;
            let answer = race(deadline, answer)
                .await
                .map_err(|Elapsed| MembershipError::Timeout { waited })?
                .unwrap_or(Err(SHARD_GONE));
            match answer {
                Ok(outcome) if outcome.status == Status::Success => {
                    // Partition 0's shard published the roster before it answered.
                    Ok(this.membership().map_or(0, |r| r.version()))
                }
                Ok(_) => Err(MembershipError::LeadershipLost),
                Err(refusal) => Err(this.membership_error(refusal)),
            }
        }
    }
}

fn roster_error(error: RosterError) -> MembershipError {
    match error {
        RosterError::Stale { current, .. } => MembershipError::Stale { current },
        RosterError::InsufficientVoters => MembershipError::InsufficientVoters,
        RosterError::MemberNotFound(node) => MembershipError::MemberNotFound(node),
        other => MembershipError::Invalid {
            reason: other.to_string(),
        },
    }
}
