//! From recovery's scan and replay to the report: per-segment and per-partition rows, the
//! totals, the live entries, and what `Wal::open` would do (the verdict).

use std::collections::BTreeSet;

use super::report::{
    EntryListing, EntryReport, Floor, FloorMeta, PartitionReport, RecoveryVerdict, SegmentReport,
    SegmentStatus, TermVoteReport, Totals,
};
use crate::PartitionId;
use crate::error::Error;
use crate::recovery::{Damage, DamageAction, ScanOutcome, SegmentImage};
use crate::segment::segment_name;
use crate::state::LogState;

pub(super) fn segment_reports(
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
pub(super) fn partition_reports(
    state: &LogState,
    deleted: &BTreeSet<PartitionId>,
) -> Vec<PartitionReport> {
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
            floor_meta: FloorMeta::of(&p.floor_meta),
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
        floor_meta: FloorMeta::default(),
        term_vote: None,
        commit_index: None,
        oldest_live_lsn: None,
    }));
    reports.sort_unstable_by_key(|p| p.id);
    reports
}

impl Totals {
    pub(super) fn of(
        segments: &[SegmentReport],
        partitions: &[PartitionReport],
        damages: &[Damage],
    ) -> Self {
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

/// What `Wal::open` would do: refuse at the first of its checks that fails (the marker, then
/// the scan, then the replay, in `damages`' order), or list its repairs.
pub(super) fn verdict(
    not_a_wal: Option<&Error>,
    damages: &[Damage],
    temps: &[String],
    images: &[SegmentImage<'_>],
    beyond_end: &[(usize, u64)],
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
                    segment_name(damage.segment),
                    damage.offset
                ));
            }
            DamageAction::DiscardSegment => repairs.push(format!(
                "remove the half-prepared segment {}",
                segment_name(damage.segment)
            )),
            DamageAction::MissingSegment | DamageAction::Corrupt => {}
        }
    }
    for (index, image) in images.iter().enumerate() {
        let offsets: Vec<String> = beyond_end
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, offset)| offset.to_string())
            .collect();
        if !offsets.is_empty() {
            repairs.push(format!(
                "zero {} frame(s) of segment {} an earlier life left beyond the recovered end, \
                 at offsets {}",
                offsets.len(),
                segment_name(image.seq),
                offsets.join(", ")
            ));
        }
    }
    if repairs.is_empty() {
        RecoveryVerdict::Opens
    } else {
        RecoveryVerdict::OpensAfterRepair { repairs }
    }
}

pub(super) fn list_entries(
    state: &LogState,
    partitions: &[PartitionReport],
    max: usize,
) -> EntryListing {
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
