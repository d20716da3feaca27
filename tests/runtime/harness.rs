//! A test cluster: N nodes, each a `ShardHost` with a recording state machine and event log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::core::{LogIndex, NodeId, PartitionId, Role, Status, Ticket};
use kommander_raft::node::NodeConfig;
use kommander_raft::shard::{
    Application, EventSink, LogEntry, PartitionStatus, ProposedEntry, RaftEvent, Refusal,
    ReplicationResult, Request, ShardConfig, ShardHost, StateMachine,
};
use kommander_raft::transport::Transport;
use kommander_raft::transport::faulty::FaultInjector;
use kommander_raft::transport::memory::MemoryNetwork;
use tokio::sync::oneshot;

/// How long a test waits for anything before failing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// One delivered entry as the application saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) index: LogIndex,
    pub(crate) log_type: String,
    pub(crate) payload: Bytes,
}

/// A hook the test can install to block or observe callbacks on the shard thread.
pub(crate) type Hook = Box<dyn Fn(PartitionId, &LogEntry) + Send + Sync>;

/// Records every delivery, per partition, separately for restore and live delivery. A live
/// entry whose payload starts with `reject` gets a negative verdict; one that starts with
/// `panic` makes the callback panic (before it takes any lock).
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) live: Mutex<HashMap<PartitionId, Vec<Seen>>>,
    pub(crate) restored: Mutex<HashMap<PartitionId, Vec<Seen>>>,
    pub(crate) on_live: Mutex<Option<Hook>>,
    pub(crate) on_restore: Mutex<Option<Hook>>,
    /// What `durable_index` reports, per partition (nothing: no opinion).
    pub(crate) durable: Mutex<HashMap<PartitionId, LogIndex>>,
}

fn seen(entry: &LogEntry) -> Seen {
    Seen {
        index: entry.index,
        log_type: entry.log_type().to_owned(),
        payload: entry.payload.clone(),
    }
}

impl StateMachine for Recorder {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        if entry.payload.starts_with(b"panic") {
            panic!("the state machine cannot apply entry {}", entry.index);
        }
        if let Some(hook) = self.on_live.lock().expect("hook lock").as_ref() {
            hook(partition, entry);
        }
        let mut live = self.live.lock().expect("recorder lock");
        live.entry(partition).or_default().push(seen(entry));
        !entry.payload.starts_with(b"reject")
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        if let Some(hook) = self.on_restore.lock().expect("hook lock").as_ref() {
            hook(partition, entry);
        }
        let mut restored = self.restored.lock().expect("recorder lock");
        restored.entry(partition).or_default().push(seen(entry));
        true
    }

    fn durable_index(&self, partition: PartitionId) -> Option<LogIndex> {
        self.durable
            .lock()
            .expect("recorder lock")
            .get(&partition)
            .copied()
    }
}

impl Recorder {
    pub(crate) fn live(&self, partition: PartitionId) -> Vec<Seen> {
        self.live
            .lock()
            .expect("recorder lock")
            .get(&partition)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn restored(&self, partition: PartitionId) -> Vec<Seen> {
        self.restored
            .lock()
            .expect("recorder lock")
            .get(&partition)
            .cloned()
            .unwrap_or_default()
    }
}

/// Keeps every event.
#[derive(Default)]
pub(crate) struct EventLog(pub Mutex<Vec<RaftEvent>>);

impl EventSink for EventLog {
    fn emit(&self, event: RaftEvent) {
        self.0.lock().expect("event lock").push(event);
    }
}

impl EventLog {
    pub(crate) fn count(&self, pred: impl Fn(&RaftEvent) -> bool) -> usize {
        self.0
            .lock()
            .expect("event lock")
            .iter()
            .filter(|e| pred(e))
            .count()
    }
}

/// Waits for a oneshot answer without an async runtime (polls, so a lost answer fails the
/// test instead of hanging it). A reply dropped unanswered counts as `ShutDown`.
pub(crate) fn wait<T>(mut answer: oneshot::Receiver<Result<T, Refusal>>) -> Result<T, Refusal> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match answer.try_recv() {
            Ok(result) => return result,
            Err(oneshot::error::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "no answer within {PATIENCE:?}");
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(oneshot::error::TryRecvError::Closed) => return Err(Refusal::ShutDown),
        }
    }
}

