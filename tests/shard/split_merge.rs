//! Split and merge on the partitions themselves (decision 0006, amendment "split and merge,
//! precisely"): three nodes of `ShardHost`s (2 shards each) whose phase-1 maps the test
//! proposes on partition 0 by hand; partition 0's leader's shard proposes phase 2 on its own
//! once the import ended (the test holds the exports until it checked what phase 1 refuses).
//!
//! * A split: the source's leader writes its generation entry; a write routed with the old
//!   generation is refused even by a leader whose node's partition 0 is cut off (its map still
//!   the old one: only its log knows); the target refuses writes until phase 2; the target's
//!   log carries the import and every replica's application holds the moved registers; phase
//!   2 makes both serve.
//! * A merge: applications may not write the split entries' log types; the draining source
//!   refuses every write; the survivor's replicas import its
//!   registers; phase 2 closes the source on every node and deletes its WAL records.
//!
//! * The split marks travel with a snapshot: a follower cut off across a split's generation
//!   entry, its node's map held back, that catches up by a snapshot past the entry refuses
//!   fenced reads and writes routed with the old generation, and still after a restart; a
//!   target's replica that catches up by a snapshot past the import's end counts the end as
//!   applied, so phase 2 follows when its node leads partition 0.
//!
//! The application is a register per key (`key=value` entries), routed by Kommander's key
//! hash, with a range transfer over its registers and snapshots of a partition's registers.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kommander_raft::core::{LogIndex, Message, NodeId, PartitionId, Role, Status, Ticket};
use kommander_raft::node::NodeConfig;
use kommander_raft::shard::partitions::{
    GENERATION_LOG_TYPE, IMPORT_LOG_TYPE, MapTable, PartitionMap, RangeState, SYSTEM_LOG_TYPE,
    key_hash, transfer_into,
};
use kommander_raft::shard::{
    Application, EventSink, LogEntry, PartitionStatus, ProposedEntry, RaftEvent, RangeTransfer,
    Refusal, ReplicationResult, Request, ShardConfig, ShardHost, SnapshotExport, SnapshotImport,
    SnapshotPoint, StateMachine, StateTransfer, shard_of,
};
use kommander_raft::transport::Transport;
use kommander_raft::transport::memory::{MemoryNetwork, MemoryTransport};
use kommander_wal::Wal;
use tokio::sync::oneshot;

use crate::runtime::harness::{eventually, wait};

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
const P2: PartitionId = PartitionId(2);
/// A register's value: 2 KiB, so the moved half of 60 registers takes several chunks.
const VALUE_BYTES: usize = 2 << 10;
const KEYS: usize = 60;

type Registers = BTreeMap<String, Bytes>;

/// The registers of every partition.
type Partitions = Arc<Mutex<HashMap<PartitionId, Registers>>>;

/// Registers per partition; a range transfer over them (keys routed by `key_hash`), and
/// snapshots of a user partition's registers.
#[derive(Default)]
struct Store {
    registers: Partitions,
    /// Per target, the bytes of a record an import chunk ended inside.
    partial: Mutex<HashMap<PartitionId, Vec<u8>>>,
    /// While set, a range export fails (tried again at the next tick): phase 2 waits.
    hold_exports: AtomicBool,
    /// The partitions this node installed a snapshot of (its events).
    installed: Mutex<Vec<PartitionId>>,
}

impl EventSink for Store {
    fn emit(&self, event: RaftEvent) {
        if let RaftEvent::SnapshotInstalled { partition, .. } = event {
            self.installed.lock().expect("installed").push(partition);
        }
    }
}

impl Store {
    fn registers(&self, partition: PartitionId) -> Registers {
        let store = self.registers.lock().expect("store");
        store.get(&partition).cloned().unwrap_or_default()
    }

    fn set(&self, partition: PartitionId, key: String, value: Bytes) {
        let mut store = self.registers.lock().expect("store");
        store.entry(partition).or_default().insert(key, value);
    }
}

