//! What the simulated disk gives a whole-node simulator: a slow disk, folding for long runs,
//! power loss and process crash, and the durable truth (`SimDisk::durable_logs`), which must
//! agree with `Wal::open` of the same image.

use std::collections::BTreeMap;
use std::path::Path;

use kommander_wal::backend::sim::{
    CrashMode, DurableEntry, DurableLog, DurableLogs, FaultPlan, SimDisk, StallCounts, Step,
};
use kommander_wal::backend::{BLOCK_SIZE, BackendChoice};
use kommander_wal::fuzzing::{FrameCheck, check_frame, decode_segment_header};
use kommander_wal::inspect::RecoveryVerdict;
use kommander_wal::{Error, Lsn, PartitionId, Wal, WalConfig, Write};

use crate::common::{Op, Rng, floor_meta_for, small_config, workload};

/// Inline preparation and seeded epochs: one workload records one trace, byte for byte.
fn config(disk: &SimDisk) -> WalConfig {
    WalConfig {
        batch_bytes_max: 8 << 10,
        record_bytes_max: 4 << 10,
        prepare_segments_in_background: false,
        deterministic_epoch_seed: Some(7),
        ..small_config(BackendChoice::Simulated(disk.clone()))
    }
}

fn p(id: u32) -> PartitionId {
    PartitionId(id)
}

/// What an open `Wal` holds, in the shape of `DurableLogs` (the log must be fully durable, as
/// it is right after `Wal::open`).
fn logs_of(wal: &Wal) -> DurableLogs {
    let mut logs = DurableLogs::default();
    for (id, info) in wal.partitions().expect("partitions") {
        let entries = (info.first_index..=info.last_index)
            .map(|index| DurableEntry {
                index,
                term: wal.term_at(id, index).expect("term"),
                payload: wal.entry(id, index).expect("entry"),
            })
            .collect();
        let floor_term = info
            .first_index
            .checked_sub(1)
            .and_then(|floor| wal.term_at(id, floor).ok());
        logs.partitions.insert(
            id,
            DurableLog {
                first_index: info.first_index,
                floor_term,
                floor_meta: wal.floor_meta(id).expect("floor meta"),
                term_vote: info.term_vote,
                commit_index: info.commit_index,
                entries,
            },
        );
    }
    logs
}

/// Asserts `found` is `expected`, naming the first difference (the values are too large to
/// print whole).
fn assert_same(found: &DurableLogs, expected: &DurableLogs, context: &str) {
    if found == expected {
        return;
    }
    let ids: Vec<_> = found.partitions.keys().collect();
    let expected_ids: Vec<_> = expected.partitions.keys().collect();
    assert_eq!(ids, expected_ids, "{context}: partitions differ");
    for (id, log) in &found.partitions {
        let other = &expected.partitions[id];
        let summary = |l: &DurableLog| {
            (
                l.first_index,
                l.last_index(),
                l.floor_term,
                l.floor_meta.clone(),
                l.term_vote,
                l.commit_index,
            )
        };
        assert_eq!(summary(log), summary(other), "{context}: {id} differs");
        for (entry, other) in log.entries.iter().zip(&other.entries) {
            assert!(
                entry == other,
                "{context}: {id} entry {} differs",
                entry.index
            );
        }
    }
    unreachable!("{context}: a difference was found");
}

/// Every file of a directory but the lock, by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|path| path.file_name().is_some_and(|n| n != "LOCK"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect()
}

/// The crash image of `disk` at `steps` under `mode`, as files.
fn image(disk: &SimDisk, steps: usize, mode: CrashMode) -> BTreeMap<String, Vec<u8>> {
    let target = tempfile::tempdir().expect("tempdir");
    disk.crash_image(steps, mode, target.path())
        .expect("crash image");
    files(target.path())
}

/// Recovers the durable image of `disk` (a power loss now) with `Wal::open`, elsewhere.
fn recovered_durable_image(disk: &SimDisk) -> DurableLogs {
    let target = tempfile::tempdir().expect("tempdir");
    let dir = target.path().join("wal");
    disk.crash_image(disk.step_count(), CrashMode::LoseUnsynced, &dir)
        .expect("crash image");
    let image_disk = SimDisk::new(&dir).expect("disk");
    logs_of(&Wal::open(&dir, config(&image_disk)).expect("recover the durable image"))
}

