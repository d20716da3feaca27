//! Handing leadership over: transfer to a chosen voter (`TimeoutNow`), step-down, and the
//! heartbeat-suspension test hooks.

use super::*;

impl Replica {
    /// Starts a leadership transfer to `target`: once the target's log matches, it is told to
    /// campaign immediately. Proposals are refused until the transfer ends (success, or an
    /// election timeout without one).
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`], [`Status::LeaderAlreadyElected`] for a transfer to self,
    /// [`Status::Errored`] when `target` is not a voter.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), Status> {
        if self.role != Role::Leader {
            return Err(Status::NodeIsNotLeader);
        }
        if target == self.config.id {
            return Err(Status::LeaderAlreadyElected);
        }
        if !self.configuration().is_voter(target) {
            return Err(Status::Errored);
        }
        self.leader_activity();
        self.transferee = Some(target);
        self.transfer_elapsed = 0;
        let last = self.log.last_index();
        if self.peer(target).is_some_and(|p| p.match_index == last) {
            self.send(target, MessageBody::TimeoutNow);
        }
        Ok(())
    }

    /// Steps down: becomes a follower in the same term and asks the most up-to-date voter to
    /// campaign immediately.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`].
    pub fn step_down(&mut self) -> Result<(), Status> {
        if self.role != Role::Leader {
            return Err(Status::NodeIsNotLeader);
        }
        let successor = self
            .progress
            .iter()
            .filter(|(_, p)| !p.learner)
            .max_by_key(|(n, p)| (p.match_index, std::cmp::Reverse(*n)))
            .map(|(n, _)| *n);
        self.become_follower(self.term, None);
        if let Some(successor) = successor {
            self.send(successor, MessageBody::TimeoutNow);
        }
        Ok(())
    }

    /// Test hook: the leader stops sending heartbeats and appends (followers will elect
    /// another leader; with check-quorum this leader steps down).
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`].
    pub fn suspend_heartbeats(&mut self) -> Result<(), Status> {
        if self.role != Role::Leader {
            return Err(Status::NodeIsNotLeader);
        }
        self.leader_activity();
        self.heartbeats_suspended = true;
        Ok(())
    }

    /// Test hook: resumes heartbeats and sends one immediately.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`].
    pub fn resume_heartbeats(&mut self) -> Result<(), Status> {
        if self.role != Role::Leader {
            return Err(Status::NodeIsNotLeader);
        }
        self.leader_activity();
        self.heartbeats_suspended = false;
        self.broadcast_heartbeat();
        Ok(())
    }
}
