//! [`inspect`]: a read-only report of a WAL directory for operators (`kommander wal inspect
//! DIR`): its segments, partitions and index ranges, every damage, and what `Wal::open`
//! would do with it.
//!
//! It reads with the recovery code itself ([`crate::recovery`]'s scan and replay, which keep
//! going past a fatal damage here so every one is reported), so the report says exactly what
//! recovery would decide. It changes nothing: no lock is taken (a running node is not
//! disturbed and does not block it), no torn tail is zeroed, no temporary file or
//! half-prepared segment is removed, nothing is created. Files are read with plain `read`s
//! (no mapping), so memory use is the sum of the segment sizes.
//!
//! # A directory a live node holds
//!
//! The read is not an atomic snapshot, but it yields one: segments are read newest first. A
//! node writes only to its newest segments and drains its pipeline before moving to the next
//! one, so every older segment is complete before the newer ones receive anything. Worked
//! case: the listing shows `5` (active) and `6` (prepared); `6` is read (empty); the node fills
//! `5` and rotates into `6`; `5` is read (complete). The report shows the log up to the end of
//! `5`, as it was at one instant.
//!
//! That holds while no segment needed at that instant disappears before it is read: the node
//! reclaims its oldest segments (deletes them, or renames them for recycling and rewrites
//! their header) once their records are dead, which may be after the instant. A segment found
//! gone, or renamed under the read, makes the whole directory be read again, listing it anew
//! (at most 5 times; then [`InspectReport::vanished_files`] names them and the report may miss
//! their records). So does a fatal damage in a segment whose bytes differ on a second read:
//! one read of a large active segment is not atomic, and if the node writes more frames than
//! its pipeline depth during it, a torn frame followed by those frames looks fatal.
//!
//! What a live log shows, then: a torn tail at its end (a frame being written while it was
//! read), reported as [`DamageAction::TornTail`] exactly as a crash at that instant would
//! leave it. Damage that is still there on a stopped node is real.

use std::collections::BTreeSet;
use std::fmt;
use std::io::ErrorKind;
use std::path::Path;

use serde::Serialize;

use crate::PartitionId;
use crate::directory::{DirListing, MARKER_NAME};
use crate::error::{Error, Result};
use crate::format::RecordKind;
pub use crate::recovery::{Damage, DamageAction};
use crate::recovery::{ScanOutcome, SegmentImage, replay_surveyed, survey, verified_header};
use crate::segment::segment_name;
use crate::state::LogState;

/// What [`inspect`] includes besides the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InspectOptions {
    /// List live entries (partition, index, term, payload length, LSN, location).
    pub entries: bool,
    /// At most this many entries are listed (default 10 000); the rest are counted.
    pub entries_max: usize,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            entries: false,
            entries_max: 10_000,
        }
    }
}

/// Everything [`inspect`] found in a WAL directory. `Display` renders a compact text report;
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
    /// The live entries, when [`InspectOptions::entries`] asked for them.
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
    /// The first [`InspectOptions::entries_max`] entries.
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

