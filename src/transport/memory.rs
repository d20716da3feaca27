//! The in-memory transport: several nodes in one process. Sending calls the destination's
//! [`Inbound`] directly, so the per-peer queue is the destination shard's bounded inbound
//! queue (a full one drops and counts, see `ShardHost::deliver`); a batch for a node that is
//! not registered (stopped, or not started yet) is dropped and counted here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::core::{Message, NodeId};
use crate::shard::{Inbound, Transport};

/// A set of in-process nodes that can reach each other.
#[derive(Default)]
pub struct MemoryNetwork {
    nodes: RwLock<HashMap<NodeId, Arc<dyn Inbound>>>,
    dropped_batches: AtomicU64,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork")
            .field("dropped_batches", &self.dropped_batches())
            .finish_non_exhaustive()
    }
}

impl MemoryNetwork {
    /// An empty network.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The transport node `from` sends with.
    #[must_use]
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport {
            from,
            network: Arc::clone(self),
        })
    }

    /// Makes `node` reachable: batches sent to it go to `inbound`. Replaces an earlier
    /// registration (a restarted node).
    pub fn register(&self, node: NodeId, inbound: Arc<dyn Inbound>) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.insert(node, inbound);
        }
    }

    /// Makes `node` unreachable (a stopped node); later batches to it are dropped.
    pub fn unregister(&self, node: NodeId) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.remove(&node);
        }
    }

    /// Batches dropped because their destination was not registered.
    #[must_use]
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches.load(Ordering::Relaxed)
    }

    fn deliver(&self, to: NodeId, messages: Vec<Message>) {
        let inbound = self
            .nodes
            .read()
            .ok()
            .and_then(|nodes| nodes.get(&to).cloned());
        match inbound {
            Some(inbound) => inbound.deliver(messages),
            None => {
                self.dropped_batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One node's view of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    from: NodeId,
    network: Arc<MemoryNetwork>,
}

impl MemoryTransport {
    /// The sending node.
    #[must_use]
    pub fn from(&self) -> NodeId {
        self.from
    }
}

impl Transport for MemoryTransport {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        if !messages.is_empty() {
            self.network.deliver(to, messages);
        }
    }
}
