//! The threadless shard host (`ShardHost::start_stepped`): several nodes' real shard loops
//! driven turn by turn on the test's thread with a virtual clock, each shard over a WAL on the
//! simulated disk, the nodes connected by a queue the test empties (no thread anywhere).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kommander_raft::core::{LogIndex, Message, MessageBody, NodeId, PartitionId, Status, Ticket};
use kommander_raft::shard::{
    Application, LeaderTable, LogEntry, NoEvents, ProposedEntry, Refusal, ReplicationResult,
    Request, ShardConfig, ShardHost, ShardStepper, SnapshotExport, SnapshotImport, SnapshotPoint,
    StateMachine, StateTransfer,
};
use kommander_raft::transport::Transport;
use kommander_wal::Wal;
use kommander_wal::backend::BackendChoice;
use kommander_wal::backend::sim::{SimDisk, Step};
use tokio::sync::oneshot;

use super::harness::test_config;

/// What happened, in order, across every node: messages handed to the wire and entries handed
/// to a state machine. Two runs with the same inputs must produce the same trace.
pub(crate) type Trace = Arc<Mutex<Vec<String>>>;

/// Every batch a node sends, queued until the driver delivers it.
#[derive(Default)]
pub(crate) struct Wire {
    queue: Mutex<VecDeque<(NodeId, Vec<Message>)>>,
    trace: Trace,
    /// Each message sent, with how many steps each of its sender's disks had recorded then
    /// (by shard): what a node's WAL had done when the message left.
    sent_at: Mutex<Vec<(Message, Vec<usize>)>>,
}

/// One node's sending side of the [`Wire`].
struct Outgoing {
    from: NodeId,
    wire: Arc<Wire>,
    disks: Vec<SimDisk>,
}

impl Transport for Outgoing {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        let mut trace = self.wire.trace.lock().expect("trace lock");
        for message in &messages {
            trace.push(format!("send {} -> {to}: {message:?}", self.from));
        }
        drop(trace);
        let steps: Vec<usize> = self.disks.iter().map(SimDisk::step_count).collect();
        self.wire
            .sent_at
            .lock()
            .expect("wire lock")
            .extend(messages.iter().map(|m| (m.clone(), steps.clone())));
        self.wire
            .queue
            .lock()
            .expect("wire lock")
            .push_back((to, messages));
    }
}

/// One committed entry as a node's state machine saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub(crate) partition: PartitionId,
    pub(crate) index: u64,
    pub(crate) payload: Bytes,
    pub(crate) restored: bool,
}

/// The payloads an application holds, by partition and index.
type Held = Arc<Mutex<BTreeMap<PartitionId, BTreeMap<u64, Bytes>>>>;
/// Its durable state: the last snapshot imported (index, payloads), by partition.
type Durable = Arc<Mutex<BTreeMap<PartitionId, (u64, BTreeMap<u64, Bytes>)>>>;

/// A node's state machine: records every delivery (and writes it into the shared trace). Its
/// state of a partition is every payload it holds by index; it makes that state durable only by
/// importing a snapshot (which it then reports as its durable index), and exports it as
/// length-prefixed (index, payload) records.
pub(crate) struct App {
    node: NodeId,
    trace: Trace,
    pub(crate) delivered: Mutex<Vec<Delivered>>,
    /// The payloads held, by partition and index (restored, live or imported).
    pub(crate) state: Held,
    /// What survives a crash: the last snapshot imported (index, payloads), by partition.
    pub(crate) durable: Durable,
    /// The disk of shard 0 and its step count when each import finished (to tell which side
    /// of a finish a crash point is on).
    pub(crate) disk: SimDisk,
    pub(crate) finished_at: Arc<Mutex<Vec<usize>>>,
}

