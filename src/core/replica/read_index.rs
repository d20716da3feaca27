//! ReadIndex (thesis §6.4): a linearizable read point, confirmed by a heartbeat round once the
//! leader has committed an entry of its term; followers forward requests to the leader.

use super::*;

/// A ReadIndex request on the leader.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingRead {
    pub(super) context: u64,
    /// The follower that forwarded it (`None`: local caller).
    pub(super) from: Option<NodeId>,
    pub(super) index: LogIndex,
    /// Heartbeat round that confirms it (0: not yet assigned, waiting for a current-term commit).
    pub(super) round: u64,
}

impl Replica {
    /// Requests a linearizable read point. The answer arrives as a [`ReadState`] carrying
    /// `context`: serve the read once the applied index reaches it. On a follower the request
    /// is forwarded to the leader.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`] when no leader is known, [`Status::ProposalQueueFull`] when
    /// `read_index_pending_max` reads are pending.
    pub fn read_index(&mut self, context: u64) -> Result<(), Status> {
        match (self.role, self.leader) {
            (Role::Leader, _) => self.queue_read(context, None),
            (_, Some(leader)) => {
                self.send(leader, MessageBody::ReadIndexRequest { context });
                Ok(())
            }
            _ => Err(Status::NodeIsNotLeader),
        }
    }

    /// Reads get rounds in arrival order, so unassigned ones are at the back of the queue.
    pub(super) fn has_unassigned_reads(&self) -> bool {
        self.committed_in_term() && self.reads.back().is_some_and(|r| r.round == 0)
    }

    pub(super) fn queue_read(&mut self, context: u64, from: Option<NodeId>) -> Result<(), Status> {
        if self.reads.len() >= self.config.read_index_pending_max {
            return Err(Status::ProposalQueueFull);
        }
        // A quiesced leader confirms a read with a round like any other: it wakes first.
        self.leader_activity();
        self.reads.push_back(PendingRead {
            context,
            from,
            index: LogIndex::ZERO,
            round: 0,
        });
        if self.is_sole_voter() {
            self.assign_read_rounds();
        }
        Ok(())
    }

    /// Gives every unassigned read the current commit index and a new heartbeat round, once
    /// this leader has committed an entry of its own term (before that the commit index may
    /// be behind what a previous leader acknowledged).
    pub(super) fn assign_read_rounds(&mut self) {
        if !self.has_unassigned_reads() {
            return;
        }
        self.read_round += 1;
        let (round, index) = (self.read_round, self.log.committed);
        for r in self.reads.iter_mut().filter(|r| r.round == 0) {
            r.round = round;
            r.index = index;
        }
        if self.is_sole_voter() {
            self.confirm_reads();
        } else if !self.heartbeats_suspended {
            self.broadcast_heartbeat();
        }
    }

    pub(super) fn confirm_reads(&mut self) {
        while let Some(read) = self.reads.front().copied() {
            if read.round == 0 {
                break;
            }
            let own = usize::from(self.configuration().is_voter(self.config.id));
            let acks = own
                + self
                    .progress
                    .iter()
                    .filter(|(_, p)| !p.learner && p.read_round >= read.round)
                    .count();
            if acks < self.quorum() {
                break;
            }
            self.reads.pop_front();
            match read.from {
                None => self.read_states.push(ReadState {
                    context: read.context,
                    result: Ok(read.index),
                }),
                Some(from) => self.send(
                    from,
                    MessageBody::ReadIndexResponse {
                        context: read.context,
                        index: read.index,
                        ok: true,
                    },
                ),
            }
        }
    }
}
