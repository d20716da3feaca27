//! Segments over time: preparation ahead of need (by the preparer), rotation to the next
//! segment, reclamation of segments nothing live needs, and the rewrite of the few records
//! that pin the oldest one.

use std::path::PathBuf;

use super::Wal;
use crate::PartitionId;
use crate::backend::SegmentFile;
use crate::error::{Error, Result};
use crate::format::{FIRST_FRAME_OFFSET, RecordKind, frame_footprint, record_footprint};
use crate::preparer::Job;
use crate::segment::Segment;

impl Wal {
    fn submit_prepare(&mut self, recycle: Option<(SegmentFile, PathBuf)>) -> Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.prepares_in_flight += 1;
        self.preparer.submit(Job::Prepare { seq, recycle })
    }

    /// Moves finished preparations into `prepared`; with `wait`, blocks until at least one
    /// segment is prepared (submitting a preparation if none is under way).
    fn collect_prepared(&mut self, wait: bool) -> Result<()> {
        if wait && self.prepared.is_empty() && self.prepares_in_flight == 0 {
            self.submit_prepare(None)?;
        }
        loop {
            let block = wait && self.prepared.is_empty();
            match self.preparer.next(block) {
                None => return Ok(()),
                Some(Ok(Some(segment))) => {
                    self.prepares_in_flight -= 1;
                    self.prepared.push_back(segment);
                }
                Some(Ok(None)) => {}
                Some(Err(error)) => return Err(error),
            }
        }
    }

    /// The next prepared segment, waiting for the preparer if none is ready.
    pub(super) fn next_segment(&mut self) -> Result<Segment> {
        self.collect_prepared(true)?;
        self.prepared.pop_front().ok_or_else(|| {
            Error::io(
                "preparing a segment",
                &self.dir,
                std::io::Error::other("the preparer returned no segment"),
            )
        })
    }

    pub(super) fn top_up_prepared(&mut self) -> Result<()> {
        while self.prepared.len() + self.prepares_in_flight
            < self.config.segments_prepared_ahead_max
        {
            self.submit_prepare(None)?;
        }
        Ok(())
    }

    /// Moves to the next segment: drains the pipeline (so no frame is ever in flight in two
    /// segments), reclaims segments nothing live needs, activates a prepared segment, and
    /// rewrites forward the few records of partitions that pin the oldest segment.
    pub(super) fn rotate(&mut self) -> Result<()> {
        self.seal_and_submit()?;
        while !self.inflight.is_empty() {
            let in_flight = self.backend.in_flight();
            if in_flight == 0 {
                // Every submitted write was reaped, yet a frame is not done: a backend that
                // lost a completion. Fail rather than wait forever.
                return Err(Error::io(
                    "draining the pipeline",
                    &self.dir,
                    std::io::Error::other("a durable write never completed"),
                ));
            }
            self.reap(in_flight)?;
        }
        let reclaimed = self.reclaim();
        let next = self.next_segment()?;
        self.segments.push_back(next);
        self.cursor = FIRST_FRAME_OFFSET;
        self.prev_payload_crc = 0;
        if let Some(active) = self.segments.back_mut() {
            active.end_lsn = self.next_lsn;
        }
        // Oldest first, in order, so a crash between two never leaves a gap.
        let keep_max = self.config.segments_prepared_ahead_max + self.config.segments_recycled_max;
        for (path, file) in reclaimed {
            match file {
                Some(file) if self.prepared.len() + self.prepares_in_flight < keep_max => {
                    self.submit_prepare(Some((file, path)))?;
                }
                _ => self.preparer.submit(Job::Remove { path })?,
            }
        }
        self.top_up_prepared()?;
        self.rewrite_pinning_partitions()?;
        Ok(())
    }

    /// Takes from the front every sealed segment whose records are all dead, oldest first,
    /// with its file if no reader still holds bytes of it (then it may be recycled; otherwise
    /// it is deleted, its mapping staying valid for the readers). Called with the pipeline
    /// drained, so every record is durable and so is a dead record's successor.
    fn reclaim(&mut self) -> Vec<(PathBuf, Option<SegmentFile>)> {
        let oldest_live = self
            .state
            .partitions
            .values()
            .filter_map(|p| p.oldest_live_lsn())
            .min()
            .unwrap_or(u64::MAX);
        let mut reclaimed = Vec::new();
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.end_lsn <= oldest_live)
        {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            let path = segment.path.clone();
            reclaimed.push((path, segment.into_unreferenced_file()));
        }
        reclaimed
    }

    /// Once the log holds more than `segments_before_rewrite` segments, partitions whose
    /// records still pin the oldest sealed segment get their live state rewritten into one
    /// fresh frame (a `Reset` record with the floor's meta, term and vote, commit index and live
    /// entries), if that fits one frame. Larger partitions keep pinning until compacted.
    fn rewrite_pinning_partitions(&mut self) -> Result<()> {
        if self.segments.len() <= self.config.segments_before_rewrite.max(1) {
            return Ok(());
        }
        let Some(oldest_end) = self.segments.front().map(|s| s.end_lsn) else {
            return Ok(());
        };
        // Leave room for a largest frame after the rewrites, and bound the copying done in
        // one rotation.
        let budget = (self.active_len() - FIRST_FRAME_OFFSET)
            .saturating_sub(self.config.batch_bytes_max as u64)
            .min(self.active_len() / 4);
        let mut spent = 0u64;
        let pinning: Vec<PartitionId> = self
            .state
            .partitions
            .iter()
            .filter(|(_, p)| p.oldest_live_lsn().is_some_and(|lsn| lsn < oldest_end))
            .map(|(id, _)| *id)
            .collect();
        let mut pinning = pinning;
        pinning.sort_unstable();
        for id in pinning {
            let Some(partition) = self.state.partitions.get(&id) else {
                continue;
            };
            let pins = |lsn: Option<u64>| lsn.is_some_and(|lsn| lsn < oldest_end);
            if !pins(partition.entries.front().map(|e| e.lsn)) && !pins(partition.truncate_lsn) {
                // Only control records pin: restate them (each alone is enough, so they need
                // no frame of their own; the floor with its meta).
                let restate_floor = pins(partition.floor_lsn).then(|| {
                    (
                        partition.first_index,
                        partition.floor_term,
                        partition.floor_meta.clone(),
                    )
                });
                let term_vote = partition
                    .term_vote
                    .filter(|(_, lsn)| *lsn < oldest_end)
                    .map(|(term_vote, _)| term_vote);
                let commit = partition
                    .commit_index
                    .filter(|(_, lsn)| *lsn < oldest_end)
                    .map(|(ci, _)| ci);
                spent +=
                    (record_footprint(partition.floor_meta.len()) + 2 * record_footprint(0)) as u64;
                if let Some((first_index, floor_term, meta)) = restate_floor {
                    self.append_record(
                        RecordKind::CompactTo,
                        0,
                        id,
                        floor_term,
                        first_index,
                        &meta,
                    )?;
                }
                self.append_control(id, term_vote, commit)?;
                continue;
            }
            let mut payload_bytes =
                record_footprint(partition.floor_meta.len()) + 2 * record_footprint(0);
            for entry in &partition.entries {
                payload_bytes += record_footprint(entry.len as usize);
            }
            let frame_bytes = frame_footprint(payload_bytes) as u64;
            if frame_bytes > self.config.batch_bytes_max as u64 || spent + frame_bytes > budget {
                tracing::debug!(
                    partition = %id,
                    "partition too large to rewrite; it pins a segment until compacted"
                );
                continue;
            }
            spent += frame_bytes;
            let first_index = partition.first_index;
            let floor_term = partition.floor_term;
            let floor_meta = partition.floor_meta.clone();
            let term_vote = partition.term_vote.map(|(term_vote, _)| term_vote);
            let commit = partition.commit_index.map(|(ci, _)| ci);
            let mut entries = Vec::with_capacity(partition.entries.len());
            for (i, loc) in partition.entries.iter().enumerate() {
                let bytes = self
                    .segment(loc.segment)
                    .and_then(|s| s.slice(loc.offset, loc.len))
                    .ok_or_else(|| Error::Corrupt {
                        segment: loc.segment,
                        offset: loc.offset,
                        reason: "index points outside the mapped segments".into(),
                    })?;
                entries.push((first_index + i as u64, loc.term, bytes));
            }
            // One frame for the whole rewrite, so a crash keeps all of it or none.
            self.seal_and_submit()?;
            self.append_record(
                RecordKind::Reset,
                0,
                id,
                floor_term,
                first_index,
                &floor_meta,
            )?;
            self.append_control(id, term_vote, commit)?;
            for (index, term, bytes) in entries {
                self.append_record(RecordKind::Entry, 0, id, term, index, &bytes)?;
            }
            self.seal_and_submit()?;
        }
        Ok(())
    }
}
