//! The seed sweep: ≥ 500 seeds × 200 s simulated with faults on, then healing and the liveness
//! bound; 0 violations; every seed non-vacuous. `KOMMANDER_SIM_SEEDS=50000` runs the long
//! campaign with the same test.

use kommander_raft::sim::{SimConfig, Simulation};

use super::{env_u64, run_seeds};

/// Acknowledged proposals every seed must reach (else the run proved nothing).
const ACKNOWLEDGED_MIN: u64 = 200;
/// Injected faults every seed must reach.
const FAULTS_MIN: u64 = 5;

#[test]
fn seeds_hold_every_invariant_under_faults() {
    let count = env_u64("KOMMANDER_SIM_SEEDS", 500);
    let start = env_u64("KOMMANDER_SIM_SEED_START", 0);
    let workers = env_u64("KOMMANDER_SIM_WORKERS", 2);
    let results = run_seeds(start..start + count, workers, false, |seed| {
        Simulation::new(seed, SimConfig::for_seed(seed)).run()
    });
    let mut failures = Vec::new();
    let (mut acknowledged, mut faults, mut events, mut settle_max) = (0, 0, 0, 0);
    let (mut compactions, mut snapshots) = (0, 0);
    let (mut acknowledged_min, mut faults_min) = (u64::MAX, u64::MAX);
    for (seed, result) in &results {
        match result {
            Ok(report) => {
                if report.acknowledged < ACKNOWLEDGED_MIN || report.faults < FAULTS_MIN {
                    failures.push(format!(
                        "seed {seed} was vacuous: {} acknowledged, {} faults (replay: {})",
                        report.acknowledged,
                        report.faults,
                        kommander_raft::sim::replay_command(*seed, None)
                    ));
                }
                acknowledged += report.acknowledged;
                acknowledged_min = acknowledged_min.min(report.acknowledged);
                faults_min = faults_min.min(report.faults);
                faults += report.faults;
                events += report.events;
                compactions += report.compactions;
                snapshots += report.snapshots;
                settle_max = settle_max.max(report.settle_ms);
            }
            Err(failure) => failures.push(failure.to_string()),
        }
    }
    println!(
        "sim sweep: {} seeds from {start}, {acknowledged} acknowledged proposals (fewest in a \
         seed: {acknowledged_min}), {faults} faults (fewest: {faults_min}), {events} events, \
         {compactions} compactions, {snapshots} snapshots installed, slowest convergence \
         {settle_max} ms after healing",
        results.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}
