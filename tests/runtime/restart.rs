//! Restarts: a full restart of every node loses no acknowledged entry and delivers none twice
//! (restored entries reach the application through `on_log_restored`, exactly once, in order);
//! a crashed follower's entries whose commit index its WAL lagged behind come back live.

use std::collections::HashMap;
use std::sync::Arc;

use kommander_raft::core::{LogIndex, PartitionId, Status};
use kommander_raft::node::WalBackend;
use kommander_raft::shard::{RaftEvent, ReplicationResult, Request};

use super::harness::{Cluster, Recorder, Seen, eventually, wait};
use super::stepped::SteppedCluster;

fn restore_finished(cluster: &Cluster, i: usize) -> usize {
    cluster.nodes[i]
        .events
        .count(|e| matches!(e, RaftEvent::RestoreFinished { .. }))
}

#[test]
fn full_restart_loses_nothing_and_delivers_nothing_twice() {
    full_restart(WalBackend::Auto);
}

#[test]
fn full_restart_on_the_blocking_wal_backend() {
    full_restart(WalBackend::Blocking);
}

fn full_restart(backend: WalBackend) {
    let mut cluster = Cluster::start_with(3, 8, false, |c| c.wal_backend = backend);
    cluster.wait_leaders();
    let partitions = cluster.partitions.clone();
    let mut acked: HashMap<PartitionId, Vec<(LogIndex, Vec<u8>)>> = HashMap::new();
    for &p in &partitions {
        for k in 0..12 {
            let payload = format!("{p}-before-{k}").into_bytes();
            let result = cluster.replicate(p, &payload);
            acked.entry(p).or_default().push((result.index, payload));
        }
    }
    // A rolled-back two-phase proposal must never come back.
    let p0 = PartitionId(0);
    let leader = cluster.leader(p0).expect("a leader");
    let (ticket, sent) = cluster.propose_to(leader, p0, &[b"rolled back"], false);
    wait(sent.expect("queued")).expect("proposed");
    let rolled: ReplicationResult = cluster
        .ask(leader, p0, |reply| Request::Rollback { ticket, reply })
        .expect("rolled back");
    assert_eq!(rolled.status, Status::Success);
    let last = cluster.replicate(p0, b"after rollback");
    acked
        .get_mut(&p0)
        .expect("p0")
        .push((last.index, b"after rollback".to_vec()));
    // Every node applied everything before the restart.
    for &p in &partitions {
        let expected: Vec<(LogIndex, Vec<u8>)> = acked[&p].clone();
        for node in &cluster.nodes {
            eventually("delivery before restart", || {
                let live: Vec<(LogIndex, Vec<u8>)> = node
                    .app
                    .live(p)
                    .into_iter()
                    .map(|s| (s.index, s.payload.to_vec()))
                    .collect();
                (live == expected).then_some(())
            });
        }
    }
    let before: Vec<HashMap<PartitionId, Vec<Seen>>> = cluster
        .nodes
        .iter()
        .map(|n| partitions.iter().map(|&p| (p, n.app.live(p))).collect())
        .collect();

    cluster.shutdown();
    for node in &mut cluster.nodes {
        node.app = Arc::new(Recorder::default());
        node.events = Arc::default();
    }
    for i in 0..cluster.nodes.len() {
        cluster.start_node(i);
    }
    for (i, before) in before.iter().enumerate() {
        eventually("every partition restored", || {
            (restore_finished(&cluster, i) == partitions.len()).then_some(())
        });
        let started = cluster.nodes[i]
            .events
            .count(|e| matches!(e, RaftEvent::RestoreStarted { .. }));
        assert_eq!(started, partitions.len());
        for &p in &partitions {
            // Each node delivered everything before shutting down, and its orderly stop wrote
            // the commit indexes its WAL lagged behind (`wal_commit_lag_entries_max` is 64,
            // above these 12 writes): the restore hands back exactly that, once, in order.
            assert_eq!(
                cluster.nodes[i].app.restored(p),
                before[&p],
                "node {} partition {p}: restored entries",
                i + 1
            );
            assert!(cluster.nodes[i].app.live(p).is_empty());
        }
    }
    cluster.wait_leaders();
    for &p in &partitions {
        let payload = format!("{p}-after").into_bytes();
        let result = cluster.replicate(p, &payload);
        acked.entry(p).or_default().push((result.index, payload));
    }
    for &p in &partitions {
        for (i, node) in cluster.nodes.iter().enumerate() {
            eventually("delivery after restart", || {
                let all: Vec<(LogIndex, Vec<u8>)> = node
                    .app
                    .restored(p)
                    .into_iter()
                    .chain(node.app.live(p))
                    .map(|s| (s.index, s.payload.to_vec()))
                    .collect();
                assert!(
                    all.windows(2).all(|w| w[0].0 < w[1].0),
                    "node {} partition {p}: delivered twice or out of order: {all:?}",
                    i + 1
                );
                (all == acked[&p]).then_some(())
            });
        }
    }
}