/// Polls `f` until it returns `Some`, failing the test with `what` after [`PATIENCE`].
pub(crate) fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Settings for a test node: fast ticks, small WAL segments, 2 shards.
pub(crate) fn test_config(node: u64, nodes: u64, dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(node, dir.join(format!("node-{node}")));
    config.endpoint = format!("memory:{node}");
    config.peers = (1..=nodes)
        .filter(|&n| n != node)
        .map(|n| (n, format!("memory:{n}")))
        .collect::<BTreeMap<_, _>>();
    config.shards = 2;
    config.tick_interval_ms = 5;
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 2;
    config.seed = 0x5eed ^ node;
    config.wal_segment_bytes = 1 << 20;
    config.wal_batch_bytes_max = 256 << 10;
    config.wal_record_bytes_max = 64 << 10;
    config
}

pub(crate) struct TestNode {
    pub(crate) id: NodeId,
    pub(crate) config: NodeConfig,
    pub(crate) runtime: Option<ShardHost>,
    pub(crate) app: Arc<Recorder>,
    pub(crate) events: Arc<EventLog>,
}

pub(crate) struct Cluster {
    pub(crate) network: Arc<MemoryNetwork>,
    pub(crate) faults: Option<Arc<FaultInjector>>,
    pub(crate) nodes: Vec<TestNode>,
    pub(crate) partitions: Vec<PartitionId>,
    pub(crate) dir: tempfile::TempDir,
    next_ticket: u64,
}

impl Cluster {
    /// Starts `nodes` nodes hosting `partitions` partitions (ids 0..partitions) and waits for
    /// a leader on each.
    pub(crate) fn start(nodes: u64, partitions: u32, faulty: bool) -> Self {
        Self::start_with(nodes, partitions, faulty, |_| {})
    }

