//! Leadership transfer (TimeoutNow), step-down, suspend/resume of heartbeats.

use kommander_raft::core::{NodeId, Role, Status};

use super::harness::{Cluster, payload};

#[test]
fn transfer_to_an_up_to_date_follower() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    c.replica_mut(1)
        .transfer_leadership(NodeId(2))
        .expect("transfer");
    c.settle();
    assert_eq!(c.leader(), Some(2));
    assert_eq!(c.replica(1).role(), Role::Follower);
    assert_eq!(c.replica(1).leader(), Some(NodeId(2)));
}

#[test]
fn transfer_waits_for_a_lagging_target_to_catch_up() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.isolate(3);
    for i in 0..20 {
        c.propose(1, &format!("v{i}"));
    }
    c.settle();
    c.replica_mut(1)
        .transfer_leadership(NodeId(3))
        .expect("transfer");
    c.settle();
    assert!(
        c.sent("TimeoutNow").is_empty(),
        "not before the target caught up"
    );
    let ticket = c.ticket();
    assert_eq!(
        c.replica_mut(1).propose(ticket, true, payload("x")),
        Err(Status::NodeIsNotLeader),
        "proposals refused during a transfer"
    );
    c.heal();
    c.ticks(4);
    assert_eq!(c.leader(), Some(3));
    assert_eq!(c.applied_payloads(3).len(), 20);
}

#[test]
fn transfer_errors_and_timeout() {
    let mut c = Cluster::new(3, 1);
    c.elect(1);
    assert_eq!(
        c.replica_mut(1).transfer_leadership(NodeId(1)),
        Err(Status::LeaderAlreadyElected)
    );
    assert_eq!(
        c.replica_mut(1).transfer_leadership(NodeId(4)),
        Err(Status::Errored)
    );
    assert_eq!(
        c.replica_mut(2).transfer_leadership(NodeId(3)),
        Err(Status::NodeIsNotLeader)
    );
    c.isolate(3);
    c.replica_mut(1)
        .transfer_leadership(NodeId(3))
        .expect("transfer");
    c.propose_refused(1);
    c.ticks(30);
    assert_eq!(
        c.replica(1).transfer_target(),
        None,
        "aborted after an election timeout"
    );
    assert_eq!(c.leader(), Some(1));
    c.propose(1, "accepted again");
}

#[test]
fn step_down_hands_over_to_the_most_up_to_date_voter() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "only-on-1-and-2");
    c.settle();
    c.heal();
    c.replica_mut(1).step_down().expect("leader steps down");
    assert_eq!(c.replica(1).role(), Role::Follower);
    c.settle();
    assert_eq!(c.leader(), Some(2), "2 has the longest log");
    assert_eq!(c.replica_mut(3).step_down(), Err(Status::NodeIsNotLeader));
}

#[test]
fn suspended_heartbeats_lead_to_a_new_leader_without_split_brain() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.replica_mut(1).suspend_heartbeats().expect("leader");
    assert!(c.replica(1).heartbeats_suspended());
    c.ticks(60);
    let leader = c.leader().expect("a new leader");
    assert_ne!(leader, 1);
    assert_eq!(
        c.replica_mut(1).resume_heartbeats(),
        Err(Status::NodeIsNotLeader)
    );
    c.ticks(10);
    let leaders = (1..=3).filter(|&i| c.replica(i).is_leader()).count();
    assert_eq!(leaders, 1);
}

#[test]
fn resume_heartbeats_restores_a_suspended_leader() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.replica_mut(1).suspend_heartbeats().expect("leader");
    c.ticks(3);
    c.replica_mut(1).resume_heartbeats().expect("still leader");
    c.ticks(60);
    assert_eq!(c.leader(), Some(1));
}
