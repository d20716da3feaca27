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

#[path = "wal/backend.rs"]
mod backend;
#[path = "wal/log.rs"]
mod log;
#[path = "wal/raw.rs"]
mod raw;
#[path = "wal/report.rs"]
mod report;

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;

/// How long and how big each measurement is.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Iterations of each QD1 latency measurement.
    pub latency_iterations: u64,
    /// Bytes written (and read) by each bandwidth measurement.
    pub bandwidth_bytes: u64,
    /// Duration of each saturated-throughput run.
    pub saturated_run: Duration,
}

impl Scale {
    fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Smoke => Self {
                latency_iterations: 20,
                bandwidth_bytes: 8 << 20,
                saturated_run: Duration::from_millis(50),
            },
            Mode::Quick => Self {
                latency_iterations: 3_000,
                bandwidth_bytes: 512 << 20,
                saturated_run: Duration::from_secs(2),
            },
            Mode::Full => Self {
                latency_iterations: 20_000,
                bandwidth_bytes: 2 << 30,
                saturated_run: Duration::from_secs(8),
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

    let mut table = report::Table::new(&dir, mode == Mode::Quick);
    let raw = raw::measure(&dir, scale);
    raw.add_rows(&mut table);
    backend::measure(&dir, scale, &raw, &mut table);
    log::measure(&dir, scale, &raw, &mut table);
    table.print();

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    raw::criterion_benches(&mut criterion, &dir);
    backend::criterion_benches(&mut criterion, &dir);
    log::criterion_benches(&mut criterion, &dir);
    criterion.final_summary();

    if temp.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
