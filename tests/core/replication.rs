//! Replication: the rules of Raft paper §5.3–§5.4 and the pipeline (windows, backtracking,
//! probe/replicate, catch-up, parallel leader write).

use kommander_raft::core::{LogIndex, Message, MessageBody, NodeId, Role, Term};

use super::harness::{Cluster, Lcg, P, ids, msg, payload};

fn applied_everywhere(c: &Cluster, ids: &[u64]) -> Vec<String> {
    let first = c.applied_payloads(ids[0]);
    for &id in ids {
        assert_eq!(
            c.applied_payloads(id),
            first,
            "node {id} applied the same sequence"
        );
    }
    first
}

#[test]
fn proposals_commit_and_are_delivered_everywhere_in_order() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    for i in 0..20 {
        c.propose(1, &format!("v{i}"));
    }
    c.settle();
    c.ticks(2);
    let applied = applied_everywhere(&c, &[1, 2, 3]);
    let expected: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    assert_eq!(applied, expected);
}

/// §5.3 Leader Append-Only: while a node leads a term its log only grows.
#[test]
fn leader_append_only() {
    let mut c = Cluster::new(5, 0);
    c.elect(1);
    let term = c.replica(1).term();
    let mut previous = c.log_of(1);
    let mut rng = Lcg(3);
    for step in 0..200 {
        match rng.next(6) {
            0 => c.isolate(rng.next(4) + 2),
            1 => c.heal(),
            _ => {
                c.propose(1, &format!("x{step}"));
            }
        }
        c.tick();
        assert!(
            c.replica(1).is_leader() && c.replica(1).term() == term,
            "1 keeps leading"
        );
        let now = c.log_of(1);
        assert!(now.starts_with(&previous), "the leader's log only grows");
        previous = now;
    }
}

/// §5.3 Log Matching: a follower's divergent uncommitted tail is overwritten by the new leader.
#[test]
fn log_matching_divergent_tail_is_overwritten() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.check_quorum = false);
    c.elect(1);
    c.propose(1, "committed");
    c.settle();
    c.isolate(1);
    for i in 0..5 {
        c.propose(1, &format!("lost{i}"));
    }
    c.settle();
    c.ticks(60);
    let new_leader = (2..=3)
        .find(|&i| c.replica(i).is_leader())
        .expect("2 or 3 leads");
    c.propose(new_leader, "kept");
    c.settle();
    c.heal();
    c.ticks(5);
    c.check_log_matching();
    assert_eq!(
        c.log_of(1),
        c.log_of(new_leader),
        "old leader's tail replaced"
    );
    let applied = applied_everywhere(&c, &[1, 2, 3]);
    assert_eq!(applied, vec!["committed".to_string(), "kept".to_string()]);
}

/// §5.4 Leader Completeness: every committed entry is in every later leader's log.
#[test]
fn leader_completeness_across_leader_changes() {
    let mut c = Cluster::new(5, 0);
    let mut committed: Vec<(u64, u64)> = Vec::new();
    for round in 0..6u64 {
        c.ticks(40);
        let leader = c.leader().expect("a leader");
        let log = c.log_of(leader);
        for entry in &committed {
            assert!(
                log.contains(entry),
                "leader {leader} holds committed {entry:?}"
            );
        }
        for i in 0..5 {
            c.propose(leader, &format!("r{round}-{i}"));
        }
        c.settle();
        let commit = c.replica(leader).commit_index().0;
        committed = c
            .log_of(leader)
            .into_iter()
            .filter(|(i, _)| *i <= commit)
            .collect();
        c.crash(leader);
        c.ticks(40);
        c.restart(leader);
    }
}

