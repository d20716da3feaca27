//! Snapshots through the whole node: a follower whose disk was replaced while it was down
//! comes back below every leader's compaction floor, of the system partition too. It
//! initialises from the system partition's snapshot (the partition map) and catches up the
//! user partition by the application's snapshot, while the others keep acknowledging writes;
//! afterwards its application holds every acknowledged write, and a restart finds the map
//! again.

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use kommander_raft::{FollowerLag, PartitionId, RaftEvent};

use super::harness::{Recorder, TestCluster};

/// Writes `count` payloads `tag-k` to `p`, returning them.
async fn write(cluster: &TestCluster, p: PartitionId, tag: &str, count: usize) -> Vec<Bytes> {
    let mut payloads = Vec::with_capacity(count);
    for k in 0..count {
        let payload = Bytes::from(format!("{tag}-{k}"));
        cluster.replicate(p, &payload).await;
        payloads.push(payload);
    }
    payloads
}

/// A checkpoint of `p` on its leader.
async fn checkpoint(cluster: &TestCluster, p: PartitionId) {
    let leader = cluster.leader(p).await;
    cluster
        .raft(leader)
        .replicate_checkpoint(p)
        .await
        .expect("checkpoint");
}

#[tokio::test]
async fn a_wiped_follower_initialises_and_catches_up_by_snapshot() {
    // Leaders keep few entries below a checkpoint: node 3 must come back by snapshot.
    let mut cluster =
        TestCluster::start_with(3, 2, None, |c| c.compaction_retain_entries_max = 4).await;
    let p = PartitionId(1);
    let mut acked = write(&cluster, p, "before", 20).await;
    cluster.wait_delivered(p, acked.len()).await;

    // Node 3 goes down; the others write on and checkpoint both partitions, so that its next
    // log entries are below every leader's floor.
    let gone = 2;
    cluster.stop_node(gone).await;
    acked.extend(write(&cluster, p, "while-down", 30).await);
    // The application's own entries on the system partition push its map entry below the
    // floor too.
    let system = write(&cluster, PartitionId(0), "shared", 10).await;
    checkpoint(&cluster, p).await;
    checkpoint(&cluster, PartitionId(0)).await;
    acked.extend(write(&cluster, p, "after-checkpoint", 5).await);

    // Its disk is replaced: nothing of its data directory is left.
    std::fs::remove_dir_all(&cluster.nodes[gone].config.data_dir).expect("wipe");
    cluster.nodes[gone].app = std::sync::Arc::new(Recorder::default());
    cluster.start_node(gone).await;
    cluster
        .raft(gone)
        .join_cluster(None)
        .await
        .expect("joined from the P0 snapshot");
    acked.extend(write(&cluster, p, "after-restart", 5).await);
    // The writes and the checkpoint.
    cluster.wait_delivered(p, acked.len() + 1).await;

    // Its application holds every acknowledged write, in log order, exactly once (and the
    // checkpoint, whose payload is empty), as a node that never went down does.
    let node = &cluster.nodes[gone];
    let held = node.app.payloads(p);
    let writes: Vec<Bytes> = held.iter().filter(|b| !b.is_empty()).cloned().collect();
    assert_eq!(writes, acked);
    assert_eq!(held, cluster.nodes[0].app.payloads(p));
    let shared = node.app.payloads(PartitionId(0));
    let shared: Vec<Bytes> = shared.iter().filter(|b| !b.is_empty()).cloned().collect();
    assert_eq!(
        shared, system,
        "the application's P0 state came with the map"
    );
    let events = node.events.lock().expect("events").clone();
    for partition in [PartitionId(0), p] {
        assert!(
            events.iter().any(|e| matches!(
                e,
                RaftEvent::SnapshotInstalled { partition: installed, .. } if *installed == partition
            )),
            "no snapshot installed on {partition}: {events:?}"
        );
    }
    let sent = cluster.nodes.iter().filter(|n| {
        n.events
            .lock()
            .expect("events")
            .iter()
            .any(|e| matches!(e, RaftEvent::SnapshotSent { partition, .. } if *partition == p))
    });
    assert_eq!(sent.count(), 1, "one leader sent p1's snapshot");

    // Restarted, it holds no map entry in its P0 log (that starts after the snapshot): it
    // initialises from the map it made durable when it installed the snapshot.
    cluster.stop_node(gone).await;
    cluster.start_node(gone).await;
    cluster
        .raft(gone)
        .join_cluster(None)
        .await
        .expect("joined from the durable map");
    cluster.assert_one_leader_per_term();
}

/// The lag of node `follower` on `p` as `p`'s current leader sees it.
async fn lag_of(cluster: &TestCluster, p: PartitionId, follower: usize) -> Option<FollowerLag> {
    let leader = cluster.leader(p).await;
    let endpoint = cluster.raft(follower).local_endpoint().to_owned();
    cluster
        .raft(leader)
        .follower_lag(p, &endpoint)
        .await
        .expect("lag")
}

#[tokio::test]
async fn follower_lag_shows_a_snapshot_on_its_way() {
    let mut cluster =
        TestCluster::start_with(3, 1, None, |c| c.compaction_retain_entries_max = 4).await;
    let p = PartitionId(1);
    let written = write(&cluster, p, "before", 10).await;
    cluster.wait_delivered(p, written.len()).await;
    let behind = 2;
    cluster.stop_node(behind).await;
    write(&cluster, p, "while-down", 20).await;
    checkpoint(&cluster, p).await;

    // Node 3 comes back below the floor; its import waits, so the transfer stays open.
    let (release, hold) = mpsc::channel();
    *cluster.nodes[behind].app.hold_import.lock().expect("hold") = Some(hold);
    cluster.start_node(behind).await;
    cluster
        .raft(behind)
        .join_cluster(None)
        .await
        .expect("rejoined");
    let deadline = tokio::time::Instant::now() + super::harness::PATIENCE;
    let on_its_way = loop {
        if let Some(lag) = lag_of(&cluster, p, behind).await
            && let Some(progress) = lag.snapshot
            && progress.bytes_sent > 0
        {
            break (lag, progress);
        }
        assert!(tokio::time::Instant::now() < deadline, "no transfer seen");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let (lag, progress) = on_its_way;
    assert!(lag.entries_behind() > 0, "{lag:?}: behind until installed");
    assert!(progress.index > lag.match_index, "{lag:?}");
    release.send(()).expect("release the import");

    // Installed: nothing on its way, nothing behind.
    loop {
        if let Some(lag) = lag_of(&cluster, p, behind).await
            && lag.snapshot.is_none()
            && lag.entries_behind() == 0
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