impl App {
    /// Records a delivery; a live entry whose payload starts with `panic` makes it panic.
    fn record(&self, partition: PartitionId, entry: &LogEntry, restored: bool) -> bool {
        if !restored && entry.payload.starts_with(b"panic") {
            panic!("{}", String::from_utf8_lossy(&entry.payload));
        }
        self.trace.lock().expect("trace lock").push(format!(
            "deliver {} {partition} {} restored={restored}",
            self.node, entry.index
        ));
        self.delivered.lock().expect("app lock").push(Delivered {
            partition,
            index: entry.index.0,
            payload: entry.payload.clone(),
            restored,
        });
        self.state
            .lock()
            .expect("app lock")
            .entry(partition)
            .or_default()
            .insert(entry.index.0, entry.payload.clone());
        true
    }

    /// The payloads held for `partition`, by index.
    pub(crate) fn held(&self, partition: PartitionId) -> BTreeMap<u64, Bytes> {
        let state = self.state.lock().expect("app lock");
        state.get(&partition).cloned().unwrap_or_default()
    }

    /// The payloads delivered live for `partition`, in order.
    pub(crate) fn live(&self, partition: PartitionId) -> Vec<Bytes> {
        self.delivered
            .lock()
            .expect("app lock")
            .iter()
            .filter(|d| d.partition == partition && !d.restored)
            .map(|d| d.payload.clone())
            .collect()
    }
}

impl StateMachine for App {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.record(partition, entry, false)
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.record(partition, entry, true)
    }

    fn durable_index(&self, partition: PartitionId) -> Option<LogIndex> {
        let durable = self.durable.lock().expect("app lock");
        Some(LogIndex(
            durable.get(&partition).map_or(0, |(index, _)| *index),
        ))
    }
}

