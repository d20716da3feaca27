//! Appending: all-or-nothing validation of a batch of writes, then encoding each record into
//! the open frame and applying it to the state; the one-write conveniences.

use super::{OpenFrame, Wal};
use crate::backend::AlignedBuf;
use crate::error::{Error, Result};
use crate::format::{
    FRAME_HEADER_LEN, RecordKind, TERM_VOTE_HAS_VOTE, encode_record, frame_footprint,
    record_footprint,
};
use crate::state::{Applied, Sketch};
use crate::{Lsn, PartitionId, TermVote, Write};

impl Wal {
    /// Appends a batch of writes for any number of partitions, in order, all or nothing.
    ///
    /// Returns the LSN the batch is durable at: once [`Wal::durable_lsn`] `>=` it.
    ///
    /// # Errors
    /// Bad input changes nothing: [`Error::RecordTooLarge`], [`Error::FloorMetaTooLarge`],
    /// [`Error::NotContiguous`] (an entry must follow the partition's last index; after
    /// [`Write::TruncateAfter`] in the same batch, the truncation point),
    /// [`Error::IndexTooLarge`] (an entry at `u64::MAX`), [`Error::UnknownPartition`]
    /// (truncate, compact or delete of a partition with no records),
    /// [`Error::BelowCompactionFloor`], [`Error::InstallAfterLogWrite`],
    /// [`Error::TooManyPartitions`]. [`Error::Poisoned`] and I/O errors (which poison).
    ///
    /// # Durability
    /// None on return. The writes are in the current frame, written at the next
    /// [`Wal::submit`] (or earlier, when the frame fills).
    pub fn append(&mut self, writes: &[Write<'_>]) -> Result<Lsn> {
        self.append_iter(writes.iter().copied())
    }

    /// [`Wal::append`] of the batch `writes` yields, without a slice to hold it: the iterator
    /// is walked twice (a clone of it validates the whole batch first), so it must yield the
    /// same writes each time.
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn append_iter<'w>(
        &mut self,
        mut writes: impl Iterator<Item = Write<'w>> + Clone,
    ) -> Result<Lsn> {
        self.check_poison()?;
        self.validate(writes.clone())?;
        // Internal iteration: a chain of iterators is walked part by part, not asked for
        // each write in turn.
        writes.try_for_each(|write| {
            let result = self.append_one(&write);
            self.poison_on_error(result)
        })?;
        Ok(Lsn(self.next_lsn))
    }

