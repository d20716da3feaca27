//! Transports carry [`Message`](codec::Message) batches between nodes: implementations of the
//! shard layer's [`Transport`] and callers of its [`Inbound`] (both defined in
//! `src/shard/transport.rs`, next to the shards that use them). A shard hands each peer ONE
//! batch per loop turn ([`Transport::send`]); the receiving transport hands each batch to the
//! node's [`Inbound`] side (`Raft::inbound`), which routes it to the shard owning each
//! partition. Beside the batches, a transport may carry membership calls: a roster change
//! asked of the node at an endpoint ([`Transport::call`]), handed to that node's
//! [`Inbound::call`] and answered once.
//!
//! * [`memory`]: in-process nodes, delivery by a direct call into the peer's inbound queues.
//! * [`tcp`]: framed, authenticated TCP connections between nodes (the production transport;
//!   membership calls on the peer port), and the client protocol of the `kommander` binary's
//!   client port.
//! * `stamp`: the hybrid logical clock's stamp on every frame between nodes (the sender's
//!   clock), merged into the receiver's clock ([`Inbound::clock`]).
//! * [`codec`]: the wire format of message batches, membership calls and frames, for custom
//!   transports.
//! * `faulty` (with the `sim` feature, for tests): a seeded fault-injecting wrapper (drop,
//!   delay, duplicate, reorder, symmetric and one-way partitions) around any transport; calls
//!   pass through, and are lost with the drop probability.

pub mod codec;
#[cfg(feature = "sim")]
pub mod faulty;
pub mod memory;
pub(crate) mod stamp;
pub mod tcp;

pub use crate::shard::membership::{CallAnswer, CallError, CallReply, CallWait, MembershipCall};
pub use crate::shard::transport::PeerSetError;
pub use crate::shard::{Inbound, Transport};