/// `key` and `value` as one entry payload (and an export's record): the key's length (`u16`),
/// the key, the value's length (`u32`), the value.
fn record(key: &str, value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// The records of `bytes`, or `None` when they do not decode.
fn records(mut bytes: &[u8]) -> Option<Vec<(String, Bytes)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let (key, rest) = rest.split_at_checked(usize::from(u16::from_le_bytes(*len)))?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let (value, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        out.push((
            String::from_utf8(key.to_vec()).ok()?,
            Bytes::copy_from_slice(value),
        ));
        bytes = rest;
    }
    Some(out)
}

impl StateMachine for Store {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        let Some(written) = records(&entry.payload) else {
            return false;
        };
        for (key, value) in written {
            self.set(partition, key, value);
        }
        true
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.on_replication_received(partition, entry)
    }
}

/// A snapshot of a partition's registers being imported: its records, which replace the
/// partition's registers once finished.
struct RegistersImport {
    registers: Partitions,
    partition: PartitionId,
    data: Vec<u8>,
}

impl SnapshotImport for RegistersImport {
    fn write_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        let held = records(&self.data).ok_or_else(|| io::Error::other("bad records"))?;
        let mut store = self.registers.lock().expect("store");
        store.insert(self.partition, held.into_iter().collect());
        Ok(())
    }
}

impl StateTransfer for Store {
    /// Partition 0 holds no registers (its state is the map, which this test commits).
    fn supports(&self, partition: PartitionId) -> bool {
        partition != P0
    }

