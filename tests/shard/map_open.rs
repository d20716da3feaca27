//! Partitions open and close on the shards as partition 0's map changes (decision 0006 point
//! 5): three nodes of `ShardHost`s (2 shards each) open partition 0 only; a map proposed on
//! partition 0 as a raw `_RaftSystem` entry (the test writes the changed maps itself, the
//! map-change rules are `map_change.rs`'s) makes every node open the partitions it adds on
//! their shard, where they elect and replicate, and close the one a tombstone removes, whose WAL
//! records are deleted and whose segments are reclaimed.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use kommander_raft::core::{NodeId, PartitionId, Role, Status, Ticket};
use kommander_raft::node::NodeConfig;
use kommander_raft::shard::partitions::{MapTable, PartitionMap, RangeState, SYSTEM_LOG_TYPE};
use kommander_raft::shard::{
    Application, EventSink, LogEntry, NoEvents, PartitionStatus, ProposedEntry, Refusal,
    ReplicationResult, Request, ShardConfig, ShardHost, StateMachine, shard_of,
};
use kommander_raft::transport::memory::MemoryNetwork;
use kommander_wal::Wal;
use tokio::sync::oneshot;

use crate::runtime::harness::{eventually, wait};

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
const P3: PartitionId = PartitionId(3);
/// An entry's payload: 12 KiB, so a few dozen fill a segment.
const ENTRY_BYTES: usize = 12 << 10;

/// Counts the entries delivered per partition.
#[derive(Default)]
struct Counter(Mutex<HashMap<PartitionId, usize>>);

impl StateMachine for Counter {
    fn on_replication_received(&self, partition: PartitionId, _: &LogEntry) -> bool {
        *self
            .0
            .lock()
            .expect("counter")
            .entry(partition)
            .or_default() += 1;
        true
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.on_replication_received(partition, entry)
    }
}

pub(super) struct Node {
    config: NodeConfig,
    pub(super) host: ShardHost,
    pub(super) maps: Arc<MapTable>,
    app: Arc<Counter>,
}

pub(super) fn start(dir: &Path, network: &Arc<MemoryNetwork>) -> Vec<Node> {
    (1..=3u64)
        .map(|id| {
            let config = super::three_node_config(id, dir);
            let maps = Arc::new(MapTable::default());
            let app = Arc::new(Counter::default());
            let host = ShardHost::start(
                ShardConfig::from(&config),
                network.transport(NodeId(id)),
                Application::new(Arc::clone(&app) as Arc<dyn StateMachine>)
                    .with_maps(Arc::clone(&maps)),
                Arc::new(NoEvents) as Arc<dyn EventSink>,
                Arc::default(),
            )
            .expect("node starts");
            network.register(NodeId(id), host.inbound());
            let voters = (1..=3).map(NodeId).collect();
            wait(host.open_partition(P0, voters, Vec::new()).expect("queued"))
                .expect("partition 0 opens");
            Node {
                config,
                host,
                maps,
                app,
            }
        })
        .collect()
}

fn status(node: &Node, partition: PartitionId) -> Result<PartitionStatus, Refusal> {
    let (reply, answered) = oneshot::channel();
    node.host.send(partition, Request::Status { reply })?;
    wait(answered)
}

pub(super) fn leader(nodes: &[Node], partition: PartitionId) -> usize {
    eventually(&format!("a leader of {partition}"), || {
        (0..nodes.len()).find(|&i| {
            status(&nodes[i], partition).is_ok_and(|s| s.role == Role::Leader && s.commit.0 > 0)
        })
    })
}

/// Proposes `entries` on `partition`'s leader until one proposal succeeds.
fn replicate(nodes: &[Node], partition: PartitionId, entries: Vec<ProposedEntry>, ticket: u64) {
    eventually(&format!("a write to {partition}"), || {
        let (reply, answered) = oneshot::channel();
        let request = Request::Propose {
            entries: entries.clone().into(),
            auto_commit: true,
            ticket: Ticket(ticket),
            reply,
        };
        nodes[leader(nodes, partition)]
            .host
            .send(partition, request)
            .ok()?;
        match wait(answered) {
            Ok(ReplicationResult {
                status: Status::Success,
                ..
            }) => Some(()),
            _ => None,
        }
    });
}

