//! The raw limits of the device under the bench directory, measured with plain syscalls:
//! the denominators of every ratio in the table.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use kommander_wal::backend::AlignedBuf;

use crate::Scale;
use crate::report::{self, Table};

/// 1 MiB: the chunk of the bandwidth measurements.
pub const MIB: usize = 1 << 20;
/// The block of the latency measurements.
pub const BLOCK: usize = 4096;
/// Size of the file the 4 KiB latency measurements cycle through.
const LATENCY_FILE_BYTES: usize = 16 * MIB;

/// What the device can do, measured in this run.
pub struct RawLimits {
    /// 4 KiB `pwrite` + `fdatasync`, QD1, zero-filled file (ns).
    pub fdatasync_4k: Histogram<u64>,
    /// 4 KiB `pwrite` on an `O_DIRECT|O_DSYNC` file, QD1, zero-filled (ns).
    pub direct_dsync_4k: Histogram<u64>,
    /// 1 MiB `pwrite`s on an `O_DIRECT|O_DSYNC` file: every write durable (bytes/s).
    pub durable_write_bandwidth: f64,
    /// 1 MiB `O_DIRECT` reads of the same file, cold (bytes/s).
    pub read_bandwidth: f64,
}

/// A histogram of nanoseconds from 1 ns to 100 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Records one duration.
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(nanos.max(1));
}

/// A buffer of `len` bytes (a multiple of 4096) filled with a pattern.
pub fn pattern(len: usize) -> AlignedBuf {
    let mut buf = AlignedBuf::with_capacity(len);
    buf.set_len(len);
    for (i, byte) in buf.as_mut_slice().iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    buf
}

/// Creates `path` and writes `len` zero bytes to it, durably (data and directory entry): the
/// state of a prepared or recycled segment.
pub fn zero_filled(path: &Path, len: usize) -> PathBuf {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create a bench file");
    let zeros = vec![0u8; MIB];
    let mut offset = 0;
    while offset < len {
        let chunk = (len - offset).min(MIB);
        file.write_all_at(&zeros[..chunk], offset as u64)
            .expect("zero-fill a bench file");
        offset += chunk;
    }
    file.sync_all().expect("sync a bench file");
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .expect("sync the bench directory");
    }
    path.to_path_buf()
}

fn open(path: &Path, flags: i32) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
        .unwrap_or_else(|error| panic!("open {} with flags {flags:#x}: {error}", path.display()))
}

/// QD1 durable 4 KiB writes cycling through a zero-filled file.
fn durable_4k(path: &Path, flags: i32, sync: bool, iterations: u64) -> Histogram<u64> {
    let file = open(path, flags);
    let buf = pattern(BLOCK);
    let blocks = (LATENCY_FILE_BYTES / BLOCK) as u64;
    let mut latencies = histogram();
    let warm_up = (iterations / 10).max(10);
    for i in 0..warm_up + iterations {
        let offset = (i % blocks) * BLOCK as u64;
        let start = Instant::now();
        file.write_all_at(buf.as_slice(), offset).expect("pwrite");
        if sync {
            file.sync_data().expect("fdatasync");
        }
        if i >= warm_up {
            record(&mut latencies, start.elapsed());
        }
    }
    latencies
}

/// Measures the raw limits in `dir`.
pub fn measure(dir: &Path, scale: Scale) -> RawLimits {
    let latency_file = zero_filled(&dir.join("raw-latency"), LATENCY_FILE_BYTES);
    let fdatasync_4k = durable_4k(&latency_file, 0, true, scale.latency_iterations);
    let direct_dsync_4k = durable_4k(
        &latency_file,
        libc::O_DIRECT | libc::O_DSYNC,
        false,
        scale.latency_iterations,
    );
    let _ = std::fs::remove_file(&latency_file);

    let bytes = scale.bandwidth_bytes as usize;
    let bandwidth_file = zero_filled(&dir.join("raw-bandwidth"), bytes);
    let buf = pattern(MIB);
    let file = open(&bandwidth_file, libc::O_DIRECT | libc::O_DSYNC);
    let start = Instant::now();
    for offset in (0..bytes).step_by(MIB) {
        file.write_all_at(buf.as_slice(), offset as u64)
            .expect("durable 1 MiB pwrite");
    }
    let durable_write_bandwidth = bytes as f64 / start.elapsed().as_secs_f64();
    drop(file);

    let file = open(&bandwidth_file, libc::O_DIRECT);
    let mut read_buf = AlignedBuf::with_capacity(MIB);
    read_buf.set_len(MIB);
    let start = Instant::now();
    for offset in (0..bytes).step_by(MIB) {
        file.read_exact_at(read_buf.as_mut_slice(), offset as u64)
            .expect("O_DIRECT 1 MiB read");
    }
    let read_bandwidth = bytes as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&bandwidth_file);

    RawLimits {
        fdatasync_4k,
        direct_dsync_4k,
        durable_write_bandwidth,
        read_bandwidth,
    }
}

impl RawLimits {
    /// The raw rows of the table.
    pub fn add_rows(&self, table: &mut Table) {
        table.raw(
            "raw 4 KiB pwrite+fdatasync QD1, zero-filled (p50 / p99)",
            report::p50_p99(&self.fdatasync_4k),
        );
        table.raw(
            "raw 4 KiB pwrite O_DIRECT|O_DSYNC QD1, zero-filled (p50 / p99)",
            report::p50_p99(&self.direct_dsync_4k),
        );
        table.raw(
            "raw durable sequential write, 1 MiB O_DIRECT|O_DSYNC",
            report::bandwidth(self.durable_write_bandwidth),
        );
        table.raw(
            "raw sequential read, 1 MiB O_DIRECT",
            report::bandwidth(self.read_bandwidth),
        );
    }
}

/// Criterion's view of the raw durable 4 KiB write (the denominator of the QD1 figures).
pub fn criterion_benches(criterion: &mut Criterion, dir: &Path) {
    let path = zero_filled(&dir.join("raw-criterion"), LATENCY_FILE_BYTES);
    let file = open(&path, 0);
    let buf = pattern(BLOCK);
    let blocks = (LATENCY_FILE_BYTES / BLOCK) as u64;
    let mut next = 0u64;
    criterion.bench_function("raw/pwrite_fdatasync_4k_qd1", |bencher| {
        bencher.iter(|| {
            let offset = (next % blocks) * BLOCK as u64;
            next += 1;
            file.write_all_at(buf.as_slice(), offset).expect("pwrite");
            file.sync_data().expect("fdatasync");
        });
    });
    drop(file);
    let _ = std::fs::remove_file(&path);
}
