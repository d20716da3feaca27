//! The seed sweep: every seed 60 s simulated with faults on, then healing and the liveness
//! bound; 0 violations; every seed non-vacuous (floors asserted per seed).
//! `KOMMANDER_NODE_SIM_SEEDS=20000` runs the campaign with the same test.

use kommander_raft::sim::SimFailure;
use kommander_raft::sim::node::{
    NodeSimConfig, NodeSimReport, NodeSimulation, RUN_ACKNOWLEDGED_MIN, RUN_READS_MIN,
    node_replay_command,
};

use crate::sim::{env_u64, run_seeds};

/// The seeds that failed (a line each) and the reports of those that passed.
fn failures_and_reports(
    results: &[(u64, Result<NodeSimReport, SimFailure>)],
) -> (Vec<String>, Vec<&NodeSimReport>) {
    let failures = results
        .iter()
        .filter_map(|(seed, result)| {
            let failure = result.as_ref().err()?;
            Some(format!("seed {seed}: {failure}"))
        })
        .collect();
    let reports = results
        .iter()
        .filter_map(|(_, result)| result.as_ref().ok())
        .collect();
    (failures, reports)
}

/// What every seed must reach, else it proved nothing.
pub(super) fn vacuous(report: &NodeSimReport) -> Option<String> {
    let crashes = report.faults.crashes
        + report.faults.power_losses_minority
        + report.faults.power_losses_all;
    let floors = [
        (
            "acknowledged writes",
            report.acknowledged,
            RUN_ACKNOWLEDGED_MIN,
        ),
        ("answered reads", report.reads, RUN_READS_MIN),
        ("crashes and power losses", crashes, 1),
        ("disk faults that fired", report.disk_faults_fired, 1),
        ("restarts", report.starts - report.shape.0 as u64, 1),
    ];
    let short: Vec<String> = floors
        .iter()
        .filter(|(_, value, floor)| value < floor)
        .map(|(what, value, floor)| format!("{what}: {value} < {floor}"))
        .collect();
    (!short.is_empty()).then(|| short.join(", "))
}

