//! The output of a replica: what to persist, what to send and when, what to deliver.
//!
//! The ordering contract is carried by the types: messages that may leave before the Ready is
//! durable are a plain `Vec<Message>`; messages that may only leave after it are a
//! [`GatedMessages`] that hands out its content only to a caller who names a durable Ready
//! number at least as high as its own.

use super::configuration::Configuration;
use super::entry::{Entry, EntryKind};
use super::message::Message;
use super::status::Status;
use super::types::{LogIndex, NodeId, Term, Ticket};

/// The state that must survive a crash before votes and acks that depend on it leave the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// The current term.
    pub term: Term,
    /// The candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The commit index known when this hard state was produced. Unlike `term` and `vote` it
    /// may be written lazily: losing it only costs re-learning it from the leader.
    pub commit: LogIndex,
}

/// The role of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one). Learners are always followers.
    Follower,
    /// Collecting pre-votes; the term is not yet incremented.
    PreCandidate,
    /// Collecting votes in a new term.
    Candidate,
    /// Leads the partition for the current term.
    Leader,
}

/// Volatile state reported when it changes (for leader-changed events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SoftState {
    /// This replica's role.
    pub role: Role,
    /// The leader this replica knows for `term`, if any.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: Term,
    /// Whether this replica leads and the no-op (leadership barrier) it appended at the start
    /// of its term has committed: only then does it know every committed entry and may it be
    /// announced as leader (Kommander's `AmILeaderQuick`). False in every other role.
    pub noop_committed: bool,
}

/// The answer to a [`Replica::read_index`](super::Replica::read_index) request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadState {
    /// The caller's context.
    pub context: u64,
    /// `Ok(index)`: the read may be served once the local applied index reaches `index`.
    /// `Err(status)`: leadership could not be confirmed (usually `NodeIsNotLeader`).
    pub result: Result<LogIndex, Status>,
}

/// The resolution of an operation accepted by this replica while it led: a proposal, a commit
/// or rollback marker, or a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    /// The operation's ticket.
    pub ticket: Ticket,
    /// Which operation: [`EntryKind::Normal`] (a proposal), `Commit`, `Rollback`, `Checkpoint`,
    /// `Configuration`.
    pub kind: EntryKind,
    /// The last log index of the operation's entries.
    pub index: LogIndex,
    /// `Success` once committed by a quorum; `ReplicationFailed` if leadership was lost first
    /// (the entries may still commit later: the result is indeterminate).
    pub status: Status,
}

/// Where a log starts: the last index it no longer holds (compacted, or covered by an
/// installed snapshot), that entry's term, and the configuration in force there (which the
/// log above may no longer show: keep it with the floor).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Floor {
    /// The last index the log no longer holds.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The configuration in force at `index`.
    pub configuration: Configuration,
}

/// Messages that may be sent only once the Ready that produced them is durable.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GatedMessages {
    ready_number: u64,
    messages: Vec<Message>,
}

impl GatedMessages {
    /// No messages, with `buffer`'s capacity (emptied) for a later
    /// [`Replica::ready_into`](super::Replica::ready_into) to fill: a runtime gives back the
    /// vectors [`GatedMessages::release`] handed out.
    #[must_use]
    pub fn reusing(mut buffer: Vec<Message>) -> Self {
        buffer.clear();
        Self {
            ready_number: 0,
            messages: buffer,
        }
    }

    /// Makes these the messages `from` held (moved out, `from` keeps its capacity), gated by
    /// Ready `ready_number`; what these held is dropped.
    pub(crate) fn refill(&mut self, ready_number: u64, from: &mut Vec<Message>) {
        self.ready_number = ready_number;
        self.messages.clear();
        move_into(&mut self.messages, from);
    }

    /// The Ready whose durability gates these messages.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn ready_number(&self) -> u64 {
        self.ready_number
    }

    /// Whether there is nothing to send.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Number of gated messages.
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Read-only view (for traces and tests); sending needs [`GatedMessages::release`].
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn peek(&self) -> &[Message] {
        &self.messages
    }

    /// Hands out the messages if every Ready up to `durable_through` is durable and that covers
    /// this Ready; otherwise gives `self` back unchanged.
    ///
    /// # Errors
    ///
    /// Returns `Err(self)` when `durable_through` is below this Ready's number.
    pub fn release(self, durable_through: u64) -> Result<Vec<Message>, Self> {
        if durable_through >= self.ready_number {
            Ok(self.messages)
        } else {
            Err(self)
        }
    }
}

