//! Replays one seed with its trace: `KOMMANDER_NODE_SIM_SEED=1234 cargo test --profile ci
//! node_sim::replay -- --nocapture` (add `KOMMANDER_NODE_SIM_BUG=<name>` to replay a
//! sensitivity run, `KOMMANDER_NODE_SIM_MOVING=1` a seed of the campaign that moves nodes,
//! `KOMMANDER_NODE_SIM_REPLACE=1` one that also replaces nodes' disks,
//! `KOMMANDER_NODE_SIM_ELASTIC=1` one of the elastic sweep: partitions created, removed, split
//! and merged, keys routed through the map).
//! Without the variable it replays seed 0, so the command stays tested.

use kommander_raft::sim::node::{NodeSimConfig, NodeSimulation};

use crate::sim::env_u64;

#[test]
fn replay() {
    let seed = env_u64("KOMMANDER_NODE_SIM_SEED", 0);
    let config = if std::env::var("KOMMANDER_NODE_SIM_ELASTIC").is_ok() {
        NodeSimConfig::elastic_for_seed(seed)
    } else if std::env::var("KOMMANDER_NODE_SIM_REPLACE").is_ok() {
        NodeSimConfig::replacing_nodes_for_seed(seed)
    } else if std::env::var("KOMMANDER_NODE_SIM_MOVING").is_ok() {
        NodeSimConfig::moving_nodes_for_seed(seed)
    } else {
        NodeSimConfig::for_seed(seed)
    };
    println!(
        "replaying node seed {seed}: {} nodes × {} shards × {} partitions; snapshots in {} B \
         chunks, {} in flight, capped at {} B/s (0: no cap), {} sent and {} received at once",
        config.nodes,
        config.shards,
        config.partitions,
        config.snapshot_chunk_bytes,
        config.snapshot_chunks_in_flight_max,
        config.snapshot_bytes_per_sec_max,
        config.snapshot_transfers_max,
        config.snapshot_sessions_max
    );
    let simulation =
        NodeSimulation::new(seed, config).tracing(std::env::var("KOMMANDER_NODE_SIM_SEED").is_ok());
    #[cfg(feature = "sim-bugs")]
    let simulation = match std::env::var("KOMMANDER_NODE_SIM_BUG") {
        Ok(name) => super::sensitivity::with_bug_named(simulation, &name),
        Err(_) => simulation,
    };
    match simulation.run() {
        Ok(report) => println!("{report:#?}"),
        Err(failure) => panic!("{failure}"),
    }
}
