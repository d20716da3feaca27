//! Learners receive the log, never campaign, and their votes never count.

use kommander_raft::core::{LogIndex, MessageBody, Role, Term};

use super::harness::{Cluster, msg};

#[test]
fn learner_receives_the_log() {
    let mut c = Cluster::new(3, 1);
    c.elect(1);
    for i in 0..5 {
        c.propose(1, &format!("v{i}"));
    }
    c.settle();
    c.ticks(2);
    assert_eq!(c.applied_payloads(4), c.applied_payloads(1));
    assert_eq!(c.applied_payloads(4).len(), 5);
    assert!(c.replica(4).is_learner());
}

#[test]
fn learner_acks_do_not_count_towards_commit() {
    let mut c = Cluster::new(3, 1);
    c.elect(1);
    c.crash(2);
    let index = c.propose(1, "with-one-voter");
    c.settle();
    assert!(
        c.replica(1).commit_index() >= index,
        "1 and 3 are a quorum of 3 voters"
    );
    c.crash(3);
    let index = c.propose(1, "learner-only");
    c.settle();
    assert!(c.replica(4).last_index() >= index, "the learner has it");
    assert!(
        c.replica(1).commit_index() < index,
        "but a learner never counts"
    );
}

#[test]
fn learner_never_campaigns() {
    let mut c = Cluster::new(3, 1);
    c.elect(1);
    let term = c.replica(4).term();
    c.isolate(4);
    c.ticks(200);
    assert_eq!(c.replica(4).role(), Role::Follower);
    assert_eq!(c.replica(4).term(), term);
    assert!(c.sent("PreVoteRequest").iter().all(|(from, _)| *from != 4));
}

#[test]
fn a_transfer_vote_request_from_a_learner_does_not_bypass_the_lease() {
    let mut c = Cluster::new(3, 1);
    c.elect(1);
    let term = c.replica(2).term().0;
    let request = MessageBody::VoteRequest {
        last_log_index: LogIndex(1000),
        last_log_term: Term(term),
        configuration_version: 0,
        transfer: true,
    };
    c.replica_mut(2)
        .step(msg(4, 2, term + 1, request))
        .expect("accepted: safety rests on the candidate counting its own voters");
    assert_eq!(
        c.replica(2).term().0,
        term,
        "ignored under the lease of the leader it follows"
    );
}

#[test]
fn a_forged_vote_from_a_learner_is_not_counted() {
    let mut c = Cluster::new(3, 1);
    c.isolate(1);
    c.tick_until_campaign(1);
    c.settle();
    let term = c.replica(1).term().0 + 1;
    let forged = MessageBody::PreVoteResponse { granted: true };
    c.replica_mut(1)
        .step(msg(4, 1, term, forged))
        .expect("a valid message");
    assert_eq!(
        c.replica(1).role(),
        Role::PreCandidate,
        "one grant (its own) is no quorum"
    );
}
