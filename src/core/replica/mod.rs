//! One partition's Raft replica: the deterministic state machine that turns ticks, messages,
//! proposals and persistence acknowledgements into [`Ready`] batches.
//!
//! It owns the protocol (elections, replication, commit, delivery) and nothing else: no clock
//! (time is `tick()`), no I/O (the runtime persists and sends what a `Ready` says), no threads.

mod delivery;
mod election;
mod follower;
mod leader;
mod send;
mod validate;

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use bytes::Bytes;

#[cfg(feature = "sim-bugs")]
use super::config::InjectedBug;
use super::config::{Config, ConfigError};
use super::entry::{Entry, EntryKind};
use super::hold::{Holds, Verdict};
use super::log::RaftLog;
use super::message::{Message, MessageBody};
use super::progress::{Progress, ProgressState, ProgressView};
use super::ready::{
    GatedMessages, HardState, Outcome, ReadState, Ready, Role, SnapshotMeta, SoftState,
};
use super::rng::SplitMix64;
use super::status::Status;
use super::types::{LogIndex, NodeId, PartitionId, Term, Ticket};

/// Indices beyond this are absurd: no log grows to 2^62 entries.
const INDEX_ABSURD: u64 = 1 << 62;

/// What survived a crash: the runtime reads it back from its WAL and hands it to
/// [`Replica::new`]. A fresh replica starts from [`DurableState::default`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The compaction floor: entries at or below it are gone (0 when nothing was compacted).
    pub floor: LogIndex,
    /// The term of the entry at `floor`.
    pub floor_term: Term,
    /// Every durable entry above `floor`, in order.
    pub entries: Vec<Entry>,
    /// The application's durable applied index: entries up to it are not delivered again.
    pub applied: LogIndex,
}

/// An operation accepted as leader, waiting for its outcome.
#[derive(Clone, Copy, Debug)]
struct PendingOp {
    last: LogIndex,
    ticket: Ticket,
    kind: EntryKind,
}

/// A ReadIndex request on the leader.
#[derive(Clone, Copy, Debug)]
struct PendingRead {
    context: u64,
    /// The follower that forwarded it (`None`: local caller).
    from: Option<NodeId>,
    index: LogIndex,
    /// Heartbeat round that confirms it (0: not yet assigned, waiting for a current-term commit).
    round: u64,
}

/// One partition's Raft replica. See the [module docs](super) for the contract.
#[derive(Debug)]
pub struct Replica {
    config: Config,
    quorum: usize,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    role: Role,
    log: RaftLog,
    holds: Holds,
    delivered: LogIndex,
    applied: LogIndex,
    /// Delivered checkpoints not yet the compaction floor (waiting for `applied`).
    checkpoints: VecDeque<LogIndex>,
    /// The highest applied checkpoint: the durable log may be compacted up to it. The
    /// in-memory log may retain a little more (see `compact_memory`).
    checkpoint_floor: LogIndex,
    rng: SplitMix64,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    /// (voter, granted) for the current (pre-)election.
    votes: Vec<(NodeId, bool)>,
    /// Every other member, sorted by id (deterministic iteration).
    progress: Vec<(NodeId, Progress)>,
    transferee: Option<NodeId>,
    transfer_elapsed: u32,
    heartbeats_suspended: bool,
    pending_ops: VecDeque<PendingOp>,
    uncommitted_entries: usize,
    uncommitted_bytes: u64,
    read_round: u64,
    reads: VecDeque<PendingRead>,
    scratch: Vec<LogIndex>,
    // Output buffers, drained by `ready()`.
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    read_states: Vec<ReadState>,
    outcomes: Vec<Outcome>,
    snapshot_required: Vec<NodeId>,
    compaction_floor: Option<LogIndex>,
    installed_snapshot: Option<SnapshotMeta>,
    prev_hard_state: HardState,
    prev_soft_state: SoftState,
    ready_number: u64,
    /// (ready number, last index, last term) of Readies whose entries are not yet durable.
    pending_persist: VecDeque<(u64, LogIndex, Term)>,
}

