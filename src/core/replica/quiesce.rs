//! Quiescence (decision 0007): an idle, fully replicated partition stops its timers. The
//! leader quiesces in two steps (quiesce heartbeats of a round of their own, then every other
//! member's answer); a follower quiesces on a quiesce heartbeat its log matches. A quiesced
//! replica does nothing on `tick`; what wakes it is here too. Terms, votes, the log and the
//! commit rule are untouched: quiescence only skips timers.

use super::*;

/// Where a replica stands with quiescence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Quiescence {
    /// Timers run. On a leader: the ticks in a row it could have quiesced.
    Active { idle_ticks: u32 },
    /// A leader's quiesce heartbeats of read round `round` are out: it quiesces once every
    /// other member answered one of that round (or a later one).
    Quiescing { round: u64 },
    /// No timer runs.
    Quiesced,
}

impl Quiescence {
    pub(super) const ACTIVE: Self = Self::Active { idle_ticks: 0 };
}

impl Replica {
    /// Whether this replica is quiesced: its `tick` does nothing until something wakes it
    /// (reported in [`Ready::quiescence`]).
    #[must_use]
    pub fn is_quiesced(&self) -> bool {
        self.quiescence == Quiescence::Quiesced
    }

    /// The runtime's verdict that the node of the leader this quiesced follower follows is
    /// dead (it sent nothing for an election timeout): the follower wakes out of its lease
    /// (it grants pre-votes) and campaigns when its randomized election timeout runs out, as
    /// usual. Nothing happens to a replica that is not quiesced (its own timers run) or that
    /// leads (every input wakes a leader by itself).
    pub fn leader_node_dead(&mut self) {
        if self.role == Role::Leader || !self.is_quiesced() {
            return;
        }
        self.quiescence = Quiescence::ACTIVE;
        self.election_elapsed = self.config.election_timeout_ticks_min;
    }

    /// Gives back the capacity of the buffers a quiesced replica leaves empty (the queues of
    /// Readies awaiting durability, votes, reads, proposals, in-flight appends, the outputs
    /// a Ready takes: `Replica::ready_into` leaves them empty, their capacity kept) and trims the
    /// in-memory log's to its entries: an idle partition keeps what it holds, not what its
    /// last burst of work needed (issue 15: a few hundred bytes per idle replica).
    pub(super) fn release_idle_capacity(&mut self) {
        self.log.shrink_to_fit();
        self.checkpoints.shrink_to_fit();
        self.votes.shrink_to_fit();
        self.pending_ops.shrink_to_fit();
        self.reads.shrink_to_fit();
        self.scratch.shrink_to_fit();
        self.pending_persist.shrink_to_fit();
        self.pending_terms.shrink_to_fit();
        for (_, progress) in &mut self.progress {
            progress.inflights.shrink_to_fit();
        }
        self.messages.shrink_to_fit();
        self.persisted_messages.shrink_to_fit();
        self.read_states.shrink_to_fit();
        self.outcomes.shrink_to_fit();
        self.snapshot_required.shrink_to_fit();
        self.snapshot_messages.shrink_to_fit();
    }

    /// Bytes of room the buffers that `release_idle_capacity` trims hold beyond their
    /// contents (introspection for tests: 0 once the replica quiesced).
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn spare_capacity_bytes(&self) -> usize {
        fn spare<T>(capacity: usize, len: usize) -> usize {
            (capacity - len) * std::mem::size_of::<T>()
        }
        self.log.spare_capacity_bytes()
            + spare::<LogIndex>(self.checkpoints.capacity(), self.checkpoints.len())
            + spare::<(NodeId, bool)>(self.votes.capacity(), self.votes.len())
            + spare::<PendingOp>(self.pending_ops.capacity(), self.pending_ops.len())
            + spare::<PendingRead>(self.reads.capacity(), self.reads.len())
            + spare::<LogIndex>(self.scratch.capacity(), self.scratch.len())
            + spare::<(u64, LogIndex, Term)>(
                self.pending_persist.capacity(),
                self.pending_persist.len(),
            )
            + spare::<(u64, Term)>(self.pending_terms.capacity(), self.pending_terms.len())
            + spare::<(NodeId, Progress)>(self.progress.capacity(), self.progress.len())
            + spare::<Message>(self.messages.capacity(), self.messages.len())
            + spare::<Message>(
                self.persisted_messages.capacity(),
                self.persisted_messages.len(),
            )
            + spare::<ReadState>(self.read_states.capacity(), self.read_states.len())
            + spare::<Outcome>(self.outcomes.capacity(), self.outcomes.len())
            + spare::<NodeId>(
                self.snapshot_required.capacity(),
                self.snapshot_required.len(),
            )
            + spare::<Message>(
                self.snapshot_messages.capacity(),
                self.snapshot_messages.len(),
            )
            + self
                .progress
                .iter()
                .map(|(_, progress)| progress.inflights.spare_capacity_bytes())
                .sum::<usize>()
    }

