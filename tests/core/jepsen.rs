//! One scenario per finding of the C# original's Jepsen suite (kommander-behaviour.md §7).
//! The causes there (unanchored live replication, per-proposal quorums, an index allocator)
//! do not exist here; these tests pin the symptoms down so they cannot appear.

use std::collections::BTreeSet;

use kommander_raft::core::{EntryKind, LogIndex, MessageBody, Status, Ticket};

use super::harness::{Cluster, Lcg, payload};

/// Finding 1: the leader skipped some of its own committed entries when a later proposal
/// reached quorum first. Here the first proposal's appends are lost, the second's arrive.
#[test]
fn jepsen_1_leader_delivers_in_log_order_when_a_later_proposal_gets_acks_first() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let first = c.propose(1, "first");
    c.settle_filtered(|m| match &m.body {
        MessageBody::AppendRequest { entries, .. } => entries.iter().all(|e| e.index != first),
        _ => true,
    });
    c.propose(1, "second");
    c.settle();
    c.ticks(4);
    for id in 1..=3 {
        assert_eq!(c.applied_payloads(id), vec!["first", "second"], "node {id}");
    }
    let indices: Vec<LogIndex> = c.node(1).outcomes.iter().map(|o| o.index).collect();
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "outcomes in log order: {indices:?}"
    );
}

/// Finding 2: an acknowledged append was absent with another value at its acknowledged index.
/// Every `Success` outcome's (index, ticket) must be what every replica delivers at that index.
#[test]
fn jepsen_2_acknowledged_index_holds_the_acknowledged_entry() {
    for seed in 0..15 {
        let mut c = Cluster::with_config(5, 0, |cfg| cfg.seed = seed);
        let mut rng = Lcg(seed + 7);
        for step in 0..300 {
            match rng.next(25) {
                0 => c.isolate(rng.next(5) + 1),
                1 | 6 | 7 => c.heal(),
                5 => {
                    let pivot = rng.next(5) + 1;
                    let minority = [pivot, pivot % 5 + 1];
                    let majority: Vec<u64> = (1..=5).filter(|i| !minority.contains(i)).collect();
                    c.partition(&[&minority, &majority]);
                }
                2 => {
                    let id = rng.next(5) + 1;
                    if c.node(id).up {
                        c.crash(id);
                    }
                }
                3 | 4 => {
                    let id = rng.next(5) + 1;
                    if !c.node(id).up {
                        c.restart(id);
                    }
                }
                _ => {
                    if let Some(l) = c.leader() {
                        c.propose(l, &format!("{seed}-{step}"));
                    }
                }
            }
            c.tick();
        }
        c.heal();
        for id in 1..=5 {
            if !c.node(id).up {
                c.restart(id);
            }
        }
        c.ticks(60);
        let mut acknowledged = 0;
        for id in 1..=5 {
            for outcome in c.node(id).outcomes.clone() {
                if outcome.status != Status::Success || outcome.kind != EntryKind::Normal {
                    continue;
                }
                acknowledged += 1;
                for other in 1..=5 {
                    let at = c
                        .node(other)
                        .applied
                        .iter()
                        .find(|e| e.index == outcome.index);
                    assert_eq!(
                        at.map(|e| e.ticket),
                        Some(outcome.ticket),
                        "seed {seed}: node {other} holds the acknowledged entry at {}",
                        outcome.index
                    );
                }
            }
        }
        assert!(
            acknowledged >= 20,
            "seed {seed}: non-vacuous ({acknowledged} acknowledged)"
        );
    }
}

