//! The one status enum of the library: every outcome a caller can observe, named as in the
//! reference (`RaftOperationStatus` of the C# original).

/// The outcome of an operation. Values are named after the reference; the core produces a subset
/// (documented on each variant), the runtime the rest.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The operation succeeded.
    Success,
    /// A generic failure: the request is invalid in the current state (for example committing a
    /// ticket that was rolled back, or a message that is malformed).
    Errored,
    /// The operation needs the leader and this replica is not (or is handing off leadership).
    NodeIsNotLeader,
    /// A message came from a leader of an older term.
    LeaderInOldTerm,
    /// Leadership transfer to the node that already leads.
    LeaderAlreadyElected,
    /// A message from a node that is not a member of this partition.
    LogsFromAnotherLeader,
    /// A checkpoint was requested while a two-phase proposal is unresolved, or a ticket is
    /// reused while its earlier proposal is still unresolved.
    ActiveProposal,
    /// Commit or rollback of a ticket this replica does not know (never proposed here, or
    /// already delivered and forgotten).
    ProposalNotFound,
    /// The caller's wait ran out (produced by the runtime, never by the core).
    ProposalTimeout,
    /// The proposal's fate is unknown: leadership was lost before it committed. It may still
    /// commit under the next leader; callers must treat it as indeterminate.
    ReplicationFailed,
    /// Internal asynchronous marker: the answer comes later.
    Pending,
    /// A bounded queue is full (`uncommitted_entries_max`, `uncommitted_bytes_max`,
    /// `read_index_pending_max`); retry later.
    ProposalQueueFull,
    /// The partition is still restoring (runtime).
    RestoreInProgress,
    /// The message or request targets another partition or a stale partition generation.
    PartitionMoved,
    /// A membership change computed on an old membership version (membership layer).
    StaleMembership,
    /// Another membership change is in flight (membership layer).
    ConcurrentMembershipChange,
    /// The change would leave no voter (membership layer).
    InsufficientVoters,
    /// An anchored append did not match the follower's log.
    LogMismatch,
    /// A follower needs entries below the leader's compaction floor: only a snapshot helps.
    SnapshotRequired,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Status {}

impl Status {
    /// Every status, in the order of their wire codes ([`Status::code`]).
    pub const ALL: [Self; 19] = [
        Self::Success,
        Self::Errored,
        Self::NodeIsNotLeader,
        Self::LeaderInOldTerm,
        Self::LeaderAlreadyElected,
        Self::LogsFromAnotherLeader,
        Self::ActiveProposal,
        Self::ProposalNotFound,
        Self::ProposalTimeout,
        Self::ReplicationFailed,
        Self::Pending,
        Self::ProposalQueueFull,
        Self::RestoreInProgress,
        Self::PartitionMoved,
        Self::StaleMembership,
        Self::ConcurrentMembershipChange,
        Self::InsufficientVoters,
        Self::LogMismatch,
        Self::SnapshotRequired,
    ];

    /// A stable one-byte code for wire formats (the position in [`Status::ALL`]).
    #[must_use]
    pub fn code(self) -> u8 {
        Self::ALL
            .iter()
            .position(|&s| s == self)
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(u8::MAX)
    }

    /// The inverse of [`Status::code`]; `None` for an unknown code.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
}
