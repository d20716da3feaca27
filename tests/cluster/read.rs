//! Linearizable reads through the handle: `confirm_leadership` (ReadIndex on the leader) and
//! `confirm_local_application` (a read index fetched from the leader, awaited locally), on a
//! 3-node cluster, with the failures a cut-off node must answer instead of a success.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kommander_raft::core::{Message, MessageBody};
use kommander_raft::transport::Transport;
use kommander_raft::transport::faulty::FaultRates;
use kommander_raft::{LogIndex, NodeId, PartitionId, QueryError, ReplicateOptions, Role, Status};

use super::harness::{PATIENCE, TestCluster, UNLIMITED, WrapTransport};

/// How long a test waits to see that a call is still waiting.
const STILL_WAITING: Duration = Duration::from_millis(150);

/// Selects messages by `(from, to, message)`.
type Selector = Arc<dyn Fn(NodeId, NodeId, &Message) -> bool + Send + Sync>;

/// Drops the messages `matches` selects while `hold` is set (each node's transport).
struct Hold {
    inner: Arc<dyn Transport>,
    from: NodeId,
    matches: Selector,
    hold: Arc<AtomicBool>,
}

impl Transport for Hold {
    fn send(&self, to: NodeId, mut messages: Vec<Message>) {
        if self.hold.load(Ordering::Acquire) {
            messages.retain(|m| !(self.matches)(self.from, to, m));
        }
        if !messages.is_empty() {
            self.inner.send(to, messages);
        }
    }
}

/// A wrap that holds, while the returned flag is set, the messages `(from, to, message)` that
/// `matches` selects.
pub(super) fn holding(
    matches: impl Fn(NodeId, NodeId, &Message) -> bool + Send + Sync + 'static,
) -> (WrapTransport, Arc<AtomicBool>) {
    let hold = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&hold);
    let matches: Selector = Arc::new(matches);
    let wrap: WrapTransport = Arc::new(move |from, inner| {
        Arc::new(Hold {
            inner,
            from,
            matches: Arc::clone(&matches),
            hold: Arc::clone(&flag),
        }) as Arc<dyn Transport>
    });
    (wrap, hold)
}

fn node_id(cluster: &TestCluster, i: usize) -> NodeId {
    NodeId(cluster.nodes[i].config.node_id)
}

fn holds(cluster: &TestCluster, i: usize, p: PartitionId, payload: &[u8]) -> bool {
    cluster.nodes[i]
        .app
        .payloads(p)
        .iter()
        .any(|seen| seen.as_ref() == payload)
}

#[tokio::test]
async fn a_leader_read_covers_every_acknowledged_write_and_is_applied_there() {
    // One committed entry per Ready reaches the application: after a batch commits (and is
    // acknowledged), the leader's application trails its commit index for many loop turns.
    let cluster = TestCluster::launch(3, 1, None, None, |c| c.deliver_entries_max = 1).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let raft = cluster.raft(leader).clone();
    let batch = 256;
    for k in 0..8u32 {
        let payloads: Vec<Bytes> = (0..batch)
            .map(|i| Bytes::from(format!("write {k}.{i}")))
            .collect();
        let written = raft
            .replicate_batch(p, "t", payloads, ReplicateOptions::default())
            .await
            .expect("written on the leader");
        let index = raft
            .confirm_leadership(p, Some(PATIENCE))
            .await
            .expect("the leader confirms");
        // Read before anything else: the application must hold the whole batch already.
        let applied = cluster.nodes[leader]
            .app
            .live(p)
            .last()
            .map_or(0, |s| s.index);
        assert!(
            index >= written.log_index,
            "read index {index} below the acknowledged write at {}",
            written.log_index
        );
        assert!(
            applied >= index.0,
            "the read returned at {index} with the application at {applied}"
        );
    }
    // A held two-phase proposal is committed but not delivered, and holds everything behind
    // it: the read waits until the application applied it, after its commit.
    let held = ReplicateOptions {
        auto_commit: false,
        ..ReplicateOptions::default()
    };
    let written = raft
        .replicate_logs(p, "t", "held", held)
        .await
        .expect("held proposal");
    let mut read = tokio::spawn(raft.confirm_leadership(p, Some(PATIENCE)));
    assert!(
        tokio::time::timeout(STILL_WAITING, &mut read)
            .await
            .is_err(),
        "a leader read returned before its application applied the read index"
    );
    raft.commit_logs(p, written.ticket)
        .await
        .expect("commit the held proposal");
    let index = read.await.expect("task").expect("the leader confirms");
    assert!(index >= written.log_index);
    assert!(holds(&cluster, leader, p, b"held"));
    // Reads issued together share rounds and all cover the last write.
    let last = cluster.replicate(p, b"last").await;
    let reads: Vec<_> = (0..8)
        .map(|_| raft.confirm_leadership(p, Some(PATIENCE)))
        .collect();
    for read in reads {
        assert!(read.await.expect("confirmed") >= last.log_index);
    }
}

