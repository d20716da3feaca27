//! Determinism: the same seed twice gives the same trace hash and report, so every failure
//! replays exactly; different seeds give different traces.

use kommander_raft::sim::SimFailure;
use kommander_raft::sim::node::{NodeSimConfig, NodeSimulation};

use crate::sim::run_seeds;

#[test]
fn same_node_seed_gives_the_same_trace() {
    let results = run_seeds(0..4, 2, false, |seed| {
        let first = NodeSimulation::new(seed, NodeSimConfig::for_seed(seed)).run()?;
        let second = NodeSimulation::new(seed, NodeSimConfig::for_seed(seed)).run()?;
        Ok::<_, SimFailure>((first, second))
    });
    let mut hashes = Vec::new();
    for (seed, result) in results {
        let (first, second) = result.unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(first, second, "node seed {seed} is not deterministic");
        assert!(
            first.events > 5_000,
            "node seed {seed} ran too little: {first:?}"
        );
        hashes.push(first.trace_hash);
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(
        hashes.len(),
        4,
        "different seeds must give different traces"
    );
}
