//! The binary's application state machine: it counts the entries and payload bytes delivered
//! per partition and keeps nothing else (memory is bounded by the number of counters fixed at
//! start).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use kommander_raft::{
    LogEntry, PartitionId, SnapshotExport, SnapshotImport, SnapshotPoint, StateMachine,
    StateTransfer,
};

/// Counts delivered entries: one counter per partition `0..tracked`, one for any other
/// partition, and one for entries restored from the WAL at start; and the delivered payload
/// bytes of each of the tracked partitions (what the checkpoint byte rule reads).
#[derive(Debug)]
pub(crate) struct AppliedCounter {
    per_partition: Vec<AtomicU64>,
    bytes_per_partition: Vec<AtomicU64>,
    other: AtomicU64,
    restored: AtomicU64,
}

/// A snapshot of an [`AppliedCounter`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AppliedStats {
    /// Live deliveries, all partitions.
    pub(crate) applied: u64,
    /// Partitions with at least one live delivery.
    pub(crate) partitions_active: usize,
    /// The busiest partition and its deliveries.
    pub(crate) busiest: Option<(PartitionId, u64)>,
    /// Entries restored from the WAL at start.
    pub(crate) restored: u64,
}

impl AppliedCounter {
    /// Counters for partitions `0..tracked` (system partition included) and one for the rest.
    pub(crate) fn new(tracked: u32) -> Self {
        Self {
            per_partition: (0..tracked).map(|_| AtomicU64::new(0)).collect(),
            bytes_per_partition: (0..tracked).map(|_| AtomicU64::new(0)).collect(),
            other: AtomicU64::new(0),
            restored: AtomicU64::new(0),
        }
    }

    fn counter(&self, partition: PartitionId) -> &AtomicU64 {
        usize::try_from(partition.get())
            .ok()
            .and_then(|p| self.per_partition.get(p))
            .unwrap_or(&self.other)
    }

    /// Live deliveries to `partition` so far.
    pub(crate) fn applied(&self, partition: PartitionId) -> u64 {
        self.counter(partition).load(Ordering::Relaxed)
    }

    /// Live delivered payload bytes (log type included) of `partition` so far; 0 for an
    /// untracked partition.
    pub(crate) fn applied_bytes(&self, partition: PartitionId) -> u64 {
        usize::try_from(partition.get())
            .ok()
            .and_then(|p| self.bytes_per_partition.get(p))
            .map_or(0, |bytes| bytes.load(Ordering::Relaxed))
    }

    /// A snapshot of every counter.
    pub(crate) fn stats(&self) -> AppliedStats {
        let mut stats = AppliedStats {
            restored: self.restored.load(Ordering::Relaxed),
            ..AppliedStats::default()
        };
        for (p, counter) in self.per_partition.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            stats.applied += count;
            if count > 0 {
                stats.partitions_active += 1;
                if stats.busiest.is_none_or(|(_, most)| count > most) {
                    let id = u32::try_from(p).unwrap_or(u32::MAX);
                    stats.busiest = Some((PartitionId(id), count));
                }
            }
        }
        stats.applied += self.other.load(Ordering::Relaxed);
        stats
    }
}

impl StateMachine for AppliedCounter {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.counter(partition).fetch_add(1, Ordering::Relaxed);
        if let Some(bytes) = usize::try_from(partition.get())
            .ok()
            .and_then(|p| self.bytes_per_partition.get(p))
        {
            let size = entry.payload.len() + entry.log_type().len();
            bytes.fetch_add(size as u64, Ordering::Relaxed);
        }
        true
    }

    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        self.restored.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// The counters are this node's statistics, not replicated state: a follower that catches up
/// by snapshot installs an empty one (its counters go on counting what it is handed).
impl StateTransfer for AppliedCounter {
    fn export(&self, _: PartitionId, _: SnapshotPoint) -> std::io::Result<Box<dyn SnapshotExport>> {
        Ok(Box::new(Empty))
    }

    fn import(&self, _: PartitionId, _: SnapshotPoint) -> std::io::Result<Box<dyn SnapshotImport>> {
        Ok(Box::new(Empty))
    }
}

/// An empty snapshot.
struct Empty;

impl SnapshotExport for Empty {
    fn read_chunk(&mut self, _: usize) -> std::io::Result<Option<Bytes>> {
        Ok(None)
    }
}

impl SnapshotImport for Empty {
    fn write_chunk(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("the binary's snapshots are empty"))
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}