    fn validate<'w>(&mut self, writes: impl Iterator<Item = Write<'w>>) -> Result<()> {
        let mut sketch = std::mem::take(&mut self.sketch);
        sketch.start_batch();
        let result = self.validate_with(writes, &mut sketch);
        self.sketch = sketch;
        result
    }

    fn validate_with<'w>(
        &self,
        mut writes: impl Iterator<Item = Write<'w>>,
        sketch: &mut Sketch,
    ) -> Result<()> {
        writes.try_for_each(|write| self.validate_one(write, sketch))?;
        if sketch.new_partitions > 0
            && self.state.partitions.len() + sketch.new_partitions > self.config.partitions_max
        {
            return Err(Error::TooManyPartitions {
                max: self.config.partitions_max,
            });
        }
        Ok(())
    }

    /// Validates `write` against the batch's preview so far (`sketch`), and previews it.
    fn validate_one(&self, write: Write<'_>, sketch: &mut Sketch) -> Result<()> {
        let partition = write.partition();
        let held = self.state.partitions.get(&partition);
        let entry = &mut sketch.preview(held, partition);
        let existed = entry.exists;
        let log_written = entry.log_written;
        entry.log_written |= !matches!(write, Write::TermVote { .. } | Write::CommitIndex { .. });
        match write {
            Write::Entry { index, payload, .. } => {
                if payload.len() > self.config.record_bytes_max {
                    return Err(Error::RecordTooLarge {
                        len: payload.len(),
                        max: self.config.record_bytes_max,
                    });
                }
                if index == u64::MAX {
                    return Err(Error::IndexTooLarge { partition, index });
                }
                if entry.fresh {
                    if index == 0 {
                        return Err(Error::NotContiguous {
                            partition,
                            index,
                            expected_index: 1,
                        });
                    }
                    entry.first_index = index;
                } else if index != entry.next_index {
                    return Err(Error::NotContiguous {
                        partition,
                        index,
                        expected_index: entry.next_index,
                    });
                }
                entry.fresh = false;
                entry.exists = true;
                entry.next_index = index + 1;
            }
            Write::TermVote { .. } | Write::CommitIndex { .. } => entry.exists = true,
            Write::TruncateAfter { index, .. } => {
                if !entry.exists {
                    return Err(Error::UnknownPartition { partition });
                }
                if index.saturating_add(1) < entry.first_index && !entry.fresh {
                    return Err(Error::BelowCompactionFloor {
                        partition,
                        index,
                        first_index: entry.first_index,
                    });
                }
                // As the state applies it: a fresh partition (first index 1, no entry)
                // keeps its first index, and expects its next entry there.
                entry.next_index = entry.next_index.min(index.saturating_add(1));
                entry.fresh = false;
            }
            Write::CompactTo {
                index, floor_meta, ..
            } => {
                self.check_floor_meta(floor_meta)?;
                if !entry.exists {
                    return Err(Error::UnknownPartition { partition });
                }
                if index == 0 {
                    return Err(Error::BelowCompactionFloor {
                        partition,
                        index,
                        first_index: entry.first_index,
                    });
                }
                if entry.fresh || index > entry.first_index {
                    entry.first_index = index;
                    entry.next_index = entry.next_index.max(index);
                    entry.fresh = false;
                }
            }
            Write::InstallSnapshot {
                index,
                term,
                floor_meta,
                ..
            } => {
                self.check_floor_meta(floor_meta)?;
                if log_written {
                    return Err(Error::InstallAfterLogWrite { partition });
                }
                if index == 0
                    || index == u64::MAX
                    || (!entry.fresh && index + 1 < entry.first_index)
                {
                    return Err(Error::BelowCompactionFloor {
                        partition,
                        index,
                        first_index: entry.first_index,
                    });
                }
                entry.next_index = if self.keeps_suffix(partition, index, term) {
                    entry.next_index.max(index + 1)
                } else {
                    index + 1
                };
                entry.first_index = index + 1;
                entry.fresh = false;
                entry.exists = true;
            }
            Write::DeletePartition { .. } => {
                if !entry.exists {
                    return Err(Error::UnknownPartition { partition });
                }
                entry.exists = false;
                entry.fresh = true;
                entry.first_index = 1;
                entry.next_index = 1;
            }
        }
        if !existed && entry.exists {
            sketch.new_partitions += 1;
        }
        let entry = *entry;
        sketch.keep(held, partition, entry);
        Ok(())
    }

    fn check_floor_meta(&self, floor_meta: &[u8]) -> Result<()> {
        if floor_meta.len() > self.config.floor_meta_bytes_max {
            return Err(Error::FloorMetaTooLarge {
                len: floor_meta.len(),
                max: self.config.floor_meta_bytes_max,
            });
        }
        Ok(())
    }

    fn append_one(&mut self, write: &Write<'_>) -> Result<()> {
        let partition = write.partition();
        match *write {
            Write::Entry {
                index,
                term,
                payload,
                ..
            } => self.append_record(RecordKind::Entry, 0, partition, term, index, payload),
            Write::TermVote { state, .. } => {
                let (flags, vote) = match state.vote {
                    Some(vote) => (TERM_VOTE_HAS_VOTE, vote),
                    None => (0, 0),
                };
                self.append_record(
                    RecordKind::TermVote,
                    flags,
                    partition,
                    state.term,
                    vote,
                    &[],
                )
            }
            Write::CommitIndex { index, .. } => {
                self.append_record(RecordKind::CommitIndex, 0, partition, 0, index, &[])
            }
            Write::TruncateAfter { index, .. } => {
                self.append_record(RecordKind::TruncateAfter, 0, partition, 0, index, &[])
            }
            Write::CompactTo {
                index, floor_meta, ..
            } => {
                let state = self.state.partitions.get(&partition);
                let term = state.and_then(|p| p.term_at(index - 1)).unwrap_or(0);
                // A compaction that does not move the floor carries the floor's own meta
                // (replay restates the floor with a compaction exactly at it), not the
                // caller's.
                let held = state
                    .filter(|p| !p.fresh && index <= p.first_index)
                    .map(|p| p.floor_meta.clone());
                let meta = held.as_deref().unwrap_or(floor_meta);
                self.append_record(RecordKind::CompactTo, 0, partition, term, index, meta)
            }
            Write::InstallSnapshot {
                index,
                term,
                floor_meta,
                ..
            } => {
                // Both records exist for other reasons and replay as written: a compaction
                // beyond the last entry clears the log, a reset clears it whatever it holds;
                // both set the floor's meta (the compaction is at or above the floor).
                let kind = if self.keeps_suffix(partition, index, term) {
                    RecordKind::CompactTo
                } else {
                    RecordKind::Reset
                };
                self.append_record(kind, 0, partition, term, index + 1, floor_meta)
            }
            Write::DeletePartition { .. } => {
                self.append_record(RecordKind::DeletePartition, 0, partition, 0, 0, &[])
            }
        }
    }

    /// Whether a snapshot boundary at (`index`, `term`) keeps the partition's log after it:
    /// the log holds that entry (or its floor is it) with that term.
    fn keeps_suffix(&self, partition: PartitionId, index: u64, term: u64) -> bool {
        self.state
            .partitions
            .get(&partition)
            .and_then(|p| p.term_at(index))
            == Some(term)
    }

    /// Encodes one record into the current frame (opening, sealing and rotating as needed)
    /// and applies it to the state.
    pub(super) fn append_record(
        &mut self,
        kind: RecordKind,
        flags: u8,
        partition: PartitionId,
        term: u64,
        index: u64,
        payload: &[u8],
    ) -> Result<()> {
        let footprint = record_footprint(payload.len());
        self.make_room(footprint)?;
        let lsn = self.next_lsn;
        let Some(frame) = self.current.as_mut() else {
            return Err(Error::io(
                "appending",
                &self.dir,
                std::io::Error::other("no open frame after make_room"),
            ));
        };
        let at = FRAME_HEADER_LEN + frame.payload_len;
        encode_record(
            &mut frame.buf.full_mut()[at..],
            kind,
            flags,
            partition,
            term,
            index,
            payload,
        );
        let offset = frame.offset + (at + crate::format::RECORD_HEADER_LEN) as u64;
        frame.payload_len += footprint;
        frame.records += 1;
        let segment = self.active_seq();
        self.state.apply(&Applied {
            kind,
            flags,
            partition,
            term,
            index,
            lsn,
            segment,
            offset,
            len: payload.len() as u32,
            payload,
        });
        self.next_lsn += 1;
        if let Some(active) = self.segments.back_mut() {
            active.end_lsn = self.next_lsn;
        }
        Ok(())
    }

    /// Ensures the current frame can take `footprint` more payload bytes.
    fn make_room(&mut self, footprint: usize) -> Result<()> {
        if self.current_fits(footprint) {
            return Ok(());
        }
        self.seal_and_submit()?;
        let needed = frame_footprint(footprint) as u64;
        if self.cursor + needed > self.active_len() {
            self.rotate()?;
            // The rotation may have opened a frame (restated control records): use it.
            if self.current_fits(footprint) {
                return Ok(());
            }
            self.seal_and_submit()?;
            // The rewrite budget leaves room for a largest frame; check, never write past
            // the end of a segment.
            if self.cursor + needed > self.active_len() {
                return Err(Error::io(
                    "appending",
                    &self.dir,
                    std::io::Error::other("a frame does not fit a fresh segment"),
                ));
            }
        }
        let buf = match self.spare.pop() {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => AlignedBuf::with_capacity(self.config.batch_bytes_max),
        };
        self.current = Some(OpenFrame {
            buf,
            offset: self.cursor,
            first_lsn: self.next_lsn,
            records: 0,
            payload_len: 0,
        });
        Ok(())
    }

    /// Whether the current frame (if any) can take `footprint` more payload bytes.
    fn current_fits(&self, footprint: usize) -> bool {
        self.current.as_ref().is_some_and(|frame| {
            let needed = frame_footprint(frame.payload_len + footprint) as u64;
            needed <= self.config.batch_bytes_max as u64
                && frame.offset + needed <= self.active_len()
        })
    }

    /// Appends a term-and-vote and a commit index record, where given.
    pub(super) fn append_control(
        &mut self,
        partition: PartitionId,
        term_vote: Option<TermVote>,
        commit: Option<u64>,
    ) -> Result<()> {
        if let Some(term_vote) = term_vote {
            let (flags, vote) = match term_vote.vote {
                Some(v) => (TERM_VOTE_HAS_VOTE, v),
                None => (0, 0),
            };
            self.append_record(
                RecordKind::TermVote,
                flags,
                partition,
                term_vote.term,
                vote,
                &[],
            )?;
        }
        if let Some(ci) = commit {
            self.append_record(RecordKind::CommitIndex, 0, partition, 0, ci, &[])?;
        }
        Ok(())
    }

    /// Appends one entry. See [`Wal::append`].
    ///
    /// # Errors
    /// As [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn append_entry(
        &mut self,
        partition: PartitionId,
        index: u64,
        term: u64,
        payload: &[u8],
    ) -> Result<Lsn> {
        self.append(&[Write::Entry {
            partition,
            index,
            term,
            payload,
        }])
    }

    /// Persists a partition's term and vote. See [`Wal::append`].
    ///
    /// # Errors
    /// As [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`]: a vote may be answered only once the returned LSN is durable.
    pub fn set_term_vote(&mut self, partition: PartitionId, state: TermVote) -> Result<Lsn> {
        self.append(&[Write::TermVote { partition, state }])
    }

    /// Persists a partition's commit index. See [`Wal::append`].
    ///
    /// # Errors
    /// As [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn set_commit_index(&mut self, partition: PartitionId, index: u64) -> Result<Lsn> {
        self.append(&[Write::CommitIndex { partition, index }])
    }

    /// Drops a partition's entries above `index` (a log conflict). See [`Wal::append`].
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], [`Error::BelowCompactionFloor`], or as [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`]. Until durable, a crash may bring the entries back.
    pub fn truncate_after(&mut self, partition: PartitionId, index: u64) -> Result<Lsn> {
        self.append(&[Write::TruncateAfter { partition, index }])
    }

    /// Drops a partition's entries below `index`, which becomes its first index (after a
    /// snapshot), keeping `floor_meta` with the floor if it moves (see [`Write::CompactTo`]
    /// and [`Wal::append`]).
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], [`Error::FloorMetaTooLarge`], or as [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn compact_to(
        &mut self,
        partition: PartitionId,
        index: u64,
        floor_meta: &[u8],
    ) -> Result<Lsn> {
        self.append(&[Write::CompactTo {
            partition,
            index,
            floor_meta,
        }])
    }

    /// Installs a snapshot's boundary (see [`Write::InstallSnapshot`] and [`Wal::append`]).
    ///
    /// # Errors
    /// [`Error::BelowCompactionFloor`] for an index below the floor (or 0),
    /// [`Error::FloorMetaTooLarge`], or as [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`]. Until durable, a crash brings the old log back.
    pub fn install_snapshot(
        &mut self,
        partition: PartitionId,
        index: u64,
        term: u64,
        floor_meta: &[u8],
    ) -> Result<Lsn> {
        self.append(&[Write::InstallSnapshot {
            partition,
            index,
            term,
            floor_meta,
        }])
    }

    /// Forgets a partition. See [`Wal::append`].
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], or as [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn delete_partition(&mut self, partition: PartitionId) -> Result<Lsn> {
        self.append(&[Write::DeletePartition { partition }])
    }
}