/// §5.4.3 State Machine Safety: no two nodes apply different entries at one index (the
/// harness checks every delivery), here under crashes with unsynced writes lost.
#[test]
fn state_machine_safety_under_crashes() {
    for seed in 0..20 {
        let mut c = Cluster::with_config(3, 0, |cfg| cfg.seed = seed);
        let mut rng = Lcg(seed + 100);
        for step in 0..300 {
            match rng.next(20) {
                0 => {
                    let id = rng.next(3) + 1;
                    if c.node(id).up {
                        c.crash(id);
                    }
                }
                1 => {
                    let id = rng.next(3) + 1;
                    c.stall_disk(id, true);
                }
                2..=4 => {
                    // Faults heal after a while: restart the crashed, unstall the stalled.
                    let id = rng.next(3) + 1;
                    if !c.node(id).up {
                        c.restart(id);
                    }
                    c.stall_disk(id, false);
                }
                _ => {
                    if let Some(l) = c.leader() {
                        c.propose(l, &format!("{seed}-{step}"));
                    }
                }
            }
            c.tick();
        }
        for id in 1..=3 {
            c.stall_disk(id, false);
            if !c.node(id).up {
                c.restart(id);
            }
        }
        c.ticks(60);
        let applied = applied_everywhere(&c, &[1, 2, 3]);
        assert!(
            applied.len() > 20,
            "seed {seed}: the run committed work ({})",
            applied.len()
        );
    }
}

/// §5.4.2 / figure 8: an entry from an older term is not committed by counting replicas; it
/// commits only together with an entry of the leader's current term.
#[test]
fn figure_8_old_term_entries_are_not_committed_by_counting() {
    let mut c = Cluster::with_config(3, 0, |cfg| {
        cfg.check_quorum = false;
        cfg.append_entries_max = 1;
    });
    figure_8_script(&mut c);
}

/// The figure 8 script (also run with the `CommitOldTermByCounting` bug injected).
pub(crate) fn figure_8_script(c: &mut Cluster) {
    c.elect(1);
    // S1 (term 1) appends `old`; only S2 receives it and S2's ack is lost.
    c.isolate(3);
    c.cut_one_way(2, 1);
    let old = c.propose(1, "old");
    c.settle();
    assert!(c.replica(2).entry(old).is_some());
    assert!(c.replica(1).commit_index() < old);
    // S1 crashes and restarts; S2 becomes unreachable; S1 wins term 2 with S3's vote.
    c.crash(1);
    c.restart(1);
    c.heal();
    c.isolate(2);
    let new_term = c.replica(1).term().0 + 1;
    // S3 receives the old entry (backfill) but never S1's current-term no-op.
    c.campaign_with(1, |mut m: Message| {
        if let MessageBody::AppendRequest { entries, .. } = &mut m.body {
            entries.retain(|e| e.term.0 < new_term);
        }
        Some(m)
    });
    assert_eq!(c.replica(1).role(), Role::Leader);
    assert_eq!(c.replica(1).term().0, new_term);
    let on_s3 = c.replica(3).entry(old).map(|e| e.term);
    assert_eq!(
        on_s3,
        c.replica(1).entry(old).map(|e| e.term),
        "old entry on a majority"
    );
    assert!(
        c.replica(1).commit_index() < old,
        "figure 8: a majority holding an old-term entry does not commit it"
    );
    c.heal();
    c.ticks(4);
    let noop = c.replica(1).last_index();
    assert!(
        c.replica(1).commit_index() >= noop,
        "commits with the current-term no-op"
    );
    assert_eq!(c.applied_payloads(3), vec!["old".to_string()]);
}

/// Fast backtracking: a long divergent tail is skipped term by term, not entry by entry.
#[test]
fn fast_backtracking_needs_few_round_trips() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.check_quorum = false);
    c.elect(1);
    c.propose(1, "base");
    c.settle();
    c.isolate(1);
    for i in 0..200 {
        c.propose(1, &format!("stale{i}"));
    }
    c.settle();
    c.ticks(60);
    let leader = (2..=3)
        .find(|&i| c.replica(i).is_leader())
        .expect("new leader");
    for i in 0..50 {
        c.propose(leader, &format!("new{i}"));
    }
    c.settle();
    c.heal();
    c.clear_trace();
    c.ticks(3);
    let rejections = c
        .trace
        .iter()
        .filter(|(name, from, _)| name == "AppendResponse" && *from == NodeId(1))
        .count();
    assert!(
        rejections < 10,
        "converged in {rejections} answers, not one per entry"
    );
    assert_eq!(c.log_of(1), c.log_of(leader));
}

