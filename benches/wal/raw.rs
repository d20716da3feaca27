//! Helpers shared by the measurements (files, buffers, histograms) and criterion's view of the
//! raw durable write.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use hdrhistogram::Histogram;
use kommander_wal::backend::AlignedBuf;

/// 1 MiB: the chunk of the bandwidth measurements.
pub const MIB: usize = 1 << 20;
/// The block of the latency measurements.
pub const BLOCK: usize = 4096;
/// Size of the file each 4 KiB latency measurement cycles through.
pub const LATENCY_FILE_BYTES: usize = 16 * MIB;

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

/// Opens `path` read-write with extra `open(2)` flags.
pub fn open(path: &Path, flags: i32) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
        .unwrap_or_else(|error| panic!("open {} with flags {flags:#x}: {error}", path.display()))
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
