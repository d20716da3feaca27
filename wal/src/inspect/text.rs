//! The text rendering of a report (`kommander wal inspect` without `--json`).

use std::fmt;

use super::report::{FloorMeta, InspectReport, MarkerState, RecoveryVerdict, SegmentStatus};
use crate::recovery::{Damage, DamageAction};
use crate::segment::segment_name;

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

/// `-` when empty, else the length and the first bytes in hex (`..` when there are more).
impl fmt::Display for FloorMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("-");
        }
        let more = if self.len > Self::PREFIX_BYTES as u64 {
            ".."
        } else {
            ""
        };
        write!(f, "{} B {}{more}", self.len, self.prefix_hex)
    }
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
            segment_name(self.segment),
            self.offset,
            self.reason,
            self.action
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
                "  {:>10}  {:<21}  {:>8}  {:>9}  {:<13}  {:>10}  {:<15}  {:>10}  floor meta",
                "partition",
                "first..last",
                "entries",
                "last term",
                "term, vote",
                "commit",
                "floor",
                "oldest lsn"
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
                "  {:>10}  {:<21}  {:>8}  {:>9}  {:<13}  {:>10}  {:<15}  {:>10}  {}",
                p.id.get(),
                format!("{}..{}", p.first_index, p.last_index),
                p.entries,
                p.last_term,
                term_vote,
                or_dash(p.commit_index),
                floor,
                or_dash(p.oldest_live_lsn),
                p.floor_meta
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
                    "  {:>10}  {:>10}  {:>6}  {:>8}  {:>10}  {:<20}  offset",
                    "partition", "index", "term", "bytes", "lsn", "segment"
                )?;
            }
            for e in &entries.listed {
                writeln!(
                    f,
                    "  {:>10}  {:>10}  {:>6}  {:>8}  {:>10}  {:<20}  {}",
                    e.partition.get(),
                    e.index,
                    e.term,
                    e.payload_bytes,
                    e.lsn,
                    segment_name(e.segment),
                    e.offset
                )?;
            }
        }
        Ok(())
    }
}
