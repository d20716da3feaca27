//! The application's side of snapshot transfer (Kommander's `IRaftPartitionStateTransfer`): a
//! leader whose follower needs entries below its compaction floor streams the application's
//! state of the partition instead, and the follower's application installs it.
//!
//! ```text
//! leader's shard thread      export(p, at)  → SnapshotExport   (captures the state at `at`)
//! leader's transfer thread   read_chunk()…  → chunks on the wire, a SHA-256 over the whole
//! follower's transfer thread import(p, at)  → SnapshotImport, write_chunk()…, finish()
//! follower's shard thread    the WAL's boundary record at `at`, then the acknowledgement
//! ```
//!
//! Only [`StateTransfer::export`] runs on the shard thread; reading, writing and finishing run
//! on the shard's transfer thread, one call at a time per transfer, so a slow disk or a large
//! state never stalls the shard's other partitions.
//!
//! # Range transfer (split and merge, decision 0006)
//!
//! A split or merge moves a hash range of a source partition's keys into a target partition
//! through the target's log:
//!
//! ```text
//! target leader's shard  export_range(plan)   → SnapshotExport of the source's keys in the range
//!                        read_chunk()…         a window at a time, each proposed to the target's log
//! every target replica   import_range_begin(target, at, plan)      in log order, on the shard
//!                        import_range_chunk(target, at, plan, bytes)…   thread, as the entries
//!                        import_range_end(target, at, plan)            commit (and at restore)
//! ```
//!
//! The export starts once the source's replica on the exporting node applied the source's
//! generation entry: from there on the source commits no write routed into the range, so its
//! state of the range is frozen. The import entries are ordinary entries of the target's log
//! (never handed to `on_replication_received`), so the imported state is replicated, durable,
//! restored and snapshotted exactly as the target's own writes. A begin may come again (a new
//! leader restarting an unfinished import): the application drops what it imported since the
//! last begin. Without a range export ([`StateTransfer::export_range`]'s default), begin and
//! end come without chunks: Kommander's fallback, the application moves its data itself.

use std::io;

use bytes::Bytes;

use crate::core::{Floor, LogIndex, PartitionId, Term};

/// A hash range moving from one partition to another (a split's upper part, a merged-away
/// range), of the source's generation that froze it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RangeTransfer {
    /// The partition the keys leave.
    pub source: PartitionId,
    /// The partition the keys go to.
    pub target: PartitionId,
    /// The source's generation the transfer is of (its phase-1 generation).
    pub generation: u64,
    /// The first hash moved (inclusive).
    pub start: i32,
    /// The last hash moved (inclusive).
    pub end: i32,
}

impl RangeTransfer {
    /// Whether a key whose routing hash is `hash` moves.
    #[must_use]
    pub fn holds(&self, hash: i32) -> bool {
        self.start <= hash && hash <= self.end
    }
}

/// A point of a partition's log a snapshot stands for: every entry up to `index` applied, the
/// entry at `index` of `term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotPoint {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
}

impl SnapshotPoint {
    /// The point `floor` stands for.
    pub(crate) fn of(floor: &Floor) -> Self {
        Self {
            index: floor.index,
            term: floor.term,
        }
    }
}

