//! A test cluster of `Raft` handles with recording applications.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kommander_raft::shard::partitions::key_hash;
use kommander_raft::transport::Transport;
use kommander_raft::transport::faulty::{FaultInjector, FaultRates};
use kommander_raft::transport::memory::MemoryNetwork;
use kommander_raft::{
    Leadership, LogEntry, LogIndex, NodeConfig, NodeId, PartitionId, Raft, RaftEvent,
    RangeTransfer, ReplicateError, ReplicateOptions, Role, SnapshotExport, SnapshotImport,
    SnapshotPoint, StateMachine, StateTransfer, Term, Written,
};
use tokio::sync::broadcast;

/// How long a test waits for anything before failing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The timeout of a call that must wait for its answer however long it takes (`None` would be
/// the node's default): a limit too long to be an instant takes no timer slot.
pub(crate) const UNLIMITED: Option<Duration> = Some(Duration::MAX);

/// One delivered entry as the application saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) index: u64,
    pub(crate) log_type: String,
    pub(crate) payload: Bytes,
}

type Hook = Box<dyn Fn(PartitionId, &LogEntry) + Send + Sync>;

/// Records every delivery per partition, live and restored separately. As a `StateTransfer`
/// its state of a partition is the live list: a snapshot carries it (as length-prefixed
/// payloads), and an import replaces it.
#[derive(Default)]
pub(crate) struct Recorder {
    live: Arc<Mutex<HashMap<PartitionId, Vec<Seen>>>>,
    restored: Mutex<HashMap<PartitionId, Vec<Seen>>>,
    pub(crate) on_live: Mutex<Option<Hook>>,
    pub(crate) on_restore: Mutex<Option<Hook>>,
    /// The next import's first write waits until this receives (or its sender is dropped).
    pub(crate) hold_import: Mutex<Option<mpsc::Receiver<()>>>,
    /// While set, a range export fails (a split or merge waits: the export is tried again).
    pub(crate) refuse_range_export: AtomicBool,
    /// Per target, the bytes of the range import under way.
    importing: Mutex<HashMap<PartitionId, Vec<u8>>>,
}

fn seen(entry: &LogEntry) -> Seen {
    Seen {
        index: entry.index.0,
        log_type: entry.log_type().to_owned(),
        payload: entry.payload.clone(),
    }
}

impl StateMachine for Recorder {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        // A hook may panic on purpose (a failing application): the lock stays usable.
        if let Some(hook) = self
            .on_live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            hook(partition, entry);
        }
        let mut live = self.live.lock().expect("recorder");
        live.entry(partition).or_default().push(seen(entry));
        !entry.payload.starts_with(b"reject")
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        if let Some(hook) = self.on_restore.lock().expect("hook").as_ref() {
            hook(partition, entry);
        }
        let mut restored = self.restored.lock().expect("recorder");
        restored.entry(partition).or_default().push(seen(entry));
        true
    }
}

