//! Leadership queries and the test hooks: transfer, step-down, suspend/resume, force leader,
//! never two leaders in one term.

use std::time::Duration;

use kommander_raft::{NodeId, PartitionId, Role, Status};

use super::harness::{PATIENCE, TestCluster, role};

#[tokio::test]
async fn leadership_queries_agree() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let id = cluster.raft(leader).local_node_id();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let raft = node.raft.as_ref().expect("running");
        assert_eq!(raft.am_i_leader_quick(p), i == leader);
        assert_eq!(raft.am_i_leader(p).await, Ok(i == leader));
        let known = raft.wait_for_leader(p, PATIENCE).await.expect("leader");
        assert_eq!(known.node_id, id);
        assert_eq!(known.endpoint, format!("memory:{}", id.0));
        let stable = raft
            .wait_for_leader_stable(p, Duration::from_millis(50), PATIENCE)
            .await
            .expect("stable leader");
        assert_eq!(stable.node_id, id);
    }
    // The LeaderChanged events carry the endpoint.
    let events = cluster.nodes[0].events.lock().expect("events").clone();
    assert!(events.iter().any(|e| matches!(e,
        kommander_raft::RaftEvent::LeaderChanged { partition, leader: Some(l), leader_endpoint, .. }
            if *partition == p && *l == id && *leader_endpoint == format!("memory:{}", id.0))));
}

#[tokio::test]
async fn transfer_step_down_and_suspend_never_elect_two_leaders_in_a_term() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let mut written = 0;

    // Transfer to another voter.
    let leader = cluster.leader(p).await;
    let target = (leader + 1) % 3;
    let target_id = cluster.raft(target).local_node_id();
    let hooks = cluster.raft(leader).testing();
    assert_eq!(
        hooks
            .transfer_leadership(p, cluster.raft(leader).local_node_id(), PATIENCE)
            .await,
        Err(Status::LeaderAlreadyElected)
    );
    hooks
        .transfer_leadership(p, target_id, PATIENCE)
        .await
        .expect("transfer");
    assert_eq!(cluster.leader(p).await, target);
    cluster.replicate(p, b"after transfer").await;
    written += 1;

    // Step down: another node takes over.
    let leader = cluster.leader(p).await;
    cluster
        .raft(leader)
        .testing()
        .step_down(p)
        .await
        .expect("step down");
    assert_ne!(role(cluster.raft(leader), p).await, Role::Leader);
    cluster.replicate(p, b"after step down").await;
    written += 1;

    // Suspended heartbeats: followers time out and elect another leader.
    let leader = cluster.leader(p).await;
    let hooks = cluster.raft(leader).testing();
    hooks.suspend_heartbeats(p).await.expect("suspend");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let others = (0..3)
            .filter(|&i| i != leader)
            .any(|i| cluster.raft(i).am_i_leader_quick(p));
        if others {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Resuming on a deposed leader is refused; the old leader rejoins as a follower.
    let _ = hooks.resume_heartbeats(p).await;
    cluster.replicate(p, b"after suspend").await;
    written += 1;
    let new_leader = cluster.leader(p).await;
    assert_ne!(new_leader, leader);

    cluster.wait_delivered(p, written).await;
    let first = cluster.nodes[0].app.live(p);
    for node in &cluster.nodes {
        assert_eq!(node.app.live(p), first);
    }
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn force_leader_makes_a_follower_lead() {
    let cluster = TestCluster::start(3, 2).await;
    for p in [PartitionId(1), PartitionId(2)] {
        let leader = cluster.leader(p).await;
        let follower = (leader + 2) % 3;
        cluster.replicate(p, b"before").await;
        cluster
            .raft(follower)
            .testing()
            .force_leader(p, PATIENCE)
            .await
            .expect("forced");
        assert_eq!(cluster.leader(p).await, follower);
        // Already leading: nothing to do.
        cluster
            .raft(follower)
            .testing()
            .force_leader(p, PATIENCE)
            .await
            .expect("still leading");
        cluster.replicate(p, b"after").await;
        cluster.wait_delivered(p, 2).await;
    }
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn hooks_on_a_follower_answer_node_is_not_leader() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let follower = cluster.raft((leader + 1) % 3).testing();
    assert_eq!(follower.step_down(p).await, Err(Status::NodeIsNotLeader));
    assert_eq!(
        follower.suspend_heartbeats(p).await,
        Err(Status::NodeIsNotLeader)
    );
    assert_eq!(
        follower.transfer_leadership(p, NodeId(1), PATIENCE).await,
        Err(Status::NodeIsNotLeader)
    );
}
