//! Delivery to the application: committed entries reach the [`StateMachine`] on the shard
//! thread, in log order, exactly once per entry and node incarnation — live ones through
//! `on_replication_received` as their Ready arrives, restored ones through `on_log_restored`
//! (in restore's chunks). A negative verdict (with the entry refused) or an entry that does
//! not decode is reported as a `ReplicationError` event; the cursor advances anyway.
//!
//! Partition 0's system entries (each a partition map) are applied here, never handed to the
//! application: a valid map small enough for partition 0's floor meta is published in the
//! [`MapTable`] (if its version is above the one known); any other is refused, as a negative
//! verdict. A user partition's split entries (`partitions/marks.rs`) are never handed to
//! `on_replication_received` either: a generation entry is only recorded as applied, an import
//! entry goes to the application's range import (`import.rs`).

use std::sync::Arc;

use super::import::hand_import;
use super::partition::Slot;
use crate::core::{Entry, PartitionId, Ready};
use crate::shard::config::ShardConfig;
use crate::shard::partitions::marks::{SplitEntry, split_entry};
use crate::shard::partitions::{MapTable, map_entry, map_for_floor};
use crate::shard::{
    EventSink, LogEntry, RaftEvent, ReplicationErrorReason, StateMachine, StateTransfer,
};

/// Where committed entries go.
pub(super) struct Recipients<'a> {
    pub(super) app: &'a dyn StateMachine,
    pub(super) events: &'a dyn EventSink,
    /// Partition 0's maps, and how far the split entries were applied.
    pub(super) maps: &'a MapTable,
    /// The application's range import, if it registered a transfer.
    pub(super) transfer: Option<&'a dyn StateTransfer>,
    /// The WAL's `floor_meta_bytes_max`: the largest map partition 0 can keep.
    pub(super) floor_meta_bytes_max: usize,
}

impl<'a> Recipients<'a> {
    /// The recipients of a worker's deliveries (its fields, borrowed apart from its
    /// partitions).
    pub(super) fn of(
        app: &'a Arc<dyn StateMachine>,
        events: &'a Arc<dyn EventSink>,
        maps: &'a MapTable,
        transfer: Option<&'a Arc<dyn StateTransfer>>,
        config: &ShardConfig,
    ) -> Self {
        Self {
            app: &**app,
            events: &**events,
            maps,
            transfer: transfer.map(|t| &**t),
            floor_meta_bytes_max: config.wal.floor_meta_bytes_max,
        }
    }
}

/// Hands one committed entry to the application (live or restored), or applies partition 0's
/// map, and reports a negative verdict or an undecodable entry as a replication error.
pub(super) fn deliver_one(
    to: &Recipients<'_>,
    partition: PartitionId,
    entry: &Entry,
    restored: bool,
) {
    let Recipients { app, events, .. } = *to;
    let (refused, reason) = match LogEntry::decode(entry) {
        Ok(log_entry) => {
            let accepted = if let Some(split) = split_entry(entry) {
                apply_split(to, partition, entry, split)
            } else if let Some(map) = map_entry(partition, entry) {
                match map_for_floor(&map, to.floor_meta_bytes_max) {
                    Ok(map) => {
                        to.maps.publish(map);
                        true
                    }
                    Err(error) => {
                        tracing::error!(index = entry.index.get(), %error, "a committed partition map is refused");
                        false
                    }
                }
            } else if restored {
                app.on_log_restored(partition, &log_entry)
            } else {
                app.on_replication_received(partition, &log_entry)
            };
            if accepted {
                return;
            }
            (Some(log_entry), ReplicationErrorReason::Rejected)
        }
        Err(error) => (None, ReplicationErrorReason::Malformed(error)),
    };
    events.emit(RaftEvent::ReplicationError {
        partition,
        index: entry.index,
        entry: refused,
        reason,
    });
}

/// Applies a split entry (see the module docs): records it as applied and hands an import
/// entry to the application's range import. Answers whether it was applied.
fn apply_split(
    to: &Recipients<'_>,
    partition: PartitionId,
    entry: &Entry,
    split: Result<SplitEntry, crate::shard::partitions::marks::MarkError>,
) -> bool {
    let progress = to.maps.progress();
    let split = match split {
        Ok(split) => split,
        Err(error) => {
            tracing::error!(%partition, index = entry.index.get(), %error, "a committed split entry does not decode");
            return false;
        }
    };
    progress.note_applied(partition, &split);
    let SplitEntry::Import(import) = split else {
        return true;
    };
    if let Err(error) = hand_import(to.transfer, partition, entry.index, &import) {
        // The import is broken: its end must not let phase 2 run on this node (the range's
        // data would be lost); a new begin starts it again.
        progress.import_failed(partition);
        tracing::error!(%partition, index = entry.index.get(), %error, "the application's range import failed");
        return false;
    }
    true
}

/// Hands `ready`'s committed entries to the application (they are durable locally: the
/// contract of `Ready`), moves the replica's applied index to them and answers the reads that
/// waited for it.
pub(super) fn deliver_live(
    to: &Recipients<'_>,
    partition: PartitionId,
    slot: &mut Slot,
    ready: &Ready,
) {
    for entry in &ready.committed_entries {
        deliver_one(to, partition, entry, false);
    }
    let Some(replica) = slot.replica.as_mut() else {
        return;
    };
    if ready.committed_through > replica.applied_index() {
        replica.applied(ready.committed_through);
    }
    if slot.reads_waiting_apply.is_empty() {
        return;
    }
    let applied = replica.applied_index();
    let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut slot.reads_waiting_apply)
        .into_iter()
        .partition(|(index, _)| *index <= applied);
    slot.reads_waiting_apply = waiting;
    if done.is_empty() {
        return;
    }
    let map = to.maps.map();
    for (index, read) in done {
        slot.answer_read(partition, &map, index, read);
    }
}