impl Replica {
    /// Creates a replica from its configuration and what survived the last crash.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidField`] for an invalid config, [`ConfigError::InvalidDurableState`]
    /// when the durable state is inconsistent (gaps, decreasing terms, applied beyond the log).
    pub fn new(config: Config, durable: DurableState) -> Result<Self, ConfigError> {
        config.validate()?;
        let bad = |reason| Err(ConfigError::InvalidDurableState(reason));
        let DurableState {
            hard_state,
            floor,
            floor_term,
            entries,
            applied,
        } = durable;
        if floor.0 >= INDEX_ABSURD
            || hard_state.term.0 >= INDEX_ABSURD
            || floor_term.0 >= INDEX_ABSURD
        {
            return bad("floor or term is absurdly large");
        }
        // An installed snapshot is made durable before the replica is told (see
        // `install_snapshot`), while the term learned from the snapshot's sender may still sit
        // in a Ready that was not flushed. A crash in between leaves the floor's term ahead of
        // the durable term: adopt it, with no vote. That is safe: a vote leaves this node only
        // once it is durable, and no vote of that term is.
        let hard_state = if floor_term > hard_state.term {
            HardState {
                term: floor_term,
                vote: None,
                commit: hard_state.commit,
            }
        } else {
            hard_state
        };
        let mut expected = floor.next();
        let mut last_term = floor_term;
        for e in &entries {
            if e.index != expected {
                return bad("entries are not contiguous above the floor");
            }
            if e.term < last_term {
                return bad("entry terms decrease");
            }
            expected = expected.next();
            last_term = e.term;
        }
        if last_term > hard_state.term {
            return bad("an entry's term is above the hard state's term");
        }
        let last = expected.prev();
        if applied < floor || applied > last {
            return bad("applied index outside [floor, last index]");
        }
        if hard_state.vote.is_some_and(|v| !config.is_voter(v)) {
            return bad("voted for a node that is not a voter");
        }
        let mut log = RaftLog::new(floor, floor_term, entries);
        // The commit index is written lazily and may run ahead of a log whose unsynced tail was
        // lost; it is only knowledge, re-learned from the leader.
        log.committed = hard_state.commit.min(last).max(applied).max(floor);
        let mut holds = Holds::default();
        let mut checkpoints = VecDeque::new();
        for e in log.range(floor.next(), log.last_index()) {
            if e.index > applied {
                holds.on_append(e);
            } else if e.kind == EntryKind::Checkpoint {
                checkpoints.push_back(e.index);
            }
        }
        let mut progress: Vec<(NodeId, Progress)> = config
            .voters
            .iter()
            .map(|&n| (n, false))
            .chain(config.learners.iter().map(|&n| (n, true)))
            .filter(|&(n, _)| n != config.id)
            .map(|(n, learner)| (n, Progress::new(LogIndex(1), learner)))
            .collect();
        progress.sort_by_key(|(n, _)| *n);
        let seed = config.seed
            ^ config.id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(config.partition.0).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let quorum = config.voters.len() / 2 + 1;
        let mut replica = Self {
            quorum,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            role: Role::Follower,
            log,
            holds,
            delivered: applied,
            applied,
            checkpoints,
            checkpoint_floor: floor,
            rng: SplitMix64::new(seed),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            votes: Vec::new(),
            progress,
            transferee: None,
            transfer_elapsed: 0,
            heartbeats_suspended: false,
            pending_ops: VecDeque::new(),
            uncommitted_entries: 0,
            uncommitted_bytes: 0,
            read_round: 0,
            reads: VecDeque::new(),
            scratch: Vec::new(),
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            outcomes: Vec::new(),
            snapshot_required: Vec::new(),
            compaction_floor: None,
            installed_snapshot: None,
            prev_hard_state: HardState {
                commit: hard_state.commit,
                ..hard_state
            },
            prev_soft_state: SoftState {
                role: Role::Follower,
                leader: None,
                term: hard_state.term,
                noop_committed: false,
            },
            ready_number: 0,
            pending_persist: VecDeque::new(),
            config,
        };
        replica.reset_election_timeout();
        replica.compact_applied_checkpoints();
        Ok(replica)
    }

