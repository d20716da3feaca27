//! Inputs from time and the network: `tick` drives timeouts, `step` applies the term rules
//! (§5.1, with the leader lease of pre-vote and check-quorum) and hands each message to the
//! role that handles it.

use super::election::VoteAsked;
use super::*;

impl Replica {
    /// Advances logical time by one tick: election timeouts, heartbeats, check-quorum,
    /// quiescence. A quiesced replica does nothing.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
            return;
        }
        if self.is_quiesced() {
            return;
        }
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.randomized_timeout && self.can_campaign() {
            self.campaign_pre_vote();
        }
    }

    /// How many of the next ticks would only count: those before a follower's (or
    /// candidate's) election timer runs out, all of them when its replica may not campaign or
    /// the replica quiesced (`u32::MAX`). A leader's ticks all do something (heartbeats,
    /// check-quorum, quiescence): 0. A host that ticks many replicas visits a follower once
    /// this many ticks have passed rather than at every tick, and hands it the ticks it
    /// skipped with [`Replica::tick_by`] before anything else reaches it.
    #[must_use]
    pub fn idle_ticks(&self) -> u32 {
        if self.is_quiesced() {
            return u32::MAX;
        }
        if self.role == Role::Leader {
            return 0;
        }
        // The k-th tick from now brings the timer to `election_elapsed + k`, and campaigns
        // once that reaches `randomized_timeout`.
        match self
            .randomized_timeout
            .saturating_sub(self.election_elapsed)
            .saturating_sub(1)
        {
            0 if !self.can_campaign() => u32::MAX,
            idle => idle,
        }
    }

    /// `ticks` ticks at once: the same as [`Replica::tick`] called `ticks` times, at the cost
    /// of the ones that act ([`Replica::idle_ticks`] counted in one step).
    pub fn tick_by(&mut self, mut ticks: u64) {
        while ticks > 0 {
            let idle = self.idle_ticks();
            let counted = u32::try_from(ticks).map_or(idle, |ticks| ticks.min(idle));
            if counted > 0 && !self.is_quiesced() {
                self.election_elapsed = self.election_elapsed.saturating_add(counted);
            }
            if idle == u32::MAX {
                // No tick acts: the rest only count too.
                return;
            }
            ticks -= u64::from(counted);
            if ticks > 0 {
                self.tick();
                ticks -= 1;
            }
        }
    }

    /// Steps a message received from the network.
    ///
    /// # Errors
    ///
    /// The message is ignored and nothing changes when it is for another partition
    /// ([`Status::PartitionMoved`]), from a non-member or from ourselves
    /// ([`Status::LogsFromAnotherLeader`]), or malformed or absurd ([`Status::Errored`]).
    ///
    /// A quiesced leader wakes on any message but a `HeartbeatResponse` (which answers its
    /// quiesce heartbeats); a quiesced follower on a message of its leader other than a
    /// quiesce heartbeat, or one after which it no longer follows that leader in that term.
    pub fn step(&mut self, m: Message) -> Result<(), Status> {
        self.check_message(&m)?;
        let from = m.from;
        let quiesce_heartbeat = matches!(m.body, MessageBody::Heartbeat { quiesce: true, .. });
        if !matches!(m.body, MessageBody::HeartbeatResponse { .. }) {
            self.leader_activity();
        }
        let before =
            (self.is_quiesced() && self.role != Role::Leader).then_some((self.term, self.leader));
        self.step_checked(m);
        self.follower_after_step(from, before, quiesce_heartbeat);
        Ok(())
    }

    /// Steps a message that passed `check_message`.
    fn step_checked(&mut self, m: Message) {
        if m.term > self.term {
            // A leader we still believe in that campaigns has lost its leadership (restart,
            // step-down): its own lease does not stand in its way.
            let leased = self.in_lease() && self.leader != Some(m.from);
            match &m.body {
                MessageBody::PreVoteRequest { .. } if leased => return,
                // Only a voter this replica knows may cut its lease short (a transfer).
                MessageBody::VoteRequest { transfer, .. }
                    if self.config.check_quorum
                        && leased
                        && (!transfer || !self.configuration().is_voter(m.from)) =>
                {
                    return;
                }
                MessageBody::PreVoteRequest { .. } => {}
                MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::AppendRequest { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::SnapshotChunk { .. } => {
                    self.become_follower(m.term, Some(m.from));
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            match m.body {
                MessageBody::AppendRequest { .. } | MessageBody::Heartbeat { .. } => {
                    // Tell the stale leader about the newer term so it steps down.
                    self.send(
                        m.from,
                        MessageBody::AppendResponse {
                            success: false,
                            index: LogIndex::ZERO,
                            hint_index: LogIndex::ZERO,
                            hint_term: Term::ZERO,
                        },
                    );
                }
                MessageBody::PreVoteRequest { .. } => {
                    self.send(m.from, MessageBody::PreVoteResponse { granted: false });
                }
                MessageBody::SnapshotChunk(chunk) => {
                    // The stale leader learns the newer term and ends its transfer.
                    self.send(
                        m.from,
                        MessageBody::SnapshotAck {
                            session: chunk.session,
                            seq: chunk.seq,
                            outcome: SnapshotOutcome::Refused,
                        },
                    );
                }
                _ => {}
            }
            return;
        }
        let from = m.from;
        let term = m.term;
        match m.body {
            MessageBody::PreVoteRequest {
                last_log_index,
                last_log_term,
                configuration_version,
            }
            | MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                configuration_version,
                ..
            } => {
                let pre_vote = matches!(m.body, MessageBody::PreVoteRequest { .. });
                self.handle_vote_request(
                    from,
                    term,
                    VoteAsked {
                        last_log_index,
                        last_log_term,
                        configuration_version,
                        pre_vote,
                    },
                );
            }
            MessageBody::PreVoteResponse { granted } => {
                // Grants carry the term we would campaign in, refusals the voter's own term.
                let answers_us = if granted {
                    term == self.term.next()
                } else {
                    term == self.term
                };
                if self.role == Role::PreCandidate && answers_us {
                    self.record_vote(from, granted, true);
                }
            }
            MessageBody::VoteResponse { granted } => {
                if self.role == Role::Candidate {
                    self.record_vote(from, granted, false);
                }
            }
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => self.handle_append(from, prev_log_index, prev_log_term, entries, commit),
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
            } => self.handle_append_response(from, success, index, hint_index, hint_term),
            MessageBody::Heartbeat {
                commit,
                read_round,
                quiesce,
            } => {
                self.handle_heartbeat(from, commit, read_round, quiesce);
            }
            MessageBody::HeartbeatResponse { read_round } => {
                self.handle_heartbeat_response(from, read_round);
            }
            MessageBody::TimeoutNow => {
                // Only the leader this replica follows may hand its leadership over.
                if self.role == Role::Follower && self.leader == Some(from) && self.can_campaign() {
                    self.campaign(true);
                }
            }
            MessageBody::ReadIndexRequest { context } => {
                if self.role == Role::Leader {
                    if self.queue_read(context, Some(from)).is_err() {
                        self.send(
                            from,
                            MessageBody::ReadIndexResponse {
                                context,
                                index: LogIndex::ZERO,
                                ok: false,
                            },
                        );
                    }
                } else {
                    self.send(
                        from,
                        MessageBody::ReadIndexResponse {
                            context,
                            index: LogIndex::ZERO,
                            ok: false,
                        },
                    );
                }
            }
            body @ (MessageBody::SnapshotChunk { .. } | MessageBody::SnapshotAck { .. }) => {
                self.hand_over_snapshot_message(Message {
                    partition: self.config.partition,
                    from,
                    to: self.config.id,
                    term,
                    body,
                });
            }
            MessageBody::ReadIndexResponse { context, index, ok } => {
                if self.role != Role::Leader && self.leader == Some(from) {
                    let result = if ok {
                        Ok(index)
                    } else {
                        Err(Status::NodeIsNotLeader)
                    };
                    self.read_states.push(ReadState { context, result });
                }
            }
        }
    }
}
