//! The in-memory Raft log of one replica: every entry above the compaction floor, the commit
//! and persisted frontiers, and the boundary of what was already handed out for persistence.
//!
//! Design note: the core keeps every entry above the compaction floor in memory, so it can
//! answer term queries and build appends for any follower without asking the runtime. The
//! durable copy is the runtime's business (the WAL). Memory is bounded by checkpoints: a
//! committed, applied checkpoint becomes the floor and everything at or below it is dropped.
//! The API keeps room for a read-through store later (sending appends is done in one place).

use std::collections::VecDeque;

use bytes::Bytes;

use super::entry::{Entry, EntryKind};
use super::types::{LogIndex, Term, Ticket};

/// The log. Invariants: `entries[k].index == floor + 1 + k`; terms never decrease;
/// `committed <= last_index()`; `persisted <= last_index()`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    floor: LogIndex,
    floor_term: Term,
    entries: VecDeque<Entry>,
    pub(crate) committed: LogIndex,
    pub(crate) persisted: LogIndex,
    /// First index not yet handed out in a Ready.
    pub(crate) unstable_from: LogIndex,
}

impl RaftLog {
    pub(crate) fn new(floor: LogIndex, floor_term: Term, entries: Vec<Entry>) -> Self {
        let last = LogIndex(floor.0 + entries.len() as u64);
        Self {
            floor,
            floor_term,
            entries: entries.into(),
            committed: floor,
            persisted: last,
            unstable_from: last.next(),
        }
    }

    /// Gives back the capacity beyond the entries held.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    /// Bytes of room beyond the entries held.
    #[cfg(feature = "sim")]
    pub(crate) fn spare_capacity_bytes(&self) -> usize {
        (self.entries.capacity() - self.entries.len()) * std::mem::size_of::<Entry>()
    }

    pub(crate) fn floor(&self) -> LogIndex {
        self.floor
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.floor.0 + self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.back().map_or(self.floor_term, |e| e.term)
    }

