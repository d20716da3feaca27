//! Feature `sim-bugs`: every injectable bug produces a violation the scripted checks catch.
//! Run with `cargo test --features sim-bugs --test main bugs`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kommander_raft::core::{Configuration, InjectedBug, NodeId, ReplicaConfig};

use super::harness::Cluster;

/// Runs `scenario` with `bug` injected in every replica; returns whether a check failed.
fn fails(
    bug: Option<InjectedBug>,
    voters: u64,
    tweak: fn(&mut ReplicaConfig),
    scenario: fn(&mut Cluster),
) -> bool {
    let set = |cfg: &mut ReplicaConfig| {
        tweak(cfg);
        cfg.bug = bug;
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut c = Cluster::with_config(voters, 0, set);
        scenario(&mut c);
    }));
    result.is_err()
}

fn defaults(_: &mut ReplicaConfig) {}

fn figure_8_config(cfg: &mut ReplicaConfig) {
    cfg.check_quorum = false;
    cfg.append_entries_max = 1;
}

fn ack_before_persist(c: &mut Cluster) {
    c.elect(1);
    for id in 1..=3 {
        c.stall_disk(id, true);
    }
    for i in 0..3 {
        c.propose(1, &format!("acknowledged-but-volatile{i}"));
    }
    c.settle();
    for id in 1..=3 {
        c.crash(id);
        c.restart(id);
        c.stall_disk(id, false);
    }
    c.ticks(60);
    let leader = c.leader().expect("leader");
    c.propose(leader, "replacement");
    c.settle();
    c.ticks(2);
}

fn skip_prev_log_check(c: &mut Cluster) {
    // Node 1 grows a long stale tail; two leader changes later the new leader's first probe is
    // anchored inside that tail, where only the prevLog term check can tell the logs differ.
    c.elect(1);
    c.propose(1, "base");
    c.settle();
    c.isolate(1);
    for i in 0..8 {
        c.propose(1, &format!("stale{i}"));
    }
    c.settle();
    c.ticks(60);
    let second = (2..=5)
        .find(|&i| c.replica(i).is_leader())
        .expect("second leader");
    for i in 0..3 {
        c.propose(second, &format!("new{i}"));
    }
    c.settle();
    c.ticks(2);
    c.crash(second);
    c.ticks(60);
    c.heal();
    c.ticks(10);
}

fn double_vote(c: &mut Cluster) {
    c.tick_until_campaign(2);
    c.tick_until_campaign(3);
    c.settle();
    c.ticks(5);
}

fn commit_old_term(c: &mut Cluster) {
    // The figure 8 script of `replication.rs`, asserting its key step.
    super::replication::figure_8_script(c);
}

fn deliver_out_of_order(c: &mut Cluster) {
    c.elect(1);
    for i in 0..3 {
        c.propose(1, &format!("v{i}"));
    }
    c.settle();
}

fn reuse_index(c: &mut Cluster) {
    c.elect(1);
    for i in 0..5 {
        c.propose(1, &format!("band{i}"));
    }
    c.settle();
    c.crash(1);
    c.ticks(60);
    let leader = c.leader().expect("leader");
    for i in 0..5 {
        c.propose(leader, &format!("new{i}"));
    }
    c.settle();
    c.ticks(4);
}

#[test]
fn every_injected_bug_is_caught() {
    type Case = (InjectedBug, u64, fn(&mut ReplicaConfig), fn(&mut Cluster));
    let cases: [Case; 6] = [
        (
            InjectedBug::AckBeforePersist,
            3,
            defaults,
            ack_before_persist,
        ),
        (
            InjectedBug::SkipPrevLogCheck,
            5,
            defaults,
            skip_prev_log_check,
        ),
        (InjectedBug::DoubleVote, 3, defaults, double_vote),
        (
            InjectedBug::CommitOldTermByCounting,
            3,
            figure_8_config,
            commit_old_term,
        ),
        (
            InjectedBug::DeliverOutOfOrder,
            3,
            defaults,
            deliver_out_of_order,
        ),
        (
            InjectedBug::ReuseIndexAfterLeaderChange,
            3,
            defaults,
            reuse_index,
        ),
    ];
    for (bug, voters, tweak, scenario) in cases {
        let clean = !fails(None, voters, tweak, scenario);
        assert!(clean, "{bug:?}'s scenario fails without the bug");
        assert!(
            fails(Some(bug), voters, tweak, scenario),
            "{bug:?} went unnoticed"
        );
    }
}

/// Runs a configuration `scenario` on three voters and two nodes outside the configuration,
/// with `bug` injected everywhere; returns whether a check failed.
fn configuration_scenario_fails(bug: Option<InjectedBug>, scenario: fn(&mut Cluster)) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        let mut c = Cluster::with_config(3, 2, |cfg| {
            cfg.learners.clear();
            cfg.bug = bug;
        });
        scenario(&mut c);
    }))
    .is_err()
}

fn configuration(voters: &[u64], learners: &[u64]) -> Configuration {
    let ids = |list: &[u64]| list.iter().copied().map(NodeId).collect();
    Configuration::new(ids(voters), ids(learners)).expect("valid")
}

/// Nodes 4 and 5 join as learners of leader 1.
fn add_two_learners(c: &mut Cluster) {
    c.elect(1);
    for next in [
        configuration(&[1, 2, 3], &[4]),
        configuration(&[1, 2, 3], &[4, 5]),
    ] {
        let ticket = c.ticket();
        c.replica_mut(1)
            .propose_configuration(ticket, next)
            .expect("one change at a time");
        c.settle();
    }
    c.ticks(2);
    c.settle();
}

fn concurrent_changes(c: &mut Cluster) {
    // Both learners promoted at once: with the bug, {1, 4, 5} is a majority of the five and
    // commits while {2, 3}, a majority of the old three, elects and commits too.
    add_two_learners(c);
    for next in [
        configuration(&[1, 2, 3, 4], &[5]),
        configuration(&[1, 2, 3, 4, 5], &[]),
    ] {
        let ticket = c.ticket();
        let _ = c.replica_mut(1).propose_configuration(ticket, next);
    }
    c.partition(&[&[1, 4, 5], &[2, 3]]);
    c.settle();
    c.propose(1, "the five's majority");
    c.settle();
    c.ticks(60);
    if let Some(leader) = [2, 3].into_iter().find(|&id| c.replica(id).is_leader()) {
        // Enough entries to reach the index where the five's majority committed its own.
        for i in 0..4 {
            c.propose(leader, &format!("the three's majority {i}"));
        }
        c.settle();
    }
    c.heal();
    c.ticks(60);
    c.settle();
}

fn learner_vote_counted(c: &mut Cluster) {
    // Cut off with the two learners, 1 wins a term by their votes while {2, 3} elect in it.
    add_two_learners(c);
    c.partition(&[&[1, 4, 5], &[2, 3]]);
    for _ in 0..200 {
        c.tick();
    }
}

#[test]
fn every_configuration_bug_is_caught_by_a_scripted_scenario() {
    type Case = (InjectedBug, fn(&mut Cluster));
    let cases: [Case; 2] = [
        (
            InjectedBug::ConcurrentConfigurationChanges,
            concurrent_changes,
        ),
        (InjectedBug::LearnerVoteCounted, learner_vote_counted),
    ];
    for (bug, scenario) in cases {
        assert!(
            !configuration_scenario_fails(None, scenario),
            "{bug:?}'s scenario fails without the bug"
        );
        assert!(
            configuration_scenario_fails(Some(bug), scenario),
            "{bug:?} went unnoticed"
        );
    }
}
