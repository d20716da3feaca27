//! IRaft parity (issue 17, decision 0005): each item where the handle behaves as Kommander
//! documents, or where it deliberately differs, pinned through the public `Raft` API.

use std::time::Duration;

use bytes::Bytes;
use kommander_raft::transport::faulty::FaultRates;
use kommander_raft::transport::memory::MemoryNetwork;
use kommander_raft::{
    NodeId, PartitionId, QueryError, ReplicateError, ReplicateOptions, Role, SYSTEM_PARTITION,
    Status, SteppedDown,
};

use super::harness::{
    PATIENCE, TestCluster, eventually, propose_held, restarted_with_a_held_restore, role,
    start_alone, wait_entered,
};

/// Awaits `call`, failing the test if it has no answer within `PATIENCE`: a call that should
/// end on its own default timeout must not hang.
async fn answered<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PATIENCE:?}"))
}

/// Waits until node `node`'s application holds `payload` on `p`.
async fn wait_applied(cluster: &TestCluster, node: usize, p: PartitionId, payload: &[u8]) {
    let app = &cluster.nodes[node].app;
    eventually(&format!("{payload:?} applied on {p}"), || {
        app.payloads(p).iter().any(|b| b == payload)
    })
    .await;
}

#[tokio::test]
async fn commit_and_rollback_answer_again_within_resolved_tickets_max() {
    let cluster = TestCluster::start_with(1, 1, None, |c| c.resolved_tickets_max = 2).await;
    let p = PartitionId(1);
    let leader = cluster.raft(cluster.leader(p).await);

    let a = propose_held(leader, p, "a").await;
    let committed = leader.commit_logs(p, a.ticket).await.expect("committed");
    wait_applied(&cluster, 0, p, b"a").await;
    // Delivered, asked again (its answer lost): the same answer, as Kommander.
    assert_eq!(leader.commit_logs(p, a.ticket).await, Ok(committed));

    let b = propose_held(leader, p, "b").await;
    let rolled_back = leader
        .rollback_logs(p, b.ticket)
        .await
        .expect("rolled back");
    let c = propose_held(leader, p, "c").await;
    leader.commit_logs(p, c.ticket).await.expect("committed");
    wait_applied(&cluster, 0, p, b"c").await;
    // The two newest delivered resolutions (b, c) are remembered.
    assert_eq!(leader.rollback_logs(p, b.ticket).await, Ok(rolled_back));
    // Beyond the bound, the oldest (a) is forgotten: ProposalNotFound, definite, not retryable.
    let forgotten = leader.commit_logs(p, a.ticket).await;
    assert_eq!(
        forgotten,
        Err(ReplicateError::ProposalNotFound { ticket: a.ticket })
    );
    let forgotten = forgotten.expect_err("forgotten");
    assert_eq!(forgotten.status(), Status::ProposalNotFound);
    assert!(!forgotten.is_retryable());
    assert_eq!(cluster.nodes[0].app.payloads(p), ["a", "c"]);
}

#[tokio::test]
async fn writes_without_a_timeout_end_at_proposal_timeout_ms() {
    let cluster = TestCluster::start_with(3, 1, Some(FaultRates::default()), |c| {
        // The isolated leader keeps leading: nothing answers its writes but the timeout.
        c.check_quorum = false;
        c.proposal_timeout_ms = 100;
    })
    .await;
    let p = PartitionId(1);
    let leader = cluster.raft(cluster.leader(p).await).clone();
    let held = propose_held(&leader, p, "held").await;
    let faults = cluster.faults.clone().expect("faults");
    let all: Vec<NodeId> = (1..=3).map(NodeId).collect();
    faults.isolate(leader.local_node_id(), &all);

    let timed_out = |result: Result<kommander_raft::Written, ReplicateError>| match result {
        Err(error @ ReplicateError::Timeout { .. }) => {
            assert_eq!(error.status(), Status::ProposalTimeout);
            assert!(error.is_retryable());
        }
        other => panic!("expected a timeout, got {other:?}"),
    };
    timed_out(answered("commit_logs", leader.commit_logs(p, held.ticket)).await);
    // The ticket is resolved (its marker is in the log): the checkpoint is accepted, and
    // cannot commit either.
    timed_out(answered("replicate_checkpoint", leader.replicate_checkpoint(p)).await);
    let default = ReplicateOptions::default();
    timed_out(
        answered(
            "replicate_logs",
            leader.replicate_logs(p, "t", "x", default),
        )
        .await,
    );
    let batch = vec![Bytes::from_static(b"y"), Bytes::from_static(b"z")];
    timed_out(
        answered(
            "replicate_batch",
            leader.replicate_batch(p, "t", batch, default),
        )
        .await,
    );
    assert_eq!(role(&leader, p).await, Role::Leader);
}

