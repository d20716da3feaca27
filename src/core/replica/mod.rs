//! One partition's Raft replica: the deterministic state machine that turns ticks, messages,
//! proposals and persistence acknowledgements into [`Ready`] batches.
//!
//! It owns the protocol (elections, replication, commit, delivery) and nothing else: no clock
//! (time is `tick()`), no I/O (the runtime persists and sends what a `Ready` says), no threads.
//!
//! This file holds the replica's state and its accessors (those only the simulator and the
//! tests read are compiled with the `sim` feature); each job has a file of its own:
//! `restore` (construction from durable state), `step` (tick and message dispatch),
//! `validate` (input checks), `election`, `leader`, `follower`, `propose` (proposals and
//! tickets), `membership` (configuration changes), `quiesce` (quiescence), `read_index`, `transfer` (transfer, step-down), `snapshot`, `delivery`
//! (delivery and compaction), `output` (Ready assembly and persistence acknowledgements) and
//! `send` (outgoing messages).

mod delivery;
mod election;
mod follower;
mod leader;
mod membership;
mod output;
mod propose;
mod quiesce;
mod read_index;
mod restore;
mod send;
mod snapshot;
mod step;
mod transfer;
mod validate;

pub use restore::DurableState;

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use bytes::Bytes;

#[cfg(feature = "sim-bugs")]
use super::config::InjectedBug;
use super::config::{ReplicaConfig, ReplicaConfigError};
use super::configuration::Configuration;
use super::configurations::Configurations;
use super::entry::{Entry, EntryKind};
use super::hold::{Holds, Verdict};
use super::log::RaftLog;
use super::message::{Message, MessageBody, SnapshotOutcome};
use super::progress::{Progress, ProgressState, ProgressView};
use super::ready::{Floor, HardState, Outcome, ReadState, Ready, Role, SoftState};
use super::rng::SplitMix64;
use super::status::Status;
#[cfg(feature = "sim")]
use super::types::PartitionId;
use super::types::{LogIndex, NodeId, Term, Ticket};
use propose::PendingOp;
use quiesce::Quiescence;
use read_index::PendingRead;

/// Indices beyond this are absurd: no log grows to 2^62 entries.
const INDEX_ABSURD: u64 = 1 << 62;

/// One partition's Raft replica. See the [module docs](super) for the contract.
///
/// Laid out in declaration order (`repr(C)`), what every visit reads first: with thousands of
/// active partitions a replica is out of the cache again at each of its visits (a step, a
/// Ready, a durable acknowledgement), and each visit pays a miss per cache line it touches.
/// The fields `has_ready`, `step` and `ready_into` read on every visit come first, in a few
/// lines; what elections, reads, transfers and reconfigurations read comes after; the
/// configuration last.
#[derive(Debug)]
#[repr(C)]
pub struct Replica {
    // ----- read on every visit -----
    term: Term,
    /// The highest commit index `leader` told this replica in its current term (0 until it
    /// said one); a follower's own commit index stops at the end of its log.
    leader_commit: LogIndex,
    delivered: LogIndex,
    applied: LogIndex,
    ready_number: u64,
    /// The highest term known durable: a sole voter leads only once its own term is.
    durable_term: Term,
    // Boxed: rare, and a `Floor` is 96 B every replica would carry inline (issue 15).
    compaction_floor: Option<Box<Floor>>,
    installed_snapshot: Option<Box<Floor>>,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    prev_hard_state: HardState,
    prev_soft_state: SoftState,
    /// Whether timers run (decision 0007, `quiesce.rs`).
    quiescence: Quiescence,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    role: Role,
    heartbeats_suspended: bool,
    /// Whether the replica was quiesced at the previous Ready.
    prev_quiesced: bool,
    log: RaftLog,
    /// Every other member, sorted by id (deterministic iteration).
    progress: Vec<(NodeId, Progress)>,
    /// (ready number, last index, last term) of Readies whose entries are not yet durable.
    pending_persist: VecDeque<(u64, LogIndex, Term)>,
    /// (ready number, term) of Readies whose hard state is not yet durable.
    pending_terms: VecDeque<(u64, Term)>,
    // Output buffers, drained by `ready()`.
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    read_states: Vec<ReadState>,
    outcomes: Vec<Outcome>,
    snapshot_required: Vec<NodeId>,
    snapshot_messages: Vec<Message>,
    pending_ops: VecDeque<PendingOp>,
    uncommitted_entries: usize,
    uncommitted_bytes: u64,
    // ----- read by some visits -----
    /// The configurations in the log: the latest governs who votes and who is replicated to.
    configurations: Configurations,
    holds: Holds,
    /// Delivered checkpoints not yet the compaction floor (waiting for `applied`).
    checkpoints: VecDeque<LogIndex>,
    /// The highest applied checkpoint: the durable log may be compacted up to it. The
    /// in-memory log may retain a little more (see `compact_memory`).
    checkpoint_floor: LogIndex,
    read_round: u64,
    reads: VecDeque<PendingRead>,
    /// The commit rule's match indices when there are more voters than it sorts on the stack.
    scratch: Vec<LogIndex>,
    /// (voter, granted) for the current (pre-)election.
    votes: Vec<(NodeId, bool)>,
    transferee: Option<NodeId>,
    transfer_elapsed: u32,
    rng: SplitMix64,
    /// The version the layer above gives the committed configuration (never lowered):
    /// carried in vote requests, and what lifts `votes_withheld_below_version`.
    configuration_version: u64,
    config: ReplicaConfig,
}