    fn export(
        &self,
        partition: PartitionId,
        _: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotExport>> {
        let mut data = Vec::new();
        for (key, value) in self.registers(partition) {
            record(&key, &value, &mut data);
        }
        Ok(Box::new(Bytes::from(data)))
    }

    fn import(
        &self,
        partition: PartitionId,
        _: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotImport>> {
        Ok(Box::new(RegistersImport {
            registers: Arc::clone(&self.registers),
            partition,
            data: Vec::new(),
        }))
    }

    fn export_range(&self, plan: &RangeTransfer) -> io::Result<Option<Box<dyn SnapshotExport>>> {
        if self.hold_exports.load(Ordering::Acquire) {
            return Err(io::Error::other("exports are held"));
        }
        let mut data = Vec::new();
        for (key, value) in self.registers(plan.source) {
            if plan.holds(key_hash(&key)) {
                record(&key, &value, &mut data);
            }
        }
        Ok(Some(Box::new(Bytes::from(data))))
    }

    fn import_range_begin(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
    ) -> io::Result<()> {
        // An import begun again: what a chunk left half done is dropped (the registers set
        // are the source's frozen values, set again by the new import).
        self.partial.lock().expect("partial").remove(&target);
        Ok(())
    }

    fn import_range_chunk(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
        data: &[u8],
    ) -> io::Result<()> {
        // A record may straddle two chunks: the tail waits for the next one.
        let mut pending = self.partial.lock().expect("partial");
        let tail = pending.entry(target).or_default();
        tail.extend_from_slice(data);
        let mut complete = 0;
        let mut at = &tail[..];
        while let Some((len, rest)) = at.split_first_chunk::<2>() {
            let Some((_, rest)) = rest.split_at_checked(usize::from(u16::from_le_bytes(*len)))
            else {
                break;
            };
            let Some((len, rest)) = rest.split_first_chunk::<4>() else {
                break;
            };
            let Some((_, rest)) = rest.split_at_checked(u32::from_le_bytes(*len) as usize) else {
                break;
            };
            complete = tail.len() - rest.len();
            at = rest;
        }
        let done: Vec<u8> = tail.drain(..complete).collect();
        drop(pending);
        for (key, value) in records(&done).ok_or_else(|| io::Error::other("bad records"))? {
            self.set(target, key, value);
        }
        Ok(())
    }
}

/// The node cut off (`NodeId(0)`: none) and the partitions whose messages it loses.
type Cut = Arc<Mutex<(NodeId, Vec<PartitionId>)>>;

/// Drops the cut partitions' messages to and from the node cut off.
struct CutTransport {
    inner: Arc<MemoryTransport>,
    from: NodeId,
    cut: Cut,
}

impl Transport for CutTransport {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        let (cut, partitions) = self.cut.lock().expect("cut").clone();
        let messages = if cut == self.from || cut == to {
            messages
                .into_iter()
                .filter(|m| !partitions.contains(&m.partition))
                .collect()
        } else {
            messages
        };
        if !messages.is_empty() {
            self.inner.send(to, messages);
        }
    }
}

struct Node {
    config: NodeConfig,
    host: ShardHost,
    maps: Arc<MapTable>,
    store: Arc<Store>,
}

struct Cluster {
    nodes: Vec<Node>,
    cut: Cut,
    next_ticket: u64,
    network: Arc<MemoryNetwork>,
}

/// Starts the node of `config` (again, after a restart: its WAL restores its partitions)
/// with the application `store`, and opens its partition 0.
fn start_node(
    network: &Arc<MemoryNetwork>,
    cut: &Cut,
    config: NodeConfig,
    store: Arc<Store>,
) -> Node {
    let id = NodeId(config.node_id);
    let maps = Arc::new(MapTable::default());
    let transport = CutTransport {
        inner: network.transport(id),
        from: id,
        cut: Arc::clone(cut),
    };
    let host = ShardHost::start(
        ShardConfig::from(&config),
        Arc::new(transport),
        Application::new(Arc::clone(&store) as Arc<dyn StateMachine>)
            .with_transfer(Arc::clone(&store) as Arc<dyn StateTransfer>)
            .with_maps(Arc::clone(&maps)),
        Arc::clone(&store) as Arc<dyn EventSink>,
        Arc::default(),
    )
    .expect("node starts");
    network.register(id, host.inbound());
    let voters = (1..=3).map(NodeId).collect();
    wait(host.open_partition(P0, voters, Vec::new()).expect("queued")).expect("partition 0 opens");
    Node {
        config,
        host,
        maps,
        store,
    }
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        let network = MemoryNetwork::new();
        let cut = Cut::default();
        let nodes = (1..=3u64)
            .map(|id| {
                let mut config = super::three_node_config(id, dir);
                // A leader keeps no entry below a checkpoint for a lagging follower: it
                // catches up by a snapshot.
                config.compaction_retain_entries_max = 0;
                start_node(&network, &cut, config, Arc::default())
            })
            .collect();
        let cluster = Self {
            nodes,
            cut,
            next_ticket: 1,
            network,
        };
        cluster.leader(P0);
        cluster
    }

    /// A cluster whose first map (of `ranges` ranges) is in force on every node, with every
    /// key written once: the map and the values written.
    fn with_keys(dir: &Path, ranges: u32) -> (Self, PartitionMap, Registers) {
        let mut cluster = Self::start(dir);
        let map = PartitionMap::initial(ranges).expect("a map");
        cluster.commit_map(&map, &[0, 1, 2]);
        let written = cluster.write_keys(&map, 1);
        (cluster, map, written)
    }

    /// Node `node` loses every message of `partitions` (and no other) until the next cut or
    /// [`Cluster::heal`].
    fn cut_off(&self, node: usize, partitions: &[PartitionId]) {
        *self.cut.lock().expect("cut") = (NodeId(node as u64 + 1), partitions.to_vec());
    }

    fn heal(&self) {
        *self.cut.lock().expect("cut") = (NodeId(0), Vec::new());
    }

    /// Stops node `node` and starts it again from its WAL, with its application's state (the
    /// store keeps it, as a durable application would).
    fn restart(&mut self, node: usize) {
        let Node {
            config,
            host,
            store,
            ..
        } = self.nodes.remove(node);
        host.shutdown();
        let restarted = start_node(&self.network, &self.cut, config, store);
        self.nodes.insert(node, restarted);
    }