/// Inspects the WAL in `dir` without changing anything (see the module docs, also for a
/// directory a live node holds).
///
/// A directory holding segments is reported even when `Wal::open` would refuse it (no
/// marker, damage): [`InspectReport::recovery`] says so.
///
/// # Errors
/// [`Error::Io`] if the directory or a file in it cannot be read (a missing directory is one,
/// with `NotFound` as the source); [`Error::NotAWal`] if it holds no segment and no valid
/// marker (an empty directory, or other files).
pub fn inspect(dir: &Path, options: &InspectOptions) -> Result<InspectReport> {
    let listing = DirListing::read(dir)?;
    let not_a_wal = match listing.check_is_wal(dir) {
        Ok(()) => None,
        Err(error @ Error::NotAWal { .. }) => Some(error),
        Err(error) => return Err(error),
    };
    if listing.seqs.is_empty() && (not_a_wal.is_some() || !listing.has_marker) {
        return Err(not_a_wal.unwrap_or_else(|| Error::NotAWal {
            dir: dir.to_path_buf(),
            reason: format!("it holds neither a {MARKER_NAME} marker nor segments"),
        }));
    }
    let marker = match (listing.has_marker, &not_a_wal) {
        (false, _) => MarkerState::Missing,
        (true, None) => MarkerState::Valid,
        (true, Some(_)) => MarkerState::Invalid,
    };
    let (files, vanished_files, outcome) = read_consistently(dir, listing.seqs.clone())?;
    let images = images_of(&files);
    let mut state = LogState::default();
    let mut deleted = BTreeSet::new();
    let replay_damages = replay_surveyed(&images, &outcome.frames, &mut state, |record| {
        if record.kind == RecordKind::DeletePartition {
            deleted.insert(record.partition);
        }
    });
    deleted.retain(|id| !state.partitions.contains_key(id));
    let mut damages = outcome.damages.clone();
    damages.extend(replay_damages);

    let segments = segment_reports(&images, &outcome, &damages);
    let partitions = partition_reports(&state, &deleted);
    let entries = options
        .entries
        .then(|| list_entries(&state, &partitions, options.entries_max));
    let recovery = verdict(not_a_wal.as_ref(), &damages, &listing.temps, &images);
    let totals = Totals::of(&segments, &partitions, &damages);
    Ok(InspectReport {
        dir: dir.display().to_string(),
        marker,
        recovery,
        temporary_files: listing.temps,
        other_files: listing.foreign,
        vanished_files,
        segments,
        partitions,
        damages,
        totals,
        entries,
    })
}

/// Reads and scans the segments `seqs` until no race with a live node spoiled the read, at
/// most [`READ_ATTEMPTS_MAX`] times, listing the directory anew before each new read (see the
/// module docs). Returns the files, those lost to reclamation in the last read, and the scan.
fn read_consistently(
    dir: &Path,
    mut seqs: Vec<u64>,
) -> Result<(Vec<SegmentFile>, Vec<String>, ScanOutcome)> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (files, lost) = read_segments(dir, &seqs)?;
        let outcome = survey(&images_of(&files));
        let raced = !lost.is_empty() || changed_under_fatal_damage(dir, &files, &outcome)?;
        if !raced || attempts >= READ_ATTEMPTS_MAX {
            return Ok((files, lost, outcome));
        }
        seqs = DirListing::read(dir)?.seqs;
    }
}

