//! Quiescence (decision 0007): an idle, caught-up partition stops its timers and heartbeats;
//! what wakes it; a quiesced follower campaigns only once told its leader's node is dead; and
//! Raft's safety is untouched (the harness checks election safety and delivery on every Ready).

use bytes::Bytes;
use kommander_raft::core::{
    DurableState, MessageBody, NodeId, Replica, ReplicaConfig, Role, Ticket,
};

use super::harness::{Cluster, Lcg, P};

/// Ticks of idleness before a leader quiesces in these tests (the least the validation allows
/// with the default election timeout of 10 to 20 ticks).
const QUIESCE_AFTER: u32 = 10;

fn quiescing(voters: u64, learners: u64) -> Cluster {
    Cluster::with_config(voters, learners, |config| {
        config.quiesce_after_ticks = QUIESCE_AFTER;
    })
}

/// `voters` + `learners` nodes, 1 elected, one write committed everywhere, then idle until
/// every replica quiesced.
fn quiesced(voters: u64, learners: u64) -> Cluster {
    let mut c = quiescing(voters, learners);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    c.ticks(QUIESCE_AFTER as usize + 2);
    for id in 1..=voters + learners {
        assert!(c.replica(id).is_quiesced(), "node {id} quiesced");
    }
    c
}

fn all_quiesced(c: &Cluster, nodes: u64) -> bool {
    (1..=nodes).all(|id| c.replica(id).is_quiesced())
}

#[test]
fn an_idle_caught_up_partition_quiesces_and_then_sends_nothing() {
    let mut c = quiesced(3, 1);
    let term = c.replica(1).term();
    c.clear_trace();
    c.ticks(200);
    assert!(
        c.trace.is_empty(),
        "a quiesced partition is silent: {:?}",
        c.trace
    );
    assert_eq!(c.replica(1).term(), term);
    assert_eq!(c.leader(), Some(1));
    assert!(all_quiesced(&c, 4));
}

#[test]
fn quiescence_is_off_by_default_in_the_core() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    c.clear_trace();
    c.ticks(100);
    assert!(!c.replica(1).is_quiesced());
    assert!(!c.sent("Heartbeat").is_empty());
}

#[test]
fn a_lagging_peer_keeps_the_leader_awake_until_it_caught_up() {
    let mut c = quiescing(3, 0);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "a");
    c.settle();
    c.ticks(100);
    assert!(
        !c.replica(1).is_quiesced(),
        "node 3 lags: the leader heartbeats"
    );
    assert!(!c.replica(3).is_quiesced());
    c.heal();
    c.ticks(QUIESCE_AFTER as usize + 20);
    assert!(all_quiesced(&c, 3), "caught up, then quiesced");
    assert_eq!(c.applied_payloads(3), vec!["a"]);
}

#[test]
fn a_leader_whose_follower_missed_the_quiesce_heartbeats_stays_awake() {
    let mut c = quiescing(3, 0);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    // Node 3 never hears a quiesce heartbeat: the leader never gets its answer to one.
    for _ in 0..100 {
        let ids: Vec<u64> = vec![1, 2, 3];
        for id in ids {
            c.replica_mut(id).tick();
        }
        c.settle_filtered(|m| {
            !(m.to == NodeId(3) && matches!(m.body, MessageBody::Heartbeat { quiesce: true, .. }))
        });
    }
    assert!(!c.replica(1).is_quiesced(), "not every member answered");
    assert_eq!(c.leader(), Some(1));
}

#[test]
fn a_write_to_a_quiesced_partition_commits_within_one_round_trip() {
    let mut c = quiesced(3, 0);
    let index = c.propose(1, "b");
    // No tick: the proposal wakes the leader, its appends wake the followers.
    c.settle();
    assert_eq!(c.replica(1).commit_index(), index);
    for id in 1..=3 {
        assert!(!c.replica(id).is_quiesced(), "node {id} woke");
    }
    assert_eq!(c.applied_payloads(1), vec!["a", "b"]);
    c.ticks(QUIESCE_AFTER as usize + 4);
    assert!(all_quiesced(&c, 3), "idle again");
}

#[test]
fn a_read_wakes_a_quiesced_leader_and_is_confirmed_by_a_round() {
    let mut c = quiesced(3, 0);
    c.clear_trace();
    c.replica_mut(1).read_index(9).expect("leader");
    assert!(!c.replica(1).is_quiesced());
    assert!(
        c.node(1).read_states.is_empty(),
        "no read without a heartbeat round"
    );
    c.settle();
    let commit = c.replica(1).commit_index();
    assert_eq!(
        c.node(1).read_states.first().map(|s| s.result),
        Some(Ok(commit))
    );
    assert!(!c.sent("HeartbeatResponse").is_empty());
}

