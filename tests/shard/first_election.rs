//! A partition a map change creates elects its first leader at once (decision 0006, amendment
//! "a created partition's first leader"; `shard/worker/map.rs`): the member of its first
//! configuration the rule names campaigns as soon as it opens the partition, through pre-vote,
//! instead of every member waiting out an election timeout. Three stepped nodes (virtual time,
//! one queue for the wire) with partition 0's map: a created partition and a split's target
//! lead within fewer ticks of partition 0's commit than the minimum election timeout, led by
//! the named member; with that member's node stopped, the others elect after their timeouts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kommander_raft::core::{Message, NodeId, PartitionId, Ticket};
use kommander_raft::shard::partitions::{
    CreatePartition, MapChangeAnswer, MapOperation, MapTable, SplitPlan,
};
use kommander_raft::shard::{
    Application, LeaderTable, LogEntry, NoEvents, Request, ShardConfig, ShardHost, ShardStepper,
    StateMachine,
};
use kommander_raft::transport::Transport;
use tokio::sync::oneshot;

use crate::runtime::stepped::{open_sim_wal, stepped_config};

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
/// Created: its first candidate is the voter at 2 mod 3 of `[1, 2, 3]`, node 3.
const CREATED: PartitionId = PartitionId(2);
/// A split's target: its first candidate is the voter at 4 mod 3, node 2.
const TARGET: PartitionId = PartitionId(4);
const ROUNDS_MAX: usize = 20_000;

/// Every batch sent, until the test delivers it.
type Wire = Arc<Mutex<VecDeque<(NodeId, Vec<Message>)>>>;

struct Outgoing(Wire);

impl Transport for Outgoing {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        self.0.lock().expect("wire").push_back((to, messages));
    }
}

struct Accept;

impl StateMachine for Accept {
    fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
}

struct Node {
    id: NodeId,
    host: ShardHost,
    steppers: Vec<ShardStepper>,
    maps: Arc<MapTable>,
    /// A stopped node neither turns nor receives.
    up: bool,
}

struct Cluster {
    nodes: Vec<Node>,
    wire: Wire,
    base: Instant,
    offset: Duration,
    tick: Duration,
    election_timeout_ticks_min: u32,
    ticket: u64,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Three nodes opening partition 0, all voters, and running until it leads.
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let wire = Wire::default();
        let base = Instant::now();
        let mut configs: Vec<ShardConfig> = (1..=3)
            .map(|id| stepped_config(id, 3, dir.path()))
            .collect();
        let tick = configs[0].tick_interval;
        let election_timeout_ticks_min = configs[0].core.election_timeout_ticks_min;
        let nodes = configs
            .drain(..)
            .map(|config| {
                let id = config.node_id;
                let wals = (0..config.shard_count)
                    .map(|shard| open_sim_wal(&config, shard).0)
                    .collect();
                let maps = Arc::new(MapTable::default());
                let app = Application::new(Arc::new(Accept) as Arc<dyn StateMachine>)
                    .with_maps(Arc::clone(&maps));
                let (host, steppers) = ShardHost::start_stepped(
                    config,
                    wals,
                    Arc::new(Outgoing(Arc::clone(&wire))),
                    app,
                    Arc::new(NoEvents),
                    Arc::new(LeaderTable::default()),
                    base,
                )
                .expect("stepped host starts");
                let voters = (1..=3).map(NodeId).collect();
                let _opened = host.open_partition(P0, voters, Vec::new()).expect("queued");
                Node {
                    id,
                    host,
                    steppers,
                    maps,
                    up: true,
                }
            })
            .collect();
        let mut cluster = Self {
            nodes,
            wire,
            base,
            offset: Duration::ZERO,
            tick,
            election_timeout_ticks_min,
            ticket: 1,
            _dir: dir,
        };
        cluster.run_until("partition 0 leads", |c| c.leader(P0).is_some());
        cluster
    }

    fn now(&self) -> Instant {
        self.base + self.offset
    }

    /// One round: deliver what was sent (to running nodes), turn every running shard; with
    /// nothing to do, the clock jumps to the next tick.
    fn step(&mut self) {
        let batches: Vec<_> = self.wire.lock().expect("wire").drain(..).collect();
        let mut busy = !batches.is_empty();
        for (to, messages) in batches {
            if let Some(node) = self.nodes.iter().find(|n| n.id == to && n.up) {
                node.host.inbound().deliver(messages);
            }
        }
        let now = self.now();
        for node in self.nodes.iter_mut().filter(|n| n.up) {
            for stepper in &mut node.steppers {
                busy |= stepper.turn(now) | stepper.waiting_on_wal();
                assert_eq!(stepper.failure(), None, "node {}", node.id);
            }
        }
        if !busy {
            let next = self
                .nodes
                .iter()
                .filter(|n| n.up)
                .flat_map(|n| n.steppers.iter().map(ShardStepper::next_tick))
                .min()
                .expect("a running shard");
            self.offset += next
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
        }
    }

    fn run_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..ROUNDS_MAX {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("{what}: not reached within {ROUNDS_MAX} rounds");
    }

    /// The running node leading `partition` with its no-op committed, if one does.
    fn leader(&self, partition: PartitionId) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.up)
            .find(|n| n.host.leadership(partition).is_some_and(|l| l.leads()))
            .map(|n| n.id)
    }

    /// Carries `operation` out on partition 0's leader, asked again until it changed the
    /// map; returns the new map's version.
    fn change_map(&mut self, operation: &MapOperation) -> u64 {
        for _ in 0..100 {
            self.run_until("partition 0 leads", |c| c.leader(P0).is_some());
            let leader = self.leader(P0).expect("a leader");
            let node = self.nodes.iter().find(|n| n.id == leader).expect("node");
            let (reply, mut answer) = oneshot::channel();
            self.ticket += 1;
            let request = Request::ChangeMap {
                operation: operation.clone(),
                ticket: Ticket(self.ticket),
                reply,
            };
            node.host.send(P0, request).expect("queued");
            let mut answered = None;
            for _ in 0..ROUNDS_MAX {
                if let Ok(result) = answer.try_recv() {
                    answered = Some(result);
                    break;
                }
                self.step();
            }
            if let Some(Ok(MapChangeAnswer::Changed { version, .. })) = answered {
                return version;
            }
        }
        panic!("{operation:?}: the map did not change");
    }

    /// Runs until `partition` leads; returns the leader and the ticks since `since`.
    fn elected(&mut self, partition: PartitionId, since: Instant) -> (NodeId, u128) {
        self.run_until(&format!("{partition} leads"), |c| {
            c.leader(partition).is_some()
        });
        let ticks = self.now().duration_since(since).as_nanos() / self.tick.as_nanos();
        (self.leader(partition).expect("a leader"), ticks)
    }

    /// The earliest instant by which a running node applied map `version`: the earliest any
    /// node opens what it adds.
    fn applied_at(&mut self, version: u64) -> Instant {
        self.run_until("the map applied", |c| {
            c.nodes
                .iter()
                .any(|n| n.up && n.maps.map().version >= version)
        });
        self.now()
    }
}