fn segment_reports(
    images: &[SegmentImage<'_>],
    outcome: &ScanOutcome,
    damages: &[Damage],
) -> Vec<SegmentReport> {
    let mut reports: Vec<SegmentReport> = images
        .iter()
        .zip(&outcome.segments)
        .map(|(image, scan)| {
            let header = scan.header.as_ref().ok();
            let status = match damages
                .iter()
                .find(|d| d.segment == image.seq && d.action != DamageAction::MissingSegment)
            {
                Some(damage) => SegmentStatus::Damaged(damage.clone()),
                None if header.is_some() && !scan.walked => SegmentStatus::Prepared,
                None => SegmentStatus::Ok,
            };
            SegmentReport {
                file: segment_name(image.seq),
                seq: image.seq,
                epoch: header.map(|h| h.epoch.get()),
                created_unix_ns: header.map(|h| h.created_unix_ns.get()),
                size_bytes: image.bytes.len() as u64,
                bytes_used: scan.end,
                frames: 0,
                records: 0,
                first_lsn: None,
                last_lsn: None,
                status,
            }
        })
        .collect();
    for frame in &outcome.frames {
        let Some(report) = reports.get_mut(frame.segment_index) else {
            continue;
        };
        let records = u64::from(frame.header.record_count.get());
        let first = frame.header.first_lsn.get();
        report.frames += 1;
        report.records += records;
        if records > 0 {
            report.first_lsn.get_or_insert(first);
            report.last_lsn = Some(first + records - 1);
        }
    }
    reports
}

/// Live partitions and those whose last record on disk deletes them, by id.
fn partition_reports(state: &LogState, deleted: &BTreeSet<PartitionId>) -> Vec<PartitionReport> {
    let mut reports: Vec<PartitionReport> = state
        .partitions
        .iter()
        .map(|(id, p)| PartitionReport {
            id: *id,
            deleted: false,
            first_index: p.first_index,
            last_index: p.last_index(),
            last_term: p.last_term(),
            entries: p.entries.len() as u64,
            entry_bytes: p.entries.iter().map(|e| u64::from(e.len)).sum(),
            // A rewrite at rotation (a reset record) restarts a never-compacted partition's
            // log at its first live entry with an unknown (0) floor term: not a compaction.
            compaction_floor: (p.floor_lsn.is_some() && p.floor_term != 0).then(|| Floor {
                index: p.first_index.saturating_sub(1),
                term: p.floor_term,
            }),
            term_vote: p.term_vote.map(|(term_vote, _)| TermVoteReport {
                term: term_vote.term,
                vote: term_vote.vote,
            }),
            commit_index: p.commit_index.map(|(index, _)| index),
            oldest_live_lsn: p.oldest_live_lsn(),
        })
        .collect();
    reports.extend(deleted.iter().map(|id| PartitionReport {
        id: *id,
        deleted: true,
        first_index: 1,
        last_index: 0,
        last_term: 0,
        entries: 0,
        entry_bytes: 0,
        compaction_floor: None,
        term_vote: None,
        commit_index: None,
        oldest_live_lsn: None,
    }));
    reports.sort_unstable_by_key(|p| p.id);
    reports
}

impl Totals {
    fn of(segments: &[SegmentReport], partitions: &[PartitionReport], damages: &[Damage]) -> Self {
        Self {
            segments: segments.len() as u64,
            size_bytes: segments.iter().map(|s| s.size_bytes).sum(),
            bytes_used: segments.iter().map(|s| s.bytes_used).sum(),
            frames: segments.iter().map(|s| s.frames).sum(),
            records: segments.iter().map(|s| s.records).sum(),
            first_lsn: segments.iter().find_map(|s| s.first_lsn),
            last_lsn: segments.iter().rev().find_map(|s| s.last_lsn),
            partitions: partitions.iter().filter(|p| !p.deleted).count() as u64,
            partitions_deleted: partitions.iter().filter(|p| p.deleted).count() as u64,
            entries: partitions.iter().map(|p| p.entries).sum(),
            entry_bytes: partitions.iter().map(|p| p.entry_bytes).sum(),
            damages: damages.len() as u64,
            damages_fatal: damages.iter().filter(|d| d.action.is_fatal()).count() as u64,
        }
    }
}

/// A segment's sequence number and bytes.
type SegmentFile = (u64, Vec<u8>);

/// Reads of a directory that changes under the read (see the module docs).
const READ_ATTEMPTS_MAX: usize = 5;

/// Reads the segments `seqs`, newest first (see the module docs), and returns them in seq
/// order, with the names of those the node reclaimed before they could be read: gone, or
/// renamed for recycling while being read (their header is then the next life's).
fn read_segments(dir: &Path, seqs: &[u64]) -> Result<(Vec<SegmentFile>, Vec<String>)> {
    let mut files = Vec::with_capacity(seqs.len());
    let mut lost = Vec::new();
    for &seq in seqs.iter().rev() {
        let path = dir.join(segment_name(seq));
        match std::fs::read(&path) {
            Ok(bytes) => files.push((seq, bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => lost.push(seq),
            Err(error) => return Err(Error::io("reading a segment", path, error)),
        }
    }
    files.reverse();
    let unverified =
        |(seq, bytes): &SegmentFile| verified_header(&SegmentImage { seq: *seq, bytes }).is_err();
    if files.iter().any(unverified) {
        let present = DirListing::read(dir)?.seqs;
        files.retain(|file| {
            let recycled = unverified(file) && present.binary_search(&file.0).is_err();
            if recycled {
                lost.push(file.0);
            }
            !recycled
        });
    }
    lost.sort_unstable();
    Ok((files, lost.into_iter().map(segment_name).collect()))
}

fn images_of(files: &[SegmentFile]) -> Vec<SegmentImage<'_>> {
    files
        .iter()
        .map(|(seq, bytes)| SegmentImage { seq: *seq, bytes })
        .collect()
}

/// Whether a segment holding a fatal damage reads differently now (a live node wrote it
/// while it was read: the damage may be an artifact of the read).
fn changed_under_fatal_damage(
    dir: &Path,
    files: &[SegmentFile],
    outcome: &ScanOutcome,
) -> Result<bool> {
    for damage in outcome.damages.iter().filter(|d| d.action.is_fatal()) {
        let Some((_, before)) = files.iter().find(|(seq, _)| *seq == damage.segment) else {
            continue;
        };
        let path = dir.join(segment_name(damage.segment));
        match std::fs::read(&path) {
            Ok(now) if now == *before => {}
            Ok(_) => return Ok(true),
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(true),
            Err(error) => return Err(Error::io("reading a segment", path, error)),
        }
    }
    Ok(false)
}

/// What `Wal::open` would do: refuse at the first of its checks that fails (the marker, then
/// the scan, then the replay, in `damages`' order), or list its repairs.
fn verdict(
    not_a_wal: Option<&Error>,
    damages: &[Damage],
    temps: &[String],
    images: &[SegmentImage<'_>],
) -> RecoveryVerdict {
    let refusal = not_a_wal.map(ToString::to_string).or_else(|| {
        damages
            .iter()
            .find_map(|d| d.error().map(|e| e.to_string()))
    });
    if let Some(error) = refusal {
        return RecoveryVerdict::Refuses { error };
    }
    let mut repairs = Vec::new();
    if !temps.is_empty() {
        repairs.push(format!("remove the temporary files {}", temps.join(", ")));
    }
    for damage in damages {
        match damage.action {
            DamageAction::TornTail { frames_dropped } => {
                let size = images
                    .iter()
                    .find(|image| image.seq == damage.segment)
                    .map_or(0, |image| image.bytes.len());
                repairs.push(format!(
                    "drop the torn tail of segment {}: zero bytes {}..{size} ({frames_dropped} \
                     valid frames after it dropped)",
                    damage.segment, damage.offset
                ));
            }
            DamageAction::DiscardSegment => repairs.push(format!(
                "remove the half-prepared segment {}",
                segment_name(damage.segment)
            )),
            DamageAction::MissingSegment | DamageAction::Corrupt => {}
        }
    }
    if repairs.is_empty() {
        RecoveryVerdict::Opens
    } else {
        RecoveryVerdict::OpensAfterRepair { repairs }
    }
}

fn list_entries(state: &LogState, partitions: &[PartitionReport], max: usize) -> EntryListing {
    let mut listed = Vec::new();
    let mut omitted = 0u64;
    for report in partitions {
        let Some(partition) = state.partitions.get(&report.id) else {
            continue;
        };
        for (index, entry) in (partition.first_index..).zip(&partition.entries) {
            if listed.len() < max {
                listed.push(EntryReport {
                    partition: report.id,
                    index,
                    term: entry.term,
                    payload_bytes: entry.len,
                    lsn: entry.lsn,
                    segment: entry.segment,
                    offset: entry.offset,
                });
            } else {
                omitted += 1;
            }
        }
    }
    EntryListing { listed, omitted }
}

/// `a..b`, or `-` when absent.
fn range(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (Some(first), Some(last)) => format!("{first}..{last}"),
        _ => "-".into(),
    }
}

fn or_dash<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

impl fmt::Display for DamageAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSegment => f.write_str("FATAL (missing segment)"),
            Self::Corrupt => f.write_str("FATAL (corrupt)"),
            Self::TornTail { frames_dropped } => write!(
                f,
                "torn tail: recovery drops it and {frames_dropped} later frames"
            ),
            Self::DiscardSegment => f.write_str("recovery removes the segment"),
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment {} offset {}: {} -> {}",
            self.segment, self.offset, self.reason, self.action
        )
    }
}

