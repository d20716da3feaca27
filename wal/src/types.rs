//! The values the log takes and reports: partition ids, LSNs, a partition's term and vote,
//! its summary, and the writes of a batch.

/// A partition (one Raft group). Partition 0 is the system partition.
///
/// The one partition id of the workspace: `kommander-raft`'s core re-exports it. Records store
/// it in 64 bits (`docs/wal-format.md`); recovery reports a stored value above `u32::MAX` as
/// corruption. Serialized as its number; displayed as `p<number>`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct PartitionId(pub u32);

impl PartitionId {
    /// The raw number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for PartitionId {
    fn from(value: u32) -> Self {
        Self(value)
    }
}

impl std::fmt::Display for PartitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A log sequence number: the position of a record in this log (one per record, from 0).
/// An append returns the LSN its records are durable at (see [`Wal::durable_lsn`](crate::Wal::durable_lsn)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

/// A partition's current term and the vote cast in it: what Raft must persist before it
/// answers a vote (Raft's "hard state" less the commit index, which has a record of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermVote {
    /// Current term.
    pub term: u64,
    /// The node voted for in `term`, if any.
    pub vote: Option<u64>,
}

/// What the log holds for a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// First index held (the compaction floor), or the next index when empty.
    pub first_index: u64,
    /// Last index held (`first_index - 1` when empty).
    pub last_index: u64,
    /// Term of the last entry (or of the floor when empty; 0 if unknown).
    pub last_term: u64,
    /// Latest term and vote.
    pub term_vote: Option<TermVote>,
    /// Latest commit index.
    pub commit_index: Option<u64>,
}

/// One write of a batch given to [`Wal::append`](crate::Wal::append).
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    /// A log entry at `last_index + 1` (or any index ≥ 1 for a partition with no entries and
    /// no floor yet).
    Entry {
        /// Partition.
        partition: PartitionId,
        /// Index.
        index: u64,
        /// Term.
        term: u64,
        /// Payload (at most `record_bytes_max`).
        payload: &'a [u8],
    },
    /// The partition's term and vote.
    TermVote {
        /// Partition.
        partition: PartitionId,
        /// The state.
        state: TermVote,
    },
    /// Commit index.
    CommitIndex {
        /// Partition.
        partition: PartitionId,
        /// The index.
        index: u64,
    },
    /// Drop entries above `index` (not below the floor: `index >= first_index - 1`).
    TruncateAfter {
        /// Partition.
        partition: PartitionId,
        /// Last index kept.
        index: u64,
    },
    /// Drop entries below `index`; `index` becomes the first index (may exceed the last).
    ///
    /// A compaction that moves the floor (above the first index, or the partition's first
    /// floor) keeps `floor_meta` with it; one at or below the floor changes neither the floor
    /// nor its meta (the given meta is ignored).
    CompactTo {
        /// Partition.
        partition: PartitionId,
        /// New first index.
        index: u64,
        /// Opaque bytes the log keeps with the new floor until the next floor replaces them,
        /// reported by [`Wal::floor_meta`](crate::Wal::floor_meta) (at most
        /// `floor_meta_bytes_max`; may be empty).
        floor_meta: &'a [u8],
    },
    /// A snapshot's boundary: the application now holds the partition's state through `index`,
    /// whose entry had `term`. When the log holds that entry with that term, the entries after
    /// it stay (they may still be the leader's) and those up to it go; otherwise the whole log
    /// goes. Either way the log then starts after `index`, with the floor (`index`, `term`).
    /// Must come before any other write of the partition's log in its batch. It always sets
    /// the floor's meta.
    InstallSnapshot {
        /// Partition.
        partition: PartitionId,
        /// The snapshot's last index: the new floor.
        index: u64,
        /// The term of the entry at `index`.
        term: u64,
        /// Opaque bytes the log keeps with the new floor, as for [`Write::CompactTo`].
        floor_meta: &'a [u8],
    },
    /// Forget the partition.
    DeletePartition {
        /// Partition.
        partition: PartitionId,
    },
}

impl Write<'_> {
    /// The partition written.
    pub fn partition(&self) -> PartitionId {
        match *self {
            Write::Entry { partition, .. }
            | Write::TermVote { partition, .. }
            | Write::CommitIndex { partition, .. }
            | Write::TruncateAfter { partition, .. }
            | Write::CompactTo { partition, .. }
            | Write::InstallSnapshot { partition, .. }
            | Write::DeletePartition { partition } => partition,
        }
    }
}
