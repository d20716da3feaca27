//! Crash points inside a snapshot install, enumerated on the simulated disk. A follower comes
//! back below its leader's compaction floor and installs a snapshot (the application imports
//! it durably, then the WAL's boundary record is written and synced, then the follower
//! acknowledges). For EVERY I/O step of that incarnation's disk, and each way a power cut
//! there can leave unsynced writes (lost, kept, torn), the follower restarts from that disk
//! image with the application's durable state of that moment (the import if it had finished,
//! else nothing): it must restore, catch up, and end with exactly the leader's state, handed
//! each entry at most once and nothing its durable state already held.

use std::collections::BTreeMap;

use kommander_raft::core::{PartitionId, Status, Ticket};
use kommander_raft::shard::{Refusal, ReplicationResult, Request, ShardConfig};
use kommander_wal::backend::sim::CrashMode;
use tokio::sync::oneshot;

use super::stepped::SteppedCluster;

const P: PartitionId = PartitionId(0);

type Answer = oneshot::Receiver<Result<ReplicationResult, Refusal>>;

/// Stops a replay at a crash point: true once it is reached.
type Stop<'a> = &'a dyn Fn(&SteppedCluster) -> bool;

/// Runs until every answer came, each a success, or `stop` (then returns false).
fn answered(cluster: &mut SteppedCluster, mut answers: Vec<Answer>, stop: Stop<'_>) -> bool {
    for _ in 0..20_000 {
        if stop(cluster) {
            return false;
        }
        answers.retain_mut(|answer| match answer.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => true,
            Ok(Ok(result)) => {
                assert_eq!(result.status, Status::Success);
                false
            }
            other => panic!("a write failed: {other:?}"),
        });
        if answers.is_empty() {
            return true;
        }
        cluster.step();
    }
    panic!("{} writes not answered", answers.len());
}

/// Proposes `count` entries to the leader, then a checkpoint, and runs until all are answered
/// (false: stopped first).
fn write_and_checkpoint(
    cluster: &mut SteppedCluster,
    tag: &str,
    count: usize,
    stop: Stop<'_>,
) -> bool {
    let leader = cluster.leader(P).expect("leader");
    let mut answers: Vec<Answer> = (0..count)
        .map(|k| cluster.propose(leader, P, format!("{tag}-{k}").as_bytes()))
        .collect();
    let (reply, answer) = oneshot::channel();
    cluster.nodes[leader]
        .host
        .send(
            P,
            Request::Checkpoint {
                ticket: Ticket(1_000_000 + count as u64),
                reply,
            },
        )
        .expect("checkpoint queued");
    answers.push(answer);
    answered(cluster, answers, stop)
}

/// Runs until node `i` holds exactly what the leader holds (false: stopped first).
fn converge(cluster: &mut SteppedCluster, i: usize, context: &str, stop: Stop<'_>) -> bool {
    for _ in 0..20_000 {
        if stop(cluster) {
            return false;
        }
        let leader = cluster.leader(P);
        if let Some(leader) = leader
            && leader != i
            && cluster.nodes[i].app.held(P) == cluster.nodes[leader].app.held(P)
        {
            return true;
        }
        cluster.step();
    }
    let held: Vec<usize> = cluster.nodes.iter().map(|n| n.app.held(P).len()).collect();
    let roles: Vec<_> = cluster.nodes.iter().map(|n| n.host.leadership(P)).collect();
    panic!("{context}: the follower did not catch up: held {held:?}, {roles:?}");
}

/// The run every crash point replays (the stepped cluster is deterministic): three nodes of one
/// shard, leaders keeping nothing below a checkpoint; a follower crashes, the others write on
/// and checkpoint past its log, and it restarts over its disk. Returns the cluster (the
/// follower restarted, before its install) and the follower's position and configuration.
fn follower_back_below_the_floor() -> (SteppedCluster, usize, ShardConfig) {
    let mut cluster = SteppedCluster::start_with(3, 1, |config| {
        config.shard_count = 1;
        config.core.compaction_retain_entries_max = 0;
    });
    cluster.elect();
    let never = &|_: &SteppedCluster| false;
    write_and_checkpoint(&mut cluster, "first", 3, never);
    let leader = cluster.leader(P).expect("leader");
    let follower = (leader + 1) % 3;
    converge(&mut cluster, follower, "before the crash", never);
    let config = cluster.nodes[follower].host.config().clone();
    drop(cluster.nodes.remove(follower));
    write_and_checkpoint(&mut cluster, "while-down", 20, never);
    let restarted = cluster.start_node(config.clone());
    cluster.nodes.insert(follower, restarted);
    (cluster, follower, config)
}

