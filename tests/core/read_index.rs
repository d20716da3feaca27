//! ReadIndex (thesis §6.4): linearizable read points confirmed by a heartbeat quorum round.

use kommander_raft::core::{Message, MessageBody, Status};

use super::harness::Cluster;

#[test]
fn leader_read_index_is_confirmed_by_a_quorum_round() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    let commit = c.replica(1).commit_index();
    c.replica_mut(1).read_index(7).expect("leader");
    assert!(
        c.node(1).read_states.is_empty(),
        "not before the heartbeat round"
    );
    c.settle();
    let states = &c.node(1).read_states;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].context, 7);
    assert_eq!(states[0].result, Ok(commit));
}

#[test]
fn minority_leader_never_confirms_a_read() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.check_quorum = false);
    c.elect(1);
    c.isolate(1);
    c.replica_mut(1)
        .read_index(1)
        .expect("still believes it leads");
    c.ticks(10);
    assert!(
        c.node(1).read_states.is_empty(),
        "no confirmation without a quorum"
    );
    c.heal();
    c.ticks(80);
    let result = c.node(1).read_states.first().map(|s| s.result);
    assert!(
        matches!(result, Some(Err(Status::NodeIsNotLeader)) | Some(Ok(_))),
        "resolved once the partition healed: {result:?}"
    );
    if c.leader() != Some(1) {
        assert_eq!(result, Some(Err(Status::NodeIsNotLeader)));
    }
}

#[test]
fn isolated_leader_with_check_quorum_fails_pending_reads() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.isolate(1);
    c.replica_mut(1).read_index(3).expect("leader");
    c.ticks(60);
    let result = c.node(1).read_states.first().map(|s| s.result);
    assert_eq!(result, Some(Err(Status::NodeIsNotLeader)));
}

#[test]
fn follower_read_is_forwarded_to_the_leader() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    let commit = c.replica(1).commit_index();
    c.replica_mut(2).read_index(42).expect("knows the leader");
    c.settle();
    let states = &c.node(2).read_states;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].context, 42);
    assert_eq!(states[0].result, Ok(commit));
    assert!(c.node(2).applied_index >= commit);
}

#[test]
fn new_leader_defers_reads_until_its_no_op_commits() {
    let mut c = Cluster::new(3, 0);
    let no_appends =
        |m: Message| (!matches!(m.body, MessageBody::AppendRequest { .. })).then_some(m);
    c.campaign_with(1, no_appends);
    assert!(c.replica(1).is_leader());
    assert!(
        c.replica(1).commit_index() < c.replica(1).last_index(),
        "no-op not committed"
    );
    assert!(
        !c.replica(1).is_leader_established(),
        "leadership not yet published"
    );
    c.replica_mut(1).read_index(5).expect("leader");
    c.settle_mapped(no_appends);
    assert!(
        c.node(1).read_states.is_empty(),
        "no read point before a commit in this term"
    );
    assert!(
        c.sent("Heartbeat").is_empty(),
        "the round has not even started"
    );
    c.ticks(2);
    assert!(c.replica(1).is_leader_established());
    let state = c.node(1).read_states.first().copied().expect("answered");
    let index = state.result.expect("confirmed");
    assert!(index >= c.replica(1).last_index());
    assert_eq!(c.replica(1).term_at(index), Some(c.replica(1).term()));
}

#[test]
fn pending_reads_are_bounded() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.read_index_pending_max = 2);
    c.elect(1);
    c.isolate(1);
    c.replica_mut(1).read_index(1).expect("room");
    c.replica_mut(1).read_index(2).expect("room");
    assert_eq!(
        c.replica_mut(1).read_index(3),
        Err(Status::ProposalQueueFull)
    );
    assert_eq!(
        c.replica_mut(2).read_index(1).is_ok(),
        c.replica(2).leader().is_some()
    );
}

#[test]
fn forwarded_read_is_refused_when_the_leader_loses_leadership() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.check_quorum = false);
    c.elect(1);
    c.isolate(3);
    // 2's request reaches 1; 2's heartbeat answers do not, so the round cannot complete.
    c.replica_mut(2).read_index(9).expect("knows the leader");
    c.settle_filtered(|m| !matches!(m.body, MessageBody::HeartbeatResponse { .. }));
    assert!(
        c.node(2).read_states.is_empty(),
        "not confirmed without a quorum round"
    );
    // 1 sees a higher term and steps down: the pending forwarded read is refused.
    let term = c.replica(1).term().0;
    let vote = MessageBody::VoteRequest {
        last_log_index: c.replica(1).last_index(),
        last_log_term: c.replica(1).last_term(),
        configuration_version: 0,
        transfer: true,
    };
    c.replica_mut(1)
        .step(super::harness::msg(3, 1, term + 1, vote))
        .expect("valid");
    c.settle();
    let state = c.node(2).read_states.first().copied().expect("answered");
    assert_eq!(state.context, 9);
    assert_eq!(state.result, Err(Status::NodeIsNotLeader));
}
