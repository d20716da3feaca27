//! Harness sensitivity: each known bug injected into the core (feature `sim-bugs`) must be
//! caught within 1 000 seeds. A simulator that cannot fail proves nothing.

use kommander_raft::core::InjectedBug;
use kommander_raft::sim::{SimConfig, Simulation};

use super::{env_u64, run_seeds};

/// Seeds a bug may survive before the harness is declared blind to it.
const SEEDS_MAX: u64 = 1_000;

/// The bug with `Debug` name `name`.
pub(crate) fn bug_named(name: &str) -> Option<InjectedBug> {
    InjectedBug::ALL
        .into_iter()
        .find(|bug| format!("{bug:?}") == name)
}

fn caught_within_bound(bug: InjectedBug) {
    caught_by(bug, None);
}

/// `bug` is caught within the bound, first by `checker` when one is named (the whole-node
/// simulator names a checker for every other bug; this one needs the core simulator's
/// isolation of a leader at the instant it commits).
fn caught_by(bug: InjectedBug, checker: Option<&str>) {
    let workers = env_u64("KOMMANDER_SIM_WORKERS", 2);
    let results = run_seeds(0..SEEDS_MAX, workers, true, |seed| {
        Simulation::with_bug(seed, SimConfig::for_seed(seed), bug).run()
    });
    let caught = results
        .iter()
        .find_map(|(seed, result)| result.as_ref().err().map(|failure| (*seed, failure)));
    match caught {
        Some((seed, failure)) => {
            if let Some(checker) = checker {
                assert_eq!(
                    failure.violation.checker, checker,
                    "{bug:?} caught by another checker: {failure}"
                );
            }
            eprintln!(
                "{bug:?}: caught at seed {seed} ({} seeds run) by {}: {}",
                seed + 1,
                failure.violation.checker,
                failure
            );
        }
        None => panic!("{bug:?} survived {SEEDS_MAX} seeds: the harness is blind to it"),
    }
}

#[test]
fn ack_before_persist_is_caught() {
    caught_within_bound(InjectedBug::AckBeforePersist);
}

#[test]
fn append_without_prev_log_check_is_caught() {
    caught_within_bound(InjectedBug::SkipPrevLogCheck);
}

#[test]
fn double_vote_is_caught() {
    caught_within_bound(InjectedBug::DoubleVote);
}

#[test]
fn commit_of_old_term_entry_by_counting_is_caught() {
    caught_by(
        InjectedBug::CommitOldTermByCounting,
        Some("leader_completeness"),
    );
}

#[test]
fn out_of_order_delivery_is_caught() {
    caught_within_bound(InjectedBug::DeliverOutOfOrder);
}

#[test]
fn index_reuse_after_leader_change_is_caught() {
    caught_within_bound(InjectedBug::ReuseIndexAfterLeaderChange);
}

#[test]
fn every_injected_bug_has_a_sensitivity_test() {
    assert_eq!(
        InjectedBug::ALL.len(),
        6,
        "add a test above for the new bug"
    );
}