impl StateTransfer for App {
    fn export(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> std::io::Result<Box<dyn SnapshotExport>> {
        let mut data = BytesMut::new();
        for (index, payload) in self.held(partition).range(..=at.index.0) {
            data.put_u64_le(*index);
            data.put_u32_le(payload.len() as u32);
            data.put_slice(payload);
        }
        Ok(Box::new(data.freeze()))
    }

    fn import(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> std::io::Result<Box<dyn SnapshotImport>> {
        Ok(Box::new(Import {
            partition,
            at: at.index.0,
            data: Vec::new(),
            state: Arc::clone(&self.state),
            durable: Arc::clone(&self.durable),
            disk: self.disk.clone(),
            finished_at: Arc::clone(&self.finished_at),
        }))
    }
}

/// An import: gathered, then made the state (and the durable state) at once.
struct Import {
    partition: PartitionId,
    at: u64,
    data: Vec<u8>,
    state: Held,
    durable: Durable,
    disk: SimDisk,
    finished_at: Arc<Mutex<Vec<usize>>>,
}

impl SnapshotImport for Import {
    fn write_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let mut data = &self.data[..];
        let mut payloads = BTreeMap::new();
        while data.has_remaining() {
            let index = data.get_u64_le();
            let len = data.get_u32_le() as usize;
            let payload = data
                .get(..len)
                .ok_or_else(|| std::io::Error::other("a truncated snapshot"))?;
            payloads.insert(index, Bytes::copy_from_slice(payload));
            data.advance(len);
        }
        self.durable
            .lock()
            .expect("app lock")
            .insert(self.partition, (self.at, payloads.clone()));
        self.state
            .lock()
            .expect("app lock")
            .insert(self.partition, payloads);
        self.finished_at
            .lock()
            .expect("app lock")
            .push(self.disk.step_count());
        Ok(())
    }
}

/// One stepped node: its host, its shards' steppers and disks, its state machine.
pub(crate) struct SteppedNode {
    pub(crate) id: NodeId,
    pub(crate) host: ShardHost,
    pub(crate) steppers: Vec<ShardStepper>,
    pub(crate) disks: Vec<SimDisk>,
    pub(crate) app: Arc<App>,
}

/// Nodes driven on one thread with a virtual clock (`base + offset`).
pub(crate) struct SteppedCluster {
    pub(crate) nodes: Vec<SteppedNode>,
    pub(crate) wire: Arc<Wire>,
    pub(crate) partitions: Vec<PartitionId>,
    base: Instant,
    pub(crate) offset: Duration,
    next_ticket: u64,
    dir: tempfile::TempDir,
}

/// The shard configuration of stepped test node `node` of `nodes` (2 shards, 5 ms ticks).
pub(crate) fn stepped_config(node: u64, nodes: u64, dir: &Path) -> ShardConfig {
    ShardConfig::from(&test_config(node, nodes, dir))
}

/// A transport for a node alone: nothing to send.
struct Nowhere;

impl Transport for Nowhere {
    fn send(&self, _: NodeId, _: Vec<Message>) {}
}

/// A stepped node alone in its cluster (`config`'s node, its shards over simulated WALs)
/// running `app`, partition 0 queued to open with the node as its only voter: its host and
/// its shards' steppers, the first tick due one tick after `now`.
pub(crate) fn start_alone(
    config: ShardConfig,
    app: Application,
    now: Instant,
) -> (ShardHost, Vec<ShardStepper>) {
    let node = config.node_id;
    let wals = (0..config.shard_count)
        .map(|shard| open_sim_wal(&config, shard).0)
        .collect();
    let (host, steppers) = ShardHost::start_stepped(
        config,
        wals,
        Arc::new(Nowhere),
        app,
        Arc::new(NoEvents),
        Arc::new(LeaderTable::default()),
        now,
    )
    .expect("stepped host starts");
    let _opened = host
        .open_partition(PartitionId(0), vec![node], Vec::new())
        .expect("queued");
    (host, steppers)
}

/// Opens shard `shard`'s WAL of `config` over a simulated disk in its directory.
pub(crate) fn open_sim_wal(config: &ShardConfig, shard: usize) -> (Wal, SimDisk) {
    let dir = config.data_dir.join(format!("shard-{shard}"));
    std::fs::create_dir_all(&dir).expect("shard dir");
    let disk = SimDisk::new(&dir).expect("simulated disk");
    let mut wal_config = config.wal.clone();
    wal_config.backend = BackendChoice::Simulated(disk.clone());
    wal_config.prepare_segments_in_background = false;
    wal_config.deterministic_epoch_seed = Some(config.node_id.0 << 8 | shard as u64);
    (Wal::open(&dir, wal_config).expect("WAL opens"), disk)
}

impl SteppedCluster {
    /// `nodes` stepped nodes hosting partitions `0..partitions`, configured by `configure`
    /// (which gets each node's `ShardConfig`), partitions opened on every node.
    pub(crate) fn start_with(
        nodes: u64,
        partitions: u32,
        configure: impl Fn(&mut ShardConfig),
    ) -> Self {
        let mut cluster = Self {
            nodes: Vec::new(),
            wire: Arc::new(Wire::default()),
            partitions: (0..partitions).map(PartitionId).collect(),
            base: Instant::now(),
            offset: Duration::ZERO,
            next_ticket: 1,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for node in 1..=nodes {
            let mut config = stepped_config(node, nodes, cluster.dir.path());
            configure(&mut config);
            let node = cluster.start_node(config);
            cluster.nodes.push(node);
        }
        cluster
    }

    pub(crate) fn start(nodes: u64, partitions: u32) -> Self {
        Self::start_with(nodes, partitions, |_| {})
    }

    pub(crate) fn now(&self) -> Instant {
        self.base + self.offset
    }

    /// Starts a node over the WALs in its data directory (recovering what they hold) and
    /// opens every partition on it.
    pub(crate) fn start_node(&mut self, config: ShardConfig) -> SteppedNode {
        self.start_node_with(config, BTreeMap::new())
    }

    /// [`SteppedCluster::start_node`] with an application whose durable state (what it kept
    /// through a crash) is `durable`.
    pub(crate) fn start_node_with(
        &mut self,
        config: ShardConfig,
        durable: BTreeMap<PartitionId, (u64, BTreeMap<u64, Bytes>)>,
    ) -> SteppedNode {
        let id = config.node_id;
        let (wals, disks): (Vec<Wal>, Vec<SimDisk>) = (0..config.shard_count)
            .map(|shard| open_sim_wal(&config, shard))
            .unzip();
        let app = Arc::new(App {
            node: id,
            trace: Arc::clone(&self.wire.trace),
            delivered: Mutex::default(),
            state: Arc::new(Mutex::new(
                durable
                    .iter()
                    .map(|(&p, (_, payloads))| (p, payloads.clone()))
                    .collect(),
            )),
            durable: Arc::new(Mutex::new(durable)),
            disk: disks[0].clone(),
            finished_at: Arc::default(),
        });
        let voters: Vec<NodeId> = config.cluster.keys().copied().collect();
        let (host, steppers) = ShardHost::start_stepped(
            config,
            wals,
            Arc::new(Outgoing {
                from: id,
                wire: Arc::clone(&self.wire),
                disks: disks.clone(),
            }),
            Application::new(Arc::clone(&app) as Arc<dyn StateMachine>)
                .with_transfer(Arc::clone(&app) as Arc<dyn StateTransfer>),
            Arc::new(NoEvents),
            Arc::new(LeaderTable::default()),
            self.now(),
        )
        .expect("stepped host starts");
        let mut node = SteppedNode {
            id,
            host,
            steppers,
            disks,
            app,
        };
        for &partition in &self.partitions {
            let mut opened = node
                .host
                .open_partition(partition, voters.clone(), Vec::new())
                .expect("open queued");
            let shard = node.host.shard_of(partition);
            node.steppers[shard].turn(self.now());
            opened
                .try_recv()
                .expect("answered in the turn")
                .expect("partition opens");
        }
        node
    }

    /// Hands every queued batch to its node's inbound side, in the order sent. Returns
    /// whether there was any.
    pub(crate) fn deliver_all(&self) -> bool {
        let batches: Vec<_> = self
            .wire
            .queue
            .lock()
            .expect("wire lock")
            .drain(..)
            .collect();
        let any = !batches.is_empty();
        for (to, messages) in batches {
            if let Some(node) = self.nodes.iter().find(|n| n.id == to) {
                node.host.inbound().deliver(messages);
            }
        }
        any
    }

    /// One round: deliver what is queued, turn every shard of every node once at the current
    /// virtual time; with nothing to do anywhere, jump the clock to the earliest next tick.
    pub(crate) fn step(&mut self) {
        let mut busy = self.deliver_all();
        let now = self.now();
        for node in &mut self.nodes {
            for stepper in &mut node.steppers {
                busy |= stepper.turn(now);
                busy |= stepper.waiting_on_wal();
            }
        }
        busy |= !self.wire.queue.lock().expect("wire lock").is_empty();
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

    /// Steps until `done` holds, failing after `steps_max` rounds.
    pub(crate) fn run_until(&mut self, what: &str, steps_max: usize, done: impl Fn(&Self) -> bool) {
        for _ in 0..steps_max {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("{what}: not reached within {steps_max} rounds");
    }

    /// Steps until `answer` comes, failing after 20 000 rounds.
    pub(crate) fn answer<T>(
        &mut self,
        mut answer: oneshot::Receiver<Result<T, Refusal>>,
    ) -> Result<T, Refusal> {
        for _ in 0..20_000 {
            self.step();
            match answer.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(closed) => panic!("{closed:?}"),
                Ok(result) => return result,
            }
        }
        panic!("not answered within 20 000 rounds")
    }

    /// The node leading `partition` with its no-op committed, if exactly one claims it.
    pub(crate) fn leader(&self, partition: PartitionId) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i]
                    .host
                    .leadership(partition)
                    .is_some_and(|l| l.leads())
            })
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Runs until every partition has a leader.
    pub(crate) fn elect(&mut self) {
        let partitions = self.partitions.clone();
        self.run_until("a leader on every partition", 20_000, |c| {
            partitions.iter().all(|&p| c.leader(p).is_some())
        });
    }