impl StateTransfer for Recorder {
    fn export(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> std::io::Result<Box<dyn SnapshotExport>> {
        let live = self.live(partition);
        Ok(Box::new(encode(
            live.iter().filter(|s| s.index <= at.index.0),
        )))
    }

    fn import(
        &self,
        partition: PartitionId,
        _at: SnapshotPoint,
    ) -> std::io::Result<Box<dyn SnapshotImport>> {
        Ok(Box::new(Import {
            live: Arc::clone(&self.live),
            partition,
            data: Vec::new(),
            hold: self.hold_import.lock().expect("hold").take(),
        }))
    }

    /// The source's entries whose payload, read as a key, hashes into the range.
    fn export_range(
        &self,
        plan: &RangeTransfer,
    ) -> std::io::Result<Option<Box<dyn SnapshotExport>>> {
        if self.refuse_range_export.load(Ordering::Acquire) {
            return Err(std::io::Error::other("range exports are refused for now"));
        }
        let live = self.live(plan.source);
        let moved = live
            .iter()
            .filter(|s| plan.holds(key_hash(&String::from_utf8_lossy(&s.payload))));
        Ok(Some(Box::new(encode(moved))))
    }

    fn import_range_begin(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
    ) -> std::io::Result<()> {
        self.importing
            .lock()
            .expect("importing")
            .insert(target, Vec::new());
        Ok(())
    }

    fn import_range_chunk(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
        data: &[u8],
    ) -> std::io::Result<()> {
        self.importing
            .lock()
            .expect("importing")
            .entry(target)
            .or_default()
            .extend_from_slice(data);
        Ok(())
    }

    /// The imported entries join the target's live ones.
    fn import_range_end(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
    ) -> std::io::Result<()> {
        let data = self
            .importing
            .lock()
            .expect("importing")
            .remove(&target)
            .unwrap_or_default();
        let imported = decode(&data)?;
        self.live
            .lock()
            .expect("recorder")
            .entry(target)
            .or_default()
            .extend(imported);
        Ok(())
    }
}

/// Entries as a snapshot's or a range export's bytes: each index, log type and payload.
fn encode<'a>(entries: impl Iterator<Item = &'a Seen>) -> Bytes {
    let mut data = BytesMut::new();
    for seen in entries {
        data.put_u64_le(seen.index);
        data.put_u32_le(seen.log_type.len() as u32);
        data.put_slice(seen.log_type.as_bytes());
        data.put_u32_le(seen.payload.len() as u32);
        data.put_slice(&seen.payload);
    }
    data.freeze()
}

/// The entries [`encode`] wrote.
fn decode(mut data: &[u8]) -> std::io::Result<Vec<Seen>> {
    let mut seen = Vec::new();
    let field = |data: &mut &[u8]| {
        let len = data.try_get_u32_le().ok()? as usize;
        let bytes = Bytes::copy_from_slice(data.get(..len)?);
        data.advance(len);
        Some(bytes)
    };
    while data.has_remaining() {
        let (Ok(index), Some(log_type), Some(payload)) =
            (data.try_get_u64_le(), field(&mut data), field(&mut data))
        else {
            return Err(std::io::Error::other("truncated entries"));
        };
        seen.push(Seen {
            index,
            log_type: String::from_utf8_lossy(&log_type).into_owned(),
            payload,
        });
    }
    Ok(seen)
}

struct Import {
    live: Arc<Mutex<HashMap<PartitionId, Vec<Seen>>>>,
    partition: PartitionId,
    data: Vec<u8>,
    hold: Option<mpsc::Receiver<()>>,
}

impl SnapshotImport for Import {
    fn write_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some(hold) = self.hold.take() {
            let _ = hold.recv();
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let seen = decode(&self.data)?;
        self.live
            .lock()
            .expect("recorder")
            .insert(self.partition, seen);
        Ok(())
    }
}

impl Recorder {
    pub(crate) fn live(&self, partition: PartitionId) -> Vec<Seen> {
        let live = self.live.lock().expect("recorder");
        live.get(&partition).cloned().unwrap_or_default()
    }

    pub(crate) fn restored(&self, partition: PartitionId) -> Vec<Seen> {
        let restored = self.restored.lock().expect("recorder");
        restored.get(&partition).cloned().unwrap_or_default()
    }

    /// Live payloads of `partition`.
    pub(crate) fn payloads(&self, partition: PartitionId) -> Vec<Bytes> {
        self.live(partition)
            .into_iter()
            .map(|s| s.payload)
            .collect()
    }
}

/// A hook that blocks the first callback until released: returns the hook, a receiver that
/// fires when the callback is entered, and the sender that releases it.
pub(crate) fn gate() -> (Hook, mpsc::Receiver<()>, mpsc::SyncSender<()>) {
    let (entered_tx, entered_rx) = mpsc::sync_channel(1);
    let (release_tx, release_rx) = mpsc::sync_channel(1);
    let state = Mutex::new(Some((entered_tx, release_rx)));
    let hook: Hook = Box::new(move |_, _| {
        let taken = state.lock().expect("gate").take();
        if let Some((entered, release)) = taken {
            let _ = entered.send(());
            let _ = release.recv();
        }
    });
    (hook, entered_rx, release_tx)
}

