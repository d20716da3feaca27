//! The node's [`EventSink`]: every [`RaftEvent`] (from the shards and from the node itself)
//! goes to a bounded `tokio::sync::broadcast` channel the application subscribes to
//! ([`Raft::subscribe`](crate::node::Raft::subscribe)). Leadership is not kept here: it is the
//! shards' [`LeaderTable`](crate::shard::LeaderTable).

use tokio::sync::broadcast;

use crate::node::system::SYSTEM_PARTITION;
use crate::shard::{EventSink, RaftEvent};

/// Forwards events to the broadcast channel; never blocks.
pub(crate) struct EventHub {
    sender: broadcast::Sender<RaftEvent>,
    /// Wakes the system coordinator when the system partition's leader changes.
    on_system_leader: Box<dyn Fn() + Send + Sync>,
}

impl EventHub {
    /// A hub keeping at most `capacity` events for a slow subscriber.
    pub(crate) fn new(capacity: usize, on_system_leader: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            on_system_leader,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RaftEvent> {
        self.sender.subscribe()
    }
}

impl EventSink for EventHub {
    fn emit(&self, event: RaftEvent) {
        if let RaftEvent::LeaderChanged { partition, .. } = &event
            && *partition == SYSTEM_PARTITION
        {
            (self.on_system_leader)();
        }
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }
}
