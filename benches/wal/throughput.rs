//! Bandwidth and saturated throughput, interleaved in slices: the raw durable write, each
//! backend's pipelined writes and three saturated logs take turns (one slice each per round);
//! each figure is the median of its slices. Then the recovery scan of the biggest log, between
//! two raw read measurements.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kommander_wal::backend::{AlignedBuf, Backend, Completion, SegmentFile, open_backend};
use kommander_wal::{Lsn, PartitionId, Wal, Write};

use crate::latency::{backend_choices, wait_one};
use crate::raw::{self, MIB};
use crate::{Scale, log_config, payload};

/// The chunk of the backends' pipelined writes.
const BACKEND_CHUNK_BYTES: usize = 256 * 1024;

/// What a saturated log achieved over its slices.
pub struct LogFigures {
    /// Append-to-durable latency of each turn (ns).
    pub commit_latency: Histogram<u64>,
    /// Records per second of each slice.
    pub rates: Vec<f64>,
    payload_len: usize,
}

impl LogFigures {
    /// Median records per second over the slices.
    pub fn records_per_second(&self) -> f64 {
        median(&self.rates)
    }

    /// Median payload bytes per second over the slices.
    pub fn payload_bytes_per_second(&self) -> f64 {
        self.records_per_second() * self.payload_len as f64
    }
}

/// Every this many turns, each partition compacts its log to its last
/// [`RETAINED_ENTRIES`] entries (a Raft node checkpointing what it applied), so the log reaches
/// a steady state: reclaimed segments are recycled instead of new ones zero-filled.
const COMPACTION_INTERVAL_TURNS: u64 = 256;
/// Entries each partition keeps behind its last index when it compacts.
const RETAINED_ENTRIES: u64 = 256;

/// A saturated log: a shard loop appending one entry per partition per turn, compacting now
/// and then.
struct SaturatedLog {
    wal: Wal,
    dir: PathBuf,
    payload: Vec<u8>,
    next_index: Vec<u64>,
    turns: u64,
    figures: LogFigures,
}

impl SaturatedLog {
    fn open(dir: PathBuf, partitions: usize, payload_len: usize) -> Self {
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            wal: Wal::open(&dir, log_config()).expect("open the log"),
            dir,
            payload: payload(payload_len),
            next_index: vec![1; partitions],
            turns: 0,
            figures: LogFigures {
                commit_latency: raw::histogram(),
                rates: Vec::new(),
                payload_len,
            },
        }
    }

    /// Runs the loop for `run`, then waits until everything is durable.
    fn slice(&mut self, run: Duration) {
        let partitions = self.next_index.len() as u64;
        let mut writes = Vec::with_capacity(self.next_index.len());
        let mut turns: VecDeque<(Lsn, Instant)> = VecDeque::new();
        let mut records = 0u64;
        let start = Instant::now();
        while start.elapsed() < run {
            writes.clear();
            for (partition, index) in self.next_index.iter_mut().enumerate() {
                writes.push(Write::Entry {
                    partition: PartitionId(partition as u32),
                    index: *index,
                    term: 1,
                    payload: &self.payload,
                });
                *index += 1;
            }
            self.turns += 1;
            if self.turns.is_multiple_of(COMPACTION_INTERVAL_TURNS) {
                for (partition, index) in self.next_index.iter().enumerate() {
                    if *index > RETAINED_ENTRIES {
                        writes.push(Write::CompactTo {
                            partition: PartitionId(partition as u32),
                            index: *index - RETAINED_ENTRIES,
                            floor_meta: &[],
                        });
                    }
                }
            }
            let lsn = self.wal.append(&writes).expect("append");
            records += partitions;
            turns.push_back((lsn, Instant::now()));
            self.wal.submit().expect("submit");
            let durable = self.wal.poll_durable().expect("poll");
            while turns.front().is_some_and(|(lsn, _)| *lsn <= durable) {
                if let Some((_, appended)) = turns.pop_front() {
                    raw::record(&mut self.figures.commit_latency, appended.elapsed());
                }
            }
        }
        self.wal.sync().expect("sync");
        for (_, appended) in turns.drain(..) {
            raw::record(&mut self.figures.commit_latency, appended.elapsed());
        }
        self.figures
            .rates
            .push(records as f64 / start.elapsed().as_secs_f64());
    }

    /// Closes the log and removes its directory.
    fn finish(self) -> LogFigures {
        drop(self.wal);
        let _ = std::fs::remove_dir_all(&self.dir);
        self.figures
    }
}

/// The median of some rates (0 when empty).
pub fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Durable 256 KiB writes through a backend, two in flight, over its whole file.
struct PipelinedBackend {
    backend: Box<dyn Backend>,
    file_bytes: usize,
    file: SegmentFile,
    spare: Vec<AlignedBuf>,
    completions: Vec<Completion>,
    rates: Vec<f64>,
}

impl PipelinedBackend {
    fn slice(&mut self) {
        let start = Instant::now();
        for (i, offset) in (0..self.file_bytes)
            .step_by(BACKEND_CHUNK_BYTES)
            .enumerate()
        {
            let buf = match self.spare.pop() {
                Some(buf) => buf,
                None => wait_one(self.backend.as_mut(), &mut self.completions),
            };
            self.backend
                .submit_durable_write(&self.file, offset as u64, buf, i as u64)
                .expect("submit");
        }
        while self.backend.in_flight() > 0 {
            let buf = wait_one(self.backend.as_mut(), &mut self.completions);
            self.spare.push(buf);
        }
        self.rates
            .push(self.file_bytes as f64 / start.elapsed().as_secs_f64());
    }
}