/// Waits until a [`gate`]d callback is entered.
pub(crate) async fn wait_entered(entered: &mpsc::Receiver<()>) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while entered.try_recv().is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "callback not entered"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until `check` holds (`what` names it in the failure).
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Node 1 of a three-node configuration (`tweak`ed), started alone on `network`, not joined:
/// it can never elect a leader.
pub(crate) async fn start_alone(
    dir: &std::path::Path,
    network: &Arc<MemoryNetwork>,
    tweak: impl FnOnce(&mut NodeConfig),
) -> Raft {
    let mut config = test_config(1, 3, 1, dir);
    tweak(&mut config);
    let raft = Raft::builder(config)
        .state_machine(Arc::new(Recorder::default()))
        .transport(network.transport(NodeId(1)))
        .start()
        .await
        .expect("start");
    network.register(NodeId(1), raft.inbound());
    raft
}

/// A one-node cluster that wrote five entries on partition 1, restarted (not joined) with its
/// restore held in the first `on_log_restored` (one entry restored per turn). Returns it with
/// the receiver that fires once the restore is held and the sender that releases it.
pub(crate) async fn restarted_with_a_held_restore()
-> (TestCluster, mpsc::Receiver<()>, mpsc::SyncSender<()>) {
    let mut cluster =
        TestCluster::start_with(1, 1, None, |c| c.restore_entries_per_turn_max = 1).await;
    for k in 0..5u8 {
        cluster.replicate(PartitionId(1), &[k]).await;
    }
    cluster.stop_all().await;
    let recorder = Arc::new(Recorder::default());
    let (hook, entered, release) = gate();
    *recorder.on_restore.lock().expect("hook") = Some(hook);
    cluster.nodes[0].app = recorder;
    cluster.start_node(0).await;
    (cluster, entered, release)
}

/// Proposes `payload` as a two-phase entry (`auto_commit: false`) on `p`, on its leader `raft`.
pub(crate) async fn propose_held(raft: &Raft, p: PartitionId, payload: &'static str) -> Written {
    let options = ReplicateOptions {
        auto_commit: false,
        timeout: Some(PATIENCE),
        ..ReplicateOptions::default()
    };
    raft.replicate_logs(p, "held", payload, options)
        .await
        .expect(payload)
}

/// Settings for a test node: fast ticks, small WAL segments, 2 shards.
pub(crate) fn test_config(
    node: u64,
    nodes: u64,
    partitions: u32,
    dir: &std::path::Path,
) -> NodeConfig {
    let mut config = NodeConfig::new(node, dir.join(format!("node-{node}")));
    config.endpoint = format!("memory:{node}");
    config.peers = (1..=nodes)
        .filter(|&n| n != node)
        .map(|n| (n, format!("memory:{n}")))
        .collect::<BTreeMap<_, _>>();
    config.shards = 2;
    config.initial_partitions = partitions;
    config.tick_interval_ms = 5;
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 2;
    config.seed = 0x0c15 ^ node;
    config.wal_segment_bytes = 1 << 20;
    config.wal_batch_bytes_max = 256 << 10;
    config.wal_record_bytes_max = 64 << 10;
    config.join_timeout_ms = PATIENCE.as_millis() as u64;
    config
}

pub(crate) struct TestNode {
    pub(crate) config: NodeConfig,
    pub(crate) raft: Option<Raft>,
    pub(crate) app: Arc<Recorder>,
    /// Every event of every incarnation, collected by a subscriber task.
    pub(crate) events: Arc<Mutex<Vec<RaftEvent>>>,
}

/// Wraps a node's transport (a test's own filter of the messages it sends).
pub(crate) type WrapTransport =
    Arc<dyn Fn(NodeId, Arc<dyn Transport>) -> Arc<dyn Transport> + Send + Sync>;

pub(crate) struct TestCluster {
    pub(crate) network: Arc<MemoryNetwork>,
    pub(crate) faults: Option<Arc<FaultInjector>>,
    pub(crate) wrap: Option<WrapTransport>,
    pub(crate) nodes: Vec<TestNode>,
    pub(crate) partitions: u32,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts and joins `nodes` nodes with `partitions` user partitions.
    pub(crate) async fn start(nodes: u64, partitions: u32) -> Self {
        Self::start_with(nodes, partitions, None, |_| {}).await
    }

