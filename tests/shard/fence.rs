//! The write fence on the shard (decision 0006 point 4): a write carries the generation its
//! caller routed with, and the partition's shard compares it with this node's committed map
//! when it proposes. Through the handle: a stale generation is refused `PartitionMoved` and the
//! partition's log does not grow, the default path (no generation) still writes. On a stepped
//! node whose map the test commits on partition 0 (as `map_open.rs` does): a map committed but
//! not yet followed by the partition's shard already fences its writes, in `Splitting` as in
//! `Active`, and a removed range takes no write, fenced or not, before its shard closes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::core::{PartitionId, Status, Ticket};
use kommander_raft::shard::partitions::{MapTable, PartitionMap, RangeState, SYSTEM_LOG_TYPE};
use kommander_raft::shard::{
    Application, ProposedEntry, Refusal, ReplicationResult, Request, ShardHost, ShardStepper,
    StateMachine, shard_of,
};
use kommander_raft::{ReplicateError, ReplicateOptions};
use tokio::sync::oneshot;

use crate::cluster::harness::TestCluster;
use crate::runtime::harness::Recorder;
use crate::runtime::stepped::{start_alone, stepped_config};

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
const P3: PartitionId = PartitionId(3);

#[tokio::test]
async fn a_stale_generation_is_refused_and_writes_nothing_the_default_path_writes() {
    // One node: nothing but these writes moves partition 1's log.
    let cluster = TestCluster::start_single(2, |_| {}).await;
    let raft = cluster.raft(cluster.leader(P1).await);
    let generation = raft.partition_generation(P1);
    assert_eq!(generation, 1);
    let default = ReplicateOptions::default();
    let written = raft
        .replicate_logs(P1, "t", "unfenced", default)
        .await
        .expect("the default path writes");
    let fenced = ReplicateOptions {
        expected_generation: generation,
        ..default
    };
    let current = raft
        .replicate_logs(P1, "t", "current", fenced)
        .await
        .expect("the current generation writes");
    assert_eq!(current.log_index.0, written.log_index.0 + 1);

    for stale in [generation + 1, u64::MAX] {
        let stale = ReplicateOptions {
            expected_generation: stale,
            ..default
        };
        let refused = raft.replicate_logs(P1, "t", "stale", stale).await;
        let moved = ReplicateError::PartitionMoved {
            partition: P1,
            generation,
        };
        assert_eq!(refused, Err(moved.clone()));
        assert_eq!(moved.status(), Status::PartitionMoved);
        let batch = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        assert_eq!(
            raft.replicate_batch(P1, "t", batch, stale).await,
            Err(moved)
        );
    }
    let status = raft.partition_status(P1).await.expect("partition 1");
    assert_eq!(
        status.last_index, current.log_index,
        "the stale writes wrote nothing"
    );
    raft.replicate_logs(P1, "t", "after", default)
        .await
        .expect("the default path still writes");
}

/// One stepped node of two shards, alone in its cluster, whose map the test commits.
struct Node {
    host: ShardHost,
    steppers: Vec<ShardStepper>,
    maps: Arc<MapTable>,
    now: Instant,
    next_ticket: u64,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = stepped_config(1, 1, dir.path());
        let maps = Arc::new(MapTable::default());
        let app = Application::new(Arc::new(Recorder::default()) as Arc<dyn StateMachine>)
            .with_maps(Arc::clone(&maps));
        let now = Instant::now();
        let (host, steppers) = start_alone(config, app, now);
        let mut node = Self {
            host,
            steppers,
            maps,
            now,
            next_ticket: 1,
            _dir: dir,
        };
        node.run_until("partition 0 leads", |n| n.leads(P0));
        node
    }

    fn leads(&self, partition: PartitionId) -> bool {
        self.host.leadership(partition).is_some_and(|l| l.leads())
    }

    /// Turns the shards `turned` (at the current virtual time) until `done` holds; with
    /// nothing to do, the clock jumps to their earliest next tick.
    fn run_shards_until(&mut self, turned: &[usize], what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..20_000 {
            if done(self) {
                return;
            }
            let mut busy = false;
            for &shard in turned {
                let stepper = &mut self.steppers[shard];
                busy |= stepper.turn(self.now);
                busy |= stepper.waiting_on_wal();
                assert_eq!(stepper.failure(), None, "shard {shard}");
            }
            if !busy {
                let next = turned
                    .iter()
                    .map(|&shard| self.steppers[shard].next_tick())
                    .min()
                    .expect("a shard");
                self.now += next
                    .saturating_duration_since(self.now)
                    .max(Duration::from_millis(1));
            }
        }
        panic!("{what}: not reached");
    }

    fn run_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let all: Vec<usize> = (0..self.steppers.len()).collect();
        self.run_shards_until(&all, what, done);
    }

    /// Queues a write of `payload` to `partition`, fenced by `generation` when there is one
    /// (as the handle sends it).
    fn write(
        &mut self,
        partition: PartitionId,
        generation: Option<u64>,
        log_type: &str,
        payload: Bytes,
    ) -> oneshot::Receiver<Result<ReplicationResult, Refusal>> {
        let (reply, answer) = oneshot::channel();
        let propose = Request::Propose {
            entries: smallvec::smallvec![ProposedEntry::new(log_type, &payload)],
            auto_commit: true,
            ticket: Ticket(self.next_ticket),
            reply,
        };
        self.next_ticket += 1;
        let request = match generation.and_then(std::num::NonZeroU64::new) {
            Some(expected_generation) => Request::Fenced {
                expected_generation,
                request: Box::new(propose),
            },
            None => propose,
        };
        self.host.send(partition, request).expect("queued");
        answer
    }

    /// Queues the write and runs every shard until it is answered.
    fn answer(
        &mut self,
        partition: PartitionId,
        generation: Option<u64>,
    ) -> Result<ReplicationResult, Refusal> {
        let answer = self.write(partition, generation, "t", Bytes::from_static(b"x"));
        self.answered(answer)
    }

    fn answered(
        &mut self,
        mut answer: oneshot::Receiver<Result<ReplicationResult, Refusal>>,
    ) -> Result<ReplicationResult, Refusal> {
        self.run_until("an answer", |_| !answer.is_empty());
        answer.try_recv().expect("answered")
    }

    /// Queues the write and turns its partition's shard once, before the shard's next tick:
    /// the turn drains the write but does not follow a newer map. The write must be refused
    /// in that turn (an accepted one would wait for its commit); returns the refusal.
    fn refused_at_once(
        &mut self,
        partition: PartitionId,
        generation: Option<u64>,
        what: &str,
    ) -> Refusal {
        let mut answer = self.write(partition, generation, "t", Bytes::from_static(b"x"));
        let stepper = &mut self.steppers[shard_of(partition, 2)];
        let before_tick = stepper.next_tick() - Duration::from_micros(1);
        stepper.turn(before_tick);
        match answer.try_recv() {
            Ok(Err(refusal)) => refusal,
            other => panic!("{what}: not refused in the turn that drained it: {other:?}"),
        }
    }

    /// Commits `map` on partition 0 turning shard 0 alone: the map is published in the
    /// committed view, and the other shard has not followed it (it has not turned since).
    fn commit_map_unfollowed(&mut self, map: &PartitionMap) {
        let payload = Bytes::from(map.encode());
        let mut answer = self.write(P0, None, SYSTEM_LOG_TYPE, payload);
        self.run_shards_until(&[0], "the map committed", |n| {
            n.maps.map().version == map.version && !answer.is_empty()
        });
        written(answer.try_recv().expect("answered"));
        assert!(
            self.maps.in_force().version < map.version,
            "not followed yet"
        );
    }

    /// Lets every shard follow the committed map.
    fn follow(&mut self) {
        let version = self.maps.map().version;
        self.run_until("the map in force", |n| n.maps.in_force().version == version);
    }

    fn last_index(&self, partition: PartitionId) -> u64 {
        self.host.log_progress(partition).last_index.0
    }
}

