//! The logical state of the log: per partition, its entries' locations (the in-memory index),
//! its compaction floor and the floor's meta, term and vote, and commit index. Pure: no I/O.
//!
//! The same `apply` functions serve appends (after validation) and recovery (replay), so
//! the state after recovery is the state the records describe, by construction.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::{RecordKind, TERM_VOTE_HAS_VOTE};
use crate::{PartitionId, PartitionInfo, TermVote};

/// Where an entry's payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryLoc {
    pub(crate) term: u64,
    pub(crate) lsn: u64,
    pub(crate) segment: u64,
    /// Offset of the payload in the segment file.
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// One partition's state.
#[derive(Clone, Debug)]
pub(crate) struct PartitionLog {
    /// Index of `entries[0]`, or of the next entry when empty.
    pub(crate) first_index: u64,
    /// Term at `first_index - 1` when known (set by compaction), else 0.
    pub(crate) floor_term: u64,
    /// The opaque bytes the latest floor-moving record carried (empty when none did).
    pub(crate) floor_meta: Bytes,
    /// No entry and no floor yet: the first entry may have any index.
    pub(crate) fresh: bool,
    pub(crate) entries: VecDeque<EntryLoc>,
    pub(crate) term_vote: Option<(TermVote, u64)>,
    pub(crate) commit_index: Option<(u64, u64)>,
    /// LSN of the latest record that set the floor (compact or reset): it must stay on disk
    /// or the floor term and meta would be lost.
    pub(crate) floor_lsn: Option<u64>,
    /// LSN of the latest truncation since the last reset: it must stay on disk while it
    /// decides where an emptied log restarts.
    pub(crate) truncate_lsn: Option<u64>,
    /// This partition's preview in the batch being validated, tagged with that batch's number
    /// (a stale tag means the batch has not touched it yet): see [`Sketch`].
    sketch: Cell<(u64, SketchEntry)>,
}

impl Default for PartitionLog {
    fn default() -> Self {
        Self {
            first_index: 1,
            floor_term: 0,
            floor_meta: Bytes::new(),
            fresh: true,
            entries: VecDeque::new(),
            term_vote: None,
            commit_index: None,
            floor_lsn: None,
            truncate_lsn: None,
            sketch: Cell::new((0, SketchEntry::ABSENT)),
        }
    }
}

impl PartitionLog {
    pub(crate) fn last_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64 - 1
    }

    pub(crate) fn next_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.floor_term, |e| e.term)
    }

    pub(crate) fn entry(&self, index: u64) -> Option<&EntryLoc> {
        let offset = index.checked_sub(self.first_index)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    pub(crate) fn term_at(&self, index: u64) -> Option<u64> {
        if let Some(entry) = self.entry(index) {
            return Some(entry.term);
        }
        (!self.fresh && index.checked_add(1) == Some(self.first_index)).then_some(self.floor_term)
    }

    /// The oldest LSN this partition still needs on disk.
    pub(crate) fn oldest_live_lsn(&self) -> Option<u64> {
        [
            self.entries.front().map(|e| e.lsn),
            self.term_vote.map(|(_, lsn)| lsn),
            self.commit_index.map(|(_, lsn)| lsn),
            self.floor_lsn,
            self.truncate_lsn,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn info(&self) -> PartitionInfo {
        PartitionInfo {
            first_index: self.first_index,
            last_index: self.last_index(),
            last_term: self.last_term(),
            term_vote: self.term_vote.map(|(term_vote, _)| term_vote),
            commit_index: self.commit_index.map(|(ci, _)| ci),
        }
    }

    /// Returns whether anything changed.
    fn truncate_after(&mut self, index: u64) -> bool {
        let before = (self.first_index, self.entries.len(), self.fresh);
        if index < self.first_index {
            self.entries.clear();
            self.first_index = index + 1;
        } else {
            let keep = (index - self.first_index + 1).min(self.entries.len() as u64);
            self.entries.truncate(keep as usize);
        }
        self.fresh = false;
        before != (self.first_index, self.entries.len(), self.fresh)
    }

    /// Returns whether the record now holds the floor (a compaction below the floor does
    /// nothing). One exactly at the floor restates it (term and meta): in a replay that starts
    /// mid-history (after reclamation) the partition may have restarted at its first entry
    /// without the floor, and this record carries it. (An append at the floor writes the
    /// floor's own meta, so there it changes nothing.)
    fn compact_to(&mut self, index: u64, term: u64, meta: &[u8]) -> bool {
        if !self.fresh && index < self.first_index {
            return false;
        }
        if self.fresh || index > self.first_index {
            let drop = index.saturating_sub(self.first_index);
            if drop >= self.entries.len() as u64 {
                self.entries.clear();
            } else {
                self.entries.drain(..drop as usize);
            }
            self.first_index = index;
            self.fresh = false;
        }
        self.floor_term = term;
        self.set_floor_meta(meta);
        true
    }

    /// Keeps a copy of `meta` unless it is the meta held already (a restatement), so that
    /// neither an empty meta nor a restated one allocates.
    fn set_floor_meta(&mut self, meta: &[u8]) {
        if self.floor_meta[..] != *meta {
            self.floor_meta = Bytes::copy_from_slice(meta);
        }
    }
}

/// A record to apply, already encoded or about to be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Applied<'a> {
    pub(crate) kind: RecordKind,
    pub(crate) flags: u8,
    pub(crate) partition: PartitionId,
    pub(crate) term: u64,
    pub(crate) index: u64,
    pub(crate) lsn: u64,
    /// For entries: the payload's location.
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    /// The payload; read for compact-to and reset records only (their floor meta), since an
    /// entry's is found at its location.
    pub(crate) payload: &'a [u8],
}

/// A map keyed by partition id, hashed by foldhash's fast hasher (SipHash was measurable on
/// the per-record path) with a fixed seed.
pub(crate) type ByPartition<V> = HashMap<PartitionId, V, foldhash::fast::FixedState>;

/// Every partition's state.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogState {
    pub(crate) partitions: ByPartition<PartitionLog>,
}