#[test]
fn a_stalled_disk_makes_nothing_durable_until_it_runs_again() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let mut wal = Wal::open(&dir, config(&disk)).expect("open");
    wal.append_entry(p(1), 1, 1, b"before").expect("append");
    let before = wal.sync().expect("sync");
    disk.set_stalled(true);
    assert!(disk.is_stalled());
    let end = wal.append_entry(p(1), 2, 1, b"stalled").expect("append");
    wal.submit().expect("submit");
    for _ in 0..5 {
        assert_eq!(wal.poll_durable().expect("poll"), before, "a stalled disk");
    }
    assert_eq!(
        disk.stall_counts(),
        StallCounts {
            reaps_deferred: 5,
            waits_through_stall: 0
        }
    );
    // Written (volatile), not synced: the durable truth and a power loss do not have it.
    let durable = disk.durable_logs().expect("durable logs");
    assert_eq!(durable.partitions[&p(1)].last_index(), 1);
    assert_eq!(*durable, recovered_durable_image(&disk));
    disk.set_stalled(false);
    assert_eq!(wal.poll_durable().expect("poll"), end, "runs again");
    assert_eq!(disk.stall_counts().reaps_deferred, 5);
    let durable = disk.durable_logs().expect("durable logs");
    assert_eq!(
        &durable.partitions[&p(1)].entries[1].payload[..],
        b"stalled"
    );
    assert_eq!(*durable, logs_of(&wal));
}

#[test]
fn a_blocking_wait_on_a_stalled_disk_waits_the_stall_out() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let mut wal = Wal::open(&dir, config(&disk)).expect("open");
    disk.set_stalled(true);
    let end = wal.append_entry(p(1), 1, 1, b"waited").expect("append");
    assert_eq!(wal.sync().expect("sync"), end);
    assert!(disk.is_stalled(), "the stall goes on");
    assert_eq!(disk.stall_counts().waits_through_stall, 1);
    assert_eq!(disk.durable_logs().expect("durable").partitions.len(), 1);
}

/// Runs `ops` on `wal`, submitting and polling as `rng` says; calls `each` after every op
/// with its position.
fn drive(wal: &mut Wal, ops: &[Op], rng: &mut Rng, mut each: impl FnMut(usize)) {
    for (i, op) in ops.iter().enumerate() {
        wal.append(&[op.as_write()]).expect("append");
        if rng.below(3) == 0 {
            wal.submit().expect("submit");
        }
        if rng.below(4) == 0 {
            wal.poll_durable().expect("poll");
        }
        each(i);
    }
}

#[test]
fn folding_keeps_every_later_crash_image_exact() {
    let base = tempfile::tempdir().expect("tempdir");
    // Two disks run the same workload in lock step; one folds now and then.
    let (dir_a, dir_b) = (base.path().join("a"), base.path().join("b"));
    let (whole, folding) = (
        SimDisk::new(&dir_a).expect("disk"),
        SimDisk::new(&dir_b).expect("disk"),
    );
    let mut wal_a = Wal::open(&dir_a, config(&whole)).expect("open");
    let mut wal_b = Wal::open(&dir_b, config(&folding)).expect("open");
    let ops = workload(3, 600, 4, 400);
    let mut rng = Rng(3);
    let mut compared = 0;
    for (i, op) in ops.iter().enumerate() {
        let submit = rng.below(3) == 0;
        let poll = rng.below(4) == 0;
        for wal in [&mut wal_a, &mut wal_b] {
            wal.append(&[op.as_write()]).expect("append");
            if submit {
                wal.submit().expect("submit");
            }
            if poll {
                wal.poll_durable().expect("poll");
            }
        }
        assert_eq!(whole.step_count(), folding.step_count(), "op {i}");
        if rng.below(25) == 0 {
            folding.fold_trace();
            assert_eq!(folding.folded_steps(), folding.step_count());
            assert!(folding.trace().is_empty());
        }
        if rng.below(10) == 0 {
            let now = folding.step_count();
            let from = folding.folded_steps();
            let step = from + rng.below((now - from) as u64 + 1) as usize;
            for mode in [
                CrashMode::LoseUnsynced,
                CrashMode::KeepUnsynced,
                CrashMode::Torn(rng.next()),
            ] {
                assert!(
                    image(&whole, step, mode) == image(&folding, step, mode),
                    "op {i}, crash at step {step} (folded {from}), {mode:?}: images differ"
                );
                compared += 1;
            }
            assert_same(
                &folding.durable_logs().expect("durable"),
                &whole.durable_logs().expect("durable"),
                &format!("op {i}"),
            );
        }
    }
    assert!(folding.folded_steps() > 0 && compared > 100, "{compared}");
    assert_eq!(whole.folded_steps(), 0);
    // The trace after the fold point is the whole trace's tail.
    let tail = folding.trace();
    assert_eq!(tail[..], whole.trace()[folding.folded_steps()..]);
    // Before the fold point there is no image any more.
    let refused = folding
        .crash_image(
            folding.folded_steps() - 1,
            CrashMode::LoseUnsynced,
            &base.path().join("refused"),
        )
        .expect_err("a folded step");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
}