/// A created partition and a split's target lead within fewer ticks of partition 0's commit
/// than the minimum election timeout (no member could time out that soon), each led by the
/// member the rule names.
#[test]
fn a_created_partition_and_a_splits_target_lead_before_any_election_timeout() {
    let mut cluster = Cluster::start();
    cluster.change_map(&MapOperation::Initialize { partitions: 1 });
    cluster.run_until("partition 1 leads", |c| c.leader(P1).is_some());
    let timeout = u128::from(cluster.election_timeout_ticks_min);

    let version = cluster.change_map(&MapOperation::Create {
        partition: CREATED,
        spec: CreatePartition::unrouted(),
    });
    let committed = cluster.applied_at(version);
    let (leader, ticks) = cluster.elected(CREATED, committed);
    assert!(
        ticks < timeout,
        "the created partition led {ticks} ticks after its map committed, not before the \
         minimum election timeout ({timeout} ticks): nobody campaigned at once"
    );
    assert_eq!(
        leader,
        NodeId(3),
        "its first candidate (2 mod 3 of [1, 2, 3]) leads"
    );

    let version = cluster.change_map(&MapOperation::Split {
        source: P1,
        plan: SplitPlan {
            target: Some(TARGET),
            boundary: None,
        },
    });
    let committed = cluster.applied_at(version);
    let (leader, ticks) = cluster.elected(TARGET, committed);
    assert!(
        ticks < timeout,
        "the split's target led {ticks} ticks after its map committed, not before the minimum \
         election timeout ({timeout} ticks): nobody campaigned at once"
    );
    assert_eq!(
        leader,
        NodeId(2),
        "its first candidate (4 mod 3 of [1, 2, 3]) leads"
    );
}

/// With the first candidate's node stopped, the other members elect after their timeouts.
#[test]
fn without_its_first_candidate_a_created_partition_elects_after_a_timeout() {
    let mut cluster = Cluster::start();
    cluster.change_map(&MapOperation::Initialize { partitions: 1 });
    // Node 3, the created partition's first candidate, stops.
    cluster.nodes[2].up = false;
    let version = cluster.change_map(&MapOperation::Create {
        partition: CREATED,
        spec: CreatePartition::unrouted(),
    });
    let committed = cluster.applied_at(version);
    let (leader, ticks) = cluster.elected(CREATED, committed);
    assert_ne!(leader, NodeId(3));
    assert!(
        ticks >= u128::from(cluster.election_timeout_ticks_min),
        "elected after {ticks} ticks: only a timeout elects here"
    );
}
