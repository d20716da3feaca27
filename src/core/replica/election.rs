//! Elections: pre-vote, candidacy, vote granting, role changes (Raft §5.2, thesis §9.6).

use super::*;

/// A (pre-)vote request as `handle_vote_request` judges it.
pub(super) struct VoteAsked {
    pub(super) last_log_index: LogIndex,
    pub(super) last_log_term: Term,
    pub(super) configuration_version: u64,
    pub(super) pre_vote: bool,
}

impl Replica {
    /// Whether this replica may campaign: it votes in the configuration in force, or it did in
    /// the committed one and the change that took its vote away is not known committed. The
    /// latter is a leader that demoted itself and lost its leadership before the change
    /// committed: the only up-to-date log may be its own, and the voters of the new
    /// configuration (which it counts, not itself) may need it to lead once more, commit the
    /// change and hand over, or no one could ever be elected (two voters, one demoting itself).
    pub(super) fn can_campaign(&self) -> bool {
        let id = self.config.id;
        // A replica that may have forgotten votes it cast does not vote for itself either.
        !self.votes_withheld()
            && (self.configuration().is_voter(id)
                || (self.configuration_change_pending()
                    && self.committed_configuration().is_voter(id)))
    }

    /// A follower that heard from its leader within the minimum election timeout does not help
    /// anyone else campaign (leader lease; keeps a rejoining node from disrupting the leader).
    pub(super) fn in_lease(&self) -> bool {
        match self.role {
            Role::Leader => true,
            _ => {
                self.leader.is_some()
                    && self.election_elapsed < self.config.election_timeout_ticks_min
            }
        }
    }

    pub(super) fn reset_election_timeout(&mut self) {
        self.election_elapsed = 0;
        self.randomized_timeout = self.rng.range(
            self.config.election_timeout_ticks_min,
            self.config.election_timeout_ticks_max,
        );
    }

    /// Starts the partition's first election now rather than after an election timeout: the
    /// input for the one member a partition created at runtime designates (decision 0006,
    /// amendment "a created partition's first leader"). It goes through pre-vote as a timeout
    /// would, so safety is the election's. Nothing happens (`false`) unless this replica has
    /// never known a term, a vote, a leader or an entry (a replica restored from its log, or
    /// one that heard from anyone, waits for its timeout as any other) and may campaign.
    ///
    /// Peers that have not opened the partition yet drop the pre-vote: if it gathers no
    /// quorum, this replica asks again after `retry_ticks` (when that is below its randomized
    /// timeout), then keeps the usual timeouts.
    pub(crate) fn campaign_first(&mut self, retry_ticks: u32) -> bool {
        let fresh = self.term == Term(0)
            && self.vote.is_none()
            && self.leader.is_none()
            && self.log.last_index() == LogIndex::ZERO;
        if !fresh || self.role != Role::Follower || !self.can_campaign() {
            return false;
        }
        self.campaign_pre_vote();
        if self.role == Role::PreCandidate {
            self.randomized_timeout = self.randomized_timeout.min(retry_ticks.max(1));
        }
        true
    }

    pub(super) fn campaign_pre_vote(&mut self) {
        self.quiescence = Quiescence::ACTIVE;
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timeout();
        if self.tally_vote(self.config.id, true) {
            self.campaign(false);
            return;
        }
        let body = MessageBody::PreVoteRequest {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            configuration_version: self.configuration_version,
        };
        let term = self.term.next();
        for voter in self.other_voters() {
            self.push(voter, term, body.clone(), false);
        }
    }

    pub(super) fn campaign(&mut self, transfer: bool) {
        self.quiescence = Quiescence::ACTIVE;
        self.term = self.term.next();
        self.vote = Some(self.config.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timeout();
        if self.tally_vote(self.config.id, true) {
            self.win_alone_once_durable();
            return;
        }
        let body = MessageBody::VoteRequest {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            configuration_version: self.configuration_version,
            transfer,
        };
        let term = self.term;
        for voter in self.other_voters() {
            // Our own vote must be durable before anyone can count on our candidacy.
            self.push(voter, term, body.clone(), true);
        }
    }

    /// A sole voter's candidacy wins by its own vote, but only once that vote and its term
    /// are durable: a leader that could forget its term after a crash would lead the same term
    /// again and write other entries at indices its learners already hold with that term.
    /// (Other voters' grants imply it: vote requests leave only once the candidacy is durable.)
    pub(super) fn win_alone_once_durable(&mut self) {
        if self.role == Role::Candidate
            && self.durable_term >= self.term
            && self.counted_votes(true) >= self.quorum()
        {
            self.become_leader();
        }
    }

    /// The nodes asked for (pre-)votes: the other voters in force.
    pub(super) fn other_voters(&self) -> Vec<NodeId> {
        let id = self.config.id;
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::LearnerVoteCounted) {
            return self
                .configuration()
                .members()
                .filter(|&v| v != id)
                .collect();
        }
        self.configuration()
            .voters()
            .iter()
            .copied()
            .filter(|&v| v != id)
            .collect()
    }

