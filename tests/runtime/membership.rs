//! The roster of partition 0 through the shard host: the genesis roster restated with the
//! endpoints, a change proposed on partition 0's leader and followed by every partition's
//! leader (reconciliation), the refusals, and the configurations kept across a compaction
//! that removed their entries from the WAL and a full restart (they travel in the WAL's floor
//! record).

use kommander_raft::core::{NodeId, PartitionId, Status, Ticket};
use kommander_raft::shard::membership::{MemberRole, Roster, RosterChange};
use kommander_raft::shard::partitions::{MapChangeAnswer, MapOperation};
use kommander_raft::shard::{PartitionConfiguration, Refusal, ReplicationResult, Request};
use tokio::sync::oneshot;

use super::harness::{Cluster, eventually};
use super::stepped::SteppedCluster;

const SYSTEM: PartitionId = PartitionId(0);
const USER: PartitionId = PartitionId(1);

fn change(
    cluster: &mut Cluster,
    i: usize,
    change: RosterChange,
    expected_version: Option<u64>,
) -> Result<ReplicationResult, Refusal> {
    let ticket: Ticket = cluster.ticket();
    cluster.ask(i, SYSTEM, |reply| Request::ChangeMembership {
        change,
        expected_version,
        ticket,
        reply,
    })
}

fn roster(cluster: &Cluster, i: usize) -> Option<std::sync::Arc<Roster>> {
    cluster.runtime(i).membership().roster()
}

fn configuration(cluster: &Cluster, i: usize, p: PartitionId) -> Option<PartitionConfiguration> {
    cluster
        .ask(i, p, |reply| Request::Configuration { reply })
        .ok()
}

#[test]
fn the_genesis_roster_is_restated_with_the_endpoints_and_changes_are_refused_by_name() {
    let mut cluster = Cluster::start(3, 2, false);
    for i in 0..3 {
        let restated = eventually("every node knows the restated roster", || {
            roster(&cluster, i).filter(|r| r.version() == 1)
        });
        let endpoints: Vec<&str> = restated
            .members()
            .iter()
            .map(|m| m.endpoint.as_str())
            .collect();
        assert_eq!(endpoints, ["memory:1", "memory:2", "memory:3"]);
    }
    let leader = cluster.wait_leaders()[&SYSTEM];
    let (first, second) = ((leader + 1) % 3, (leader + 2) % 3);
    let demote = |i: usize| RosterChange::Demote {
        node: NodeId(i as u64 + 1),
    };
    assert!(matches!(
        change(&mut cluster, first, demote(first), None),
        Err(Refusal::NotLeader { .. })
    ));
    assert_eq!(
        change(&mut cluster, leader, demote(first), Some(0)),
        Err(Refusal::Replica(Status::StaleMembership))
    );
    let demoted = eventually("a demotion against the current version", || {
        change(&mut cluster, leader, demote(first), Some(1)).ok()
    });
    assert_eq!(demoted.status, Status::Success);
    // Its partition catches up before the next change: until then it is refused.
    let next = eventually(
        "the second demotion, once every partition followed",
        || match change(&mut cluster, leader, demote(second), Some(2)) {
            Err(Refusal::Replica(Status::ConcurrentMembershipChange)) => None,
            other => Some(other),
        },
    );
    assert_eq!(next.map(|r| r.status), Ok(Status::Success));
    let last = eventually("the last voter's demotion is refused", || {
        match change(&mut cluster, leader, demote(leader), Some(3)) {
            Err(Refusal::Replica(Status::ConcurrentMembershipChange)) => None,
            other => Some(other),
        }
    });
    assert_eq!(last, Err(Refusal::Replica(Status::InsufficientVoters)));
    // A retried change that already committed changes nothing and succeeds.
    let retried = change(&mut cluster, leader, demote(second), None).map(|r| r.status);
    assert_eq!(retried, Ok(Status::Success));
    assert_eq!(roster(&cluster, leader).map(|r| r.version()), Some(3));
    cluster.shutdown();
}

#[test]
fn a_demoted_voter_stays_demoted_on_every_partition_after_compaction_and_a_full_restart() {
    let mut cluster = Cluster::start(3, 2, false);
    let leader = cluster.wait_leaders()[&SYSTEM];
    let demoted = cluster.nodes[(leader + 1) % 3].id;
    let changed = eventually("the roster change is accepted", || {
        change(
            &mut cluster,
            leader,
            RosterChange::Demote { node: demoted },
            None,
        )
        .ok()
    });
    assert_eq!(changed.status, Status::Success);
    let follows = |c: &PartitionConfiguration| {
        c.committed.learners() == [demoted] && !c.committed.is_voter(demoted)
    };
    for p in [SYSTEM, USER] {
        for i in 0..3 {
            eventually("every node commits the change on every partition", || {
                configuration(&cluster, i, p).filter(follows).map(drop)
            });
        }
    }
    for p in [SYSTEM, USER] {
        let leaders = cluster.wait_leaders();
        let after = cluster.replicate(p, b"after the change");
        let ticket = cluster.ticket();
        let checkpoint: ReplicationResult = cluster
            .ask(leaders[&p], p, |reply| Request::Checkpoint {
                ticket,
                reply,
            })
            .expect("checkpoint accepted");
        assert_eq!(checkpoint.status, Status::Success);
        assert!(checkpoint.index > after.index);
        for i in 0..3 {
            eventually("the WAL compacts past the configuration entries", || {
                (cluster.status(i, p).ok()?.wal_floor >= checkpoint.index).then_some(())
            });
        }
    }
    for i in 0..3 {
        cluster.stop_node(i);
    }
    for i in 0..3 {
        // Opened with all three as the first voters: only the WAL's floor says otherwise.
        cluster.start_node(i);
    }
    cluster.wait_leaders();
    for p in [SYSTEM, USER] {
        for i in 0..3 {
            let restored = eventually("the node restored", || configuration(&cluster, i, p));
            assert!(follows(&restored), "node {} partition {p}", i + 1);
        }
    }
    for i in 0..3 {
        let member = eventually("the roster is back", || {
            roster(&cluster, i).and_then(|r| r.member(demoted).cloned())
        });
        assert_eq!(member.role, MemberRole::Learner, "node {}", i + 1);
    }
    cluster.replicate(USER, b"after the restart");
    cluster.shutdown();
}

