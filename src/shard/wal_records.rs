//! Ready → WAL records: the translation the WalScheduler applies to each Ready. A Ready
//! becomes, in this order, the hard state (term, vote) when it changed; the boundary of an
//! installed snapshot (the log restarts after it, keeping a suffix whose term matches); a
//! truncation when its entries replace a stored suffix (a log conflict); the entries (encoded
//! by `codec`); the commit index when it got too far ahead of the one the WAL holds (below);
//! the compaction to just above a new floor, never past the application's durable index (a
//! compaction that waits for it is written later, alone: [`WalView::compaction`]). A
//! [`WalView`] per partition remembers what the WAL already holds, so nothing unchanged is
//! written again.
//!
//! The commit index is knowledge, not a promise (the core's `HardState` says it may be written
//! lazily): a restarted replica re-learns it from its leader, and restore takes the higher of
//! it and the application's durable index. Writing each change cost a record per write on
//! every replica at many active partitions (a leader's commit alone was a Ready with a record
//! of its own; 8 % of a write's instructions at 4 096 active partitions, issue 15), so a
//! partition's commit index is written once it runs more than `commit_lag_max` entries ahead
//! of the one the WAL holds, when it commits a configuration entry (restore numbers the
//! committed configuration: a replaced disk's votes wait for its version, decision 0004; with
//! an older one read back, a two-voter partition elected nobody, node seeds 15 and 91 of the
//! replacing sweep), when the partition quiesces (an idle partition's WAL holds its last commit
//! index), and at a shard's orderly stop ([`WalView::take_lagging_commit`]). A crash may lose the
//! last `commit_lag_max` entries' commit: restore hands fewer entries to `on_log_restored`,
//! and the rest reach the application as live deliveries once a leader tells the replica
//! the commit index again (`runtime::restart::a_crash_loses_*`) — as the entries of the last
//! unsynced write always could.
//!
//! The configuration in force at the WAL's floor is kept with it (the floor meta of
//! `CompactTo` and `InstallSnapshot`): the WAL's floor may lag the core's (it waits for the
//! application's durable index), so the view remembers the configuration entries above the
//! WAL's floor and gives a compaction the configuration in force where it lands. Partition 0
//! keeps its partition map there too, the same way: the view remembers the map entries above
//! the floor, and the floor meta (`partitions/floor_meta.rs`) holds the configuration and the
//! map in force at the floor; an installed snapshot's floor holds the map it carried. A user
//! partition keeps its split marks there (the generation and import entries its log held,
//! `partitions/marks.rs`), summed up the same way: the view remembers the generation and
//! import entries above the floor (a truncation takes them away, so the marks are always
//! those of the log the WAL holds); an imported snapshot's boundary adds the marks it
//! carried (the leader's at its index: [`WalView::marks_at`] on the leader's side).

use bytes::Bytes;
use kommander_wal::{PartitionInfo, TermVote, Write};

use super::codec;
use super::partitions::marks::{LogMarks, SplitEntry, split_entry};
use super::partitions::{
    PartitionMap, encode_floor_meta, encode_marks_floor_meta, map_entry, map_for_floor,
};
use crate::core::{DurableState, Entry, EntryKind, LogIndex, PartitionId, Ready};

/// What the shard last wrote to the WAL for a partition.
#[derive(Clone, Debug, Default)]
pub(crate) struct WalView {
    known: bool,
    last: u64,
    term: u64,
    vote: Option<u64>,
    /// The commit index the WAL holds.
    commit: u64,
    /// The commit index the replica last reported (`commit` lags it by at most the lag the
    /// scheduler allows).
    commit_known: u64,
    /// The WAL's compaction floor.
    floor: u64,
    /// The highest floor the core allowed (an applied checkpoint).
    allowed_floor: u64,
    /// The configuration in force at the WAL's floor, encoded (empty: the first one).
    floor_configuration: Bytes,
    /// The configuration entries above the WAL's floor: (index, encoded configuration).
    configurations: Vec<(u64, Bytes)>,
    /// Partition 0's maps (`None` for every other partition: [`WalView::keep_maps`]).
    maps: Option<Box<MapView>>,
    /// The split marks of the log the WAL holds.
    marks: MarksView,
}

/// A user partition's split marks, kept like its configurations.
#[derive(Clone, Debug, Default)]
struct MarksView {
    /// The marks at the WAL's floor.
    floor: LogMarks,
    /// The generation and import entries above the floor: (index, entry; a chunk's data
    /// dropped).
    above: Vec<(u64, SplitEntry)>,
    /// The marks of the whole log: the floor's, then those above (kept up to date).
    current: LogMarks,
    /// The marks a snapshot being installed carried (the leader's at its index), for its
    /// boundary.
    installing: Option<LogMarks>,
}