#[tokio::test]
async fn confirm_leadership_on_a_follower_is_not_leader_with_the_hint_at_once() {
    let cluster = TestCluster::start(3, 2).await;
    for p in cluster.user_partitions() {
        let leader = cluster.leader(p).await;
        let id = node_id(&cluster, leader);
        for follower in (0..3).filter(|&i| i != leader) {
            // A call that waited instead of refusing would time out.
            let refused = cluster
                .raft(follower)
                .confirm_leadership(p, Some(PATIENCE))
                .await
                .expect_err("a follower does not confirm leadership");
            assert_eq!(
                refused,
                QueryError::NotLeader {
                    leader: Some(id),
                    endpoint: Some(format!("memory:{}", id.0)),
                },
                "{p} on node {follower}"
            );
            assert!(refused.is_retryable() && !refused.is_fatal());
            assert_eq!(refused.status(), Status::NodeIsNotLeader);
        }
    }
}

#[tokio::test]
async fn a_follower_read_waits_until_its_own_application_applied_the_index() {
    let p = PartitionId(1);
    // Node 3 gets no appends of `p` while held: it learns no new entry, heartbeats still flow.
    let (wrap, hold) = holding(move |_, to, m| {
        to == NodeId(3) && m.partition == p && matches!(m.body, MessageBody::AppendRequest { .. })
    });
    let cluster = TestCluster::start_wrapped(3, 1, wrap).await;
    let mut leader = cluster.leader(p).await;
    if leader == 2 {
        cluster
            .raft(leader)
            .testing()
            .transfer_leadership(p, NodeId(1), Some(PATIENCE))
            .await
            .expect("transfer away from node 3");
        leader = cluster.leader(p).await;
    }
    assert_ne!(leader, 2);
    cluster.replicate(p, b"before").await;
    cluster.wait_delivered(p, 1).await;
    let follower = cluster.raft(2).clone();
    // Caught up: a follower read returns with the write applied.
    let index = follower
        .confirm_local_application(p, Some(PATIENCE))
        .await
        .expect("follower read");
    assert!(holds(&cluster, 2, p, b"before") && index.0 >= 1);

    hold.store(true, Ordering::Release);
    let written = cluster.replicate(p, b"behind").await;
    assert!(!holds(&cluster, 2, p, b"behind"));
    // The leader's read index covers the write; node 3 has not applied it, so it waits.
    let mut read = tokio::spawn(follower.confirm_local_application(p, Some(PATIENCE)));
    assert!(
        tokio::time::timeout(STILL_WAITING, &mut read)
            .await
            .is_err(),
        "a follower read returned before its application had the acknowledged write"
    );
    assert!(!holds(&cluster, 2, p, b"behind"));
    // Appends flow again: the read returns once node 3 applied the write.
    hold.store(false, Ordering::Release);
    let index = read.await.expect("task").expect("follower read");
    assert!(
        index >= written.log_index,
        "{index} < {}",
        written.log_index
    );
    assert!(holds(&cluster, 2, p, b"behind"));
    // On the leader the same call is a leader read.
    let on_leader = cluster
        .raft(leader)
        .confirm_local_application(p, Some(PATIENCE))
        .await
        .expect("leader read");
    assert!(on_leader >= written.log_index);
}

