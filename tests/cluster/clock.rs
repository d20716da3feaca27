//! The hybrid logical clock is the cluster's (issue 17, decision 0005 §10): every frame carries
//! its sender's clock and the receiver merges it, so successive leaders of a partition never
//! draw the same ticket, even within one millisecond of their wall clocks.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kommander_raft::transport::memory::MemoryNetwork;
use kommander_raft::{
    HlcTimestamp, NodeId, PartitionId, PhysicalClock, Raft, ReplicateOptions, Written,
};

use super::harness::{PATIENCE, Recorder, eventually, test_config};

/// A wall clock (Unix milliseconds) early in the tests' imagined life.
pub(crate) const WALL_MS: u64 = 1_700_000_000_000;

/// A wall clock the test sets.
pub(crate) struct Wall(pub(crate) AtomicU64);

impl PhysicalClock for Wall {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// Whether this thread reads [`TicketWall::tickets_ms`] (the test's thread, while it asks
    /// for a write).
    static DRAWING: Cell<bool> = const { Cell::new(false) };
}

/// One wall clock for every node of a cluster: the nodes' own threads (shards, transport)
/// read `WALL_MS`, the test's thread reads `tickets_ms` while it asks for a write: every
/// ticket is then drawn in the same millisecond, `tickets_ms`, and each node's first
/// timestamp of that millisecond is a ticket (its frames are stamped on its own threads).
struct TicketWall {
    tickets_ms: u64,
}

impl PhysicalClock for TicketWall {
    fn now_ms(&self) -> u64 {
        if DRAWING.get() {
            self.tickets_ms
        } else {
            WALL_MS
        }
    }
}

/// Runs `ask` (a write: its ticket is drawn when it is called) reading the tickets' time.
fn drawing<T>(ask: impl FnOnce() -> T) -> T {
    DRAWING.set(true);
    let asked = ask();
    DRAWING.set(false);
    asked
}

/// Starts `nodes` nodes of one user partition on `network`, node `n` (from 1) following the
/// wall clock `physical(n)`, and joins them.
async fn start(
    network: &Arc<MemoryNetwork>,
    dir: &std::path::Path,
    nodes: u64,
    physical: impl Fn(u64) -> Arc<dyn PhysicalClock>,
) -> Vec<Raft> {
    let mut rafts = Vec::new();
    for node in 1..=nodes {
        let config = test_config(node, nodes, 1, dir);
        let raft = Raft::builder(config)
            .state_machine(Arc::new(Recorder::default()))
            .transport(network.transport(NodeId(node)))
            .physical_clock(physical(node))
            .start()
            .await
            .expect("start");
        network.register(NodeId(node), raft.inbound());
        rafts.push(raft);
    }
    let mut joins = tokio::task::JoinSet::new();
    for raft in &rafts {
        joins.spawn(raft.join_cluster(None));
    }
    while let Some(joined) = joins.join_next().await {
        joined.expect("join task").expect("joined");
    }
    rafts
}

async fn shutdown(rafts: Vec<Raft>) {
    for raft in rafts {
        raft.shutdown().await;
    }
}

/// The node (index) that leads `p` and is known as leader by all.
async fn leader(rafts: &[Raft], p: PartitionId) -> usize {
    let mut found = None;
    eventually(&format!("one known leader of {p}"), || {
        let leaders: Vec<usize> = (0..rafts.len())
            .filter(|&i| rafts[i].am_i_leader_quick(p))
            .collect();
        found = match leaders[..] {
            [i] => Some(i).filter(|&i| {
                let id = rafts[i].local_node_id();
                rafts
                    .iter()
                    .all(|r| r.leadership(p).is_some_and(|l| l.leader == Some(id)))
            }),
            _ => None,
        };
        found.is_some()
    })
    .await;
    found.expect("a leader")
}

fn two_phase() -> ReplicateOptions {
    ReplicateOptions {
        auto_commit: false,
        timeout: Some(PATIENCE),
        ..ReplicateOptions::default()
    }
}

