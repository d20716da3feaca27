//! kommander's side: the in-process cluster of `benches/cluster.rs` (three `ShardHost`s with
//! one shard thread per core each, real WALs with fsync on, the memory transport), every node
//! hosting every partition.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use kommander_raft::core::{NodeId, PartitionId, Status, Ticket};
use kommander_raft::node::NodeConfig;
use kommander_raft::shard::{
    Application, LeaderTable, LogEntry, NoEvents, ProposedEntry, Request, ShardConfig, ShardHost,
    StateMachine,
};
use kommander_raft::transport::memory::MemoryNetwork;
use tokio::sync::oneshot;

use crate::{Cluster, NODE_COUNT};

/// Counts deliveries; does nothing else (the application must not block the shard).
#[derive(Default)]
struct Counting(AtomicU64);

impl StateMachine for Counting {
    fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        true
    }
    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
}

/// A node of the running cluster.
struct Node {
    host: ShardHost,
    leaders: Arc<LeaderTable>,
}

/// The running kommander cluster.
pub struct KommanderCluster {
    nodes: Vec<Node>,
    _network: Arc<MemoryNetwork>,
    ticket: AtomicU64,
}

impl KommanderCluster {
    /// Starts three nodes with their WALs under `dir` and opens every partition on each, with
    /// the settings of `benches/cluster.rs`.
    pub fn start(dir: &Path, partitions: u32) -> Self {
        let network = MemoryNetwork::new();
        let voters: Vec<NodeId> = (1..=NODE_COUNT).map(NodeId).collect();
        let shards = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let nodes: Vec<Node> = (1..=NODE_COUNT)
            .map(|node| {
                let mut config = NodeConfig::new(node, dir.join(format!("node-{node}")));
                config.peers = (1..=NODE_COUNT)
                    .filter(|&n| n != node)
                    .map(|n| (n, String::new()))
                    .collect::<BTreeMap<_, _>>();
                config.shards = shards;
                config.tick_interval_ms = 10;
                config.election_timeout_ticks_min = 20;
                config.election_timeout_ticks_max = 40;
                config.heartbeat_interval_ticks = 5;
                config.seed = node;
                config.wal_segment_bytes = 64 << 20;
                let leaders = Arc::new(LeaderTable::default());
                let host = ShardHost::start(
                    ShardConfig::from(&config),
                    network.transport(NodeId(node)),
                    Application::new(Arc::new(Counting::default())),
                    Arc::new(NoEvents),
                    Arc::clone(&leaders),
                )
                .expect("a kommander node starts");
                network.register(NodeId(node), host.inbound());
                Node { host, leaders }
            })
            .collect();
        for node in &nodes {
            let answers: Vec<_> = (0..partitions)
                .map(|p| {
                    node.host
                        .open_partition(PartitionId(p), voters.clone(), Vec::new())
                        .expect("queued")
                })
                .collect();
            for answer in answers {
                answer.blocking_recv().expect("answer").expect("opened");
            }
        }
        Self {
            nodes,
            _network: network,
            ticket: AtomicU64::new(1),
        }
    }
}

impl Cluster for KommanderCluster {
    fn leader_of(&self, partition: u32) -> Option<usize> {
        self.nodes.iter().position(|node| {
            node.leaders
                .get(PartitionId(partition))
                .is_some_and(|leadership| leadership.leads())
        })
    }

    async fn write(&self, node: usize, partition: u32, payload: Bytes) -> bool {
        let (reply, answer) = oneshot::channel();
        let request = Request::Propose {
            entries: std::iter::once(ProposedEntry::new("b", &payload)).collect(),
            auto_commit: true,
            ticket: Ticket(self.ticket.fetch_add(1, Ordering::Relaxed)),
            reply,
        };
        if self.nodes[node]
            .host
            .send(PartitionId(partition), request)
            .is_err()
        {
            return false;
        }
        matches!(answer.await, Ok(Ok(r)) if r.status == Status::Success)
    }

    fn stop(self) {
        for node in &self.nodes {
            node.host.shutdown();
        }
    }
}
