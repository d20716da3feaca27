//! Transports carry [`Message`](codec::Message) batches between nodes: implementations of the
//! shard layer's [`Transport`] and callers of its [`Inbound`] (both defined in
//! `src/shard/transport.rs`, next to the shards that use them). A shard hands each peer ONE
//! batch per loop turn ([`Transport::send`]); the receiving transport hands each batch to the
//! node's [`Inbound`] side (`Raft::inbound`), which routes it to the shard owning each
//! partition.
//!
//! * [`memory`]: in-process nodes, delivery by a direct call into the peer's inbound queues.
//! * [`tcp`]: framed, authenticated TCP connections between nodes (the production transport),
//!   and the client protocol of the `kommander` binary's client port.
//! * [`codec`]: the wire format of message batches and frames, for custom transports.
//! * `faulty` (with the `sim` feature, for tests): a seeded fault-injecting wrapper (drop,
//!   delay, duplicate, reorder, symmetric and one-way partitions) around any transport.

pub mod codec;
#[cfg(feature = "sim")]
pub mod faulty;
pub mod memory;
pub mod tcp;

pub use crate::shard::membership::{CallAnswer, CallError, CallReply, CallWait, MembershipCall};
pub use crate::shard::transport::PeerSetError;
pub use crate::shard::{Inbound, Transport};
