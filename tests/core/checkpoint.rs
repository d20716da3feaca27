//! Checkpoints: refusal while a two-phase proposal is open, compaction floor, snapshot need.

use bytes::Bytes;
use kommander_raft::core::{
    Configuration, Floor, LogIndex, Message, MessageBody, NodeId, PartitionId, ProgressState,
    SnapshotChunk, SnapshotOutcome, Status, Term,
};

use super::harness::{Cluster, payload};

#[test]
fn checkpoint_is_refused_while_a_two_phase_proposal_is_open() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    let held = c.ticket();
    c.replica_mut(1)
        .propose(held, false, payload("open"))
        .expect("accepted");
    c.settle();
    let ticket = c.ticket();
    assert_eq!(
        c.replica_mut(1).propose_checkpoint(ticket),
        Err(Status::ActiveProposal)
    );
    c.replica_mut(1).rollback_proposal(held).expect("rollback");
    c.settle();
    assert!(c.replica_mut(1).propose_checkpoint(ticket).is_ok());
}

#[test]
fn committed_applied_checkpoint_becomes_the_compaction_floor_everywhere() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    for i in 0..10 {
        c.propose(1, &format!("v{i}"));
    }
    let ticket = c.ticket();
    let cp = c
        .replica_mut(1)
        .propose_checkpoint(ticket)
        .expect("checkpoint");
    c.propose(1, "after");
    c.settle();
    c.ticks(2);
    for id in 1..=3 {
        assert_eq!(c.replica(id).compaction_floor(), cp, "node {id} compacted");
        assert_eq!(c.node(id).disk.floor, cp, "the Ready told node {id}'s disk");
        assert!(c.replica(id).entry(cp).is_none());
        assert!(c.replica(id).entry(cp.next()).is_some());
    }
    // A restart from the compacted disk works and delivers nothing twice.
    c.crash(2);
    c.restart(2);
    c.ticks(4);
    assert_eq!(c.applied_payloads(2).len(), 11);
    assert_eq!(c.replica(2).compaction_floor(), cp);
}

#[test]
fn follower_behind_the_floor_is_reported_as_needing_a_snapshot() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.compaction_retain_entries_max = 0);
    c.elect(1);
    c.crash(3);
    for i in 0..5 {
        c.propose(1, &format!("v{i}"));
    }
    let ticket = c.ticket();
    c.replica_mut(1)
        .propose_checkpoint(ticket)
        .expect("checkpoint");
    c.settle();
    c.ticks(2);
    assert!(c.replica(1).compaction_floor() > LogIndex(1));
    c.restart(3);
    c.ticks(6);
    assert!(
        c.node(1).snapshot_required.contains(&NodeId(3)),
        "reported once"
    );
    assert_eq!(
        c.node(1).snapshot_required.len(),
        1,
        "not repeated every round"
    );
    let view = c.replica(1).progress(NodeId(3)).expect("progress");
    assert_eq!(view.state, ProgressState::SnapshotRequired);
    // The runtime transfers the state; replication resumes above the floor.
    c.propose(1, "after-snapshot");
    c.settle();
    c.transfer_snapshot(1, 3);
    c.ticks(2);
    assert_eq!(c.log_of(3), c.log_of(1));
    assert_eq!(c.applied_payloads(3), c.applied_payloads(1));
    assert_eq!(c.node(3).disk.floor, c.replica(1).compaction_floor());
    let view = c.replica(1).progress(NodeId(3)).expect("progress");
    assert_eq!(view.state, ProgressState::Replicate);
    // And it survives a restart from its (compacted) disk.
    c.crash(3);
    c.restart(3);
    c.ticks(2);
    assert_eq!(c.applied_payloads(3), c.applied_payloads(1));
}

#[test]
fn failed_snapshot_transfer_is_reported_again() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.compaction_retain_entries_max = 0);
    c.elect(1);
    c.crash(3);
    c.propose(1, "v");
    let ticket = c.ticket();
    c.replica_mut(1)
        .propose_checkpoint(ticket)
        .expect("checkpoint");
    c.settle();
    c.ticks(2);
    c.restart(3);
    c.ticks(4);
    assert_eq!(c.node(1).snapshot_required, vec![NodeId(3)]);
    assert!(c.replica(1).awaits_snapshot(NodeId(3)));
    assert!(
        !c.replica(1).awaits_snapshot(NodeId(2)),
        "an in-sync follower"
    );
    c.replica_mut(1).report_snapshot_failure(NodeId(3));
    assert!(!c.replica(1).awaits_snapshot(NodeId(3)), "probed again");
    c.ticks(4);
    assert_eq!(c.node(1).snapshot_required, vec![NodeId(3), NodeId(3)]);
    assert!(c.replica(1).awaits_snapshot(NodeId(3)));
    assert!(
        !c.replica(3).awaits_snapshot(NodeId(1)),
        "a follower awaits nothing"
    );
    let stale = Term(c.replica(3).term().0 - 1);
    assert_eq!(
        c.replica_mut(3)
            .install_snapshot(NodeId(1), stale, floor(2, stale), (0, 0)),
        Err(Status::LeaderInOldTerm)
    );
}