/// Finding 3: follower write backpressure threw instead of answering. In the core a slow
/// follower gets bounded traffic (in-flight window) and callers get a typed
/// `ProposalQueueFull` once the uncommitted limit is reached; everything converges after.
#[test]
fn jepsen_3_slow_followers_get_bounded_traffic_and_typed_backpressure() {
    let mut c = Cluster::with_config(3, 0, |cfg| {
        cfg.uncommitted_entries_max = 50;
        cfg.inflight_messages_max = 4;
        cfg.append_entries_max = 4;
    });
    c.elect(1);
    c.stall_disk(2, true);
    c.stall_disk(3, true);
    c.clear_trace();
    let mut accepted = 0;
    let status = loop {
        let ticket = c.ticket();
        match c.replica_mut(1).propose(ticket, true, payload("load")) {
            Ok(_) => accepted += 1,
            Err(status) => break status,
        }
        c.settle();
    };
    assert_eq!(status, Status::ProposalQueueFull);
    assert!(accepted <= 50);
    let appends = c
        .sent("AppendRequest")
        .iter()
        .filter(|(_, to)| *to == 2)
        .count();
    assert!(
        appends <= 4,
        "window bounds traffic to a follower that never acks: {appends}"
    );
    c.stall_disk(2, false);
    c.stall_disk(3, false);
    c.ticks(6);
    assert_eq!(c.applied_payloads(2).len(), accepted);
    let ticket = c.ticket();
    assert!(
        c.replica_mut(1)
            .propose(ticket, true, payload("more"))
            .is_ok()
    );
}

/// Finding 4: a new leader reissued indices inside a band it had just committed through its
/// promotion barrier. Here the old leader commits a band, dies before anyone learns the commit
/// index; the new leader's barrier commits the band and new writes follow it.
#[test]
fn jepsen_4_no_index_is_reissued_after_a_leader_change() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let band: Vec<LogIndex> = (0..5).map(|i| c.propose(1, &format!("band{i}"))).collect();
    // Followers receive and acknowledge the band; the leader commits it and dies before it
    // tells anyone (no further appends or heartbeats leave it).
    c.settle();
    assert!(c.replica(1).commit_index() >= band[4]);
    assert!(
        c.replica(2).commit_index() < band[4],
        "followers do not know the commit yet"
    );
    let acknowledged: Vec<(LogIndex, Ticket)> = c
        .node(1)
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Success)
        .map(|o| (o.index, o.ticket))
        .collect();
    c.crash(1);
    c.ticks(60);
    let leader = c.leader().expect("new leader");
    let fresh: Vec<LogIndex> = (0..5)
        .map(|i| c.propose(leader, &format!("new{i}")))
        .collect();
    assert!(fresh[0] > band[4], "new indices follow the inherited band");
    c.settle();
    c.restart(1);
    c.ticks(10);
    for id in 1..=3 {
        let applied = &c.node(id).applied;
        let unique: BTreeSet<LogIndex> = applied.iter().map(|e| e.index).collect();
        assert_eq!(
            unique.len(),
            applied.len(),
            "node {id}: every index delivered once"
        );
        for (index, ticket) in &acknowledged {
            let at = applied.iter().find(|e| e.index == *index).map(|e| e.ticket);
            assert_eq!(
                at,
                Some(*ticket),
                "node {id}: acknowledged entry kept at {index}"
            );
        }
        assert_eq!(c.applied_payloads(id).len(), 10);
    }
}

/// Finding 5: followers stopped delivering committed entries once writes stopped, and
/// proposals whose first send was lost stayed unresolved. Heartbeats carry the commit index
/// and re-probe lagging followers, so both resolve without further writes.
#[test]
fn jepsen_5_followers_deliver_after_writes_stop() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    for i in 0..10 {
        c.propose(1, &format!("w{i}"));
    }
    c.settle();
    assert!(
        c.replica(2).commit_index() < c.replica(1).commit_index(),
        "commit not yet known"
    );
    c.ticks(2);
    for id in 2..=3 {
        assert_eq!(
            c.applied_payloads(id),
            c.applied_payloads(1),
            "node {id} delivered all"
        );
    }
    // A proposal whose every append is lost still commits, with no further writes.
    let lost = c.propose(1, "lost-once");
    c.settle_filtered(|m| !matches!(m.body, MessageBody::AppendRequest { .. }));
    assert!(c.replica(1).commit_index() < lost);
    c.ticks(6);
    assert!(c.replica(1).commit_index() >= lost);
    for id in 1..=3 {
        assert_eq!(
            c.applied_payloads(id).last().map(String::as_str),
            Some("lost-once")
        );
    }
}
