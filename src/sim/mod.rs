//! Deterministic cluster simulator for the sans-IO core (behind the `sim` feature).
//!
//! One thread, one seed, a simulated clock: N nodes × M partitions of the core's replicas talk
//! over a network that drops, delays, duplicates, reorders and partitions messages; nodes crash
//! and lose everything not yet durable, then restart from their durable state; clients propose.
//! After every step, every invariant checker of [`checkers`] looks at what happened. A failure
//! names its seed and the command that replays it; the same seed always produces the same
//! trace (see [`trace::TraceHash`]).
//!
//! Layout: [`Simulation`] (nodes, disks, clients, nemesis; `cluster/`) configured by
//! [`SimConfig`]; [`rng`] (seeded generator), [`event_queue`] (the agenda), [`network`] (link
//! faults), [`observation`] (what checkers see), [`checkers`] (one file per property).
//! [`MemoryCluster`] is the fault-free, zero-latency counterpart used by the core benchmark.
//!
//! The simulator only uses the core's public API: what it checks is what a runtime sees.

pub mod checkers;
mod cluster;
mod config;
pub mod event_queue;
pub mod linearizability;
mod memory_cluster;
pub mod network;
pub mod node;
pub mod observation;
pub mod rng;
pub mod trace;

#[cfg(feature = "sim-bugs")]
pub use cluster::InjectedBug;
pub use cluster::{SimFailure, SimReport, Simulation, replay_command};
pub use config::SimConfig;
pub use memory_cluster::{MemoryCluster, MemoryClusterError};