    // ----------------------------------------------------------------------------------------
    // Status getters.

    /// This replica's node id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// This replica's partition.
    #[must_use]
    pub fn partition(&self) -> PartitionId {
        self.config.partition
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this replica leads its partition.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// Whether this replica leads *and* has committed an entry of its term (its no-op
    /// barrier): only then does it know the full committed prefix, may serve reads, and should
    /// be announced as leader (the reference keeps leadership "unpublished" until then).
    #[must_use]
    pub fn is_leader_established(&self) -> bool {
        self.role == Role::Leader && self.committed_in_term()
    }

    /// Current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    #[must_use]
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The leader known for the current term.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The current hard state (possibly not yet durable).
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// The current soft state.
    #[must_use]
    pub fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role,
            leader: self.leader,
            term: self.term,
            noop_committed: self.is_leader_established(),
        }
    }

    /// Highest index known committed.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.log.committed
    }

    /// Index of the last entry in the log (durable or not).
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// Term of the last entry.
    #[must_use]
    pub fn last_term(&self) -> Term {
        self.log.last_term()
    }

    /// Highest index known durable locally.
    #[must_use]
    pub fn persisted_index(&self) -> LogIndex {
        self.log.persisted
    }

    /// Index the delivery cursor reached (handed out in a Ready).
    #[must_use]
    pub fn delivered_index(&self) -> LogIndex {
        self.delivered
    }

    /// Index the application reported applied.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }

    /// The in-memory floor: entries at or below it are no longer held. At most the highest
    /// applied checkpoint; a leader may hold entries below that for lagging followers.
    #[must_use]
    pub fn compaction_floor(&self) -> LogIndex {
        self.log.floor()
    }

    /// The highest applied checkpoint: what the durable log may discard up to (reported once
    /// in `Ready::compaction_floor`).
    #[must_use]
    pub fn checkpoint_floor(&self) -> LogIndex {
        self.checkpoint_floor
    }

    /// The term of the entry at `index`, if this replica still holds it (or it is the floor).
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term(index)
    }

    /// The entry at `index`, if held in memory (above the floor).
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The leader's view of a follower (`None` when not leader or unknown node).
    #[must_use]
    pub fn progress(&self, node: NodeId) -> Option<ProgressView> {
        if self.role != Role::Leader {
            return None;
        }
        self.progress
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, p)| p.view())
    }

    /// The voters of this partition.
    #[must_use]
    pub fn voters(&self) -> &[NodeId] {
        &self.config.voters
    }

    /// The learners of this partition.
    #[must_use]
    pub fn learners(&self) -> &[NodeId] {
        &self.config.learners
    }

    /// Whether this replica is a learner (never campaigns, never counts).
    #[must_use]
    pub fn is_learner(&self) -> bool {
        !self.config.is_voter(self.config.id)
    }

    /// Whether a leadership transfer is in progress (proposals are refused meanwhile).
    #[must_use]
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transferee
    }

    /// Whether heartbeats are suspended (test hook).
    #[must_use]
    pub fn heartbeats_suspended(&self) -> bool {
        self.heartbeats_suspended
    }

    // ----------------------------------------------------------------------------------------
    // Inputs.

    /// Advances logical time by one tick: election timeouts, heartbeats, check-quorum.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
            return;
        }
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.randomized_timeout && self.can_campaign() {
            self.campaign_pre_vote();
        }
    }

    /// Steps a message received from the network.
    ///
    /// # Errors
    ///
    /// The message is ignored and nothing changes when it is for another partition
    /// ([`Status::PartitionMoved`]), from a non-member or from ourselves
    /// ([`Status::LogsFromAnotherLeader`]), or malformed or absurd ([`Status::Errored`]).
    pub fn step(&mut self, m: Message) -> Result<(), Status> {
        self.check_message(&m)?;
        if m.term > self.term {
            // A leader we still believe in that campaigns has lost its leadership (restart,
            // step-down): its own lease does not stand in its way.
            let leased = self.in_lease() && self.leader != Some(m.from);
            match &m.body {
                MessageBody::PreVoteRequest { .. } if leased => return Ok(()),
                MessageBody::VoteRequest {
                    transfer: false, ..
                } if self.config.check_quorum && leased => return Ok(()),
                MessageBody::PreVoteRequest { .. } => {}
                MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::AppendRequest { .. } | MessageBody::Heartbeat { .. } => {
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
                _ => {}
            }
            return Ok(());
        }
        let from = m.from;
        let term = m.term;
        match m.body {
            MessageBody::PreVoteRequest {
                last_log_index,
                last_log_term,
            } => self.handle_vote_request(from, term, last_log_index, last_log_term, true),
            MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                ..
            } => self.handle_vote_request(from, term, last_log_index, last_log_term, false),
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
            MessageBody::Heartbeat { commit, read_round } => {
                self.handle_heartbeat(from, commit, read_round);
            }
            MessageBody::HeartbeatResponse { read_round } => {
                self.handle_heartbeat_response(from, read_round);
            }
            MessageBody::TimeoutNow => {
                if self.role != Role::Leader && self.can_campaign() {
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
        Ok(())
    }

    /// Proposes one entry. Returns its index; the outcome arrives in a later Ready.
    ///
    /// # Errors
    ///
    /// See [`Replica::propose_batch`].
    pub fn propose(
        &mut self,
        ticket: Ticket,
        auto_commit: bool,
        payload: Bytes,
    ) -> Result<LogIndex, Status> {
        self.propose_batch(ticket, auto_commit, std::slice::from_ref(&payload))
            .map(|range| *range.end())
    }

    /// Proposes consecutive entries sharing one ticket. With `auto_commit = false` they are
    /// held from delivery until [`Replica::commit_proposal`] or
    /// [`Replica::rollback_proposal`] resolves the ticket.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`] (also while a leadership transfer is in progress),
    /// [`Status::Errored`] for an empty batch, [`Status::ActiveProposal`] when a two-phase
    /// proposal with this ticket is still tracked, [`Status::ProposalQueueFull`] when the
    /// uncommitted limits would be exceeded.
    pub fn propose_batch(
        &mut self,
        ticket: Ticket,
        auto_commit: bool,
        payloads: &[Bytes],
    ) -> Result<RangeInclusive<LogIndex>, Status> {
        self.check_can_propose()?;
        if payloads.is_empty() {
            return Err(Status::Errored);
        }
        if !auto_commit && self.holds.contains(ticket) {
            return Err(Status::ActiveProposal);
        }
        let bytes: u64 = payloads
            .iter()
            .map(|p| Entry::size_bytes_for(p.len()))
            .sum();
        self.check_uncommitted_room(payloads.len(), bytes)?;
        let first = self.log.last_index().next();
        self.log
            .append_proposals(self.term, ticket, auto_commit, payloads);
        if !auto_commit {
            for entry in self.log.range(first, self.log.last_index()) {
                self.holds.on_append(entry);
            }
        }
        self.uncommitted_entries += payloads.len();
        self.uncommitted_bytes += bytes;
        let last = self.log.last_index();
        self.pending_ops.push_back(PendingOp {
            last,
            ticket,
            kind: EntryKind::Normal,
        });
        Ok(first..=last)
    }

    /// Resolves a held two-phase proposal as committed: appends a Commit marker. Idempotent
    /// while the ticket is tracked (returns the existing marker's index).
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`], [`Status::ProposalNotFound`] for an unknown (or already
    /// delivered and forgotten) ticket, [`Status::Errored`] when the ticket was rolled back or
    /// its proposal is not yet committed, [`Status::ProposalQueueFull`].
    pub fn commit_proposal(&mut self, ticket: Ticket) -> Result<LogIndex, Status> {
        self.resolve(ticket, EntryKind::Commit)
    }

    /// Resolves a held two-phase proposal as rolled back: its entries are never delivered.
    ///
    /// # Errors
    ///
    /// As [`Replica::commit_proposal`]; rolling back a committed ticket is [`Status::Errored`].
    pub fn rollback_proposal(&mut self, ticket: Ticket) -> Result<LogIndex, Status> {
        self.resolve(ticket, EntryKind::Rollback)
    }

    /// Proposes a checkpoint. Once committed and applied it becomes the compaction floor.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`], [`Status::ActiveProposal`] while any two-phase proposal is
    /// unresolved, [`Status::ProposalQueueFull`].
    pub fn propose_checkpoint(&mut self, ticket: Ticket) -> Result<LogIndex, Status> {
        self.check_can_propose()?;
        if self.holds.any_unresolved() {
            return Err(Status::ActiveProposal);
        }
        self.check_uncommitted_room(1, Entry::size_bytes_for(0))?;
        let index = self.leader_append(EntryKind::Checkpoint, ticket, true, Bytes::new());
        self.pending_ops.push_back(PendingOp {
            last: index,
            ticket,
            kind: EntryKind::Checkpoint,
        });
        Ok(index)
    }

    /// Acknowledges that every Ready numbered up to `ready_number` is durable.
    pub fn persisted(&mut self, ready_number: u64) {
        while let Some(&(number, index, term)) = self.pending_persist.front() {
            if number > ready_number {
                break;
            }
            self.pending_persist.pop_front();
            // The entry may have been replaced by a later, not yet durable Ready: by Log
            // Matching an equal term at the same index means it is the same entry.
            if index > self.log.persisted && self.log.term(index) == Some(term) {
                self.log.persisted = index;
            }
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Reports that the application applied every delivered entry up to `index`.
    pub fn applied(&mut self, index: LogIndex) {
        let index = index.min(self.delivered);
        if index > self.applied {
            self.applied = index;
        }
        self.compact_applied_checkpoints();
    }

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
        if !self.config.is_voter(target) {
            return Err(Status::Errored);
        }
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
        self.heartbeats_suspended = false;
        self.broadcast_heartbeat();
        Ok(())
    }

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

    /// Follower side of a snapshot transfer: the runtime replaced the application's state with
    /// the leader's state at `index` (whose entry had term `index_term`), received from
    /// `leader` in `term`. The log is discarded and restarts after `index`; the next Ready
    /// carries [`Ready::installed_snapshot`] for the WAL and an acknowledgement to the leader.
    ///
    /// # Errors
    ///
    /// [`Status::LeaderInOldTerm`] when `term` is below ours, [`Status::LogsFromAnotherLeader`]
    /// when `leader` is not a voter (or is this node), [`Status::Errored`] for absurd values.
    pub fn install_snapshot(
        &mut self,
        leader: NodeId,
        term: Term,
        index: LogIndex,
        index_term: Term,
    ) -> Result<(), Status> {
        if leader == self.config.id || !self.config.is_voter(leader) {
            return Err(Status::LogsFromAnotherLeader);
        }
        if index.0 >= INDEX_ABSURD || term.0 >= INDEX_ABSURD || index_term > term {
            return Err(Status::Errored);
        }
        if term < self.term {
            return Err(Status::LeaderInOldTerm);
        }
        if self.role == Role::Leader && term == self.term {
            return Err(Status::Errored);
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(leader) {
            self.become_follower(term, Some(leader));
        }
        self.election_elapsed = 0;
        if index <= self.log.committed {
            self.ack_append(leader, self.log.committed);
            return Ok(());
        }
        self.log = RaftLog::new(index, index_term, Vec::new());
        self.log.committed = index;
        self.holds.on_truncate(LogIndex::ZERO);
        self.checkpoints.clear();
        self.checkpoint_floor = index;
        self.delivered = index;
        self.applied = index;
        self.installed_snapshot = Some(SnapshotMeta {
            index,
            term: index_term,
        });
        // The new floor must be durable before the leader counts on it.
        self.send_after_persist(
            leader,
            MessageBody::AppendResponse {
                success: true,
                index,
                hint_index: LogIndex::ZERO,
                hint_term: Term::ZERO,
            },
        );
        Ok(())
    }

    /// Leader side: the runtime's snapshot transfer to `node` completed up to `index` (the
    /// follower called [`Replica::install_snapshot`]). Replication resumes with a probe after
    /// `index`, even if the follower's own acknowledgement is lost.
    pub fn report_snapshot_installed(&mut self, node: NodeId, index: LogIndex) {
        if self.role != Role::Leader || index > self.log.last_index() {
            return;
        }
        if let Some(p) = self.peer_mut(node)
            && p.state == ProgressState::SnapshotRequired
        {
            p.become_probe();
            p.next_index = p.next_index.max(index.next());
        }
    }

    /// Leader side: the snapshot transfer to `node` failed; probe it again (it is reported in
    /// `snapshot_required` once more if it still needs entries below the floor).
    pub fn report_snapshot_failure(&mut self, node: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(p) = self.peer_mut(node)
            && p.state == ProgressState::SnapshotRequired
        {
            p.become_probe();
        }
    }

    // ----------------------------------------------------------------------------------------
    // Output.

    /// Whether [`Replica::ready`] has anything to hand out.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.read_states.is_empty()
            || !self.outcomes.is_empty()
            || !self.snapshot_required.is_empty()
            || self.compaction_floor.is_some()
            || self.installed_snapshot.is_some()
            || self.log.has_unstable()
            || self.hard_state() != self.prev_hard_state
            || self.soft_state() != self.prev_soft_state
            || self.next_delivery_possible()
            || self.leader_has_sends()
    }

    /// Takes the next batch of work. Returns an empty Ready (still numbered) when there is
    /// nothing to do; check [`Replica::has_ready`] first to avoid that.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            self.send_appends();
            self.assign_read_rounds();
        }
        self.ready_number += 1;
        let number = self.ready_number;
        let hard_state = self.hard_state();
        let hard_state = (hard_state != self.prev_hard_state).then(|| {
            self.prev_hard_state = hard_state;
            hard_state
        });
        let soft_state = self.soft_state();
        let soft_state = (soft_state != self.prev_soft_state).then(|| {
            self.prev_soft_state = soft_state;
            soft_state
        });
        let entries = self.log.take_unstable();
        if let Some(last) = entries.last() {
            self.pending_persist
                .push_back((number, last.index, last.term));
            #[cfg(feature = "sim-bugs")]
            if self.bug(InjectedBug::AckBeforePersist) {
                self.log.persisted = self.log.last_index();
                if self.role == Role::Leader {
                    self.maybe_commit();
                }
            }
        }
        let (committed_entries, committed_through) = self.collect_deliveries();
        Ready {
            number,
            soft_state,
            hard_state,
            entries,
            compaction_floor: self.compaction_floor.take(),
            installed_snapshot: self.installed_snapshot.take(),
            messages: std::mem::take(&mut self.messages),
            persisted_messages: GatedMessages::new(
                number,
                std::mem::take(&mut self.persisted_messages),
            ),
            committed_entries,
            committed_through,
            read_states: std::mem::take(&mut self.read_states),
            outcomes: std::mem::take(&mut self.outcomes),
            snapshot_required: std::mem::take(&mut self.snapshot_required),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new(
            NodeId(1),
            PartitionId(1),
            vec![NodeId(1), NodeId(2), NodeId(3)],
        )
    }

    fn entry(index: u64, term: u64, kind: EntryKind, ticket: u64, auto_commit: bool) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            kind,
            ticket: Ticket(ticket),
            auto_commit,
            payload: Bytes::new(),
        }
    }

    fn normal(index: u64, term: u64) -> Entry {
        entry(index, term, EntryKind::Normal, index, true)
    }

    fn durable(entries: Vec<Entry>, commit: u64, applied: u64) -> DurableState {
        DurableState {
            hard_state: HardState {
                term: Term(3),
                vote: None,
                commit: LogIndex(commit),
            },
            entries,
            applied: LogIndex(applied),
            ..DurableState::default()
        }
    }

    #[test]
    fn inconsistent_durable_state_is_refused() {
        let cases = [
            durable(vec![normal(1, 1), normal(3, 1)], 0, 0),
            durable(vec![normal(1, 2), normal(2, 1)], 0, 0),
            durable(vec![normal(1, 4)], 0, 0),
            durable(vec![normal(1, 1)], 1, 2),
            DurableState {
                hard_state: HardState {
                    term: Term(1),
                    vote: Some(NodeId(9)),
                    commit: LogIndex(0),
                },
                ..DurableState::default()
            },
        ];
        for state in cases {
            let result = Replica::new(config(), state.clone());
            assert!(
                matches!(result, Err(ConfigError::InvalidDurableState(_))),
                "{state:?} must be refused"
            );
        }
    }

    #[test]
    fn a_snapshot_floor_ahead_of_the_durable_term_is_adopted_without_a_vote() {
        // Crash after a snapshot was made durable but before the term learned from its sender
        // was flushed (found by the simulator, seed 6634).
        let state = DurableState {
            hard_state: HardState {
                term: Term(44),
                vote: Some(NodeId(2)),
                commit: LogIndex(3144),
            },
            floor: LogIndex(3234),
            floor_term: Term(45),
            applied: LogIndex(3234),
            ..DurableState::default()
        };
        let replica = Replica::new(config(), state).expect("restorable");
        assert_eq!(replica.term(), Term(45));
        assert_eq!(replica.vote(), None);
        assert_eq!(replica.last_index(), LogIndex(3234));
        let mut later = DurableState {
            hard_state: HardState {
                term: Term(2),
                ..HardState::default()
            },
            floor: LogIndex(1),
            floor_term: Term(3),
            applied: LogIndex(1),
            ..DurableState::default()
        };
        later.entries = vec![normal(2, 4)];
        assert!(
            matches!(
                Replica::new(config(), later),
                Err(ConfigError::InvalidDurableState(_))
            ),
            "an entry above the durable term is still refused"
        );
    }

    #[test]
    fn restore_delivers_committed_entries_after_applied_once_and_keeps_holds() {
        let entries = vec![
            normal(1, 1),
            normal(2, 1),
            entry(3, 1, EntryKind::Normal, 77, false),
            normal(4, 1),
            entry(5, 2, EntryKind::Commit, 77, true),
            normal(6, 2),
        ];
        let mut replica =
            Replica::new(config(), durable(entries, 9, 1)).expect("valid durable state");
        assert_eq!(
            replica.commit_index(),
            LogIndex(6),
            "lazy commit clamped to the log"
        );
        let ready = replica.ready();
        let delivered: Vec<u64> = ready.committed_entries.iter().map(|e| e.index.0).collect();
        assert_eq!(
            delivered,
            vec![2, 3, 4, 6],
            "after applied, held one resolved by marker"
        );
        assert_eq!(ready.committed_through, LogIndex(6));
        replica.applied(ready.committed_through);
        assert!(!replica.has_ready());
    }

    #[test]
    fn restore_holds_an_unresolved_two_phase_entry() {
        let entries = vec![entry(1, 1, EntryKind::Normal, 5, false), normal(2, 1)];
        let mut replica = Replica::new(config(), durable(entries, 2, 0)).expect("valid");
        assert!(!replica.has_ready(), "held: nothing deliverable");
        let ready = replica.ready();
        assert!(ready.committed_entries.is_empty());
        assert_eq!(ready.committed_through, LogIndex(0));
    }

    #[test]
    fn delivery_is_bounded_per_ready() {
        let config = Config {
            deliver_entries_max: 2,
            ..config()
        };
        let entries = (1..=5).map(|i| normal(i, 1)).collect();
        let mut replica = Replica::new(config, durable(entries, 5, 0)).expect("valid");
        let mut batches = Vec::new();
        while replica.has_ready() {
            let ready = replica.ready();
            batches.push(ready.committed_entries.len());
            replica.applied(ready.committed_through);
        }
        assert_eq!(batches, vec![2, 2, 1]);
    }

    #[test]
    fn replica_and_ready_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Replica>();
        assert_send::<Ready>();
        assert_send::<Message>();
    }
}