    /// A fenced read of `partition` on `node`, routed with `generation`: the read index.
    fn read_on(
        &self,
        node: usize,
        partition: PartitionId,
        generation: u64,
    ) -> Result<LogIndex, Refusal> {
        let (reply, answered) = oneshot::channel();
        let request = Request::Fenced {
            expected_generation: NonZeroU64::new(generation).expect("a generation"),
            request: Box::new(Request::ReadIndex {
                leader_only: false,
                reply,
            }),
        };
        self.nodes[node].host.send(partition, request)?;
        wait(answered)
    }

    /// A checkpoint of `partition` on its leader, once it is the floor of `nodes`' replicas:
    /// its index.
    fn checkpoint(&mut self, partition: PartitionId, nodes: &[usize]) -> LogIndex {
        self.next_ticket += 1;
        let (reply, answered) = oneshot::channel();
        let request = Request::Checkpoint {
            ticket: Ticket(self.next_ticket),
            reply,
        };
        let leader = self.leader(partition);
        self.nodes[leader]
            .host
            .send(partition, request)
            .expect("queued");
        let checkpoint = wait(answered).expect("a checkpoint");
        assert_eq!(checkpoint.status, Status::Success);
        for &node in nodes {
            eventually(&format!("{partition}'s floor on node {node}"), || {
                let status = self.status(node, partition).ok()?;
                (status.wal_floor >= checkpoint.index).then_some(())
            });
        }
        checkpoint.index
    }

    fn status(&self, node: usize, partition: PartitionId) -> Result<PartitionStatus, Refusal> {
        let (reply, answered) = oneshot::channel();
        self.nodes[node]
            .host
            .send(partition, Request::Status { reply })?;
        wait(answered)
    }

    /// The node leading `partition` (with an entry of its term committed).
    fn leader(&self, partition: PartitionId) -> usize {
        eventually(&format!("a leader of {partition}"), || {
            (0..self.nodes.len()).find(|&i| {
                self.status(i, partition)
                    .is_ok_and(|s| s.role == Role::Leader && s.commit.0 > 0)
            })
        })
    }

    /// Proposes `entry` to `partition` on `node`, fenced with `generation` (0: unfenced); the
    /// answer.
    fn write_on(
        &mut self,
        node: usize,
        partition: PartitionId,
        generation: u64,
        entry: ProposedEntry,
    ) -> Result<ReplicationResult, Refusal> {
        self.next_ticket += 1;
        let (reply, answered) = oneshot::channel();
        let propose = Request::Propose {
            entries: vec![entry],
            auto_commit: true,
            ticket: Ticket(self.next_ticket),
            reply,
        };
        let request = match NonZeroU64::new(generation) {
            Some(expected_generation) => Request::Fenced {
                expected_generation,
                request: Box::new(propose),
            },
            None => propose,
        };
        self.nodes[node].host.send(partition, request)?;
        wait(answered)
    }

