//! Splitting and merging partitions through the handle (Kommander's `SplitPartitionAsync`,
//! `MergePartitionsAsync`; decision 0006, amendment "split and merge, precisely"): the handle
//! answers once phase 1 committed; partition 0's leader proposes phase 2 on its own once its
//! node's replica of the importing partition applied the import's end, so the moved keys' data
//! is in the target on every node when the map shows it active; a write routed with the old
//! generation is refused; a merge moves the data back and tombstones the source; and a crash
//! of partition 0's leader between the phases leaves phase 2 to the next leader.
//!
//! The application is the harness's `Recorder`, whose entries' payloads are keys: its range
//! export is the source's entries whose key hashes into the moved range.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use kommander_raft::shard::partitions::key_hash;
use kommander_raft::{
    MapOperationError, PartitionId, PartitionLifecycleError, RangeState, ReplicateError,
    ReplicateOptions, SplitPlan, TransitionError,
};

use super::harness::{PATIENCE, TestCluster, eventually};

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
const P2: PartitionId = PartitionId(2);
const KEYS: usize = 40;

fn key(i: usize) -> String {
    format!("key-{i}")
}

/// Writes `keys` to `partition` and waits until every running node holds them.
async fn write_keys(cluster: &TestCluster, partition: PartitionId, keys: &[String]) {
    let before = cluster.nodes[cluster.leader(partition).await]
        .app
        .live(partition)
        .len();
    for key in keys {
        cluster.replicate(partition, key.as_bytes()).await;
    }
    cluster.wait_delivered(partition, before + keys.len()).await;
}

