//! Creating and removing partitions through the handle (Kommander's `CreatePartitionAsync`,
//! `RemovePartitionAsync`, `GetNextAvailablePartitionId`; decision 0006 point 3): partition 0's
//! leader commits the next map, every node opens what it adds (writes commit there, on every
//! node) and closes what it removes (its WAL records deleted); a created partition starts from
//! the configuration its map entry carried, at every restart; retries are idempotent, a
//! tombstoned id is never reused, refusals are typed with IRaft's statuses, a follower names
//! the leader, and of two concurrent changes exactly one applies.

use std::time::Duration;

use kommander_raft::{
    CreatePartition, FirstMembers, MapOperationError, NodeConfig, NodeId, PartitionId,
    PartitionLifecycleError, QueryError, RangeState, RoutingMode, Status,
};
use kommander_wal::Wal;

use super::harness::{PATIENCE, TestCluster, eventually};
use super::partition_map::is_shard;

const P0: PartitionId = PartitionId(0);
const P1: PartitionId = PartitionId(1);
const P2: PartitionId = PartitionId(2);
const P3: PartitionId = PartitionId(3);
const P4: PartitionId = PartitionId(4);

/// Whether any shard WAL under `config`'s data directory holds records of `partition`.
fn wal_holds(config: &NodeConfig, partition: PartitionId) -> bool {
    std::fs::read_dir(&config.data_dir)
        .expect("data dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| is_shard(path))
        .any(|path| {
            let wal = Wal::open(&path, config.wal_config()).expect("open WAL");
            wal.partition(partition).is_ok()
        })
}

/// Waits until every running node's map in force holds `partition` in `state` (`None`: open,
/// not removed).
async fn wait_in_force(cluster: &TestCluster, partition: PartitionId, removed: bool) {
    for node in cluster.nodes.iter().filter(|n| n.raft.is_some()) {
        let raft = node.raft.as_ref().expect("running");
        eventually("the map in force", || {
            raft.partition_map()
                .get(partition)
                .is_some_and(|r| (r.state == RangeState::Removed) == removed)
        })
        .await;
    }
}

/// Removes `partition` on partition 0's leader.
async fn remove(cluster: &TestCluster, partition: PartitionId) -> u64 {
    let leader = cluster.leader(P0).await;
    cluster
        .raft(leader)
        .remove_partition(partition, Some(PATIENCE))
        .await
        .expect("removed")
}

/// Creates `partition` on partition 0's leader.
async fn create(
    cluster: &TestCluster,
    partition: PartitionId,
    spec: CreatePartition,
) -> Result<u64, PartitionLifecycleError> {
    let leader = cluster.leader(P0).await;
    cluster
        .raft(leader)
        .create_partition(partition, spec, Some(PATIENCE))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn created_partitions_open_everywhere_and_a_removed_one_is_closed_and_reclaimed() {
    let mut cluster = TestCluster::start(3, 2).await;
    cluster.replicate(P2, b"before the removal").await;
    cluster.wait_delivered(P2, 1).await;
    let freed = cluster.raft(0).partition_map().get(P2).expect("p2").clone();

    // Remove partition 2: a tombstone at the next generation, keeping its range; a retry
    // answers the same generation.
    assert_eq!(remove(&cluster, P2).await, 2);
    assert_eq!(remove(&cluster, P2).await, 2, "an idempotent retry");
    wait_in_force(&cluster, P2, true).await;
    for node in &cluster.nodes {
        let raft = node.raft.as_ref().expect("running");
        let tombstone = raft.partition_map().get(P2).expect("kept").clone();
        assert_eq!((tombstone.start, tombstone.end), (freed.start, freed.end));
        assert_eq!(tombstone.generation, 2);
        assert!(raft.partition_status(P2).await.is_err(), "closed");
    }

    // Its range is free: a hash-routed partition takes it; an unrouted one is added beside.
    let routed = CreatePartition::hash_range(freed.start, freed.end);
    assert_eq!(create(&cluster, P3, routed).await, Ok(1));
    assert_eq!(
        create(&cluster, P3, routed).await,
        Ok(1),
        "an idempotent retry"
    );
    assert_eq!(
        create(&cluster, P4, CreatePartition::unrouted()).await,
        Ok(1)
    );
    let leader = cluster.leader(P0).await;
    assert_eq!(
        cluster.raft(leader).next_available_partition_id(),
        Some(PartitionId(5))
    );
    // A tombstoned id is never reused.
    let again = create(&cluster, P2, CreatePartition::unrouted()).await;
    assert_eq!(
        again,
        Err(PartitionLifecycleError::Refused(
            MapOperationError::Tombstoned(P2)
        ))
    );
    assert_eq!(again.unwrap_err().status(), Status::Errored);

    wait_in_force(&cluster, P3, false).await;
    wait_in_force(&cluster, P4, false).await;
    let map = cluster.raft(0).partition_map();
    let p3 = map.get(P3).expect("p3");
    assert_eq!(p3.routing, RoutingMode::HashRange);
    assert_eq!((p3.generation, p3.state), (1, RangeState::Active));
    assert_eq!(map.get(P4).map(|r| r.routing), Some(RoutingMode::Unrouted));
    // Keys route to it where they routed to partition 2, never to an unrouted partition.
    let routes: Vec<PartitionId> = (0..64)
        .map(|k| map.partition_for_key(&format!("key-{k}")).expect("routed"))
        .collect();
    assert!(routes.contains(&P3) && routes.contains(&P1), "{routes:?}");
    assert!(!routes.contains(&P2) && !routes.contains(&P4), "{routes:?}");

    // Writes commit on the new partitions, on every node's log.
    cluster.replicate(P3, b"routed").await;
    cluster.replicate(P4, b"unrouted").await;
    cluster.wait_delivered(P3, 1).await;
    cluster.wait_delivered(P4, 1).await;

    // The removed partition's records are gone from every node's WAL, the new ones' are there.
    cluster.stop_all().await;
    for node in &cluster.nodes {
        assert!(!wal_holds(&node.config, P2), "node {}", node.config.node_id);
        assert!(wal_holds(&node.config, P3), "node {}", node.config.node_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_created_partition_starts_from_the_configuration_its_entry_carried() {
    // A static cluster of three whose node 3 was removed: partition 0's configuration is
    // {1, 2}, while each node's own first configuration (static) is {1, 2, 3}.
    let mut cluster = TestCluster::start_with(3, 1, None, |config| {
        config.membership.promotion_window_ms = 50;
        config.membership.call_retry_interval_ms = 20;
    })
    .await;
    let leader = cluster.leader(P0).await;
    let dead = (leader + 1) % 3;
    let dead_id = cluster.raft(dead).local_node_id();
    let raft = cluster.raft(leader).clone();
    eventually("the restated roster", || {
        raft.membership().is_some_and(|r| r.version() >= 1)
    })
    .await;
    cluster.stop_node(dead).await;
    cluster
        .raft(leader)
        .remove_member(dead_id, Some(PATIENCE))
        .await
        .expect("removed");
    let alive: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let mut voters: Vec<NodeId> = alive
        .iter()
        .map(|&i| cluster.raft(i).local_node_id())
        .collect();
    voters.sort_unstable();
    for &i in &alive {
        let raft = cluster.raft(i).clone();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let committed = raft
                .partition_configuration(P0)
                .await
                .expect("p0")
                .committed;
            if committed.voters() == voters.as_slice() && committed.learners().is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "p0 without {dead_id}: {committed:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    assert_eq!(
        create(&cluster, P4, CreatePartition::unrouted()).await,
        Ok(1)
    );
    wait_in_force(&cluster, P4, false).await;
    let first = FirstMembers {
        voters: voters.clone(),
        learners: Vec::new(),
    };
    let carried = cluster
        .raft(leader)
        .partition_map()
        .get(P4)
        .expect("p4")
        .clone();
    assert_eq!(carried.first, Some(first));
    cluster.replicate(P4, b"first").await;
    for &i in &alive {
        let known = cluster
            .raft(i)
            .partition_configuration(P4)
            .await
            .expect("p4");
        assert_eq!(
            known.committed.voters(),
            voters.as_slice(),
            "node index {i}"
        );
    }

    // Restarted, a follower of partition 4 opens it from the map's entry again, not from its
    // own static configuration (which would count quorums with node 3).
    let p4_leader = cluster.leader(P4).await;
    let follower = alive
        .iter()
        .copied()
        .find(|&i| i != p4_leader)
        .expect("a follower");
    cluster.stop_node(follower).await;
    cluster.start_node(follower).await;
    cluster
        .raft(follower)
        .join_cluster(None)
        .await
        .expect("rejoined");
    // The restarted replica answers `RestoreInProgress` until it replayed its log.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let known = loop {
        match cluster.raft(follower).partition_configuration(P4).await {
            Err(QueryError::RestoreInProgress) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answer => break answer.expect("p4 restored"),
        }
    };
    assert_eq!(known.committed.voters(), voters.as_slice());
    assert!(known.committed.learners().is_empty());
    cluster.replicate(P4, b"after the restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_are_typed_and_a_follower_names_the_leader() {
    let cluster = TestCluster::start(3, 2).await;
    let leader = cluster.leader(P0).await;
    let leader_id = cluster.raft(leader).local_node_id();
    let follower = (leader + 1) % 3;
    let refused = cluster
        .raft(follower)
        .create_partition(P3, CreatePartition::unrouted(), Some(PATIENCE))
        .await
        .expect_err("not the leader");
    let PartitionLifecycleError::NotLeader {
        leader: Some(hint),
        endpoint: Some(endpoint),
    } = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(*hint, leader_id);
    assert_eq!(*endpoint, cluster.nodes[leader].config.endpoint);
    assert_eq!(refused.status(), Status::NodeIsNotLeader);
    assert!(refused.is_retryable());
    let refused = cluster
        .raft(follower)
        .remove_partition(P1, Some(PATIENCE))
        .await
        .expect_err("not the leader");
    assert!(matches!(refused, PartitionLifecycleError::NotLeader { .. }));

    let p1 = cluster
        .raft(leader)
        .partition_map()
        .get(P1)
        .expect("p1")
        .clone();
    let rules = [
        (
            create(&cluster, P0, CreatePartition::unrouted()).await,
            MapOperationError::SystemPartition,
        ),
        (
            create(&cluster, P3, CreatePartition::hash_range(p1.end, p1.end)).await,
            MapOperationError::Overlap(P1),
        ),
        (
            create(&cluster, P3, CreatePartition::hash_range(5, 4)).await,
            MapOperationError::InvalidRange { start: 5, end: 4 },
        ),
        (
            create(
                &cluster,
                P3,
                CreatePartition {
                    routing: RoutingMode::HashRange,
                    range: None,
                },
            )
            .await,
            MapOperationError::MissingRange,
        ),
        (
            cluster
                .raft(leader)
                .remove_partition(PartitionId(9), Some(PATIENCE))
                .await,
            MapOperationError::NotFound(PartitionId(9)),
        ),
    ];
    for (answer, rule) in rules {
        let error = answer.expect_err("refused");
        assert_eq!(error, PartitionLifecycleError::Refused(rule));
        assert_eq!(error.status(), Status::Errored);
        assert!(!error.is_retryable());
    }
    // Nothing changed.
    assert_eq!(cluster.raft(leader).partition_map().version, 1);
    assert_eq!(cluster.raft(leader).next_available_partition_id(), Some(P3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_changes_exactly_one_applies() {
    let cluster = TestCluster::start(3, 1).await;
    let leader = cluster.leader(P0).await;
    let raft = cluster.raft(leader);
    // Both asked before either is answered: the second finds the first in flight.
    let first = raft.create_partition(P3, CreatePartition::unrouted(), Some(PATIENCE));
    let second = raft.create_partition(P4, CreatePartition::unrouted(), Some(PATIENCE));
    let (first, second) = tokio::join!(first, second);
    let answers = [(P3, first), (P4, second)];
    let applied: Vec<PartitionId> = answers
        .iter()
        .filter(|(_, answer)| answer.is_ok())
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(applied.len(), 1, "{answers:?}");
    let (loser, refused) = answers
        .iter()
        .find(|(_, answer)| answer.is_err())
        .expect("one refused");
    let refused = refused.clone().expect_err("refused");
    assert_eq!(refused, PartitionLifecycleError::ConcurrentChange);
    assert_eq!(refused.status(), Status::ActiveProposal);
    assert!(refused.is_retryable());
    wait_in_force(&cluster, applied[0], false).await;
    let map = raft.partition_map();
    assert_eq!(map.version, 2);
    assert!(map.get(*loser).is_none(), "{map:?}");
    // Retried, the refused one applies.
    assert_eq!(
        raft.create_partition(*loser, CreatePartition::unrouted(), Some(PATIENCE))
            .await,
        Ok(1)
    );
}