/// Bytes of written data the trace holds.
fn trace_bytes(disk: &SimDisk) -> usize {
    disk.trace()
        .iter()
        .map(|step| match step {
            Step::Write { data, .. } => data.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn folding_bounds_the_trace_over_a_long_run() {
    let base = tempfile::tempdir().expect("tempdir");
    let ops = workload(11, 4_000, 8, 300);
    let run = |fold_every: Option<usize>| {
        let dir = base.path().join(format!("wal-{fold_every:?}"));
        let disk = SimDisk::new(&dir).expect("disk");
        let mut wal = Wal::open(&dir, config(&disk)).expect("open");
        let mut rng = Rng(11);
        let mut bytes_max = 0;
        drive(&mut wal, &ops, &mut rng, |i| {
            if fold_every.is_some_and(|n| i % n == n - 1) {
                disk.fold_trace();
            }
            bytes_max = bytes_max.max(trace_bytes(&disk));
        });
        let durable = wal.sync().expect("sync");
        assert_eq!(durable, wal.next_lsn());
        let logs = logs_of(&wal);
        drop(wal);
        assert_same(
            &disk.durable_logs().expect("durable"),
            &logs,
            "after the run",
        );
        (bytes_max, disk.step_count())
    };
    let (unfolded_max, steps) = run(None);
    let (folded_max, folded_steps) = run(Some(50));
    assert_eq!(steps, folded_steps, "folding changes no step");
    // Unfolded, the trace holds everything ever written (many times the 64 KiB segments);
    // folded every 50 ops, at most what 50 ops write (frames, and the zero-fills and headers
    // of the segments they fill).
    assert!(unfolded_max > 40 * (64 << 10), "{unfolded_max}");
    assert!(folded_max < 8 * (64 << 10), "{folded_max}");
}

/// A valid next write for what `wal` holds now (after a crash the log may hold less than was
/// appended, so a fixed workload would not do): mostly entries, with terms and votes, commit
/// indexes, truncations, compactions and deletions.
fn next_op(wal: &Wal, rng: &mut Rng, term: &mut u64) -> Op {
    loop {
        let id = rng.below(4) as u32 + 1;
        let info = wal.partition(p(id)).ok();
        let held = info.map(|i| (i.first_index, i.last_index));
        let op = match rng.below(100) {
            0..=69 => {
                let len_max = if rng.below(10) == 0 { 1600 } else { 400 };
                let len = rng.below(len_max);
                let payload = (0..len).map(|_| rng.next() as u8).collect();
                Op::Entry(id, held.map_or(1, |(_, last)| last + 1), *term, payload)
            }
            70..=77 => {
                if rng.below(3) == 0 {
                    *term += 1;
                }
                let vote = (rng.below(2) == 0).then(|| rng.below(5));
                Op::TermVote(id, kommander_wal::TermVote { term: *term, vote })
            }
            78..=84 => Op::Commit(id, rng.below(1000)),
            85..=91 => match held {
                Some((first, last)) if last >= first => {
                    Op::TruncateAfter(id, last - rng.below(last - first + 2))
                }
                _ => continue,
            },
            92..=98 => match held {
                Some((first, last)) if last >= first => {
                    let index = first + rng.below(last - first + 3);
                    Op::CompactTo(id, index, floor_meta_for(id, index))
                }
                _ => continue,
            },
            _ => match held {
                Some(_) => Op::Delete(id),
                None => continue,
            },
        };
        return op;
    }
}

#[test]
fn durable_logs_agree_with_recovery_through_faults_and_power_losses() {
    for seed in 1..=3u64 {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("wal");
        let disk = SimDisk::new(&dir).expect("disk");
        let mut rng = Rng(seed ^ 0xd15c);
        let mut term = 1;
        let mut at = 0;
        let mut checks = 0;
        let mut torn = 0;
        let mut faults = 0;
        while at < 1_200 {
            let mut wal = Wal::open(&dir, config(&disk)).expect("open");
            // Right after open, everything recovered is durable.
            assert_same(
                &disk.durable_logs().expect("durable"),
                &logs_of(&wal),
                &format!("seed {seed}, opened at op {at}"),
            );
            // A fault some ops ahead, now and then: the log poisons there.
            if rng.below(2) == 0 {
                let (writes, syncs) = disk.io_counts();
                let ahead = rng.below(6);
                disk.set_faults(if rng.below(2) == 0 {
                    FaultPlan {
                        fail_write_nth: Some(writes + ahead),
                        ..FaultPlan::default()
                    }
                } else {
                    FaultPlan {
                        fail_sync_nth: Some(syncs + ahead),
                        ..FaultPlan::default()
                    }
                });
            }
            let stop = at + 10 + rng.below(60) as usize;
            while at < stop {
                let op = next_op(&wal, &mut rng, &mut term);
                if let Err(error) = wal.append(&[op.as_write()]) {
                    // Appending waited for a pipeline slot and met the fault.
                    assert!(
                        matches!(error, Error::Io { .. } | Error::Poisoned { .. }),
                        "{error}"
                    );
                    faults += 1;
                    break;
                }
                at += 1;
                let step = if rng.below(3) == 0 {
                    wal.submit().map(|()| Lsn(0))
                } else {
                    wal.poll_durable()
                };
                if step.is_err() {
                    faults += 1;
                    break;
                }
                if rng.below(8) == 0 {
                    assert_same(
                        &disk.durable_logs().expect("durable"),
                        &recovered_durable_image(&disk),
                        &format!("seed {seed}, op {at}"),
                    );
                    checks += 1;
                }
            }
            disk.set_faults(FaultPlan::default());
            // Leave writes in flight, for a power loss to tear.
            let _ = wal.submit();
            // Then a process crash (the next open finds the page cache and makes it durable:
            // checked at the top of the loop), or a power loss (torn or clean), after which
            // the durable truth is what the next open finds.
            drop(wal);
            let mode = match rng.below(3) {
                0 => continue,
                1 => CrashMode::LoseUnsynced,
                _ => {
                    let mode = CrashMode::Torn(rng.next());
                    let now = disk.step_count();
                    if image(&disk, now, mode) != image(&disk, now, CrashMode::LoseUnsynced) {
                        // Writes in flight at the power loss partly survive.
                        torn += 1;
                    }
                    mode
                }
            };
            disk.power_loss(mode).expect("power loss");
            let before_open = disk.durable_logs().expect("durable");
            let wal = Wal::open(&dir, config(&disk)).expect("reopen");
            assert_same(
                &before_open,
                &logs_of(&wal),
                &format!("seed {seed}, reopened at op {at} after a power loss, {mode:?}"),
            );
            drop(wal);
            if rng.below(4) == 0 {
                disk.fold_trace();
            }
        }
        assert!(
            checks > 50 && torn > 2 && faults > 2,
            "seed {seed}: {checks} checks, {torn} torn power losses, {faults} faults"
        );
    }
}

#[test]
fn a_process_crash_then_a_power_loss_keeps_what_recovery_found() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let mut wal = Wal::open(&dir, config(&disk)).expect("open");
    wal.append_entry(p(1), 1, 1, b"durable").expect("append");
    wal.sync().expect("sync");
    // The next frame is written, its sync fails: in the page cache, not on the disk.
    let (_, syncs) = disk.io_counts();
    disk.set_faults(FaultPlan {
        fail_sync_nth: Some(syncs),
        ..FaultPlan::default()
    });
    wal.append_entry(p(1), 2, 1, b"page cache").expect("append");
    wal.sync().expect_err("the sync fails");
    disk.set_faults(FaultPlan::default());
    // A process crash: recovery finds the frame in the page cache and serves it as durable...
    drop(wal);
    let wal = Wal::open(&dir, config(&disk)).expect("reopen");
    assert_eq!(&wal.entry(p(1), 2).expect("read")[..], b"page cache");
    // ...so it must be durable, or a node could act on a vote or an entry a power loss
    // then takes back.
    let found = logs_of(&wal);
    assert_eq!(*disk.durable_logs().expect("durable"), found);
    drop(wal);
    disk.power_loss(CrashMode::LoseUnsynced)
        .expect("power loss");
    let wal = Wal::open(&dir, config(&disk)).expect("reopen");
    assert_eq!(logs_of(&wal), found);
}

#[test]
fn a_power_loss_in_place_keeps_the_durable_truth_and_counts_on() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let mut wal = Wal::open(&dir, config(&disk)).expect("open");
    for index in 1..=40 {
        wal.append_entry(p(index as u32 % 3), index / 3 + 1, 1, &[index as u8; 700])
            .expect("append");
        if index % 5 == 0 {
            wal.poll_durable().expect("poll");
        }
    }
    wal.submit().expect("submit");
    let durable = disk.durable_logs().expect("durable");
    let (steps, counts) = (disk.step_count(), disk.io_counts());
    drop(wal);
    disk.power_loss(CrashMode::LoseUnsynced)
        .expect("power loss");
    assert_eq!(disk.step_count(), steps, "steps keep counting");
    assert_eq!(disk.folded_steps(), steps);
    assert_eq!(disk.io_counts(), counts, "fault ordinals keep counting");
    assert_eq!(disk.durable_logs().expect("durable"), durable);
    let wal = Wal::open(&dir, config(&disk)).expect("reopen");
    assert_eq!(logs_of(&wal), *durable);
    let log = &durable.partitions[&p(1)];
    assert_eq!(log.entry(log.first_index).map(|e| e.index), Some(1));
    assert_eq!(log.entry(log.last_index() + 1), None);
}

/// The cost of the durable truth on a realistic image: 4 to 5 segments of 256 KiB, a few
/// thousand entries over 16 partitions. Prints the time per call; run with
/// `cargo test -p kommander-wal --profile ci --test main sim_disk::durable_logs_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn durable_logs_cost() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let config = WalConfig {
        segment_bytes: 256 << 10,
        batch_bytes_max: 32 << 10,
        record_bytes_max: 8 << 10,
        ..config(&disk)
    };
    let mut wal = Wal::open(&dir, config).expect("open");
    let mut next = [1u64; 16];
    let mut rng = Rng(5);
    while wal.segment_seqs().len() < 4 || wal.next_lsn().0 < 3_000 {
        let partition = rng.below(16) as usize;
        let payload = vec![partition as u8; 60 + rng.below(120) as usize];
        wal.append_entry(p(partition as u32), next[partition], 1, &payload)
            .expect("append");
        next[partition] += 1;
        if rng.below(24) == 0 {
            wal.submit().expect("submit");
            wal.poll_durable().expect("poll");
        }
    }
    wal.sync().expect("sync");
    disk.fold_trace();
    let entries: usize = next.iter().map(|n| (n - 1) as usize).sum();
    let runs = 50u32;
    let mut spent = std::time::Duration::ZERO;
    let mut held_entries = 0;
    for i in 0..runs {
        // Something new is durable before each call, as at every acknowledged write.
        wal.append_entry(p(0), next[0], 1, &[i as u8; 100])
            .expect("append");
        next[0] += 1;
        wal.sync().expect("sync");
        let start = std::time::Instant::now();
        let logs = disk.durable_logs().expect("durable");
        spent += start.elapsed();
        held_entries = logs.partitions.values().map(|l| l.entries.len()).sum();
    }
    let cached = std::time::Instant::now();
    for _ in 0..runs {
        disk.durable_logs().expect("durable");
    }
    println!(
        "durable_logs: {} segments of 256 KiB, {entries} entries appended, {held_entries} held: \
         {:?} per call after a new durable write, {:?} per call when nothing changed",
        wal.segment_seqs().len(),
        spent / runs,
        cached.elapsed() / runs,
    );
}

