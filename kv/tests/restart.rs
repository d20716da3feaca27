//! A restart keeps every acknowledged write: a follower that was down catches up (by
//! snapshot: its leaders compacted past what they retain), and a whole cluster restarted
//! rebuilds its state from the snapshot files and the log above them.

use crate::cluster::{Cluster, eventually};

const KEYS: usize = 240;

fn value(key: usize, round: usize) -> String {
    format!("value-{key}-{round}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_serves_every_acknowledged_write() {
    let mut cluster = Cluster::start(|config| {
        config.kv.checkpoint_interval_entries = 20;
        config.kv.checkpoint_check_interval_ms = 10;
        config.node.compaction_retain_entries_max = 4;
    })
    .await;
    let mut expected: Vec<Option<String>> = vec![None; KEYS];
    for (key, slot) in expected.iter_mut().enumerate().take(KEYS / 2) {
        cluster.put(&format!("k{key}"), &value(key, 0)).await;
        *slot = Some(value(key, 0));
    }
    // Node 3 misses the rest: new keys, overwrites and deletes.
    cluster.stop(2).await;
    for (key, slot) in expected.iter_mut().enumerate() {
        if key % 7 == 3 && slot.is_some() {
            let answer = cluster.send(0, "DELETE", &format!("/kv/k{key}"), b"").await;
            assert_eq!(answer.outcome(), "ok", "{answer:?}");
            *slot = None;
        } else {
            cluster.put(&format!("k{key}"), &value(key, 1)).await;
            *slot = Some(value(key, 1));
        }
    }
    cluster.start_nodes(&[2]).await;
    assert_all(&cluster, &[2], &expected).await;

    // The WAL was compacted: what survives is the snapshot files plus the log above them.
    for partition in cluster.partitions() {
        for i in 0..3 {
            let status = cluster.status(i, partition).await;
            assert!(
                status.wal_floor.get() > 0,
                "node {i} {partition}: the WAL was never compacted ({status:?})"
            );
        }
    }
    for i in 0..3 {
        cluster.stop(i).await;
    }
    cluster.start_nodes(&[0, 1, 2]).await;
    assert_all(&cluster, &[0, 1, 2], &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_file_that_cannot_be_written_keeps_the_log_for_the_restart() {
    let mut cluster = Cluster::start(|config| {
        config.kv.checkpoint_interval_entries = 20;
        config.kv.checkpoint_check_interval_ms = 10;
    })
    .await;
    // Node 1 can no longer write its snapshot files (its directory is gone).
    std::fs::remove_dir_all(cluster.snapshot_dir(0)).expect("remove the snapshot directory");
    let expected: Vec<Option<String>> = (0..100).map(|key| Some(value(key, 0))).collect();
    for (key, value) in expected.iter().enumerate() {
        cluster
            .put(&format!("k{key}"), value.as_deref().expect("a value"))
            .await;
    }
    for partition in cluster.partitions() {
        // The checkpoints committed: the other nodes wrote their files and compacted.
        eventually(|| async {
            let compacted = cluster.status(1, partition).await.wal_floor.get() > 0
                && cluster.status(2, partition).await.wal_floor.get() > 0;
            if compacted {
                Ok(())
            } else {
                Err(format!("{partition} never compacted"))
            }
        })
        .await;
        // Node 1 applied those checkpoints but holds no file: its WAL keeps every entry.
        let status = cluster.status(0, partition).await;
        assert!(status.floor.get() > 0, "{status:?}");
        assert_eq!(status.wal_floor.get(), 0, "{partition}: {status:?}");
    }
    cluster.stop(0).await;
    cluster.start_nodes(&[0]).await;
    assert_all(&cluster, &[0], &expected).await;
}

/// Every key's linearizable read on each of `nodes` is the expected value.
async fn assert_all(cluster: &Cluster, nodes: &[usize], expected: &[Option<String>]) {
    for &i in nodes {
        for (key, value) in expected.iter().enumerate() {
            let read = cluster.get(i, &format!("k{key}")).await;
            assert_eq!(
                read.as_deref(),
                value.as_ref().map(String::as_bytes),
                "node {i}, key k{key}"
            );
        }
    }
}