/// Produces and installs snapshots of the application's state, partition by partition.
/// Register it with `RaftBuilder::state_transfer`; without one, a follower behind its leader's
/// compaction floor is reported once per episode as a
/// `ReplicationError(SnapshotUnsupported)` and stays behind.
///
/// After a crash between a finished import and the log's boundary record, restore starts at
/// the application's durable point ([`StateMachine::durable_index`](super::StateMachine::durable_index)):
/// an application that reports one reports at least the imported index; one that reports
/// nothing is handed again the entries above the log's old floor, as after any crash, and
/// skips those its state already holds.
pub trait StateTransfer: Send + Sync + 'static {
    /// Whether snapshots of `partition` are supported (default: all). A follower of an
    /// unsupported partition behind its leader's floor is reported as for an application
    /// without a `StateTransfer`.
    fn supports(&self, partition: PartitionId) -> bool {
        let _ = partition;
        true
    }

    /// Captures `partition`'s state as applied through `at.index`. Called on the shard thread
    /// right after the entry at `at.index` was handed to the application, before any later
    /// one: the state is exactly that. It must not block (take a read snapshot, a
    /// copy-on-write handle, a consistent checkpoint of the store); the returned export is
    /// read later, off the shard thread, while the state moves on.
    ///
    /// # Errors
    ///
    /// Any I/O error: the transfer fails and is retried after a back-off.
    fn export(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotExport>>;

    /// Starts installing a snapshot of `partition` at `at`, received from its leader. Called
    /// off the shard thread. Nothing may change the partition's visible state before
    /// [`SnapshotImport::finish`]: an import dropped unfinished is abandoned (a newer transfer
    /// replaced it, the leader changed, a chunk did not check out).
    ///
    /// # Errors
    ///
    /// Any I/O error: the transfer is refused and the leader retries after a back-off.
    fn import(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotImport>>;

    /// Exports the source's keys in `plan`'s range (a split or merge; see the module docs),
    /// or `None` when the application moves them itself (the default: Kommander's fallback,
    /// the import then carries no chunk). Called on the target leader's shard thread, once the
    /// source's replica on this node applied the source's generation `plan.generation`; like
    /// [`StateTransfer::export`] it must not block, and the export is read later, a window of
    /// chunks at a time as they commit, while the source's state moves on outside the range.
    ///
    /// # Errors
    ///
    /// Any I/O error: the export is tried again at the next tick.
    fn export_range(&self, plan: &RangeTransfer) -> io::Result<Option<Box<dyn SnapshotExport>>> {
        let _ = plan;
        Ok(None)
    }

    /// An import of `plan` into `target` begins at log index `at`: anything imported since
    /// an earlier begin of the same plan is dropped (an unfinished import restarted by a new
    /// leader). Called on the target's shard thread in log order; at or below the index the
    /// application's state holds, it may skip it (as any entry after a restart).
    ///
    /// # Errors
    ///
    /// Any I/O error: reported as a `ReplicationError` of the entry.
    fn import_range_begin(
        &self,
        target: PartitionId,
        at: LogIndex,
        plan: &RangeTransfer,
    ) -> io::Result<()> {
        let _ = (target, at, plan);
        Ok(())
    }

    /// The next bytes of the export of `plan`, in the order [`SnapshotExport::read_chunk`]
    /// gave them, committed at log index `at` of `target`. The default refuses them (an
    /// application without a range export never receives any).
    ///
    /// # Errors
    ///
    /// Any I/O error: reported as a `ReplicationError` of the entry.
    fn import_range_chunk(
        &self,
        target: PartitionId,
        at: LogIndex,
        plan: &RangeTransfer,
        data: &[u8],
    ) -> io::Result<()> {
        let _ = (target, at, plan, data);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this application does not import key ranges",
        ))
    }

    /// The import of `plan` into `target` is complete at log index `at`: every chunk since
    /// its begin arrived.
    ///
    /// # Errors
    ///
    /// Any I/O error: reported as a `ReplicationError` of the entry.
    fn import_range_end(
        &self,
        target: PartitionId,
        at: LogIndex,
        plan: &RangeTransfer,
    ) -> io::Result<()> {
        let _ = (target, at, plan);
        Ok(())
    }
}

/// A snapshot being read: its bytes in order, in chunks.
pub trait SnapshotExport: Send {
    /// The next bytes of the snapshot, at most `max` (and at least one, unless the snapshot
    /// is over: then `None`).
    ///
    /// # Errors
    ///
    /// Any I/O error: the transfer fails and is retried after a back-off.
    fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>>;
}

/// A snapshot already held in memory: its bytes, read from the front.
impl SnapshotExport for Bytes {
    fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        if self.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.split_to(max.max(1).min(self.len()))))
    }
}

/// A snapshot being installed: its bytes in order, then `finish`.
pub trait SnapshotImport: Send {
    /// The next bytes of the snapshot (checked against their checksum before they come).
    ///
    /// # Errors
    ///
    /// Any I/O error: the import is abandoned (dropped) and the leader retries.
    fn write_chunk(&mut self, data: &[u8]) -> io::Result<()>;

    /// Every byte arrived and the SHA-256 over the whole matched: make the imported state the
    /// partition's, atomically (a crash leaves the old state or the new one) and durably. The
    /// shard holds the partition meanwhile (nothing is delivered to it); once this returns
    /// `Ok`, delivery resumes after the snapshot's index.
    ///
    /// # Errors
    ///
    /// Any I/O error, with the old state still in place: the leader retries.
    fn finish(self: Box<Self>) -> io::Result<()>;
}
