//! QD1 durable latency, interleaved: the raw syscalls, each backend and the log take turns in
//! blocks of a few operations, so every contender sees the same machine (on a shared VM the
//! background load changes from second to second; measuring one after the other would compare
//! different moments, not different code).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use criterion::Criterion;
use hdrhistogram::Histogram;
use kommander_wal::backend::{
    AlignedBuf, Backend, BackendChoice, Completion, SegmentFile, UringWriteMode, open_backend,
};
use kommander_wal::{PartitionId, Wal};

use crate::raw::{self, BLOCK, LATENCY_FILE_BYTES};
use crate::{log_config, payload};

/// Operations a contender does before the next takes its turn.
const TURN_OPERATIONS: u64 = 5;

/// The backends compared, with their names in the table.
pub fn backend_choices() -> [(&'static str, BackendChoice); 4] {
    [
        (
            "io_uring O_DIRECT+RWF_DSYNC",
            BackendChoice::IoUring(UringWriteMode::DirectDsync),
        ),
        (
            "io_uring WRITE→FSYNC(DATASYNC)",
            BackendChoice::IoUring(UringWriteMode::LinkedDatasync),
        ),
        (
            "io_uring O_DIRECT WRITE→FSYNC(DATASYNC)",
            BackendChoice::IoUring(UringWriteMode::LinkedDirectDatasync),
        ),
        ("blocking pwrite+fdatasync", BackendChoice::Blocking),
    ]
}

/// One thing that makes one record durable per step.
enum Contender {
    Raw {
        file: File,
        buf: AlignedBuf,
        sync: bool,
        next: u64,
    },
    Backend {
        backend: Box<dyn Backend>,
        file: SegmentFile,
        buf: Option<AlignedBuf>,
        completions: Vec<Completion>,
        next: u64,
    },
    Log {
        wal: Box<Wal>,
        payload: Vec<u8>,
        index: u64,
    },
}

/// Waits for the one write in flight and returns its buffer.
pub fn wait_one(backend: &mut dyn Backend, completions: &mut Vec<Completion>) -> AlignedBuf {
    while completions.is_empty() {
        backend.reap(1, completions).expect("reap");
    }
    let completion = completions.pop().expect("one completion");
    completion.result.expect("durable write");
    completion.buf
}

impl Contender {
    fn raw(path: &Path, flags: i32, sync: bool) -> Self {
        raw::zero_filled(path, LATENCY_FILE_BYTES);
        Self::Raw {
            file: raw::open(path, flags),
            buf: raw::pattern(BLOCK),
            sync,
            next: 0,
        }
    }

    fn backend(path: &Path, choice: &BackendChoice) -> Self {
        let backend = open_backend(choice, 1).expect("open a backend");
        raw::zero_filled(path, LATENCY_FILE_BYTES);
        let file = backend
            .filesystem()
            .open(path)
            .expect("open through the backend");
        Self::Backend {
            backend,
            file,
            buf: Some(raw::pattern(BLOCK)),
            completions: Vec::new(),
            next: 0,
        }
    }

    fn log(dir: &Path) -> Self {
        Self::Log {
            wal: Box::new(Wal::open(dir, log_config()).expect("open the log")),
            payload: payload(256),
            index: 0,
        }
    }

    /// One durable operation.
    fn step(&mut self) {
        let blocks = (LATENCY_FILE_BYTES / BLOCK) as u64;
        match self {
            Self::Raw {
                file,
                buf,
                sync,
                next,
            } => {
                file.write_all_at(buf.as_slice(), (*next % blocks) * BLOCK as u64)
                    .expect("pwrite");
                if *sync {
                    file.sync_data().expect("fdatasync");
                }
                *next += 1;
            }
            Self::Backend {
                backend,
                file,
                buf,
                completions,
                next,
            } => {
                let submitted = buf.take().expect("the buffer is back");
                backend
                    .submit_durable_write(file, (*next % blocks) * BLOCK as u64, submitted, *next)
                    .expect("submit");
                *buf = Some(wait_one(backend.as_mut(), completions));
                *next += 1;
            }
            Self::Log {
                wal,
                payload,
                index,
            } => {
                *index += 1;
                let lsn = wal
                    .append_entry(PartitionId(1), *index, 1, payload)
                    .expect("append");
                wal.submit().expect("submit");
                wal.wait_durable(lsn).expect("durable");
            }
        }
    }
}

/// QD1 latency histograms (ns) of every contender, from one interleaved run.
pub struct Latencies {
    /// 4 KiB `pwrite` + `fdatasync` into a zero-filled file.
    pub raw_fdatasync: Histogram<u64>,
    /// 4 KiB `pwrite` on an `O_DIRECT|O_DSYNC` file, zero-filled.
    pub raw_direct_dsync: Histogram<u64>,
    /// 4 KiB durable write through each backend (name, histogram).
    pub backends: Vec<(&'static str, Histogram<u64>)>,
    /// 256 B append + submit + wait until durable, through the log.
    pub log: Histogram<u64>,
    /// The backend the log chose.
    pub log_backend: &'static str,
}

/// Measures every contender `iterations` times, interleaved.
pub fn measure(dir: &Path, iterations: u64) -> Latencies {
    let mut contenders = vec![
        Contender::raw(&dir.join("lat-raw-fdatasync"), 0, true),
        Contender::raw(
            &dir.join("lat-raw-direct"),
            libc::O_DIRECT | libc::O_DSYNC,
            false,
        ),
    ];
    let choices = backend_choices();
    for (i, (_, choice)) in choices.iter().enumerate() {
        contenders.push(Contender::backend(
            &dir.join(format!("lat-backend-{i}")),
            choice,
        ));
    }
    let log_dir = dir.join("lat-log");
    let _ = std::fs::remove_dir_all(&log_dir);
    contenders.push(Contender::log(&log_dir));
    let log_backend = match contenders.last() {
        Some(Contender::Log { wal, .. }) => wal.backend_name(),
        _ => "?",
    };

    let mut histograms: Vec<Histogram<u64>> = contenders.iter().map(|_| raw::histogram()).collect();
    let turns = iterations.div_ceil(TURN_OPERATIONS);
    // The first turn of every contender is a warm-up.
    for turn in 0..=turns {
        for (contender, histogram) in contenders.iter_mut().zip(&mut histograms) {
            for _ in 0..TURN_OPERATIONS {
                let start = Instant::now();
                contender.step();
                if turn > 0 {
                    raw::record(histogram, start.elapsed());
                }
            }
        }
    }
    drop(contenders);
    for name in ["lat-raw-fdatasync", "lat-raw-direct"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for i in 0..choices.len() {
        let _ = std::fs::remove_file(dir.join(format!("lat-backend-{i}")));
    }
    let _ = std::fs::remove_dir_all(&log_dir);

    let mut histograms = histograms.into_iter();
    let mut next = || histograms.next().expect("one histogram per contender");
    Latencies {
        raw_fdatasync: next(),
        raw_direct_dsync: next(),
        backends: choices.iter().map(|(name, _)| (*name, next())).collect(),
        log: next(),
        log_backend,
    }
}

/// Criterion's view of the QD1 append (the figure the latency targets are about).
pub fn criterion_benches(criterion: &mut Criterion, dir: &Path) {
    let log_dir = dir.join("criterion-log");
    let _ = std::fs::remove_dir_all(&log_dir);
    let mut log = Contender::log(&log_dir);
    criterion.bench_function("log/append_256b_qd1", |bencher| {
        bencher.iter(|| log.step());
    });
    drop(log);
    let _ = std::fs::remove_dir_all(&log_dir);
}