#[test]
fn a_leaving_leader_hands_over_and_is_removed_once_every_partition_let_it_go() {
    let mut cluster = Cluster::start(3, 2, false);
    let leaders = cluster.wait_leaders();
    // The leader of the user partition leaves: it must hand that partition over first.
    let leaving = leaders[&USER];
    let leaving_id = cluster.nodes[leaving].id;
    let asked = eventually("the leave is accepted", || {
        let leader = cluster.leader(SYSTEM)?;
        change(
            &mut cluster,
            leader,
            RosterChange::Leave { node: leaving_id },
            None,
        )
        .ok()
    });
    assert_eq!(asked.status, Status::Success);
    // The others learn of the removal; the removed node, outside partition 0 now, keeps the
    // roster that made it leave.
    for i in (0..3).filter(|&i| i != leaving) {
        eventually("partition 0's leader removes the leaving member", || {
            roster(&cluster, i).filter(|r| r.member(leaving_id).is_none())
        });
    }
    let last_known = roster(&cluster, leaving).and_then(|r| r.member(leaving_id).cloned());
    assert_eq!(last_known.map(|m| m.role), Some(MemberRole::Leaving));
    let staying = (leaving + 1) % 3;
    for p in [SYSTEM, USER] {
        let committed = eventually("the partition lets it go", || {
            configuration(&cluster, staying, p)
                .filter(|c| !c.committed.is_member(leaving_id))
                .map(|c| c.committed)
        });
        assert_eq!(committed.voters().len(), 2, "{p}: {committed}");
    }
    let leader = eventually("a leader of the user partition without it", || {
        cluster.leader(USER)
    });
    assert_ne!(leader, leaving);
    cluster.shutdown();
}

/// A roster change is refused while partition 0's log holds a map its leader has not applied:
/// the partitions that map opens are among those the change must wait for (node sim seed
/// 7251: a node demoted and removed before it learnt that the first map, naming it a voter of
/// every partition, had committed; it never opened them, and they never had a quorum).
#[test]
fn a_roster_change_waits_for_the_map_in_flight() {
    let mut cluster = SteppedCluster::start(3, 1);
    cluster.elect();
    let leader = cluster.leader(SYSTEM).expect("a leader of partition 0");
    let other = cluster.nodes[(leader + 1) % 3].id;
    let ask = |cluster: &mut SteppedCluster, change, ticket| {
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeMembership {
            change,
            expected_version: None,
            ticket: Ticket(ticket),
            reply,
        };
        cluster.nodes[leader]
            .host
            .send(SYSTEM, request)
            .expect("queued");
        answer
    };
    // No map in flight: a demotion goes through (once the genesis roster is restated).
    let demoted = (1_001..1_100).find_map(|ticket| {
        let answer = ask(&mut cluster, RosterChange::Demote { node: other }, ticket);
        match cluster.answer(answer) {
            Err(Refusal::Replica(Status::ConcurrentMembershipChange)) => None,
            result => Some(result),
        }
    });
    let demoted = demoted.expect("a demotion taken within 99 tries");
    assert_eq!(demoted.map(|r| r.status), Ok(Status::Success));
    cluster.run_until("the demotion committed everywhere", 20_000, |c| {
        c.nodes.iter().all(|n| {
            n.host
                .membership()
                .roster()
                .and_then(|r| r.member(other).map(|m| m.role))
                == Some(MemberRole::Learner)
        })
    });
    // The first map, proposed and not delivered anywhere: it cannot commit. A promotion
    // asked meanwhile is refused at once.
    let (reply, mapped) = oneshot::channel();
    let request = Request::ChangeMap {
        operation: MapOperation::Initialize { partitions: 2 },
        ticket: Ticket(2_000),
        reply,
    };
    cluster.nodes[leader]
        .host
        .send(SYSTEM, request)
        .expect("queued");
    let now = cluster.now();
    cluster.nodes[leader].steppers[0].turn(now);
    let mut refused = ask(&mut cluster, RosterChange::Promote { node: other }, 2_001);
    cluster.nodes[leader].steppers[0].turn(now);
    assert_eq!(
        refused.try_recv().expect("answered in the turn"),
        Err(Refusal::Replica(Status::ConcurrentMembershipChange)),
        "a roster change while the map is in flight"
    );
    // Delivered, the map commits.
    let map_answer = cluster.answer(mapped);
    assert!(
        matches!(map_answer, Ok(MapChangeAnswer::Changed { .. })),
        "{map_answer:?}"
    );
}