/// The keys of `partition` on node `i`'s application.
fn keys_of(cluster: &TestCluster, i: usize, partition: PartitionId) -> BTreeSet<String> {
    cluster.nodes[i]
        .app
        .payloads(partition)
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// Waits until every running node's committed map shows `partition` in `state`.
async fn wait_state(cluster: &TestCluster, partition: PartitionId, state: RangeState) {
    for node in cluster.nodes.iter().filter(|n| n.raft.is_some()) {
        let raft = node.raft.as_ref().expect("running");
        eventually("the range's state", || {
            raft.partition_map()
                .get(partition)
                .is_some_and(|r| r.state == state)
        })
        .await;
    }
}

/// Splits `P1` into `P2` on partition 0's leader.
async fn split(
    cluster: &TestCluster,
    boundary: Option<i32>,
) -> Result<u64, PartitionLifecycleError> {
    let leader = cluster.leader(P0).await;
    let plan = SplitPlan {
        target: Some(P2),
        boundary,
    };
    cluster
        .raft(leader)
        .split_partition(P1, plan, Some(PATIENCE))
        .await
}

/// Merges `P2` into `P1` on partition 0's leader.
async fn merge(cluster: &TestCluster) -> Result<u64, PartitionLifecycleError> {
    let leader = cluster.leader(P0).await;
    cluster
        .raft(leader)
        .merge_partitions(P1, P2, Some(PATIENCE))
        .await
}

/// The keys of `keys` hashing at or above `boundary`: those a split there moves.
fn moved_keys(keys: &[String], boundary: i32) -> BTreeSet<String> {
    keys.iter()
        .filter(|k| boundary <= key_hash(k))
        .cloned()
        .collect()
}

/// A write to `partition` routed with `generation`, on its leader.
async fn fenced_write(
    cluster: &TestCluster,
    partition: PartitionId,
    generation: u64,
    payload: &str,
) -> Result<(), ReplicateError> {
    let leader = cluster.leader(partition).await;
    let options = ReplicateOptions {
        expected_generation: generation,
        ..ReplicateOptions::default()
    };
    cluster
        .raft(leader)
        .replicate_logs(partition, "test", Bytes::from(payload.to_owned()), options)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_split_moves_the_upper_keys_to_the_target_on_every_node_and_a_merge_moves_them_back() {
    let cluster = TestCluster::start(3, 1).await;
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    write_keys(&cluster, P1, &keys).await;
    let range = cluster.raft(0).partition_map().get(P1).expect("p1").clone();
    assert_eq!(range.generation, 1);

    // Refusals are typed, and change nothing.
    let leader = cluster.leader(P0).await;
    let refused = cluster
        .raft(leader)
        .split_partition(
            P1,
            SplitPlan {
                target: Some(P0),
                boundary: None,
            },
            Some(PATIENCE),
        )
        .await;
    assert_eq!(
        refused,
        Err(PartitionLifecycleError::Refused(
            MapOperationError::Transition(TransitionError::TargetTaken(P0))
        ))
    );
    assert_eq!(
        cluster
            .raft(leader)
            .merge_partitions(P1, P1, Some(PATIENCE))
            .await,
        Err(PartitionLifecycleError::Refused(
            MapOperationError::Transition(TransitionError::SamePartition(P1))
        ))
    );

    // Phase 1 answers with the source's generation; a retry answers too (phase 2 may have
    // come between: the source's generation then).
    assert_eq!(split(&cluster, None).await, Ok(2));
    let retry = split(&cluster, None).await.expect("an idempotent retry");
    assert!(matches!(retry, 2 | 3), "{retry}");

    // Phase 2 on its own: both active, each at the next generation.
    wait_state(&cluster, P2, RangeState::Active).await;
    wait_state(&cluster, P1, RangeState::Active).await;
    let map = cluster.raft(0).partition_map();
    let (source, target) = (map.get(P1).expect("p1"), map.get(P2).expect("p2"));
    assert_eq!((source.generation, target.generation), (3, 2));
    assert_eq!((source.start, target.end), (range.start, range.end));
    let moved = moved_keys(&keys, target.start);
    assert!(!moved.is_empty() && moved.len() < KEYS, "{moved:?}");
    // The moved keys' data is in the target on every node (phase 2 waited for the import).
    for i in 0..cluster.nodes.len() {
        assert_eq!(keys_of(&cluster, i, P2), moved, "node {i}");
    }

    // A write routed with the old generation is refused; the new one's commits.
    let stale = fenced_write(&cluster, P1, 1, "stale").await;
    assert!(
        matches!(stale, Err(ReplicateError::PartitionMoved { .. })),
        "{stale:?}"
    );
    fenced_write(&cluster, P1, 3, "fresh")
        .await
        .expect("the new generation");
    let later: Vec<String> =
        moved_keys(&(KEYS..2 * KEYS).map(key).collect::<Vec<_>>(), target.start)
            .into_iter()
            .collect();
    write_keys(&cluster, P2, &later).await;

    // Merge back: the survivor's generation; a retry answers too.
    assert_eq!(merge(&cluster).await, Ok(3));
    wait_state(&cluster, P2, RangeState::Removed).await;
    assert_eq!(merge(&cluster).await, Ok(4), "a retry after phase 2");
    for node in &cluster.nodes {
        let raft = node.raft.as_ref().expect("running");
        eventually("the survivor widened", || {
            raft.partition_map()
                .get(P1)
                .is_some_and(|r| (r.start, r.end, r.generation) == (range.start, range.end, 4))
        })
        .await;
    }
    // The target's later writes reach the survivor on every node: phase 2 waits for the
    // import's end on the node that proposes it only (decision 0006, `SplitProgress`), so
    // another node's survivor may still be applying it when its map shows the merge.
    for i in 0..cluster.nodes.len() {
        eventually(
            &format!("node {i}'s survivor holds the later writes"),
            || {
                let survivor = keys_of(&cluster, i, P1);
                later.iter().all(|k| survivor.contains(k))
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_next_leader_of_partition_0_finishes_a_split_its_predecessor_began() {
    let mut cluster = TestCluster::start(3, 1).await;
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    write_keys(&cluster, P1, &keys).await;
    // No import can end until the leader is gone: phase 2 is not due before.
    for node in &cluster.nodes {
        node.app.refuse_range_export.store(true, Ordering::Release);
    }
    assert_eq!(split(&cluster, None).await, Ok(2));
    wait_state(&cluster, P2, RangeState::Splitting).await;
    let leader = cluster.leader(P0).await;
    cluster.stop_node(leader).await;
    for node in &cluster.nodes {
        node.app.refuse_range_export.store(false, Ordering::Release);
    }
    let next = cluster.leader(P0).await;
    assert_ne!(next, leader);

    wait_state(&cluster, P1, RangeState::Active).await;
    wait_state(&cluster, P2, RangeState::Active).await;
    let map = cluster.raft(next).partition_map();
    let target = map.get(P2).expect("p2");
    let moved = moved_keys(&keys, target.start);
    for i in (0..cluster.nodes.len()).filter(|&i| i != leader) {
        assert_eq!(keys_of(&cluster, i, P2), moved, "node {i}");
    }
}
