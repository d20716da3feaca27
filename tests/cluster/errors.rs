//! Every error a caller can provoke through the handle, provoked, with its IRaft status.

use std::time::Duration;

use bytes::Bytes;
use kommander_raft::transport::faulty::FaultRates;
use kommander_raft::{
    Fatal, InvalidWrite, NodeId, PartitionId, QueryError, RaftEvent, ReplicateError,
    ReplicateOptions, Status,
};

use super::harness::{PATIENCE, TestCluster, gate, restarted_with_a_held_restore, wait_entered};

#[tokio::test]
async fn not_leader_moved_and_invalid_writes() {
    let cluster = TestCluster::start(3, 2).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let follower = cluster.raft((leader + 1) % 3);
    let leader = cluster.raft(leader);
    let write = |raft: &kommander_raft::Raft, p, log_type: &str, options| {
        raft.replicate_logs(p, log_type, "x", options)
    };
    let plain = ReplicateOptions::default();
    let not_leader = write(follower, p, "t", plain).await.expect_err("follower");
    assert!(matches!(not_leader, ReplicateError::NotLeader { .. }));
    assert_eq!(not_leader.status(), Status::NodeIsNotLeader);
    // Generation fence: the map's generation passes, another one is refused.
    let current = ReplicateOptions {
        expected_generation: leader.partition_generation(p),
        ..plain
    };
    assert_eq!(current.expected_generation, 1);
    write(leader, p, "t", current)
        .await
        .expect("current generation");
    let stale = ReplicateOptions {
        expected_generation: 7,
        ..plain
    };
    let moved = ReplicateError::PartitionMoved {
        partition: p,
        generation: 1,
    };
    assert_eq!(write(leader, p, "t", stale).await, Err(moved.clone()));
    assert!(moved.is_retryable());
    assert_eq!(moved.status(), Status::PartitionMoved);
    // A partition that is not in the map is not open here.
    let absent = PartitionId(99);
    assert_eq!(
        write(leader, absent, "t", plain).await,
        Err(ReplicateError::PartitionMoved {
            partition: absent,
            generation: 0,
        })
    );
    assert_eq!(
        leader.partition_status(absent).await.err(),
        Some(QueryError::PartitionMoved { partition: absent })
    );
    // Reserved or oversize types, oversize entries and empty batches are refused before
    // anything is proposed; never retryable.
    let config = leader.config();
    let long_type = "x".repeat(config.log_type_bytes_max + 1);
    let huge = vec![0; config.wal_record_bytes_max];
    let invalid = [
        (
            write(leader, p, "_RaftSystem", plain).await,
            InvalidWrite::ReservedLogType,
        ),
        (
            write(leader, p, "_RaftGeneration", plain).await,
            InvalidWrite::ReservedLogType,
        ),
        (
            write(leader, p, "_RaftImport", plain).await,
            InvalidWrite::ReservedLogType,
        ),
        (
            write(leader, p, &long_type, plain).await,
            InvalidWrite::LogTypeTooLong {
                bytes: long_type.len(),
                max: config.log_type_bytes_max,
            },
        ),
        (
            leader.replicate_batch(p, "t", Vec::new(), plain).await,
            InvalidWrite::Empty,
        ),
        (
            leader.replicate_logs(p, "t", huge, plain).await,
            InvalidWrite::EntryTooLarge {
                bytes: config.wal_record_bytes_max + 1,
                max: config.wal_record_bytes_max - 18,
            },
        ),
    ];
    for (refused, reason) in invalid {
        let error = refused.expect_err("invalid");
        assert_eq!(error, ReplicateError::Invalid(reason));
        assert!(!error.is_retryable() && !error.is_fatal());
        assert_eq!(error.status(), Status::Errored);
    }
}

#[tokio::test]
async fn a_full_shard_queue_answers_proposal_queue_full() {
    let cluster = TestCluster::start_with(1, 1, None, |c| c.shard_commands_max = 2).await;
    let p = PartitionId(1);
    cluster.leader(p).await;
    let raft = cluster.raft(0).clone();
    let (hook, entered, release) = gate();
    *cluster.nodes[0].app.on_live.lock().expect("hook") = Some(hook);
    let blocked = tokio::spawn(raft.replicate_logs(p, "t", "blocks", Default::default()));
    wait_entered(&entered).await;
    // The shard thread is inside the callback: two requests fill its queue.
    let queued: Vec<_> = (0..2)
        .map(|_| tokio::spawn(raft.partition_status(p)))
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refused = raft
        .replicate_logs(p, "t", "refused", Default::default())
        .await;
    assert_eq!(refused, Err(ReplicateError::QueueFull));
    assert_eq!(
        raft.partition_status(p).await.err(),
        Some(QueryError::QueueFull)
    );
    release.send(()).expect("release");
    blocked.await.expect("task").expect("written");
    for status in queued {
        assert!(status.await.expect("task").is_ok());
    }
}