    /// Writes `entry` to `partition`'s leader until it succeeds.
    fn write(&mut self, partition: PartitionId, generation: u64, entry: ProposedEntry) {
        let mut attempts = 0;
        loop {
            let leader = self.leader(partition);
            match self.write_on(leader, partition, generation, entry.clone()) {
                Ok(ReplicationResult {
                    status: Status::Success,
                    ..
                }) => return,
                other => {
                    attempts += 1;
                    assert!(attempts < 200, "a write to {partition}: {other:?}");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }

    /// Commits `map` on partition 0 and waits until `nodes` have it in force.
    fn commit_map(&mut self, map: &PartitionMap, nodes: &[usize]) {
        let entry = ProposedEntry {
            log_type: SYSTEM_LOG_TYPE.to_owned(),
            payload: Bytes::from(map.encode()),
        };
        self.write(P0, 0, entry);
        for &node in nodes {
            eventually(&format!("map {} in force on {node}", map.version), || {
                (self.nodes[node].maps.in_force().version == map.version).then_some(())
            });
        }
    }

    /// Waits until `map` is in force on `nodes` (proposed by partition 0's leader itself).
    fn wait_map(&self, map: &PartitionMap, nodes: &[usize]) {
        for &node in nodes {
            eventually(&format!("map {} in force on {node}", map.version), || {
                (self.nodes[node].maps.in_force().version >= map.version).then_some(())
            });
            assert_eq!(*self.nodes[node].maps.map(), *map, "node {node}");
        }
    }

    /// Holds (or releases) every node's range exports.
    fn hold_exports(&self, held: bool) {
        for node in &self.nodes {
            node.store.hold_exports.store(held, Ordering::Release);
        }
    }

    /// Writes every key, each to the partition `map` routes it to, fenced with its range's
    /// generation; the values written.
    fn write_keys(&mut self, map: &PartitionMap, round: u8) -> Registers {
        let mut written = Registers::new();
        for n in 0..KEYS {
            let key = format!("key-{n}");
            let partition = map.partition_for_key(&key).expect("routed");
            let generation = map.get(partition).expect("range").generation;
            let value = Bytes::from(vec![round.wrapping_add(n as u8); VALUE_BYTES]);
            self.write(partition, generation, put(&key, &value));
            written.insert(key, value);
        }
        written
    }

    /// Hands `partition`'s leadership to `node`.
    fn lead_on(&self, partition: PartitionId, node: usize) {
        eventually(&format!("node {node} leads {partition}"), || {
            let leader = self.leader(partition);
            if leader == node {
                return Some(());
            }
            let (reply, answered) = oneshot::channel();
            let target = NodeId(node as u64 + 1);
            let request = Request::TransferLeadership { target, reply };
            self.nodes[leader].host.send(partition, request).ok()?;
            let _ = wait(answered);
            std::thread::sleep(std::time::Duration::from_millis(20));
            None
        });
    }

    fn shutdown(self) -> Vec<NodeConfig> {
        self.nodes
            .into_iter()
            .map(|node| {
                node.host.shutdown();
                node.config
            })
            .collect()
    }
}

fn put(key: &str, value: &[u8]) -> ProposedEntry {
    let mut payload = Vec::new();
    record(key, value, &mut payload);
    ProposedEntry {
        log_type: "put".to_owned(),
        payload: Bytes::from(payload),
    }
}

/// Whether `held` are exactly `expected`; else the keys that differ (the values are too long
/// to print).
fn same(held: &Registers, expected: &Registers) -> Result<(), String> {
    if held == expected {
        return Ok(());
    }
    let differ: Vec<&String> = held
        .keys()
        .chain(expected.keys())
        .filter(|key| held.get(*key) != expected.get(*key))
        .collect();
    Err(format!("registers differ at {differ:?}"))
}

/// A key the source keeps after a split at `plan` (its hash below the moved range).
fn kept_key(plan: &RangeTransfer, name: &str) -> String {
    (0..)
        .map(|n| format!("{name}-{n}"))
        .find(|key| !plan.holds(key_hash(key)))
        .expect("a key below the boundary")
}

/// The registers of `written` whose key `plan` moves.
fn moved(written: &Registers, plan: &RangeTransfer) -> Registers {
    written
        .iter()
        .filter(|(key, _)| plan.holds(key_hash(key)))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

#[test]
fn a_split_freezes_the_source_in_its_log_and_fills_the_target_through_its_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, written) = Cluster::with_keys(dir.path(), 1);

    // Node 3's partition 0 is cut off: it never learns phase 1 from its map. The source's
    // leader is a node that does (a leader whose map lags writes no generation entry until
    // its map catches up).
    cluster.lead_on(P1, 0);
    cluster.cut_off(2, &[P0]);
    let one = map.split_phase_1(P1, None, None).expect("phase 1");
    let plan = transfer_into(&one, P2).expect("the target imports");
    cluster.hold_exports(true);
    cluster.commit_map(&one, &[0, 1]);

    // The source's leader writes its generation entry; node 3's replica of it applies it.
    eventually(
        "node 3's replica of partition 1 applied generation 2",
        || (cluster.nodes[2].maps.progress().generation_applied(P1) == (2, false)).then_some(()),
    );
    // Node 3 leads partition 1 with the old map: only its log knows the generation.
    cluster.lead_on(P1, 2);
    assert_eq!(cluster.nodes[2].maps.map().version, 1, "node 3's map lags");
    let stale = cluster.write_on(2, P1, 1, put(&kept_key(&plan, "stale"), b"old"));
    assert_eq!(
        stale,
        Err(Refusal::NotHosted),
        "routed with the old generation"
    );
    let current = cluster.write_on(2, P1, 2, put(&kept_key(&plan, "current"), b"new"));
    assert!(
        matches!(
            current,
            Ok(ReplicationResult {
                status: Status::Success,
                ..
            })
        ),
        "routed with the new generation: {current:?}"
    );
    // And on a node whose map has phase 1.
    cluster.lead_on(P1, 0);
    let stale = cluster.write_on(0, P1, 1, put(&kept_key(&plan, "stale"), b"old"));
    assert_eq!(stale, Err(Refusal::NotHosted));

    // The target refuses writes until phase 2, fenced or not.
    let target_leader = cluster.leader(P2);
    for generation in [0, 1] {
        let refused = cluster.write_on(target_leader, P2, generation, put("key-early", b"x"));
        assert_eq!(refused, Err(Refusal::NotHosted), "generation {generation}");
    }
    cluster.hold_exports(false);

    // The target's log carries the import: every replica's application holds the moved
    // registers, and nothing else.
    let expected = moved(&written, &plan);
    assert!(expected.len() > 10, "the split moves registers");
    for node in [0, 1] {
        eventually(&format!("node {node} applied the import's end"), || {
            (cluster.nodes[node].maps.progress().import_applied(P2) == Some(plan)).then_some(())
        });
        let held = cluster.nodes[node].store.registers(P2);
        assert_eq!(same(&held, &expected), Ok(()), "node {node}");
    }
    // Node 3 catches up on partition 0, opens the target and replays its log.
    cluster.heal();
    eventually("node 3 follows phase 1", || {
        (cluster.nodes[2].maps.in_force().version >= one.version).then_some(())
    });
    eventually(
        "node 3's replica of the target holds the moved registers",
        || (cluster.nodes[2].store.registers(P2) == expected).then_some(()),
    );

    // Phase 2, proposed by partition 0's leader: both serve, at their new generations.
    let two = one.split_phase_2(P1).expect("phase 2");
    cluster.wait_map(&two, &all);
    let rewritten = cluster.write_keys(&two, 2);
    for (partition, generation) in [(P1, 3), (P2, 2)] {
        assert_eq!(two.get(partition).map(|r| r.generation), Some(generation));
    }
    for node in 0..3 {
        let upper = cluster.nodes[node].store.registers(P2);
        eventually("the target holds the writes after phase 2", || {
            same(
                &cluster.nodes[node].store.registers(P2),
                &moved(&rewritten, &plan),
            )
            .ok()
        });
        assert!(upper.keys().all(|key| plan.holds(key_hash(key))));
    }
    cluster.shutdown();
}

#[test]
fn a_merge_drains_the_source_then_closes_it_and_reclaims_its_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, written) = Cluster::with_keys(dir.path(), 2);