    /// The term at `index`: known for the floor and every entry above it.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.floor {
            Some(self.floor_term)
        } else {
            self.entry(index).map(|e| e.term)
        }
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.floor {
            return None;
        }
        let offset = usize::try_from(index.0 - self.floor.0 - 1).ok()?;
        self.entries.get(offset)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up to date as ours
    /// (§5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends an entry at `last_index() + 1` (the caller sets index and term).
    #[inline]
    pub(crate) fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "log append must be contiguous"
        );
        assert!(entry.term >= self.last_term(), "log terms never decrease");
        self.entries.push_back(entry);
    }

    /// Appends one normal entry of `term` per payload (a leader's batch proposal): indices are
    /// assigned here, so contiguity holds by construction; only the term is checked.
    pub(crate) fn append_proposals(
        &mut self,
        term: Term,
        ticket: Ticket,
        auto_commit: bool,
        payloads: &[Bytes],
    ) {
        assert!(term >= self.last_term(), "log terms never decrease");
        let first = self.last_index().next().0;
        self.entries
            .extend((first..).zip(payloads).map(|(index, payload)| Entry {
                index: LogIndex(index),
                term,
                kind: EntryKind::Normal,
                ticket,
                auto_commit,
                payload: payload.clone(),
            }));
    }

    /// Appends consecutive entries at `last_index() + 1` with non-decreasing terms (checked
    /// for all of them before any is added, then moved in one go).
    pub(crate) fn extend(&mut self, entries: Vec<Entry>) {
        let mut expected = self.last_index().next();
        let mut term = self.last_term();
        for e in &entries {
            assert_eq!(e.index, expected, "log append must be contiguous");
            assert!(e.term >= term, "log terms never decrease");
            expected = expected.next();
            term = e.term;
        }
        self.entries.extend(entries);
    }

    /// Removes every entry from `index` on. `index` must be above the commit index: committed
    /// entries are never removed.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        assert!(index > self.committed, "never truncate committed entries");
        let keep = usize::try_from(index.0.saturating_sub(self.floor.0 + 1)).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
        let last = self.last_index();
        self.persisted = self.persisted.min(last);
        self.unstable_from = self.unstable_from.min(last.next());
    }

    /// The largest index `<= index` whose term is `<= term` (fast backtracking), never below
    /// the floor.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut i = index.min(self.last_index());
        while i > self.floor {
            match self.term(i) {
                Some(t) if t <= term => return (i, t),
                _ => i = i.prev(),
            }
        }
        (self.floor, self.floor_term)
    }

    /// Entries in `[from, last_index()]`, at most `entries_max` and about `bytes_max` bytes
    /// (at least one entry when any is available).
    pub(crate) fn slice(&self, from: LogIndex, entries_max: usize, bytes_max: u64) -> Vec<Entry> {
        let entries = self.range(from, self.last_index());
        let mut out = Vec::with_capacity(entries.len().min(entries_max));
        let mut bytes = 0u64;
        for e in entries {
            if out.len() >= entries_max || (!out.is_empty() && bytes + e.size_bytes() > bytes_max) {
                break;
            }
            bytes += e.size_bytes();
            out.push(e.clone());
        }
        out
    }

    /// Iterates entries in `[from, to]` that are in memory.
    pub(crate) fn range(
        &self,
        from: LogIndex,
        to: LogIndex,
    ) -> std::collections::vec_deque::Iter<'_, Entry> {
        let len = self.entries.len();
        let start = from.0.max(self.floor.0 + 1);
        let first = usize::try_from(start - self.floor.0 - 1)
            .unwrap_or(usize::MAX)
            .min(len);
        let end = usize::try_from(to.0.saturating_sub(self.floor.0))
            .unwrap_or(usize::MAX)
            .clamp(first, len.max(first));
        self.entries.range(first..end)
    }

    /// Appends the entries not yet handed out in a Ready to `out`; marks them handed out.
    pub(crate) fn take_unstable_into(&mut self, out: &mut Vec<Entry>) {
        let from = self.unstable_from;
        out.extend(self.range(from, self.last_index()).cloned());
        self.unstable_from = self.last_index().next();
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Drops entries at or below `index` (a committed, applied checkpoint).
    pub(crate) fn compact_to(&mut self, index: LogIndex) {
        if index <= self.floor {
            return;
        }
        assert!(index <= self.committed, "compact only committed entries");
        let Some(term) = self.term(index) else {
            return;
        };
        let drop = usize::try_from(index.0 - self.floor.0).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.floor = index;
        self.floor_term = term;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            kind: EntryKind::Normal,
            ticket: Ticket(index),
            auto_commit: true,
            payload: Bytes::new(),
        }
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, t)| entry(i as u64 + 1, *t))
            .collect();
        RaftLog::new(LogIndex(0), Term(0), entries)
    }

    #[test]
    fn terms_and_bounds() {
        let log = log_with_terms(&[1, 1, 2, 3]);
        assert_eq!(log.last_index(), LogIndex(4));
        assert_eq!(log.last_term(), Term(3));
        assert_eq!(log.term(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term(LogIndex(5)), None);
        assert_eq!(log.term(LogIndex(u64::MAX)), None);
    }

    #[test]
    fn conflict_by_term_walks_back_to_a_lower_term() {
        let log = log_with_terms(&[1, 1, 2, 2, 4, 4]);
        assert_eq!(
            log.find_conflict_by_term(LogIndex(6), Term(3)),
            (LogIndex(4), Term(2))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(9), Term(4)),
            (LogIndex(6), Term(4))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(6), Term(0)),
            (LogIndex(0), Term(0))
        );
    }

    #[test]
    fn truncate_and_compact() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.committed = LogIndex(2);
        log.truncate_from(LogIndex(3));
        assert_eq!(log.last_index(), LogIndex(2));
        assert_eq!(log.persisted, LogIndex(2));
        log.compact_to(LogIndex(1));
        assert_eq!(log.term(LogIndex(1)), Some(Term(1)));
        assert!(log.entry(LogIndex(1)).is_none());
        assert_eq!(log.range(LogIndex(0), LogIndex(9)).count(), 1);
    }

    #[test]
    fn slice_respects_limits_but_sends_one() {
        let log = log_with_terms(&[1, 1, 1, 1]);
        assert_eq!(log.slice(LogIndex(1), 2, u64::MAX).len(), 2);
        assert_eq!(log.slice(LogIndex(1), 10, 1).len(), 1);
        assert_eq!(log.slice(LogIndex(5), 10, 1).len(), 0);
    }
}