#[test]
fn a_follower_read_wakes_the_leader() {
    let mut c = quiesced(3, 0);
    c.replica_mut(2).read_index(4).expect("forwarded");
    c.settle();
    assert!(!c.replica(1).is_quiesced());
    assert!(
        c.node(2)
            .read_states
            .first()
            .is_some_and(|s| s.result.is_ok())
    );
}

#[test]
fn a_restarted_follower_wakes_the_leader_without_an_election() {
    let mut c = quiesced(3, 0);
    let term = c.replica(1).term();
    c.crash(3);
    c.restart(3);
    assert!(!c.replica(3).is_quiesced(), "quiescence is not durable");
    c.ticks(60);
    assert_eq!(
        c.replica(1).term(),
        term,
        "the pre-vote woke the leader, no election"
    );
    assert_eq!(c.replica(3).leader(), Some(NodeId(1)));
    assert_eq!(c.leader(), Some(1));
    assert!(all_quiesced(&c, 3), "and the partition quiesced again");
}

#[test]
fn a_plain_message_from_another_node_does_not_wake_a_quiesced_follower() {
    let mut c = quiesced(3, 0);
    c.clear_trace();
    let term = c.replica(2).term().0;
    // Node 3's pre-vote reaches node 2 only: node 2 is in its lease and stays quiesced.
    let pre_vote = MessageBody::PreVoteRequest {
        last_log_index: c.replica(3).last_index(),
        last_log_term: c.replica(3).term(),
        configuration_version: 0,
    };
    c.replica_mut(2)
        .step(super::harness::msg(3, 2, term + 1, pre_vote))
        .expect("stepped");
    assert!(c.replica(2).is_quiesced());
    c.settle();
    assert!(
        c.sent("PreVoteResponse").is_empty(),
        "ignored under the lease"
    );
}

#[test]
fn a_keep_alive_keeps_both_sides_quiesced() {
    let mut c = quiesced(3, 0);
    c.clear_trace();
    assert!(c.replica(1).keep_alive(NodeId(9)).is_none(), "not a member");
    assert!(
        c.replica(2).keep_alive(NodeId(3)).is_none(),
        "not the leader"
    );
    let keep_alive = c.replica(1).keep_alive(NodeId(2)).expect("quiesced leader");
    assert!(matches!(
        keep_alive.body,
        MessageBody::Heartbeat { quiesce: true, .. }
    ));
    c.replica_mut(2).step(keep_alive).expect("stepped");
    c.settle();
    assert_eq!(c.sent("HeartbeatResponse"), vec![(2, 1)], "answered");
    assert!(all_quiesced(&c, 3), "and the answer woke nothing");
}

#[test]
fn quiesced_followers_of_a_dead_leader_campaign_only_once_told() {
    let mut c = quiesced(3, 0);
    let term = c.replica(1).term();
    c.crash(1);
    c.ticks(200);
    // Without the runtime's verdict, nobody campaigns: that is the injected node bug
    // `QuiescedNeverCampaigns`, which the node simulator's liveness checker catches.
    assert_eq!(c.replica(2).term(), term);
    assert_eq!(c.replica(2).role(), Role::Follower);
    c.replica_mut(2).leader_node_dead();
    c.replica_mut(3).leader_node_dead();
    c.ticks(40);
    let leader = c.leader().expect("a new leader");
    assert_ne!(leader, 1);
    assert!(c.replica(leader).term() > term);
    c.propose(leader, "after");
    c.settle();
    assert_eq!(c.applied_payloads(leader), vec!["a", "after"]);
}

#[test]
fn a_wrong_verdict_of_death_costs_no_election() {
    let mut c = quiesced(3, 0);
    let term = c.replica(1).term();
    // Node 2's runtime wrongly believes node 1 dead; node 3's does not.
    c.replica_mut(2).leader_node_dead();
    assert!(!c.replica(2).is_quiesced());
    c.ticks(60);
    assert_eq!(
        c.replica(1).term(),
        term,
        "node 3 refused the pre-vote, node 1 woke"
    );
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.replica(2).leader(), Some(NodeId(1)));
}

