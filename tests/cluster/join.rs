//! Membership through the handle's lifecycle calls, on the in-memory network with the nodes'
//! endpoints registered: a cluster grows from one node through seeds under writes (a joiner
//! behind the leaders' compaction floor catches up by snapshot) and the joiners vote; a join
//! through a seed that does not lead follows the leader hint; a voter leaves; a member removes
//! a stopped node; the last voter cannot leave; a join whose seeds cannot be reached times
//! out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kommander_raft::core::Message;
use kommander_raft::{
    CallReply, JoinError, MemberRole, MembershipCall, MembershipError, NodeConfig, NodeId,
    PartitionId, PeerSetError, Raft, RaftEvent, ReplicateError, ReplicateOptions, Role, Status,
    Transport,
};

use super::harness::{PATIENCE, TestCluster, WrapTransport, eventually};

const SYSTEM: PartitionId = PartitionId(0);

/// Fast membership settings for a test node: a short promotion window and retry interval.
fn fast(config: &mut NodeConfig) {
    config.membership.promotion_window_ms = 50;
    config.membership.call_retry_interval_ms = 20;
}

/// Starts node `i` of `cluster` (added with [`TestCluster::add_node`]) and joins it through
/// `seeds`.
async fn start_and_join(
    cluster: &mut TestCluster,
    i: usize,
    seeds: &[String],
) -> Result<(), JoinError> {
    cluster.start_node(i).await;
    cluster
        .raft(i)
        .join_cluster_with_seeds(seeds.to_vec(), None)
        .await
}

/// Waits until `raft`'s replica of every partition of `partitions` has committed a
/// configuration whose voters are `voters` (and no learner).
async fn wait_configuration(raft: &Raft, partitions: &[PartitionId], voters: &[u64]) {
    let voters: Vec<NodeId> = voters.iter().copied().map(NodeId).collect();
    for &p in partitions {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let known = raft.partition_configuration(p).await.expect("hosted");
            if known.committed.voters() == voters.as_slice()
                && known.committed.learners().is_empty()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{p} on node {}: {known:?}, expected voters {voters:?}",
                raft.local_node_id()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Writes `w-0`, `w-1`, ... to `p` on `raft` until stopped, keeping the acknowledged ones.
struct Writer {
    acked: Arc<Mutex<Vec<Bytes>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(raft: Raft, p: PartitionId) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopped) = (Arc::clone(&acked), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let mut k = 0u64;
            while !stopped.load(Ordering::Acquire) {
                let payload = Bytes::from(format!("w-{k}"));
                k += 1;
                let options = ReplicateOptions {
                    timeout: Some(PATIENCE),
                    ..ReplicateOptions::default()
                };
                match raft.replicate_logs(p, "w", payload.clone(), options).await {
                    Ok(_) => kept.lock().expect("acked").push(payload),
                    Err(error) if error.is_retryable() => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(error) => panic!("write on {p}: {error:?}"),
                }
            }
        });
        Self { acked, stop, task }
    }

    fn count(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    async fn stop(self) -> Vec<Bytes> {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("writer");
        Arc::try_unwrap(self.acked)
            .expect("the writer ended")
            .into_inner()
            .expect("acked")
    }
}

/// The non-empty payloads node `i`'s application holds for `p` (checkpoints are empty).
fn writes_of(cluster: &TestCluster, i: usize, p: PartitionId) -> Vec<Bytes> {
    let held = cluster.nodes[i].app.payloads(p);
    held.into_iter().filter(|b| !b.is_empty()).collect()
}