#[test]
fn inflight_window_bounds_unacknowledged_appends() {
    let mut c = Cluster::with_config(3, 0, |cfg| {
        cfg.inflight_messages_max = 2;
        cfg.append_entries_max = 1;
    });
    c.elect(1);
    c.stall_disk(2, true);
    c.clear_trace();
    for i in 0..10 {
        c.propose(1, &format!("w{i}"));
        c.settle();
    }
    let to_two = c
        .sent("AppendRequest")
        .iter()
        .filter(|(_, to)| *to == 2)
        .count();
    assert!(to_two <= 2, "window of 2 messages: sent {to_two}");
    c.stall_disk(2, false);
    c.ticks(4);
    assert_eq!(
        c.log_of(2),
        c.log_of(1),
        "follower caught up after its disk recovered"
    );
}

/// The leader's own write counts like a follower ack: with its disk stalled, the followers
/// still form a quorum; and followers acknowledge only durable entries.
#[test]
fn leader_write_runs_in_parallel_and_acks_follow_durability() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.stall_disk(1, true);
    let index = c.propose(1, "parallel");
    c.settle();
    assert!(
        c.replica(1).commit_index() >= index,
        "followers' acks commit it"
    );
    assert!(
        c.applied_payloads(1).is_empty(),
        "the leader delivers only what it holds durably"
    );
    c.stall_disk(1, false);
    c.settle();
    assert_eq!(c.applied_payloads(1), vec!["parallel".to_string()]);

    c.stall_disk(2, true);
    c.stall_disk(3, true);
    let index = c.propose(1, "needs-quorum");
    c.settle();
    assert!(
        c.replica(1).commit_index() < index,
        "no follower ack before durability"
    );
    assert!(c.replica(1).persisted_index() >= index);
    c.stall_disk(2, false);
    c.settle();
    assert!(c.replica(1).commit_index() >= index);
}

#[test]
fn lagging_follower_catches_up_through_probe_and_replicate() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.append_entries_max = 16);
    c.elect(1);
    c.crash(3);
    for i in 0..500 {
        c.propose(1, &format!("e{i}"));
    }
    c.settle();
    c.restart(3);
    c.ticks(10);
    assert_eq!(c.log_of(3), c.log_of(1));
    assert_eq!(c.applied_payloads(3).len(), 500);
    let view = c.replica(1).progress(NodeId(3)).expect("progress");
    assert_eq!(view.match_index, c.replica(1).last_index());
}

#[test]
fn lost_appends_are_resent() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.propose(1, "a");
    c.settle();
    // Drop everything going to 3 for one batch.
    c.propose(1, "b");
    c.settle_filtered(|m| m.to != NodeId(3));
    assert!(c.replica(3).last_index() < c.replica(1).last_index());
    c.ticks(6);
    assert_eq!(c.log_of(3), c.log_of(1));
    assert_eq!(
        c.applied_payloads(3),
        vec!["a".to_string(), "b".to_string()]
    );
}

#[test]
fn a_follower_that_lost_its_log_is_found_again_on_an_idle_partition() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    for k in 0..5 {
        c.propose(1, &format!("e{k}"));
    }
    c.settle();
    let before = c.log_of(1);
    assert_eq!(c.log_of(3), before);

    // Node 3's disk is replaced: nothing durable left, no new entry to replicate after.
    c.crash(3);
    let node = c.node_mut(3);
    node.disk = super::harness::Disk::default();
    node.applied.clear();
    node.applied_index = kommander_raft::core::LogIndex::ZERO;
    c.restart(3);
    assert!(c.log_of(3).is_empty());

    // A heartbeat's commit index reaches beyond its log: it says where its log ends, the
    // leader probes from there and sends the entries again.
    c.ticks(4);
    c.settle();
    assert_eq!(c.log_of(3), before);
    assert_eq!(c.applied_payloads(3), c.applied_payloads(1));
}

