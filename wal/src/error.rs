//! The typed errors of the log.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::PartitionId;

/// Everything the log can fail with. Fatal conditions ([`Error::Poisoned`], corruption) are
/// distinct from bad input (which changes nothing and may be retried with other input).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed. If it was a write or a sync, the log is now poisoned.
    #[error("I/O error while {context} ({path:?}): {source}")]
    Io {
        /// What the log was doing.
        context: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed; the log accepts nothing more (fail-stop). Reopen it
    /// (recovery decides what is durable) after fixing the cause.
    #[error("the WAL is poisoned by an earlier I/O failure: {cause}")]
    Poisoned {
        /// The first failure.
        cause: Arc<str>,
    },
    /// Another process (or another open in this process) holds the directory's lock.
    #[error("the WAL directory {dir:?} is locked by another user")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory holds files that are not a WAL's; nothing was changed.
    #[error("{dir:?} is not a WAL directory: {reason}")]
    NotAWal {
        /// The directory.
        dir: PathBuf,
        /// What was found.
        reason: String,
    },
    /// A configuration value is out of range; nothing was opened.
    #[error("invalid WAL config `{field}`: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Recovery found damage that is not a torn tail: a bad frame before valid data, a bad
    /// frame in a sealed segment, an LSN gap, a bad segment header that is not the newest.
    /// Nothing was changed; the caller decides (repair from peers).
    #[error(
        "WAL segment {} is corrupt at offset {offset}: {reason}",
        crate::segment::segment_name(*.segment)
    )]
    Corrupt {
        /// The segment's sequence number (its file is `<segment:016x>.wal`).
        segment: u64,
        /// Byte offset in that segment.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment between the oldest and the newest is missing.
    #[error("WAL segment {} is missing", crate::segment::segment_name(*.segment))]
    MissingSegment {
        /// The missing sequence number.
        segment: u64,
    },
    /// The partition has no records in this log.
    #[error("unknown partition {partition}")]
    UnknownPartition {
        /// The partition.
        partition: PartitionId,
    },
    /// The index is outside the partition's entries.
    #[error("partition {partition} has no entry {index} (first {first_index}, last {last_index})")]
    IndexOutOfRange {
        /// The partition.
        partition: PartitionId,
        /// The index asked for.
        index: u64,
        /// The first index held.
        first_index: u64,
        /// The last index held (`first_index - 1` when empty).
        last_index: u64,
    },
    /// The entry was appended but its frame is not durable yet (reads are served from the
    /// durable log only).
    #[error("partition {partition} entry {index} is not durable yet")]
    NotDurable {
        /// The partition.
        partition: PartitionId,
        /// The index.
        index: u64,
    },
    /// Truncating below the compaction floor.
    #[error(
        "partition {partition}: cannot truncate after {index}, below the first index {first_index}"
    )]
    BelowCompactionFloor {
        /// The partition.
        partition: PartitionId,
        /// The index asked for.
        index: u64,
        /// The first index held.
        first_index: u64,
    },
    /// An entry that does not extend the partition's log contiguously.
    #[error("partition {partition}: entry {index} does not follow {expected_index} - 1")]
    NotContiguous {
        /// The partition.
        partition: PartitionId,
        /// The index given.
        index: u64,
        /// The index expected.
        expected_index: u64,
    },
    /// An entry at index `u64::MAX`: the partition's log would have no next index (recovery
    /// refuses such a record as corruption, so the log never writes one).
    #[error("partition {partition}: entry {index} would leave the log no next index")]
    IndexTooLarge {
        /// The partition.
        partition: PartitionId,
        /// The index given.
        index: u64,
    },
    /// A record payload over `record_bytes_max`.
    #[error("record of {len} bytes is over the limit record_bytes_max = {max}")]
    RecordTooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A floor meta over `floor_meta_bytes_max` ([`crate::Write::CompactTo`],
    /// [`crate::Write::InstallSnapshot`]).
    #[error("floor meta of {len} bytes is over the limit floor_meta_bytes_max = {max}")]
    FloorMetaTooLarge {
        /// The meta's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A [`crate::Write::InstallSnapshot`] after another write of the partition's log in the
    /// same batch (whether it keeps the log's suffix depends on the log as it stands).
    #[error(
        "partition {partition}: a snapshot boundary must come before the batch's other writes of the partition's log"
    )]
    InstallAfterLogWrite {
        /// The partition.
        partition: PartitionId,
    },
    /// A new partition would exceed `partitions_max`.
    #[error("too many partitions: partitions_max = {max}")]
    TooManyPartitions {
        /// The limit.
        max: usize,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// Maps an I/O error to [`Error::Io`] with what the log was doing and the path involved.
pub(crate) fn io_err<'a>(
    context: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::io(context, path, e)
}
