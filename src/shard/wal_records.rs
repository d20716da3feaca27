//! Ready → WAL records: the translation the WalScheduler applies to each Ready. A Ready
//! becomes, in this order, the hard state (term, vote) when it changed; the boundary of an
//! installed snapshot (the log restarts after it, keeping a suffix whose term matches); a
//! truncation when its
//! entries replace a stored suffix (a log conflict); the entries (encoded by `codec`); the
//! commit index when it changed (written in the same frame, so it costs no extra sync); the
//! compaction to just above a new floor, never past the application's durable index (a
//! compaction that waits for it is written later, alone: [`WalView::compaction`]). A
//! [`WalView`] per partition remembers what the WAL already holds, so nothing unchanged is
//! written again.

use kommander_wal::{PartitionInfo, TermVote, Write};

use super::codec;
use crate::core::{LogIndex, PartitionId, Ready};

/// What the shard last wrote to the WAL for a partition.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WalView {
    known: bool,
    last: u64,
    term: u64,
    vote: Option<u64>,
    commit: u64,
    /// The WAL's compaction floor.
    floor: u64,
    /// The highest floor the core allowed (an applied checkpoint).
    allowed_floor: u64,
}

impl WalView {
    /// The view of a partition whose records the WAL recovered.
    pub(crate) fn recovered(info: &PartitionInfo) -> Self {
        let floor = info.first_index.saturating_sub(1);
        Self {
            known: true,
            last: info.last_index,
            term: info.term_vote.map_or(0, |h| h.term),
            vote: info.term_vote.and_then(|h| h.vote),
            commit: info.commit_index.unwrap_or(0),
            floor,
            allowed_floor: floor,
        }
    }

    /// The first index to compact the WAL to, when the floor the core allows can move: up to
    /// that floor, but never past `durable` (the application's durable index, if it reports
    /// one). Records the move.
    pub(crate) fn compaction(&mut self, durable: Option<LogIndex>) -> Option<u64> {
        let target = durable.map_or(self.allowed_floor, |d| d.0.min(self.allowed_floor));
        (target > self.floor).then(|| {
            self.floor = target;
            target + 1
        })
    }

    /// The WAL's compaction floor.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Whether a compaction the core allowed waits for the application's durable index.
    pub(crate) fn compaction_waits(&self) -> bool {
        self.allowed_floor > self.floor
    }
}

/// The WAL records of one Ready, described by offsets into the encoding scratch buffer (so the
/// borrowed [`Write`]s can be built after encoding).
pub(crate) struct ReadyWrites {
    term_vote: Option<TermVote>,
    /// An installed snapshot's boundary: (index, term).
    install: Option<(u64, u64)>,
    truncate_after: Option<u64>,
    entries: Vec<(u64, u64, std::ops::Range<usize>)>,
    commit: Option<u64>,
    compact_to: Option<u64>,
    partition: PartitionId,
}

impl ReadyWrites {
    /// The records, borrowing the entries' encodings from `scratch`.
    pub(crate) fn writes<'a>(&self, scratch: &'a [u8]) -> Vec<Write<'a>> {
        let partition = self.partition;
        let mut writes = Vec::with_capacity(self.entries.len() + 4);
        if let Some(state) = self.term_vote {
            writes.push(Write::TermVote { partition, state });
        }
        if let Some((index, term)) = self.install {
            writes.push(Write::InstallSnapshot {
                partition,
                index,
                term,
                floor_meta: &[],
            });
        }
        if let Some(index) = self.truncate_after {
            writes.push(Write::TruncateAfter { partition, index });
        }
        for (index, term, range) in &self.entries {
            writes.push(Write::Entry {
                partition,
                index: *index,
                term: *term,
                payload: &scratch[range.clone()],
            });
        }
        if let Some(index) = self.commit {
            writes.push(Write::CommitIndex { partition, index });
        }
        if let Some(index) = self.compact_to {
            writes.push(Write::CompactTo {
                partition,
                index,
                floor_meta: &[],
            });
        }
        writes
    }
}

/// The records of `ready` for `partition` (see the module docs), encoding its entries into
/// `scratch` (cleared first); updates `view` to what the WAL holds once they are appended.
/// `durable_index` is asked only when the Ready allows a compaction.
pub(crate) fn wal_writes(
    partition: PartitionId,
    ready: &Ready,
    view: &mut WalView,
    scratch: &mut Vec<u8>,
    durable_index: impl FnOnce() -> Option<LogIndex>,
) -> ReadyWrites {
    scratch.clear();
    let mut out = ReadyWrites {
        term_vote: None,
        install: None,
        truncate_after: None,
        entries: Vec::with_capacity(ready.entries.len()),
        commit: None,
        compact_to: None,
        partition,
    };
    if let Some(hard) = ready.hard_state {
        let vote = hard.vote.map(|v| v.0);
        if !view.known || (hard.term.0, vote) != (view.term, view.vote) {
            out.term_vote = Some(TermVote {
                term: hard.term.0,
                vote,
            });
            view.term = hard.term.0;
            view.vote = vote;
        }
    }
    if let Some(snapshot) = &ready.installed_snapshot {
        let index = snapshot.index.0;
        out.install = Some((index, snapshot.term.0));
        // The WAL keeps a suffix whose term matches: the log ends at `index` or beyond it (a
        // later entry at or below the recorded end truncates first, harmlessly if the suffix
        // went).
        view.last = view.last.max(index);
        view.floor = view.floor.max(index);
        view.allowed_floor = view.allowed_floor.max(index);
    }
    if let Some(first) = ready.entries.first() {
        if view.known && first.index.0 <= view.last {
            out.truncate_after = Some(first.index.0 - 1);
        }
        for entry in &ready.entries {
            let start = scratch.len();
            codec::encode_record(entry, scratch);
            out.entries
                .push((entry.index.0, entry.term.0, start..scratch.len()));
        }
        if let Some(last) = ready.entries.last() {
            view.last = last.index.0;
        }
    }
    if let Some(hard) = ready.hard_state
        && hard.commit.0 != view.commit
    {
        out.commit = Some(hard.commit.0);
        view.commit = hard.commit.0;
    }
    if let Some(floor) = &ready.compaction_floor {
        view.allowed_floor = view.allowed_floor.max(floor.index.0);
        out.compact_to = view.compaction(durable_index());
    }
    view.known = true;
    out
}
