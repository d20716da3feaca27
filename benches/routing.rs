//! Key routing: [`PartitionMap::partition_for_key`] (a walk of the map's ranges) against
//! [`Routes::partition_for_key`] (a binary search over the routable ranges ordered by start,
//! what `Raft::partition_for_key` answers from), side by side at 4, 64 and 1024 ranges, and
//! the key's hash alone.
//!
//! Run: `cargo bench --bench routing`.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kommander_raft::node::partition_map::key_hash;
use kommander_raft::{PartitionMap, Routes};

/// Distinct keys looked up in turn.
const KEYS: usize = 4096;

fn routing(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("orders/{i}/line")).collect();
    let mut group = c.benchmark_group("routing/partition_for_key");
    for ranges in [4u32, 64, 1024] {
        let map = PartitionMap::initial(ranges).expect("a valid count");
        let routes = Routes::of(&map);
        let mut next = keys.iter().cycle();
        group.bench_function(BenchmarkId::new("map", ranges), |b| {
            b.iter(|| map.partition_for_key(next.next().expect("cycled")))
        });
        group.bench_function(BenchmarkId::new("routes", ranges), |b| {
            b.iter(|| routes.partition_for_key(next.next().expect("cycled")))
        });
    }
    let mut next = keys.iter().cycle();
    group.bench_function("key_hash", |b| {
        b.iter(|| key_hash(next.next().expect("cycled")))
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
