//! WAL benchmarks: the raw limits of the device first, then the log, in one run on one
//! directory, each log figure printed as a ratio to its raw limit and to the issue's target.
//!
//! ```text
//! cargo bench --bench wal -- --quick     # the table with short runs, then criterion --quick
//! cargo bench --bench wal                # the table with longer runs, then criterion
//! KOMMANDER_BENCH_DIR=/mnt/nvme/x cargo bench --bench wal -- --quick   # another device
//! ```
//!
//! The directory (default: a fresh one under the system temp dir) must be on the device you
//! want to measure; a tmpfs measures memory, not a disk. Numbers and their meaning are recorded
//! in `docs/benchmarks.md`.
#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

#[path = "wal/latency.rs"]
mod latency;
#[path = "wal/raw.rs"]
mod raw;
#[path = "wal/report.rs"]
mod report;
#[path = "wal/throughput.rs"]
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;

/// How long and how big each measurement is.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Iterations of each QD1 latency measurement.
    pub latency_iterations: u64,
    /// Rounds of the throughput slices.
    pub slices: usize,
    /// Duration of each saturated-log slice.
    pub log_slice: Duration,
    /// Bytes of the raw bandwidth file (written whole by each raw slice, read whole twice).
    pub raw_file_bytes: usize,
    /// Bytes of each backend's bandwidth file (written whole by each of its slices).
    pub backend_file_bytes: usize,
}

impl Scale {
    fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Smoke => Self {
                latency_iterations: 25,
                slices: 1,
                log_slice: Duration::from_millis(20),
                raw_file_bytes: 8 << 20,
                backend_file_bytes: 4 << 20,
            },
            Mode::Quick => Self {
                latency_iterations: 2_000,
                slices: 5,
                log_slice: Duration::from_millis(400),
                raw_file_bytes: 256 << 20,
                backend_file_bytes: 128 << 20,
            },
            Mode::Full => Self {
                latency_iterations: 10_000,
                slices: 15,
                log_slice: Duration::from_secs(1),
                raw_file_bytes: 512 << 20,
                backend_file_bytes: 256 << 20,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `cargo test --benches`: every path once, tiny sizes, no table claims.
    Smoke,
    Quick,
    Full,
}

/// The directory every measurement of this run uses (kept until the run ends).
fn bench_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("KOMMANDER_BENCH_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir).join(format!("kommander-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create KOMMANDER_BENCH_DIR/kommander-bench-PID");
            (dir, None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("kommander-bench-")
                .tempdir()
                .expect("create a temporary bench directory");
            (temp.path().to_path_buf(), Some(temp))
        }
    }
}

/// The log configuration every measurement uses: the defaults (io_uring when permitted,
/// 64 MiB segments, 1 MiB frames, 2 frames in flight).
pub fn log_config() -> kommander_wal::WalConfig {
    kommander_wal::WalConfig::default()
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not (criterion's convention).
    let mode = if !args.iter().any(|arg| arg == "--bench") {
        Mode::Smoke
    } else if args.iter().any(|arg| arg == "--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    let scale = Scale::for_mode(mode);
    let (dir, temp) = bench_dir();

    let latencies = latency::measure(&dir, scale.latency_iterations);
    let throughput = throughput::measure(&dir, scale);
    let mode_name = match mode {
        Mode::Smoke => "smoke (cargo test --benches: tiny sizes, numbers mean nothing)",
        Mode::Quick => "quick",
        Mode::Full => "full",
    };
    report::print(&dir, mode_name, &latencies, &throughput);

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    raw::criterion_benches(&mut criterion, &dir);
    latency::criterion_benches(&mut criterion, &dir);
    criterion.final_summary();

    if temp.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
