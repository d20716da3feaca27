//! Determinism self-check: the same seed twice gives the same trace hash, so every failure
//! replays exactly.

use kommander_raft::sim::{SimConfig, Simulation};

use super::run_seeds;

#[test]
fn same_seed_gives_the_same_trace() {
    let results = run_seeds(0..8, 2, false, |seed| {
        let first = Simulation::new(seed, SimConfig::for_seed(seed)).run()?;
        let second = Simulation::new(seed, SimConfig::for_seed(seed)).run()?;
        Ok::<_, kommander_raft::sim::SimFailure>((first, second))
    });
    let mut hashes = Vec::new();
    for (seed, result) in results {
        let (first, second) = result.unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(first, second, "seed {seed} is not deterministic");
        assert!(
            first.events > 10_000,
            "seed {seed} ran too little: {first:?}"
        );
        hashes.push(first.trace_hash);
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(
        hashes.len(),
        8,
        "different seeds must give different traces"
    );
}