    pub(crate) fn start_with(
        nodes: u64,
        partitions: u32,
        faulty: bool,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let faults = faulty.then(|| FaultInjector::new(0xfa17, 4096).expect("fault injector"));
        let mut cluster = Self {
            network: MemoryNetwork::new(),
            faults,
            nodes: Vec::new(),
            partitions: (0..partitions).map(PartitionId).collect(),
            next_ticket: 1,
            dir,
        };
        for node in 1..=nodes {
            let mut config = test_config(node, nodes, cluster.dir.path());
            tweak(&mut config);
            cluster.nodes.push(TestNode {
                id: NodeId(node),
                config,
                runtime: None,
                app: Arc::new(Recorder::default()),
                events: Arc::new(EventLog::default()),
            });
        }
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i);
        }
        cluster
    }

    pub(crate) fn voters(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Starts node `i` (again) and opens every partition on it; returns without waiting for
    /// restores to finish.
    pub(crate) fn start_node(&mut self, i: usize) {
        let voters = self.voters();
        let node = &mut self.nodes[i];
        let memory: Arc<dyn Transport> = self.network.transport(node.id);
        let transport: Arc<dyn Transport> = match &self.faults {
            Some(faults) => faults.wrap(node.id, memory),
            None => memory,
        };
        let runtime = ShardHost::start(
            ShardConfig::from(&node.config),
            transport,
            Application::new(Arc::clone(&node.app) as Arc<dyn StateMachine>),
            Arc::clone(&node.events) as Arc<dyn EventSink>,
            Arc::default(),
        )
        .expect("node starts");
        self.network.register(node.id, runtime.inbound());
        let answers: Vec<_> = self
            .partitions
            .iter()
            .map(|&p| {
                runtime
                    .open_partition(p, voters.clone(), Vec::new())
                    .expect("open queued")
            })
            .collect();
        for answer in answers {
            wait(answer).expect("partition opens");
        }
        node.runtime = Some(runtime);
    }

    pub(crate) fn stop_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        self.network.unregister(node.id);
        if let Some(runtime) = node.runtime.take() {
            runtime.shutdown();
        }
    }

    pub(crate) fn runtime(&self, i: usize) -> &ShardHost {
        self.nodes[i].runtime.as_ref().expect("node is running")
    }

    pub(crate) fn status(
        &self,
        i: usize,
        partition: PartitionId,
    ) -> Result<PartitionStatus, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.runtime(i).send(partition, Request::Status { reply })?;
        wait(answer)
    }

    /// The node index leading `partition`, once exactly one node claims it in the highest
    /// term and the others agree.
    pub(crate) fn leader(&self, partition: PartitionId) -> Option<usize> {
        let statuses: Vec<(usize, PartitionStatus)> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].runtime.is_some())
            .filter_map(|i| self.status(i, partition).ok().map(|s| (i, s)))
            .collect();
        let leaders: Vec<&(usize, PartitionStatus)> = statuses
            .iter()
            .filter(|(_, s)| s.role == Role::Leader)
            .collect();
        let &&(i, leader) = leaders.iter().max_by_key(|(_, s)| s.term)?;
        let same_term_leaders = leaders
            .iter()
            .filter(|(_, s)| s.term == leader.term)
            .count();
        assert!(
            same_term_leaders <= 1,
            "two leaders in term {}",
            leader.term
        );
        let agreeing = statuses
            .iter()
            .filter(|(_, s)| s.term == leader.term && s.leader == Some(self.nodes[i].id))
            .count();
        (agreeing * 2 > self.nodes.len()).then_some(i)
    }

    pub(crate) fn wait_leaders(&self) -> HashMap<PartitionId, usize> {
        self.partitions
            .iter()
            .map(|&p| {
                (
                    p,
                    eventually(&format!("a leader of {p}"), || self.leader(p)),
                )
            })
            .collect()
    }

    pub(crate) fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    /// Sends a proposal to node `i` and returns the receiver of its answer.
    pub(crate) fn propose_to(
        &mut self,
        i: usize,
        partition: PartitionId,
        payloads: &[&[u8]],
        auto_commit: bool,
    ) -> (
        Ticket,
        Result<oneshot::Receiver<Result<ReplicationResult, Refusal>>, Refusal>,
    ) {
        let ticket = self.ticket();
        let (reply, answer) = oneshot::channel();
        let entries = payloads
            .iter()
            .map(|p| ProposedEntry::new("test/put", p))
            .collect();
        let sent = self.runtime(i).send(
            partition,
            Request::Propose {
                entries,
                auto_commit,
                ticket,
                reply,
            },
        );
        (ticket, sent.map(|()| answer))
    }

    /// Proposes on the current leader, retrying on leadership changes, until a proposal
    /// succeeds. Returns its result.
    pub(crate) fn replicate(
        &mut self,
        partition: PartitionId,
        payload: &[u8],
    ) -> ReplicationResult {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(
                Instant::now() < deadline,
                "could not replicate on {partition}"
            );
            let Some(leader) = self.leader(partition) else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let (_, sent) = self.propose_to(leader, partition, &[payload], true);
            match sent.map(wait) {
                Ok(Ok(result)) if result.status == Status::Success => return result,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Sends a request built by `make` to node `i` and waits for its answer.
    pub(crate) fn ask<T>(
        &self,
        i: usize,
        partition: PartitionId,
        make: impl FnOnce(oneshot::Sender<Result<T, Refusal>>) -> Request,
    ) -> Result<T, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.runtime(i).send(partition, make(reply))?;
        wait(answer)
    }

    /// Waits until every running node delivered (live) exactly `expected` on `partition`.
    pub(crate) fn wait_delivered(&self, partition: PartitionId, expected: &[Seen]) {
        for node in self.nodes.iter().filter(|n| n.runtime.is_some()) {
            eventually(&format!("{} to deliver {partition}", node.id), || {
                let live = node.app.live(partition);
                assert!(
                    live.len() <= expected.len() && live[..] == expected[..live.len()],
                    "{} delivered {live:?} on {partition}, expected a prefix of {expected:?}",
                    node.id
                );
                (live.len() == expected.len()).then_some(())
            });
        }
    }

    pub(crate) fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
