//! Moving a partition's state between nodes (the library's `StateTransfer`): whole snapshots
//! for a follower behind its leader's compaction floor, and key ranges for splits and merges.
//!
//! A received snapshot is written to the partition's file (durably) before it replaces the
//! state in memory, so the durable index reported afterwards is at least the snapshot's.
//! A range import applies as entries of the target's log: its begin drops the target's keys
//! in the range (what an unfinished earlier import left, or keys a former owner left behind),
//! each chunk inserts whole records, and the target's snapshots carry the result.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kommander_raft::{
    LogIndex, PartitionId, Raft, RangeTransfer, SnapshotExport, SnapshotImport, SnapshotPoint,
    StateTransfer,
};

use crate::snapshot::{self, LazySnapshot, RangeExport};
use crate::store::Store;

/// The store's snapshots and range moves.
pub(crate) struct Transfer {
    store: Arc<Store>,
}

impl Transfer {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Self { store }
    }
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

impl StateTransfer for Transfer {
    fn export(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotExport>> {
        Ok(Box::new(LazySnapshot::new(
            at.index.get(),
            self.store.values(partition),
        )))
    }

    fn import(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotImport>> {
        Ok(Box::new(Receiving {
            store: Arc::clone(&self.store),
            partition,
            index: at.index.get(),
            bytes: BytesMut::new(),
        }))
    }

    fn export_range(&self, plan: &RangeTransfer) -> io::Result<Option<Box<dyn SnapshotExport>>> {
        let records = self
            .store
            .records(plan.source, |key| plan.holds(Raft::key_hash(key)));
        Ok(Some(Box::new(RangeExport::new(records))))
    }

    fn import_range_begin(
        &self,
        target: PartitionId,
        at: LogIndex,
        plan: &RangeTransfer,
    ) -> io::Result<()> {
        self.store.apply_at(target, at, |values| {
            values.retain(|key, _| !plan.holds(Raft::key_hash(key)));
        });
        Ok(())
    }

    fn import_range_chunk(
        &self,
        target: PartitionId,
        at: LogIndex,
        _plan: &RangeTransfer,
        data: &[u8],
    ) -> io::Result<()> {
        let records = snapshot::decode_records(Bytes::copy_from_slice(data)).map_err(invalid)?;
        self.store
            .apply_at(target, at, |values| values.extend(records));
        Ok(())
    }

    fn import_range_end(
        &self,
        target: PartitionId,
        at: LogIndex,
        _plan: &RangeTransfer,
    ) -> io::Result<()> {
        self.store.apply_at(target, at, |_| {});
        Ok(())
    }
}

/// A snapshot being received: its bytes, bounded by `kv.snapshot_bytes_max`.
struct Receiving {
    store: Arc<Store>,
    partition: PartitionId,
    index: u64,
    bytes: BytesMut,
}

impl SnapshotImport for Receiving {
    fn write_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        let max = self.store.files().bytes_max();
        if (self.bytes.len() + data.len()) as u64 > max {
            return Err(invalid(format!(
                "a snapshot over kv.snapshot_bytes_max ({max} bytes)"
            )));
        }
        self.bytes.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        let bytes = self.bytes.freeze();
        let (index, values) = snapshot::decode(bytes.clone()).map_err(invalid)?;
        if index != self.index {
            return Err(invalid(format!(
                "a snapshot of index {index} received as index {}",
                self.index
            )));
        }
        // Durable first: a crash after this leaves the file at the index the library's
        // boundary record will name.
        self.store.files().write(self.partition, index, &bytes)?;
        self.store.replace(self.partition, index, values);
        Ok(())
    }
}
