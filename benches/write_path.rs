//! The write path's own cost, without threads, clocks or a real disk: three nodes' real shard
//! loops (`ShardHost::start_stepped`, the code that ships) turned one after another on this
//! thread over WALs on the simulated disk, their messages carried by a queue this driver
//! empties. Writers propose in lockstep rounds — every writer one 16 B write, then turns until
//! every write of the round is answered — so a partition with `writers / partitions` writers
//! takes that many writes per Ready, as in `benches/cluster.rs`'s closed loop. Virtual time
//! stands still while the rounds run: no tick, no heartbeat, only writes.
//!
//! ```text
//! cargo bench --features sim --bench write_path                          # 48 and 4096 partitions
//! KOMMANDER_BENCH_ONLY=4096:4096 cargo bench --features sim --bench write_path   # partitions:writers
//! ```
//!
//! Prints, per row, the CPU time per committed write of the measured rounds (one thread: no
//! scheduling, no waiting) and the ratio of the rows' rates. Run under callgrind, the rounds'
//! instructions (and, with `--cache-sim=yes`, simulated cache misses) per write are the same
//! from run to run, whatever else the machine does:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*write_path::measured_rounds*' \
//!     target/release/deps/write_path-<hash> --bench
//! ```
//!
//! (the total of `Ir` over the writes the row prints; the simulated disk's bookkeeping is
//! counted too, once per WAL write). Results are recorded in `docs/benchmarks.md`.
#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::core::{Message, NodeId, PartitionId, Ticket};
use kommander_raft::shard::{
    Application, LeaderTable, LogEntry, NoEvents, ProposedEntry, Refusal, ReplicationResult,
    Request, ShardConfig, ShardHost, ShardStepper, StateMachine,
};
use kommander_raft::transport::Transport;
use kommander_wal::Wal;
use kommander_wal::backend::BackendChoice;
use kommander_wal::backend::sim::SimDisk;
use tokio::sync::oneshot;

mod support;
use support::{env_or, in_process_node_config, process_cpu};

/// Writes before the measured rounds (not counted): every replica's buffers grown.
const WARMUP_ROUNDS: usize = 3;

/// Takes every delivery and keeps nothing (the application must not block the shard).
struct Discard;

impl StateMachine for Discard {
    fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
}

/// Every batch a node sends, until the driver delivers it.
type Wire = Arc<Mutex<VecDeque<(NodeId, Vec<Message>)>>>;

/// One node's sending side of the wire.
struct Outgoing(Wire);

impl Transport for Outgoing {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        self.0.lock().expect("wire").push_back((to, messages));
    }
}

struct Node {
    id: NodeId,
    host: ShardHost,
    steppers: Vec<ShardStepper>,
}

struct Cluster {
    nodes: Vec<Node>,
    wire: Wire,
    base: Instant,
    offset: Duration,
    turns: u64,
    _dir: tempfile::TempDir,
}

/// Node `node`'s configuration: the cluster bench's timing (10 ms ticks), two shards.
fn config(node: u64, dir: &Path) -> ShardConfig {
    ShardConfig::from(&in_process_node_config(node, dir, 2, true))
}

/// Shard `shard`'s WAL of `config`, over a simulated disk in its directory.
fn sim_wal(config: &ShardConfig, shard: usize) -> Wal {
    let dir = config.data_dir.join(format!("shard-{shard}"));
    std::fs::create_dir_all(&dir).expect("shard dir");
    let mut wal = config.wal.clone();
    wal.backend = BackendChoice::Simulated(SimDisk::new(&dir).expect("simulated disk"));
    wal.prepare_segments_in_background = false;
    wal.deterministic_epoch_seed = Some(config.node_id.0 << 8 | shard as u64);
    Wal::open(&dir, wal).expect("WAL opens")
}

impl Cluster {
    /// Three nodes hosting partitions `0..partitions`, each opened on every node.
    fn start(partitions: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let wire = Wire::default();
        let base = Instant::now();
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let mut nodes = Vec::new();
        for node in 1..=3 {
            let config = config(node, dir.path());
            let wals = (0..config.shard_count)
                .map(|shard| sim_wal(&config, shard))
                .collect();
            let (host, mut steppers) = ShardHost::start_stepped(
                config,
                wals,
                Arc::new(Outgoing(Arc::clone(&wire))),
                Application::new(Arc::new(Discard)),
                Arc::new(NoEvents),
                Arc::new(LeaderTable::default()),
                base,
            )
            .expect("stepped host starts");
            let opened: Vec<_> = (0..partitions)
                .map(|p| {
                    host.open_partition(PartitionId(p), voters.clone(), Vec::new())
                        .expect("queued")
                })
                .collect();
            for stepper in &mut steppers {
                stepper.turn(base);
            }
            for mut answer in opened {
                answer.try_recv().expect("answered").expect("opened");
            }
            nodes.push(Node {
                id: NodeId(node),
                host,
                steppers,
            });
        }
        Self {
            nodes,
            wire,
            base,
            offset: Duration::ZERO,
            turns: 0,
            _dir: dir,
        }
    }