    /// The keep-alive a quiesced leader's runtime sends `to` every heartbeat interval, in
    /// place of every quiesced partition's heartbeats: this partition's quiesce heartbeat
    /// (`to`'s replica stays quiesced and answers; the answer wakes nothing). `None` unless
    /// this replica leads, is quiesced and `to` is another member.
    #[must_use]
    pub fn keep_alive(&self, to: NodeId) -> Option<Message> {
        if self.role != Role::Leader || !self.is_quiesced() {
            return None;
        }
        let peer = self.peer(to)?;
        Some(Message {
            partition: self.config.partition,
            from: self.config.id,
            to,
            term: self.term,
            body: MessageBody::Heartbeat {
                commit: peer.match_index.min(self.log.committed),
                read_round: self.read_round,
                quiesce: true,
            },
        })
    }

    /// Whether the leader is idle and every member caught up (decision 0007, "When a leader
    /// quiesces").
    fn leader_may_quiesce(&self) -> bool {
        let last = self.log.last_index();
        // The replica's own fields first: a leader taking writes fails one of them, before
        // the lookups in its log and its followers' progress (cache misses at many active
        // partitions).
        self.config.quiesce_after_ticks > 0
            && self.role == Role::Leader
            && self.log.committed == last
            && self.log.persisted >= last
            && self.reads.is_empty()
            && self.transferee.is_none()
            && !self.heartbeats_suspended
            && self.pending_ops.is_empty()
            && !self.configuration_change_pending()
            && self.committed_in_term()
            && self
                .progress
                .iter()
                .all(|(_, p)| p.match_index == last && p.state == ProgressState::Replicate)
    }

    /// The leader's tick of quiescence. Returns whether the rest of the tick runs (not when
    /// quiesced).
    pub(super) fn tick_leader_quiescence(&mut self) -> bool {
        match self.quiescence {
            Quiescence::Quiesced => return false,
            _ if !self.leader_may_quiesce() => self.quiescence = Quiescence::ACTIVE,
            Quiescence::Active { idle_ticks } => {
                let idle_ticks = idle_ticks.saturating_add(1);
                self.quiescence = Quiescence::Active { idle_ticks };
                if idle_ticks >= self.config.quiesce_after_ticks {
                    // A round of its own: only answers to quiesce heartbeats count.
                    self.read_round += 1;
                    self.quiescence = Quiescence::Quiescing {
                        round: self.read_round,
                    };
                    self.heartbeat_elapsed = 0;
                    self.broadcast_heartbeat();
                    self.finish_quiescing();
                }
            }
            Quiescence::Quiescing { .. } => {}
        }
        true
    }

    /// Whether the leader's heartbeats carry the quiesce flag.
    pub(super) fn quiesce_flag(&self) -> bool {
        matches!(
            self.quiescence,
            Quiescence::Quiescing { .. } | Quiescence::Quiesced
        )
    }

    /// A quiescing leader quiesces once every other member answered a quiesce heartbeat, if it
    /// is still idle and caught up.
    pub(super) fn finish_quiescing(&mut self) {
        let Quiescence::Quiescing { round } = self.quiescence else {
            return;
        };
        if !self.leader_may_quiesce() {
            self.quiescence = Quiescence::ACTIVE;
            return;
        }
        if self.progress.iter().all(|(_, p)| p.read_round >= round) {
            self.quiescence = Quiescence::Quiesced;
        }
    }

    /// Something for the leader to do: a quiesced leader wakes (heartbeats everyone, restarts
    /// its check-quorum window with every member counted active), a quiescing or idle one
    /// starts counting its idle ticks again.
    pub(super) fn leader_activity(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let was_quiesced = self.is_quiesced();
        self.quiescence = Quiescence::ACTIVE;
        if was_quiesced {
            self.election_elapsed = 0;
            self.heartbeat_elapsed = 0;
            for (_, p) in &mut self.progress {
                p.recent_active = true;
            }
            if !self.heartbeats_suspended {
                self.broadcast_heartbeat();
            }
        }
    }

    /// A follower's answer to a quiesce heartbeat from the leader it follows: it quiesces when
    /// its log ends at the leader's commit index, an entry of the leader's term (it holds the
    /// leader's whole log); otherwise its timers keep running.
    pub(super) fn follower_quiesce(&mut self, commit: LogIndex) {
        let last = self.log.last_index();
        self.quiescence = if commit == last && self.log.term(last) == Some(self.term) {
            Quiescence::Quiesced
        } else {
            Quiescence::ACTIVE
        };
    }

    /// After a message was stepped on a follower that was quiesced before it (`before`: its
    /// term and leader then): it stays quiesced while it follows the same leader in the same
    /// term and the message was not a leader's message other than a quiesce heartbeat.
    pub(super) fn follower_after_step(
        &mut self,
        from: NodeId,
        before: Option<(Term, Option<NodeId>)>,
        quiesce_heartbeat: bool,
    ) {
        let Some((term, leader)) = before else {
            return;
        };
        if self.role == Role::Leader || !self.is_quiesced() {
            return;
        }
        let same = self.role == Role::Follower && self.term == term && self.leader == leader;
        if !same || (leader == Some(from) && !quiesce_heartbeat) {
            self.quiescence = Quiescence::ACTIVE;
            self.election_elapsed = 0;
        }
    }
}
