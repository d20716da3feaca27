//! Cluster tests through the public `Raft` handle: in-process nodes (real WALs in temp
//! directories) on the in-memory transport, optionally through the fault injector, driven
//! from a small tokio runtime (the library itself needs none).

pub(crate) mod clock;
mod errors;
mod events;
mod fenced_read;
pub(crate) mod harness;
mod join;
mod leadership;
mod lifecycle;
mod membership;
mod parity;
mod partition_lifecycle;
mod partition_map;
mod read;
mod replication;
mod restart;
mod snapshot;
mod split_merge;
