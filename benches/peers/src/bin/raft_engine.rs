//! kommander-wal against `raft-engine` (TiKV's multi-Raft log engine), same workload, one run.
//!
//! ```text
//! cd benches/peers && cargo run --release --bin raft_engine -- --quick
//! ```
//!
//! raft-engine is driven the way TiKV's store writer drives it (`raftstore` async I/O): the
//! writer collects the ready entries of many regions into one `LogBatch` (`add_entries` per
//! region per ready) until the batch reaches TiKV's `raft-write-size-limit` (1 MiB), then calls
//! `engine.write(&mut batch, true)` (sync on) and starts the next. Engine configuration:
//! raft-engine's defaults, which are TiKV's (format V2, log recycling, 8 KiB compression
//! threshold, 128 MiB files).
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use kommander_peers::{
    Outcome, PARTITION_COUNTS, fresh_dir, histogram, kommander, payload, print_table, record,
    remove_dir, run_length,
};
use raft_engine::{Config, Engine, LogBatch, MessageExt};
use raft_proto::eraftpb::Entry;

/// TiKV's `raftstore.raft-write-size-limit` default: a store writer's batch stops growing here.
const RAFT_WRITE_SIZE_LIMIT: usize = 1 << 20;

#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;

    fn index(entry: &Entry) -> u64 {
        entry.index
    }
}

fn raft_engine(dir: &Path, partitions: u64, run: Duration) -> Outcome {
    let config = Config {
        dir: dir.to_string_lossy().into_owned(),
        ..Config::default()
    };
    let engine = Engine::open(config).expect("open raft-engine");
    let mut template = Entry::default();
    template.term = 1;
    template.data = payload().into();
    let mut next_index = vec![1u64; partitions as usize];
    let mut batch = LogBatch::with_capacity(RAFT_WRITE_SIZE_LIMIT + 64 * 1024);
    let mut commit_latency = histogram();
    let mut records = 0u64;
    let mut pending = 0u64;
    let mut rounds: Vec<Instant> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < run {
        // One round: every region's ready brings one entry.
        rounds.push(Instant::now());
        for (region, index) in next_index.iter_mut().enumerate() {
            let mut entry = template.clone();
            entry.index = *index;
            *index += 1;
            batch
                .add_entries::<EntryExt>(region as u64 + 1, &[entry])
                .expect("add entries");
        }
        pending += partitions;
        if batch.approximate_size() >= RAFT_WRITE_SIZE_LIMIT {
            engine.write(&mut batch, true).expect("write");
            records += pending;
            pending = 0;
            for round in rounds.drain(..) {
                record(&mut commit_latency, round.elapsed());
            }
        }
    }
    if pending > 0 {
        engine.write(&mut batch, true).expect("write");
        records += pending;
        for round in rounds.drain(..) {
            record(&mut commit_latency, round.elapsed());
        }
    }
    Outcome {
        records_per_second: records as f64 / start.elapsed().as_secs_f64(),
        commit_latency,
    }
}

fn main() {
    let run = run_length();
    let mut rows = Vec::new();
    for partitions in PARTITION_COUNTS {
        let dir = fresh_dir("kommander");
        let ours = kommander(&dir, partitions, run);
        remove_dir(&dir);
        let dir = fresh_dir("raft-engine");
        let theirs = raft_engine(&dir, partitions, run);
        remove_dir(&dir);
        rows.push((partitions, ours, theirs));
    }
    print_table("raft-engine", &rows);
}
