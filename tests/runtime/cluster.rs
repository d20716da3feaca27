//! Elections on every partition, replication in the same order on every node, two-phase
//! commit and rollback, checkpoints.

use bytes::Bytes;
use kommander_raft::core::{EntryKind, LogIndex, PartitionId, Status};
use kommander_raft::shard::{Refusal, ReplicationResult, Request};

use super::harness::{Cluster, Seen, eventually, wait};

fn seen(index: LogIndex, payload: &[u8]) -> Seen {
    Seen {
        index,
        log_type: "test/put".to_owned(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Replicates `count` entries on each partition and checks every node delivered them in the
/// same order at the acknowledged indices.
fn replicate_and_check(cluster: &mut Cluster, count: usize) {
    let partitions = cluster.partitions.clone();
    for &p in &partitions {
        let mut expected = Vec::new();
        for k in 0..count {
            let payload = format!("{p}-{k}");
            let result = cluster.replicate(p, payload.as_bytes());
            assert_eq!(result.status, Status::Success);
            expected.push(seen(result.index, payload.as_bytes()));
        }
        assert!(
            expected.windows(2).all(|w| w[0].index < w[1].index),
            "acknowledged indices increase: {expected:?}"
        );
        cluster.wait_delivered(p, &expected);
    }
}

#[test]
fn single_node_one_partition_elects_and_delivers_in_order() {
    let mut cluster = Cluster::start(1, 1, false);
    cluster.wait_leaders();
    replicate_and_check(&mut cluster, 20);
}

#[test]
fn single_node_64_partitions_elect_and_deliver() {
    let mut cluster = Cluster::start(1, 64, false);
    let leaders = cluster.wait_leaders();
    assert_eq!(leaders.len(), 64);
    replicate_and_check(&mut cluster, 2);
}

#[test]
fn three_nodes_one_partition_replicate_in_the_same_order() {
    let mut cluster = Cluster::start(3, 1, false);
    cluster.wait_leaders();
    replicate_and_check(&mut cluster, 30);
    // A batch proposal: one ticket, consecutive indices, delivered together.
    let p = PartitionId(0);
    let leader = cluster.leader(p).expect("a leader");
    let (_, sent) = cluster.propose_to(leader, p, &[b"b1", b"b2", b"b3"], true);
    let result = wait(sent.expect("queued")).expect("committed");
    assert_eq!(result.status, Status::Success);
    let live = cluster.nodes[leader].app.live(p);
    eventually("batch delivered", || {
        let live = cluster.nodes[leader].app.live(p);
        (live.last().map(|s| s.index) == Some(result.index)).then_some(())
    });
    let _ = live;
    let tail: Vec<Seen> = cluster.nodes[leader].app.live(p)[30..].to_vec();
    assert_eq!(
        tail,
        vec![
            seen(LogIndex(result.index.0 - 2), b"b1"),
            seen(LogIndex(result.index.0 - 1), b"b2"),
            seen(result.index, b"b3"),
        ]
    );
    let expected = cluster.nodes[leader].app.live(p);
    cluster.wait_delivered(p, &expected);
    // The quick (no round trip) views agree with the shard's answer.
    let view = cluster.runtime(leader).leadership(p).expect("a view");
    assert_eq!(view.role, kommander_raft::core::Role::Leader);
    assert_eq!(view.leader, Some(cluster.nodes[leader].id));
    let follower = (leader + 1) % 3;
    let follower_view = cluster.runtime(follower).leadership(p).expect("a view");
    assert_eq!(follower_view.leader, Some(cluster.nodes[leader].id));
    assert!(
        cluster
            .runtime(follower)
            .last_heard(cluster.nodes[leader].id)
            .is_some()
    );
    assert!(
        cluster
            .runtime(leader)
            .last_heard(kommander_raft::core::NodeId(99))
            .is_none()
    );
}

#[test]
fn three_nodes_64_partitions_elect_everywhere_and_replicate() {
    let mut cluster = Cluster::start(3, 64, false);
    let leaders = cluster.wait_leaders();
    assert_eq!(leaders.len(), 64);
    replicate_and_check(&mut cluster, 2);
    let stats = cluster.runtime(0).stats();
    assert!(stats.wal_submissions > 0 && stats.readies_persisted >= stats.wal_submissions);
}

#[test]
fn two_phase_commit_delivers_and_rollback_never_does() {
    let mut cluster = Cluster::start(3, 1, false);
    let p = PartitionId(0);
    cluster.wait_leaders();
    let leader = cluster.leader(p).expect("a leader");
    let (kept, sent) = cluster.propose_to(leader, p, &[b"kept"], false);
    let kept_result = wait(sent.expect("queued")).expect("proposed");
    assert_eq!(kept_result.status, Status::Success);
    let (dropped, sent) = cluster.propose_to(leader, p, &[b"dropped"], false);
    let dropped_result = wait(sent.expect("queued")).expect("proposed");
    assert_eq!(dropped_result.status, Status::Success);
    // Raft-committed but held: nothing delivered yet.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(cluster.nodes[leader].app.live(p).is_empty());

    let committed: ReplicationResult = cluster
        .ask(leader, p, |reply| Request::Commit {
            ticket: kept,
            reply,
        })
        .expect("commit accepted");
    assert_eq!(committed.status, Status::Success);
    let rolled_back: ReplicationResult = cluster
        .ask(leader, p, |reply| Request::Rollback {
            ticket: dropped,
            reply,
        })
        .expect("rollback accepted");
    assert_eq!(rolled_back.status, Status::Success);
    // Commit after rollback is refused; an unknown ticket is not found.
    let refused = cluster.ask(leader, p, |reply| Request::Commit {
        ticket: dropped,
        reply,
    });
    assert!(
        matches!(
            refused,
            Err(Refusal::Replica(Status::Errored | Status::ProposalNotFound))
        ),
        "commit after rollback: {refused:?}"
    );
    let unknown = cluster.ask(leader, p, |reply| Request::Commit {
        ticket: kommander_raft::core::Ticket(999_999),
        reply,
    });
    assert_eq!(unknown, Err(Refusal::Replica(Status::ProposalNotFound)));

    let after = cluster.replicate(p, b"after");
    cluster.wait_delivered(
        p,
        &[
            seen(kept_result.index, b"kept"),
            seen(after.index, b"after"),
        ],
    );
}

#[test]
fn checkpoint_commits_and_becomes_the_floor() {
    let mut cluster = Cluster::start(3, 1, false);
    let p = PartitionId(0);
    cluster.wait_leaders();
    let a = cluster.replicate(p, b"a");
    let leader = cluster.leader(p).expect("a leader");
    let ticket = cluster.ticket();
    let checkpoint: ReplicationResult = cluster
        .ask(leader, p, |reply| Request::Checkpoint { ticket, reply })
        .expect("checkpoint accepted");
    assert_eq!(checkpoint.status, Status::Success);
    for i in 0..3 {
        eventually("the checkpoint becomes the floor", || {
            let status = cluster.status(i, p).ok()?;
            (status.floor == checkpoint.index).then_some(())
        });
    }
    // The checkpoint is delivered like a normal entry (kind Checkpoint, empty payload).
    let live = cluster.nodes[leader].app.live(p);
    assert_eq!(live.first().map(|s| s.index), Some(a.index));
    assert_eq!(live.last().map(|s| s.index), Some(checkpoint.index));
    let _ = EntryKind::Checkpoint;
    let b = cluster.replicate(p, b"b");
    assert!(b.index > checkpoint.index);
}

#[test]
fn answers_can_be_awaited_from_an_async_runtime() {
    let mut cluster = Cluster::start(1, 1, false);
    let p = PartitionId(0);
    cluster.wait_leaders();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (_, sent) = cluster.propose_to(0, p, &[b"async"], true);
    let answer = sent.expect("queued");
    let result = runtime
        .block_on(answer)
        .expect("the shard answers")
        .expect("committed");
    assert_eq!(result.status, Status::Success);
    cluster.wait_delivered(p, &[seen(result.index, b"async")]);
}