impl MarksView {
    /// Remembers the split entries among `entries` (a truncation already took those it
    /// replaced).
    fn note(&mut self, entries: &[Entry]) {
        for entry in entries {
            let Some(Ok(split)) = split_entry(entry) else {
                continue;
            };
            self.current.note(&split);
            if !matches!(
                split,
                SplitEntry::Import(super::partitions::marks::ImportEntry::Chunk(..))
            ) {
                self.above.push((entry.index.0, split));
            }
        }
    }

    /// The entries from `first` on are replaced (a truncation).
    fn truncate_from(&mut self, first: u64) {
        let before = self.above.len();
        self.above.retain(|(at, _)| *at < first);
        if self.above.len() != before {
            self.recompute();
        }
    }

    /// The floor moved to `floor`: the entries at or below it are the floor's.
    fn advance(&mut self, floor: u64) {
        let passed = self.above.partition_point(|(at, _)| *at <= floor);
        for (_, split) in self.above.drain(..passed) {
            self.floor.note(&split);
        }
    }

    /// The marks in force at `index` (at or above the floor): the floor's, then those above
    /// it up to `index`.
    fn at(&self, index: u64) -> LogMarks {
        let mut marks = self.floor;
        for (_, split) in self.above.iter().take_while(|(at, _)| *at <= index) {
            marks.note(split);
        }
        marks
    }

    /// A snapshot to be installed carried `marks`: they count at once (the fence reads
    /// [`WalView::marks`]) and join the floor at its boundary.
    fn installing(&mut self, marks: LogMarks) {
        self.current = self.current.merged(marks);
        self.installing = Some(marks);
    }

    /// A snapshot was installed at `index`: the entries up to it are the floor's, followed
    /// by the marks the snapshot carried, if it was imported (acknowledged without an import,
    /// the log through `index` is the application's own).
    fn install(&mut self, index: u64) {
        self.advance(index);
        if let Some(carried) = self.installing.take() {
            self.floor = self.floor.merged(carried);
            // `current` took the carried generation when the install began.
            self.recompute();
        }
    }

    /// The floor's marks and those above, again (after a truncation: a truncated generation
    /// entry no longer counts, so the source's leader proposes it again — elastic seed 2045).
    fn recompute(&mut self) {
        self.current = self.floor;
        for (_, split) in &self.above {
            self.current.note(split);
        }
    }
}

/// The partition maps of partition 0 the WAL holds, kept like its configurations.
#[derive(Clone, Debug, Default)]
struct MapView {
    /// The WAL's `floor_meta_bytes_max`: a map whose floor meta would not fit is not kept (nor
    /// applied: `map_for_floor`).
    floor_meta_bytes_max: usize,
    /// The map in force at the WAL's floor: (version, encoded; empty: none).
    floor: (u64, Bytes),
    /// The map entries above the WAL's floor: (index, version, encoded map).
    above: Vec<(u64, u64, Bytes)>,
    /// The map of a snapshot being installed: (version, encoded), for its boundary.
    installing: Option<(u64, Bytes)>,
}

impl MapView {
    /// Remembers the map entries among `entries` (a truncation already took those it replaced).
    fn note(&mut self, entries: &[Entry]) {
        for entry in entries {
            let Some(encoded) = map_entry(crate::shard::SYSTEM_PARTITION, entry) else {
                continue;
            };
            if let Ok(map) = map_for_floor(&encoded, self.floor_meta_bytes_max) {
                self.above.push((entry.index.0, map.version, encoded));
            }
        }
    }