/// Follower `from`'s acknowledgement to leader 1, in `term`, that it holds the log up to
/// `index`.
fn acknowledged(from: u64, term: u64, index: LogIndex) -> Message {
    msg(
        from,
        1,
        term,
        MessageBody::AppendResponse {
            success: true,
            index,
            hint_index: LogIndex::ZERO,
            hint_term: Term(0),
        },
    )
}

/// A Ready awaits its durability only when it holds entries or a term not yet durable: the
/// leader's commit Ready does not (it has a commit index to write and nothing more), and a
/// runtime that never acknowledges such a Ready (the shard's WalScheduler does not) loses
/// nothing, the next acknowledgement covering it.
#[test]
fn only_a_ready_with_entries_or_a_new_term_awaits_its_durability() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.settle();
    let term = c.replica(1).term().0;
    for (round, data) in ["a", "b"].into_iter().enumerate() {
        let ticket = c.ticket();
        let leader = c.replica_mut(1);
        let index = leader.propose(ticket, true, payload(data)).expect("leads");
        let proposal = leader.ready();
        assert!(proposal.durability_awaited, "round {round}: entries");
        leader.persisted(proposal.number);
        leader.step(acknowledged(2, term, index)).expect("valid");
        let commit = leader.ready();
        assert_eq!(
            leader.commit_index(),
            index,
            "round {round}: a quorum holds it"
        );
        assert_eq!(commit.outcomes.len(), 1, "round {round}: answered");
        assert!(
            commit.must_persist(),
            "round {round}: the commit index is written"
        );
        assert!(
            !commit.durability_awaited,
            "round {round}: nothing in the commit Ready waits for the disk"
        );
        // Its durability is never acknowledged: the next round commits all the same.
    }
}

/// A Ready with a term the replica has not seen durable awaits its durability (a vote must not
/// count before its term is on disk); once acknowledged, the same term awaits nothing more.
#[test]
fn a_ready_with_a_new_term_awaits_its_durability_once() {
    use kommander_raft::core::{DurableState, Replica, ReplicaConfig};
    let config = ReplicaConfig::new(NodeId(1), P, ids(3));
    let mut replica = Replica::new(config, DurableState::default()).expect("valid");
    let ask = |from: u64| {
        msg(
            from,
            1,
            3,
            MessageBody::VoteRequest {
                last_log_index: LogIndex::ZERO,
                last_log_term: Term(0),
                configuration_version: 0,
                transfer: false,
            },
        )
    };
    replica.step(ask(2)).expect("valid");
    let voted = replica.ready();
    assert_eq!(voted.hard_state.map(|h| h.term), Some(Term(3)));
    assert!(voted.durability_awaited, "term 3 is not durable yet");
    replica.persisted(voted.number);
    // Another candidate of the same term: refused, and nothing new waits for the disk.
    replica.step(ask(3)).expect("valid");
    let refused = replica.ready();
    assert!(!refused.durability_awaited, "term 3 is durable");
}

/// The commit rule counts a majority of the voters, on the stack for a few voters and in a
/// vector for many: with 3, 5 and 9 voters (nine are more than it sorts on the stack) an
/// entry commits at the acknowledgement that makes a majority hold it, not one before.
#[test]
fn an_entry_commits_at_the_acknowledgement_that_makes_a_majority() {
    for voters in [3_u64, 5, 9] {
        let mut c = Cluster::new(voters, 0);
        c.elect(1);
        c.settle();
        let term = c.replica(1).term().0;
        let ticket = c.ticket();
        let leader = c.replica_mut(1);
        let before = leader.commit_index();
        let index = leader.propose(ticket, true, payload("x")).expect("leads");
        let proposal = leader.ready();
        leader.persisted(proposal.number);
        let majority = voters / 2 + 1;
        // The leader holds it; followers 2.. acknowledge one by one.
        for follower in 2..=majority {
            assert_eq!(
                leader.commit_index(),
                before,
                "{voters} voters: {} hold it",
                follower - 1
            );
            leader
                .step(acknowledged(follower, term, index))
                .expect("valid");
        }
        assert_eq!(
            leader.commit_index(),
            index,
            "{voters} voters: a majority holds it"
        );
    }
}
