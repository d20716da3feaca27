//! Every refusal a caller can provoke at the shard host.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use kommander_raft::core::{PartitionId, Status};
use kommander_raft::shard::{PartitionStatus, ProposedEntry, Refusal, Request};
use tokio::sync::oneshot;

use super::harness::{Cluster, Recorder, wait};

/// A gate a shard-thread callback waits at: `entered` fires when it arrives, `release` lets it
/// go.
fn gate() -> (super::harness::Hook, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let hook: super::harness::Hook = Box::new(move |_, _| {
        if entered_tx.send(()).is_ok() {
            let _ = release_rx.lock().expect("gate").recv();
        }
    });
    (hook, entered_rx, release_tx)
}

fn status_request(
    cluster: &Cluster,
    p: PartitionId,
) -> Result<oneshot::Receiver<Result<PartitionStatus, Refusal>>, Refusal> {
    let (reply, answer) = oneshot::channel();
    cluster
        .runtime(0)
        .send(p, Request::Status { reply })
        .map(|()| answer)
}

#[test]
fn a_full_request_queue_answers_proposal_queue_full() {
    let mut cluster = Cluster::start_with(1, 1, false, |c| c.shard_commands_max = 2);
    let p = PartitionId(0);
    cluster.wait_leaders();
    let (hook, entered, release) = gate();
    *cluster.nodes[0].app.on_live.lock().expect("hook") = Some(hook);
    let (_, sent) = cluster.propose_to(0, p, &[b"blocks the shard"], true);
    let proposal = sent.expect("queued");
    entered.recv().expect("the callback runs");
    // The shard thread is inside the callback: the queue (2 slots) fills and then refuses.
    let first = status_request(&cluster, p).expect("slot 1");
    let second = status_request(&cluster, p).expect("slot 2");
    assert_eq!(status_request(&cluster, p).err(), Some(Refusal::QueueFull));
    // Later deliveries pass the gate (its `entered` receiver is gone); this one is released.
    drop(entered);
    release.send(()).expect("release");
    assert_eq!(wait(proposal).expect("committed").status, Status::Success);
    assert!(wait(first).is_ok() && wait(second).is_ok());
}

#[test]
fn a_restoring_partition_answers_restore_in_progress() {
    let mut cluster = Cluster::start_with(1, 1, false, |c| c.restore_entries_per_turn_max = 1);
    let p = PartitionId(0);
    cluster.wait_leaders();
    for k in 0..5u8 {
        cluster.replicate(p, &[k]);
    }
    cluster.shutdown();
    let (hook, entered, release) = gate();
    let recorder = Recorder::default();
    *recorder.on_restore.lock().expect("hook") = Some(hook);
    cluster.nodes[0].app = Arc::new(recorder);
    cluster.start_node(0);
    entered
        .recv()
        .expect("the first restored entry is being delivered");
    let queued = status_request(&cluster, p).expect("queued");
    drop(entered);
    release.send(()).expect("release");
    assert_eq!(wait(queued), Err(Refusal::RestoreInProgress));
    // Once restored, requests are served and the restored entries came once, in order.
    cluster.wait_leaders();
    let restored: Vec<Vec<u8>> = cluster.nodes[0]
        .app
        .restored(p)
        .into_iter()
        .map(|s| s.payload.to_vec())
        .collect();
    assert_eq!(restored, (0..5u8).map(|k| vec![k]).collect::<Vec<_>>());
}

#[test]
fn refusals_name_their_cause() {
    let mut cluster = Cluster::start(3, 1, false);
    let p = PartitionId(0);
    cluster.wait_leaders();
    let leader = cluster.leader(p).expect("a leader");
    let follower = (leader + 1) % 3;
    // A follower's refusal names the leader it knows.
    let leader_id = cluster.nodes[leader].id;
    super::harness::eventually("the follower to know the leader", || {
        let known = cluster.status(follower, p).ok()?.leader;
        (known == Some(leader_id)).then_some(())
    });
    let not_leader = Refusal::NotLeader {
        leader: Some(leader_id),
    };
    let (_, sent) = cluster.propose_to(follower, p, &[b"x"], true);
    assert_eq!(wait(sent.expect("queued")), Err(not_leader.clone()));
    // A partition this node does not host.
    let (_, sent) = cluster.propose_to(leader, PartitionId(77), &[b"x"], true);
    assert_eq!(wait(sent.expect("queued")), Err(Refusal::NotHosted));
    // An empty proposal; a log type longer than the limit, and one longer than an envelope's
    // length field holds (refused by its length, not truncated to fit).
    let invalid = [
        vec![],
        vec![ProposedEntry::new(&"t".repeat(1000), &[])],
        vec![ProposedEntry::new(&"t".repeat(70_000), &[])],
    ];
    for entries in invalid {
        let (reply, answer) = oneshot::channel();
        let ticket = cluster.ticket();
        cluster
            .runtime(leader)
            .send(
                p,
                Request::Propose {
                    entries: entries.into(),
                    auto_commit: true,
                    ticket,
                    reply,
                },
            )
            .expect("queued");
        assert_eq!(wait(answer), Err(Refusal::Replica(Status::Errored)));
    }
    // Leadership operations: transfer, step-down, suspend/resume, follower lag.
    let target = cluster.nodes[follower].id;
    let lag = cluster
        .ask(leader, p, |reply| Request::FollowerLag {
            node: target,
            reply,
        })
        .expect("lag on the leader");
    assert!(lag.entries_behind() <= lag.leader_last_index.0);
    assert_eq!(
        cluster.ask(follower, p, |reply| Request::StepDown { reply }),
        Err(not_leader)
    );
    cluster
        .ask(leader, p, |reply| Request::TransferLeadership {
            target,
            reply,
        })
        .expect("transfer starts");
    super::harness::eventually("the transfer completes", || {
        (cluster.leader(p) == Some(follower)).then_some(())
    });
    cluster
        .ask(follower, p, |reply| Request::SuspendHeartbeats { reply })
        .expect("suspend");
    super::harness::eventually("another leader after suspended heartbeats", || {
        cluster.leader(p).filter(|&i| i != follower)
    });
    let current = cluster.leader(p).expect("a leader");
    cluster
        .ask(current, p, |reply| Request::StepDown { reply })
        .expect("step down");
    cluster.wait_leaders();
    let read = cluster.leader(p).expect("a leader");
    let index = cluster
        .ask(read, p, |reply| Request::ReadIndex {
            leader_only: false,
            reply,
        })
        .expect("read index");
    assert!(cluster.status(read, p).expect("status").applied >= index);
    let _ = cluster.replicate(p, b"still works");
}