#[test]
fn node_seeds_hold_every_invariant_under_faults() {
    let count = env_u64("KOMMANDER_NODE_SIM_SEEDS", 200);
    let start = env_u64("KOMMANDER_NODE_SIM_SEED_START", 0);
    let workers = env_u64("KOMMANDER_SIM_WORKERS", 2);
    let started = std::time::Instant::now();
    let results = run_seeds(start..start + count, workers, false, |seed| {
        NodeSimulation::new(seed, NodeSimConfig::for_seed(seed)).run()
    });
    let mut failures = Vec::new();
    let mut total = NodeSimReport::default();
    let mut least = (u64::MAX, u64::MAX);
    for (seed, result) in &results {
        match result {
            Ok(report) => {
                if let Some(short) = vacuous(report) {
                    failures.push(format!(
                        "seed {seed} was vacuous ({short}); replay: {}",
                        node_replay_command(*seed, None)
                    ));
                }
                least = (least.0.min(report.acknowledged), least.1.min(report.reads));
                total.acknowledged += report.acknowledged;
                total.reads += report.reads;
                total.failed += report.failed;
                total.indeterminate += report.indeterminate;
                total.delivered += report.delivered;
                total.turns += report.turns;
                total.frames += report.frames;
                total.starts += report.starts;
                total.checkpoints += report.checkpoints;
                total.rolled_back += report.rolled_back;
                total.disk_faults_fired += report.disk_faults_fired;
                total.elections += report.elections;
                total.snapshot_exports += report.snapshot_exports;
                total.snapshot_imports += report.snapshot_imports;
                total.membership_changes += report.membership_changes;
                total.settle_ms = total.settle_ms.max(report.settle_ms);
                let (f, t) = (&report.faults, &mut total.faults);
                t.crashes += f.crashes;
                t.power_losses_minority += f.power_losses_minority;
                t.power_losses_all += f.power_losses_all;
                t.disk_faults += f.disk_faults;
                t.slow_disks += f.slow_disks;
                t.pauses += f.pauses;
                t.partitions += f.partitions;
                t.one_way_cuts += f.one_way_cuts;
                t.clock_jumps += f.clock_jumps;
                t.transfers += f.transfers;
                t.step_downs += f.step_downs;
                t.configuration_cuts += f.configuration_cuts;
            }
            Err(failure) => failures.push(failure.to_string()),
        }
    }
    println!(
        "node sim sweep: {} seeds from {start} in {:.1} s, 0 + {} violations; {} acknowledged \
         (fewest in a seed {}), {} reads (fewest {}), {} definite failures, {} indeterminate, \
         {} checkpoints, {} rollbacks, {} delivered, {} turns, {} frames, {} node starts, {} \
         elections, {} disk faults fired, {} snapshots exported, {} imported, {} configuration \
         changes, slowest settle {} ms; faults: {:?}",
        results.len(),
        started.elapsed().as_secs_f64(),
        failures.len(),
        total.acknowledged,
        least.0,
        total.reads,
        least.1,
        total.failed,
        total.indeterminate,
        total.checkpoints,
        total.rolled_back,
        total.delivered,
        total.turns,
        total.frames,
        total.starts,
        total.elections,
        total.disk_faults_fired,
        total.snapshot_exports,
        total.snapshot_imports,
        total.membership_changes,
        total.settle_ms,
        total.faults
    );
    // Followers fall below their leader's floor in a sweep of any size, and catch up by
    // snapshot: a sweep without imports did not exercise them.
    if results.len() >= 50 && total.snapshot_imports == 0 {
        failures.push("no snapshot was imported in the whole sweep".to_owned());
    }
    if results.len() >= 50 && total.membership_changes == 0 {
        failures.push("no configuration change was accepted in the whole sweep".to_owned());
    }
    if results.len() >= 50 && total.faults.configuration_cuts == 0 {
        failures
            .push("no cut was made around a configuration change in the whole sweep".to_owned());
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

/// Membership changes that move nodes (added, removed, leaving, half the seeds starting with
/// some nodes outside the cluster), and in every odd seed nodes' disks replaced too
/// (`NodeSimConfig::replacing_nodes_for_seed`): 100 seeds in the default run, the campaign
/// with `KOMMANDER_NODE_SIM_SEEDS=800 cargo test --profile ci --test main
/// node_sim::sweep::nodes_joining_and_leaving`; with `KOMMANDER_NODE_SIM_REPLACE=1` every seed
/// replaces disks. A sweep without a replaced node admitted again fails.
#[test]
fn nodes_joining_and_leaving_under_faults() {
    let count = env_u64("KOMMANDER_NODE_SIM_SEEDS", 100);
    let start = env_u64("KOMMANDER_NODE_SIM_SEED_START", 0);
    let workers = env_u64("KOMMANDER_SIM_WORKERS", 2);
    let replacing = std::env::var("KOMMANDER_NODE_SIM_REPLACE").is_ok();
    let results = run_seeds(start..start + count, workers, false, |seed| {
        let config = if replacing || seed % 2 == 1 {
            NodeSimConfig::replacing_nodes_for_seed(seed)
        } else {
            NodeSimConfig::moving_nodes_for_seed(seed)
        };
        NodeSimulation::new(seed, config).run()
    });
    let (mut failures, reports) = failures_and_reports(&results);
    let reports = || reports.iter().copied();
    let cuts: u64 = reports()
        .map(|report| report.faults.configuration_cuts)
        .sum();
    let replacements: u64 = reports().map(|report| report.replacements).sum();
    println!(
        "nodes joining and leaving: {} seeds from {start}, {} violations, {cuts} cuts around \
         configuration changes, {replacements} nodes admitted again on replaced disks",
        results.len(),
        failures.len()
    );
    if results.len() >= 50 && cuts == 0 {
        failures
            .push("no cut was made around a configuration change in the whole sweep".to_owned());
    }
    if results.len() >= 50 && replacements == 0 {
        failures.push("no node was admitted again on replaced disks in the whole sweep".to_owned());
    }
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed (or the sweep was vacuous):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The elastic operator (`NodeSimConfig::elastic_for_seed`): partitions created, removed,
/// split and merged under the faults, partition 0's leader crashed between a split's or
/// merge's phases now and then, the clients routing keys through the map they last learnt, so
/// a key's history spans splits and merges; `range_ownership` judges every committed write,
/// and the run settles only once every started split or merge finished and every node holds
/// exactly the map's partitions open. 20 seeds in the default run (the campaign:
/// `KOMMANDER_NODE_SIM_SEEDS=1000 cargo test --profile ci --test main
/// node_sim::sweep::partitions_split`); a sweep of 50 seeds or more in which no split and no
/// merge completed fails.
#[test]
fn partitions_split_and_merged_under_faults() {
    let count = env_u64("KOMMANDER_NODE_SIM_SEEDS", 20);
    let start = env_u64("KOMMANDER_NODE_SIM_SEED_START", 0);
    let workers = env_u64("KOMMANDER_SIM_WORKERS", 2);
    let results = run_seeds(start..start + count, workers, false, |seed| {
        NodeSimulation::new(seed, NodeSimConfig::elastic_for_seed(seed)).run()
    });
    let (mut failures, reports) = failures_and_reports(&results);
    let reports = || reports.iter().copied();
    let total = |count: fn(&NodeSimReport) -> u64| reports().map(count).sum::<u64>();
    let splits = total(|report| report.splits_completed);
    let merges = total(|report| report.merges_completed);
    println!(
        "partitions split and merged: {} seeds from {start}, {} violations; {} map changes \
         done, {} refused, {splits} splits and {merges} merges completed, {} crashes of \
         partition 0's leader between the phases, {} acknowledged, {} reads",
        results.len(),
        failures.len(),
        total(|report| report.map_changes),
        total(|report| report.map_changes_refused),
        total(|report| report.crashes_between_phases),
        total(|report| report.acknowledged),
        total(|report| report.reads),
    );
    if results.len() >= 50 && splits + merges == 0 {
        failures.push("no split and no merge completed in the whole sweep".to_owned());
    }
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed (or the sweep was vacuous):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