#[test]
fn a_verdict_of_death_does_nothing_to_an_active_follower() {
    let mut c = quiescing(3, 0);
    c.elect(1);
    c.replica_mut(2).leader_node_dead();
    // Its own timer runs: the verdict would otherwise end the lease of a follower that hears
    // its leader.
    assert_eq!(c.replica(2).leader(), Some(NodeId(1)));
    c.ticks(60);
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.replica(1).term(), c.replica(2).term());
}

/// Random writes, cuts, crashes and verdicts of death (right and wrong) with quiescence on: the
/// harness asserts election safety, state machine safety and in-order delivery on every Ready;
/// at the end the cluster heals, every live node is told the truth, and a write commits.
#[test]
fn never_two_leaders_in_a_term_with_quiescence_and_wrong_verdicts() {
    for seed in 0..24 {
        let mut rng = Lcg(seed);
        let mut c = quiescing(3, 0);
        c.elect(1);
        for _ in 0..200 {
            match rng.next(12) {
                0 => {
                    if let Some(leader) = c.leader() {
                        let ticket = c.ticket();
                        let _ = c.replica_mut(leader).propose(ticket, true, Bytes::new());
                    }
                }
                1 => c.isolate(rng.next(3) + 1),
                2 => c.heal(),
                3 => {
                    let id = rng.next(3) + 1;
                    if c.node(id).up {
                        c.crash(id);
                    } else {
                        c.restart(id);
                    }
                }
                4 | 5 => {
                    let id = rng.next(3) + 1;
                    if c.node(id).up {
                        c.replica_mut(id).leader_node_dead();
                    }
                }
                _ => c.tick(),
            }
        }
        c.heal();
        for id in 1..=3 {
            if !c.node(id).up {
                c.restart(id);
            }
            c.replica_mut(id).leader_node_dead();
        }
        c.ticks(100);
        let leader = c
            .leader()
            .unwrap_or_else(|| panic!("seed {seed}: a leader"));
        let index = c.propose(leader, "end");
        c.settle();
        assert!(
            c.replica(leader).commit_index() >= index,
            "seed {seed}: the last write commits"
        );
        c.check_log_matching();
    }
}

#[test]
fn a_sole_voter_reports_quiescence_in_its_ready() {
    let mut config = ReplicaConfig::new(NodeId(1), P, vec![NodeId(1)]);
    config.quiesce_after_ticks = QUIESCE_AFTER;
    let mut replica = Replica::new(config, DurableState::default()).expect("valid");
    let drain = |replica: &mut Replica| {
        let mut reported = None;
        while replica.has_ready() {
            let ready = replica.ready();
            reported = ready.quiescence.or(reported);
            replica.persisted(ready.number);
        }
        reported
    };
    for _ in 0..40 {
        replica.tick();
        drain(&mut replica);
        if replica.is_leader() {
            break;
        }
    }
    assert!(replica.is_leader());
    let mut reported = None;
    for _ in 0..QUIESCE_AFTER + 1 {
        replica.tick();
        reported = drain(&mut replica).or(reported);
    }
    assert!(replica.is_quiesced());
    assert_eq!(reported, Some(true));
    replica
        .propose(Ticket(1), true, Bytes::from_static(b"x"))
        .expect("leader");
    assert_eq!(drain(&mut replica), Some(false));
    assert!(!replica.is_quiesced());
}

#[test]
fn quiesce_after_ticks_is_validated() {
    let mut config = ReplicaConfig::new(NodeId(1), P, vec![NodeId(1)]);
    config.quiesce_after_ticks = config.election_timeout_ticks_min - 1;
    assert!(config.validate().is_err());
    config.quiesce_after_ticks = config.election_timeout_ticks_min;
    assert!(config.validate().is_ok());
    config.quiesce_after_ticks = 0;
    assert!(config.validate().is_ok());
}

#[test]
fn a_quiesced_replica_gives_back_the_room_its_last_burst_needed() {
    let mut c = quiescing(3, 0);
    c.elect(1);
    for k in 0..40 {
        c.propose(1, &format!("w{k}"));
    }
    c.settle();
    assert!(
        (1..=3).any(|id| c.replica(id).spare_capacity_bytes() > 0),
        "a burst leaves room behind in some buffer"
    );
    c.ticks(QUIESCE_AFTER as usize + 2);
    for id in 1..=3 {
        let replica = c.replica(id);
        assert!(replica.is_quiesced(), "node {id} quiesced");
        assert_eq!(
            replica.spare_capacity_bytes(),
            0,
            "node {id} kept spare room"
        );
    }
}
