//! Kommander's two-phase write model: held proposals, Commit and Rollback markers, strict
//! log-order delivery.

use kommander_raft::core::{EntryKind, NodeId, Status, Ticket};

use super::harness::{Cluster, payload};

fn cluster() -> Cluster {
    let mut c = Cluster::new(3, 0);
    c.elect(1);
    c
}

fn propose_held(c: &mut Cluster, data: &str) -> Ticket {
    let ticket = c.ticket();
    c.replica_mut(1)
        .propose(ticket, false, payload(data))
        .expect("leader accepts");
    c.settle();
    ticket
}

fn all_applied(c: &mut Cluster) -> Vec<Vec<String>> {
    c.ticks(2);
    (1..=3).map(|i| c.applied_payloads(i)).collect()
}

#[test]
fn held_proposal_is_not_delivered_until_committed() {
    let mut c = cluster();
    let ticket = propose_held(&mut c, "held");
    assert!(
        all_applied(&mut c).iter().all(Vec::is_empty),
        "raft-committed but held"
    );
    let outcome = c
        .node(1)
        .outcomes
        .iter()
        .find(|o| o.ticket == ticket)
        .copied();
    assert_eq!(
        outcome.map(|o| o.status),
        Some(Status::Success),
        "proposal completed"
    );
    c.replica_mut(1).commit_proposal(ticket).expect("commit");
    c.settle();
    for applied in all_applied(&mut c) {
        assert_eq!(applied, vec!["held".to_string()]);
    }
    let commit = c
        .node(1)
        .outcomes
        .iter()
        .find(|o| o.kind == EntryKind::Commit)
        .copied();
    assert_eq!(
        commit.map(|o| (o.ticket, o.status)),
        Some((ticket, Status::Success))
    );
}

#[test]
fn rolled_back_proposal_is_never_delivered() {
    let mut c = cluster();
    let ticket = propose_held(&mut c, "doomed");
    c.propose(1, "after");
    c.settle();
    c.replica_mut(1)
        .rollback_proposal(ticket)
        .expect("rollback");
    c.settle();
    for applied in all_applied(&mut c) {
        assert_eq!(
            applied,
            vec!["after".to_string()],
            "doomed skipped, later entry delivered"
        );
    }
}

#[test]
fn a_held_proposal_holds_everything_behind_it() {
    let mut c = cluster();
    let ticket = propose_held(&mut c, "first");
    c.propose(1, "second");
    c.propose(1, "third");
    c.settle();
    assert!(
        all_applied(&mut c).iter().all(Vec::is_empty),
        "strict log order"
    );
    c.replica_mut(1).commit_proposal(ticket).expect("commit");
    c.settle();
    for applied in all_applied(&mut c) {
        assert_eq!(applied, vec!["first", "second", "third"]);
    }
}

#[test]
fn commit_and_rollback_conflicts_and_idempotency() {
    let mut c = cluster();
    let a = propose_held(&mut c, "a");
    let first = c.replica_mut(1).commit_proposal(a).expect("commit");
    assert_eq!(
        c.replica_mut(1).commit_proposal(a),
        Ok(first),
        "commit twice: same marker"
    );
    assert_eq!(
        c.replica_mut(1).rollback_proposal(a),
        Err(Status::Errored),
        "after commit"
    );
    let b = propose_held(&mut c, "b");
    let b_marker = c.replica_mut(1).rollback_proposal(b).expect("rollback");
    assert_eq!(
        c.replica_mut(1).commit_proposal(b),
        Err(Status::Errored),
        "after rollback"
    );
    assert_eq!(
        c.replica_mut(1).commit_proposal(Ticket(999_999)),
        Err(Status::ProposalNotFound)
    );
    assert_eq!(
        c.replica_mut(2).commit_proposal(a),
        Err(Status::NodeIsNotLeader)
    );
    c.settle();
    // Delivered: asked again (its answer lost), the same answer, from any later leader too.
    assert_eq!(
        c.replica_mut(1).commit_proposal(a),
        Ok(first),
        "commit again after delivery"
    );
    assert_eq!(
        c.replica_mut(1).rollback_proposal(a),
        Err(Status::Errored),
        "rollback after a delivered commit"
    );
    assert_eq!(c.replica_mut(1).rollback_proposal(b), Ok(b_marker));
    c.settle();
    c.crash(1);
    c.ticks(60);
    let leader = c.leader().expect("new leader");
    assert_eq!(
        c.replica_mut(leader).commit_proposal(a),
        Ok(first),
        "a new leader remembers it too"
    );
}