    /// Whether `node`'s (pre-)vote counts: only voters in force do (every node answers; see
    /// `handle_vote_request`).
    fn vote_counts(&self, node: NodeId) -> bool {
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::LearnerVoteCounted) {
            return true;
        }
        self.configuration().is_voter(node)
    }

    /// Records a (pre-)vote; returns whether it completes a quorum of grants.
    pub(super) fn tally_vote(&mut self, from: NodeId, granted: bool) -> bool {
        if !self.votes.iter().any(|(n, _)| *n == from) {
            self.votes.push((from, granted));
        }
        self.counted_votes(true) >= self.quorum()
    }

    /// Counted grants (`granted`) or refusals among the votes received.
    fn counted_votes(&self, granted: bool) -> usize {
        self.votes
            .iter()
            .filter(|&&(node, g)| g == granted && self.vote_counts(node))
            .count()
    }

    pub(super) fn record_vote(&mut self, from: NodeId, granted: bool, pre_vote: bool) {
        if self.tally_vote(from, granted) {
            if pre_vote {
                self.campaign(false);
            } else {
                self.become_leader();
            }
        } else if self.counted_votes(false) >= self.quorum() {
            self.become_follower(self.term, None);
        }
    }

    pub(super) fn handle_vote_request(&mut self, from: NodeId, term: Term, request: VoteAsked) {
        let VoteAsked {
            last_log_index,
            last_log_term,
            configuration_version,
            pre_vote,
        } = request;
        #[allow(unused_mut)]
        let mut can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        #[cfg(feature = "sim-bugs")]
        if !pre_vote && self.bug(InjectedBug::DoubleVote) && self.role == Role::Follower {
            can_vote = true;
        }
        // Whatever this replica's own role, it answers by the rules of the vote: whether the
        // answer counts is the candidate's business (only its voters count). A voter whose
        // promotion has not reached it yet must still be able to elect the leader. A replica
        // that withholds its votes grants only a candidate whose committed configuration has
        // the version that lifts the restriction: that candidate holds the configuration that
        // demoted this data directory, so its election counts this vote only where the
        // votes this replica forgot never counted (decision 0004, "A replaced disk's vote").
        let admitted = !self.votes_withheld()
            || configuration_version >= self.config.votes_withheld_below_version;
        let granted = can_vote && admitted && self.log.is_up_to_date(last_log_index, last_log_term);
        if pre_vote {
            let term = if granted { term } else { self.term };
            self.push(from, term, MessageBody::PreVoteResponse { granted }, false);
            return;
        }
        if granted {
            self.vote = Some(from);
            self.election_elapsed = 0;
        }
        self.send_after_persist(from, MessageBody::VoteResponse { granted });
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        // Before the term changes: refusals to forwarded reads must carry the term the
        // followers know this leader by, or they would be dropped as from a stranger.
        if self.role == Role::Leader {
            self.abandon_leadership();
        }
        if term > self.term || leader != self.leader {
            self.leader_commit = LogIndex::ZERO;
        }
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_timeout();
        self.quiescence = Quiescence::ACTIVE;
    }

    /// Fails everything that only a leader could finish.
    pub(super) fn abandon_leadership(&mut self) {
        for op in self.pending_ops.drain(..) {
            self.outcomes.push(Outcome {
                ticket: op.ticket,
                kind: op.kind,
                index: op.last,
                status: Status::ReplicationFailed,
            });
        }
        for read in self.reads.drain(..) {
            match read.from {
                None => self.read_states.push(ReadState {
                    context: read.context,
                    result: Err(Status::NodeIsNotLeader),
                }),
                Some(from) => {
                    let body = MessageBody::ReadIndexResponse {
                        context: read.context,
                        index: LogIndex::ZERO,
                        ok: false,
                    };
                    self.messages.push(Message {
                        partition: self.config.partition,
                        from: self.config.id,
                        to: from,
                        term: self.term,
                        body,
                    });
                }
            }
        }
        self.transferee = None;
        self.heartbeats_suspended = false;
    }

    pub(super) fn become_leader(&mut self) {
        self.quiescence = Quiescence::ACTIVE;
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.transferee = None;
        self.heartbeats_suspended = false;
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::ReuseIndexAfterLeaderChange) {
            self.truncate_log_from(self.log.committed.next());
        }
        let next = self.log.last_index().next();
        for (_, p) in &mut self.progress {
            let learner = p.learner;
            *p = Progress::new(next, learner);
            p.recent_active = true;
        }
        self.uncommitted_entries = 0;
        self.uncommitted_bytes = 0;
        let (committed, last) = (self.log.committed, self.log.last_index());
        for e in self.log.range(committed.next(), last) {
            self.uncommitted_entries += 1;
            self.uncommitted_bytes += e.size_bytes();
        }
        // The leadership barrier: commits every inherited entry (§5.4.2) and lets ReadIndex
        // start once it commits.
        self.leader_append(EntryKind::NoOp, Ticket(0), true, Bytes::new());
        self.maybe_commit();
    }
}