    /// Proposes `payload` to node `i` for `partition` (queued: its shard executes it at its
    /// next turn).
    pub(crate) fn propose(
        &mut self,
        i: usize,
        partition: PartitionId,
        payload: &[u8],
    ) -> oneshot::Receiver<Result<ReplicationResult, Refusal>> {
        let (reply, answer) = oneshot::channel();
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.nodes[i]
            .host
            .send(
                partition,
                Request::Propose {
                    entries: smallvec::smallvec![ProposedEntry::new("t", payload)],
                    auto_commit: true,
                    ticket,
                    reply,
                },
            )
            .expect("proposal queued");
        answer
    }

    /// Drops the messages `from` sent that were not delivered yet (it crashed before they
    /// left).
    pub(crate) fn drop_queued_from(&self, from: NodeId) {
        let mut queue = self.wire.queue.lock().expect("wire lock");
        for (_, batch) in queue.iter_mut() {
            batch.retain(|m| m.from != from);
        }
    }

    /// The messages sent and not delivered yet, in order.
    pub(crate) fn queued_messages(&self) -> Vec<Message> {
        let queue = self.wire.queue.lock().expect("wire lock");
        queue.iter().flat_map(|(_, batch)| batch.clone()).collect()
    }

    /// Stops node `i` in order (its shards sync) and starts it again over its disks: it
    /// restores its partitions from what its WALs hold, with a new state machine.
    pub(crate) fn restart_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let config = node.host.config().clone();
        node.host.shutdown();
        for stepper in node.steppers.drain(..) {
            stepper.stop();
        }
        let restarted = self.start_node(config);
        self.nodes[i] = restarted;
    }

    /// Crashes node `i` (its shards stop without a sync or another write: what they wrote to
    /// their disks stays, as after a process crash) and starts it again over its disks: it
    /// restores its partitions from what its WALs hold, with a new state machine.
    pub(crate) fn crash_node(&mut self, i: usize) {
        let config = self.nodes[i].host.config().clone();
        drop(std::mem::take(&mut self.nodes[i].steppers));
        self.drop_queued_from(config.node_id);
        let restarted = self.start_node(config);
        self.nodes[i] = restarted;
    }

    /// What was traced so far.
    pub(crate) fn trace(&self) -> Vec<String> {
        self.wire.trace.lock().expect("trace lock").clone()
    }
}