    /// The floor moved to `floor`: the map in force there is the highest version at or below
    /// it (a committed map is applied only above the version in force).
    fn advance(&mut self, floor: u64) {
        let passed = self.above.partition_point(|(at, _, _)| *at <= floor);
        for (_, version, encoded) in self.above.drain(..passed) {
            if version > self.floor.0 {
                self.floor = (version, encoded);
            }
        }
    }
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
            commit_known: info.commit_index.unwrap_or(0),
            floor,
            allowed_floor: floor,
            // Known once the log is read back: `restored`.
            floor_configuration: Bytes::new(),
            configurations: Vec::new(),
            maps: None,
            marks: MarksView::default(),
        }
    }

    /// Keeps partition 0's maps with the WAL's floor, in floor metas of at most
    /// `floor_meta_bytes_max` bytes (called when partition 0 is opened, before its log is
    /// read back).
    pub(crate) fn keep_maps(&mut self, floor_meta_bytes_max: usize) {
        self.maps = Some(Box::new(MapView {
            floor_meta_bytes_max,
            ..MapView::default()
        }));
    }

    /// The map of the snapshot about to be installed (its boundary's floor meta keeps it).
    pub(crate) fn installing_map(&mut self, map: &PartitionMap) {
        if let Some(maps) = self.maps.as_mut() {
            let encoded = if map.version == 0 {
                Bytes::new()
            } else {
                Bytes::from(map.encode())
            };
            maps.installing = Some((map.version, encoded));
        }
    }

    /// The split marks of the log the WAL holds (see `partitions/marks.rs`).
    pub(crate) fn marks(&self) -> LogMarks {
        self.marks.current
    }

    /// The split marks in force at `index` (a snapshot's, at or above the WAL's floor), as
    /// a snapshot transfer carries them.
    pub(crate) fn marks_at(&self, index: LogIndex) -> LogMarks {
        self.marks.at(index.0)
    }

    /// The split marks the snapshot about to be installed carried (its boundary's floor meta
    /// keeps them, merged with the log's).
    pub(crate) fn installing_marks(&mut self, marks: LogMarks) {
        self.marks.installing(marks);
    }

    /// The configurations (and partition 0's maps: `floor_map`, the one the floor meta held;
    /// a user partition's split marks: `floor_marks`) of a partition whose log was read back
    /// into `durable`.
    pub(crate) fn restored(
        &mut self,
        durable: &DurableState,
        floor_map: Option<&PartitionMap>,
        floor_marks: LogMarks,
    ) {
        self.marks = MarksView {
            floor: floor_marks,
            above: Vec::new(),
            current: floor_marks,
            installing: None,
        };
        self.marks.note(&durable.entries);
        if let Some(maps) = self.maps.as_mut() {
            maps.floor = floor_map.map_or((0, Bytes::new()), |map| {
                (map.version, Bytes::from(map.encode()))
            });
            maps.above.clear();
            maps.note(&durable.entries);
        }
        self.floor_configuration = durable
            .floor_configuration
            .as_ref()
            .map_or_else(Bytes::new, |configuration| configuration.encode());
        self.configurations = durable
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Configuration)
            .map(|e| (e.index.0, e.payload.clone()))
            .collect();
    }

    /// The compaction of the WAL, when the floor the core allows can move: the first index to
    /// keep (up to that floor, never past `durable`, the application's durable index, if it
    /// reports one) and the configuration in force at the new floor. Records the move.
    pub(crate) fn compaction(&mut self, durable: Option<LogIndex>) -> Option<(u64, Bytes)> {
        let target = durable.map_or(self.allowed_floor, |d| d.0.min(self.allowed_floor));
        if target <= self.floor {
            return None;
        }
        self.floor = target;
        let passed = self.configurations.partition_point(|(at, _)| *at <= target);
        if let Some((_, configuration)) = self.configurations.drain(..passed).next_back() {
            self.floor_configuration = configuration;
        }
        if let Some(maps) = self.maps.as_mut() {
            maps.advance(target);
        }
        self.marks.advance(target);
        Some((target + 1, self.floor_meta()))
    }

    /// What the WAL keeps with its floor: the configuration in force there, and partition 0's
    /// map or a user partition's split marks.
    fn floor_meta(&self) -> Bytes {
        match &self.maps {
            Some(maps) => encode_floor_meta(&self.floor_configuration, &maps.floor.1),
            None => encode_marks_floor_meta(&self.floor_configuration, self.marks.floor),
        }
    }

    /// The WAL's compaction floor.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Whether a compaction the core allowed waits for the application's durable index.
    pub(crate) fn compaction_waits(&self) -> bool {
        self.allowed_floor > self.floor
    }

    /// Whether the commit index the replica reported commits a configuration entry the WAL's
    /// does not: the committed configuration restore numbers (the version a replaced disk's
    /// votes wait for, decision 0004) must be the one in force.
    fn commits_configuration(&self) -> bool {
        self.configurations
            .iter()
            .any(|&(at, _)| at > self.commit && at <= self.commit_known)
    }

    /// The commit index its replica reported, if the WAL does not hold it yet (a lazily
    /// written one, see the module docs); records it as written.
    pub(crate) fn take_lagging_commit(&mut self) -> Option<u64> {
        (self.commit_known != self.commit).then(|| {
            self.commit = self.commit_known;
            self.commit
        })
    }
}

/// The encodings of one Ready's entries, kept from Ready to Ready for their capacity: the
/// bytes, and each entry's (index, term, range of the bytes).
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    bytes: Vec<u8>,
    entries: Vec<(u64, u64, std::ops::Range<usize>)>,
}