    // Applications may not write the log types of the split entries.
    for log_type in [GENERATION_LOG_TYPE, IMPORT_LOG_TYPE] {
        let forged = ProposedEntry {
            log_type: log_type.to_owned(),
            payload: Bytes::from_static(&[1; 10]),
        };
        let leader = cluster.leader(P2);
        let refused = cluster.write_on(leader, P2, 0, forged);
        assert_eq!(
            refused,
            Err(Refusal::Replica(Status::Errored)),
            "{log_type}"
        );
    }

    let one = map.merge_phase_1(P1, P2).expect("phase 1");
    let plan = transfer_into(&one, P1).expect("the survivor imports");
    cluster.hold_exports(true);
    cluster.commit_map(&one, &all);
    // The draining source refuses every client write, fenced or not.
    eventually("partition 2 applied its draining entry", || {
        (0..3)
            .all(|n| cluster.nodes[n].maps.progress().generation_applied(P2) == (2, true))
            .then_some(())
    });
    let source_leader = cluster.leader(P2);
    for generation in [0, 1, 2] {
        let refused = cluster.write_on(source_leader, P2, generation, put("key-late", b"x"));
        assert_eq!(refused, Err(Refusal::NotHosted), "generation {generation}");
    }
    // The survivor keeps serving its own range while it imports.
    let own = cluster.write_on(cluster.leader(P1), P1, 1, put("key-own", b"y"));
    assert!(matches!(
        own,
        Ok(ReplicationResult {
            status: Status::Success,
            ..
        })
    ));
    cluster.hold_exports(false);

