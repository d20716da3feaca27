//! Reads: entry payloads as `Bytes` borrowing the segments' mappings (durable entries only),
//! terms, floor metas, and the partitions' summaries.

use std::ops::Range;

use bytes::Bytes;

use super::Wal;
use crate::error::{Error, Result};
use crate::{PartitionId, PartitionInfo};

impl Wal {
    /// The payload of one durable entry, borrowing the segment's mapping (no copy).
    ///
    /// The bytes stay valid as long as they are held, even after the log drops the segment
    /// (a reclaimed segment still referenced is deleted, never recycled). Do not hold them
    /// across closing and reopening the same directory: the reopened log does not know
    /// about them and may recycle their file.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::UnknownPartition`], [`Error::IndexOutOfRange`],
    /// [`Error::NotDurable`].
    pub fn entry(&self, partition: PartitionId, index: u64) -> Result<Bytes> {
        self.check_poison()?;
        let state = self.state.get(partition)?;
        let Some(loc) = state.entry(index) else {
            return Err(Error::IndexOutOfRange {
                partition,
                index,
                first_index: state.first_index,
                last_index: state.last_index(),
            });
        };
        if loc.lsn >= self.durable_lsn {
            return Err(Error::NotDurable { partition, index });
        }
        self.segment(loc.segment)
            .and_then(|s| s.slice(loc.offset, loc.len))
            .ok_or_else(|| Error::Corrupt {
                segment: loc.segment,
                offset: loc.offset,
                reason: "index points outside the mapped segments".into(),
            })
    }

    /// The payloads of entries `range` of a partition, appended to `out` in index order, each
    /// borrowing the mapping (no copy). All or nothing.
    ///
    /// # Errors
    /// As [`Wal::entry`], for the first index that fails.
    pub fn entries(
        &self,
        partition: PartitionId,
        range: Range<u64>,
        out: &mut Vec<Bytes>,
    ) -> Result<()> {
        let start = out.len();
        for index in range {
            match self.entry(partition, index) {
                Ok(bytes) => out.push(bytes),
                Err(error) => {
                    out.truncate(start);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The term of entry `index` (or of `first_index - 1`, the compaction floor).
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::UnknownPartition`], [`Error::IndexOutOfRange`].
    pub fn term_at(&self, partition: PartitionId, index: u64) -> Result<u64> {
        self.check_poison()?;
        let state = self.state.get(partition)?;
        state.term_at(index).ok_or(Error::IndexOutOfRange {
            partition,
            index,
            first_index: state.first_index,
            last_index: state.last_index(),
        })
    }

    /// The floor's meta: the opaque bytes of the latest
    /// [`Write::CompactTo`](crate::Write::CompactTo) that moved the partition's floor or
    /// [`Write::InstallSnapshot`](crate::Write::InstallSnapshot) (empty if none carried any), as
    /// appended (including records not yet durable). The log's own copy: no copy is made.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::UnknownPartition`].
    pub fn floor_meta(&self, partition: PartitionId) -> Result<Bytes> {
        self.check_poison()?;
        Ok(self.state.get(partition)?.floor_meta.clone())
    }

    /// A partition's first/last index, last term, term and vote, and commit index, as appended
    /// (including records not yet durable).
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::UnknownPartition`].
    pub fn partition(&self, partition: PartitionId) -> Result<PartitionInfo> {
        self.check_poison()?;
        Ok(self.state.get(partition)?.info())
    }

    /// Every partition with records, in id order.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub fn partitions(&self) -> Result<Vec<(PartitionId, PartitionInfo)>> {
        self.check_poison()?;
        let mut list: Vec<_> = self
            .state
            .partitions
            .iter()
            .map(|(id, p)| (*id, p.info()))
            .collect();
        list.sort_unstable_by_key(|(id, _)| *id);
        Ok(list)
    }
}
