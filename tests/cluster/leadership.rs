//! Leadership queries, waits and hints, and the test hooks: transfer, step-down,
//! suspend/resume, force leader, never two leaders in one term.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kommander_raft::core::{Message, MessageBody};
use kommander_raft::transport::Transport;
use kommander_raft::{
    NodeId, PartitionId, QueryError, RaftEvent, ReplicateError, ReplicateOptions, Role, Status,
    SteppedDown,
};

use super::harness::{PATIENCE, TestCluster, UNLIMITED, role};

#[tokio::test]
async fn leadership_queries_agree() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let id = cluster.raft(leader).local_node_id();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let raft = node.raft.as_ref().expect("running");
        assert_eq!(raft.am_i_leader_quick(p), i == leader);
        assert_eq!(raft.am_i_leader(p, Some(PATIENCE)).await, Ok(i == leader));
        let known = raft
            .wait_for_leader(p, Some(PATIENCE))
            .await
            .expect("leader");
        assert_eq!(known.node_id, id);
        assert_eq!(known.endpoint, format!("memory:{}", id.0));
        let stable = raft
            .wait_for_leader_stable(p, Duration::from_millis(50), Some(PATIENCE))
            .await
            .expect("stable leader");
        assert_eq!(stable.node_id, id);
        let leadership = raft.leadership(p).expect("reported");
        assert_eq!(leadership.leader, Some(id));
        assert!(leadership.since.elapsed() >= Duration::from_millis(50));
    }
    // The LeaderChanged events carry the endpoint.
    let events = cluster.nodes[0].events.lock().expect("events").clone();
    assert!(events.iter().any(|e| matches!(e,
        RaftEvent::LeaderChanged { partition, leader: Some(l), endpoint: Some(endpoint), .. }
            if *partition == p && *l == id && *endpoint == format!("memory:{}", id.0))));
}

#[tokio::test]
async fn a_follower_names_the_real_leader_and_its_endpoint() {
    let cluster = TestCluster::start(3, 2).await;
    for p in cluster.user_partitions() {
        let leader = cluster.leader(p).await;
        let id = cluster.raft(leader).local_node_id();
        let hint = (Some(id), Some(format!("memory:{}", id.0)));
        for follower in (0..3).filter(|&i| i != leader) {
            let raft = cluster.raft(follower);
            let refused = raft
                .replicate_logs(p, "t", "to a follower", ReplicateOptions::default())
                .await
                .expect_err("a follower refuses writes");
            let ReplicateError::NotLeader { leader, endpoint } = refused.clone() else {
                panic!("{refused:?}");
            };
            assert_eq!((leader, endpoint), hint, "{p} on node {follower}");
            assert!(refused.is_retryable() && !refused.is_fatal());
            assert_eq!(refused.status(), Status::NodeIsNotLeader);
            // The hint is where the write succeeds.
            let named = cluster.raft(leader_index(&cluster, id));
            named
                .replicate_logs(p, "t", "to the named leader", ReplicateOptions::default())
                .await
                .expect("the named leader takes it");
            // Every leader-only call names it too.
            let ticket = raft.hlc().now();
            assert!(matches!(
                raft.commit_logs(p, ticket).await,
                Err(ReplicateError::NotLeader { leader: Some(l), .. }) if l == id
            ));
            assert!(matches!(
                raft.testing().step_down(p, Some(PATIENCE)).await,
                Err(QueryError::NotLeader { leader: Some(l), endpoint: Some(_) }) if l == id
            ));
        }
    }
}

fn leader_index(cluster: &TestCluster, id: NodeId) -> usize {
    cluster
        .nodes
        .iter()
        .position(|n| NodeId(n.config.node_id) == id)
        .expect("a node of the cluster")
}

/// Drops the append acknowledgements of one partition while `hold` is set: a new leader's
/// no-op cannot commit, everything else (votes, heartbeats and their answers) flows.
struct HoldAppendAcks {
    inner: Arc<dyn Transport>,
    partition: PartitionId,
    hold: Arc<AtomicBool>,
}

impl Transport for HoldAppendAcks {
    fn send(&self, to: NodeId, mut messages: Vec<Message>) {
        if self.hold.load(Ordering::Acquire) {
            messages.retain(|m| {
                m.partition != self.partition
                    || !matches!(m.body, MessageBody::AppendResponse { .. })
            });
        }
        if !messages.is_empty() {
            self.inner.send(to, messages);
        }
    }
}

