//! The two sides of the network as the shards see it: [`Transport`] carries a shard's outgoing
//! message batches (one batch per peer per loop turn), [`Inbound`] is what a transport calls
//! with the batches it received (the shard host's router, which hands each message to the
//! shard owning its partition). The implementations (in-memory, fault-injecting, TCP) live in
//! the transport layer (`src/transport/`).
//!
//! Both directions are non-blocking and bounded: a transport that cannot take a batch drops it
//! and counts the drop (Raft tolerates loss: the leader retries from its progress state), and
//! the inbound side drops (and counts) batches for a shard whose inbound queue is full.

use crate::core::{Message, NodeId};

/// Sends message batches to peers.
pub trait Transport: Send + Sync + 'static {
    /// Queues `messages` (all addressed to `to`) for delivery. Never blocks; a batch that
    /// cannot be queued (full per-peer queue, unknown peer) is dropped and counted.
    fn send(&self, to: NodeId, messages: Vec<Message>);
}

/// The receiving side of a node: what a transport calls with the batches it received.
pub trait Inbound: Send + Sync + 'static {
    /// Hands received messages to the node. Never blocks; messages that cannot be queued are
    /// dropped and counted.
    fn deliver(&self, messages: Vec<Message>);
}