impl fmt::Display for SegmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Prepared => f.write_str("prepared"),
            Self::Damaged(damage) => {
                let what = match damage.action {
                    DamageAction::TornTail { .. } => "torn tail",
                    DamageAction::DiscardSegment => "half-prepared",
                    DamageAction::MissingSegment | DamageAction::Corrupt => "CORRUPT",
                };
                write!(f, "{what} at {}: {}", damage.offset, damage.reason)
            }
        }
    }
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        writeln!(f, "WAL directory {}", self.dir)?;
        let marker = match self.marker {
            MarkerState::Valid => "ok",
            MarkerState::Missing => "MISSING",
            MarkerState::Invalid => "INVALID",
        };
        writeln!(f, "marker: {marker}")?;
        match &self.recovery {
            RecoveryVerdict::Opens => writeln!(f, "recovery: opens as is")?,
            RecoveryVerdict::OpensAfterRepair { repairs } => {
                writeln!(f, "recovery: opens after repairing:")?;
                for repair in repairs {
                    writeln!(f, "  - {repair}")?;
                }
            }
            RecoveryVerdict::Refuses { error } => writeln!(f, "recovery: REFUSES: {error}")?,
        }
        for (label, names) in [
            ("temporary files", &self.temporary_files),
            ("other files", &self.other_files),
            ("vanished while reading (live node)", &self.vanished_files),
        ] {
            if !names.is_empty() {
                writeln!(f, "{label}: {}", names.join(", "))?;
            }
        }
        writeln!(
            f,
            "\nsegments: {} ({} bytes, {} used), {} frames, {} records, LSN {}",
            t.segments,
            t.size_bytes,
            t.bytes_used,
            t.frames,
            t.records,
            range(t.first_lsn, t.last_lsn)
        )?;
        if !self.segments.is_empty() {
            writeln!(
                f,
                "  {:<20}  {:<16}  {:>10}  {:>10}  {:>6}  {:>8}  {:<15}  status",
                "file", "epoch", "size", "used", "frames", "records", "lsn"
            )?;
        }
        for s in &self.segments {
            writeln!(
                f,
                "  {:<20}  {:<16}  {:>10}  {:>10}  {:>6}  {:>8}  {:<15}  {}",
                s.file,
                s.epoch.map_or_else(|| "-".into(), |e| format!("{e:016x}")),
                s.size_bytes,
                s.bytes_used,
                s.frames,
                s.records,
                range(s.first_lsn, s.last_lsn),
                s.status
            )?;
        }
        writeln!(
            f,
            "\npartitions: {} live, {} deleted; {} live entries ({} payload bytes)",
            t.partitions, t.partitions_deleted, t.entries, t.entry_bytes
        )?;
        if !self.partitions.is_empty() {
            writeln!(
                f,
                "  {:>10}  {:<21}  {:>8}  {:>9}  {:<13}  {:>10}  {:<15}  oldest lsn",
                "partition", "first..last", "entries", "last term", "term, vote", "commit", "floor"
            )?;
        }
        for p in &self.partitions {
            if p.deleted {
                writeln!(f, "  {:>10}  deleted", p.id.get())?;
                continue;
            }
            let term_vote = p.term_vote.map_or_else(
                || "-".into(),
                |tv| format!("{}, {}", tv.term, or_dash(tv.vote)),
            );
            let floor = p
                .compaction_floor
                .map_or_else(|| "-".into(), |fl| format!("{} @{}", fl.index, fl.term));
            writeln!(
                f,
                "  {:>10}  {:<21}  {:>8}  {:>9}  {:<13}  {:>10}  {:<15}  {}",
                p.id.get(),
                format!("{}..{}", p.first_index, p.last_index),
                p.entries,
                p.last_term,
                term_vote,
                or_dash(p.commit_index),
                floor,
                or_dash(p.oldest_live_lsn)
            )?;
        }
        writeln!(f, "\ndamage: {} ({} fatal)", t.damages, t.damages_fatal)?;
        for damage in &self.damages {
            writeln!(f, "  {damage}")?;
        }
        if let Some(entries) = &self.entries {
            writeln!(
                f,
                "\nentries: {} listed, {} omitted",
                entries.listed.len(),
                entries.omitted
            )?;
            if !entries.listed.is_empty() {
                writeln!(
                    f,
                    "  {:>10}  {:>10}  {:>6}  {:>8}  {:>10}  {:>8}  offset",
                    "partition", "index", "term", "bytes", "lsn", "segment"
                )?;
            }
            for e in &entries.listed {
                writeln!(
                    f,
                    "  {:>10}  {:>10}  {:>6}  {:>8}  {:>10}  {:>8}  {}",
                    e.partition.get(),
                    e.index,
                    e.term,
                    e.payload_bytes,
                    e.lsn,
                    e.segment,
                    e.offset
                )?;
            }
        }
        Ok(())
    }
}