/// Runs `ops` on a fresh log over `disk` until the injected fault stops it. Returns the
/// durable LSN acknowledged before.
fn run_until_fault(dir: &Path, disk: &SimDisk, ops: &[Op]) -> Lsn {
    let mut rng = Rng(17);
    let mut acknowledged = Lsn(0);
    let Ok(mut wal) = Wal::open(dir, config(disk)) else {
        return acknowledged;
    };
    for op in ops {
        if wal.append(&[op.as_write()]).is_err() {
            break;
        }
        let polled = if rng.below(3) == 0 {
            wal.submit().map(|()| acknowledged)
        } else {
            wal.poll_durable()
        };
        match polled {
            Ok(lsn) => acknowledged = lsn,
            Err(_) => break,
        }
    }
    acknowledged
}

#[test]
fn every_failed_write_or_sync_leaves_a_log_that_reopens_after_a_crash_or_power_loss() {
    let base = tempfile::tempdir().expect("tempdir");
    let ops = workload(23, 500, 3, 600);
    let clean = SimDisk::new(&base.path().join("clean")).expect("disk");
    run_until_fault(&base.path().join("clean"), &clean, &ops);
    let (writes, syncs) = clean.io_counts();
    assert!(
        writes > 100 && syncs > 100,
        "{writes} writes, {syncs} syncs"
    );
    let plans = (0..writes)
        .map(|nth| FaultPlan {
            fail_write_nth: Some(nth),
            ..FaultPlan::default()
        })
        .chain((0..syncs).map(|nth| FaultPlan {
            fail_sync_nth: Some(nth),
            ..FaultPlan::default()
        }));
    for (run, plan) in plans.enumerate() {
        let dir = base.path().join(format!("run-{run}"));
        let disk = SimDisk::new(&dir).expect("disk");
        disk.set_faults(plan);
        let acknowledged = run_until_fault(&dir, &disk, &ops);
        disk.set_faults(FaultPlan::default());
        for crash in ["a process crash", "a power loss"] {
            if crash == "a power loss" {
                disk.power_loss(CrashMode::LoseUnsynced)
                    .expect("power loss");
            }
            let wal = Wal::open(&dir, config(&disk))
                .unwrap_or_else(|e| panic!("{plan:?}: reopening after {crash}: {e}"));
            assert!(
                wal.next_lsn() >= acknowledged,
                "{plan:?}: {crash} lost acknowledged records"
            );
            assert_same(
                &disk.durable_logs().expect("durable"),
                &logs_of(&wal),
                &format!("{plan:?}, reopened after {crash}"),
            );
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

/// What the 4 KiB slot at `offset` of segment `seq` in `dir` holds, judged as recovery judges
/// it (against the segment's own seq and epoch).
fn slot(dir: &Path, seq: u64, offset: u64) -> FrameCheck {
    let bytes = std::fs::read(dir.join(format!("{seq:016x}.wal"))).expect("segment");
    let epoch = decode_segment_header(&bytes)
        .expect("segment header")
        .epoch
        .get();
    check_frame(&bytes, offset, seq, epoch)
}

/// A torn power loss now (its seed) under which, of two frames in flight in segment `seq`, the
/// one at `lost` vanishes (its slot reads as never written, so recovery ends the log there
/// cleanly) while the later one at `kept` survives whole: each write in flight is kept, lost
/// or torn independently.
fn seed_losing_the_earlier_frame_only(disk: &SimDisk, seq: u64, lost: u64, kept: u64) -> u64 {
    (0..1_000)
        .find(|&seed| {
            let target = tempfile::tempdir().expect("tempdir");
            let dir = target.path().join("image");
            disk.crash_image(disk.step_count(), CrashMode::Torn(seed), &dir)
                .expect("crash image");
            slot(&dir, seq, lost) == FrameCheck::Zero
                && matches!(slot(&dir, seq, kept), FrameCheck::Valid(_))
        })
        .expect("a torn power loss that loses the earlier frame and keeps the later one")
}

/// Node simulator seed 49: an earlier life of the log left a frame beyond what became the
/// recovered end (two frames in flight, a power loss lost the earlier and kept the later, so
/// recovery ended cleanly at the first and zeroed nothing). The next life appended from that
/// end, in the same segment (same epoch) with the same LSNs; when its own frame over the stale
/// one was lost in turn, the stale frame (valid, the next LSN) joined the log: here its
/// truncation took an acknowledged entry away.
#[test]
fn a_stale_frame_beyond_the_recovered_end_never_joins_the_log() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let block = BLOCK_SIZE as u64;
    let mut wal = Wal::open(&dir, config(&disk)).expect("open");
    wal.append_entry(p(1), 1, 1, b"durable").expect("append");
    wal.sync().expect("sync");
    // Two frames in flight, one slot each: entry 2, then a truncation back to entry 1.
    wal.append_entry(p(1), 2, 1, b"in flight").expect("append");
    wal.submit().expect("submit");
    wal.truncate_after(p(1), 1).expect("append");
    wal.submit().expect("submit");
    drop(wal);
    let (lost, stale) = (2 * block, 3 * block);
    let seed = seed_losing_the_earlier_frame_only(&disk, 1, lost, stale);
    disk.power_loss(CrashMode::Torn(seed)).expect("power loss");
    let report =
        kommander_wal::inspect(&dir, &kommander_wal::InspectOptions::default()).expect("inspect");
    assert_eq!(
        report.recovery,
        RecoveryVerdict::OpensAfterRepair {
            repairs: vec![format!(
                "zero 1 frame(s) of segment 0000000000000001.wal an earlier life left beyond \
                 the recovered end, at offsets {stale}"
            )]
        }
    );

    // The next life ends the log at entry 1, then writes entry 2 (acknowledged: synced) into
    // the lost frame's slot with its LSN, and entry 3 into the stale frame's slot with its LSN.
    let mut wal = Wal::open(&dir, config(&disk)).expect("reopen");
    assert_eq!(wal.partition(p(1)).expect("partition").last_index, 1);
    wal.append_entry(p(1), 2, 2, b"acknowledged")
        .expect("append");
    wal.sync().expect("sync");
    let acknowledged = logs_of(&wal);
    wal.append_entry(p(1), 3, 2, b"never synced")
        .expect("append");
    wal.submit().expect("submit");
    drop(wal);
    // A power loss takes the unsynced frame back: what is left is what was acknowledged.
    disk.power_loss(CrashMode::LoseUnsynced)
        .expect("power loss");
    assert_same(
        &disk.durable_logs().expect("durable"),
        &acknowledged,
        "the durable truth",
    );
    let wal = Wal::open(&dir, config(&disk)).expect("reopen");
    assert_same(&logs_of(&wal), &acknowledged, "reopened");
}

/// The same hazard one segment on: the earlier life rotated into the prepared segment 2 and had
/// two frames in flight there; the power loss lost the first (so recovery ends the log in
/// segment 1 and keeps segment 2 as prepared, same epoch) and kept the second. The next life
/// rotates into segment 2 at the same LSN: the stale frame must not join its log either.
#[test]
fn a_stale_frame_in_a_prepared_segment_never_joins_the_log() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("wal");
    let disk = SimDisk::new(&dir).expect("disk");
    let block = BLOCK_SIZE as u64;
    let mut wal = Wal::open(&dir, config(&disk)).expect("open");
    // Fill segment 1 with one-slot frames of partition 2, the last deleting it: nothing live
    // pins segment 1, so rotating out of it rewrites nothing.
    let slots = (64 << 10) / block - 1;
    for index in 1..slots {
        wal.append_entry(p(2), index, 1, b"filler").expect("append");
        wal.sync().expect("sync");
    }
    wal.append(&[Write::DeletePartition { partition: p(2) }])
        .expect("append");
    wal.sync().expect("sync");
    assert_eq!(wal.segment_seqs(), [1]);
    // Two frames in flight in segment 2: the first rotates into it.
    wal.append_entry(p(1), 1, 1, b"in flight").expect("append");
    wal.submit().expect("submit");
    assert_eq!(wal.segment_seqs(), [1, 2]);
    wal.append_entry(p(1), 2, 1, b"stale").expect("append");
    wal.submit().expect("submit");
    drop(wal);
    let seed = seed_losing_the_earlier_frame_only(&disk, 2, block, 2 * block);
    disk.power_loss(CrashMode::Torn(seed)).expect("power loss");

    let mut wal = Wal::open(&dir, config(&disk)).expect("reopen");
    assert_eq!(wal.segment_seqs(), [1], "segment 2 is a prepared one again");
    wal.append_entry(p(1), 1, 2, b"acknowledged")
        .expect("append");
    wal.sync().expect("sync");
    assert_eq!(wal.segment_seqs(), [1, 2]);
    let acknowledged = logs_of(&wal);
    wal.append_entry(p(1), 2, 2, b"never synced")
        .expect("append");
    wal.submit().expect("submit");
    drop(wal);
    disk.power_loss(CrashMode::LoseUnsynced)
        .expect("power loss");
    assert_same(
        &disk.durable_logs().expect("durable"),
        &acknowledged,
        "the durable truth",
    );
    let wal = Wal::open(&dir, config(&disk)).expect("reopen");
    assert_same(&logs_of(&wal), &acknowledged, "reopened");
}
