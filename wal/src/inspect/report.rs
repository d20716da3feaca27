//! The report's types: what [`inspect`](super::inspect()) found, as plain data (`Serialize`
//! for JSON; `Display` is in `text.rs`).

use serde::Serialize;

use crate::PartitionId;
use crate::recovery::Damage;

/// Everything [`inspect`](super::inspect()) found in a WAL directory. `Display` renders a compact text report;
/// `Serialize` gives the same content as JSON (e.g. with `serde_json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    /// The directory.
    pub dir: String,
    /// The `KOMMANDER_WAL` marker.
    pub marker: MarkerState,
    /// What `Wal::open` would do with the directory as it is.
    pub recovery: RecoveryVerdict,
    /// Files being prepared when a node stopped (`*.tmp`); the next open removes them.
    pub temporary_files: Vec<String>,
    /// Files that are not the log's (an open refuses them without a valid marker).
    pub other_files: Vec<String>,
    /// Segments a live node reclaimed while they were being read, in the last of several
    /// reads: the report may miss records of the oldest segments (inspect again).
    pub vanished_files: Vec<String>,
    /// Every segment, by sequence number.
    pub segments: Vec<SegmentReport>,
    /// Every partition with records (live or deleted), by id.
    pub partitions: Vec<PartitionReport>,
    /// Every damage, in the order recovery meets it (the first fatal one is its error).
    pub damages: Vec<Damage>,
    /// Sums over segments and partitions.
    pub totals: Totals,
    /// The live entries, when [`InspectOptions::entries`](super::InspectOptions::entries) asked for them.
    pub entries: Option<EntryListing>,
}

/// The state of the `KOMMANDER_WAL` marker file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerState {
    /// Present with the expected content.
    Valid,
    /// Absent (an open refuses a directory holding segments without it).
    Missing,
    /// Present but not a kommander-wal marker.
    Invalid,
}

/// What `Wal::open` would do with the directory as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecoveryVerdict {
    /// Opens it without changing anything.
    Opens,
    /// Opens it after these repairs (each described in a sentence).
    OpensAfterRepair {
        /// What it changes on disk.
        repairs: Vec<String>,
    },
    /// Fails with this error (nothing is changed; the node must be repaired from its peers).
    Refuses {
        /// The error's message.
        error: String,
    },
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentReport {
    /// File name (`<seq:016x>.wal`).
    pub file: String,
    /// Sequence number (from the name).
    pub seq: u64,
    /// Epoch from the header, if the header verifies.
    pub epoch: Option<u64>,
    /// Creation time from the header (unix ns; 0 in deterministic test runs).
    pub created_unix_ns: Option<u64>,
    /// File size.
    pub size_bytes: u64,
    /// Header block plus the frames recovery accepts (where the next frame would go).
    pub bytes_used: u64,
    /// Valid frames recovery replays.
    pub frames: u64,
    /// Records in those frames.
    pub records: u64,
    /// LSN of the first record.
    pub first_lsn: Option<u64>,
    /// LSN of the last record.
    pub last_lsn: Option<u64>,
    /// How the segment ends.
    pub status: SegmentStatus,
}

/// How a segment ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SegmentStatus {
    /// Its frames verify up to a clean end (zeros, a stale frame of the file's earlier life,
    /// or the end of the file).
    Ok,
    /// After the last written segment: prepared ahead (zero-filled or recycled), no frame.
    Prepared,
    /// The first damage found in it (all are in [`InspectReport::damages`]).
    Damaged(Damage),
}

/// One partition, as replaying the accepted frames leaves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// Partition id.
    pub id: PartitionId,
    /// Its last record on disk deletes it. A deleted partition reports an empty log (first
    /// index 1, last 0) and no state. (A deletion whose segment was reclaimed leaves no trace.)
    pub deleted: bool,
    /// First index held (or the next index when empty).
    pub first_index: u64,
    /// Last index held (`first_index - 1` when empty).
    pub last_index: u64,
    /// Term of the last entry (or of the compaction floor when empty; 0 if unknown).
    pub last_term: u64,
    /// Live entries (`last_index - first_index + 1`).
    pub entries: u64,
    /// Payload bytes of the live entries.
    pub entry_bytes: u64,
    /// The compaction floor, if a record sets it with a known term.
    pub compaction_floor: Option<Floor>,
    /// The floor's meta (opaque bytes kept with the floor; empty when none was given).
    pub floor_meta: FloorMeta,
    /// Latest term and vote.
    pub term_vote: Option<TermVoteReport>,
    /// Latest commit index.
    pub commit_index: Option<u64>,
    /// LSN of the oldest record it still needs: the oldest segment it pins.
    pub oldest_live_lsn: Option<u64>,
}

/// A compaction floor: the last compacted index and its term (Raft's snapshot index/term).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Floor {
    /// The last index dropped (`first_index - 1`).
    pub index: u64,
    /// Its term (0 if unknown).
    pub term: u64,
}

/// A floor's meta, summed up: its length and its first bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FloorMeta {
    /// Its length in bytes.
    pub len: u64,
    /// Hex of its first [`FloorMeta::PREFIX_BYTES`] bytes (empty when it is).
    pub prefix_hex: String,
}

impl FloorMeta {
    /// How many bytes of the meta the report shows.
    pub const PREFIX_BYTES: usize = 8;

    pub(super) fn of(meta: &[u8]) -> Self {
        let shown = &meta[..meta.len().min(Self::PREFIX_BYTES)];
        Self {
            len: meta.len() as u64,
            prefix_hex: shown.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// A term and the vote in it (the WAL's [`crate::TermVote`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TermVoteReport {
    /// Current term.
    pub term: u64,
    /// Vote in that term.
    pub vote: Option<u64>,
}

/// Sums over the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Segment files.
    pub segments: u64,
    /// Their sizes.
    pub size_bytes: u64,
    /// Bytes in use (headers and accepted frames).
    pub bytes_used: u64,
    /// Accepted frames.
    pub frames: u64,
    /// Records in them.
    pub records: u64,
    /// LSN of the first record.
    pub first_lsn: Option<u64>,
    /// LSN of the last record.
    pub last_lsn: Option<u64>,
    /// Live partitions.
    pub partitions: u64,
    /// Deleted partitions.
    pub partitions_deleted: u64,
    /// Live entries.
    pub entries: u64,
    /// Their payload bytes.
    pub entry_bytes: u64,
    /// Damages (fatal or not).
    pub damages: u64,
    /// Fatal damages.
    pub damages_fatal: u64,
}

/// The live entries, by partition then index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryListing {
    /// The first [`InspectOptions::entries_max`](super::InspectOptions::entries_max) entries.
    pub listed: Vec<EntryReport>,
    /// Entries not listed.
    pub omitted: u64,
}

/// One live entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EntryReport {
    /// Partition.
    pub partition: PartitionId,
    /// Index.
    pub index: u64,
    /// Term.
    pub term: u64,
    /// Payload length.
    pub payload_bytes: u32,
    /// LSN of its record.
    pub lsn: u64,
    /// Segment holding it.
    pub segment: u64,
    /// Offset of its payload in that segment.
    pub offset: u64,
}