    let expected = moved(&written, &plan);
    assert!(expected.len() > 10, "the merge moves registers");
    for node in 0..3 {
        eventually(&format!("node {node} applied the import's end"), || {
            (cluster.nodes[node].maps.progress().import_applied(P1) == Some(plan)).then_some(())
        });
        let survivor = cluster.nodes[node].store.registers(P1);
        for (key, value) in &expected {
            assert_eq!(survivor.get(key), Some(value), "node {node} imported {key}");
        }
    }

    // Phase 2, proposed by partition 0's leader: the survivor owns both ranges, the source
    // closes on every node.
    let two = one.merge_phase_2(P2).expect("phase 2");
    cluster.wait_map(&two, &all);
    for node in 0..3 {
        assert_eq!(cluster.status(node, P2), Err(Refusal::NotHosted));
    }
    assert_eq!(two.get(P2).map(|r| r.state), Some(RangeState::Removed));
    cluster.write_keys(&two, 2);
    for config in cluster.shutdown() {
        let shard = shard_of(P2, 2);
        let wal = Wal::open(
            config.data_dir.join(format!("shard-{shard}")),
            config.wal_config(),
        )
        .expect("the WAL opens");
        assert!(
            matches!(
                wal.partition(P2),
                Err(kommander_wal::Error::UnknownPartition { .. })
            ),
            "partition 2's records are deleted"
        );
    }
}

/// Whether `node` refuses `partition` to readers and writers routed with `stale` (`node`
/// leading it for the writes), and lets a write routed with `current` through.
fn refuses_the_old_generation(
    cluster: &mut Cluster,
    node: usize,
    partition: PartitionId,
    (stale, current): (u64, u64),
) {
    // A replica that admitted the read asks its leader for the read index: once it knows
    // one, the answer is the index (a stale read) or the refusal.
    let read = eventually("a fenced read's answer", || {
        match cluster.read_on(node, partition, stale) {
            Err(Refusal::NotLeader { .. }) => None,
            answer => Some(answer),
        }
    });
    assert_eq!(
        read,
        Err(Refusal::NotHosted),
        "a fenced read routed with generation {stale}"
    );
    cluster.lead_on(partition, node);
    assert_eq!(
        cluster.write_on(node, partition, stale, put("key-stale", b"old")),
        Err(Refusal::NotHosted),
        "a fenced write routed with generation {stale}"
    );
    let written = cluster.write_on(node, partition, current, put("key-current", b"new"));
    assert!(
        matches!(
            written,
            Ok(ReplicationResult {
                status: Status::Success,
                ..
            })
        ),
        "a fenced write routed with generation {current}: {written:?}"
    );
}

