//! Election on every partition, replication read back on every node in the same order,
//! two-phase commit and rollback (checkpoints: `parity.rs`).

use std::time::Duration;

use bytes::Bytes;
use kommander_raft::transport::faulty::FaultRates;
use kommander_raft::{PartitionId, ReplicateError, ReplicateOptions};

use super::harness::{TestCluster, propose_held};

/// Every user partition elects a leader; one write per partition (and a batch on the first)
/// reaches every node, identically ordered.
async fn elect_replicate_read_back(cluster: &TestCluster, writes: usize) {
    for p in cluster.user_partitions() {
        cluster.leader(p).await;
    }
    let mut expected = Vec::new();
    for p in cluster.user_partitions() {
        let mut acked = Vec::new();
        for k in 0..writes {
            let payload = format!("{p}-{k}");
            let written = cluster.replicate(p, payload.as_bytes()).await;
            acked.push((written.log_index, Bytes::from(payload)));
        }
        expected.push((p, acked));
    }
    for (p, acked) in expected {
        cluster.wait_delivered(p, acked.len()).await;
        let first = cluster.nodes[0].app.live(p);
        for node in &cluster.nodes {
            assert_eq!(node.app.live(p), first, "{p}: nodes disagree");
        }
        // Acknowledged entries are delivered once, in index order, with their indexes.
        let delivered: Vec<_> = first.iter().map(|s| (s.index, s.payload.clone())).collect();
        let acked: Vec<_> = acked.into_iter().map(|(i, b)| (i.0, b)).collect();
        assert_eq!(delivered, acked, "{p}");
        assert!(first.iter().all(|s| s.log_type == "test"));
    }
}

#[tokio::test]
async fn one_node_one_partition_replicates_and_reads_back() {
    let cluster = TestCluster::start(1, 1).await;
    elect_replicate_read_back(&cluster, 20).await;
    let raft = cluster.raft(0);
    assert!(raft.is_initialized() && raft.joined());
    assert_eq!(raft.am_i_leader(PartitionId(1), None).await, Ok(true));
    assert_eq!(raft.partition_for_key("orders/1"), Ok(PartitionId(1)));
}

#[tokio::test]
async fn one_node_64_partitions_replicate_and_route() {
    let cluster = TestCluster::start(1, 64).await;
    elect_replicate_read_back(&cluster, 2).await;
    let raft = cluster.raft(0);
    let map = raft.partition_map();
    assert_eq!(map.version, 1);
    assert_eq!(map.partitions.len(), 64);
    // Keys sharing a prefix route together; every routed partition is a user partition.
    let a = raft.partition_for_key("orders/17/line/1").expect("route");
    assert_eq!(raft.partition_for_key("orders/17/line/2"), Ok(a));
    assert_eq!(raft.partition_for_prefix("orders/17/line"), Ok(a));
    assert!((1..=64).contains(&a.0));
    assert_eq!(raft.partition_generation(a), 1);
    assert_eq!(raft.partition_generation(PartitionId(999)), 0);
}

