//! Feature `sim-bugs`: every injectable bug produces a violation the scripted checks catch.
//! Run with `cargo test --features sim-bugs --test main bugs`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kommander_raft::core::{InjectedBug, ReplicaConfig};

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
