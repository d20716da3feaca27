//! Transports carry [`Message`] batches between nodes. A shard hands each peer ONE batch per
//! loop turn ([`Transport::send`]); the receiving node feeds batches to
//! [`Runtime::deliver`](crate::node::runtime::Runtime::deliver) (through the [`Inbound`]
//! trait), which routes them to the shard owning each partition.
//!
//! Both directions are non-blocking and bounded: a transport that cannot take a batch drops it
//! and counts the drop (Raft tolerates loss: the leader retries from its progress state), and
//! the inbound side drops (and counts) batches for a shard whose inbound queue is full.
//!
//! * [`memory`]: in-process nodes, delivery by a direct call into the peer's inbound queues.
//! * [`faulty`]: a seeded fault-injecting wrapper (drop, delay, duplicate, reorder, symmetric
//!   and one-way partitions) around any transport, for tests.
//!
//! * [`tcp`]: framed, authenticated TCP connections between nodes (the production transport).

pub mod faulty;
pub mod memory;
pub mod tcp;

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