#[tokio::test]
async fn an_unpublished_leader_refuses_at_once_and_serves_once_its_noop_commits() {
    let p = PartitionId(1);
    // While held, no append of `p` is acknowledged: a new leader's no-op cannot commit.
    let (wrap, hold) = holding(move |_, _, m| {
        m.partition == p && matches!(m.body, MessageBody::AppendResponse { .. })
    });
    let cluster = TestCluster::start_wrapped(3, 1, wrap).await;
    let leader = cluster.leader(p).await;
    cluster.replicate(p, b"caught up").await;
    cluster.wait_delivered(p, 1).await;
    let raft = cluster.raft((leader + 1) % 3).clone();
    hold.store(true, Ordering::Release);
    let forced = tokio::spawn(raft.testing().force_leader(p, None));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while raft.leadership(p).is_none_or(|l| l.role != Role::Leader) {
        assert!(tokio::time::Instant::now() < deadline, "not elected");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(!raft.leadership(p).expect("reported").noop_committed);
    // A call that waited for the no-op would time out.
    assert_eq!(
        raft.confirm_leadership(p, Some(Duration::from_secs(2)))
            .await,
        Err(QueryError::NotLeader {
            leader: None,
            endpoint: None
        })
    );
    // The any-node read waits for the no-op instead.
    let waiting = tokio::spawn(raft.confirm_local_application(p, Some(PATIENCE)));
    hold.store(false, Ordering::Release);
    forced.await.expect("task").expect("forced");
    let index = raft
        .confirm_leadership(p, Some(PATIENCE))
        .await
        .expect("published leader");
    // Its first leader's no-op, the write, its own no-op.
    assert!(
        index >= LogIndex(3),
        "the new term's no-op is covered: {index}"
    );
    assert!(waiting.await.expect("task").expect("read after the no-op") >= LogIndex(3));
}

#[tokio::test]
async fn a_leader_cut_off_from_its_peers_never_confirms_a_read() {
    let cluster = TestCluster::start_with(3, 1, Some(FaultRates::default()), |_| {}).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let raft = cluster.raft(leader).clone();
    cluster.replicate(p, b"before the cut").await;
    raft.confirm_leadership(p, Some(PATIENCE))
        .await
        .expect("confirmed before the cut");
    let faults = cluster.faults.clone().expect("faults");
    let all: Vec<NodeId> = (1..=3).map(NodeId).collect();
    faults.isolate(raft.local_node_id(), &all);
    let quick = Some(Duration::from_millis(20));
    for read in [
        raft.confirm_leadership(p, quick).await,
        raft.confirm_local_application(p, quick).await,
    ] {
        assert!(
            matches!(
                read,
                Err(QueryError::Timeout { .. } | QueryError::NotLeader { .. })
            ),
            "{read:?}"
        );
    }
    // Without a timeout the answer comes when check-quorum deposes it: never a success.
    let deposed = tokio::time::timeout(PATIENCE, raft.confirm_leadership(p, UNLIMITED))
        .await
        .expect("answered without a timeout of its own");
    assert!(
        matches!(deposed, Err(QueryError::NotLeader { .. })),
        "{deposed:?}"
    );
    let status = raft.partition_status(p).await.expect("status");
    assert_ne!(status.role, Role::Leader);
    faults.heal();
    let leader = cluster.leader(p).await;
    cluster
        .raft(leader)
        .confirm_leadership(p, Some(PATIENCE))
        .await
        .expect("the healed cluster confirms");
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn a_follower_cut_off_from_the_leader_never_confirms_a_read() {
    let cluster = TestCluster::start_with(3, 1, Some(FaultRates::default()), |_| {}).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let cut = (leader + 1) % 3;
    let follower = cluster.raft(cut).clone();
    follower
        .confirm_local_application(p, Some(PATIENCE))
        .await
        .expect("follower read before the cut");
    let faults = cluster.faults.clone().expect("faults");
    faults.cut(node_id(&cluster, leader), node_id(&cluster, cut));
    let quick = follower
        .confirm_local_application(p, Some(Duration::from_millis(20)))
        .await;
    assert!(
        matches!(
            quick,
            Err(QueryError::Timeout { .. } | QueryError::NotLeader { .. })
        ),
        "{quick:?}"
    );
    // Writes go on without it. An untimed read is refused once it stops trusting its leader
    // (its forwarded read is refused, not leaked): the other follower, which hears from the
    // leader, denies it a new one.
    cluster.replicate(p, b"while cut").await;
    let untimed = tokio::time::timeout(PATIENCE, follower.confirm_local_application(p, UNLIMITED))
        .await
        .expect("answered without a timeout of its own");
    assert!(
        matches!(untimed, Err(QueryError::NotLeader { .. })),
        "{untimed:?}"
    );
    assert!(!holds(&cluster, cut, p, b"while cut"));
    faults.heal();
    let written = cluster.replicate(p, b"healed").await;
    let index = follower
        .confirm_local_application(p, Some(PATIENCE))
        .await
        .expect("after the heal");
    assert!(index >= written.log_index);
    assert!(holds(&cluster, cut, p, b"while cut") && holds(&cluster, cut, p, b"healed"));
}

#[tokio::test]
async fn pending_reads_are_bounded_and_abandoned_or_orphaned_ones_free_their_room() {
    let p = PartitionId(1);
    // While held, no ReadIndexRequest reaches a leader: forwarded reads are never answered.
    let (wrap, hold) = holding(move |_, _, m| {
        m.partition == p && matches!(m.body, MessageBody::ReadIndexRequest { .. })
    });
    let cluster = TestCluster::launch(3, 1, None, Some(wrap), |config| {
        config.read_index_pending_max = 2;
    })
    .await;
    let leader = cluster.leader(p).await;
    let follower = cluster.raft((leader + 1) % 3).clone();
    hold.store(true, Ordering::Release);
    // Each call reaches the shard when it is made.
    let first = follower.confirm_local_application(p, UNLIMITED);
    let second = tokio::spawn(follower.confirm_local_application(p, UNLIMITED));
    let full = follower.confirm_local_application(p, UNLIMITED).await;
    assert_eq!(full, Err(QueryError::QueueFull));
    assert!(full.as_ref().is_err_and(QueryError::is_retryable));
    assert_eq!(full.expect_err("full").status(), Status::ProposalQueueFull);
    // An abandoned read (its future dropped, or its timeout fired) holds no room.
    drop(first);
    let timed_out = follower
        .confirm_local_application(p, Some(Duration::from_millis(20)))
        .await;
    assert!(
        matches!(timed_out, Err(QueryError::Timeout { .. })),
        "{timed_out:?}"
    );
    let third = tokio::spawn(follower.confirm_local_application(p, UNLIMITED));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        follower.confirm_local_application(p, UNLIMITED).await,
        Err(QueryError::QueueFull)
    );
    assert!(!second.is_finished() && !third.is_finished());
    // The leader changes: the orphaned forwarded reads are refused (retryable), not leaked.
    hold.store(false, Ordering::Release);
    cluster
        .raft(leader)
        .testing()
        .step_down(p, Some(PATIENCE))
        .await
        .expect("step down");
    for orphan in [second, third] {
        let answer = tokio::time::timeout(PATIENCE, orphan)
            .await
            .expect("answered when the leadership changed")
            .expect("task");
        assert!(
            matches!(answer, Err(QueryError::NotLeader { .. })),
            "{answer:?}"
        );
    }
    let written = cluster.replicate(p, b"after").await;
    let index = follower
        .confirm_local_application(p, Some(PATIENCE))
        .await
        .expect("reads work again");
    assert!(index >= written.log_index);
}