    pub(crate) async fn start_with(
        nodes: u64,
        partitions: u32,
        faults: Option<FaultRates>,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let injector = faults.map(|rates| {
            let injector = FaultInjector::new(0xfa17, 4096).expect("fault injector");
            injector.set_rates(rates);
            injector
        });
        Self::launch(nodes, partitions, injector, None, tweak).await
    }

    /// Starts and joins `nodes` nodes whose transports `wrap` wraps.
    pub(crate) async fn start_wrapped(nodes: u64, partitions: u32, wrap: WrapTransport) -> Self {
        Self::launch(nodes, partitions, None, Some(wrap), |_| {}).await
    }

    pub(crate) async fn launch(
        nodes: u64,
        partitions: u32,
        faults: Option<Arc<FaultInjector>>,
        wrap: Option<WrapTransport>,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Self {
            network: MemoryNetwork::new(),
            faults,
            wrap,
            nodes: Vec::new(),
            partitions,
            _dir: dir,
        };
        for node in 1..=nodes {
            let mut config = test_config(node, nodes, partitions, cluster._dir.path());
            tweak(&mut config);
            cluster.nodes.push(TestNode {
                config,
                raft: None,
                app: Arc::new(Recorder::default()),
                events: Arc::new(Mutex::new(Vec::new())),
            });
        }
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i).await;
        }
        cluster.join_all().await;
        cluster
    }

    /// Starts node `i` (not joined).
    pub(crate) async fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let id = NodeId(node.config.node_id);
        let memory: Arc<dyn Transport> = self.network.transport(id);
        let transport = match &self.faults {
            Some(faults) => faults.wrap(id, memory) as Arc<dyn Transport>,
            None => memory,
        };
        let transport = match &self.wrap {
            Some(wrap) => wrap(id, transport),
            None => transport,
        };
        let raft = Raft::builder(node.config.clone())
            .state_machine(node.app.clone())
            .state_transfer(node.app.clone())
            .transport(transport)
            .start()
            .await
            .expect("start");
        let mut events = raft.subscribe();
        let log = Arc::clone(&node.events);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => log.lock().expect("events").push(event),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        self.network.register(id, raft.inbound());
        self.network
            .register_endpoint(id, node.config.endpoint.clone());
        node.raft = Some(raft);
    }

    /// Adds node `node` (not started): no static peers, so that it joins through a seed
    /// ([`Raft::join_cluster_with_seeds`]), or (joined alone) is a one-node cluster. Returns
    /// its index.
    pub(crate) fn add_node(&mut self, node: u64, tweak: impl Fn(&mut NodeConfig)) -> usize {
        let mut config = test_config(node, 1, self.partitions, self._dir.path());
        config.peers.clear();
        tweak(&mut config);
        self.nodes.push(TestNode {
            config,
            raft: None,
            app: Arc::new(Recorder::default()),
            events: Arc::new(Mutex::new(Vec::new())),
        });
        self.nodes.len() - 1
    }

    /// A cluster of one node without peers (node 1), started and joined: the start of a
    /// cluster that grows through seeds.
    pub(crate) async fn start_single(partitions: u32, tweak: impl Fn(&mut NodeConfig)) -> Self {
        Self::start_single_wrapped(partitions, None, tweak).await
    }

    /// [`TestCluster::start_single`], every node's transport wrapped by `wrap` (those added
    /// later too).
    pub(crate) async fn start_single_wrapped(
        partitions: u32,
        wrap: Option<WrapTransport>,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let mut cluster = Self {
            network: MemoryNetwork::new(),
            faults: None,
            wrap,
            nodes: Vec::new(),
            partitions,
            _dir: tempfile::tempdir().expect("temp dir"),
        };
        cluster.add_node(1, tweak);
        cluster.start_node(0).await;
        cluster.join_all().await;
        cluster
    }

    /// Joins every running node concurrently.
    pub(crate) async fn join_all(&self) {
        let mut joins = tokio::task::JoinSet::new();
        for node in &self.nodes {
            if let Some(raft) = &node.raft {
                joins.spawn(raft.join_cluster(None));
            }
        }
        while let Some(joined) = joins.join_next().await {
            joined.expect("join task").expect("joined");
        }
    }

    /// Node `i`'s handle.
    pub(crate) fn raft(&self, i: usize) -> &Raft {
        self.nodes[i].raft.as_ref().expect("node running")
    }

    /// The user partitions.
    pub(crate) fn user_partitions(&self) -> Vec<PartitionId> {
        (1..=self.partitions).map(PartitionId).collect()
    }

    /// The index of the node leading `p`, once one leads and every running node knows it.
    pub(crate) async fn leader(&self, p: PartitionId) -> usize {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let views: Vec<Option<Leadership>> = self
                .nodes
                .iter()
                .filter_map(|n| n.raft.as_ref())
                .map(|r| r.leadership(p))
                .collect();
            let leaders: Vec<usize> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.raft.as_ref().is_some_and(|r| r.am_i_leader_quick(p)))
                .map(|(i, _)| i)
                .collect();
            if let [leader] = leaders[..] {
                let id = NodeId(self.nodes[leader].config.node_id);
                if views
                    .iter()
                    .all(|v| v.is_some_and(|v| v.leader == Some(id)))
                {
                    return leader;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader for {p}: {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Replicates on `p`'s leader (retrying while leadership moves) and returns the result.
    pub(crate) async fn replicate(&self, p: PartitionId, payload: &[u8]) -> Written {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let leader = self.leader(p).await;
            let result = self
                .raft(leader)
                .replicate_logs(
                    p,
                    "test",
                    Bytes::copy_from_slice(payload),
                    ReplicateOptions::default(),
                )
                .await;
            match result {
                Ok(written) => return written,
                Err(ReplicateError::NotLeader { .. } | ReplicateError::LeadershipLost { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    // `LeadershipLost` is indeterminate: these tests use unique payloads and
                    // only count on acknowledged ones.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(other) => panic!("replicate on {p}: {other:?}"),
            }
        }
    }

    /// Waits until every running node's application holds `count` live entries of `p`.
    pub(crate) async fn wait_delivered(&self, p: PartitionId, count: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let counts: Vec<usize> = self
                .nodes
                .iter()
                .filter(|n| n.raft.is_some())
                .map(|n| n.app.live(p).len())
                .collect();
            if counts.iter().all(|&c| c >= count) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{p}: deliveries {counts:?}, expected {count}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every running node reported `RestoreFinished` for each of `partitions`.
    pub(crate) async fn wait_restored(&self, partitions: &[PartitionId]) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let pending: Vec<(u64, PartitionId)> = self
                .nodes
                .iter()
                .filter(|n| n.raft.is_some())
                .flat_map(|n| {
                    let events = n.events.lock().expect("events");
                    partitions
                        .iter()
                        .filter(|&&p| {
                            !events.iter().any(|e| {
                                matches!(e, RaftEvent::RestoreFinished { partition, .. } if *partition == p)
                            })
                        })
                        .map(|&p| (n.config.node_id, p))
                        .collect::<Vec<_>>()
                })
                .collect();
            if pending.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "restores not finished (node, partition): {pending:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops node `i` if it runs (it makes what it appended durable).
    pub(crate) async fn stop_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(raft) = node.raft.take() {
            self.network.unregister(NodeId(node.config.node_id));
            raft.shutdown().await;
        }
    }

    /// Stops every node (each makes what it appended durable).
    pub(crate) async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }

    /// Checks that no partition had two leaders in one term, over every event of every node.
    pub(crate) fn assert_one_leader_per_term(&self) {
        let mut leaders: HashMap<(PartitionId, Term), NodeId> = HashMap::new();
        for node in &self.nodes {
            for event in node.events.lock().expect("events").iter() {
                if let RaftEvent::LeaderChanged {
                    partition,
                    leader: Some(leader),
                    term,
                    ..
                } = event
                {
                    let first = *leaders.entry((*partition, *term)).or_insert(*leader);
                    assert_eq!(first, *leader, "two leaders of {partition} in {term}");
                }
            }
        }
    }
}

/// The role of `raft` on `p`, asked of its replica.
pub(crate) async fn role(raft: &Raft, p: PartitionId) -> Role {
    raft.partition_status(p).await.expect("status").role
}