impl Encoded {
    /// How many bytes the encodings take.
    pub(crate) fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The WAL records of one Ready; its entries' are in the [`Encoded`] it was made with (so
/// the borrowed [`Write`]s can be built after encoding).
pub(crate) struct ReadyWrites {
    term_vote: Option<TermVote>,
    /// An installed snapshot's boundary: (index, term).
    install: Option<(u64, u64, Bytes)>,
    truncate_after: Option<u64>,
    commit: Option<u64>,
    /// The first index kept, and the configuration in force at the floor.
    compact_to: Option<(u64, Bytes)>,
    partition: PartitionId,
}

impl ReadyWrites {
    /// How many records [`ReadyWrites::writes`] yields.
    pub(crate) fn len(&self, encoded: &Encoded) -> usize {
        usize::from(self.term_vote.is_some())
            + usize::from(self.install.is_some())
            + usize::from(self.truncate_after.is_some())
            + encoded.entries.len()
            + usize::from(self.commit.is_some())
            + usize::from(self.compact_to.is_some())
    }

    /// The records, in order, borrowing the entries' encodings from `encoded` (the one
    /// [`wal_writes`] filled).
    pub(crate) fn writes<'a>(&'a self, encoded: &'a Encoded) -> Writes<'a> {
        // The walk starts at the first record present and ends after the last: a Ready with
        // entries only (the usual one) looks at no other position.
        let entries = encoded.entries.len();
        let first = [
            self.term_vote.is_some(),
            self.install.is_some(),
            self.truncate_after.is_some(),
        ]
        .iter()
        .position(|&present| present)
        .unwrap_or(3);
        let end = if self.compact_to.is_some() {
            entries + 5
        } else if self.commit.is_some() {
            entries + 4
        } else {
            entries + 3
        };
        Writes {
            ready: self,
            encoded,
            next: first,
            end,
        }
    }
}

/// The records of one Ready, in order ([`ReadyWrites::writes`]): a position in the record
/// order (term and vote, install, truncation, the entries, commit index, compaction), each
/// record present or skipped. One small state machine, where a chain of six iterators cost
/// the WAL's validation and append a third of their work per Ready (issue 15).
#[derive(Clone)]
pub(crate) struct Writes<'a> {
    ready: &'a ReadyWrites,
    encoded: &'a Encoded,
    /// The position of the next record to look at.
    next: usize,
    /// The position after the last record present.
    end: usize,
}

impl<'a> Iterator for Writes<'a> {
    type Item = Write<'a>;

    fn next(&mut self) -> Option<Write<'a>> {
        let ready = self.ready;
        let partition = ready.partition;
        let entries = &self.encoded.entries;
        while self.next < self.end {
            let at = self.next;
            self.next += 1;
            let write =
                match at {
                    0 => ready
                        .term_vote
                        .map(|state| Write::TermVote { partition, state }),
                    1 => ready.install.as_ref().map(|(index, term, floor_meta)| {
                        Write::InstallSnapshot {
                            partition,
                            index: *index,
                            term: *term,
                            floor_meta,
                        }
                    }),
                    2 => ready
                        .truncate_after
                        .map(|index| Write::TruncateAfter { partition, index }),
                    _ if at - 3 < entries.len() => {
                        let (index, term, range) = &entries[at - 3];
                        Some(Write::Entry {
                            partition,
                            index: *index,
                            term: *term,
                            payload: &self.encoded.bytes[range.clone()],
                        })
                    }
                    _ if at - 3 == entries.len() => ready
                        .commit
                        .map(|index| Write::CommitIndex { partition, index }),
                    // The last position before `end`.
                    _ => ready
                        .compact_to
                        .as_ref()
                        .map(|(index, floor_meta)| Write::CompactTo {
                            partition,
                            index: *index,
                            floor_meta,
                        }),
                };
            if write.is_some() {
                return write;
            }
        }
        None
    }
}

