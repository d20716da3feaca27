//! Configuration changes through the log: one voter at a time, only after the no-op of the
//! leader's term commits, in force on every replica as soon as it is in its log, reverted by a
//! truncation, kept through restarts, compaction and snapshots.

use kommander_raft::core::{Configuration, NodeId, Role, Status};

use super::harness::Cluster;

fn configuration(voters: &[u64], learners: &[u64]) -> Configuration {
    Configuration::new(
        voters.iter().copied().map(NodeId).collect(),
        learners.iter().copied().map(NodeId).collect(),
    )
    .expect("valid")
}

/// Three voters and `outside` more nodes that start outside the configuration.
fn cluster_with_outsiders(outside: u64) -> Cluster {
    Cluster::with_config(3, outside, |c| c.learners.clear())
}

/// Three voters and node 4 outside; leaders keep nothing below a checkpoint.
fn compacting_cluster_with_an_outsider() -> Cluster {
    Cluster::with_config(3, 1, |config| {
        config.learners.clear();
        config.compaction_retain_entries_max = 0;
    })
}

/// A checkpoint on `leader`, committed and applied everywhere (the new floor).
fn checkpoint(c: &mut Cluster, leader: u64) {
    let ticket = c.ticket();
    c.replica_mut(leader)
        .propose_checkpoint(ticket)
        .expect("leader");
    c.settle();
    c.ticks(2);
    c.settle();
}

fn change(c: &mut Cluster, leader: u64, next: Configuration) -> Result<(), Status> {
    let ticket = c.ticket();
    c.replica_mut(leader)
        .propose_configuration(ticket, next)
        .map(|_| ())
}

#[test]
fn an_outsider_is_added_as_a_learner_caught_up_and_promoted_into_the_quorum() {
    let mut c = cluster_with_outsiders(1);
    c.elect(1);
    c.propose(1, "before");
    c.settle();
    c.ticks(40);
    assert!(c.log_of(4).is_empty(), "nobody replicates to an outsider");
    assert_eq!(
        c.replica(4).role(),
        Role::Follower,
        "an outsider never campaigns"
    );

    change(&mut c, 1, configuration(&[1, 2, 3], &[4])).expect("a learner joins");
    c.settle();
    c.ticks(2);
    assert_eq!(
        c.replica(4).configuration(),
        &configuration(&[1, 2, 3], &[4])
    );
    assert_eq!(c.applied_payloads(4), vec!["before"]);

    change(&mut c, 1, configuration(&[1, 2, 3, 4], &[])).expect("promoted");
    c.settle();
    c.ticks(2);
    c.settle();
    assert_eq!(
        c.replica(2).committed_configuration(),
        &configuration(&[1, 2, 3, 4], &[])
    );
    // Four voters: 1 and 4 alone are no majority any more (with three voters and a learner,
    // 1 and 2 would have been).
    c.partition(&[&[1, 4], &[2, 3]]);
    let index = c.propose(1, "needs three of four");
    c.settle();
    assert!(c.replica(4).last_index() >= index);
    assert!(c.replica(1).commit_index() < index, "two of four voters");
    c.heal();
    c.settle();
    c.ticks(4);
    assert!(c.replica(1).commit_index() >= index);
}

#[test]
fn a_change_waits_for_the_noop_and_for_the_change_before_it() {
    let mut c = cluster_with_outsiders(2);
    c.tick_until_campaign(1);
    while !c.replica(1).is_leader() {
        assert!(c.step_one(), "the election completes");
    }
    let add_4 = configuration(&[1, 2, 3], &[4]);
    assert_eq!(
        change(&mut c, 1, add_4.clone()),
        Err(Status::ConcurrentMembershipChange),
        "the no-op of the term is not committed yet"
    );
    c.settle();
    change(&mut c, 1, add_4).expect("the no-op committed");
    assert_eq!(
        change(&mut c, 1, configuration(&[1, 2, 3], &[4, 5])),
        Err(Status::ConcurrentMembershipChange),
        "the first change is not committed yet"
    );
    c.settle();
    assert_eq!(
        change(&mut c, 1, configuration(&[1, 2, 3, 4, 5], &[])),
        Err(Status::Errored),
        "two voters at once"
    );
    change(&mut c, 1, configuration(&[1, 2, 3], &[4, 5])).expect("the first one committed");
    c.settle();
    assert_eq!(
        c.replica(1).committed_configuration(),
        &configuration(&[1, 2, 3], &[4, 5])
    );
    assert_eq!(
        change(&mut c, 2, configuration(&[1, 2, 3], &[])),
        Err(Status::NodeIsNotLeader)
    );
}

