//! The whole-node simulator (`kommander_raft::sim::node`): the seed sweep, replay of one seed,
//! determinism, and sensitivity (every injected bug caught by the checker meant for it).
//!
//! Environment:
//! - `KOMMANDER_NODE_SIM_SEEDS` — seeds in the sweep (default 200; the campaign uses 20 000);
//! - `KOMMANDER_NODE_SIM_SEED_START` — first seed of the sweep (default 0);
//! - `KOMMANDER_SIM_WORKERS` — threads running seeds (default 2);
//! - `KOMMANDER_NODE_SIM_SEED` (+ `KOMMANDER_NODE_SIM_BUG`) — the seed `node_sim::replay` runs;
//! - `KOMMANDER_NODE_SIM_REPLACE` — the sweep that moves nodes replaces nodes' disks in every
//!   seed, not only the odd ones (`node_sim::sweep::nodes_joining_and_leaving`);
//!   `node_sim::replay` replays such a seed;
//! - `KOMMANDER_NODE_SIM_ELASTIC` — `node_sim::replay` replays a seed of the elastic sweep
//!   (`node_sim::sweep::partitions_split_and_merged_under_faults`).

mod determinism;
mod found;
mod replay;
#[cfg(feature = "sim-bugs")]
mod sensitivity;
mod sweep;