/// Elastic seed 17's stale read at shard level: node 3 misses partition 1's generation entry
/// (cut off), its map stays the old one (partition 0 cut off too), and it catches up on
/// partition 1 by a snapshot past the entry. The snapshot's split marks make it refuse the old
/// generation, and its floor meta keeps them across a restart.
#[test]
fn a_replica_caught_up_by_a_snapshot_past_a_generation_entry_fences_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, _) = Cluster::with_keys(dir.path(), 1);

    cluster.lead_on(P1, 0);
    cluster.cut_off(2, &[P0, P1]);
    let one = map.split_phase_1(P1, None, None).expect("phase 1");
    // The target's import waits: the split stays in phase 1.
    cluster.hold_exports(true);
    cluster.commit_map(&one, &[0, 1]);
    for node in [0, 1] {
        eventually(&format!("node {node} applied generation 2"), || {
            (cluster.nodes[node].maps.progress().generation_applied(P1) == (2, false)).then_some(())
        });
    }
    // Partition 1's log is compacted past its generation entry; node 3 hears it again
    // (partition 0 still cut off) and catches up by a snapshot.
    let floor = cluster.checkpoint(P1, &[0, 1]);
    cluster.cut_off(2, &[P0]);
    eventually("node 3 installed partition 1's snapshot", || {
        let installed = cluster.nodes[2].store.installed.lock().expect("installed");
        installed.contains(&P1).then_some(())
    });
    let status = cluster.status(2, P1).expect("partition 1 on node 3");
    assert!(
        status.wal_floor >= floor,
        "the snapshot is past the generation entry"
    );
    assert_eq!(
        cluster.nodes[2].maps.map().version,
        map.version,
        "node 3's map lags"
    );
    refuses_the_old_generation(&mut cluster, 2, P1, (1, 2));
    assert_eq!(
        cluster.nodes[2].maps.progress().generation_applied(P1),
        (2, false),
        "the snapshot's marks count as applied"
    );

    // After a restart (partition 0 still cut off: its map is the old one again), the floor
    // meta the snapshot's boundary wrote keeps the marks.
    cluster.lead_on(P1, 0);
    cluster.restart(2);
    eventually("node 3 restored partition 1", || {
        cluster.status(2, P1).ok().map(|_| ())
    });
    assert_eq!(
        cluster.nodes[2].maps.map().version,
        map.version,
        "node 3's map lags"
    );
    refuses_the_old_generation(&mut cluster, 2, P1, (1, 2));
    cluster.heal();
    cluster.hold_exports(false);
    cluster.wait_map(&one.split_phase_2(P1).expect("phase 2"), &all);
    cluster.shutdown();
}

/// A target's replica that catches up by a snapshot past the import's end counts the end as
/// applied: with its node leading partition 0, phase 2 follows from it (without the marks in
/// the snapshot it would wait for an import entry that never comes).
#[test]
fn an_import_end_carried_by_a_snapshot_lets_phase_2_follow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, written) = Cluster::with_keys(dir.path(), 1);

    // Node 3 leads partition 0 and misses the target's whole log.
    cluster.lead_on(P0, 2);
    cluster.cut_off(2, &[P2]);
    let one = map.split_phase_1(P1, None, None).expect("phase 1");
    let plan = transfer_into(&one, P2).expect("the target imports");
    cluster.commit_map(&one, &all);
    for node in [0, 1] {
        eventually(&format!("node {node} applied the import's end"), || {
            (cluster.nodes[node].maps.progress().import_applied(P2) == Some(plan)).then_some(())
        });
    }
    cluster.checkpoint(P2, &[0, 1]);
    assert_eq!(cluster.nodes[2].maps.progress().import_applied(P2), None);
    assert_eq!(
        cluster.nodes[2].maps.map().version,
        one.version,
        "phase 2 waits"
    );

    cluster.heal();
    eventually("node 3 installed the target's snapshot", || {
        let installed = cluster.nodes[2].store.installed.lock().expect("installed");
        installed.contains(&P2).then_some(())
    });
    eventually(
        "node 3's replica of the target counts the import's end",
        || (cluster.nodes[2].maps.progress().import_applied(P2) == Some(plan)).then_some(()),
    );
    assert_eq!(
        same(
            &cluster.nodes[2].store.registers(P2),
            &moved(&written, &plan)
        ),
        Ok(()),
        "the snapshot carried the moved registers"
    );
    cluster.wait_map(&one.split_phase_2(P1).expect("phase 2"), &all);
    assert_eq!(cluster.leader(P0), 2, "node 3 led partition 0 throughout");
    cluster.shutdown();
}