#[tokio::test]
async fn a_checkpoint_is_retried_while_a_two_phase_proposal_is_open() {
    let cluster = TestCluster::start_with(3, 1, None, |c| {
        c.checkpoint_retries_max = 3;
        c.checkpoint_retry_backoff_ms = 1;
        c.checkpoint_retry_backoff_ms_max = 2;
    })
    .await;
    let p = PartitionId(1);
    let leader = cluster.raft(cluster.leader(p).await);
    cluster.replicate(p, b"before").await;
    let held = propose_held(leader, p, "held").await;
    // Still open after `checkpoint_retries_max` retries: the refusal stands, retryable.
    let refused = answered("checkpoint", leader.replicate_checkpoint(p)).await;
    assert_eq!(refused, Err(ReplicateError::ActiveProposal));
    assert!(refused.is_err_and(|e| e.is_retryable() && e.status() == Status::ActiveProposal));
    // The first attempt reaches the shard when the call is made, before the commit: it is
    // refused, and a retry finds the proposal resolved.
    let checkpoint = leader.replicate_checkpoint(p);
    let committed = leader.commit_logs(p, held.ticket).await.expect("committed");
    let checkpoint = answered("checkpoint", checkpoint)
        .await
        .expect("retried once the proposal was resolved");
    assert!(checkpoint.log_index > committed.log_index);
    cluster.replicate(p, b"after").await;
    cluster.wait_delivered(p, 3).await;
    let status = leader.partition_status(p).await.expect("status");
    assert!(status.commit >= checkpoint.log_index);
}

#[tokio::test]
async fn leader_waits_are_not_ready_before_the_partition_opens_and_end_at_their_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let network = MemoryNetwork::new();
    let raft = start_alone(dir.path(), &network, |c| c.leader_wait_timeout_ms = 100).await;
    let p = PartitionId(1);
    // Not joined: no partition is open here (Kommander's RaftNodeNotReadyException).
    for partition in [SYSTEM_PARTITION, p] {
        let refused = raft.wait_for_leader(partition, None).await;
        assert_eq!(refused, Err(QueryError::NotReady { partition }));
        let refused = refused.expect_err("not ready");
        assert!(refused.is_retryable());
        assert_eq!(refused.status(), Status::RestoreInProgress);
        assert_eq!(
            raft.wait_for_leader_stable(partition, Duration::ZERO, None)
                .await,
            Err(QueryError::NotReady { partition })
        );
        // Kommander's AmILeader answers false before initialization.
        assert_eq!(raft.am_i_leader(partition, None).await, Ok(false));
    }
    // Joining opens the system partition; with no quorum the map never comes.
    let joining = tokio::spawn(raft.join_cluster(None));
    eventually("joined", || raft.joined()).await;
    assert_eq!(
        raft.wait_for_leader(p, None).await,
        Err(QueryError::NotReady { partition: p })
    );
    // Open, no leader: the waits end at `leader_wait_timeout_ms`.
    let waited = answered(
        "wait_for_leader",
        raft.wait_for_leader(SYSTEM_PARTITION, None),
    )
    .await;
    assert!(
        matches!(waited, Err(QueryError::Timeout { .. })),
        "{waited:?}"
    );
    let asked = answered("am_i_leader", raft.am_i_leader(SYSTEM_PARTITION, None)).await;
    assert!(
        matches!(asked, Err(QueryError::Timeout { .. })),
        "{asked:?}"
    );
    assert!(!joining.is_finished());
    raft.shutdown().await;
}

