//! Membership through the public handle: the roster (`membership`, `local_role`,
//! `update_nodes`), a change on partition 0's leader followed by every partition, the
//! membership event, and the refusals with their IRaft statuses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kommander_raft::core::Message;
use kommander_raft::{
    CallReply, MemberRole, MembershipCall, MembershipError, NodeId, PartitionId, PeerSetError,
    RaftEvent, RosterChange, Status, Transport,
};

use super::harness::{PATIENCE, TestCluster};

const SYSTEM: PartitionId = PartitionId(0);

/// `raft.change_membership`, asked again while it is refused `ConcurrentChange` (retryable:
/// the partitions still follow the last change or a map), for at most the harness's patience.
async fn change_when_free(
    raft: &kommander_raft::Raft,
    change: RosterChange,
    expected_version: Option<u64>,
) -> Result<u64, MembershipError> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let result = raft
            .change_membership(change.clone(), expected_version, Some(PATIENCE))
            .await;
        if result != Err(MembershipError::ConcurrentChange)
            || tokio::time::Instant::now() > deadline
        {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `f` every 5 ms until it returns `Some`, for at most the harness's patience.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_demotion_reaches_the_roster_every_partition_and_the_events() {
    let cluster = TestCluster::start(3, 2).await;
    for i in 0..3 {
        let raft = cluster.raft(i);
        let roster = eventually("the restated roster", || {
            raft.membership().filter(|r| r.version() == 1)
        })
        .await;
        assert_eq!(roster.voters().count(), 3);
        assert_eq!(raft.local_role(), Some(MemberRole::Voter));
        let mut others: Vec<(u64, String)> = raft
            .update_nodes()
            .into_iter()
            .map(|n| (n.node_id.0, n.endpoint))
            .collect();
        others.sort();
        let expected: Vec<(u64, String)> = (1..=3u64)
            .filter(|&n| n != raft.local_node_id().0)
            .map(|n| (n, format!("memory:{n}")))
            .collect();
        assert_eq!(others, expected);
    }
    let leader = cluster.leader(SYSTEM).await;
    let follower = (leader + 1) % 3;
    let demoted = cluster.raft(follower).local_node_id();
    let leader_id = cluster.raft(leader).local_node_id();
    let demote = RosterChange::Demote { node: demoted };

    // A follower names partition 0's leader.
    let refused = cluster
        .raft(follower)
        .change_membership(demote.clone(), None, Some(PATIENCE))
        .await;
    assert_eq!(
        refused,
        Err(MembershipError::NotLeader {
            leader: Some(leader_id),
            endpoint: Some(format!("memory:{}", leader_id.0)),
        })
    );
    // A stale version is refused before anything is sent.
    let stale = cluster
        .raft(leader)
        .change_membership(demote.clone(), Some(0), Some(PATIENCE))
        .await
        .expect_err("stale");
    assert_eq!(stale, MembershipError::Stale { current: 1 });
    assert_eq!(stale.status(), Status::StaleMembership);
    assert!(stale.is_retryable());

    let version = change_when_free(cluster.raft(leader), demote.clone(), Some(1))
        .await
        .expect("demoted");
    assert_eq!(version, 2);
    eventually("the demoted node sees its new role", || {
        (cluster.raft(follower).local_role() == Some(MemberRole::Learner)).then_some(())
    })
    .await;
    for p in [PartitionId(1), PartitionId(2)] {
        let leader = cluster.leader(p).await;
        let raft = cluster.raft(leader);
        // The partition's leader reconciles: the demoted node stops voting there too.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let known = raft.partition_configuration(p).await.expect("hosted");
            if known.committed.learners() == [demoted] && !known.committed.is_voter(demoted) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{p}: {known:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for i in 0..3 {
        let events = cluster.nodes[i].events.lock().expect("events").clone();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RaftEvent::MembershipChanged { version: 2 })),
            "node {} saw no MembershipChanged for version 2",
            i + 1
        );
    }
    // Retrying a committed change changes nothing.
    let again = cluster
        .raft(leader)
        .change_membership(demote, None, Some(PATIENCE))
        .await;
    assert_eq!(again, Ok(2));
    // A promotion of a node that is not a member is refused by name.
    let unknown = cluster
        .raft(leader)
        .change_membership(
            RosterChange::Promote { node: NodeId(9) },
            None,
            Some(PATIENCE),
        )
        .await;
    assert_eq!(unknown, Err(MembershipError::MemberNotFound(NodeId(9))));
}

