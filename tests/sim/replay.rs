//! Replays one seed, printing its report: `KOMMANDER_SIM_SEED=1234 cargo test --profile ci
//! sim::replay -- --nocapture` (add `KOMMANDER_SIM_BUG=DoubleVote` to replay a sensitivity
//! run). Without the variable it replays seed 0, so the command itself stays tested.

use kommander_raft::sim::{SimConfig, Simulation};

use super::env_u64;

#[test]
fn replay() {
    let seed = env_u64("KOMMANDER_SIM_SEED", 0);
    let config = SimConfig::for_seed(seed);
    println!(
        "replaying seed {seed}: {} nodes × {} partitions",
        config.nodes, config.partitions
    );
    let simulation = match std::env::var("KOMMANDER_SIM_BUG") {
        Ok(name) => {
            let bug = super::sensitivity::bug_named(&name)
                .unwrap_or_else(|| panic!("unknown KOMMANDER_SIM_BUG {name}"));
            Simulation::with_bug(seed, config, bug)
        }
        Err(_) => Simulation::new(seed, config),
    };
    match simulation.run() {
        Ok(report) => println!("{report:#?}"),
        Err(failure) => panic!("{failure}"),
    }
}