fn written(outcome: Result<ReplicationResult, Refusal>) -> ReplicationResult {
    let written = outcome.expect("written");
    assert_eq!(written.status, Status::Success);
    written
}

#[test]
fn the_shard_fences_writes_by_its_committed_map_before_it_follows_it() {
    let mut node = Node::start();
    // Partition 1 on shard 1, partition 2 on shard 0 (where partition 0 and its map live).
    assert_eq!(shard_of(P1, 2), 1);
    let mut map = PartitionMap::initial(2).expect("a map");
    node.commit_map_unfollowed(&map);
    node.follow();
    node.run_until("partition 1 leads", |n| n.leads(P1));
    written(node.answer(P1, Some(1)));
    assert_eq!(node.answer(P1, Some(2)), Err(Refusal::NotHosted), "ahead");
    let last = node.last_index(P1);

    // Split phase 1: partition 1 keeps the lower half at generation 2, partition 3 (shard 1)
    // takes the upper half; both Splitting. Shard 1 fences by it before it follows it.
    let end = map.partitions[0].end;
    let half = end / 2;
    map.partitions[0].end = half;
    map.partitions[0].generation = 2;
    map.partitions[0].state = RangeState::Splitting;
    let mut upper = map.partitions[0].clone();
    upper.partition_id = P3;
    upper.start = half + 1;
    upper.end = end;
    upper.generation = 1;
    map.partitions.push(upper);
    map.version = 2;
    node.commit_map_unfollowed(&map);
    let stale = node.refused_at_once(P1, Some(1), "stale, Splitting");
    assert_eq!(stale, Refusal::NotHosted);
    assert_eq!(node.last_index(P1), last, "the refused write wrote nothing");
    assert_eq!(node.maps.in_force().version, 1, "shard 1 has not followed");
    written(node.answer(P1, Some(2)));
    written(node.answer(P1, None));
    node.follow();

    // Partition 1 removed, partition 3 takes its range back: before shard 1 closes
    // partition 1, its writes are refused, fenced (even by the tombstone's generation) or not.
    map.partitions[0].state = RangeState::Removed;
    map.partitions[0].generation = 3;
    map.partitions[2].start = 0;
    map.partitions[2].state = RangeState::Active;
    map.partitions[2].generation = 2;
    map.version = 3;
    node.commit_map_unfollowed(&map);
    let last = node.last_index(P1);
    let unfenced = node.refused_at_once(P1, None, "unfenced, removed");
    assert_eq!(unfenced, Refusal::NotHosted);
    let fenced = node.refused_at_once(P1, Some(3), "the tombstone's generation");
    assert_eq!(fenced, Refusal::NotHosted);
    assert_eq!(
        node.last_index(P1),
        last,
        "the refused writes wrote nothing"
    );
    assert_eq!(node.maps.in_force().version, 2, "shard 1 has not followed");
    node.follow();
    assert_eq!(node.answer(P1, None), Err(Refusal::NotHosted), "closed");
    // Partition 0, which no map holds, takes unfenced writes throughout.
    written(node.answer(P0, None));
}
