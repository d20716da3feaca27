//! Shard-host tests: in-process clusters of `ShardHost`s (shard threads, real WALs in temp
//! directories, io_uring where permitted) connected by the in-memory transport, optionally
//! through the fault injector; and stepped hosts (`stepped.rs`: no threads, virtual time,
//! simulated disks).

mod cluster;
mod config;
mod faults;
pub(crate) mod harness;
mod install_crash;
mod late_ticks;
mod membership;
#[cfg(feature = "sim-bugs")]
mod node_bugs;
mod quiescence;
mod restart;
mod shard_failure;
mod snapshot_room;
mod statuses;
pub(crate) mod stepped;