/// The install, then replication after it (the boundary synced, the acknowledgement counted),
/// unless `stop` says the crash point is reached first.
fn install_and_after(cluster: &mut SteppedCluster, follower: usize, stop: Stop<'_>) {
    let _ = converge(cluster, follower, "the install", stop)
        && write_and_checkpoint(cluster, "after", 2, stop)
        && converge(cluster, follower, "after the install", stop);
}

#[test]
fn every_crash_point_of_an_install_leaves_the_old_state_or_the_new_one() {
    let (mut cluster, follower, _) = follower_back_below_the_floor();
    install_and_after(&mut cluster, follower, &|_| false);
    let node = &cluster.nodes[follower];
    let finished = node.app.finished_at.lock().expect("app").clone();
    assert_eq!(finished.len(), 1, "one snapshot imported");
    let steps = node.disks[0].step_count();
    // After the import: the boundary's write, its sync, and more.
    assert!(
        steps >= finished[0] + 2,
        "{steps} steps, the import finished after step {}",
        finished[0]
    );

    let images = tempfile::tempdir().expect("images");
    let mut runs = 0;
    for step in 0..=steps {
        for (m, mode) in [
            CrashMode::LoseUnsynced,
            CrashMode::KeepUnsynced,
            CrashMode::Torn(step as u64),
        ]
        .into_iter()
        .enumerate()
        {
            let context = format!("crash after step {step} of {steps}, {mode:?}");
            // Replay up to the round in which the follower's disk passes `step`; what it sent
            // in that round never leaves.
            let (mut cluster, follower, config) = follower_back_below_the_floor();
            let disk = cluster.nodes[follower].disks[0].clone();
            let reached = |_: &SteppedCluster| disk.step_count() >= step;
            install_and_after(&mut cluster, follower, &reached);
            assert!(disk.step_count() >= step, "{context}: the replay diverged");
            let id = cluster.nodes[follower].id;
            cluster.drop_queued_from(id);
            let app = std::sync::Arc::clone(&cluster.nodes[follower].app);
            let finished = app.finished_at.lock().expect("app").clone();
            let kept = if finished.first().is_some_and(|&at| at <= step) {
                app.durable.lock().expect("app").clone()
            } else {
                BTreeMap::new()
            };
            let durable_index = kept.get(&P).map_or(0, |(index, _)| *index);
            let data_dir = images.path().join(format!("{step}-{m}"));
            disk.crash_image(step, mode, &data_dir.join("shard-0"))
                .expect("crash image");
            drop(cluster.nodes.remove(follower));
            let mut image_config = config.clone();
            image_config.data_dir = data_dir;
            let restarted = cluster.start_node_with(image_config, kept);
            cluster.nodes.insert(follower, restarted);
            install_and_after(&mut cluster, follower, &|_| false);
            // Each entry handed over at most once, in order, and none the durable state held.
            let delivered: Vec<u64> = cluster.nodes[follower]
                .app
                .delivered
                .lock()
                .expect("app")
                .iter()
                .filter(|d| d.partition == P)
                .map(|d| d.index)
                .collect();
            assert!(
                delivered.windows(2).all(|w| w[0] < w[1]),
                "{context}: handed over out of order or twice: {delivered:?}"
            );
            assert!(
                delivered.first().is_none_or(|&first| first > durable_index),
                "{context}: handed {delivered:?} again over a durable state at {durable_index}"
            );
            runs += 1;
        }
    }
    eprintln!(
        "{runs} crash images: {} steps, the import finished after step {}",
        steps + 1,
        finished[0]
    );
}