/// One batch of work for the runtime, numbered. Obligations, in order:
///
/// 1. persist `installed_snapshot` (if any: the log restarts there), `hard_state` (if any) and
///    `entries`: when `entries[0].index` is at or below the
///    last index handed out before, every stored entry from that index on is replaced; when
///    `compaction_floor` is set, entries at or below it may be discarded;
/// 2. send `messages` at any time (they do not depend on this Ready's durability);
/// 3. once 1 is durable — and every earlier Ready too: writes complete in order — call
///    [`Replica::persisted`](super::Replica::persisted)`(number)` if `durability_awaited`
///    (for another Ready the call changes nothing: a later one covers it) and send
///    `persisted_messages` (released by [`GatedMessages::release`]). Gated messages wait for
///    earlier Readies even when this one has nothing to persist (see
///    [`Ready::must_wait_for_disk`]);
/// 4. deliver `committed_entries` to the application in order (they are already durable
///    locally), then call [`Replica::applied`](super::Replica::applied)`(committed_through)`;
/// 5. answer waiters from `outcomes` and `read_states`; start a snapshot transfer for every
///    node in `snapshot_required`; hand `snapshot_messages` to the transfers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Sequence number (1, 2, ...) to acknowledge with `persisted`.
    pub number: u64,
    /// Set when role, leader, term or `noop_committed` changed since the previous Ready.
    pub soft_state: Option<SoftState>,
    /// Hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// Whether the replica waits to hear that this Ready is durable: it holds entries or a
    /// term the replica has not yet seen durable. [`Replica::persisted`](super::Replica::persisted)
    /// for a Ready without it changes nothing (a commit index, a compaction floor or gated
    /// messages alone), and `persisted(n)` acknowledges every Ready up to `n`, so a runtime
    /// may skip it: at many active partitions, a leader's commit Ready per write would
    /// otherwise bring its replica back into the cache once more only to learn nothing.
    pub durability_awaited: bool,
    /// Entries to persist (consecutive indices).
    pub entries: Vec<Entry>,
    /// New compaction floor: a committed, applied checkpoint. The durable log may discard
    /// entries at or below it (a leader may still hold some in memory for lagging followers);
    /// keep its configuration with it.
    pub compaction_floor: Option<Floor>,
    /// Set when a snapshot was installed ([`Replica::install_snapshot`](super::Replica)): the
    /// stored log restarts after it (the entries after it stay when the stored entry at its
    /// index has its term, all go otherwise) and it becomes the floor, before `entries` are
    /// persisted.
    pub installed_snapshot: Option<Floor>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Messages to send once this Ready is durable (votes, append acknowledgements).
    pub persisted_messages: GatedMessages,
    /// Committed entries to deliver, strictly in log order, each exactly once. Held two-phase
    /// proposals, rolled-back proposals, markers and no-ops are not included.
    pub committed_entries: Vec<Entry>,
    /// The log index the delivery cursor reached (covers skipped entries too); pass it to
    /// `applied` once `committed_entries` are applied.
    pub committed_through: LogIndex,
    /// Answers to ReadIndex requests.
    pub read_states: Vec<ReadState>,
    /// Resolutions of operations this replica accepted as leader.
    pub outcomes: Vec<Outcome>,
    /// Followers that need entries below the compaction floor: only a snapshot helps them.
    pub snapshot_required: Vec<NodeId>,
    /// Snapshot chunks from the current leader (on a follower) and acknowledgements of this
    /// leader's chunks (on the leader), for the runtime's transfers; their terms are checked.
    pub snapshot_messages: Vec<Message>,
    /// Set when the replica entered (`Some(true)`) or left (`Some(false)`) quiescence since the
    /// previous Ready (decision 0007): a quiesced replica does nothing on `tick`, so the
    /// runtime may stop ticking it until a Ready says it woke.
    pub quiescence: Option<bool>,
}

impl Ready {
    /// Drops the content, keeping the vectors' capacity (for
    /// [`Replica::ready_into`](super::Replica::ready_into)).
    pub fn clear(&mut self) {
        let Self {
            number,
            soft_state,
            hard_state,
            durability_awaited,
            entries,
            compaction_floor,
            installed_snapshot,
            messages,
            persisted_messages,
            committed_entries,
            committed_through,
            read_states,
            outcomes,
            snapshot_required,
            snapshot_messages,
            quiescence,
        } = self;
        *number = 0;
        *soft_state = None;
        *hard_state = None;
        *durability_awaited = false;
        entries.clear();
        *compaction_floor = None;
        *installed_snapshot = None;
        messages.clear();
        persisted_messages.ready_number = 0;
        persisted_messages.messages.clear();
        committed_entries.clear();
        *committed_through = LogIndex::ZERO;
        read_states.clear();
        outcomes.clear();
        snapshot_required.clear();
        snapshot_messages.clear();
        *quiescence = None;
    }

    /// Whether step 1 of the contract has anything to write.
    #[must_use]
    pub fn must_persist(&self) -> bool {
        self.hard_state.is_some()
            || !self.entries.is_empty()
            || self.compaction_floor.is_some()
            || self.installed_snapshot.is_some()
    }

    /// Whether this Ready must go through the disk queue: it has something to write, or gated
    /// messages that may only leave once every earlier write is durable. A Ready for which
    /// this is false needs no `persisted` call (a later one covers it).
    #[must_use]
    #[cfg(feature = "sim")]
    pub fn must_wait_for_disk(&self) -> bool {
        self.must_persist() || !self.persisted_messages.is_empty()
    }
}

/// Moves what `from` holds to the end of `to`; `from` keeps its capacity. Most of a Ready's
/// outputs are empty: those cost a length check, not a copy call.
pub(super) fn move_into<T>(to: &mut Vec<T>, from: &mut Vec<T>) {
    if !from.is_empty() {
        to.append(from);
    }
}