#[test]
fn one_wal_submission_carries_many_partitions() {
    // 1 node, 2 shards: the even partitions live on shard 0.
    let mut cluster = Cluster::start(1, 64, false);
    cluster.wait_leaders();
    let (hook, entered, release) = gate();
    let only_p0: super::harness::Hook = Box::new(move |partition, entry| {
        if partition == PartitionId(0) {
            hook(partition, entry);
        }
    });
    *cluster.nodes[0].app.on_live.lock().expect("hook") = Some(only_p0);
    let (_, sent) = cluster.propose_to(0, PartitionId(0), &[b"holds shard 0"], true);
    let first = sent.expect("queued");
    entered.recv().expect("shard 0 is inside the callback");
    let before = cluster.runtime(0).stats();
    let answers: Vec<_> = (1..32u32)
        .map(|k| {
            let (_, sent) = cluster.propose_to(0, PartitionId(2 * k), &[b"grouped"], true);
            sent.expect("queued")
        })
        .collect();
    drop(entered);
    release.send(()).expect("release");
    assert_eq!(wait(first).expect("committed").status, Status::Success);
    for answer in answers {
        assert_eq!(wait(answer).expect("committed").status, Status::Success);
    }
    let after = cluster.runtime(0).stats();
    let submissions = after.wal_submissions - before.wal_submissions;
    let readies = after.readies_persisted - before.readies_persisted;
    // 31 partitions' entries share a handful of submissions (their commit indexes wait:
    // `wal_commit_lag_entries_max`).
    assert!(readies >= 31, "{readies} readies persisted");
    assert!(
        submissions <= 6,
        "{submissions} WAL submissions for 31 partitions' proposals queued in one turn"
    );
}

#[test]
fn bad_inbound_messages_are_dropped_or_refused_and_change_nothing() {
    use kommander_raft::core::{LogIndex, Message, MessageBody, NodeId, Term};
    let mut cluster = Cluster::start(3, 2, false);
    let p = PartitionId(1);
    cluster.wait_leaders();
    let before = cluster.replicate(p, b"before");
    let leader = cluster.leader(p).expect("a leader");
    let term = cluster.status(leader, p).expect("status").term;
    let me = cluster.nodes[leader].id;
    let other = cluster.nodes[(leader + 1) % 3].id;
    let message = |partition, from, to, term, body| Message {
        partition,
        from,
        to,
        term,
        body,
    };
    let heartbeat = MessageBody::Heartbeat {
        commit: LogIndex(u64::MAX),
        read_round: 0,
        quiesce: false,
    };
    let stats_before = cluster.runtime(leader).stats();
    cluster.runtime(leader).deliver(vec![
        // Unknown partition, another node's message, a non-member sender: dropped or refused.
        message(PartitionId(500), other, me, term, heartbeat.clone()),
        message(p, other, NodeId(42), term, heartbeat.clone()),
        message(p, NodeId(42), me, term, heartbeat.clone()),
        // An absurd term and an absurd append: refused by the replica.
        message(p, other, me, Term(u64::MAX / 2), heartbeat),
        message(
            p,
            other,
            me,
            term,
            MessageBody::AppendResponse {
                success: true,
                index: LogIndex(u64::MAX),
                hint_index: LogIndex::ZERO,
                hint_term: Term::ZERO,
            },
        ),
    ]);
    let stats = super::harness::eventually("the bad messages are counted", || {
        let stats = cluster.runtime(leader).stats();
        let dropped = stats.inbound_messages_dropped - stats_before.inbound_messages_dropped;
        let refused = stats.inbound_messages_refused - stats_before.inbound_messages_refused;
        (dropped + refused >= 5).then_some((dropped, refused))
    });
    assert!(stats.0 >= 2 && stats.1 >= 2, "dropped, refused: {stats:?}");
    // The leader is still the leader in the same term and keeps replicating.
    let status = cluster.status(leader, p).expect("status");
    assert_eq!(
        (status.role, status.term),
        (kommander_raft::core::Role::Leader, term)
    );
    let after = cluster.replicate(p, b"after");
    assert!(after.index > before.index);
}