    /// Delivers what is queued and turns every shard once; with nothing to do anywhere, moves
    /// the clock to the next tick.
    fn step(&mut self) {
        let batches: Vec<_> = self.wire.lock().expect("wire").drain(..).collect();
        let mut busy = !batches.is_empty();
        for (to, messages) in batches {
            if let Some(node) = self.nodes.iter().find(|n| n.id == to) {
                node.host.inbound().deliver(messages);
            }
        }
        let now = self.base + self.offset;
        for node in &mut self.nodes {
            for stepper in &mut node.steppers {
                busy |= stepper.turn(now);
                busy |= stepper.waiting_on_wal();
                self.turns += 1;
            }
        }
        if !busy {
            let next = self
                .nodes
                .iter()
                .flat_map(|n| n.steppers.iter().map(ShardStepper::next_tick))
                .min()
                .expect("a shard");
            self.offset += next
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
        }
    }

    /// The node leading `partition` with its no-op committed.
    fn leader(&self, partition: PartitionId) -> Option<usize> {
        self.nodes.iter().position(|n| {
            n.host
                .leadership(partition)
                .is_some_and(|leadership| leadership.leads())
        })
    }
}

/// One round: every writer proposes one write on its partition's leader, then the shards turn
/// until every write is answered. Returns the writes that committed.
fn round(cluster: &mut Cluster, leaders: &[usize], writers: usize, ticket: &mut u64) -> u64 {
    let payload = Bytes::from_static(&[0x5a; 16]);
    let partitions = leaders.len();
    let mut answers: Vec<oneshot::Receiver<Result<ReplicationResult, Refusal>>> = (0..writers)
        .map(|w| {
            let (reply, answer) = oneshot::channel();
            *ticket += 1;
            let request = Request::Propose {
                entries: smallvec::smallvec![ProposedEntry::new("b", &payload)],
                auto_commit: true,
                ticket: Ticket(*ticket),
                reply,
            };
            let partition = PartitionId((w % partitions) as u32);
            cluster.nodes[leaders[w % partitions]]
                .host
                .send(partition, request)
                .expect("queued");
            answer
        })
        .collect();
    let mut committed = 0;
    while !answers.is_empty() {
        cluster.step();
        answers.retain_mut(|answer| match answer.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => true,
            Ok(Ok(_)) => {
                committed += 1;
                false
            }
            Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => false,
        });
    }
    committed
}

/// The measured rounds (the function callgrind's `--toggle-collect` names).
#[inline(never)]
fn measured_rounds(
    cluster: &mut Cluster,
    leaders: &[usize],
    writers: usize,
    rounds: usize,
    ticket: &mut u64,
) -> u64 {
    (0..rounds)
        .map(|_| round(cluster, leaders, writers, ticket))
        .sum()
}

/// One row: (writes, CPU time of the measured rounds, shard turns).
fn run(partitions: u32, writers: usize, writes_min: usize) -> (u64, Duration, u64) {
    let mut cluster = Cluster::start(partitions);
    let steps_max = 200_000;
    let mut steps = 0;
    let leaders: Vec<usize> = loop {
        let leaders: Option<Vec<usize>> = (0..partitions)
            .map(|p| cluster.leader(PartitionId(p)))
            .collect();
        if let Some(leaders) = leaders {
            break leaders;
        }
        steps += 1;
        assert!(steps < steps_max, "no leader on every partition");
        cluster.step();
    };
    let mut ticket = 0;
    for _ in 0..WARMUP_ROUNDS {
        round(&mut cluster, &leaders, writers, &mut ticket);
    }
    let rounds = writes_min.div_ceil(writers).max(1);
    let turns = cluster.turns;
    let started = process_cpu();
    let writes = measured_rounds(&mut cluster, &leaders, writers, rounds, &mut ticket);
    let cpu = process_cpu().saturating_sub(started);
    (writes, cpu, cluster.turns - turns)
}

fn main() {
    let mut rows = vec![(48, 4096), (4096, 4096)];
    if let Ok(only) = std::env::var("KOMMANDER_BENCH_ONLY") {
        let parts: Vec<usize> = only.split(':').filter_map(|s| s.parse().ok()).collect();
        if let [partitions, writers] = parts[..] {
            rows = vec![(partitions as u32, writers)];
        }
    }
    let writes_min: usize = env_or("KOMMANDER_BENCH_WRITES", 200_000);
    println!(
        "write_path: 3 stepped nodes on one thread, 2 shards each, simulated WALs, 16 B writes, \
         at least {writes_min} measured writes per row"
    );
    println!(
        "{:>10} {:>8} {:>10} {:>12} {:>12} {:>14}",
        "partitions", "writers", "writes", "µs CPU/write", "writes/s CPU", "turns/write"
    );
    let mut rates = Vec::new();
    for (partitions, writers) in rows {
        let (writes, cpu, turns) = run(partitions, writers, writes_min);
        let per_write = cpu.as_secs_f64() * 1e6 / writes as f64;
        rates.push(1e6 / per_write);
        println!(
            "{partitions:>10} {writers:>8} {writes:>10} {per_write:>12.2} {:>12.0} {:>14.3}",
            1e6 / per_write,
            turns as f64 / writes as f64
        );
    }
    if let [first, .., last] = rates[..] {
        println!("rate of the last row / the first: {:.3}", last / first);
    }
}
