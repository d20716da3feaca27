//! Seeds that found bugs in the shipping code replay clean (each was a failure before its fix):
//! 49 (a stale WAL frame beyond the recovered end joined the log and took an acknowledged entry
//! away), 846 and 1460 (a restore read an entry the WAL was relocating and failed the
//! partition).

use kommander_raft::sim::node::{NodeSimConfig, NodeSimulation};

#[test]
fn seeds_that_found_bugs_replay_clean() {
    for seed in [49, 846, 1460] {
        if let Err(failure) = NodeSimulation::new(seed, NodeSimConfig::for_seed(seed)).run() {
            panic!("{failure}");
        }
    }
}
