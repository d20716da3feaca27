//! Fenced linearizable reads after a split (decision 0006, the fence on reads): a read routed
//! with the source's generation from before the split, for a key the split moved, is refused
//! `PartitionMoved` on the source's leader (`confirm_leadership_with`) and on a follower
//! (`confirm_local_application_with`) whose partition-0 map lags and whose replica of the
//! source did not yet hold the source's generation entry when the read arrived — the fence is
//! judged again once its application applied the read index. An unfenced read is answered
//! (Kommander's behaviour: the source's state still holds the moved keys' old values).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kommander_raft::core::MessageBody;
use kommander_raft::shard::partitions::key_hash;
use kommander_raft::{NodeId, PartitionId, QueryError, RangeState, ReadOptions, SplitPlan};

use super::harness::{PATIENCE, TestCluster, eventually};
use super::read::holding;

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
const P2: PartitionId = PartitionId(2);

fn fenced(generation: u64) -> ReadOptions {
    ReadOptions {
        expected_generation: generation,
        timeout: Some(PATIENCE),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_routed_before_a_split_is_refused_on_the_leader_and_on_a_lagging_follower() {
    // `cut`: the node whose partition-0 traffic is dropped both ways (0: none);
    // `behind`: also drop the source's appends to it (heartbeats pass, so it stays a
    // follower and its ReadIndex requests are answered).
    let cut = Arc::new(AtomicU64::new(0));
    let behind = Arc::new(AtomicBool::new(false));
    let (wrap, hold) = {
        let (cut, behind) = (Arc::clone(&cut), Arc::clone(&behind));
        holding(move |from, to, m| {
            let node = NodeId(cut.load(Ordering::Acquire));
            let appends = matches!(m.body, MessageBody::AppendRequest { .. });
            (m.partition == P0 && (from == node || to == node))
                || (m.partition == P1 && to == node && appends && behind.load(Ordering::Acquire))
        })
    };
    hold.store(true, Ordering::Release);
    let cluster = TestCluster::start_wrapped(3, 1, wrap).await;
    cluster.replicate(P1, b"before the split").await;
    cluster.wait_delivered(P1, 1).await;
    let (leader_0, leader_1) = (cluster.leader(P0).await, cluster.leader(P1).await);
    let follower = (0..3)
        .find(|&i| i != leader_0 && i != leader_1)
        .expect("a node leading neither");
    cut.store(cluster.nodes[follower].config.node_id, Ordering::Release);
    behind.store(true, Ordering::Release);

    let plan = SplitPlan {
        target: Some(P2),
        boundary: None,
    };
    let split = cluster
        .raft(leader_0)
        .split_partition(P1, plan, Some(PATIENCE))
        .await;
    assert_eq!(split, Ok(2), "phase 1: the source's generation");
    for i in (0..3).filter(|&i| i != follower) {
        eventually("phase 2 on the nodes that follow partition 0", || {
            let map = cluster.raft(i).partition_map();
            [P1, P2]
                .iter()
                .all(|&p| map.get(p).is_some_and(|r| r.state == RangeState::Active))
        })
        .await;
    }
    // A key the split moved: the follower's map, which lags, still routes it to the source
    // at generation 1.
    let map = cluster.raft(leader_0).partition_map();
    let boundary = map.get(P2).expect("the target").start;
    let moved = (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| key_hash(k) >= boundary)
        .expect("a moved key");
    let lagging = cluster.raft(follower);
    assert_eq!(lagging.partition_for_key(&moved), Ok(P1));
    assert_eq!(
        lagging.partition_generation(P1),
        1,
        "the follower's map lags"
    );

    // The source's leader: refused with the old generation, answered with the new one, and
    // unfenced.
    let leader_1 = cluster.leader(P1).await;
    let on_leader = cluster.raft(leader_1);
    let stale = on_leader.confirm_leadership_with(P1, fenced(1)).await;
    assert_eq!(stale, Err(QueryError::PartitionMoved { partition: P1 }));
    let current = on_leader.partition_generation(P1);
    assert_eq!(current, 3);
    on_leader
        .confirm_leadership_with(P1, fenced(current))
        .await
        .expect("the current generation");
    on_leader
        .confirm_leadership(P1, Some(PATIENCE))
        .await
        .expect("unfenced");

    // The follower: its replica of the source lacks the generation entry when the reads
    // arrive (its map and its log both say generation 1), so only the judgement made once its
    // application applied the read index can refuse the fenced one.
    let stale = tokio::spawn(lagging.confirm_local_application_with(P1, fenced(1)));
    let unfenced = tokio::spawn(lagging.confirm_local_application(P1, Some(PATIENCE)));
    // A round trip through the source's shard on the follower: both reads were carried out.
    lagging.partition_status(P1).await.expect("status");
    behind.store(false, Ordering::Release);
    assert_eq!(
        stale.await.expect("the read's task"),
        Err(QueryError::PartitionMoved { partition: P1 }),
        "a read routed before the split, served by a follower whose map lags"
    );
    unfenced
        .await
        .expect("the read's task")
        .expect("an unfenced read is answered (Kommander's behaviour)");
    assert_eq!(lagging.partition_generation(P1), 1, "the map still lags");
}