#[tokio::test]
async fn a_cluster_grows_from_one_node_through_seeds_under_writes_and_the_joiners_vote() {
    // Leaders keep few entries below a checkpoint: the third node must catch up by snapshot.
    let tweak = |c: &mut NodeConfig| {
        fast(c);
        c.compaction_retain_entries_max = 4;
    };
    let mut cluster = TestCluster::start_single(2, tweak).await;
    let p = PartitionId(1);
    let partitions = [SYSTEM, p, PartitionId(2)];
    let seed = vec![cluster.nodes[0].config.endpoint.clone()];
    let writer = Writer::start(cluster.raft(0).clone(), p);
    eventually("writes before the growth", || writer.count() >= 20).await;

    // Node 2 joins by the log.
    let second = cluster.add_node(2, tweak);
    let before = writer.count();
    start_and_join(&mut cluster, second, &seed)
        .await
        .expect("node 2 joined");
    assert_eq!(cluster.raft(second).local_role(), Some(MemberRole::Voter));
    wait_configuration(cluster.raft(0), &partitions, &[1, 2]).await;
    // Node 2 has no static peers: its roster names the leader's endpoint.
    let refused = cluster
        .raft(second)
        .replicate_logs(p, "w", "on a follower", ReplicateOptions::default())
        .await;
    assert_eq!(
        refused,
        Err(ReplicateError::NotLeader {
            leader: Some(NodeId(1)),
            endpoint: Some("memory:1".to_owned()),
        })
    );
    eventually("writes acknowledged while node 2 joined", || {
        writer.count() > before
    })
    .await;

    // Both partitions' logs (and partition 0's) are compacted below what node 3 will need.
    for partition in [p, SYSTEM] {
        cluster
            .raft(0)
            .replicate_checkpoint(partition)
            .await
            .expect("checkpoint");
    }
    let after_checkpoint = writer.count();
    eventually("writes after the checkpoints", || {
        writer.count() >= after_checkpoint + 10
    })
    .await;
    let third = cluster.add_node(3, tweak);
    let before = writer.count();
    start_and_join(&mut cluster, third, &seed)
        .await
        .expect("node 3 joined");
    wait_configuration(cluster.raft(0), &partitions, &[1, 2, 3]).await;
    eventually("writes acknowledged while node 3 joined", || {
        writer.count() > before
    })
    .await;
    let acked = writer.stop().await;

    // Every node votes in the roster and every partition; node 3 installed snapshots.
    for i in 0..3 {
        let raft = cluster.raft(i);
        eventually("every member a voter in every node's roster", || {
            raft.membership().is_some_and(|r| {
                r.voters().collect::<Vec<_>>() == [NodeId(1), NodeId(2), NodeId(3)]
            })
        })
        .await;
        wait_configuration(raft, &partitions, &[1, 2, 3]).await;
    }
    let events = cluster.nodes[third].events.lock().expect("events").clone();
    assert!(
        events.iter().any(|e| matches!(
            e,
            RaftEvent::SnapshotInstalled { partition, .. } if *partition == p
        )),
        "node 3 did not catch up {p} by snapshot: {events:?}"
    );
    for i in 0..3 {
        eventually("every acknowledged write applied, in order, once", || {
            writes_of(&cluster, i, p) == acked
        })
        .await;
    }

    // The joiners vote: without node 1, nodes 2 and 3 elect leaders and commit.
    cluster.stop_node(0).await;
    for partition in [p, PartitionId(2)] {
        cluster.replicate(partition, b"without node 1").await;
    }
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn a_join_through_a_seed_that_does_not_lead_follows_the_leader_hint() {
    let mut cluster = TestCluster::start_with(3, 1, None, fast).await;
    let leader = cluster.leader(SYSTEM).await;
    let follower = (leader + 1) % 3;
    // The roster records the endpoints (the leader's hint names one) once restated.
    let raft = cluster.raft(follower).clone();
    eventually("the restated roster", || {
        raft.membership().is_some_and(|r| r.version() >= 1)
    })
    .await;
    let seed = vec![cluster.nodes[follower].config.endpoint.clone()];
    let joiner = cluster.add_node(4, fast);
    start_and_join(&mut cluster, joiner, &seed)
        .await
        .expect("joined through a follower");
    let roster = cluster.raft(joiner).membership().expect("a roster");
    let member = roster.member(NodeId(4)).expect("a member");
    assert_eq!(member.role, MemberRole::Voter);
    assert_eq!(member.endpoint, "memory:4");
    assert_ne!(member.incarnation, 0, "the node's incarnation");
    // Joining again is idempotent.
    cluster
        .raft(joiner)
        .join_cluster_with_seeds(seed, Some(PATIENCE))
        .await
        .expect("joined again");
    assert_eq!(
        cluster.raft(joiner).membership().map(|r| r.version()),
        Some(roster.version())
    );
}

/// What node 1's transport holds back from node 2.
const HOLD_NOTHING: u8 = 0;
const HOLD_EVERYTHING: u8 = 1;
const HOLD_USER_PARTITIONS: u8 = 2;

/// Node 1's transport, holding back messages to node 2 as `hold` says (calls and the other
/// nodes' messages pass).
struct Holding {
    inner: Arc<dyn Transport>,
    hold: Arc<AtomicU8>,
}

impl Transport for Holding {
    fn send(&self, to: NodeId, mut messages: Vec<Message>) {
        if to == NodeId(2) {
            match self.hold.load(Ordering::Acquire) {
                HOLD_EVERYTHING => return,
                HOLD_USER_PARTITIONS => messages.retain(|m| m.partition == SYSTEM),
                _ => {}
            }
        }
        self.inner.send(to, messages);
    }

    fn set_peers(&self, peers: &BTreeMap<NodeId, String>) -> Result<(), PeerSetError> {
        self.inner.set_peers(peers)
    }

    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
        self.inner.call(endpoint, call, reply);
    }
}

