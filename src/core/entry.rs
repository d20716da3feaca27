//! Log entries: what is replicated, persisted and delivered.

use bytes::Bytes;

use super::types::{LogIndex, Term, Ticket};

/// What an entry means to Kommander's write model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// An application proposal. Delivered when committed, unless `auto_commit` is false: then it
    /// is held until a [`EntryKind::Commit`] or [`EntryKind::Rollback`] marker for its ticket
    /// commits.
    Normal,
    /// The leadership barrier a new leader appends; never delivered.
    NoOp,
    /// Resolves the held proposal with the same ticket as committed; never delivered itself.
    Commit,
    /// Resolves the held proposal with the same ticket as rolled back (never delivered); never
    /// delivered itself.
    Rollback,
    /// A checkpoint: delivered like a normal entry; once committed and applied it becomes the
    /// compaction floor.
    Checkpoint,
    /// A new configuration of the partition (its payload is an encoded `Configuration`, see
    /// `transport::codec`): in force from the moment it is in a log, committed or not; never
    /// delivered.
    Configuration,
}

impl EntryKind {
    /// A stable one-byte code for storage and wire formats.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::NoOp => 1,
            Self::Commit => 2,
            Self::Rollback => 3,
            Self::Checkpoint => 4,
            Self::Configuration => 5,
        }
    }

    /// The inverse of [`EntryKind::code`]; `None` for an unknown code.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Normal),
            1 => Some(Self::NoOp),
            2 => Some(Self::Commit),
            3 => Some(Self::Rollback),
            4 => Some(Self::Checkpoint),
            5 => Some(Self::Configuration),
            _ => None,
        }
    }
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position in the partition's log (≥ 1).
    pub index: LogIndex,
    /// Term of the leader that created the entry.
    pub term: Term,
    /// What the entry means.
    pub kind: EntryKind,
    /// The ticket of the proposal (for markers: of the proposal they resolve).
    pub ticket: Ticket,
    /// For [`EntryKind::Normal`]: deliver as soon as committed (`true`) or hold until a marker
    /// commits (`false`). Always `true` for other kinds.
    pub auto_commit: bool,
    /// Application bytes (empty for markers and no-ops). Cloning shares the buffer.
    pub payload: Bytes,
}

impl Entry {
    /// Bytes this entry counts for flow control (payload plus a fixed per-entry overhead, so
    /// empty entries still count).
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        Self::size_bytes_for(self.payload.len())
    }

    /// [`Entry::size_bytes`] of an entry carrying `payload_len` bytes.
    #[must_use]
    pub const fn size_bytes_for(payload_len: usize) -> u64 {
        const ENTRY_OVERHEAD_BYTES: u64 = 32;
        payload_len as u64 + ENTRY_OVERHEAD_BYTES
    }

    /// Whether this entry is held from delivery until a marker resolves its ticket.
    #[must_use]
    pub const fn is_two_phase(&self) -> bool {
        matches!(self.kind, EntryKind::Normal) && !self.auto_commit
    }
}
