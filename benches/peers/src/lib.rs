//! The workload every peer comparison runs, and kommander-wal's side of it.
//!
//! A shard at full speed: every *round* appends one entry of [`PAYLOAD_BYTES`] to each of the
//! partitions; records are counted once durable. Each peer binary drives its crate the way its
//! own project does and prints records/s side by side with kommander-wal's, in one run, on one
//! directory (`KOMMANDER_BENCH_DIR`, default the system temp dir).
#![allow(clippy::print_stdout)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kommander_wal::{Lsn, PartitionId, Wal, WalConfig, Write};

/// Payload of every entry (bytes).
pub const PAYLOAD_BYTES: usize = 256;
/// Partition counts compared.
pub const PARTITION_COUNTS: [u64; 2] = [64, 1024];

/// Measured result of one run.
pub struct Outcome {
    /// Durable records per second.
    pub records_per_second: f64,
    /// Latency from a round's append to its durability (ns).
    pub commit_latency: Histogram<u64>,
}

/// Run length: `--quick` for a short run, the default otherwise.
pub fn run_length() -> Duration {
    if std::env::args().any(|arg| arg == "--quick") {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(8)
    }
}

/// A fresh directory `name` under the bench directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("KOMMANDER_BENCH_DIR")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(format!("kommander-peers-{}", std::process::id()));
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    dir
}

/// Removes a directory made by [`fresh_dir`] (and its parent when empty).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

/// Incompressible payload bytes, the same every run.
pub fn payload() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..PAYLOAD_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A histogram of nanoseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds")
}

/// Records `elapsed` in `histogram`.
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
    histogram.saturating_record(nanos);
}

/// kommander-wal's side: the shard loop appends each round with one `append`, submits, and
/// polls (the log pipelines its frames: the next fills while the previous is written).
pub fn kommander(dir: &Path, partitions: u64, run: Duration) -> Outcome {
    let mut wal = Wal::open(dir, WalConfig::default()).expect("open kommander-wal");
    let payload = payload();
    let mut next_index = vec![1u64; partitions as usize];
    let mut writes = Vec::with_capacity(partitions as usize);
    let mut rounds: VecDeque<(Lsn, Instant)> = VecDeque::new();
    let mut commit_latency = histogram();
    let mut records = 0u64;
    let start = Instant::now();
    while start.elapsed() < run {
        writes.clear();
        for (partition, index) in next_index.iter_mut().enumerate() {
            writes.push(Write::Entry {
                partition: PartitionId(partition as u64 + 1),
                index: *index,
                term: 1,
                payload: &payload,
            });
            *index += 1;
        }
        let lsn = wal.append(&writes).expect("append");
        records += partitions;
        rounds.push_back((lsn, Instant::now()));
        wal.submit().expect("submit");
        let durable = wal.poll_durable().expect("poll");
        while rounds.front().is_some_and(|(lsn, _)| *lsn <= durable) {
            if let Some((_, appended)) = rounds.pop_front() {
                record(&mut commit_latency, appended.elapsed());
            }
        }
    }
    wal.sync().expect("sync");
    for (_, appended) in rounds.drain(..) {
        record(&mut commit_latency, appended.elapsed());
    }
    Outcome {
        records_per_second: records as f64 / start.elapsed().as_secs_f64(),
        commit_latency,
    }
}

/// Prints the comparison table.
pub fn print_table(peer: &str, rows: &[(u64, Outcome, Outcome)]) {
    println!(
        "\n{PAYLOAD_BYTES} B entries, one entry per partition per round, sync on, run {:?} each\n",
        run_length()
    );
    println!(
        "| partitions | kommander-wal rec/s (commit p50) | {peer} rec/s (commit p50) | ratio | target |"
    );
    println!("|---|---|---|---|---|");
    for (partitions, ours, theirs) in rows {
        let ratio = ours.records_per_second / theirs.records_per_second;
        println!(
            "| {partitions} | {:.2} M/s ({:.0} µs) | {:.2} M/s ({:.0} µs) | {ratio:.2} × | ≥ 3 × {} |",
            ours.records_per_second / 1e6,
            ours.commit_latency.value_at_quantile(0.5) as f64 / 1e3,
            theirs.records_per_second / 1e6,
            theirs.commit_latency.value_at_quantile(0.5) as f64 / 1e3,
            if ratio >= 3.0 { "met" } else { "MISSED" }
        );
    }
    println!();
}
