//! A split moves the keys of the upper half of a partition's range to the new partition
//! (the store's range export and import), and a merge moves them back.

use kommander_raft::{Raft, RangeState, SYSTEM_PARTITION, SplitPlan};

use crate::cluster::{Cluster, eventually};

const KEYS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_and_a_merge_move_the_keys_with_their_range() {
    let cluster = Cluster::start(|_| {}).await;
    for key in 0..KEYS {
        cluster.put(&format!("m{key}"), &format!("v{key}")).await;
    }
    let source = cluster.partitions()[0];
    let coordinator = (0..3)
        .find(|i| cluster.node(*i).raft().am_i_leader_quick(SYSTEM_PARTITION))
        .expect("partition 0's leader");
    let raft = cluster.node(coordinator).raft();
    let target = raft.next_available_partition_id().expect("an id");
    raft.split_partition(
        source,
        SplitPlan {
            target: Some(target),
            boundary: None,
        },
        None,
    )
    .await
    .expect("the split");
    await_state(raft, &[source, target], RangeState::Active).await;
    let range = raft
        .partition_map()
        .get(target)
        .cloned()
        .expect("the target range");
    let moved: Vec<usize> = (0..KEYS)
        .filter(|key| {
            let hash = Raft::key_hash(&format!("m{key}"));
            range.start <= hash && hash <= range.end
        })
        .collect();
    assert!(!moved.is_empty(), "no key in the moved range {range:?}");
    cluster.settle().await;
    for key in 0..KEYS {
        let name = format!("m{key}");
        assert_eq!(
            raft.partition_for_key(&name).expect("routed") == target,
            moved.contains(&key)
        );
        for i in 0..3 {
            let read = cluster.get(i, &name).await;
            assert_eq!(
                read.as_deref(),
                Some(format!("v{key}").as_bytes()),
                "node {i}, {name}"
            );
        }
    }
    // The moved keys take writes in their new partition.
    let first = format!("m{}", moved[0]);
    cluster.put(&first, "after the split").await;
    // A linearizable read of the moved key, on every node, is the value written to the target
    // (the source still holds the old value: its fenced read is refused, and routed again).
    for i in 0..3 {
        let read = cluster.get(i, &first).await;
        assert_eq!(read.as_deref(), Some(&b"after the split"[..]), "node {i}");
    }

    raft.merge_partitions(source, target, None)
        .await
        .expect("the merge");
    // Phase 2: the survivor imported the range and the merged-away partition is a tombstone.
    await_state(raft, &[target], RangeState::Removed).await;
    cluster.settle().await;
    assert_eq!(raft.partition_for_key(&first).expect("routed"), source);
    for i in 0..3 {
        let read = cluster.get(i, &first).await;
        assert_eq!(read.as_deref(), Some(&b"after the split"[..]), "node {i}");
    }
}

/// Waits until each of `partitions` is in `state` in `raft`'s map (phase 2 done).
async fn await_state(raft: &Raft, partitions: &[kommander_raft::PartitionId], state: RangeState) {
    eventually(|| async {
        let map = raft.partition_map();
        if partitions
            .iter()
            .all(|p| map.get(*p).is_some_and(|r| r.state == state))
        {
            Ok(())
        } else {
            Err(format!("not {state:?} in time: {map:?}"))
        }
    })
    .await;
}