/// The records of `ready` for `partition` (see the module docs), encoding its entries into
/// `encoded` (cleared first); updates `view` to what the WAL holds once they are appended.
/// The commit index is written once it runs more than `commit_lag_max` entries ahead of the
/// WAL's, commits a configuration entry, or the Ready reports that the partition quiesced.
/// `durable_index` is asked only when the Ready allows a compaction.
pub(crate) fn wal_writes(
    partition: PartitionId,
    ready: &Ready,
    view: &mut WalView,
    encoded: &mut Encoded,
    commit_lag_max: u64,
    durable_index: impl FnOnce() -> Option<LogIndex>,
) -> ReadyWrites {
    encoded.bytes.clear();
    encoded.entries.clear();
    let mut out = ReadyWrites {
        term_vote: None,
        install: None,
        truncate_after: None,
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
        view.floor_configuration = snapshot.configuration.encode();
        view.configurations.retain(|(at, _)| *at > index);
        if let Some(maps) = view.maps.as_mut() {
            match maps.installing.take() {
                // An imported snapshot: the map it carried is the one in force at its index.
                Some(installing) => {
                    maps.above.retain(|(at, _, _)| *at > index);
                    maps.floor = installing;
                }
                // Acknowledged without an import (the application was already there): every
                // entry up to the index is committed, the map in force there is the log's.
                None => maps.advance(index),
            }
        }
        // The entries up to the index were this log's, then an imported snapshot's marks
        // (the leader's at the index) continue them.
        view.marks.install(index);
        out.install = Some((index, snapshot.term.0, view.floor_meta()));
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
        view.configurations.retain(|(at, _)| *at < first.index.0);
        if let Some(maps) = view.maps.as_mut() {
            maps.above.retain(|(at, _, _)| *at < first.index.0);
            maps.note(&ready.entries);
        }
        view.marks.truncate_from(first.index.0);
        view.marks.note(&ready.entries);
        for entry in &ready.entries {
            if entry.kind == EntryKind::Configuration {
                view.configurations
                    .push((entry.index.0, entry.payload.clone()));
            }
            let start = encoded.bytes.len();
            codec::encode_record(entry, &mut encoded.bytes);
            encoded
                .entries
                .push((entry.index.0, entry.term.0, start..encoded.bytes.len()));
        }
        if let Some(last) = ready.entries.last() {
            view.last = last.index.0;
        }
    }
    if let Some(hard) = ready.hard_state {
        view.commit_known = hard.commit.0;
    }
    let ahead = view.commit_known.checked_sub(view.commit);
    if ahead.is_none_or(|ahead| ahead > commit_lag_max)
        || ready.quiescence == Some(true)
        || view.commits_configuration()
    {
        out.commit = view.take_lagging_commit();
    }
    if let Some(floor) = &ready.compaction_floor {
        view.allowed_floor = view.allowed_floor.max(floor.index.0);
        out.compact_to = view.compaction(durable_index());
    }
    view.known = true;
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::core::{Configuration, Entry, Floor, NodeId, Term, Ticket};

    fn configuration(voters: &[u64]) -> Configuration {
        Configuration::new(voters.iter().copied().map(NodeId).collect(), Vec::new()).expect("valid")
    }

    fn entry(index: u64, kind: EntryKind, payload: Bytes) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            kind,
            ticket: Ticket(0),
            auto_commit: true,
            payload,
        }
    }

    fn entries(list: Vec<Entry>) -> Ready {
        Ready {
            entries: list,
            ..Ready::default()
        }
    }

    fn floor(index: u64, voters: &[u64]) -> Ready {
        Ready {
            compaction_floor: Some(Floor {
                index: LogIndex(index),
                term: Term(1),
                configuration: configuration(voters),
            }),
            ..Ready::default()
        }
    }

    #[test]
    fn a_lagging_compaction_keeps_the_configuration_in_force_where_it_lands() {
        let (p, mut view, mut scratch) = (PartitionId(1), WalView::default(), Encoded::default());
        let two = configuration(&[1, 2]).encode();
        let three = configuration(&[1, 2, 3]).encode();
        let ready = entries(vec![
            entry(1, EntryKind::Normal, Bytes::new()),
            entry(2, EntryKind::Configuration, two.clone()),
            entry(3, EntryKind::Normal, Bytes::new()),
            entry(4, EntryKind::Configuration, three.clone()),
            entry(5, EntryKind::Checkpoint, Bytes::new()),
        ]);
        wal_writes(p, &ready, &mut view, &mut scratch, 0, || None);
        // The application is durable through 3 only: the WAL's floor lands between the two
        // configuration entries, where the first one is in force.
        let writes = wal_writes(p, &floor(5, &[1, 2, 3]), &mut view, &mut scratch, 0, || {
            Some(LogIndex(3))
        });
        assert_eq!(writes.compact_to, Some((4, two)));
        assert_eq!(view.compaction(Some(LogIndex(5))), Some((6, three.clone())));
        // A truncation takes a configuration entry above the floor away.
        let four = configuration(&[1, 2, 3, 4]).encode();
        let ready = entries(vec![entry(6, EntryKind::Configuration, four)]);
        wal_writes(p, &ready, &mut view, &mut scratch, 0, || None);
        let ready = entries(vec![entry(6, EntryKind::Normal, Bytes::new())]);
        wal_writes(p, &ready, &mut view, &mut scratch, 0, || None);
        let writes = wal_writes(p, &floor(6, &[1, 2, 3]), &mut view, &mut scratch, 0, || {
            None
        });
        assert_eq!(writes.compact_to, Some((7, three)));
    }

    /// A partition-0 entry carrying `map` (as the coordinator proposes it).
    fn map_entry(index: u64, map: &PartitionMap) -> Entry {
        let payload =
            codec::encode_envelope(crate::shard::partitions::SYSTEM_LOG_TYPE, &map.encode());
        entry(index, EntryKind::Normal, payload)
    }

    fn map_of(version: u64, count: u32) -> PartitionMap {
        let mut map = PartitionMap::initial(count).expect("valid count");
        map.version = version;
        map
    }

    /// What a floor meta holds: (configuration, map).
    fn kept(meta: &[u8]) -> (Option<Configuration>, Option<PartitionMap>) {
        let meta = crate::shard::partitions::decode_floor_meta(meta).expect("decodes");
        (meta.configuration, meta.map)
    }

    #[test]
    fn partition_0s_floor_keeps_the_highest_map_at_or_below_it() {
        let p0 = crate::shard::SYSTEM_PARTITION;
        let (mut view, mut scratch) = (WalView::default(), Encoded::default());
        view.keep_maps(1 << 20);
        let (one, two, again) = (map_of(1, 2), map_of(2, 3), map_of(1, 4));
        let ready = entries(vec![
            entry(1, EntryKind::Configuration, configuration(&[1]).encode()),
            map_entry(2, &one),
            map_entry(3, &two),
            // A second version 1 (two leaders in a row): never in force after version 2.
            map_entry(4, &again),
            // Not a map: refused, never kept.
            entry(
                5,
                EntryKind::Normal,
                codec::encode_envelope(crate::shard::partitions::SYSTEM_LOG_TYPE, b"{"),
            ),
        ]);
        wal_writes(p0, &ready, &mut view, &mut scratch, 0, || None);
        let writes = wal_writes(p0, &floor(2, &[1]), &mut view, &mut scratch, 0, || None);
        let (_, meta) = writes.compact_to.expect("a compaction");
        assert_eq!(kept(&meta), (Some(configuration(&[1])), Some(one.clone())));
        let writes = wal_writes(p0, &floor(5, &[1]), &mut view, &mut scratch, 0, || None);
        let (_, meta) = writes.compact_to.expect("a compaction");
        assert_eq!(kept(&meta), (Some(configuration(&[1])), Some(two.clone())));
        // A map entry truncated away never reaches the floor.
        let three = map_of(3, 5);
        wal_writes(
            p0,
            &entries(vec![map_entry(6, &three)]),
            &mut view,
            &mut scratch,
            0,
            || None,
        );
        let replaced = entries(vec![entry(6, EntryKind::Normal, Bytes::new())]);
        wal_writes(p0, &replaced, &mut view, &mut scratch, 0, || None);
        let writes = wal_writes(p0, &floor(6, &[1]), &mut view, &mut scratch, 0, || None);
        let (_, meta) = writes.compact_to.expect("a compaction");
        assert_eq!(kept(&meta).1, Some(two));
        // An imported snapshot's boundary keeps the map it carried.
        view.installing_map(&three);
        let ready = Ready {
            installed_snapshot: Some(Floor {
                index: LogIndex(9),
                term: Term(2),
                configuration: configuration(&[1, 2]),
            }),
            ..Ready::default()
        };
        let writes = wal_writes(p0, &ready, &mut view, &mut scratch, 0, || None);
        let (_, _, meta) = writes.install.expect("an install");
        assert_eq!(kept(&meta), (Some(configuration(&[1, 2])), Some(three)));
        // Any other partition keeps the bare configuration.
        let mut other = WalView::default();
        let ready = entries(vec![
            entry(1, EntryKind::Configuration, configuration(&[1]).encode()),
            map_entry(2, &one),
        ]);
        let p1 = PartitionId(1);
        wal_writes(p1, &ready, &mut other, &mut scratch, 0, || None);
        let writes = wal_writes(p1, &floor(2, &[1]), &mut other, &mut scratch, 0, || None);
        assert_eq!(writes.compact_to, Some((3, configuration(&[1]).encode())));
    }

    /// A user partition's floor keeps its split marks: those of the log as far as the floor
    /// reaches (a truncated generation entry and a truncated end are forgotten: elastic seed
    /// 2045, where a leader whose generation entry was truncated never proposed it again).
    #[test]
    fn a_user_partitions_floor_keeps_its_split_marks() {
        use crate::shard::partitions::marks::{
            GENERATION_LOG_TYPE, GenerationMark, IMPORT_LOG_TYPE, ImportEntry, ImportMark, LogMarks,
        };
        use crate::shard::state_transfer::RangeTransfer;
        let (p, mut view, mut scratch) = (PartitionId(3), WalView::default(), Encoded::default());
        let plan = RangeTransfer {
            source: PartitionId(1),
            target: p,
            generation: 2,
            start: 5,
            end: 9,
        };
        let import = |index, entry: ImportEntry| entry_of(index, IMPORT_LOG_TYPE, &entry.encode());
        let mark = GenerationMark {
            generation: 4,
            draining: false,
        };
        let ready = entries(vec![
            entry(1, EntryKind::Configuration, configuration(&[1]).encode()),
            import(2, ImportEntry::Begin(plan)),
            import(
                3,
                ImportEntry::Chunk(plan, Bytes::from_static(b"0123456789abcdef")),
            ),
            import(4, ImportEntry::End(plan)),
        ]);
        wal_writes(p, &ready, &mut view, &mut scratch, 0, || None);
        let ended = Some(ImportMark { plan, ended: true });
        assert_eq!(view.marks().import, ended);
        let generation = entries(vec![entry_of(5, GENERATION_LOG_TYPE, &mark.encode())]);
        wal_writes(p, &generation, &mut view, &mut scratch, 0, || None);
        assert_eq!(view.marks().generation, mark);
        // The end and the generation entry are replaced by a new leader's entries.
        let replaced = entries(vec![entry(4, EntryKind::Normal, Bytes::new())]);
        wal_writes(p, &replaced, &mut view, &mut scratch, 0, || None);
        let begun = Some(ImportMark { plan, ended: false });
        let held = LogMarks {
            generation: GenerationMark::default(),
            import: begun,
        };
        assert_eq!(view.marks(), held);
        // The floor passes the begin: kept with it.
        let writes = wal_writes(p, &floor(3, &[1]), &mut view, &mut scratch, 0, || None);
        let (_, meta) = writes.compact_to.expect("a compaction");
        let kept = crate::shard::partitions::decode_floor_meta(&meta).expect("decodes");
        assert_eq!(kept.configuration, Some(configuration(&[1])));
        assert_eq!(kept.marks, held);
        // Restored from that floor, the view starts from its marks.
        let mut restored = WalView::default();
        restored.restored(&DurableState::default(), None, kept.marks);
        assert_eq!(restored.marks(), kept.marks);
    }

    /// A leader's marks at a snapshot's index are its floor's and the split entries up to
    /// it; a follower that imports the snapshot counts the marks it carried at once and its
    /// boundary's floor meta keeps them (elastic seed 17).
    #[test]
    fn an_imported_snapshots_marks_reach_the_view_and_the_boundary() {
        use crate::shard::partitions::marks::{
            GENERATION_LOG_TYPE, GenerationMark, IMPORT_LOG_TYPE, ImportEntry, ImportMark, LogMarks,
        };
        use crate::shard::state_transfer::RangeTransfer;
        let (p, mut leader, mut scratch) = (PartitionId(1), WalView::default(), Encoded::default());
        let plan = RangeTransfer {
            source: PartitionId(2),
            target: p,
            generation: 1,
            start: 0,
            end: 9,
        };
        let mark = GenerationMark {
            generation: 2,
            draining: false,
        };
        let ready = entries(vec![
            entry_of(1, IMPORT_LOG_TYPE, &ImportEntry::Begin(plan).encode()),
            entry_of(2, IMPORT_LOG_TYPE, &ImportEntry::End(plan).encode()),
            entry_of(3, GENERATION_LOG_TYPE, &mark.encode()),
        ]);
        wal_writes(p, &ready, &mut leader, &mut scratch, 0, || None);
        let begun = Some(ImportMark { plan, ended: false });
        let ended = Some(ImportMark { plan, ended: true });
        assert_eq!(leader.marks_at(LogIndex(1)).import, begun);
        let carried = leader.marks_at(LogIndex(3));
        assert_eq!(
            carried,
            LogMarks {
                generation: mark,
                import: ended
            }
        );

        let mut follower = WalView::default();
        follower.installing_marks(carried);
        assert_eq!(follower.marks(), carried, "the fence counts them at once");
        let ready = Ready {
            installed_snapshot: Some(Floor {
                index: LogIndex(3),
                term: Term(1),
                configuration: configuration(&[1, 2]),
            }),
            ..Ready::default()
        };
        let writes = wal_writes(p, &ready, &mut follower, &mut scratch, 0, || None);
        let (_, _, meta) = writes.install.expect("an install");
        let kept = crate::shard::partitions::decode_floor_meta(&meta).expect("decodes");
        assert_eq!(kept.marks, carried);
        assert_eq!(follower.marks(), carried);
    }

    fn entry_of(index: u64, log_type: &str, payload: &[u8]) -> Entry {
        entry(
            index,
            EntryKind::Normal,
            codec::encode_envelope(log_type, payload),
        )
    }

    #[test]
    fn an_installed_snapshot_sets_the_floors_configuration() {
        let (p, mut view, mut scratch) = (PartitionId(1), WalView::default(), Encoded::default());
        let ready = Ready {
            installed_snapshot: Some(Floor {
                index: LogIndex(9),
                term: Term(2),
                configuration: configuration(&[4, 5]),
            }),
            ..Ready::default()
        };
        let writes = wal_writes(p, &ready, &mut view, &mut scratch, 0, || None);
        let expected = configuration(&[4, 5]).encode();
        assert_eq!(writes.install, Some((9, 2, expected.clone())));
        let floor_meta = writes.writes(&scratch).find_map(|w| match w {
            Write::InstallSnapshot { floor_meta, .. } => Some(floor_meta.to_vec()),
            _ => None,
        });
        assert_eq!(floor_meta, Some(expected.to_vec()));
    }

    #[test]
    fn a_readys_records_come_in_the_record_order_and_count_as_many_as_they_are() {
        let (p, mut view, mut scratch) = (PartitionId(2), WalView::default(), Encoded::default());
        let first = Ready {
            hard_state: Some(crate::core::HardState {
                term: Term(1),
                vote: Some(NodeId(1)),
                commit: LogIndex::ZERO,
            }),
            ..entries(vec![entry_of(1, "t", b"a"), entry_of(2, "t", b"b")])
        };
        let writes = wal_writes(p, &first, &mut view, &mut scratch, 0, || None);
        let kinds = |writes: &ReadyWrites, scratch: &Encoded| -> Vec<String> {
            writes
                .writes(scratch)
                .map(|w| match w {
                    Write::TermVote { .. } => "vote".to_owned(),
                    Write::TruncateAfter { index, .. } => format!("truncate {index}"),
                    Write::Entry { index, .. } => format!("entry {index}"),
                    Write::CommitIndex { index, .. } => format!("commit {index}"),
                    Write::CompactTo { index, .. } => format!("compact {index}"),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(kinds(&writes, &scratch), ["vote", "entry 1", "entry 2"]);
        assert_eq!(writes.len(&scratch), 3);
        // A new term replaces entry 2 and commits entry 1: the vote, the truncation, the
        // entry, the commit index, in that order.
        let replaced = Ready {
            hard_state: Some(crate::core::HardState {
                term: Term(2),
                vote: None,
                commit: LogIndex(1),
            }),
            ..entries(vec![entry_of(2, "t", b"c")])
        };
        let writes = wal_writes(p, &replaced, &mut view, &mut scratch, 0, || None);
        assert_eq!(
            kinds(&writes, &scratch),
            ["vote", "truncate 1", "entry 2", "commit 1"]
        );
        assert_eq!(writes.len(&scratch), 4);
        let empty = wal_writes(p, &Ready::default(), &mut view, &mut scratch, 0, || None);
        assert_eq!(empty.writes(&scratch).count(), 0);
        assert_eq!(empty.len(&scratch), 0);
        // A compaction alone: the walk reaches the last position.
        let compaction = wal_writes(p, &floor(1, &[1]), &mut view, &mut scratch, 0, || {
            Some(LogIndex(1))
        });
        assert_eq!(kinds(&compaction, &scratch), ["compact 2"]);
        assert_eq!(compaction.len(&scratch), 1);
    }

    #[test]
    fn the_commit_index_is_written_once_it_runs_more_than_the_lag_ahead_or_the_partition_quiesces()
    {
        let (p, mut view, mut scratch) = (PartitionId(2), WalView::default(), Encoded::default());
        let committed = |commit: u64| Ready {
            hard_state: Some(crate::core::HardState {
                term: Term(1),
                vote: None,
                commit: LogIndex(commit),
            }),
            ..Ready::default()
        };
        let mut commit_of = |ready: &Ready, view: &mut WalView| {
            wal_writes(p, ready, view, &mut scratch, 2, || None).commit
        };
        // The first Ready writes the term (and the commit index 0 the WAL holds).
        assert_eq!(commit_of(&committed(0), &mut view), None);
        assert_eq!(commit_of(&committed(1), &mut view), None);
        assert_eq!(commit_of(&committed(2), &mut view), None);
        assert_eq!(commit_of(&committed(3), &mut view), Some(3), "3 ahead of 0");
        assert_eq!(commit_of(&committed(4), &mut view), None);
        // A quiescing partition's WAL gets the commit index it knows, reported or not.
        let quiesced = Ready {
            quiescence: Some(true),
            ..Ready::default()
        };
        assert_eq!(commit_of(&quiesced, &mut view), Some(4));
        assert_eq!(commit_of(&quiesced, &mut view), None, "already written");
        assert_eq!(commit_of(&committed(5), &mut view), None);
        assert_eq!(
            view.take_lagging_commit(),
            Some(5),
            "what an orderly stop writes"
        );
        assert_eq!(view.take_lagging_commit(), None);
        // Committing a configuration entry writes the commit index at once.
        let configured = Ready {
            entries: vec![entry(
                6,
                EntryKind::Configuration,
                configuration(&[1, 2]).encode(),
            )],
            ..Ready::default()
        };
        assert_eq!(commit_of(&configured, &mut view), None, "not committed yet");
        assert_eq!(commit_of(&committed(6), &mut view), Some(6));
        // Without a lag every change is written.
        let writes = wal_writes(p, &committed(7), &mut view, &mut scratch, 0, || None);
        assert_eq!(writes.commit, Some(7));
    }
}
