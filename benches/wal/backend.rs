//! The backends alone (no log on top): a QD1 durable 4 KiB write and a pipelined stream of
//! 256 KiB durable writes through each, to choose the io_uring default and to show what the
//! log adds on top of its backend.

use std::path::Path;
use std::time::Instant;

use criterion::Criterion;
use hdrhistogram::Histogram;
use kommander_wal::backend::{
    AlignedBuf, Backend, BackendChoice, Completion, SegmentFile, UringWriteMode, open_backend,
};

use crate::Scale;
use crate::raw::{self, BLOCK, MIB, RawLimits};
use crate::report::{self, Table};

/// The backends compared, with their names in the table.
pub fn choices() -> [(&'static str, BackendChoice); 3] {
    [
        (
            "io_uring O_DIRECT+RWF_DSYNC",
            BackendChoice::IoUring(UringWriteMode::DirectDsync),
        ),
        (
            "io_uring WRITE→FSYNC(DATASYNC)",
            BackendChoice::IoUring(UringWriteMode::LinkedDatasync),
        ),
        ("blocking pwrite+fdatasync", BackendChoice::Blocking),
    ]
}

/// A zero-filled file of `len` bytes opened through `backend`'s filesystem side.
fn prepared(backend: &dyn Backend, path: &Path, len: usize) -> SegmentFile {
    raw::zero_filled(path, len);
    backend
        .filesystem()
        .open(path)
        .expect("open through the backend")
}

fn wait_one(backend: &mut dyn Backend, completions: &mut Vec<Completion>) -> AlignedBuf {
    while completions.is_empty() {
        backend.reap(1, completions).expect("reap");
    }
    let completion = completions.pop().expect("one completion");
    completion.result.expect("durable write");
    completion.buf
}

/// QD1 durable 4 KiB writes through `backend`.
fn qd1(backend: &mut dyn Backend, file: &SegmentFile, iterations: u64) -> Histogram<u64> {
    let blocks = (16 * MIB / BLOCK) as u64;
    let mut latencies = raw::histogram();
    let mut completions = Vec::new();
    let mut buf = raw::pattern(BLOCK);
    let warm_up = (iterations / 10).max(10);
    for i in 0..warm_up + iterations {
        let start = Instant::now();
        backend
            .submit_durable_write(file, (i % blocks) * BLOCK as u64, buf, i)
            .expect("submit");
        buf = wait_one(backend, &mut completions);
        if i >= warm_up {
            raw::record(&mut latencies, start.elapsed());
        }
    }
    latencies
}

/// Durable 256 KiB writes, two in flight, over `bytes`: bytes per second.
fn pipelined(backend: &mut dyn Backend, file: &SegmentFile, bytes: usize) -> f64 {
    const CHUNK: usize = 256 * 1024;
    let mut spare: Vec<AlignedBuf> = (0..2).map(|_| raw::pattern(CHUNK)).collect();
    let mut completions = Vec::new();
    let start = Instant::now();
    for (i, offset) in (0..bytes).step_by(CHUNK).enumerate() {
        let buf = match spare.pop() {
            Some(buf) => buf,
            None => wait_one(backend, &mut completions),
        };
        backend
            .submit_durable_write(file, offset as u64, buf, i as u64)
            .expect("submit");
    }
    while backend.in_flight() > 0 || !completions.is_empty() {
        wait_one(backend, &mut completions);
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}

/// Measures every backend and adds its rows.
pub fn measure(dir: &Path, scale: Scale, raw: &RawLimits, table: &mut Table) {
    let raw_p50 = raw.fdatasync_4k.value_at_quantile(0.5) as f64;
    let raw_p99 = raw.fdatasync_4k.value_at_quantile(0.99) as f64;
    let bytes = (scale.bandwidth_bytes as usize / 2).max(MIB);
    for (name, choice) in choices() {
        let mut backend = open_backend(&choice, 2).expect("open backend");
        let path = dir.join("backend-latency");
        let file = prepared(backend.as_ref(), &path, 16 * MIB);
        let latencies = qd1(backend.as_mut(), &file, scale.latency_iterations);
        drop(file);
        let _ = std::fs::remove_file(&path);
        table.compare(
            &format!("backend {name}: 4 KiB durable write QD1 (p50 / p99)"),
            report::p50_p99(&latencies),
            format!(
                "{:.2} / {:.2}",
                latencies.value_at_quantile(0.5) as f64 / raw_p50,
                latencies.value_at_quantile(0.99) as f64 / raw_p99
            ),
            "(informational)",
            None,
        );

        let path = dir.join("backend-bandwidth");
        let file = prepared(backend.as_ref(), &path, bytes);
        let bandwidth = pipelined(backend.as_mut(), &file, bytes);
        drop(file);
        let _ = std::fs::remove_file(&path);
        table.compare(
            &format!("backend {name}: 256 KiB durable writes, 2 in flight"),
            report::bandwidth(bandwidth),
            format!("{:.2}", bandwidth / raw.durable_write_bandwidth),
            "(informational)",
            None,
        );
    }
}

/// Criterion's view of a QD1 durable 4 KiB write through the default io_uring mode.
pub fn criterion_benches(criterion: &mut Criterion, dir: &Path) {
    let mut backend = open_backend(&BackendChoice::IoUring(UringWriteMode::default()), 1)
        .expect("open the io_uring backend");
    let path = dir.join("backend-criterion");
    let file = prepared(backend.as_ref(), &path, 16 * MIB);
    let blocks = (16 * MIB / BLOCK) as u64;
    let mut buf = Some(raw::pattern(BLOCK));
    let mut completions = Vec::new();
    let mut next = 0u64;
    criterion.bench_function("backend/io_uring_durable_write_4k_qd1", |bencher| {
        bencher.iter(|| {
            let offset = (next % blocks) * BLOCK as u64;
            next += 1;
            let submitted = buf.take().expect("buffer back from the last write");
            backend
                .submit_durable_write(&file, offset, submitted, next)
                .expect("submit");
            buf = Some(wait_one(backend.as_mut(), &mut completions));
        });
    });
    drop(file);
    let _ = std::fs::remove_file(&path);
}