impl LogState {
    pub(crate) fn get(&self, partition: PartitionId) -> Result<&PartitionLog> {
        self.partitions
            .get(&partition)
            .ok_or(Error::UnknownPartition { partition })
    }

    /// Applies a record. Lenient: used by replay, where the records were validated when
    /// written (and a suffix of the history may start mid-partition after reclamation).
    pub(crate) fn apply(&mut self, record: &Applied<'_>) {
        let lsn = record.lsn;
        if record.kind == RecordKind::DeletePartition {
            self.partitions.remove(&record.partition);
            return;
        }
        let state = self.partitions.entry(record.partition).or_default();
        match record.kind {
            RecordKind::Entry => {
                if state.fresh {
                    state.entries.clear();
                    state.first_index = record.index;
                    state.fresh = false;
                } else if record.index != state.next_index() {
                    // Only in a replay that starts mid-history (after reclamation): the
                    // entry restarts the partition's log at its index.
                    if record.index >= state.first_index && record.index < state.next_index() {
                        state.truncate_after(record.index - 1);
                    } else {
                        state.entries.clear();
                        state.first_index = record.index;
                    }
                }
                state.entries.push_back(EntryLoc {
                    term: record.term,
                    lsn,
                    segment: record.segment,
                    offset: record.offset,
                    len: record.len,
                });
            }
            RecordKind::TermVote => {
                let vote = (record.flags & TERM_VOTE_HAS_VOTE != 0).then_some(record.index);
                state.term_vote = Some((
                    TermVote {
                        term: record.term,
                        vote,
                    },
                    lsn,
                ));
            }
            RecordKind::CommitIndex => state.commit_index = Some((record.index, lsn)),
            RecordKind::TruncateAfter => {
                // A record that changed nothing must not move the pin off the one that did.
                if state.truncate_after(record.index) {
                    state.truncate_lsn = Some(lsn);
                }
            }
            RecordKind::CompactTo => {
                if state.compact_to(record.index, record.term, record.payload) {
                    state.floor_lsn = Some(lsn);
                }
            }
            RecordKind::Reset => {
                state.entries.clear();
                state.first_index = record.index;
                state.floor_term = record.term;
                state.set_floor_meta(record.payload);
                state.fresh = false;
                state.floor_lsn = Some(lsn);
                state.truncate_lsn = None;
            }
            RecordKind::DeletePartition => {}
        }
    }
}

/// A preview of the partitions a batch touches, for all-or-nothing validation, without a map
/// per batch: a partition the state holds keeps its preview in its own [`PartitionLog`],
/// tagged with the batch's number (so nothing is cleared between batches), and only partitions
/// the state does not hold yet go to `absent`, a map kept by the log and cleared per batch (so
/// validating allocates nothing in steady state).
#[derive(Debug, Default)]
pub(crate) struct Sketch {
    /// The number of the batch being validated (the first is 1; tags start at 0).
    batch: u64,
    absent: ByPartition<SketchEntry>,
    pub(crate) new_partitions: usize,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SketchEntry {
    pub(crate) exists: bool,
    /// An entry, truncation, compaction or boundary of this partition is earlier in the batch.
    pub(crate) log_written: bool,
    pub(crate) fresh: bool,
    pub(crate) first_index: u64,
    pub(crate) next_index: u64,
}

impl SketchEntry {
    /// The preview of a partition the log does not hold.
    const ABSENT: Self = Self {
        exists: false,
        log_written: false,
        fresh: true,
        first_index: 1,
        next_index: 1,
    };
}

impl Sketch {
    /// Starts the preview of a new batch.
    pub(crate) fn start_batch(&mut self) {
        self.batch += 1;
        self.absent.clear();
        self.new_partitions = 0;
    }

    /// The preview of `partition` in this batch (`held` is its state, looked up by the
    /// caller: its state before the batch if the batch has not touched it yet). Change it,
    /// then [`Sketch::keep`] it.
    pub(crate) fn preview(
        &mut self,
        held: Option<&PartitionLog>,
        partition: PartitionId,
    ) -> SketchEntry {
        match held {
            Some(p) => match p.sketch.get() {
                (batch, entry) if batch == self.batch => entry,
                _ => SketchEntry {
                    exists: true,
                    log_written: false,
                    fresh: p.fresh,
                    first_index: p.first_index,
                    next_index: p.next_index(),
                },
            },
            None => *self.absent.entry(partition).or_insert(SketchEntry::ABSENT),
        }
    }

    /// Keeps `entry` as the preview of `partition` for the rest of this batch.
    pub(crate) fn keep(
        &mut self,
        held: Option<&PartitionLog>,
        partition: PartitionId,
        entry: SketchEntry,
    ) {
        match held {
            Some(p) => p.sketch.set((self.batch, entry)),
            None => {
                self.absent.insert(partition, entry);
            }
        }
    }
}
