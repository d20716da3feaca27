//! The workload every peer comparison runs, and kommander-wal's side of it.
//!
//! A shard at full speed: every *round* appends one entry of [`PAYLOAD_BYTES`] to each of the
//! partitions, and every [`COMPACTION_INTERVAL_ROUNDS`] rounds each partition compacts to its
//! last [`RETAINED_ENTRIES`] entries; records are counted once durable. Each peer binary drives its crate the way its
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
/// Every this many rounds each partition compacts its log to its last [`RETAINED_ENTRIES`]
/// entries (a Raft node checkpointing what it applied), on both sides.
pub const COMPACTION_INTERVAL_ROUNDS: u64 = 256;
/// Entries each partition keeps behind its last index when it compacts.
pub const RETAINED_ENTRIES: u64 = 256;

/// One side of a comparison: runs the workload for a slice of time, counting durable records.
pub trait Contender {
    /// Runs rounds for `run`, then makes everything durable; returns records per second.
    fn slice(&mut self, run: Duration, commit_latency: &mut Histogram<u64>) -> f64;
}

/// Measured result of one contender.
pub struct Outcome {
    /// Durable records per second (median of the slices).
    pub records_per_second: f64,
    /// Latency from a round's append to its durability (ns).
    pub commit_latency: Histogram<u64>,
}

/// Slices per contender: `--quick` for a short run.
pub fn slices() -> (usize, Duration) {
    if std::env::args().any(|arg| arg == "--quick") {
        (5, Duration::from_millis(400))
    } else {
        (15, Duration::from_secs(1))
    }
}

/// Runs two contenders in alternating slices (so a shared machine's load hits both alike);
/// each figure is the median of its slices.
pub fn interleaved(ours: &mut dyn Contender, theirs: &mut dyn Contender) -> (Outcome, Outcome) {
    let (count, run) = slices();
    let mut figures = [(Vec::new(), histogram()), (Vec::new(), histogram())];
    for _ in 0..count {
        let [(our_rates, our_latency), (their_rates, their_latency)] = &mut figures;
        our_rates.push(ours.slice(run, our_latency));
        their_rates.push(theirs.slice(run, their_latency));
    }
    let [(our_rates, our_latency), (their_rates, their_latency)] = figures;
    (
        Outcome {
            records_per_second: median(&our_rates),
            commit_latency: our_latency,
        },
        Outcome {
            records_per_second: median(&their_rates),
            commit_latency: their_latency,
        },
    )
}

fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
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

/// Incompressible payloads, the same every run: each entry takes the next `PAYLOAD_BYTES` of a
/// pool far longer than lz4's 64 KiB window, so no entry repeats one near it. (Every entry once
/// carried the same bytes: raft-engine compresses its batches with lz4, which made its writes
/// nearly free on a disk whose bandwidth binds, as this one's did on 2026-12-05.)
pub struct Payloads {
    pool: bytes::Bytes,
    next: usize,
}

/// The payload pool's length.
const PAYLOAD_POOL_BYTES: usize = 4 << 20;

impl Payloads {
    /// The pool, from a fixed seed.
    pub fn new() -> Self {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let pool = (0..PAYLOAD_POOL_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect::<Vec<u8>>();
        Self {
            pool: pool.into(),
            next: 0,
        }
    }

    /// The pool (cheap to clone).
    pub fn pool(&self) -> bytes::Bytes {
        self.pool.clone()
    }

    /// Where in the pool the next entry's payload lies.
    pub fn next_range(&mut self) -> std::ops::Range<usize> {
        if self.next + PAYLOAD_BYTES > self.pool.len() {
            self.next = 0;
        }
        let at = self.next;
        self.next += PAYLOAD_BYTES;
        at..at + PAYLOAD_BYTES
    }

    /// The next entry's payload.
    pub fn next_payload(&mut self) -> bytes::Bytes {
        let range = self.next_range();
        self.pool.slice(range)
    }
}

impl Default for Payloads {
    fn default() -> Self {
        Self::new()
    }
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
pub struct Kommander {
    wal: Wal,
    payloads: Payloads,
    next_index: Vec<u64>,
    rounds: u64,
}

impl Kommander {
    /// Opens a log in `dir` with the default configuration.
    pub fn open(dir: &Path, partitions: u64) -> Self {
        Self {
            wal: Wal::open(dir, WalConfig::default()).expect("open kommander-wal"),
            payloads: Payloads::new(),
            next_index: vec![1; partitions as usize],
            rounds: 0,
        }
    }
}

impl Contender for Kommander {
    fn slice(&mut self, run: Duration, commit_latency: &mut Histogram<u64>) -> f64 {
        let partitions = self.next_index.len() as u64;
        let pool = self.payloads.pool();
        let mut writes = Vec::with_capacity(self.next_index.len());
        let mut rounds: VecDeque<(Lsn, Instant)> = VecDeque::new();
        let mut records = 0u64;
        let start = Instant::now();
        while start.elapsed() < run {
            writes.clear();
            for (partition, index) in self.next_index.iter_mut().enumerate() {
                writes.push(Write::Entry {
                    partition: PartitionId(partition as u32 + 1),
                    index: *index,
                    term: 1,
                    payload: &pool[self.payloads.next_range()],
                });
                *index += 1;
            }
            self.rounds += 1;
            if self.rounds.is_multiple_of(COMPACTION_INTERVAL_ROUNDS) {
                for (partition, index) in self.next_index.iter().enumerate() {
                    if *index > RETAINED_ENTRIES {
                        writes.push(Write::CompactTo {
                            partition: PartitionId(partition as u32 + 1),
                            index: *index - RETAINED_ENTRIES,
                            floor_meta: &[],
                        });
                    }
                }
            }
            let lsn = self.wal.append(&writes).expect("append");
            records += partitions;
            rounds.push_back((lsn, Instant::now()));
            self.wal.submit().expect("submit");
            let durable = self.wal.poll_durable().expect("poll");
            while rounds.front().is_some_and(|(lsn, _)| *lsn <= durable) {
                if let Some((_, appended)) = rounds.pop_front() {
                    record(commit_latency, appended.elapsed());
                }
            }
        }
        self.wal.sync().expect("sync");
        for (_, appended) in rounds.drain(..) {
            record(commit_latency, appended.elapsed());
        }
        records as f64 / start.elapsed().as_secs_f64()
    }
}

/// Prints the comparison table.
pub fn print_table(peer: &str, rows: &[(u64, Outcome, Outcome)]) {
    let (count, run) = slices();
    println!(
        "\n{PAYLOAD_BYTES} B entries, one entry per partition per round, compaction to the last \
         {RETAINED_ENTRIES} entries every {COMPACTION_INTERVAL_ROUNDS} rounds, sync on; {count} \
         alternating slices of {run:?} per side, medians\n"
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
