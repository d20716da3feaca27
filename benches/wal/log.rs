//! The log itself: QD1 latency, saturated multi-partition throughput, payload bandwidth and
//! recovery speed, each against its raw limit from the same run.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use kommander_wal::{Lsn, PartitionId, Wal, WalConfig, Write};

use crate::Scale;
use crate::raw::{self, RawLimits};
use crate::report::{self, Table};

/// The log configuration every measurement uses: the defaults (io_uring when permitted,
/// 64 MiB segments, 1 MiB frames, 2 frames in flight).
pub fn config() -> WalConfig {
    WalConfig::default()
}

/// A payload of `len` bytes that does not compress (the same bytes every run).
pub fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// QD1: append one 256 B entry, submit, wait until durable; `iterations` times.
pub fn qd1_latency(dir: &Path, iterations: u64) -> (Histogram<u64>, &'static str) {
    let mut wal = Wal::open(dir, config()).expect("open the log");
    let backend = wal.backend_name();
    let payload = payload(256);
    let partition = PartitionId(1);
    let mut latencies = raw::histogram();
    let warm_up = (iterations / 10).max(10);
    for i in 0..warm_up + iterations {
        let start = Instant::now();
        let lsn = wal
            .append_entry(partition, i + 1, 1, &payload)
            .expect("append");
        wal.submit().expect("submit");
        wal.wait_durable(lsn).expect("durable");
        if i >= warm_up {
            raw::record(&mut latencies, start.elapsed());
        }
    }
    (latencies, backend)
}

/// What a saturated run achieved.
pub struct Saturated {
    /// Durable records per second.
    pub records_per_second: f64,
    /// Durable payload bytes per second.
    pub payload_bytes_per_second: f64,
    /// Append-to-durable latency of each loop turn (ns).
    pub commit_latency: Histogram<u64>,
}

/// A shard loop at full speed: every turn appends one entry of `payload_len` bytes to each of
/// `partitions` partitions, submits, and collects what became durable, for `run`. Returns the
/// log (open) for the recovery measurement.
pub fn saturated(
    dir: &Path,
    partitions: u64,
    payload_len: usize,
    run: Duration,
) -> (Saturated, Wal) {
    let mut wal = Wal::open(dir, config()).expect("open the log");
    let payload = payload(payload_len);
    let mut next_index = vec![1u64; partitions as usize];
    let mut writes = Vec::with_capacity(partitions as usize);
    let mut turns: VecDeque<(Lsn, Instant)> = VecDeque::new();
    let mut commit_latency = raw::histogram();
    let mut records = 0u64;
    let start = Instant::now();
    while start.elapsed() < run {
        writes.clear();
        for (partition, index) in next_index.iter_mut().enumerate() {
            writes.push(Write::Entry {
                partition: PartitionId(partition as u64),
                index: *index,
                term: 1,
                payload: &payload,
            });
            *index += 1;
        }
        let lsn = wal.append(&writes).expect("append");
        records += partitions;
        turns.push_back((lsn, Instant::now()));
        wal.submit().expect("submit");
        let durable = wal.poll_durable().expect("poll");
        while turns.front().is_some_and(|(lsn, _)| *lsn <= durable) {
            if let Some((_, appended)) = turns.pop_front() {
                raw::record(&mut commit_latency, appended.elapsed());
            }
        }
    }
    let durable = wal.sync().expect("sync");
    for (lsn, appended) in turns.drain(..) {
        assert!(lsn <= durable, "everything appended is durable after sync");
        raw::record(&mut commit_latency, appended.elapsed());
    }
    let seconds = start.elapsed().as_secs_f64();
    let result = Saturated {
        records_per_second: records as f64 / seconds,
        payload_bytes_per_second: (records * payload_len as u64) as f64 / seconds,
        commit_latency,
    };
    (result, wal)
}

/// Drops `dir`'s files from the page cache (so a reopen reads from the device).
fn evict(dir: &Path) {
    for entry in std::fs::read_dir(dir)
        .expect("list the log directory")
        .flatten()
    {
        if let Ok(file) = File::open(entry.path()) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        }
    }
}

