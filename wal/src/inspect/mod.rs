//! [`inspect`]: a read-only report of a WAL directory for operators (`kommander wal inspect
//! DIR`): its segments, partitions and index ranges, every damage, and what `Wal::open`
//! would do with it.
//!
//! It reads with the recovery code itself (`recovery.rs`'s scan and replay, which keep
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
//!
//! The code: `report.rs` (the report's types), `read.rs` (reading the segments consistently
//! while a node may write them), `analysis.rs` (from recovery's scan and replay to the
//! report's rows and verdict) and `text.rs` (the text rendering).

mod analysis;
mod read;
mod report;
mod text;

use std::collections::BTreeSet;
use std::path::Path;

use self::analysis::{list_entries, partition_reports, segment_reports, verdict};
use self::read::{images_of, read_consistently};
pub use self::report::{
    EntryListing, EntryReport, Floor, FloorMeta, InspectReport, MarkerState, PartitionReport,
    RecoveryVerdict, SegmentReport, SegmentStatus, TermVoteReport, Totals,
};
use crate::directory::{DirListing, MARKER_NAME};
use crate::error::{Error, Result};
use crate::format::RecordKind;
use crate::recovery::replay_surveyed;
pub use crate::recovery::{Damage, DamageAction};
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
    let recovery = verdict(
        not_a_wal.as_ref(),
        &damages,
        &listing.temps,
        &images,
        &outcome.beyond_end,
    );
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
