//! [`SplitProgress`]: how far this node's replicas applied the split entries of their logs
//! (`marks.rs`) — the source's generation entry, the target's import — shared by the shards
//! and the phase-2 driver on partition 0's leader, as the map is shared in the `MapTable`.
//!
//! A target's leader exports the source's range once this node's source replica applied the
//! source's generation entry (its state of the range is frozen from there on); phase 2 may run
//! once this node's replica of the target applied the end of an import of the source's current
//! generation. Written by each partition's shard as it hands entries over (live and restored)
//! and when it rebuilds a restored replica; read from any thread.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::marks::{GenerationMark, LogMarks, SplitEntry};
use crate::core::PartitionId;
use crate::shard::state_transfer::RangeTransfer;

/// What this node's replicas applied of their split entries (see the module docs).
#[derive(Debug, Default)]
pub struct SplitProgress {
    applied: Mutex<HashMap<PartitionId, LogMarks>>,
}

impl SplitProgress {
    /// The highest generation entry this node's replica of `partition` applied (0: none),
    /// and whether one was draining.
    #[must_use]
    pub fn generation_applied(&self, partition: PartitionId) -> (u64, bool) {
        let GenerationMark {
            generation,
            draining,
        } = self.applied(partition).generation;
        (generation, draining)
    }

    /// The transfer whose import this node's replica of `target` applied through its end, if
    /// its last import entry applied is that end: what phase 2 waits for.
    #[must_use]
    pub fn import_applied(&self, target: PartitionId) -> Option<RangeTransfer> {
        self.applied(target)
            .import
            .filter(|import| import.ended)
            .map(|import| import.plan)
    }

    /// The marks `partition`'s replica applied.
    pub(crate) fn applied(&self, partition: PartitionId) -> LogMarks {
        self.lock().get(&partition).copied().unwrap_or_default()
    }

    /// `partition`'s replica was rebuilt with its application at `marks`.
    pub(crate) fn set_applied(&self, partition: PartitionId, marks: LogMarks) {
        self.lock().insert(partition, marks);
    }

    /// `partition`'s replica handed `entry` over (the next split entry in log order).
    pub(crate) fn note_applied(&self, partition: PartitionId, entry: &SplitEntry) {
        self.lock().entry(partition).or_default().note(entry);
    }

    /// The application failed to import a part of `partition`'s current import: its end
    /// must not count (a new begin starts the import again).
    pub(crate) fn import_failed(&self, partition: PartitionId) {
        if let Some(marks) = self.lock().get_mut(&partition) {
            marks.import = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionId, LogMarks>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