#[test]
fn delivered_resolutions_are_remembered_up_to_resolved_tickets_max() {
    let mut c = Cluster::with_config(3, 0, |config| config.resolved_tickets_max = 1);
    c.elect(1);
    let a = propose_held(&mut c, "a");
    c.replica_mut(1).commit_proposal(a).expect("commit a");
    let b = propose_held(&mut c, "b");
    let b_marker = c.replica_mut(1).commit_proposal(b).expect("commit b");
    c.settle();
    assert_eq!(c.replica_mut(1).commit_proposal(b), Ok(b_marker));
    assert_eq!(
        c.replica_mut(1).commit_proposal(a),
        Err(Status::ProposalNotFound),
        "beyond the newest one"
    );
}

#[test]
fn commit_before_the_proposal_is_committed_is_refused() {
    let mut c = cluster();
    c.stall_disk(2, true);
    c.stall_disk(3, true);
    let ticket = c.ticket();
    c.replica_mut(1)
        .propose(ticket, false, payload("slow"))
        .expect("accepted");
    c.settle();
    assert_eq!(
        c.replica_mut(1).commit_proposal(ticket),
        Err(Status::Errored)
    );
    assert_eq!(
        c.replica_mut(1).propose(ticket, false, payload("again")),
        Err(Status::ActiveProposal),
        "a tracked ticket is not reused"
    );
}

#[test]
fn a_new_leader_can_resolve_a_ticket_proposed_by_the_old_one() {
    let mut c = cluster();
    let ticket = propose_held(&mut c, "cross-term");
    c.crash(1);
    c.ticks(60);
    let leader = c.leader().expect("new leader");
    assert_ne!(leader, 1);
    c.replica_mut(leader)
        .commit_proposal(ticket)
        .expect("new leader knows the ticket");
    c.settle();
    c.restart(1);
    c.ticks(10);
    for id in 1..=3 {
        assert_eq!(
            c.applied_payloads(id),
            vec!["cross-term".to_string()],
            "node {id}"
        );
    }
}

#[test]
fn leadership_loss_reports_pending_operations_as_failed() {
    let mut c = cluster();
    c.isolate(1);
    let ticket = c.ticket();
    c.replica_mut(1)
        .propose(ticket, true, payload("orphan"))
        .expect("accepted");
    c.settle();
    c.ticks(60);
    let outcome = c
        .node(1)
        .outcomes
        .iter()
        .find(|o| o.ticket == ticket)
        .copied();
    assert_eq!(outcome.map(|o| o.status), Some(Status::ReplicationFailed));
}

/// A resolution asked again (its first answer lost) is answered again: at once when its marker
/// is committed, and when it commits otherwise, also on a new leader that inherited the marker
/// (found by the whole-node simulator: the second request waited for an outcome that never
/// came, and the client retrying it never resolved the ticket behind it).
#[test]
fn a_resolution_asked_again_is_answered_again() {
    let mut c = cluster();
    let held = propose_held(&mut c, "held");
    // Something behind it keeps its marker from being delivered (and the ticket tracked).
    let blocker = propose_held(&mut c, "blocker");
    let marker = c.replica_mut(1).commit_proposal(blocker).expect("commit");
    c.settle();
    let answered = |c: &Cluster, node: u64, ticket: Ticket| {
        c.node(node)
            .outcomes
            .iter()
            .filter(|o| o.ticket == ticket && o.kind == EntryKind::Commit)
            .count()
    };
    assert_eq!(answered(&c, 1, blocker), 1);
    assert_eq!(c.replica_mut(1).commit_proposal(blocker), Ok(marker));
    c.process(NodeId(1));
    assert_eq!(answered(&c, 1, blocker), 2, "answered at once: committed");

    // A new leader inherits the (committed) marker: asked there, it answers too.
    c.crash(1);
    c.ticks(60);
    let leader = c.leader().expect("new leader");
    assert_eq!(c.replica_mut(leader).commit_proposal(blocker), Ok(marker));
    c.settle();
    assert_eq!(answered(&c, leader, blocker), 1);
    c.replica_mut(leader).commit_proposal(held).expect("commit");
    c.settle();
    assert_eq!(
        c.applied_payloads(leader),
        vec!["held".to_string(), "blocker".to_string()]
    );
}
