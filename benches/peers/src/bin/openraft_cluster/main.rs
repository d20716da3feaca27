//! Our in-process cluster against openraft 0.9, side by side in one run, on the workload of
//! `benches/cluster.rs`: three nodes in one process, every node hosting every partition, 16 B
//! writes from closed-loop writers (each waits for its previous write's commit) spread over
//! the partitions (`writer % partitions`) and sent to each partition's leader.
//!
//! ```text
//! cd benches/peers && cargo run --release --bin openraft_cluster -- --quick   # about a minute
//! cargo run --release --bin openraft_cluster                                  # 5 s per side and row
//! cargo run --release --bin openraft_cluster -- --seconds 10 --only 1024:1024,64:1
//! ```
//!
//! Rows are `partitions:writers`: 1, 64 and 1024 partitions × 1, 64 and 1024 writers (1 and
//! 1024 with `--quick`, 2 s per side). `KOMMANDER_BENCH_DIR` chooses the directory (default the
//! system temp dir). Each row starts a fresh cluster of each side, waits for every partition's
//! leader, runs the writers for the duration and prints committed writes/s and commit latency
//! (p50/p99/p99.9, from the write's send to its answer) of both sides and our rate over
//! openraft's; the side that runs first alternates row by row.
//!
//! - kommander ([`kommander_side`]): `ShardHost`s with the memory transport and real WALs
//!   (fsync on), one shard thread per core on each node, as `benches/cluster.rs` runs them; a
//!   write is answered once committed.
//! - openraft ([`openraft_side`]): one `Raft` per partition on each node, the in-memory
//!   [`network`], a durable log store ([`log_store`], [`log_file`]: one file per node shared by
//!   the groups, one `fdatasync` per flusher turn), a counting state machine
//!   ([`state_machine`]), no snapshots; a write is answered once applied on the leader (the
//!   only answer `client_write` gives; applying is a counter increment).
//!
//! Both sides' writers run on one current-thread tokio runtime of their own.
#![allow(clippy::print_stdout)]

mod kommander_side;
mod log_file;
mod log_store;
mod network;
mod openraft_side;
mod state_machine;
#[cfg(test)]
mod storage_suite;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kommander_peers::{fresh_dir, histogram, record, remove_dir};

use crate::kommander_side::KommanderCluster;
use crate::openraft_side::OpenraftCluster;

/// Payload of every write (bytes), as `benches/cluster.rs`'s first rows.
const PAYLOAD_BYTES: usize = 16;
/// Nodes in each side's cluster.
pub const NODE_COUNT: u64 = 3;
/// How long a side may take to elect every partition's leader.
const LEADER_WAIT: Duration = Duration::from_secs(120);

/// One side of the comparison, started for one row.
pub trait Cluster: Send + Sync + 'static {
    /// The index (0-based) of the node whose replica of `partition` leads, if one does.
    fn leader_of(&self, partition: u32) -> Option<usize>;
    /// Writes `payload` to `partition` through node `node`; `true` once committed, `false` if
    /// refused (that node does not lead the partition).
    fn write(
        &self,
        node: usize,
        partition: u32,
        payload: Bytes,
    ) -> impl Future<Output = bool> + Send;
    /// Shuts the cluster down.
    fn stop(self);
}

/// What one side measured in one row.
struct Outcome {
    writes: u64,
    errors: u64,
    elapsed: Duration,
    /// Commit latency (ns).
    latency: Histogram<u64>,
}

impl Outcome {
    fn writes_per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    fn micros_at(&self, quantile: f64) -> u64 {
        self.latency.value_at_quantile(quantile) / 1_000
    }
}

