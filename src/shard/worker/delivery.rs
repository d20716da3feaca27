//! Delivery to the application: committed entries reach the [`StateMachine`] on the shard
//! thread, in log order, exactly once per entry and node incarnation — live ones through
//! `on_replication_received` as their Ready arrives, restored ones through `on_log_restored`
//! (in restore's chunks). A negative verdict (with the entry refused) or an entry that does
//! not decode is reported as a `ReplicationError` event; the cursor advances anyway.

use super::partition::Slot;
use crate::core::{Entry, PartitionId, Ready};
use crate::shard::{EventSink, LogEntry, RaftEvent, ReplicationErrorReason, StateMachine};

/// Hands one committed entry to the application (live or restored) and reports a negative
/// verdict or an undecodable entry as a replication error.
pub(super) fn deliver_one(
    app: &dyn StateMachine,
    events: &dyn EventSink,
    partition: PartitionId,
    entry: &Entry,
    restored: bool,
) {
    let (refused, reason) = match LogEntry::decode(entry) {
        Ok(log_entry) => {
            let accepted = if restored {
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

/// Hands `ready`'s committed entries to the application (they are durable locally: the
/// contract of `Ready`), moves the replica's applied index to them and answers the reads that
/// waited for it.
pub(super) fn deliver_live(
    app: &dyn StateMachine,
    events: &dyn EventSink,
    partition: PartitionId,
    slot: &mut Slot,
    ready: &Ready,
) {
    for entry in &ready.committed_entries {
        deliver_one(app, events, partition, entry, false);
    }
    let Some(replica) = slot.replica.as_mut() else {
        return;
    };
    if ready.committed_through > replica.applied_index() {
        replica.applied(ready.committed_through);
    }
    let applied = replica.applied_index();
    let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut slot.reads_waiting_apply)
        .into_iter()
        .partition(|(index, _)| *index <= applied);
    slot.reads_waiting_apply = waiting;
    for (index, reply) in done {
        let _ = reply.send(Ok(index));
    }
}