/// Elects leaders on 4 partitions of three 2-shard nodes, proposes 5 entries to each leader
/// and runs until every node delivered them all. Returns the cluster and every reply.
fn replicate_on_three_stepped_nodes() -> (SteppedCluster, Vec<ReplicationResult>) {
    let mut cluster = SteppedCluster::start(3, 4);
    cluster.elect();
    let mut answers = Vec::new();
    for round in 0..5u8 {
        for partition in cluster.partitions.clone() {
            let leader = cluster.leader(partition).expect("leader");
            answers.push(cluster.propose(leader, partition, &[b'w', round, partition.0 as u8]));
        }
        cluster.step();
    }
    let partitions = cluster.partitions.clone();
    cluster.run_until("every entry on every node", 10_000, |c| {
        c.nodes
            .iter()
            .all(|n| partitions.iter().all(|&p| n.app.live(p).len() == 5))
    });
    let results = answers
        .into_iter()
        .map(|mut answer| {
            answer
                .try_recv()
                .expect("answered")
                .expect("proposal succeeds")
        })
        .collect();
    (cluster, results)
}

#[test]
fn three_stepped_nodes_elect_replicate_and_answer_on_one_thread() {
    let (cluster, results) = replicate_on_three_stepped_nodes();
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|r| r.status == Status::Success));
    for partition in &cluster.partitions {
        let expected: Vec<Bytes> = (0..5u8)
            .map(|round| Bytes::copy_from_slice(&[b'w', round, partition.0 as u8]))
            .collect();
        for node in &cluster.nodes {
            assert_eq!(node.app.live(*partition), expected, "node {}", node.id);
        }
    }
    // Every shard wrote through its simulated disk; none failed.
    for node in &cluster.nodes {
        for (shard, disk) in node.disks.iter().enumerate() {
            let (writes, syncs) = disk.io_counts();
            assert!(writes > 0 && syncs > 0, "node {} shard {shard}", node.id);
        }
        assert!(node.steppers.iter().all(|s| s.failure().is_none()));
    }
}

