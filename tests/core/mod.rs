//! Scripted scenarios for the sans-IO core, driven by a tiny in-test cluster (`harness`).

mod harness;

#[cfg(feature = "sim-bugs")]
mod bugs;
mod chaos;
mod checkpoint;
mod election;
mod garbage;
mod heartbeats;
mod idle_ticks;
mod jepsen;
mod learners;
mod membership;
mod quiescence;
mod read_index;
mod replication;
mod transfer;
mod two_phase;
