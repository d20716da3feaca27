//! Leaving the cluster and removing a member (Kommander's `LeaveCluster` and its coordinator's
//! `RemoveMember`; decision 0004 point 8).
//!
//! Both ask partition 0's leader for a roster change (`leader_call.rs`: this node's own
//! partition 0 first, which names the leader, then the leader by a membership call). A voter
//! that must go is made *leaving* first: it stops voting on partition 0 and every partition's
//! leader takes it out (one that leads a partition hands leadership over first); it stays a
//! learner of partition 0 meanwhile, so it learns of it. Partition 0's leader removes a
//! leaving member from the roster once every partition let it go, which is what
//! [`Raft::leave_cluster`] waits for. A removed node never sees its own removal commit (its
//! leaders stop replicating to it as soon as they append it), so the leaving node asks the
//! leader for the roster again (a leave of a leaving member changes nothing: the answer is the
//! current roster) every `membership.call_retry_interval_ms`.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::core::NodeId;
use crate::node::error::MembershipError;
use crate::shard::membership::{MemberRole, Roster, RosterChange};

use super::Raft;
use super::leader_call::{CallFailed, Target};
use super::timer::{TimerError, race};

impl Raft {
    /// Takes this node out of the cluster (Kommander's `LeaveCluster`), then shuts it down:
    /// asks partition 0's leader to make it leaving (this node's own partition 0 when it
    /// leads it, else by a membership call following the leader hints); every partition it
    /// leads hands leadership over, and every partition's leader takes it out; once partition
    /// 0's leader removed it from the roster (every partition let it go), the node shuts
    /// down ([`Raft::shutdown`]) and the call returns. A node that is not in the roster shuts
    /// down at once.
    ///
    /// Waits at most `timeout` (`None`: the node's `join_timeout_ms`, 60 s by default, which
    /// bounds the membership lifecycle calls); the node keeps running when it fails.
    ///
    /// # Errors
    ///
    /// [`MembershipError::InsufficientVoters`] for the last voter (nothing changes);
    /// [`MembershipError::Timeout`] when the leader could not be reached, or did not remove
    /// this node, within the limit (it may be leaving: call again to finish);
    /// [`MembershipError::RestoreInProgress`] before [`Raft::join_cluster`] opened partition
    /// 0 here; [`MembershipError::Invalid`] when partition 0's leader refused the change or
    /// the transport does not carry membership calls (and this node does not lead partition
    /// 0); [`MembershipError::QueueFull`] (the node's timers);
    /// [`MembershipError::Fatal`] when the node stopped.
    pub fn leave_cluster(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), MembershipError>> + Send + 'static + use<> {
        let this = self.clone();
        let limit = timeout.unwrap_or(Duration::from_millis(self.inner.config.join_timeout_ms));
        let started = Instant::now();
        let deadline = self.membership_deadline(limit);
        async move {
            let deadline = deadline?;
            let me = this.local_node_id();
            let leave = async {
                let targets = this.leader_targets();
                let leaving =
                    |r: &Roster| r.member(me).is_none_or(|m| m.role == MemberRole::Leaving);
                let mut roster = this
                    .ask_leader(RosterChange::Leave { node: me }, &targets, leaving)
                    .await
                    .map_err(membership_error)?;
                // Until partition 0's leader removed it: asked again (a leave of a leaving
                // member changes nothing), after a pause when it was not the first time.
                let gone = |r: &Roster| r.member(me).is_none();
                let mut asked = false;
                while !gone(&roster) {
                    if asked {
                        this.pause().await?;
                    }
                    asked = true;
                    roster = this
                        .ask_leader(RosterChange::Leave { node: me }, &targets, gone)
                        .await
                        .map_err(membership_error)?;
                }
                Ok(())
            };
            race(deadline, leave)
                .await
                .unwrap_or(Err(MembershipError::Timeout {
                    waited: started.elapsed(),
                }))?;
            this.shutdown().await;
            Ok(())
        }
    }

    /// Removes `node` from the cluster (a dead node, typically; Kommander's coordinator
    /// `RemoveMember`), through partition 0's leader: this node's own partition 0 when it
    /// leads it, else by a membership call following the leader hints. Returns the roster
    /// version once partition 0 committed the change. A learner or a leaving member is then
    /// out of the roster; a voter is *leaving*: every partition's leader takes it out, and
    /// partition 0's leader removes it from the roster once every partition let it go
    /// ([`Raft::membership`] shows it). A node that is not a member changes nothing (the
    /// current version is returned). To take this node itself out and stop it, use
    /// [`Raft::leave_cluster`].
    ///
    /// Waits at most `timeout` (`None`: the node's `proposal_timeout_ms`, as for every write).
    ///
    /// # Errors
    ///
    /// [`MembershipError::InsufficientVoters`] for the last voter (nothing changes);
    /// [`MembershipError::Timeout`] when no leader carried it out within the limit (it may
    /// still commit); [`MembershipError::RestoreInProgress`] before [`Raft::join_cluster`]
    /// opened partition 0 here; [`MembershipError::Invalid`] when partition 0's leader refused
    /// the change or the transport does not carry membership calls (and this node does not
    /// lead partition 0); [`MembershipError::QueueFull`] (the node's timers);
    /// [`MembershipError::Fatal`] when the node stopped.
    pub fn remove_member(
        &self,
        node: NodeId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<u64, MembershipError>> + Send + 'static + use<> {
        let this = self.clone();
        let limit = self.proposal_timeout(timeout);
        let started = Instant::now();
        let deadline = self.membership_deadline(limit);
        async move {
            let deadline = deadline?;
            let remove = async {
                let targets = this.leader_targets();
                let roster = this
                    .ask_leader(RosterChange::Remove { node }, &targets, |r| {
                        r.member(node).is_none_or(|m| m.role == MemberRole::Leaving)
                    })
                    .await
                    .map_err(membership_error)?;
                Ok(roster.version())
            };
            race(deadline, remove)
                .await
                .unwrap_or(Err(MembershipError::Timeout {
                    waited: started.elapsed(),
                }))
        }
    }

    /// Where a member asks partition 0's leader: its own partition 0 (which names the leader),
    /// then the other members it knows an endpoint of.
    fn leader_targets(&self) -> Vec<Target> {
        let me = self.local_node_id();
        let mut targets = vec![Target::Local];
        if let Some(roster) = self.membership() {
            targets.extend(roster.peers_of(me).into_values().map(Target::Endpoint));
        }
        targets
    }

    /// The deadline of a membership call, refusing it before anything is done when partition
    /// 0 is not open here or the timer is full.
    fn membership_deadline(
        &self,
        limit: Duration,
    ) -> Result<Option<super::timer::Deadline>, MembershipError> {
        if self.inner.stopping() {
            return Err(MembershipError::Fatal(self.inner.stopped_error()));
        }
        if self.membership().is_none() {
            return Err(MembershipError::RestoreInProgress);
        }
        self.inner
            .timer
            .deadline(Some(limit))
            .map_err(|error| match error {
                TimerError::Full => MembershipError::QueueFull,
                TimerError::Stopped => MembershipError::Fatal(self.inner.stopped_error()),
            })
    }

    /// Waits `membership.call_retry_interval_ms`.
    async fn pause(&self) -> Result<(), MembershipError> {
        let retry = self.inner.config.membership.call_retry_interval();
        match self.inner.timer.at(Instant::now() + retry) {
            Ok(pause) => {
                pause.await;
                Ok(())
            }
            Err(TimerError::Full) => Err(MembershipError::QueueFull),
            Err(TimerError::Stopped) => Err(MembershipError::Fatal(self.inner.stopped_error())),
        }
    }
}

fn membership_error(failed: CallFailed) -> MembershipError {
    match failed {
        CallFailed::Refused(crate::core::Status::InsufficientVoters) => {
            MembershipError::InsufficientVoters
        }
        CallFailed::Refused(status) => MembershipError::Invalid {
            reason: format!("refused by partition 0's leader: {status}"),
        },
        CallFailed::Unsendable(reason) => MembershipError::Invalid { reason },
        CallFailed::QueueFull => MembershipError::QueueFull,
        CallFailed::Fatal(fatal) => MembershipError::Fatal(fatal),
    }
}
