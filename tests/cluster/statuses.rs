//! Every status a caller can provoke through the handle, provoked.

use std::time::Duration;

use bytes::Bytes;
use kommander_raft::transport::faulty::FaultRates;
use kommander_raft::{NodeId, PartitionId, ReplicateOptions, Status};

use super::harness::{PATIENCE, TestCluster, gate};

async fn wait_entered(entered: &std::sync::mpsc::Receiver<()>) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while entered.try_recv().is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "callback not entered"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn not_leader_moved_and_invalid_writes() {
    let cluster = TestCluster::start(3, 2).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let follower = cluster.raft((leader + 1) % 3);
    let leader = cluster.raft(leader);
    let write = |raft: &kommander_raft::Raft, p, log_type: &'static str, options| {
        let raft = raft.clone();
        async move { raft.replicate_logs(p, log_type, "x", options).await.status }
    };
    let plain = ReplicateOptions::default();
    assert_eq!(
        write(follower, p, "t", plain).await,
        Status::NodeIsNotLeader
    );
    assert_eq!(
        follower.commit_logs(p, follower.hlc().now()).await.status,
        Status::NodeIsNotLeader
    );
    // Generation fence: the map's generation passes, another one is refused.
    let current = ReplicateOptions {
        expected_generation: leader.partition_generation(p),
        ..plain
    };
    assert_eq!(current.expected_generation, 1);
    assert_eq!(write(leader, p, "t", current).await, Status::Success);
    let stale = ReplicateOptions {
        expected_generation: 7,
        ..plain
    };
    assert_eq!(write(leader, p, "t", stale).await, Status::PartitionMoved);
    // A partition that is not in the map is not open here.
    assert_eq!(
        write(leader, PartitionId(99), "t", plain).await,
        Status::PartitionMoved
    );
    assert_eq!(
        leader.partition_status(PartitionId(99)).await.err(),
        Some(Status::PartitionMoved)
    );
    // Reserved or oversize types and empty batches are refused.
    assert_eq!(
        write(leader, p, "_RaftSystem", plain).await,
        Status::Errored
    );
    let long_type = "x".repeat(leader.config().log_type_bytes_max + 1);
    assert_eq!(
        leader
            .replicate_logs(p, &long_type, "x", plain)
            .await
            .status,
        Status::Errored
    );
    assert_eq!(
        leader
            .replicate_batch(p, "t", Vec::new(), plain)
            .await
            .status,
        Status::Errored
    );
}

#[tokio::test]
async fn a_full_shard_queue_answers_proposal_queue_full() {
    let cluster = TestCluster::start_with(1, 1, None, |c| c.shard_commands_max = 2).await;
    let p = PartitionId(1);
    cluster.leader(p).await;
    let raft = cluster.raft(0).clone();
    let (hook, entered, release) = gate();
    *cluster.nodes[0].app.on_live.lock().expect("hook") = Some(hook);
    let blocked = {
        let raft = raft.clone();
        tokio::spawn(async move {
            raft.replicate_logs(p, "t", "blocks", Default::default())
                .await
        })
    };
    wait_entered(&entered).await;
    // The shard thread is inside the callback: two requests fill its queue.
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let raft = raft.clone();
            tokio::spawn(async move { raft.partition_status(p).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refused = raft
        .replicate_logs(p, "t", "refused", Default::default())
        .await;
    assert_eq!(refused.status, Status::ProposalQueueFull);
    assert_eq!(refused.log_index, None);
    release.send(()).expect("release");
    assert!(blocked.await.expect("task").is_success());
    for status in queued {
        assert!(status.await.expect("task").is_ok());
    }
}

#[tokio::test]
async fn a_restoring_partition_answers_restore_in_progress() {
    let mut cluster =
        TestCluster::start_with(1, 1, None, |c| c.restore_entries_per_turn_max = 1).await;
    let p = PartitionId(1);
    for k in 0..5u8 {
        cluster.replicate(p, &[k]).await;
    }
    cluster.stop_all().await;
    let recorder = std::sync::Arc::new(super::harness::Recorder::default());
    let (hook, entered, release) = gate();
    *recorder.on_restore.lock().expect("hook") = Some(hook);
    cluster.nodes[0].app = recorder;
    cluster.start_node(0);
    let raft = cluster.raft(0).clone();
    let joining = {
        let raft = raft.clone();
        tokio::spawn(async move { raft.join_cluster(None).await })
    };
    wait_entered(&entered).await;
    let asked = {
        let raft = raft.clone();
        tokio::spawn(async move {
            raft.replicate_logs(p, "t", "early", Default::default())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    release.send(()).expect("release");
    assert_eq!(asked.await.expect("task").status, Status::RestoreInProgress);
    joining.await.expect("task").expect("joined");
    raft.wait_for_leader(p, PATIENCE).await.expect("leader");
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
    let timed_out = raft.replicate_logs(p, "t", "lost 1", quick).await;
    assert_eq!(timed_out.status, Status::ProposalTimeout);
    // Without a timeout the answer comes when check-quorum deposes the leader.
    let failed = raft
        .replicate_logs(p, "t", Bytes::from_static(b"lost 2"), Default::default())
        .await;
    assert_eq!(failed.status, Status::ReplicationFailed);
    faults.heal();
    cluster.replicate(p, b"after heal").await;
    cluster.assert_one_leader_per_term();
}