/// Commits `map` on partition 0 and waits until every node has it in force.
pub(super) fn commit_map(nodes: &[Node], map: &PartitionMap) {
    let entry = ProposedEntry::new(SYSTEM_LOG_TYPE, &map.encode());
    replicate(nodes, P0, vec![entry], 1_000 + map.version);
    for node in nodes {
        eventually(&format!("map {} in force", map.version), || {
            (node.maps.in_force().version == map.version).then_some(())
        });
    }
}

fn payload(n: usize) -> ProposedEntry {
    ProposedEntry::new("test", &vec![n as u8; ENTRY_BYTES])
}

/// The sequence numbers of the segments in `node`'s WAL of `partition`'s shard.
fn segments(node: &Node, partition: PartitionId) -> BTreeSet<u64> {
    let shard = shard_of(partition, 2);
    std::fs::read_dir(node.config.data_dir.join(format!("shard-{shard}")))
        .expect("the shard's WAL")
        .filter_map(|entry| {
            let name = entry.expect("an entry").file_name();
            let seq = name.to_str()?.strip_suffix(".wal")?;
            u64::from_str_radix(seq, 16).ok()
        })
        .collect()
}

#[test]
fn partitions_open_and_close_on_their_shards_as_the_map_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let network = MemoryNetwork::new();
    let nodes = start(dir.path(), &network);
    leader(&nodes, P0);

    // The first map: partition 1 owns every key.
    let mut map = PartitionMap::initial(1).expect("a map");
    commit_map(&nodes, &map);
    replicate(&nodes, P1, vec![payload(1)], 1);

    // Partition 3 takes the upper half: every node opens it on its shard; it elects and
    // replicates.
    let half = map.partitions[0].end / 2;
    let mut upper = map.partitions[0].clone();
    upper.partition_id = P3;
    upper.start = half + 1;
    map.partitions[0].end = half;
    map.partitions[0].generation += 1;
    map.partitions.push(upper);
    map.version += 1;
    commit_map(&nodes, &map);
    for node in &nodes {
        status(node, P3).expect("partition 3 is open");
    }
    // More than a WAL frame of it: the WAL cannot move it forward to free its segments.
    for n in 0..16 {
        replicate(&nodes, P3, vec![payload(n)], 100 + n as u64);
    }
    for node in &nodes {
        eventually("partition 3's entries delivered", || {
            (node.app.0.lock().expect("counter").get(&P3) == Some(&16)).then_some(())
        });
    }
    let holding_p3: Vec<u64> = nodes
        .iter()
        .map(|n| *segments(n, P3).last().expect("segments"))
        .collect();

    // A tombstone removes partition 3: it closes on every node.
    map.partitions[1].state = RangeState::Removed;
    map.partitions[1].generation += 1;
    map.partitions[0].end = i32::MAX;
    map.partitions[0].generation += 1;
    map.version += 1;
    commit_map(&nodes, &map);
    for node in &nodes {
        assert_eq!(status(node, P3), Err(Refusal::NotHosted));
    }
    // Partition 1, on the same shard, writes on and compacts: every segment partition 3 wrote
    // in is reclaimed.
    for n in 0..100 {
        replicate(&nodes, P1, vec![payload(n)], 10_000 + n as u64);
        if n == 60 {
            let (reply, answered) = oneshot::channel();
            let leader = leader(&nodes, P1);
            let request = Request::Checkpoint {
                ticket: Ticket(20_000),
                reply,
            };
            nodes[leader].host.send(P1, request).expect("queued");
            let checkpointed = wait(answered).expect("checkpoint");
            assert_eq!(checkpointed.status, Status::Success);
        }
    }
    for (node, &last) in nodes.iter().zip(&holding_p3) {
        eventually("the segments of partition 3 reclaimed", || {
            (segments(node, P3).first() > Some(&last)).then_some(())
        });
    }
    for node in &nodes {
        node.host.shutdown();
        let shard = shard_of(P3, 2);
        let wal = Wal::open(
            node.config.data_dir.join(format!("shard-{shard}")),
            node.config.wal_config(),
        )
        .expect("the WAL opens");
        assert!(
            matches!(
                wal.partition(P3),
                Err(kommander_wal::Error::UnknownPartition { .. })
            ),
            "partition 3's records are deleted"
        );
        assert!(wal.partition(P1).is_ok());
    }
}