/// Everything measured here.
pub struct Throughput {
    /// Durable sequential write, 1 MiB `O_DIRECT|O_DSYNC` `pwrite`s (bytes/s, median).
    pub raw_write: f64,
    /// Sequential 1 MiB `O_DIRECT` reads (bytes/s, mean of the reads around the recovery).
    pub raw_read: f64,
    /// Each backend's pipelined durable bandwidth (name, bytes/s).
    pub backends: Vec<(&'static str, f64)>,
    /// 256 B records, 64 partitions.
    pub log_64: LogFigures,
    /// 256 B records, 1024 partitions.
    pub log_1024: LogFigures,
    /// 1 KiB records, 64 partitions.
    pub log_1k: LogFigures,
    /// Recovery scan of `log_1k`: bytes of data segments per second of `Wal::open`.
    pub recovery: f64,
    /// Segments the recovery scanned.
    pub recovery_segments: usize,
}

fn raw_write_slice(file: &File, buf: &AlignedBuf, bytes: usize) -> f64 {
    let start = Instant::now();
    for offset in (0..bytes).step_by(MIB) {
        file.write_all_at(buf.as_slice(), offset as u64)
            .expect("durable 1 MiB pwrite");
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}

fn raw_read(path: &Path, bytes: usize) -> f64 {
    let file = raw::open(path, libc::O_DIRECT);
    let mut buf = AlignedBuf::with_capacity(MIB);
    buf.set_len(MIB);
    let start = Instant::now();
    for offset in (0..bytes).step_by(MIB) {
        file.read_exact_at(buf.as_mut_slice(), offset as u64)
            .expect("O_DIRECT 1 MiB read");
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}

/// Drops `dir`'s files from the page cache, so a reopen reads from the device.
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

/// Runs the slices and the recovery measurement.
pub fn measure(dir: &Path, scale: Scale) -> Throughput {
    let raw_bytes = scale.raw_file_bytes;
    let raw_path = raw::zero_filled(&dir.join("bw-raw"), raw_bytes);
    let raw_file = raw::open(&raw_path, libc::O_DIRECT | libc::O_DSYNC);
    let raw_buf = raw::pattern(MIB);
    let mut raw_rates = Vec::new();

    let choices = backend_choices();
    let mut backends: Vec<PipelinedBackend> = choices
        .iter()
        .enumerate()
        .map(|(i, (_, choice))| {
            let backend = open_backend(choice, 2).expect("open a backend");
            let path = raw::zero_filled(
                &dir.join(format!("bw-backend-{i}")),
                scale.backend_file_bytes,
            );
            let file = backend
                .filesystem()
                .open(&path)
                .expect("open through the backend");
            PipelinedBackend {
                backend,
                file_bytes: scale.backend_file_bytes,
                file,
                spare: (0..2).map(|_| raw::pattern(BACKEND_CHUNK_BYTES)).collect(),
                completions: Vec::new(),
                rates: Vec::new(),
            }
        })
        .collect();

    let mut log_64 = SaturatedLog::open(dir.join("bw-log-64"), 64, 256);
    let mut log_1024 = SaturatedLog::open(dir.join("bw-log-1024"), 1024, 256);
    let mut log_1k = SaturatedLog::open(dir.join("bw-log-1k"), 64, 1024);

    for _ in 0..scale.slices {
        raw_rates.push(raw_write_slice(&raw_file, &raw_buf, raw_bytes));
        for backend in &mut backends {
            backend.slice();
        }
        log_64.slice(scale.log_slice);
        log_1024.slice(scale.log_slice);
        log_1k.slice(scale.log_slice);
    }
    drop(raw_file);

    let backend_rates = choices
        .iter()
        .zip(&backends)
        .map(|((name, _), backend)| (*name, median(&backend.rates)))
        .collect();
    drop(backends);
    for i in 0..choices.len() {
        let _ = std::fs::remove_file(dir.join(format!("bw-backend-{i}")));
    }

    // Recovery of the 1 KiB log (the biggest), between two raw reads.
    let read_before = raw_read(&raw_path, raw_bytes);
    let segments = log_1k.wal.segment_seqs().len();
    let SaturatedLog {
        wal,
        dir: log_dir,
        figures: figures_1k,
        ..
    } = log_1k;
    drop(wal);
    evict(&log_dir);
    let start = Instant::now();
    let reopened = Wal::open(&log_dir, log_config()).expect("reopen the log");
    let seconds = start.elapsed().as_secs_f64();
    drop(reopened);
    let read_after = raw_read(&raw_path, raw_bytes);
    let recovery = (segments as u64 * log_config().segment_bytes) as f64 / seconds;
    let _ = std::fs::remove_dir_all(&log_dir);

    let _ = std::fs::remove_file(&raw_path);
    Throughput {
        raw_write: median(&raw_rates),
        raw_read: (read_before + read_after) / 2.0,
        backends: backend_rates,
        log_64: log_64.finish(),
        log_1024: log_1024.finish(),
        log_1k: figures_1k,
        recovery,
        recovery_segments: segments,
    }
}