/// How far ahead of `WALL_MS` the wall clocks of nodes 1, 2 and 3 stand (they never move):
/// node 1 is 5 s behind node 2; node 3 is ten minutes ahead of both, beyond the default
/// `hlc_drift_ms_max` (60 s).
pub(crate) const LEADS_MS: [u64; 3] = [0, 5_000, 600_000];

#[tokio::test]
async fn a_slower_clock_moves_past_the_stamps_it_receives_but_not_past_the_drift_bound() {
    let dir = tempfile::tempdir().expect("dir");
    let network = MemoryNetwork::new();
    let rafts = start(&network, dir.path(), 3, |node| {
        Arc::new(Wall(AtomicU64::new(WALL_MS + LEADS_MS[node as usize - 1])))
    })
    .await;
    assert_eq!(rafts[0].config().hlc_drift_ms_max, 60_000);
    // Node 1 hears node 2 only if one of them leads (followers answer only their leader): were
    // node 3 elected everywhere, node 1 would read its refused stamps alone. Node 2 leads.
    let p = PartitionId(1);
    let first = leader(&rafts, p).await;
    if first != 1 {
        rafts[first]
            .testing()
            .transfer_leadership(p, rafts[1].local_node_id(), Some(PATIENCE))
            .await
            .expect("leadership transferred to node 2");
    }
    // Node 1's clock jumped past node 2's stamps: it reads node 2's time, not its own.
    eventually("node 1's clock past node 2's stamps", || {
        rafts[0].hlc().now().physical_ms >= WALL_MS + 5_000
    })
    .await;
    // Node 3's stamps are refused (counted) and drag no one.
    eventually("node 3's stamps refused", || network.stamps_refused() > 0).await;
    for raft in &rafts[..2] {
        let now = raft.hlc().now();
        assert!(
            now.physical_ms < WALL_MS + 60_000,
            "{} was dragged to {now}",
            raft.local_node_id()
        );
    }
    shutdown(rafts).await;
}

#[tokio::test]
async fn successive_leaders_in_the_same_millisecond_draw_different_tickets() {
    let dir = tempfile::tempdir().expect("dir");
    let network = MemoryNetwork::new();
    let tickets_ms = WALL_MS + 1_000;
    let wall: Arc<dyn PhysicalClock> = Arc::new(TicketWall { tickets_ms });
    let rafts = start(&network, dir.path(), 3, |_| Arc::clone(&wall)).await;
    let p = PartitionId(1);
    let first = leader(&rafts, p).await;
    let asked = drawing(|| rafts[first].replicate_logs(p, "held", "first", two_phase()));
    let held: Written = asked.await.expect("the first leader's two-phase write");
    // The first timestamp of that millisecond on the first leader.
    assert_eq!(
        held.ticket,
        HlcTimestamp {
            physical_ms: tickets_ms,
            logical: 0,
            node: u32::try_from(rafts[first].local_node_id().0).expect("small id"),
        }
    );
    // Every replica holds the unresolved proposal.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for raft in &rafts {
        while raft.partition_status(p).await.expect("status").last_index < held.log_index {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never: the held entry on every replica"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let second = (first + 1) % rafts.len();
    rafts[first]
        .testing()
        .transfer_leadership(p, rafts[second].local_node_id(), Some(PATIENCE))
        .await
        .expect("leadership transferred");
    assert_eq!(leader(&rafts, p).await, second);
    // The second leader's first ticket of the same millisecond: without the first leader's
    // stamps merged it would be (tickets_ms, 0) again, the first leader's held ticket, and
    // refused with ActiveProposal.
    let asked = drawing(|| rafts[second].replicate_logs(p, "held", "second", two_phase()));
    let written = tokio::time::timeout(Duration::from_secs(30), asked)
        .await
        .expect("answered")
        .expect("the second leader's two-phase write is not refused");
    assert_eq!(written.ticket.physical_ms, tickets_ms);
    assert!(
        written.ticket.packed() > held.ticket.packed(),
        "{} after {}",
        written.ticket,
        held.ticket
    );
    // Both proposals resolve by their own tickets.
    rafts[second]
        .commit_logs(p, written.ticket)
        .await
        .expect("second committed");
    rafts[second]
        .commit_logs(p, held.ticket)
        .await
        .expect("first committed");
    shutdown(rafts).await;
}
