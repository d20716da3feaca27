//! The leader's heartbeats: one per follower and interval, skipped when a recent append
//! already told the follower everything it would (`Replica::heartbeat_needed`), never when it
//! carries news (a commit index, a read round) or when skipping could let the follower's
//! election timer run out.

use kommander_raft::core::MessageBody;

use super::harness::Cluster;

/// Three nodes, 1 leading, one write committed and known everywhere, at the start of a
/// heartbeat interval (the core's default: heartbeats every 2 ticks, elections after 10–20).
fn settled() -> Cluster {
    settled_with(10)
}

fn settled_with(election_timeout_ticks_min: u32) -> Cluster {
    let mut c = Cluster::with_config(3, 0, |config| {
        config.election_timeout_ticks_min = election_timeout_ticks_min;
        config.election_timeout_ticks_max = election_timeout_ticks_min * 2;
    });
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    c.ticks(4);
    for id in 2..=3 {
        assert_eq!(c.replica(id).commit_index(), c.replica(1).commit_index());
    }
    c.clear_trace();
    c
}

/// A write whose appends reach the followers but whose answers are held back: the leader's
/// commit index stays what the appends carried.
fn append_unanswered(c: &mut Cluster) {
    c.propose(1, "b");
    c.settle_filtered(|m| !matches!(m.body, MessageBody::AppendResponse { .. }));
    assert_eq!(c.sent("AppendRequest").len(), 2);
}

fn heartbeats(c: &Cluster) -> usize {
    c.sent("Heartbeat").len()
}

#[test]
fn a_follower_that_just_got_an_append_gets_no_heartbeat_that_interval() {
    let mut c = settled();
    append_unanswered(&mut c);
    c.ticks(2);
    assert_eq!(heartbeats(&c), 0, "the appends stood in for the heartbeats");
    // No append in the next interval: the heartbeats resume.
    c.ticks(2);
    assert_eq!(heartbeats(&c), 2);
    assert_eq!(c.leader(), Some(1));
}

#[test]
fn a_heartbeat_that_carries_a_newer_commit_index_is_sent() {
    let mut c = settled();
    let index = c.propose(1, "b");
    c.settle();
    assert_eq!(c.replica(1).commit_index(), index);
    assert!(
        c.replica(2).commit_index() < index,
        "the append carried the previous commit index"
    );
    c.ticks(2);
    assert_eq!(heartbeats(&c), 2);
    for id in 2..=3 {
        assert_eq!(c.replica(id).commit_index(), index, "node {id} learnt it");
    }
}

#[test]
fn a_read_round_without_its_answers_gets_the_next_heartbeat() {
    let mut c = settled();
    c.replica_mut(1).read_index(7).expect("leader reads");
    // The read round's own heartbeats are lost; an append follows them.
    c.settle_filtered(|m| !matches!(m.body, MessageBody::Heartbeat { .. }));
    append_unanswered(&mut c);
    c.ticks(2);
    assert_eq!(
        heartbeats(&c),
        2,
        "the interval's heartbeats carry the round"
    );
    assert!(
        c.node(1).read_states.iter().any(|r| r.context == 7),
        "the read was confirmed"
    );
}

#[test]
fn no_heartbeat_is_skipped_when_the_election_timeout_leaves_no_room() {
    // The append's age (2) + two intervals (4) + one tick (1) is not below 7.
    let mut c = settled_with(7);
    append_unanswered(&mut c);
    c.ticks(2);
    assert_eq!(heartbeats(&c), 2);
}
