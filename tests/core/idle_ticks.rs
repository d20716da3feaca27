//! Ticks that only count (`Replica::idle_ticks`) and ticks handed over at once
//! (`Replica::tick_by`): what lets a shard visit a follower when its election timer runs out
//! instead of at every tick.

use kommander_raft::core::Role;

use super::harness::{Cluster, Lcg};

/// Three voters, 1 leading, one write committed everywhere.
fn settled(learners: u64) -> Cluster {
    let mut c = Cluster::new(3, learners);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    c
}

#[test]
fn a_follower_campaigns_at_the_first_tick_past_its_idle_ticks() {
    let mut c = settled(0);
    c.isolate(2);
    let idle = c.replica(2).idle_ticks();
    assert!(idle > 0 && idle < u32::MAX, "a timer that runs: {idle}");
    for left in (0..idle).rev() {
        c.replica_mut(2).tick();
        assert_eq!(c.replica(2).idle_ticks(), left);
        assert_eq!(c.replica(2).role(), Role::Follower);
        assert!(!c.replica(2).has_ready(), "an idle tick changes nothing");
    }
    c.replica_mut(2).tick();
    assert_eq!(c.replica(2).role(), Role::PreCandidate);
}

#[test]
fn a_leader_has_no_idle_ticks_and_a_replica_that_cannot_campaign_has_only_idle_ones() {
    let mut c = settled(1);
    assert_eq!(c.replica(1).idle_ticks(), 0);
    // The learner's timer runs out and it does not campaign: its ticks only count.
    c.isolate(4);
    let idle = c.replica(4).idle_ticks();
    c.replica_mut(4).tick_by(u64::from(idle) + 1);
    assert_eq!(c.replica(4).idle_ticks(), u32::MAX);
    c.replica_mut(4).tick_by(1_000_000);
    assert_eq!(c.replica(4).role(), Role::Follower);
    assert!(!c.replica(4).has_ready());
}

#[test]
fn a_quiesced_replica_has_only_idle_ticks() {
    let mut c = Cluster::with_config(3, 0, |config| config.quiesce_after_ticks = 10);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    c.ticks(12);
    for id in 1..=3 {
        assert!(c.replica(id).is_quiesced(), "node {id} quiesced");
        assert_eq!(c.replica(id).idle_ticks(), u32::MAX);
        c.replica_mut(id).tick_by(u64::MAX);
        assert!(c.replica(id).is_quiesced() && !c.replica(id).has_ready());
    }
}

/// Two identical clusters under the same schedule of cuts, heals and writes, one ticked one
/// tick at a time and the other `tick_by` the same number at once: they stay identical and
/// send the same messages, through elections, check-quorum step-downs and (with
/// `quiesce_after_ticks`) quiescence the handed-over ticks start.
fn tick_by_matches_ticking_one_by_one(quiesce_after_ticks: u32, seed: u64) {
    let make = || {
        let mut c = Cluster::with_config(3, 1, |config| {
            config.quiesce_after_ticks = quiesce_after_ticks;
        });
        c.elect(1);
        c.propose(1, "a");
        c.settle();
        c
    };
    let mut one_by_one = make();
    let mut at_once = make();
    let mut rng = Lcg(seed);
    let mut elections = 0;
    let mut quiesced = 0;
    for round in 0..400 {
        let id = rng.next(4) + 1;
        let ticks = rng.next(30) + 1;
        for _ in 0..ticks {
            one_by_one.replica_mut(id).tick();
        }
        at_once.replica_mut(id).tick_by(ticks);
        assert_eq!(
            one_by_one.replica(id).soft_state(),
            at_once.replica(id).soft_state(),
            "round {round}: node {id} after {ticks} ticks"
        );
        assert_eq!(
            one_by_one.replica(id).idle_ticks(),
            at_once.replica(id).idle_ticks()
        );
        if at_once.replica(id).role() == Role::PreCandidate {
            elections += 1;
        }
        if at_once.replica(id).is_quiesced() {
            quiesced += 1;
        }
        match rng.next(6) {
            0 => {
                let cut = rng.next(4) + 1;
                one_by_one.isolate(cut);
                at_once.isolate(cut);
            }
            1 => {
                one_by_one.heal();
                at_once.heal();
            }
            2 => {
                if let Some(leader) = at_once.leader() {
                    one_by_one.propose(leader, "w");
                    at_once.propose(leader, "w");
                }
            }
            _ => {}
        }
        one_by_one.settle();
        at_once.settle();
        assert_eq!(
            one_by_one.trace, at_once.trace,
            "round {round}: the messages"
        );
        for node in 1..=4 {
            assert_eq!(
                one_by_one.log_of(node),
                at_once.log_of(node),
                "round {round}: node {node}'s log"
            );
        }
    }
    assert!(
        elections > 10,
        "the handed-over ticks started elections: {elections}"
    );
    assert!(
        quiesce_after_ticks == 0 || quiesced > 10,
        "the handed-over ticks quiesced replicas: {quiesced}"
    );
}

#[test]
fn tick_by_is_the_same_as_ticking_one_by_one() {
    tick_by_matches_ticking_one_by_one(0, 7);
}

#[test]
fn tick_by_is_the_same_as_ticking_one_by_one_with_quiescence() {
    tick_by_matches_ticking_one_by_one(12, 11);
}
