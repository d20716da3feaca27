//! `kommander-raft`: a thread-per-core, multi-partition Raft library with its own io_uring
//! write-ahead log ([`kommander_wal`](https://docs.rs/kommander-wal)).
//!
//! See `docs/architecture.md` at the repository root for the map of the code.

pub mod core;
pub mod node;
pub mod shard;
pub mod transport;

#[cfg(feature = "sim")]
pub mod sim;