/// Waits until every partition of `cluster` has a leader; returns each one's node index.
fn wait_for_leaders<C: Cluster>(cluster: &C, partitions: u32) -> Vec<usize> {
    let deadline = Instant::now() + LEADER_WAIT;
    (0..partitions)
        .map(|partition| {
            loop {
                if let Some(index) = cluster.leader_of(partition) {
                    break index;
                }
                assert!(
                    Instant::now() < deadline,
                    "no leader for partition {partition} after {LEADER_WAIT:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .collect()
}

/// Runs `writers` closed-loop writers on `cluster` for `duration`, then stops it.
fn measure<C: Cluster>(cluster: C, partitions: u32, writers: usize, duration: Duration) -> Outcome {
    let leaders: Arc<Vec<AtomicUsize>> = Arc::new(
        wait_for_leaders(&cluster, partitions)
            .into_iter()
            .map(AtomicUsize::new)
            .collect(),
    );
    let cluster = Arc::new(cluster);
    let payload = Bytes::from(vec![0x5a; PAYLOAD_BYTES]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|writer| {
                let cluster = Arc::clone(&cluster);
                let leaders = Arc::clone(&leaders);
                let payload = payload.clone();
                let partition = (writer % partitions as usize) as u32;
                tokio::spawn(async move {
                    let slot = &leaders[partition as usize];
                    let mut latency = histogram();
                    let (mut writes, mut errors) = (0u64, 0u64);
                    while started.elapsed() < duration {
                        let leader = slot.load(Ordering::Relaxed);
                        let begin = Instant::now();
                        if cluster.write(leader, partition, payload.clone()).await {
                            writes += 1;
                            record(&mut latency, begin.elapsed());
                        } else {
                            // Refused (leadership moved): try the next node.
                            errors += 1;
                            tokio::task::yield_now().await;
                            let next = (leader + 1) % NODE_COUNT as usize;
                            let _ = slot.compare_exchange(
                                leader,
                                next,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                    }
                    (writes, errors, latency)
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("a writer task finishes"));
        }
        results
    });
    let elapsed = started.elapsed();
    let mut outcome = Outcome {
        writes: 0,
        errors: 0,
        elapsed,
        latency: histogram(),
    };
    for (writes, errors, latency) in results {
        outcome.writes += writes;
        outcome.errors += errors;
        outcome
            .latency
            .add(latency)
            .expect("histograms of one shape");
    }
    drop(runtime);
    match Arc::try_unwrap(cluster) {
        Ok(cluster) => cluster.stop(),
        Err(_) => unreachable!("every writer task has finished"),
    }
    outcome
}

/// Which side runs.
#[derive(Clone, Copy)]
enum Side {
    Kommander,
    Openraft,
}

fn run_side(side: Side, partitions: u32, writers: usize, duration: Duration) -> Outcome {
    let name = match side {
        Side::Kommander => "kommander",
        Side::Openraft => "openraft",
    };
    let dir = fresh_dir(&format!("{name}-{partitions}-{writers}"));
    let outcome = run_in(side, &dir, partitions, writers, duration);
    remove_dir(&dir);
    outcome
}

fn run_in(side: Side, dir: &Path, partitions: u32, writers: usize, duration: Duration) -> Outcome {
    match side {
        Side::Kommander => measure(
            KommanderCluster::start(dir, partitions),
            partitions,
            writers,
            duration,
        ),
        Side::Openraft => measure(
            OpenraftCluster::start(dir, partitions),
            partitions,
            writers,
            duration,
        ),
    }
}

/// What to run: the rows (`partitions`, `writers`) and the duration of each side.
struct Options {
    rows: Vec<(u32, usize)>,
    duration: Duration,
}

const USAGE: &str = "usage: openraft_cluster [--quick] [--seconds S] [--only P:W[,P:W...]]";

fn options() -> Result<Options, String> {
    let mut quick = false;
    let mut seconds = None;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a value")?;
                let value: f64 = value
                    .parse()
                    .map_err(|_| format!("--seconds {value}: not a number"))?;
                if !(value.is_finite() && value > 0.0) {
                    return Err(format!("--seconds {value}: must be positive"));
                }
                seconds = Some(value);
            }
            "--only" => {
                let value = args.next().ok_or("--only needs P:W[,P:W...]")?;
                let rows = value
                    .split(',')
                    .map(|row| {
                        let parsed = row.split_once(':').and_then(|(p, w)| {
                            Some((p.parse::<u32>().ok()?, w.parse::<usize>().ok()?))
                        });
                        match parsed {
                            Some((p, w)) if p > 0 && w > 0 => Ok((p, w)),
                            _ => Err(format!("--only {row}: want partitions:writers, both > 0")),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                only = Some(rows);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let writer_counts: &[usize] = if quick { &[1, 1024] } else { &[1, 64, 1024] };
    let rows = only.unwrap_or_else(|| {
        [1u32, 64, 1024]
            .into_iter()
            .flat_map(|p| writer_counts.iter().map(move |&w| (p, w)))
            .collect()
    });
    let seconds = seconds.unwrap_or(if quick { 2.0 } else { 5.0 });
    Ok(Options {
        rows,
        duration: Duration::from_secs_f64(seconds),
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            std::process::exit(2);
        }
    };
    println!(
        "kommander vs openraft 0.9: 3 nodes in one process, in-memory network, fsync on, \
         {PAYLOAD_BYTES} B writes, closed-loop writers, {:.1} s per side and row; load average {}",
        options.duration.as_secs_f64(),
        load_average()
    );
    println!(
        "{:>10} {:>7} | {:>10} {:>7} {:>7} {:>7} | {:>10} {:>7} {:>7} {:>7} | {:>6} | errors",
        "partitions",
        "writers",
        "ours w/s",
        "p50 us",
        "p99 us",
        "p99.9",
        "openraft",
        "p50 us",
        "p99 us",
        "p99.9",
        "ratio"
    );
    for (row, &(partitions, writers)) in options.rows.iter().enumerate() {
        let (ours, theirs) = if row % 2 == 0 {
            let ours = run_side(Side::Kommander, partitions, writers, options.duration);
            (
                ours,
                run_side(Side::Openraft, partitions, writers, options.duration),
            )
        } else {
            let theirs = run_side(Side::Openraft, partitions, writers, options.duration);
            (
                run_side(Side::Kommander, partitions, writers, options.duration),
                theirs,
            )
        };
        println!(
            "{:>10} {:>7} | {:>10.0} {:>7} {:>7} {:>7} | {:>10.0} {:>7} {:>7} {:>7} | {:>5.2}x | {}/{}",
            partitions,
            writers,
            ours.writes_per_second(),
            ours.micros_at(0.5),
            ours.micros_at(0.99),
            ours.micros_at(0.999),
            theirs.writes_per_second(),
            theirs.micros_at(0.5),
            theirs.micros_at(0.99),
            theirs.micros_at(0.999),
            ours.writes_per_second() / theirs.writes_per_second().max(f64::MIN_POSITIVE),
            ours.errors,
            theirs.errors
        );
    }
    println!("load average at the end: {}", load_average());
}
