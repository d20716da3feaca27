//! Feature `sim-bugs`: each node-level injected bug (`ShardConfig::bug`) changes what the shard
//! does, shown on stepped nodes against the same run without the bug. (That the simulator's
//! checkers catch each one is the simulator's sensitivity test; here the hooks are proven to
//! fire.)

use kommander_raft::core::{LogIndex, MessageBody, PartitionId, Status};
use kommander_raft::shard::{NodeBug, Refusal, Request};
use tokio::sync::oneshot;

use super::stepped::SteppedCluster;

const P: PartitionId = PartitionId(0);

/// Three stepped nodes with `bug`, one partition, a leader elected.
fn elected(bug: Option<NodeBug>) -> SteppedCluster {
    let mut cluster = SteppedCluster::start_with(3, 1, |config| config.bug = bug);
    cluster.elect();
    // Quiet: every message delivered and every write acknowledged.
    cluster.run_until("a quiet cluster", 1_000, |c| {
        c.queued_messages().is_empty()
            && c.nodes
                .iter()
                .all(|n| n.steppers.iter().all(|s| !s.waiting_on_wal()))
    });
    cluster
}

fn follower_of(cluster: &SteppedCluster) -> usize {
    let leader = cluster.leader(P).expect("leader");
    (leader + 1) % cluster.nodes.len()
}

/// Proposes one entry to the leader, hands its append to a follower and turns the follower's
/// shard once. Returns whether an append acknowledgement left the follower in that turn, and
/// whether its disk synced anything during the turn.
fn follower_turn_on_an_append(bug: Option<NodeBug>) -> (bool, bool) {
    let mut cluster = elected(bug);
    let leader = cluster.leader(P).expect("leader");
    let follower = follower_of(&cluster);
    let _answer = cluster.propose(leader, P, b"entry");
    let now = cluster.now();
    cluster.nodes[leader].steppers[0].turn(now);
    assert!(
        cluster
            .queued_messages()
            .iter()
            .any(|m| matches!(m.body, MessageBody::AppendRequest { .. })),
        "the leader replicates the entry"
    );
    cluster.deliver_all();
    let id = cluster.nodes[follower].id;
    let syncs_before = cluster.nodes[follower].disks[0].io_counts().1;
    cluster.nodes[follower].steppers[0].turn(now);
    let synced = cluster.nodes[follower].disks[0].io_counts().1 > syncs_before;
    let acked = cluster.queued_messages().iter().any(|m| {
        m.from == id && matches!(m.body, MessageBody::AppendResponse { success: true, .. })
    });
    (acked, synced)
}

#[test]
fn release_gated_before_durable_sends_the_append_ack_before_the_disk_synced() {
    assert_eq!(
        follower_turn_on_an_append(None),
        (false, false),
        "without the bug the ack waits for the sync of a later turn"
    );
    assert_eq!(
        follower_turn_on_an_append(Some(NodeBug::ReleaseGatedBeforeDurable)),
        (true, false)
    );
}

#[test]
fn durable_without_fsync_acknowledges_a_ready_the_disk_has_not_synced() {
    assert_eq!(follower_turn_on_an_append(None), (false, false));
    assert_eq!(
        follower_turn_on_an_append(Some(NodeBug::DurableWithoutFsync)),
        (true, false),
        "the follower's Ready counted durable at submission: its ack left unsynced"
    );
}

/// Proposes to the leader and turns the leader's shard once (nothing reaches a follower):
/// the proposal's answer after that turn.
fn answer_after_one_leader_turn(bug: Option<NodeBug>) -> Option<Status> {
    let mut cluster = elected(bug);
    let leader = cluster.leader(P).expect("leader");
    let mut answer = cluster.propose(leader, P, b"entry");
    let now = cluster.now();
    cluster.nodes[leader].steppers[0].turn(now);
    match answer.try_recv() {
        Ok(result) => Some(result.expect("accepted").status),
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => panic!("reply dropped"),
    }
}

#[test]
fn ack_proposal_before_durable_answers_success_before_any_follower_holds_the_entry() {
    assert_eq!(answer_after_one_leader_turn(None), None);
    assert_eq!(
        answer_after_one_leader_turn(Some(NodeBug::AckProposalBeforeDurable)),
        Some(Status::Success)
    );
}

/// A one-node cluster delivers three entries, restarts, restores: the entries its new state
/// machine received live after the restore (restored ones are `on_log_restored`'s).
fn live_after_restore(bug: Option<NodeBug>) -> Vec<u64> {
    let mut cluster = SteppedCluster::start_with(1, 1, |config| config.bug = bug);
    cluster.elect();
    for payload in [&b"a"[..], b"b", b"c"] {
        let _answer = cluster.propose(0, P, payload);
    }
    cluster.run_until("three entries delivered", 1_000, |c| {
        c.nodes[0].app.live(P).len() == 3
    });
    cluster.restart_node(0);
    cluster.run_until("restored and leading again", 2_000, |c| {
        c.leader(P).is_some()
    });
    let delivered = cluster.nodes[0]
        .app
        .delivered
        .lock()
        .expect("app lock")
        .clone();
    let restored: Vec<u64> = delivered
        .iter()
        .filter(|d| d.restored)
        .map(|d| d.index)
        .collect();
    assert_eq!(restored.len(), 3, "every entry restored once");
    delivered
        .iter()
        .filter(|d| !d.restored)
        .map(|d| d.index)
        .collect()
}

#[test]
fn redeliver_after_restore_hands_restored_entries_to_live_delivery_again() {
    assert_eq!(live_after_restore(None), Vec::<u64>::new());
    let again = live_after_restore(Some(NodeBug::RedeliverAfterRestore));
    assert_eq!(
        again.len(),
        3,
        "the restored entries, delivered live again: {again:?}"
    );
}

/// Asks a follower for a read index and turns its shard once: the answer after that turn.
fn follower_read_after_one_turn(bug: Option<NodeBug>) -> Option<Result<LogIndex, Refusal>> {
    let mut cluster = elected(bug);
    let follower = follower_of(&cluster);
    let (reply, mut answer) = oneshot::channel();
    cluster.nodes[follower]
        .host
        .send(
            P,
            Request::ReadIndex {
                leader_only: false,
                reply,
            },
        )
        .expect("read queued");
    let now = cluster.now();
    cluster.nodes[follower].steppers[0].turn(now);
    answer.try_recv().ok()
}

#[test]
fn read_without_read_index_answers_on_a_follower_at_once() {
    assert!(
        !matches!(follower_read_after_one_turn(None), Some(Ok(_))),
        "without the bug a follower never answers a read on its own"
    );
    assert!(matches!(
        follower_read_after_one_turn(Some(NodeBug::ReadWithoutReadIndex)),
        Some(Ok(_))
    ));
}