#[tokio::test]
async fn a_new_leader_is_not_quick_until_its_noop_commits() {
    let p = PartitionId(1);
    let hold = Arc::new(AtomicBool::new(false));
    let held = Arc::clone(&hold);
    let cluster = TestCluster::start_wrapped(
        3,
        1,
        Arc::new(move |_, inner| {
            Arc::new(HoldAppendAcks {
                inner,
                partition: p,
                hold: Arc::clone(&held),
            }) as Arc<dyn Transport>
        }),
    )
    .await;
    let leader = cluster.leader(p).await;
    cluster.replicate(p, b"caught up").await;
    cluster.wait_delivered(p, 1).await;
    let follower = (leader + 1) % 3;
    let raft = cluster.raft(follower).clone();
    hold.store(true, Ordering::Release);
    // Elected with the votes of the others; its no-op's acknowledgements are dropped.
    let forced = tokio::spawn(raft.testing().force_leader(p, None));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while raft.leadership(p).is_none_or(|l| l.role != Role::Leader) {
        assert!(tokio::time::Instant::now() < deadline, "not elected");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elected = raft.leadership(p).expect("reported");
    assert!(!elected.noop_committed);
    assert!(!raft.am_i_leader_quick(p));
    // `am_i_leader` waits for the no-op too.
    assert!(matches!(
        raft.am_i_leader(p, Some(Duration::from_millis(50))).await,
        Err(QueryError::Timeout { .. })
    ));
    assert!(!raft.am_i_leader_quick(p) && !forced.is_finished());
    // The acknowledgements flow again: the no-op commits, the leadership is published.
    hold.store(false, Ordering::Release);
    assert_eq!(raft.am_i_leader(p, Some(PATIENCE)).await, Ok(true));
    assert!(raft.am_i_leader_quick(p));
    forced.await.expect("task").expect("forced");
    let published = raft.leadership(p).expect("reported");
    assert!(published.noop_committed);
    // Same leader, same term: the stability clock did not restart.
    assert_eq!(
        (published.term, published.since),
        (elected.term, elected.since)
    );
    cluster.replicate(p, b"after").await;
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn a_full_timer_table_refuses_timed_calls_and_waits_wake_on_the_change() {
    let cluster = TestCluster::start_with(3, 1, None, |c| c.timers_max = 2).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let old = cluster.raft(leader).clone();
    let successor = cluster.raft((leader + 1) % 3).clone();
    // Two waits for a stability they will not see take both timer slots of the old leader.
    let hour = Duration::from_secs(3600);
    let never: Vec<_> = (0..2)
        .map(|_| tokio::spawn(old.wait_for_leader_stable(p, hour, Some(hour))))
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A call that needs a deadline is refused at once, retryably.
    let refused = old
        .wait_for_leader_stable(p, hour, Some(PATIENCE))
        .await
        .expect_err("no timer slot");
    assert_eq!(refused, QueryError::QueueFull);
    assert!(refused.is_retryable());
    let timed = ReplicateOptions {
        timeout: Some(PATIENCE),
        ..ReplicateOptions::default()
    };
    assert_eq!(
        old.replicate_logs(p, "t", "x", timed).await,
        Err(ReplicateError::QueueFull)
    );
    // A wait whose answer is known needs no deadline.
    let known = old.wait_for_leader(p, Some(PATIENCE)).await.expect("known");
    assert_eq!(known.node_id, old.local_node_id());
    // Unlimited waits for a change: with no timer slot left, only the leadership table can
    // wake them.
    old.testing()
        .transfer_leadership(p, successor.local_node_id(), UNLIMITED)
        .await
        .expect("the transfer is seen");
    assert_eq!(old.am_i_leader(p, UNLIMITED).await, Ok(false));
    let now = old.wait_for_leader(p, UNLIMITED).await.expect("a leader");
    assert_eq!(now.node_id, successor.local_node_id());
    for wait in never {
        wait.abort();
    }
    cluster.assert_one_leader_per_term();
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
    let own = cluster.raft(leader).local_node_id();
    assert_eq!(
        hooks.transfer_leadership(p, own, Some(PATIENCE)).await,
        Err(QueryError::AlreadyLeader { node: own })
    );
    assert_eq!(
        hooks
            .transfer_leadership(p, NodeId(9), Some(PATIENCE))
            .await,
        Err(QueryError::NotAVoter { node: NodeId(9) })
    );
    hooks
        .transfer_leadership(p, target_id, Some(PATIENCE))
        .await
        .expect("transfer");
    assert_eq!(cluster.leader(p).await, target);
    cluster.replicate(p, b"after transfer").await;
    written += 1;

    // Step down: another node takes over, and the call says which.
    let leader = cluster.leader(p).await;
    let stepped = cluster
        .raft(leader)
        .testing()
        .step_down(p, Some(PATIENCE))
        .await
        .expect("step down");
    let SteppedDown::Succeeded { leader: successor } = stepped else {
        panic!("no successor seen: {stepped:?}");
    };
    assert_ne!(successor.node_id, cluster.raft(leader).local_node_id());
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
            .force_leader(p, Some(PATIENCE))
            .await
            .expect("forced");
        assert!(cluster.raft(follower).am_i_leader_quick(p));
        assert_eq!(cluster.leader(p).await, follower);
        // Already leading: nothing to do.
        cluster
            .raft(follower)
            .testing()
            .force_leader(p, Some(PATIENCE))
            .await
            .expect("still leading");
        cluster.replicate(p, b"after").await;
        cluster.wait_delivered(p, 2).await;
    }
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn hooks_on_a_follower_answer_not_leader() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let leader = cluster.leader(p).await;
    let follower = cluster.raft((leader + 1) % 3).testing();
    let not_leader = |refused: Result<(), QueryError>| {
        matches!(
            refused,
            Err(QueryError::NotLeader {
                leader: Some(_),
                ..
            })
        )
    };
    assert!(matches!(
        follower.step_down(p, Some(PATIENCE)).await,
        Err(QueryError::NotLeader {
            leader: Some(_),
            ..
        })
    ));
    assert!(not_leader(follower.suspend_heartbeats(p).await));
    assert!(not_leader(
        follower
            .transfer_leadership(p, NodeId(1), Some(PATIENCE))
            .await
    ));
}

/// A watcher that comes after the writes, on a partition nobody watched (its shard published
/// none of its progress meanwhile), still sees how far every replica has come: the shards
/// count the partition's subscribers again at their next tick. Quiescence (which publishes a
/// partition's progress too) is off, so that only the count can show it.
#[tokio::test]
async fn a_late_watcher_of_an_unwatched_partition_sees_its_progress() {
    let cluster =
        TestCluster::start_with(3, 1, None, |config| config.quiesce_after_ticks = 0).await;
    let p = PartitionId(1);
    let mut last = None;
    for i in 0..5 {
        last = Some(cluster.replicate(p, format!("entry {i}").as_bytes()).await);
    }
    let written = last.expect("written").log_index;
    for i in 0..3 {
        let mut watch = cluster
            .raft(i)
            .watch_partition(p)
            .expect("a partition of the map");
        tokio::time::timeout(
            PATIENCE,
            watch.wait_for(|s| s.progress.applied_index >= written),
        )
        .await
        .unwrap_or_else(|_| panic!("node {i}'s watcher never saw {written} applied"))
        .expect("the node runs");
    }
}

#[tokio::test]
async fn watch_partition_follows_leadership_and_log_progress_on_every_node() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let mut watches: Vec<_> = (0..3)
        .map(|i| {
            cluster
                .raft(i)
                .watch_partition(p)
                .expect("a partition of the map")
        })
        .collect();
    let mut last = None;
    for i in 0..5 {
        last = Some(cluster.replicate(p, format!("entry {i}").as_bytes()).await);
    }
    let written = last.expect("written").log_index;
    let leader = cluster.leader(p).await;
    let id = cluster.raft(leader).local_node_id();
    for (i, watch) in watches.iter_mut().enumerate() {
        // Woken by the changes themselves: every node's replica applies the writes.
        let state = *tokio::time::timeout(
            PATIENCE,
            watch.wait_for(|s| s.progress.applied_index >= written),
        )
        .await
        .unwrap_or_else(|_| panic!("node {i} did not apply {written}"))
        .expect("the node runs");
        assert!(
            state.progress.commit_index >= state.progress.applied_index,
            "{state:?}"
        );
        assert!(
            state.progress.last_index >= state.progress.commit_index,
            "{state:?}"
        );
        let leadership = state.leadership.expect("reported");
        assert_eq!(leadership.leader, Some(id), "node {i}");
        let expected = if i == leader {
            Role::Leader
        } else {
            Role::Follower
        };
        assert_eq!(leadership.role, expected, "node {i}");
        assert_eq!(Some(leadership), cluster.raft(i).leadership(p));
    }
    // A partition outside the map has no state to watch.
    assert!(matches!(
        cluster.raft(0).watch_partition(PartitionId(99)),
        Err(QueryError::PartitionMoved {
            partition: PartitionId(99)
        })
    ));
}