/// Closes `wal`, evicts its files from the page cache and reopens it: bytes of segments
/// holding data per second of `Wal::open`.
pub fn recovery(dir: &Path, wal: Wal) -> (f64, usize) {
    let segments = wal.segment_seqs().len();
    drop(wal);
    let bytes = segments as u64 * config().segment_bytes;
    evict(dir);
    let start = Instant::now();
    let wal = Wal::open(dir, config()).expect("reopen the log");
    let seconds = start.elapsed().as_secs_f64();
    drop(wal);
    (bytes as f64 / seconds, segments)
}

fn fresh(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_dir_all(&path);
    path
}

/// Runs every log measurement and adds its rows.
pub fn measure(dir: &Path, scale: Scale, raw: &RawLimits, table: &mut Table) {
    let raw_p50 = raw.fdatasync_4k.value_at_quantile(0.5) as f64;
    let raw_p99 = raw.fdatasync_4k.value_at_quantile(0.99) as f64;

    let path = fresh(dir, "log-qd1");
    let (latency, backend) = qd1_latency(&path, scale.latency_iterations);
    let _ = std::fs::remove_dir_all(&path);
    let p50_ratio = latency.value_at_quantile(0.5) as f64 / raw_p50;
    let p99_ratio = latency.value_at_quantile(0.99) as f64 / raw_p99;
    table.compare(
        &format!("log ({backend}): QD1 256 B append, submit, durable (p50 / p99)"),
        report::p50_p99(&latency),
        format!("{p50_ratio:.2} / {p99_ratio:.2}"),
        "≤ 1.25 / ≤ 2.0",
        Some(p50_ratio <= 1.25 && p99_ratio <= 2.0),
    );

    for partitions in [64, 1024] {
        let path = fresh(dir, "log-saturated");
        let (result, wal) = saturated(&path, partitions, 256, scale.saturated_run);
        drop(wal);
        let _ = std::fs::remove_dir_all(&path);
        table.compare(
            &format!(
                "log: saturated durable 256 B records, {partitions} partitions (commit p50 {})",
                report::micros(result.commit_latency.value_at_quantile(0.5))
            ),
            report::rate(result.records_per_second),
            format!(
                "{:.2} of raw bw",
                result.payload_bytes_per_second / raw.durable_write_bandwidth
            ),
            "≥ 2 M/s",
            Some(result.records_per_second >= 2e6),
        );
    }

    let path = fresh(dir, "log-bandwidth");
    let (result, wal) = saturated(&path, 64, 1024, scale.saturated_run);
    let ratio = result.payload_bytes_per_second / raw.durable_write_bandwidth;
    table.compare(
        &format!(
            "log: 1 KiB payload bandwidth, 64 partitions (commit p99 {})",
            report::micros(result.commit_latency.value_at_quantile(0.99))
        ),
        report::bandwidth(result.payload_bytes_per_second),
        format!("{ratio:.2}"),
        "≥ 0.7",
        Some(ratio >= 0.7),
    );

    let (scan, segments) = recovery(&path, wal);
    let _ = std::fs::remove_dir_all(&path);
    let ratio = scan / raw.read_bandwidth;
    table.compare(
        &format!("log: recovery scan, reopen of {segments} segments (cold cache)"),
        report::bandwidth(scan),
        format!("{ratio:.2}"),
        "≥ 0.6",
        Some(ratio >= 0.6),
    );
}

/// Criterion's view of the QD1 append (the figure the latency targets are about).
pub fn criterion_benches(criterion: &mut Criterion, dir: &Path) {
    let path = fresh(dir, "log-criterion");
    let mut wal = Wal::open(&path, config()).expect("open the log");
    let payload = payload(256);
    let mut index = 0u64;
    criterion.bench_function("log/append_256b_qd1", |bencher| {
        bencher.iter(|| {
            index += 1;
            let lsn = wal
                .append_entry(PartitionId(1), index, 1, &payload)
                .expect("append");
            wal.submit().expect("submit");
            wal.wait_durable(lsn).expect("durable");
        });
    });
    drop(wal);
    let _ = std::fs::remove_dir_all(&path);
}
