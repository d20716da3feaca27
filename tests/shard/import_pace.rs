//! The pace of a split's import (decision 0006, amendment point 3; `shard/worker/import.rs`):
//! the target's leader keeps at most `snapshot.chunks_in_flight_max` import chunks proposed
//! and uncommitted, and tops its window up as they commit, on every turn of the shard loop,
//! not only on its ticks. On one stepped node (virtual time, a turn after every durable write)
//! an import of many windows completes within a tick or two of its begin; topped up on ticks
//! alone it would take a tick per window.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use bytes::Bytes;
use kommander_raft::core::{LogIndex, PartitionId, Ticket};
use kommander_raft::shard::partitions::{MapTable, PartitionMap, SYSTEM_LOG_TYPE};
use kommander_raft::shard::{
    Application, LogEntry, ProposedEntry, RangeTransfer, Request, ShardStepper, SnapshotExport,
    SnapshotImport, SnapshotPoint, StateMachine, StateTransfer,
};

use crate::runtime::stepped::{start_alone, stepped_config};

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
const P2: PartitionId = PartitionId(2);
/// The import's chunks, and how many may be uncommitted at once.
const CHUNK_BYTES: usize = 1024;
const WINDOW: usize = 2;
/// The export: 32 windows.
const CHUNKS: usize = 64;

/// What the target's application saw of the import.
#[derive(Default)]
struct Seen {
    begun: bool,
    chunks: usize,
    bytes: usize,
    ended: bool,
}

/// An application whose range export is `CHUNKS` chunks of bytes, and whose import counts.
#[derive(Default)]
struct Pace {
    seen: Mutex<Seen>,
}

impl Pace {
    fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().expect("seen"))
    }
}

impl StateMachine for Pace {
    fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
}

impl StateTransfer for Pace {
    fn supports(&self, _: PartitionId) -> bool {
        false
    }
    fn export(&self, _: PartitionId, _: SnapshotPoint) -> io::Result<Box<dyn SnapshotExport>> {
        Err(io::Error::other("no snapshots"))
    }
    fn import(&self, _: PartitionId, _: SnapshotPoint) -> io::Result<Box<dyn SnapshotImport>> {
        Err(io::Error::other("no snapshots"))
    }
    fn export_range(&self, _: &RangeTransfer) -> io::Result<Option<Box<dyn SnapshotExport>>> {
        Ok(Some(Box::new(Bytes::from(vec![7u8; CHUNKS * CHUNK_BYTES]))))
    }
    fn import_range_begin(&self, _: PartitionId, _: LogIndex, _: &RangeTransfer) -> io::Result<()> {
        *self.seen.lock().expect("seen") = Seen {
            begun: true,
            ..Seen::default()
        };
        Ok(())
    }
    fn import_range_chunk(
        &self,
        _: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
        data: &[u8],
    ) -> io::Result<()> {
        let mut seen = self.seen.lock().expect("seen");
        seen.chunks += 1;
        seen.bytes += data.len();
        Ok(())
    }
    fn import_range_end(&self, _: PartitionId, _: LogIndex, _: &RangeTransfer) -> io::Result<()> {
        self.seen.lock().expect("seen").ended = true;
        Ok(())
    }
}

#[test]
fn an_import_tops_its_window_up_as_chunks_commit_not_once_per_tick() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = stepped_config(1, 1, dir.path());
    config.snapshot.chunk_bytes = CHUNK_BYTES;
    config.snapshot.chunks_in_flight_max = WINDOW;
    let tick = config.tick_interval;
    let maps = Arc::new(MapTable::default());
    let pace = Arc::new(Pace::default());
    let app = Application::new(Arc::clone(&pace) as Arc<dyn StateMachine>)
        .with_transfer(Arc::clone(&pace) as Arc<dyn StateTransfer>)
        .with_maps(Arc::clone(&maps));
    let mut now = Instant::now();
    let (host, mut steppers) = start_alone(config, app, now);
    // Turns every shard while any has work; with none, the clock jumps to the next tick.
    let mut run_until = |what: &str, done: &dyn Fn() -> bool| -> Instant {
        for _ in 0..100_000 {
            if done() {
                return now;
            }
            let mut busy = false;
            for stepper in &mut steppers {
                busy |= stepper.turn(now) | stepper.waiting_on_wal();
                assert_eq!(stepper.failure(), None);
            }
            if !busy {
                let next = steppers.iter().map(ShardStepper::next_tick).min();
                let wait = next.expect("a shard").saturating_duration_since(now);
                now += wait.max(Duration::from_millis(1));
            }
        }
        panic!("{what}: not reached");
    };
    let leads = |p| host.leadership(p).is_some_and(|l| l.leads());
    run_until("partition 0 leads", &|| leads(P0));
    // The maps are committed on partition 0 by hand, as the handle's changes would be.
    let commit = |map: &PartitionMap| {
        let (reply, answer) = oneshot::channel();
        let propose = Request::Propose {
            entries: smallvec::smallvec![ProposedEntry::new(SYSTEM_LOG_TYPE, &map.encode())],
            auto_commit: true,
            ticket: Ticket(map.version),
            reply,
        };
        host.send(P0, propose).expect("queued");
        answer
    };
    let map = PartitionMap::initial(1).expect("a map");
    let _first = commit(&map);
    run_until("partition 1 leads", &|| leads(P1));

    // Split phase 1: partition 2 imports the upper half of partition 1's range.
    let map = map.split_phase_1(P1, None, Some(P2)).expect("phase 1");
    let _phase_one = commit(&map);
    let begun = run_until("the import begun", &|| pace.seen(|s| s.begun));
    let ended = run_until("the import ended", &|| pace.seen(|s| s.ended));
    let (chunks, bytes) = pace.seen(|s| (s.chunks, s.bytes));
    assert_eq!((chunks, bytes), (CHUNKS, CHUNKS * CHUNK_BYTES));
    let ticks = ended.duration_since(begun).as_nanos() / tick.as_nanos();
    assert!(
        ticks <= 2,
        "{CHUNKS} chunks in windows of {WINDOW} took {ticks} ticks: the window was topped up \
         on ticks only"
    );
}