impl Replica {
    /// This replica's node id.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// This replica's partition.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn partition(&self) -> PartitionId {
        self.config.partition
    }

    /// The configuration.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// Current role.
    #[must_use]
    #[cfg(feature = "sim")]
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
    /// Reported as [`SoftState::noop_committed`].
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
    #[cfg(feature = "sim")]
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The leader known for the current term.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest commit index the leader of the current term told this follower (its
    /// appends carry the leader's commit index; its heartbeats one capped at what this
    /// replica holds); 0 before it said one, and whenever the leader or the term changes. A
    /// follower's own [`Replica::commit_index`] stops at the end of its log, so this is what
    /// tells how far behind the leader's commit it is.
    #[must_use]
    pub fn leader_commit(&self) -> LogIndex {
        self.leader_commit
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
    #[cfg(feature = "sim")]
    pub fn last_term(&self) -> Term {
        self.log.last_term()
    }

    /// Highest index known durable locally.
    #[must_use]
    #[cfg(feature = "sim")]
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
    #[cfg(feature = "sim")]
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

    /// Whether this replica does not vote in the configuration in force (a learner, or a node
    /// not or no longer in it): it never campaigns and never counts.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn is_learner(&self) -> bool {
        !self.configuration().is_voter(self.config.id)
    }

    /// Whether a leadership transfer is in progress (proposals are refused meanwhile).
    #[must_use]
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transferee
    }

    /// Whether heartbeats are suspended (test hook).
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn heartbeats_suspended(&self) -> bool {
        self.heartbeats_suspended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_and_ready_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Replica>();
        assert_send::<Ready>();
        assert_send::<Message>();
    }

    /// What every visit reads (through the output buffers and the counters of uncommitted
    /// work) lies in the first nine cache lines, before what elections, reads and
    /// reconfigurations read, and the configuration last.
    #[test]
    fn the_fields_every_visit_reads_come_first() {
        use std::mem::offset_of;
        let hot_end = offset_of!(Replica, uncommitted_bytes) + size_of::<u64>();
        assert!(hot_end <= 9 * 64, "the hot fields end at byte {hot_end}");
        for warm in [
            offset_of!(Replica, configurations),
            offset_of!(Replica, holds),
            offset_of!(Replica, reads),
            offset_of!(Replica, votes),
        ] {
            assert!(warm >= hot_end);
        }
        assert_eq!(
            offset_of!(Replica, config) + size_of::<ReplicaConfig>(),
            size_of::<Replica>(),
            "the configuration is last"
        );
    }
}
