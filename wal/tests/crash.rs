//! Crash-point enumeration on the simulated disk: run a workload once, recording every I/O
//! step; then, for EVERY step, build the directory a power cut there could leave (unsynced
//! writes lost, kept, or torn sector by sector), recover it, and check that nothing
//! acknowledged is lost and nothing is invented.
//!
//! Rerun one seed with `WAL_CRASH_SEED=<seed> cargo test --profile ci --test main crash::`;
//! `WAL_CRASH_SEEDS=<n>` runs n seeds (the default run does 2).

use std::path::Path;

use kommander_wal::backend::BackendChoice;
use kommander_wal::backend::sim::{CrashMode, SimDisk, Step};
use kommander_wal::{Lsn, Wal, WalConfig};

use crate::common::{Model, Op, Rng, assert_matches, small_config, workload};

fn config(disk: &SimDisk) -> WalConfig {
    WalConfig {
        batch_bytes_max: 8 << 10,
        record_bytes_max: 4 << 10,
        // Inline preparation: the same seed records the same trace.
        prepare_segments_in_background: false,
        ..small_config(BackendChoice::Simulated(disk.clone()))
    }
}

struct Recorded {
    ops: Vec<Op>,
    /// LSN after each op's record.
    op_end: Vec<u64>,
    /// (step count when observed, durable LSN observed).
    acks: Vec<(usize, u64)>,
    total_steps: usize,
    trace: Vec<Step>,
}

fn record(dir: &Path, disk: &SimDisk, seed: u64) -> Recorded {
    let ops = workload(seed, 400, 4, 400);
    let mut rng = Rng(seed ^ 0x5eed);
    let mut wal = Wal::open(dir, config(disk)).expect("open");
    let mut op_end = Vec::with_capacity(ops.len());
    let mut acks = Vec::new();
    for op in &ops {
        let end = wal.append(&[op.as_write()]).expect("append");
        op_end.push(end.0);
        if rng.below(3) == 0 {
            wal.submit().expect("submit");
        }
        match rng.below(6) {
            0 => {
                let durable = wal.poll_durable().expect("poll");
                acks.push((disk.step_count(), durable.0));
            }
            1 => {
                let durable = wal.wait_durable(end).expect("wait");
                acks.push((disk.step_count(), durable.0));
            }
            _ => {}
        }
    }
    let durable = wal.sync().expect("sync");
    acks.push((disk.step_count(), durable.0));
    drop(wal);
    Recorded {
        ops,
        op_end,
        acks,
        total_steps: disk.step_count(),
        trace: disk.trace(),
    }
}

fn model_of(ops: &[Op]) -> Model {
    let mut model = Model::default();
    for op in ops {
        model.apply(op);
    }
    model
}

fn enumerate(seed: u64) {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let run = record(&dir, &disk, seed);
    // The workload exercised what it must: many steps, acknowledgements, rotations and
    // recycling of reclaimed segments.
    assert!(
        run.total_steps > 200,
        "seed {seed}: only {} steps",
        run.total_steps
    );
    assert!(
        run.acks.len() > 50,
        "seed {seed}: only {} acks",
        run.acks.len()
    );
    let recycled = run.trace.iter().any(
        |s| matches!(s, Step::Rename { from, to } if from.ends_with(".wal") && to.ends_with(".tmp")),
    );
    assert!(recycled, "seed {seed}: no segment was recycled");

    let mut torn_recoveries = 0usize;
    let mut distinct_ends = std::collections::BTreeSet::new();
    for step in 0..=run.total_steps {
        let acked = run
            .acks
            .iter()
            .filter(|(at, _)| *at <= step)
            .map(|(_, lsn)| *lsn)
            .max()
            .unwrap_or(0);
        let acked_ops = run.op_end.partition_point(|&end| end <= acked);
        for (m, mode) in [
            CrashMode::LoseUnsynced,
            CrashMode::KeepUnsynced,
            CrashMode::Torn(seed.wrapping_mul(1_000_003).wrapping_add(step as u64)),
        ]
        .into_iter()
        .enumerate()
        {
            let context = format!("seed {seed}, crash after step {step}, {mode:?}");
            let image = base.path().join(format!("image-{step}-{m}"));
            disk.crash_image(step, mode, &image).expect("crash image");
            let image_disk = SimDisk::new(&image).expect("image disk");
            let mut wal = match Wal::open(&image, config(&image_disk)) {
                Ok(wal) => wal,
                Err(e) => panic!("{context}: recovery failed: {e}"),
            };
            let end = wal.next_lsn().0;
            distinct_ends.insert(end);
            let recovered_ops = run.op_end.partition_point(|&e| e <= end);
            assert!(
                recovered_ops >= acked_ops,
                "{context}: lost acknowledged records: recovered {recovered_ops} ops \
                 (LSN {end}), acknowledged {acked_ops} (LSN {acked})"
            );
            let model = model_of(&run.ops[..recovered_ops]);
            assert_matches(&wal, &model, &context);
            if matches!(mode, CrashMode::Torn(_)) {
                torn_recoveries += 1;
                // Continue on the recovered log with new records, crash-free, and reopen: a
                // dropped tail must never come back.
                let mut model = model_of(&run.ops[..recovered_ops]);
                let base_index = model.partitions.get(&99).map_or(1, |p| p.next_index());
                for i in 0..12u64 {
                    let op = Op::Entry(99, base_index + i, 1_000, vec![0xA5; 300 + i as usize]);
                    wal.append(&[op.as_write()]).expect("append after recovery");
                    model.apply(&op);
                    if i % 4 == 3 {
                        wal.submit().expect("submit");
                    }
                }
                assert_eq!(
                    wal.sync().expect("sync after recovery"),
                    Lsn(wal.next_lsn().0)
                );
                drop(wal);
                let reopen_disk = SimDisk::new(&image).expect("disk");
                let wal = Wal::open(&image, config(&reopen_disk))
                    .unwrap_or_else(|e| panic!("{context}: reopen after continuing: {e}"));
                assert_matches(&wal, &model, &format!("{context}, continued"));
            }
            std::fs::remove_dir_all(&image).expect("cleanup");
        }
    }
    assert!(torn_recoveries > 200);
    assert!(
        distinct_ends.len() > 50,
        "seed {seed}: crash points reached few states"
    );
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("WAL_CRASH_SEED") {
        return vec![seed.parse().expect("WAL_CRASH_SEED is a number")];
    }
    let count = std::env::var("WAL_CRASH_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2u64);
    (1..=count).collect()
}

#[test]
fn every_crash_point_keeps_acknowledged_records_and_invents_none() {
    for seed in seeds() {
        enumerate(seed);
    }
}