#[test]
fn restart_after_a_checkpoint_restores_only_what_follows_the_floor() {
    let mut cluster = Cluster::start(1, 1, false);
    let p = PartitionId(0);
    cluster.wait_leaders();
    cluster.replicate(p, b"a");
    cluster.replicate(p, b"b");
    let ticket = cluster.ticket();
    let checkpoint: ReplicationResult = cluster
        .ask(0, p, |reply| Request::Checkpoint { ticket, reply })
        .expect("checkpoint accepted");
    assert_eq!(checkpoint.status, Status::Success);
    eventually("the checkpoint becomes the floor", || {
        (cluster.status(0, p).ok()?.floor == checkpoint.index).then_some(())
    });
    let c = cluster.replicate(p, b"c");
    cluster.shutdown();
    cluster.nodes[0].app = Arc::new(Recorder::default());
    cluster.start_node(0);
    cluster.wait_leaders();
    let restored: Vec<(LogIndex, Vec<u8>)> = cluster.nodes[0]
        .app
        .restored(p)
        .into_iter()
        .map(|s| (s.index, s.payload.to_vec()))
        .collect();
    assert_eq!(restored, vec![(c.index, b"c".to_vec())]);
    assert_eq!(
        cluster.status(0, p).expect("status").floor,
        checkpoint.index
    );
    let d = cluster.replicate(p, b"d");
    assert!(d.index > c.index);
}

/// The application's durable index (`StateMachine::durable_index`): restore hands over only
/// the committed entries above it, and a checkpoint's WAL compaction waits until the
/// application has made the checkpoint durable; a durable index the log cannot honour fails
/// the restore with a reason.
#[test]
fn restore_replays_above_the_durable_index_and_compaction_waits_for_it() {
    let mut cluster = Cluster::start(1, 1, false);
    let p = PartitionId(0);
    cluster.wait_leaders();
    let a = cluster.replicate(p, b"a");
    cluster.replicate(p, b"b");
    cluster.nodes[0]
        .app
        .durable
        .lock()
        .expect("lock")
        .insert(p, a.index);
    let ticket = cluster.ticket();
    let checkpoint: ReplicationResult = cluster
        .ask(0, p, |reply| Request::Checkpoint { ticket, reply })
        .expect("checkpoint accepted");
    assert_eq!(checkpoint.status, Status::Success);
    let c = cluster.replicate(p, b"c");
    let restart = |cluster: &mut Cluster, durable: Option<LogIndex>| {
        cluster.shutdown();
        let app = Recorder::default();
        if let Some(index) = durable {
            app.durable.lock().expect("lock").insert(p, index);
        }
        cluster.nodes[0].app = Arc::new(app);
        cluster.start_node(0);
        cluster.wait_leaders();
        cluster.nodes[0]
            .app
            .restored(p)
            .into_iter()
            .map(|s| s.index)
            .collect::<Vec<LogIndex>>()
    };
    let status = eventually("the checkpoint becomes the floor in memory", || {
        let status = cluster.status(0, p).ok()?;
        (status.floor == checkpoint.index).then_some(status)
    });
    assert_eq!(
        status.wal_floor, a.index,
        "the WAL's compaction waits for the application"
    );
    // The WAL kept everything above `a`: the restore replays it.
    let above_a: Vec<LogIndex> = (a.index.0 + 1..=c.index.0).map(LogIndex).collect();
    assert_eq!(restart(&mut cluster, Some(a.index)), above_a);
    // The application catches up: the waiting compaction follows on the next ticks.
    cluster.nodes[0]
        .app
        .durable
        .lock()
        .expect("lock")
        .insert(p, c.index);
    eventually("the compaction follows the durable index", || {
        (cluster.status(0, p).ok()?.wal_floor == checkpoint.index).then_some(())
    });
    assert_eq!(restart(&mut cluster, Some(c.index)), Vec::new());
    // Without a durable index the restore starts at the WAL's floor: the checkpoint.
    assert_eq!(restart(&mut cluster, None), vec![c.index]);
    // A durable index below the floor cannot be honoured.
    cluster.shutdown();
    let app = Recorder::default();
    app.durable.lock().expect("lock").insert(p, a.index);
    cluster.nodes[0].app = Arc::new(app);
    cluster.start_node(0);
    eventually("the restore fails", || {
        cluster.nodes[0]
            .events
            .count(|e| matches!(e, RaftEvent::RestoreFailed { reason, .. } if reason.contains("below the WAL's compaction floor")))
            .gt(&0)
            .then_some(())
    });
}

/// A crash (no orderly stop) loses the commit index the WAL lagged behind
/// (`wal_commit_lag_entries_max`, 64): the restarted follower's restore hands over only what
/// its WAL's commit index covers, and the rest reaches it live once its leader tells it the
/// commit index again, with no new write: every entry once, in order.
#[test]
fn a_crash_loses_a_lagging_commit_index_and_the_entries_come_back_live() {
    let mut cluster = SteppedCluster::start(3, 2);
    cluster.elect();
    let p = PartitionId(1);
    let leader = cluster.leader(p).expect("a leader");
    let payloads: Vec<Vec<u8>> = (0..10u8).map(|k| vec![b'w', k]).collect();
    for payload in &payloads {
        let answer = cluster.propose(leader, p, payload);
        let result = cluster.answer(answer).expect("committed");
        assert_eq!(result.status, Status::Success);
    }
    let follower = (leader + 1) % 3;
    let delivered = |cluster: &SteppedCluster, restored: bool| -> Vec<Vec<u8>> {
        let app = &cluster.nodes[follower].app;
        let delivered = app.delivered.lock().expect("app lock");
        delivered
            .iter()
            .filter(|d| d.partition == p && d.restored == restored)
            .map(|d| d.payload.to_vec())
            .collect()
    };
    cluster.run_until("the follower delivered every write", 10_000, |c| {
        delivered(c, false) == payloads
    });
    cluster.crash_node(follower);
    cluster.run_until("the follower holds every write again", 20_000, |c| {
        let mut all = delivered(c, true);
        all.extend(delivered(c, false));
        all == payloads
    });
    let restored = delivered(&cluster, true).len();
    assert!(
        restored < payloads.len(),
        "the crash lost the lagging commit index: {restored} of {} restored",
        payloads.len()
    );
}