#[tokio::test]
async fn am_i_leader_and_wait_for_leader_wait_through_a_restore() {
    let (cluster, entered, release) = restarted_with_a_held_restore().await;
    let p = PartitionId(1);
    let raft = cluster.raft(0).clone();
    // A restarted node applies its stored map at start: the partition is open and restoring.
    wait_entered(&entered).await;
    eventually("initialized", || raft.is_initialized()).await;
    // (The shard is held inside the restore: a request to it would wait for the release.)
    let am_i = tokio::spawn(raft.am_i_leader(p, Some(PATIENCE)));
    let leader = tokio::spawn(raft.wait_for_leader(p, Some(PATIENCE)));
    let joining = tokio::spawn(raft.join_cluster(None));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!am_i.is_finished() && !leader.is_finished());
    release.send(()).expect("release");
    // Kommander polls through the restore: so do these, and answer once it is done.
    assert_eq!(am_i.await.expect("task"), Ok(true));
    let leader = leader.await.expect("task").expect("a leader");
    assert_eq!(leader.node_id, raft.local_node_id());
    joining.await.expect("task").expect("joined");
    assert_eq!(cluster.nodes[0].app.restored(p).len(), 5);
}

#[tokio::test]
async fn step_down_waits_for_a_successor_and_says_what_it_saw() {
    let mut cluster = TestCluster::start_with(3, 1, None, |c| {
        c.leader_wait_timeout_ms = 100;
        // A leader left alone keeps leading until it steps down.
        c.check_quorum = false;
    })
    .await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let old = cluster.raft(leader).clone();
    let stepped = old
        .testing()
        .step_down(p, Some(PATIENCE))
        .await
        .expect("stepped down");
    let SteppedDown::Succeeded { leader: successor } = &stepped else {
        panic!("no successor seen: {stepped:?}");
    };
    assert_ne!(successor.node_id, old.local_node_id());
    assert_eq!(
        successor.endpoint,
        format!("memory:{}", successor.node_id.0)
    );
    assert_eq!(stepped.status(), Status::Success);
    // It returned once the successor was known here: no waiting on the caller's side.
    assert_eq!(
        old.leadership(p).and_then(|l| l.leader),
        Some(successor.node_id)
    );

    // Alone, a leader that steps down sees no successor: Kommander's `Pending`, at the
    // default `leader_wait_timeout_ms`.
    let leader = cluster.leader(p).await;
    for i in (0..3).filter(|&i| i != leader) {
        cluster.stop_node(i).await;
    }
    let alone = cluster.raft(leader).clone();
    let stepped = answered("step_down", alone.testing().step_down(p, None))
        .await
        .expect("stepped down");
    assert_eq!(stepped, SteppedDown::NoSuccessorYet);
    assert_eq!(stepped.status(), Status::Pending);
    assert!(!alone.am_i_leader_quick(p));
}

#[tokio::test]
async fn follower_lag_is_the_followers_matched_durable_index() {
    let cluster = TestCluster::start_with(3, 1, Some(FaultRates::default()), |_| {}).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let raft = cluster.raft(leader).clone();
    let lagging = (leader + 1) % 3;
    let endpoint = cluster.raft(lagging).local_endpoint().to_owned();
    let before = cluster.replicate(p, b"before").await;
    // Caught up: the follower holds everything the leader has.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let lag = raft.follower_lag(p, &endpoint).await.expect("lag");
        if lag.is_some_and(|l| l.match_index == before.log_index && l.entries_behind() == 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{lag:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Cut from the leader, the follower's matched index stays where its log ends while the
    // leader's grows: Kommander's commit frontier would stay there too.
    let faults = cluster.faults.clone().expect("faults");
    faults.cut(raft.local_node_id(), cluster.raft(lagging).local_node_id());
    let mut last = before;
    let options = ReplicateOptions {
        timeout: Some(PATIENCE),
        ..ReplicateOptions::default()
    };
    for k in 0..3u8 {
        // The other follower makes the quorum (and, hearing from the leader, refuses the cut
        // one's pre-votes: no election).
        last = raft
            .replicate_logs(p, "t", Bytes::from(vec![b'k', k]), options)
            .await
            .expect("written by a quorum without the cut follower");
    }
    assert!(raft.am_i_leader_quick(p));
    let lag = raft
        .follower_lag(p, &endpoint)
        .await
        .expect("lag")
        .expect("known on the leader");
    assert_eq!(lag.match_index, before.log_index);
    assert_eq!(lag.leader_last_index, last.log_index);
    assert_eq!(lag.entries_behind(), 3);
    faults.heal();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let lag = raft.follower_lag(p, &endpoint).await.expect("lag");
        if lag.is_some_and(|l| l.match_index == last.log_index) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{lag:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
