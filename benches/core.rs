//! The core benchmark: three replicas of one partition in one process, messages passed in
//! memory, no I/O — committed 16-byte entries per second on one core, with batching.
//!
//! Run: `cargo bench --bench core`. The same work on raft-rs, side by side and with the ratio,
//! is `benches/peers`' `core_vs_raftrs` binary (see `docs/benchmarks.md`).

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kommander_raft::sim::MemoryCluster;

/// Payload size of every entry.
const ENTRY_BYTES: usize = 16;

fn commit_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("core/commit_16B_3_replicas");
    for batch in [1usize, 16, 256] {
        let payloads = vec![Bytes::from_static(&[0x5A; ENTRY_BYTES]); batch];
        let mut cluster = MemoryCluster::new(3).expect("three replicas elect a leader");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("batch", batch),
            &payloads,
            |b, payloads| {
                b.iter(|| cluster.commit(payloads).expect("the leader commits"));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, commit_throughput);
criterion_main!(benches);
