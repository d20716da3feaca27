//! [`WalConfig`]: every size and limit of the log, validated at open.

use crate::backend::{BLOCK_SIZE, BackendChoice};
use crate::error::{Error, Result};
use crate::format::{FRAME_HEADER_LEN, record_footprint};

/// Configuration of a [`crate::Wal`]. Every limit is a named field, validated by
/// [`WalConfig::validate`] when the log opens.
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Which backend writes (default [`BackendChoice::Auto`]: io_uring where permitted, else
    /// blocking).
    pub backend: BackendChoice,
    /// Size of every segment file in bytes: a multiple of 4096, from 64 KiB to 16 TiB
    /// (default 64 MiB).
    pub segment_bytes: u64,
    /// Largest frame (one durable write) in bytes: a multiple of 4096, at least 8 KiB and at
    /// most `segment_bytes - 4096` (default 1 MiB). A submission larger than this becomes
    /// several frames.
    pub batch_bytes_max: usize,
    /// Largest record payload in bytes; must fit a frame with its headers (default 512 KiB).
    pub record_bytes_max: usize,
    /// Largest floor meta in bytes (the opaque bytes kept with a partition's compaction floor:
    /// [`Write::CompactTo`](crate::Write::CompactTo),
    /// [`Write::InstallSnapshot`](crate::Write::InstallSnapshot)); must fit a frame with its
    /// headers (default 4 KiB, which fits the smallest frame). The log holds each partition's
    /// meta in memory: at most `partitions_max` times this.
    pub floor_meta_bytes_max: usize,
    /// Frames written and not yet durable at once, 1 to 64 (default 2). When reached,
    /// appending a record that needs a new frame waits for the oldest write.
    pub inflight_batches_max: usize,
    /// Partitions the log holds at most (default 1 048 576).
    pub partitions_max: usize,
    /// Segments kept prepared (zero-filled or recycled) ahead of the active one, 1 to 16
    /// (default 1).
    pub segments_prepared_ahead_max: usize,
    /// Reclaimed segments kept for recycling instead of deleted, 0 to 64 (default 2).
    pub segments_recycled_max: usize,
    /// Segments holding data the log keeps before it rewrites the records that pin its oldest
    /// one forward, 1 to 1024 (default 4). The live records of an active partition usually die
    /// by its own compaction a little later; moving them at every rotation writes them twice.
    /// So at a rotation the log first reclaims what is dead, and rewrites only while it holds
    /// more segments than this (1: at every rotation). Disk use stays bounded by this many
    /// segments, plus the prepared and recycled ones, plus what partitions too large to
    /// rewrite pin until they compact.
    pub segments_before_rewrite: usize,
    /// Prepare (zero-fill, recycle) and remove segments on a background thread, so appends
    /// never wait for a zero-fill (default `true`). `false` runs that work inline, at the
    /// rotation that needs it, which makes simulated runs reproducible step by step.
    pub prepare_segments_in_background: bool,
    /// Test hook: derive segment epochs from this seed (and the segment's seq) and write zero
    /// timestamps, so two runs of one workload write identical bytes (used to compare
    /// backends). Epochs stay unique per segment seq, which never repeats. `None` (the
    /// default) picks random epochs.
    pub deterministic_epoch_seed: Option<u64>,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::default(),
            segment_bytes: 64 << 20,
            batch_bytes_max: 1 << 20,
            record_bytes_max: 512 << 10,
            floor_meta_bytes_max: 4 << 10,
            inflight_batches_max: 2,
            partitions_max: 1 << 20,
            segments_prepared_ahead_max: 1,
            segments_recycled_max: 2,
            segments_before_rewrite: 4,
            prepare_segments_in_background: true,
            deterministic_epoch_seed: None,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

impl WalConfig {
    /// Checks every field and their relations.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let block = BLOCK_SIZE as u64;
        if !self.segment_bytes.is_multiple_of(block)
            || self.segment_bytes < 64 << 10
            || self.segment_bytes > 1 << 44
        {
            return Err(invalid(
                "segment_bytes",
                format!(
                    "{} is not a multiple of 4096 between 64 KiB and 16 TiB",
                    self.segment_bytes
                ),
            ));
        }
        if !self.batch_bytes_max.is_multiple_of(BLOCK_SIZE)
            || self.batch_bytes_max < 2 * BLOCK_SIZE
            || self.batch_bytes_max as u64 > self.segment_bytes - block
        {
            return Err(invalid(
                "batch_bytes_max",
                format!(
                    "{} is not a multiple of 4096 between 8 KiB and segment_bytes - 4096",
                    self.batch_bytes_max
                ),
            ));
        }
        // The first comparisons keep the sums below from overflowing.
        if self.record_bytes_max == 0
            || self.record_bytes_max > self.batch_bytes_max
            || FRAME_HEADER_LEN + record_footprint(self.record_bytes_max) > self.batch_bytes_max
        {
            return Err(invalid(
                "record_bytes_max",
                format!(
                    "{} must be at least 1 and fit one frame of batch_bytes_max = {} with its \
                     96 header bytes",
                    self.record_bytes_max, self.batch_bytes_max
                ),
            ));
        }
        if self.floor_meta_bytes_max > self.batch_bytes_max
            || FRAME_HEADER_LEN + record_footprint(self.floor_meta_bytes_max) > self.batch_bytes_max
        {
            return Err(invalid(
                "floor_meta_bytes_max",
                format!(
                    "{} must fit one frame of batch_bytes_max = {} with its 96 header bytes",
                    self.floor_meta_bytes_max, self.batch_bytes_max
                ),
            ));
        }
        if !(1..=64).contains(&self.inflight_batches_max) {
            return Err(invalid(
                "inflight_batches_max",
                format!("{} is not between 1 and 64", self.inflight_batches_max),
            ));
        }
        if self.partitions_max == 0 {
            return Err(invalid("partitions_max", "must be at least 1"));
        }
        if !(1..=16).contains(&self.segments_prepared_ahead_max) {
            return Err(invalid(
                "segments_prepared_ahead_max",
                format!(
                    "{} is not between 1 and 16",
                    self.segments_prepared_ahead_max
                ),
            ));
        }
        if self.segments_recycled_max > 64 {
            return Err(invalid(
                "segments_recycled_max",
                format!("{} is over 64", self.segments_recycled_max),
            ));
        }
        if !(1..=1024).contains(&self.segments_before_rewrite) {
            return Err(invalid(
                "segments_before_rewrite",
                format!("{} is not between 1 and 1024", self.segments_before_rewrite),
            ));
        }
        Ok(())
    }
}
