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

use hdrhistogram::Histogram;
use kommander_peers::{
    COMPACTION_INTERVAL_ROUNDS, Contender, Kommander, PARTITION_COUNTS, Payloads, RETAINED_ENTRIES,
    fresh_dir, interleaved, print_table, record, remove_dir,
};
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt};
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

/// raft-engine's side, driven like TiKV's store writer (see the crate docs above).
struct RaftEngine {
    engine: Engine,
    template: Entry,
    payloads: Payloads,
    next_index: Vec<u64>,
    batch: LogBatch,
    rounds: u64,
}

impl RaftEngine {
    fn open(dir: &Path, partitions: u64) -> Self {
        let config = Config {
            dir: dir.to_string_lossy().into_owned(),
            ..Config::default()
        };
        let template = Entry {
            term: 1,
            ..Entry::default()
        };
        Self {
            engine: Engine::open(config).expect("open raft-engine"),
            template,
            payloads: Payloads::new(),
            next_index: vec![1; partitions as usize],
            batch: LogBatch::with_capacity(RAFT_WRITE_SIZE_LIMIT + 64 * 1024),
            rounds: 0,
        }
    }
}

impl Contender for RaftEngine {
    fn slice(&mut self, run: Duration, commit_latency: &mut Histogram<u64>) -> f64 {
        let partitions = self.next_index.len() as u64;
        let mut records = 0u64;
        let mut pending = 0u64;
        let mut rounds: Vec<Instant> = Vec::new();
        let start = Instant::now();
        while start.elapsed() < run || pending > 0 {
            if start.elapsed() < run {
                // One round: every region's ready brings one entry.
                rounds.push(Instant::now());
                for (region, index) in self.next_index.iter_mut().enumerate() {
                    let mut entry = self.template.clone();
                    entry.index = *index;
                    entry.data = self.payloads.next_payload().into();
                    *index += 1;
                    self.batch
                        .add_entries::<EntryExt>(region as u64 + 1, &[entry])
                        .expect("add entries");
                }
                pending += partitions;
                self.rounds += 1;
                if self.rounds.is_multiple_of(COMPACTION_INTERVAL_ROUNDS) {
                    // TiKV's raft-log GC: a `Compact` command per region (its files are purged
                    // by `purge_expired_files` only past `purge-threshold`, 10 GiB by default).
                    for (region, index) in self.next_index.iter().enumerate() {
                        if *index > RETAINED_ENTRIES {
                            self.batch.add_command(
                                region as u64 + 1,
                                Command::Compact {
                                    index: *index - RETAINED_ENTRIES,
                                },
                            );
                        }
                    }
                }
                if self.batch.approximate_size() < RAFT_WRITE_SIZE_LIMIT {
                    continue;
                }
            }
            self.engine.write(&mut self.batch, true).expect("write");
            records += pending;
            pending = 0;
            for round in rounds.drain(..) {
                record(commit_latency, round.elapsed());
            }
        }
        records as f64 / start.elapsed().as_secs_f64()
    }
}

fn main() {
    let mut rows = Vec::new();
    for partitions in PARTITION_COUNTS {
        let our_dir = fresh_dir("kommander");
        let their_dir = fresh_dir("raft-engine");
        let mut ours = Kommander::open(&our_dir, partitions);
        let mut theirs = RaftEngine::open(&their_dir, partitions);
        let (our_outcome, their_outcome) = interleaved(&mut ours, &mut theirs);
        drop((ours, theirs));
        remove_dir(&our_dir);
        remove_dir(&their_dir);
        rows.push((partitions, our_outcome, their_outcome));
    }
    print_table("raft-engine", &rows);
}