/// Reference checklist #46: a leader change on a compacted partition with in-sync followers
/// sends no snapshot and probes from the log tail, not from index 1.
#[test]
fn leader_change_after_compaction_needs_no_snapshot() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    for i in 0..5 {
        c.propose(1, &format!("v{i}"));
    }
    let ticket = c.ticket();
    c.replica_mut(1)
        .propose_checkpoint(ticket)
        .expect("checkpoint");
    c.propose(1, "after");
    c.settle();
    c.ticks(2);
    let floor = c.replica(2).compaction_floor();
    assert!(floor > LogIndex(1));
    c.replica_mut(1)
        .transfer_leadership(NodeId(2))
        .expect("transfer");
    c.clear_trace();
    c.ticks(4);
    assert_eq!(c.leader(), Some(2));
    assert!(
        c.node(2).snapshot_required.is_empty(),
        "no snapshot for in-sync followers"
    );
    let rejections = c
        .trace
        .iter()
        .filter(|(name, _, to)| name == "AppendResponse" && *to == NodeId(2))
        .count();
    assert!(
        rejections <= 4,
        "a few answers, no walk back to index 1: {rejections}"
    );
    c.propose(2, "new leader");
    c.settle();
    c.ticks(2);
    for id in 1..=3 {
        assert_eq!(
            c.applied_payloads(id).last().map(String::as_str),
            Some("new leader")
        );
    }
}

#[test]
fn leader_retains_entries_below_the_checkpoint_for_a_slightly_lagging_follower() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.compaction_retain_entries_max = 100);
    c.elect(1);
    c.crash(3);
    for i in 0..10 {
        c.propose(1, &format!("v{i}"));
    }
    let ticket = c.ticket();
    let cp = c
        .replica_mut(1)
        .propose_checkpoint(ticket)
        .expect("checkpoint");
    c.settle();
    c.ticks(2);
    assert_eq!(c.replica(1).checkpoint_floor(), cp);
    assert_eq!(c.node(1).disk.floor, cp, "the durable log is compacted");
    assert!(
        c.replica(1).compaction_floor() < cp,
        "memory keeps what 3 still needs"
    );
    assert_eq!(
        c.replica(2).compaction_floor(),
        cp,
        "a follower keeps nothing extra"
    );
    c.restart(3);
    c.ticks(6);
    assert!(
        c.node(1).snapshot_required.is_empty(),
        "caught up from the log, no snapshot"
    );
    assert_eq!(c.applied_payloads(3), c.applied_payloads(1));
    assert_eq!(
        c.replica(1).compaction_floor(),
        cp,
        "released once 3 caught up"
    );
}

#[test]
fn retention_is_bounded() {
    let mut c = Cluster::with_config(3, 0, |cfg| cfg.compaction_retain_entries_max = 3);
    c.elect(1);
    c.crash(3);
    for i in 0..10 {
        c.propose(1, &format!("v{i}"));
    }
    let ticket = c.ticket();
    let cp = c
        .replica_mut(1)
        .propose_checkpoint(ticket)
        .expect("checkpoint");
    c.settle();
    c.ticks(2);
    assert_eq!(c.replica(1).compaction_floor(), LogIndex(cp.0 - 3));
    c.restart(3);
    c.ticks(6);
    assert_eq!(
        c.node(1).snapshot_required,
        vec![NodeId(3)],
        "too far behind: snapshot"
    );
}

/// Raft §7: a follower that holds the snapshot's last entry with the snapshot's term keeps the
/// entries after it (durably too: they survive a restart); on a conflict it discards its log.
#[test]
fn an_installed_snapshot_keeps_a_matching_suffix_and_discards_a_conflicting_log() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    // Node 3 receives every entry but never learns that they committed.
    for i in 0..4 {
        c.propose(1, &format!("v{i}"));
    }
    c.settle_mapped(|mut m| {
        if m.to == NodeId(3) {
            match &mut m.body {
                MessageBody::AppendRequest { commit, .. }
                | MessageBody::Heartbeat { commit, .. } => *commit = LogIndex::ZERO,
                _ => {}
            }
        }
        Some(m)
    });
    let term = c.replica(1).term();
    let log = c.log_of(3);
    assert_eq!(log.len(), 5, "the no-op and four entries: {log:?}");
    assert_eq!(c.replica(3).commit_index(), LogIndex::ZERO);

    c.replica_mut(3)
        .install_snapshot(NodeId(1), term, floor(3, term), (0, 0))
        .expect("install");
    assert_eq!(c.log_of(3), log[3..].to_vec());
    assert_eq!(
        (c.replica(3).compaction_floor(), c.replica(3).commit_index()),
        (LogIndex(3), LogIndex(3))
    );
    assert_eq!(c.replica(3).delivered_index(), LogIndex(3));
    c.settle();
    c.crash(3);
    c.restart(3);
    assert_eq!(c.log_of(3), log[3..].to_vec(), "the suffix is durable");

    // A snapshot from a newer term whose last entry conflicts: the log goes.
    let newer = Term(term.0 + 1);
    c.replica_mut(3)
        .install_snapshot(NodeId(2), newer, floor(4, newer), (0, 0))
        .expect("install");
    assert!(c.log_of(3).is_empty());
    assert_eq!(
        (c.replica(3).last_index(), c.replica(3).term_at(LogIndex(4))),
        (LogIndex(4), Some(newer))
    );
    c.process(NodeId(3));
    c.crash(3);
    c.restart(3);
    assert!(c.log_of(3).is_empty());
    assert_eq!(c.replica(3).last_index(), LogIndex(4));
}

