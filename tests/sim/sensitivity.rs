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

/// `bug` is caught within the bound: by `checker` alone when one is named (the others are not
/// run, and a liveness or restart failure does not count), else by anything. The whole-node
/// simulator names a checker for every bug it runs; `CommitOldTermByCounting` needs this
/// simulator's isolation of a leader at the instant it commits, and the configuration bugs
/// its membership schedule.
fn caught_by(bug: InjectedBug, checker: Option<&'static str>) {
    let workers = env_u64("KOMMANDER_SIM_WORKERS", 2);
    let results = run_seeds(0..SEEDS_MAX, workers, true, |seed| {
        let simulation = Simulation::with_bug(seed, SimConfig::for_seed(seed), bug);
        let result = match checker {
            Some(checker) => simulation.listening_only_to(checker).run(),
            None => simulation.run(),
        };
        match (result, checker) {
            (Err(failure), Some(checker)) if failure.violation.checker != checker => Ok(()),
            (result, _) => result.map(|_| ()),
        }
    });
    let caught = results
        .iter()
        .find_map(|(seed, result)| result.as_ref().err().map(|failure| (*seed, failure)));
    match caught {
        Some((seed, failure)) => eprintln!(
            "{bug:?}: caught at seed {seed} ({} seeds run) by {}: {}",
            seed + 1,
            failure.violation.checker,
            failure
        ),
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
fn configuration_change_before_the_noop_commits_is_caught() {
    caught_by(
        InjectedBug::ConfigurationBeforeNoOpCommits,
        Some("leader_completeness"),
    );
}

#[test]
fn concurrent_configuration_changes_are_caught() {
    caught_by(
        InjectedBug::ConcurrentConfigurationChanges,
        Some("leader_completeness"),
    );
}

#[test]
fn a_learners_vote_counted_is_caught() {
    caught_by(InjectedBug::LearnerVoteCounted, Some("election_safety"));
}

#[test]
fn every_injected_bug_has_a_sensitivity_test() {
    assert_eq!(
        InjectedBug::ALL.len(),
        9,
        "add a test above for the new bug"
    );
}