#[test]
fn a_leader_that_demotes_itself_steps_down_once_the_change_commits() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    change(&mut c, 1, configuration(&[2, 3], &[1])).expect("accepted");
    c.settle();
    assert!(!c.replica(1).is_leader(), "stepped down");
    assert!(c.replica(1).is_learner());
    c.ticks(60);
    let leader = c.leader().expect("2 or 3 took over");
    assert_ne!(leader, 1);
    c.propose(leader, "after");
    c.settle();
    c.ticks(2);
    assert_eq!(c.applied_payloads(1), vec!["after"], "1 still learns");
    c.ticks(200);
    assert!(!c.replica(1).is_leader(), "a learner never campaigns");
}

#[test]
fn a_truncated_configuration_entry_gives_way_to_the_one_before() {
    let mut c = Cluster::new(5, 0);
    c.elect(1);
    for to in [3, 4, 5] {
        c.cut_one_way(1, to);
    }
    change(&mut c, 1, configuration(&[1, 2, 3, 4, 5], &[9])).expect("accepted");
    c.settle();
    assert_eq!(
        c.replica(2).configuration(),
        &configuration(&[1, 2, 3, 4, 5], &[9]),
        "in force once in the log, committed or not"
    );
    c.heal();
    c.partition(&[&[1, 2], &[3, 4, 5]]);
    c.ticks(60);
    let leader = c.leader().expect("the majority elects a leader");
    assert!([3, 4, 5].contains(&leader));
    c.propose(leader, "overwrites");
    c.settle();
    c.heal();
    c.ticks(4);
    c.settle();
    assert_eq!(
        c.replica(2).configuration(),
        &configuration(&[1, 2, 3, 4, 5], &[]),
        "the entry was truncated: the first configuration governs again"
    );
}

#[test]
fn restarts_and_compaction_keep_the_configuration_in_force() {
    let mut c = compacting_cluster_with_an_outsider();
    c.elect(1);
    change(&mut c, 1, configuration(&[1, 2, 3], &[4])).expect("added");
    c.settle();
    change(&mut c, 1, configuration(&[1, 2, 4], &[3])).expect_err("two voters change");
    change(&mut c, 1, configuration(&[1, 2, 3, 4], &[])).expect("promoted");
    c.settle();
    checkpoint(&mut c, 1);
    let four = configuration(&[1, 2, 3, 4], &[]);
    for id in 1..=4 {
        assert!(
            c.node(id).disk.entries.is_empty(),
            "node {id}: the configuration entries are compacted away"
        );
        c.crash(id);
        c.restart(id);
        assert_eq!(c.replica(id).configuration(), &four, "node {id}");
    }
    c.ticks(60);
    assert!(c.leader().is_some());
}

#[test]
fn a_snapshot_carries_the_configuration_at_its_index() {
    let mut c = compacting_cluster_with_an_outsider();
    c.elect(1);
    c.isolate(4);
    change(&mut c, 1, configuration(&[1, 2, 3], &[4])).expect("added while cut off");
    c.propose(1, "in the snapshot");
    c.settle();
    checkpoint(&mut c, 1);
    c.heal();
    c.ticks(4);
    assert_eq!(c.node(1).snapshot_required, vec![NodeId(4)]);
    c.transfer_snapshot(1, 4);
    assert_eq!(
        c.replica(4).configuration(),
        &configuration(&[1, 2, 3], &[4])
    );
    c.propose(1, "after");
    c.settle();
    c.ticks(2);
    assert_eq!(c.applied_payloads(4), vec!["in the snapshot", "after"]);
    assert_eq!(
        c.node(4).disk.floor_configuration,
        Some(configuration(&[1, 2, 3], &[4])),
        "kept with the floor"
    );
}

#[test]
fn a_sole_voter_leads_only_once_its_term_is_durable() {
    // With a learner, a leader that could forget its term in a crash would lead that term
    // again and write other entries at indices the learner holds with that term.
    let mut c = Cluster::new(1, 1);
    c.stall_disk(1, true);
    c.tick_until_campaign(1);
    c.ticks(3);
    assert_eq!(
        c.replica(1).role(),
        Role::Candidate,
        "its vote is not durable yet"
    );
    c.stall_disk(1, false);
    c.ticks(1);
    assert!(c.replica(1).is_leader());
}