/// A snapshot the application imported before a crash lost its boundary: the node restarts
/// with its application ahead of its log, delivers nothing up to that point again, and delivers
/// what follows once it commits.
#[test]
fn an_application_ahead_of_its_log_resumes_delivery_after_its_durable_index() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.isolate(3);
    for i in 0..4 {
        c.propose(1, &format!("v{i}"));
    }
    c.settle();
    let through = c.replica(1).commit_index();
    assert!(c.replica(3).last_index() < through);
    c.crash(3);
    let state: Vec<_> = c
        .node(1)
        .applied
        .iter()
        .filter(|e| e.index <= through)
        .cloned()
        .collect();
    c.node_mut(3).applied = state;
    c.node_mut(3).applied_index = through;
    c.restart(3);
    assert_eq!(c.replica(3).delivered_index(), through);
    c.heal();
    c.propose(1, "after");
    c.settle();
    c.ticks(4);
    assert_eq!(c.applied_payloads(3), c.applied_payloads(1));
    assert_eq!(
        c.applied_payloads(3).last().map(String::as_str),
        Some("after")
    );
}

fn chunk(from: u64, to: u64, term: Term, seq: u32) -> Message {
    Message {
        partition: PartitionId(1),
        from: NodeId(from),
        to: NodeId(to),
        term,
        body: MessageBody::SnapshotChunk(Box::new(SnapshotChunk {
            session: 9,
            seq,
            last_index: LogIndex(1),
            last_term: term,
            configuration: three_voters(),
            crc: 0,
            digest: None,
            marks: Bytes::new(),
            data: Bytes::from_static(b"state"),
        })),
    }
}

/// Snapshot chunks and acknowledgements pass the core's term rules and reach the runtimes:
/// a chunk of the current term reaches the follower's runtime (and counts as hearing from the
/// leader), one of a newer term makes a candidate a follower of its sender, a stale one is
/// answered with a refusal that tells its sender the newer term, and an acknowledgement of
/// the leader's term reaches the leader's runtime.
#[test]
fn snapshot_messages_pass_the_term_rules_and_reach_the_runtime() {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c.settle();
    let term = c.replica(1).term();
    c.replica_mut(3).step(chunk(1, 3, term, 0)).expect("step");
    c.process(NodeId(3));
    assert_eq!(c.node(3).snapshot_messages, vec![chunk(1, 3, term, 0)]);

    let ack = Message {
        partition: PartitionId(1),
        from: NodeId(3),
        to: NodeId(1),
        term,
        body: MessageBody::SnapshotAck {
            session: 9,
            seq: 0,
            outcome: SnapshotOutcome::Received,
        },
    };
    c.replica_mut(1).step(ack.clone()).expect("step");
    c.process(NodeId(1));
    assert_eq!(c.node(1).snapshot_messages, vec![ack]);

    // A chunk of a newer term: the receiver follows its sender.
    let newer = Term(term.0 + 1);
    c.replica_mut(3).step(chunk(2, 3, newer, 0)).expect("step");
    assert_eq!(
        (c.replica(3).term(), c.replica(3).soft_state().leader),
        (newer, Some(NodeId(2)))
    );
    c.process(NodeId(3));
    assert_eq!(c.node(3).snapshot_messages.len(), 2);

    // Now the first leader's chunk is stale: refused, with the newer term.
    c.clear_trace();
    c.replica_mut(3).step(chunk(1, 3, term, 4)).expect("step");
    c.process(NodeId(3));
    assert_eq!(
        c.node(3).snapshot_messages.len(),
        2,
        "nothing reached the runtime"
    );
    let refusal = c
        .queue
        .iter()
        .find(|m| m.from == NodeId(3) && m.to == NodeId(1))
        .expect("an answer to the stale leader");
    assert_eq!(refusal.term, newer);
    assert_eq!(
        refusal.body,
        MessageBody::SnapshotAck {
            session: 9,
            seq: 4,
            outcome: SnapshotOutcome::Refused,
        }
    );
}

/// The three voters of the scripted clusters.
fn three_voters() -> Configuration {
    Configuration::new(vec![NodeId(1), NodeId(2), NodeId(3)], Vec::new()).expect("valid")
}

/// A snapshot's floor at `index` of `term`, with the three voters in force.
fn floor(index: u64, term: Term) -> Floor {
    Floor {
        index: LogIndex(index),
        term,
        configuration: three_voters(),
    }
}