#[test]
fn two_runs_with_the_same_inputs_trace_the_same_messages_and_deliveries() {
    let (first, _) = replicate_on_three_stepped_nodes();
    let (second, _) = replicate_on_three_stepped_nodes();
    let (first, second) = (first.trace(), second.trace());
    let deliveries = first.iter().filter(|t| t.starts_with("deliver")).count();
    assert_eq!(deliveries, 3 * 4 * 5, "the trace holds every delivery");
    assert!(first.len() > deliveries, "and the messages");
    if let Some(at) = first.iter().zip(&second).position(|(a, b)| a != b) {
        panic!(
            "the runs differ at trace line {at}:\n  {}\n  {}",
            first[at], second[at]
        );
    }
    assert_eq!(first.len(), second.len());
}

/// A leader hands its appends to the transport before it submits the WAL write that holds
/// the same entries (`Worker::submit_appended`): that write's system call is not on its
/// followers' path, and so not on the commit's.
#[test]
fn a_leaders_appends_leave_before_it_submits_their_wal_write() {
    const PAYLOAD: &[u8] = b"replicated while the leader's own write waits to be submitted";
    let mut cluster = SteppedCluster::start(3, 1);
    cluster.elect();
    let partition = cluster.partitions[0];
    let leader = cluster.leader(partition).expect("a leader");
    let shard = cluster.nodes[leader].host.shard_of(partition);
    let disk = cluster.nodes[leader].disks[shard].clone();
    let id = cluster.nodes[leader].id;
    let answer = cluster.propose(leader, partition, PAYLOAD);
    let now = cluster.now();
    cluster.nodes[leader].steppers[shard].turn(now);

    let carries = |data: &[u8]| data.windows(PAYLOAD.len()).any(|w| w == PAYLOAD);
    let written_at = disk
        .trace()
        .iter()
        .position(|step| matches!(step, Step::Write { data, .. } if carries(data)))
        .map(|at| disk.folded_steps() + at)
        .expect("the turn submitted the entry's WAL write");
    let sent: Vec<usize> = cluster
        .wire
        .sent_at
        .lock()
        .expect("wire lock")
        .iter()
        .filter(|(m, _)| m.from == id && m.partition == partition)
        .filter(|(m, _)| match &m.body {
            MessageBody::AppendRequest { entries, .. } => {
                entries.iter().any(|e| carries(&e.payload))
            }
            _ => false,
        })
        .map(|(_, steps)| steps[shard])
        .collect();
    assert_eq!(sent.len(), 2, "the turn sent the entry to both followers");
    for steps in sent {
        assert!(
            steps <= written_at,
            "an append left after the leader's disk recorded {steps} steps, its write is step \
             {written_at}"
        );
    }
    assert_eq!(
        cluster.answer(answer).expect("committed").status,
        Status::Success
    );
}

#[test]
fn a_panic_in_a_stepped_turn_fails_the_shard_as_on_a_thread() {
    let mut cluster = SteppedCluster::start(1, 2);
    cluster.elect();
    let mut answer = cluster.propose(0, PartitionId(0), b"panic: the app cannot apply this");
    cluster.run_until("the shard fails", 1_000, |c| {
        c.nodes[0].steppers[0].failure().is_some()
    });
    let reason = cluster.nodes[0].steppers[0].failure().expect("failed");
    assert!(reason.contains("the app cannot apply"), "{reason}");
    assert!(matches!(
        answer.try_recv().expect("answered"),
        Err(Refusal::ShardFailed { shard: 0, .. })
    ));
    // The other shard serves on.
    assert!(cluster.nodes[0].steppers[1].failure().is_none());
    let mut other = cluster.propose(0, PartitionId(1), b"fine");
    cluster.run_until("the other shard answers", 1_000, |c| {
        c.nodes[0].app.live(PartitionId(1)).len() == 1
    });
    assert!(other.try_recv().expect("answered").is_ok());
}
