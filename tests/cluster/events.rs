//! Events as IRaft has them (issue 17, events item; decision 0005 §9): a replication error
//! carries the entry the application refused, and a leader is announced once it can serve —
//! on every node once the no-op of its term committed there, once per term.

use std::sync::atomic::Ordering;

use kommander_raft::core::MessageBody;
use kommander_raft::{
    NodeId, PartitionId, RaftEvent, ReplicateOptions, ReplicationErrorReason, Term,
};
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::harness::{PATIENCE, TestCluster, UNLIMITED, eventually};
use super::read::holding;

/// The events `events` holds now, without waiting.
fn drain(events: &mut broadcast::Receiver<RaftEvent>) -> Vec<RaftEvent> {
    let mut drained = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => drained.push(event),
            Err(TryRecvError::Empty) => return drained,
            Err(error) => panic!("the test's subscription failed: {error}"),
        }
    }
}

/// The next event `matches` selects, skipping the others.
async fn next_event(
    events: &mut broadcast::Receiver<RaftEvent>,
    what: &str,
    matches: impl Fn(&RaftEvent) -> bool,
) -> RaftEvent {
    let wait = async {
        loop {
            let event = events.recv().await.expect("the test's subscription");
            if matches(&event) {
                return event;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("no event: {what}"))
}

/// Whether `event` announces a leader of `p` in `term`.
fn announces_a_leader(event: &RaftEvent, p: PartitionId, term: Term) -> bool {
    matches!(event, RaftEvent::LeaderChanged { partition, leader: Some(_), term: t, .. }
        if *partition == p && *t == term)
}

#[tokio::test]
async fn a_replication_error_carries_the_refused_entry_without_copying_it() {
    let cluster = TestCluster::start(1, 1).await;
    let p = PartitionId(1);
    let raft = cluster.raft(cluster.leader(p).await);
    let mut events = raft.subscribe();
    // The recording application refuses payloads starting with "reject".
    let written = raft
        .replicate_logs(
            p,
            "orders",
            "reject this order",
            ReplicateOptions::default(),
        )
        .await
        .expect("written");
    let event = next_event(&mut events, "a replication error", |e| {
        matches!(e, RaftEvent::ReplicationError { .. })
    })
    .await;
    let RaftEvent::ReplicationError {
        partition,
        index,
        entry: Some(entry),
        reason,
    } = event
    else {
        panic!("no entry in {event:?}");
    };
    assert_eq!((partition, index), (p, written.log_index));
    assert_eq!(reason, ReplicationErrorReason::Rejected);
    assert_eq!(entry.index, written.log_index);
    assert_eq!(entry.log_type(), "orders");
    assert_eq!(entry.payload, "reject this order");
    // The very bytes the application was handed: shared, not copied.
    let handed = cluster.nodes[0].app.live(p);
    let [refused] = &handed[..] else {
        panic!("one delivery expected: {handed:?}");
    };
    assert_eq!(refused.payload.as_ptr(), entry.payload.as_ptr());
}

#[tokio::test]
async fn a_leader_is_announced_once_its_noop_committed_on_each_node_and_once_per_term() {
    let p = PartitionId(1);
    // While held, no append of `p` reaches anyone: a new leader's no-op cannot commit, while
    // its heartbeats make every node name it.
    let (wrap, hold) = holding(move |_, _, m| {
        m.partition == p && matches!(m.body, MessageBody::AppendRequest { .. })
    });
    let cluster = TestCluster::start_wrapped(3, 1, wrap).await;
    let old = cluster.leader(p).await;
    cluster.replicate(p, b"before").await;
    cluster.wait_delivered(p, 1).await;
    let old_term = cluster.raft(old).leadership(p).expect("reported").term;
    let elected = (old + 1) % 3;
    let id = NodeId(cluster.nodes[elected].config.node_id);
    let mut events: Vec<_> = (0..3).map(|i| cluster.raft(i).subscribe()).collect();

    hold.store(true, Ordering::Release);
    // Elected with the others' votes; `force_leader` returns once the no-op committed.
    let forced = tokio::spawn(cluster.raft(elected).testing().force_leader(p, UNLIMITED));
    eventually("every node names the new leader in a new term", || {
        (0..3).all(|i| {
            cluster
                .raft(i)
                .leadership(p)
                .is_some_and(|l| l.leader == Some(id) && l.term > old_term)
        })
    })
    .await;
    let term = cluster.raft(elected).leadership(p).expect("reported").term;
    for (i, events) in events.iter_mut().enumerate() {
        // A round trip through the partition's shard: what its turns emitted is in the
        // channel now (an event is emitted on the shard thread as its state changes).
        cluster.raft(i).partition_status(p).await.expect("status");
        let seen = drain(events);
        assert!(
            !seen.iter().any(|e| announces_a_leader(e, p, term)),
            "node {i} announced {id} before its no-op committed: {seen:?}"
        );
        // No leader is still announced at once (the candidacy, the vote for it).
        assert!(
            seen.iter().any(|e| matches!(e,
                RaftEvent::LeaderChanged { partition, leader: None, term: t, .. }
                    if *partition == p && *t == term)),
            "node {i} did not announce that it knew no leader in {term}: {seen:?}"
        );
    }
    let unpublished = cluster.raft(elected).leadership(p).expect("reported");
    assert!(
        unpublished.term == term && !unpublished.noop_committed,
        "the no-op committed while appends were held: {unpublished:?}"
    );

    // Appends flow again: the no-op commits, and each node announces the leader.
    hold.store(false, Ordering::Release);
    forced.await.expect("task").expect("forced");
    for events in &mut events {
        let announced = next_event(events, "the leader announced", |e| {
            announces_a_leader(e, p, term)
        })
        .await;
        assert!(
            matches!(&announced, RaftEvent::LeaderChanged { leader, endpoint: Some(endpoint), .. }
                if *leader == Some(id) && *endpoint == format!("memory:{}", id.0)),
            "{announced:?}"
        );
    }
    // More commits in the term announce nothing more.
    cluster.replicate(p, b"after").await;
    cluster.wait_delivered(p, 2).await;
    for (i, events) in events.iter_mut().enumerate() {
        cluster.raft(i).partition_status(p).await.expect("status");
        let again: Vec<_> = drain(events)
            .into_iter()
            .filter(|e| matches!(e, RaftEvent::LeaderChanged { partition, .. } if *partition == p))
            .collect();
        assert!(again.is_empty(), "node {i} announced again: {again:?}");
    }
    cluster.assert_one_leader_per_term();
}
