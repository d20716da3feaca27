//! Checkpoints keep the log bounded: after thousands of writes each replica's WAL holds
//! about one checkpoint interval of entries per partition.

use std::sync::Arc;

use hyper::StatusCode;
use tokio::sync::Semaphore;

use crate::cluster::{Cluster, eventually};

const WRITES: usize = 3_000;
const INTERVAL: u64 = 100;
/// Writes in flight at once.
const CONCURRENCY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_keep_the_log_bounded_under_thousands_of_writes() {
    let cluster = Arc::new(
        Cluster::start(|config| {
            config.kv.checkpoint_interval_entries = INTERVAL;
            config.kv.checkpoint_check_interval_ms = 10;
        })
        .await,
    );
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut writes = Vec::with_capacity(WRITES);
    for n in 0..WRITES {
        let permit = Arc::clone(&permits).acquire_owned().await.expect("permits");
        let cluster = Arc::clone(&cluster);
        writes.push(tokio::spawn(async move {
            // A few keys, written over and over: the state stays small, the log would not.
            let key = format!("counter{}", n % 8);
            let leader = cluster.leader_of(&key).await;
            let path = format!("/kv/{key}");
            let answer = cluster
                .send(leader, "PUT", &path, n.to_string().as_bytes())
                .await;
            assert_eq!(answer.status, StatusCode::OK, "write {n}: {answer:?}");
            drop(permit);
        }));
    }
    for write in writes {
        write.await.expect("a write");
    }
    let bound = 2 * INTERVAL + CONCURRENCY as u64;
    for partition in cluster.partitions() {
        for i in 0..3 {
            // The last checkpoint's compaction waits for its snapshot file: poll until done.
            let status = eventually(|| async {
                let status = cluster.status(i, partition).await;
                let kept = status.last_index.get() - status.wal_floor.get();
                if kept <= bound {
                    Ok(status)
                } else {
                    Err(format!(
                        "node {i} {partition} keeps {kept} entries in its WAL (bound {bound}): {status:?}"
                    ))
                }
            })
            .await;
            assert!(status.last_index.get() > 4 * INTERVAL, "{status:?}");
        }
    }
}