#[tokio::test]
async fn a_restoring_partition_answers_restore_in_progress() {
    let (cluster, entered, release) = restarted_with_a_held_restore().await;
    let p = PartitionId(1);
    let raft = cluster.raft(0).clone();
    let joining = tokio::spawn(raft.join_cluster(None));
    wait_entered(&entered).await;
    let asked = tokio::spawn(raft.replicate_logs(p, "t", "early", Default::default()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    release.send(()).expect("release");
    let restoring = asked.await.expect("task").expect_err("restoring");
    assert_eq!(restoring, ReplicateError::RestoreInProgress);
    assert!(restoring.is_retryable());
    joining.await.expect("task").expect("joined");
    raft.wait_for_leader(p, Some(PATIENCE))
        .await
        .expect("leader");
    cluster.replicate(p, b"later").await;
    assert_eq!(cluster.nodes[0].app.restored(p).len(), 5);
}

#[tokio::test]
async fn an_isolated_leader_times_out_then_fails_replication() {
    let cluster = TestCluster::start_with(3, 1, Some(FaultRates::default()), |_| {}).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let raft = cluster.raft(leader).clone();
    let faults = cluster.faults.clone().expect("faults");
    let all: Vec<NodeId> = (1..=3).map(NodeId).collect();
    faults.isolate(raft.local_node_id(), &all);
    let quick = ReplicateOptions {
        timeout: Some(Duration::from_millis(10)),
        ..ReplicateOptions::default()
    };
    let timed_out = raft
        .replicate_logs(p, "t", "lost 1", quick)
        .await
        .expect_err("isolated");
    assert!(matches!(timed_out, ReplicateError::Timeout { .. }));
    assert!(timed_out.is_retryable());
    assert_eq!(timed_out.status(), Status::ProposalTimeout);
    // With the default timeout (`proposal_timeout_ms`, 10 s) the answer comes first, when
    // check-quorum deposes the leader.
    let failed = raft
        .replicate_logs(p, "t", Bytes::from_static(b"lost 2"), Default::default())
        .await
        .expect_err("deposed");
    assert!(matches!(failed, ReplicateError::LeadershipLost { .. }));
    assert!(failed.is_retryable() && !failed.is_fatal());
    assert_eq!(failed.status(), Status::ReplicationFailed);
    faults.heal();
    cluster.replicate(p, b"after heal").await;
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn a_panicking_state_machine_is_a_fatal_shard_failure() {
    // One node, 2 shards: partition 1 on shard 1, partition 2 on shard 0.
    let cluster = TestCluster::start(1, 2).await;
    let (failing, healthy) = (PartitionId(1), PartitionId(2));
    cluster.replicate(failing, b"before").await;
    const PANIC: &str = "the application cannot apply this entry";
    *cluster.nodes[0].app.on_live.lock().expect("hook") = Some(Box::new(|_, entry| {
        assert!(&entry.payload[..] != b"panic", "{PANIC}");
    }));
    let raft = cluster.raft(0);
    let failed = raft
        .replicate_logs(failing, "t", "panic", Default::default())
        .await
        .expect_err("the shard failed");
    let ReplicateError::Fatal(Fatal::ShardFailed { shard, reason }) = failed.clone() else {
        panic!("{failed:?}");
    };
    assert_eq!(shard, 1);
    assert!(reason.contains(PANIC), "{reason}");
    assert!(failed.is_fatal() && !failed.is_retryable());
    assert_eq!(failed.status(), Status::Errored);
    // The event says so, and every later request on that shard gets the same reason.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cluster.nodes[0]
        .events
        .lock()
        .expect("events")
        .iter()
        .any(|e| matches!(e, RaftEvent::ShardFailed { shard: 1, reason } if reason.contains(PANIC)))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ShardFailed event"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(matches!(
        raft.partition_status(failing).await,
        Err(QueryError::Fatal(Fatal::ShardFailed { shard: 1, .. }))
    ));
    // The other shard's partitions keep working, and the node still shuts down cleanly.
    cluster.replicate(healthy, b"after").await;
    raft.shutdown().await;
}