#[tokio::test]
async fn the_last_voter_cannot_go() {
    let cluster = TestCluster::start(1, 1).await;
    let raft = cluster.raft(0);
    eventually("the restated roster", || {
        raft.membership().filter(|r| r.version() == 1)
    })
    .await;
    let refused = raft
        .change_membership(
            RosterChange::Leave {
                node: raft.local_node_id(),
            },
            None,
            Some(PATIENCE),
        )
        .await
        .expect_err("the last voter stays");
    assert_eq!(refused, MembershipError::InsufficientVoters);
    assert_eq!(refused.status(), Status::InsufficientVoters);
    assert!(!refused.is_retryable());
}

/// The peer sets each node handed its transport, by node.
type PeerSets = Arc<Mutex<BTreeMap<NodeId, Vec<BTreeMap<NodeId, String>>>>>;

/// Forwards to the in-memory network and records every peer set its node hands it.
struct PeerRecorder {
    node: NodeId,
    inner: Arc<dyn Transport>,
    sets: PeerSets,
}

impl Transport for PeerRecorder {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        self.inner.send(to, messages);
    }

    fn set_peers(&self, peers: &BTreeMap<NodeId, String>) -> Result<(), PeerSetError> {
        let mut sets = self.sets.lock().expect("sets");
        sets.entry(self.node).or_default().push(peers.clone());
        self.inner.set_peers(peers)
    }

    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
        self.inner.call(endpoint, call, reply);
    }
}

#[tokio::test]
async fn the_transport_follows_the_rosters_members() {
    let sets = PeerSets::default();
    let recorded = Arc::clone(&sets);
    let cluster = TestCluster::start_wrapped(
        3,
        1,
        Arc::new(move |node, inner| {
            Arc::new(PeerRecorder {
                node,
                inner,
                sets: Arc::clone(&recorded),
            })
        }),
    )
    .await;
    let leader = cluster.leader(SYSTEM).await;
    eventually("the restated roster", || {
        cluster
            .raft(leader)
            .membership()
            .filter(|r| r.version() == 1)
    })
    .await;
    let peers_of = |node: u64, extra: &[(u64, &str)]| -> BTreeMap<NodeId, String> {
        (1..=3u64)
            .filter(|&n| n != node)
            .map(|n| (NodeId(n), format!("memory:{n}")))
            .chain(extra.iter().map(|(n, e)| (NodeId(*n), (*e).to_owned())))
            .collect()
    };
    // The restated roster names the nodes the cluster started with: the same peers.
    for node in 1..=3u64 {
        eventually("the restated roster's peers", || {
            let sets = sets.lock().expect("sets");
            sets.get(&NodeId(node))?
                .last()
                .filter(|last| **last == peers_of(node, &[]))
                .map(drop)
        })
        .await;
    }
    let add = RosterChange::Add {
        node: NodeId(7),
        endpoint: "memory:7".to_owned(),
        incarnation: 1,
    };
    change_when_free(cluster.raft(leader), add, Some(1))
        .await
        .expect("added");
    // Every member now talks to the new learner.
    for node in 1..=3u64 {
        eventually("the new member among the peers", || {
            let sets = sets.lock().expect("sets");
            sets.get(&NodeId(node))?
                .last()
                .filter(|last| **last == peers_of(node, &[(7, "memory:7")]))
                .map(drop)
        })
        .await;
    }
}
