//! The harness of the split and merge tests: three nodes of `ShardHost`s (2 shards each)
//! on a memory network that a test can cut per node and partition, an application of
//! registers per key with a range transfer and snapshots, and the steps the tests take
//! (maps committed by hand, writes routed with a generation, reads, checkpoints, restarts).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kommander_raft::core::{LogIndex, Message, NodeId, PartitionId, Role, Status, Ticket};
use kommander_raft::node::NodeConfig;
use kommander_raft::shard::partitions::{MapTable, PartitionMap, SYSTEM_LOG_TYPE, key_hash};
use kommander_raft::shard::{
    Application, EventSink, LogEntry, PartitionStatus, ProposedEntry, RaftEvent, RangeTransfer,
    Refusal, ReplicationResult, Request, ShardConfig, ShardHost, SnapshotExport, SnapshotImport,
    SnapshotPoint, StateMachine, StateTransfer,
};
use kommander_raft::transport::Transport;
use kommander_raft::transport::memory::{MemoryNetwork, MemoryTransport};
use tokio::sync::oneshot;

use crate::runtime::harness::{eventually, wait};

pub(super) const P0: PartitionId = PartitionId(0);
pub(super) const P1: PartitionId = PartitionId(1);
pub(super) const P2: PartitionId = PartitionId(2);
/// A register's value: 2 KiB, so the moved half of 60 registers takes several chunks.
const VALUE_BYTES: usize = 2 << 10;
const KEYS: usize = 60;

type Registers = BTreeMap<String, Bytes>;

/// The registers of every partition.
type Partitions = Arc<Mutex<HashMap<PartitionId, Registers>>>;

/// Registers per partition; a range transfer over them (keys routed by `key_hash`), and
/// snapshots of a user partition's registers.
#[derive(Default)]
pub(super) struct Store {
    registers: Partitions,
    /// Per target, the bytes of a record an import chunk ended inside.
    partial: Mutex<HashMap<PartitionId, Vec<u8>>>,
    /// While set, a range export fails (tried again at the next tick): phase 2 waits.
    hold_exports: AtomicBool,
    /// The partitions this node installed a snapshot of (its events).
    pub(super) installed: Mutex<Vec<PartitionId>>,
}

impl EventSink for Store {
    fn emit(&self, event: RaftEvent) {
        if let RaftEvent::SnapshotInstalled { partition, .. } = event {
            self.installed.lock().expect("installed").push(partition);
        }
    }
}

impl Store {
    pub(super) fn registers(&self, partition: PartitionId) -> Registers {
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

pub(super) struct Node {
    config: NodeConfig,
    host: ShardHost,
    pub(super) maps: Arc<MapTable>,
    pub(super) store: Arc<Store>,
}

pub(super) struct Cluster {
    pub(super) nodes: Vec<Node>,
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
                let mut config = crate::shard::three_node_config(id, dir);
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
    pub(super) fn with_keys(dir: &Path, ranges: u32) -> (Self, PartitionMap, Registers) {
        let mut cluster = Self::start(dir);
        let map = PartitionMap::initial(ranges).expect("a map");
        cluster.commit_map(&map, &[0, 1, 2]);
        let written = cluster.write_keys(&map, 1);
        (cluster, map, written)
    }

    /// Node `node` loses every message of `partitions` (and no other) until the next cut or
    /// [`Cluster::heal`].
    pub(super) fn cut_off(&self, node: usize, partitions: &[PartitionId]) {
        *self.cut.lock().expect("cut") = (NodeId(node as u64 + 1), partitions.to_vec());
    }

    pub(super) fn heal(&self) {
        *self.cut.lock().expect("cut") = (NodeId(0), Vec::new());
    }

    /// Stops node `node` and starts it again from its WAL, with its application's state (the
    /// store keeps it, as a durable application would).
    pub(super) fn restart(&mut self, node: usize) {
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
    pub(super) fn read_on(
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
    pub(super) fn checkpoint(&mut self, partition: PartitionId, nodes: &[usize]) -> LogIndex {
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

    pub(super) fn status(
        &self,
        node: usize,
        partition: PartitionId,
    ) -> Result<PartitionStatus, Refusal> {
        let (reply, answered) = oneshot::channel();
        self.nodes[node]
            .host
            .send(partition, Request::Status { reply })?;
        wait(answered)
    }

    /// The node leading `partition` (with an entry of its term committed).
    pub(super) fn leader(&self, partition: PartitionId) -> usize {
        eventually(&format!("a leader of {partition}"), || {
            (0..self.nodes.len()).find(|&i| {
                self.status(i, partition)
                    .is_ok_and(|s| s.role == Role::Leader && s.commit.0 > 0)
            })
        })
    }

    /// Proposes `entry` to `partition` on `node`, fenced with `generation` (0: unfenced); the
    /// answer.
    pub(super) fn write_on(
        &mut self,
        node: usize,
        partition: PartitionId,
        generation: u64,
        entry: ProposedEntry,
    ) -> Result<ReplicationResult, Refusal> {
        self.next_ticket += 1;
        let (reply, answered) = oneshot::channel();
        let propose = Request::Propose {
            entries: smallvec::smallvec![entry],
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
    pub(super) fn commit_map(&mut self, map: &PartitionMap, nodes: &[usize]) {
        let entry = ProposedEntry::new(SYSTEM_LOG_TYPE, &map.encode());
        self.write(P0, 0, entry);
        for &node in nodes {
            eventually(&format!("map {} in force on {node}", map.version), || {
                (self.nodes[node].maps.in_force().version == map.version).then_some(())
            });
        }
    }

    /// Waits until `map` is in force on `nodes` (proposed by partition 0's leader itself).
    pub(super) fn wait_map(&self, map: &PartitionMap, nodes: &[usize]) {
        for &node in nodes {
            eventually(&format!("map {} in force on {node}", map.version), || {
                (self.nodes[node].maps.in_force().version >= map.version).then_some(())
            });
            assert_eq!(*self.nodes[node].maps.map(), *map, "node {node}");
        }
    }

    /// Holds (or releases) every node's range exports.
    pub(super) fn hold_exports(&self, held: bool) {
        for node in &self.nodes {
            node.store.hold_exports.store(held, Ordering::Release);
        }
    }

    /// Writes every key, each to the partition `map` routes it to, fenced with its range's
    /// generation; the values written.
    pub(super) fn write_keys(&mut self, map: &PartitionMap, round: u8) -> Registers {
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
    pub(super) fn lead_on(&self, partition: PartitionId, node: usize) {
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

    pub(super) fn shutdown(self) -> Vec<NodeConfig> {
        self.nodes
            .into_iter()
            .map(|node| {
                node.host.shutdown();
                node.config
            })
            .collect()
    }
}

pub(super) fn put(key: &str, value: &[u8]) -> ProposedEntry {
    let mut payload = Vec::new();
    record(key, value, &mut payload);
    ProposedEntry::new("put", &payload)
}

/// Whether `held` are exactly `expected`; else the keys that differ (the values are too long
/// to print).
pub(super) fn same(held: &Registers, expected: &Registers) -> Result<(), String> {
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
pub(super) fn kept_key(plan: &RangeTransfer, name: &str) -> String {
    (0..)
        .map(|n| format!("{name}-{n}"))
        .find(|key| !plan.holds(key_hash(key)))
        .expect("a key below the boundary")
}

/// The registers of `written` whose key `plan` moves.
pub(super) fn moved(written: &Registers, plan: &RangeTransfer) -> Registers {
    written
        .iter()
        .filter(|(key, _)| plan.holds(key_hash(key)))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}