#[tokio::test]
async fn three_nodes_one_partition_replicate_in_the_same_order() {
    let cluster = TestCluster::start(3, 1).await;
    elect_replicate_read_back(&cluster, 30).await;
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn three_nodes_64_partitions_elect_and_replicate_everywhere() {
    let cluster = TestCluster::start(3, 64).await;
    elect_replicate_read_back(&cluster, 2).await;
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn five_nodes_one_partition_replicate_through_faults() {
    let faults = FaultRates {
        drop_per_million: 20_000,
        duplicate_per_million: 20_000,
        delay_per_million: 20_000,
        delay_ms_max: 5,
        reorder_per_million: 20_000,
    };
    let cluster = TestCluster::start_with(5, 1, Some(faults), |_| {}).await;
    elect_replicate_read_back(&cluster, 30).await;
    let counts = cluster.faults.as_ref().expect("faults").counts();
    assert!(counts.dropped > 0 && counts.duplicated > 0, "{counts:?}");
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn five_nodes_64_partitions_elect_and_replicate_everywhere() {
    let cluster = TestCluster::start(5, 64).await;
    elect_replicate_read_back(&cluster, 1).await;
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn two_phase_commit_and_rollback() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let leader = cluster.raft(cluster.leader(p).await);

    // Held entries are not delivered until committed.
    let kept = propose_held(leader, p, "kept").await;
    let dropped = propose_held(leader, p, "dropped").await;
    leader
        .rollback_logs(p, dropped.ticket)
        .await
        .expect("rolled back");
    // Commit after rollback is refused.
    assert_eq!(
        leader.commit_logs(p, dropped.ticket).await,
        Err(ReplicateError::TicketConflict {
            ticket: dropped.ticket
        })
    );
    let committed = leader.commit_logs(p, kept.ticket).await.expect("committed");
    assert!(committed.log_index > kept.log_index);
    assert_eq!(committed.ticket, kept.ticket);
    // A later auto-commit write marks the end of the deliveries.
    cluster.replicate(p, b"after").await;
    cluster.wait_delivered(p, 2).await;
    for node in &cluster.nodes {
        assert_eq!(
            node.app.payloads(p),
            [Bytes::from_static(b"kept"), Bytes::from_static(b"after")]
        );
    }
    // Delivered, a resolution is answered again (a client retrying after a lost answer);
    // the other one conflicts; unknown tickets were never known.
    let again = leader
        .commit_logs(p, kept.ticket)
        .await
        .expect("committed again");
    assert_eq!(again.log_index, committed.log_index);
    assert_eq!(
        leader.rollback_logs(p, kept.ticket).await,
        Err(ReplicateError::TicketConflict {
            ticket: kept.ticket
        })
    );
    let dropped_again = leader.rollback_logs(p, dropped.ticket).await;
    assert!(dropped_again.is_ok(), "{dropped_again:?}");
    let unknown = leader.hlc().now();
    assert_eq!(
        leader.rollback_logs(p, unknown).await,
        Err(ReplicateError::ProposalNotFound { ticket: unknown })
    );
}

#[tokio::test]
async fn a_batch_is_one_proposal_with_contiguous_indexes() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let leader = cluster.raft(cluster.leader(p).await);
    let payloads: Vec<Bytes> = (0..5).map(|k| Bytes::from(format!("b{k}"))).collect();
    let written = leader
        .replicate_batch(p, "batch", payloads.clone(), ReplicateOptions::default())
        .await
        .expect("written");
    cluster.wait_delivered(p, 5).await;
    for node in &cluster.nodes {
        let seen = node.app.live(p);
        assert_eq!(
            seen.iter().map(|s| s.payload.clone()).collect::<Vec<_>>(),
            payloads
        );
        let last = seen.last().expect("entries").index;
        assert_eq!(last, written.log_index.get());
        assert!(seen.windows(2).all(|w| w[1].index == w[0].index + 1));
    }
}

#[tokio::test]
async fn a_rejected_entry_is_reported_as_a_replication_error() {
    let cluster = TestCluster::start(1, 1).await;
    let p = PartitionId(1);
    cluster.replicate(p, b"reject me").await;
    cluster.replicate(p, b"fine").await;
    cluster.wait_delivered(p, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let errors = cluster.nodes[0]
            .events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| matches!(e, kommander_raft::RaftEvent::ReplicationError { partition, .. } if *partition == p))
            .count();
        if errors == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replication error event"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_empty_log_type_and_an_empty_payload_are_delivered_as_they_are() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let written = cluster
        .raft(leader)
        .replicate_logs(p, "", Bytes::new(), ReplicateOptions::default())
        .await
        .expect("an empty entry is valid");
    cluster.wait_delivered(p, 1).await;
    for node in &cluster.nodes {
        let live = node.app.live(p);
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0].index, written.log_index.get());
        assert!(
            live[0].log_type.is_empty() && live[0].payload.is_empty(),
            "{live:?}"
        );
    }
}
