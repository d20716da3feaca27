//! The durable truth of a simulated disk: what recovery of its durable image would find, per
//! partition, computed in memory with recovery's own checks, scan and replay (the code
//! `Wal::open` runs), with no file written and no `Wal` opened.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;

use super::image::{Contents, DiskImage};
use crate::directory::{DirListing, MARKER_NAME};
use crate::error::{Error, Result};
use crate::recovery::{SegmentImage, replay, scan};
use crate::segment::segment_name;
use crate::{PartitionId, TermVote};

/// What recovery of a simulated disk's durable image finds: every partition's log. See
/// [`super::SimDisk::durable_logs`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableLogs {
    /// Every partition with records, by id.
    pub partitions: BTreeMap<PartitionId, DurableLog>,
}

/// One partition's log as recovery finds it: what [`crate::Wal::partition`],
/// [`crate::Wal::term_at`], [`crate::Wal::floor_meta`] and [`crate::Wal::entry`] report after
/// opening the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableLog {
    /// The first index held (the compaction floor), or the next index when no entry is held
    /// ([`crate::PartitionInfo::first_index`]).
    pub first_index: u64,
    /// The term at `first_index - 1`, as [`crate::Wal::term_at`] reports it: `None` while the
    /// partition has had no entry, truncation, compaction or reset (any first index is then
    /// allowed); `Some(0)` when the log does not know it (its first entry was appended at
    /// `first_index` without a floor).
    pub floor_term: Option<u64>,
    /// The floor's meta ([`crate::Wal::floor_meta`]; a copy).
    pub floor_meta: Bytes,
    /// The latest term and vote.
    pub term_vote: Option<TermVote>,
    /// The latest commit index.
    pub commit_index: Option<u64>,
    /// The entries from `first_index` on, in index order, without gaps.
    pub entries: Vec<DurableEntry>,
}

impl DurableLog {
    /// The last index held (`first_index - 1` when no entry is held).
    pub fn last_index(&self) -> u64 {
        (self.first_index + self.entries.len() as u64).saturating_sub(1)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: u64) -> Option<&DurableEntry> {
        let offset = index.checked_sub(self.first_index)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }
}

/// One durable entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableEntry {
    /// Its index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// Its payload (sharing the disk model's copy of the segment: no copy).
    pub payload: Bytes,
}

/// A segment's contents as the owner of `Bytes` slices.
struct SharedContents(Contents);

impl AsRef<[u8]> for SharedContents {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Recovers the durable part of `image` (of the directory `dir`, named in errors) in memory,
/// deciding exactly as `Wal::open` would: the same listing and marker check, the same scan and
/// replay over the same segment bytes.
pub(super) fn recover(dir: &Path, image: &DiskImage) -> Result<DurableLogs> {
    let listing = DirListing::classify(image.names.keys().cloned());
    listing.check_is_wal_with(dir, || {
        Ok(image
            .file(MARKER_NAME)
            .map(|c| c.as_slice().to_vec())
            .unwrap_or_default())
    })?;
    let segments: Vec<(u64, Bytes)> = listing
        .seqs
        .iter()
        .map(|&seq| {
            let contents = image.file(&segment_name(seq)).unwrap_or_default();
            (seq, Bytes::from_owner(SharedContents(contents)))
        })
        .collect();
    let images: Vec<SegmentImage<'_>> = segments
        .iter()
        .map(|(seq, bytes)| SegmentImage { seq: *seq, bytes })
        .collect();
    let outcome = scan(&images)?;
    let state = replay(&images, &outcome)?;
    let mut logs = DurableLogs::default();
    for (id, log) in &state.partitions {
        let mut entries = Vec::with_capacity(log.entries.len());
        for (index, loc) in (log.first_index..).zip(&log.entries) {
            let start = loc.offset as usize;
            let payload = segments
                .binary_search_by_key(&loc.segment, |(seq, _)| *seq)
                .ok()
                .and_then(|i| {
                    let bytes = &segments[i].1;
                    let end = start.checked_add(loc.len as usize)?;
                    (end <= bytes.len()).then(|| bytes.slice(start..end))
                })
                .ok_or_else(|| Error::Corrupt {
                    segment: loc.segment,
                    offset: loc.offset,
                    reason: "index points outside the mapped segments".into(),
                })?;
            entries.push(DurableEntry {
                index,
                term: loc.term,
                payload,
            });
        }
        logs.partitions.insert(
            *id,
            DurableLog {
                first_index: log.first_index,
                floor_term: (!log.fresh).then_some(log.floor_term),
                floor_meta: log.floor_meta.clone(),
                term_vote: log.term_vote.map(|(term_vote, _)| term_vote),
                commit_index: log.commit_index.map(|(index, _)| index),
                entries,
            },
        );
    }
    Ok(logs)
}