/// Whether node `i` ever led a partition, or leads one of `partitions` now.
async fn ever_led(cluster: &TestCluster, i: usize, partitions: &[PartitionId]) -> bool {
    let id = cluster.raft(i).local_node_id();
    let events = cluster.nodes[i].events.lock().expect("events").clone();
    let elected = events
        .iter()
        .any(|e| matches!(e, RaftEvent::LeaderChanged { leader: Some(l), .. } if *l == id));
    let mut leads = false;
    for &p in partitions {
        let status = cluster.raft(i).partition_status(p).await.expect("hosted");
        leads |= status.role == Role::Leader;
    }
    elected || leads
}

#[tokio::test]
async fn a_joiner_cut_off_from_its_leaders_never_elects_itself() {
    // Node 2 has no peers: had it opened a partition from its own configuration, it would be
    // its only voter and elect itself once its election timeout passed without word from
    // node 1. It is cut off after its admission, then from the user partitions' leader only
    // (once it has the partition map); each time its join times out, with nothing elected.
    let hold = Arc::new(AtomicU8::new(HOLD_NOTHING));
    let held = Arc::clone(&hold);
    let wrap: WrapTransport = Arc::new(move |node, inner| {
        if node == NodeId(1) {
            Arc::new(Holding {
                inner,
                hold: Arc::clone(&held),
            })
        } else {
            inner
        }
    });
    let mut cluster = TestCluster::start_single_wrapped(2, Some(wrap), fast).await;
    let seed = vec![cluster.nodes[0].config.endpoint.clone()];
    let joiner = cluster.add_node(2, fast);
    cluster.start_node(joiner).await;
    let raft = cluster.raft(joiner).clone();
    let short = Some(Duration::from_millis(500));

    hold.store(HOLD_EVERYTHING, Ordering::Release);
    let cut_off = raft.join_cluster_with_seeds(seed.clone(), short).await;
    assert!(
        matches!(cut_off, Err(JoinError::Timeout { .. })),
        "{cut_off:?}"
    );
    assert!(raft.joined(), "admitted: partition 0 is open");
    assert!(!ever_led(&cluster, joiner, &[SYSTEM]).await, "partition 0");

    hold.store(HOLD_USER_PARTITIONS, Ordering::Release);
    eventually("the joiner has the partition map", || raft.is_initialized()).await;
    let cut_off = raft.join_cluster_with_seeds(seed.clone(), short).await;
    assert!(
        matches!(cut_off, Err(JoinError::Timeout { .. })),
        "{cut_off:?}"
    );
    let all = [SYSTEM, PartitionId(1), PartitionId(2)];
    assert!(!ever_led(&cluster, joiner, &all).await, "a user partition");
    assert_eq!(raft.local_role(), Some(MemberRole::Learner));

    // Reachable again, a later call completes the join.
    hold.store(HOLD_NOTHING, Ordering::Release);
    raft.join_cluster_with_seeds(seed, None)
        .await
        .expect("joined");
    assert_eq!(raft.local_role(), Some(MemberRole::Voter));
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn a_joined_node_restarts_and_joins_again_while_its_seed_is_down() {
    let mut cluster = TestCluster::start_single(1, fast).await;
    let seed = vec![cluster.nodes[0].config.endpoint.clone()];
    let joiner = cluster.add_node(2, fast);
    start_and_join(&mut cluster, joiner, &seed)
        .await
        .expect("joined");
    let p = PartitionId(1);
    let written = cluster.replicate(p, b"before the restart").await;
    cluster.stop_all().await;
    // Node 2 comes back first: its seed is down, and its data directory says it is a member
    // (same incarnation), so it joins without asking anyone.
    cluster.start_node(joiner).await;
    cluster
        .raft(joiner)
        .join_cluster_with_seeds(seed, Some(PATIENCE))
        .await
        .expect("joined again from its own roster");
    assert_eq!(cluster.raft(joiner).local_role(), Some(MemberRole::Voter));
    cluster.start_node(0).await;
    cluster.join_all().await;
    let after = cluster.replicate(p, b"after the restart").await;
    assert!(after.log_index > written.log_index);
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn a_voter_leaves_and_the_others_keep_committing() {
    let mut cluster = TestCluster::start_with(3, 2, None, fast).await;
    let p = PartitionId(1);
    // The node that leads p leaves: it hands p over first.
    let leaving = cluster.leader(p).await;
    let gone = cluster.raft(leaving).local_node_id();
    cluster
        .raft(leaving)
        .leave_cluster(Some(PATIENCE))
        .await
        .expect("left");
    // It stopped once partition 0's leader had removed it from the roster: committed, so
    // every leader of partition 0 since knows it.
    assert!(!cluster.raft(leaving).joined(), "the node shut down");
    cluster.stop_node(leaving).await;
    let stayed: Vec<usize> = (0..3).filter(|&i| i != leaving).collect();
    let p0_leader = cluster.leader(SYSTEM).await;
    let roster = cluster.raft(p0_leader).membership().expect("a roster");
    assert!(roster.member(gone).is_none(), "{roster:?}");
    let voters: Vec<u64> = stayed
        .iter()
        .map(|&i| cluster.nodes[i].config.node_id)
        .collect();
    for &i in &stayed {
        wait_configuration(cluster.raft(i), &[SYSTEM, p, PartitionId(2)], &voters).await;
    }
    for partition in [p, PartitionId(2)] {
        cluster.replicate(partition, b"after the leave").await;
    }
    cluster.assert_one_leader_per_term();
}

#[tokio::test]
async fn a_follower_removes_a_stopped_node() {
    let mut cluster = TestCluster::start_with(3, 1, None, fast).await;
    let leader = cluster.leader(SYSTEM).await;
    let (remover, dead) = ((leader + 1) % 3, (leader + 2) % 3);
    let dead_id = cluster.raft(dead).local_node_id();
    let raft = cluster.raft(remover).clone();
    eventually("the restated roster", || {
        raft.membership().is_some_and(|r| r.version() >= 1)
    })
    .await;
    cluster.stop_node(dead).await;
    let version = cluster
        .raft(remover)
        .remove_member(dead_id, Some(PATIENCE))
        .await
        .expect("removed through the leader");
    assert!(version >= 2, "a change committed: {version}");
    // The dead voter was leaving: partition 0's leader removes it once every partition let
    // it go.
    let voters: Vec<u64> = [leader, remover]
        .iter()
        .map(|&i| cluster.nodes[i].config.node_id)
        .collect();
    let mut sorted = voters.clone();
    sorted.sort_unstable();
    for i in [leader, remover] {
        let raft = cluster.raft(i);
        eventually("the dead node out of the roster", || {
            raft.membership()
                .is_some_and(|r| r.member(dead_id).is_none())
        })
        .await;
        wait_configuration(raft, &[SYSTEM, PartitionId(1)], &sorted).await;
    }
    cluster
        .replicate(PartitionId(1), b"after the removal")
        .await;
}

#[tokio::test]
async fn the_last_voter_cannot_leave() {
    let cluster = TestCluster::start_single(1, fast).await;
    let raft = cluster.raft(0).clone();
    let refused = raft
        .leave_cluster(Some(PATIENCE))
        .await
        .expect_err("the last voter stays");
    assert_eq!(refused, MembershipError::InsufficientVoters);
    assert_eq!(refused.status(), Status::InsufficientVoters);
    assert!(!refused.is_retryable());
    // It still serves.
    assert!(raft.joined());
    cluster.replicate(PartitionId(1), b"still here").await;
}

#[tokio::test]
async fn a_join_whose_seeds_cannot_be_reached_times_out() {
    let mut cluster = TestCluster::start_single(1, fast).await;
    let joiner = cluster.add_node(2, fast);
    cluster.start_node(joiner).await;
    let raft = cluster.raft(joiner).clone();
    let limit = Duration::from_millis(300);
    let failed = raft
        .join_cluster_with_seeds(
            vec!["memory:98".to_owned(), "memory:99".to_owned()],
            Some(limit),
        )
        .await
        .expect_err("nobody answers");
    match &failed {
        JoinError::Timeout { waited, .. } => assert!(*waited >= limit, "{failed:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(failed.status(), Status::ProposalTimeout);
    assert!(!raft.joined(), "nothing opened without an admission");
    // A seed list with nothing but the node itself cannot be asked at all.
    let own = raft.local_endpoint().to_owned();
    assert!(matches!(
        raft.join_cluster_with_seeds(vec![own], Some(limit)).await,
        Err(JoinError::Invalid { .. })
    ));
}
