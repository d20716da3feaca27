//! Restart of every node: each partition restores from its shard's WAL, fires restore
//! started/finished, and hands the application exactly the committed entries, in order, once.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use kommander_raft::{PartitionId, RaftEvent, ReplicateOptions};

use super::harness::{Recorder, TestCluster};

#[tokio::test]
async fn restarting_every_node_loses_nothing_and_delivers_once() {
    let mut cluster = TestCluster::start(3, 4).await;
    let partitions = cluster.user_partitions();
    let mut acked: Vec<(PartitionId, Vec<Bytes>)> = Vec::new();
    for &p in &partitions {
        let mut payloads = Vec::new();
        for k in 0..10 {
            let payload = Bytes::from(format!("{p}-{k}"));
            cluster.replicate(p, &payload).await;
            payloads.push(payload);
        }
        // A rolled-back proposal is never delivered, before or after the restart.
        let leader = cluster.raft(cluster.leader(p).await);
        let options = ReplicateOptions {
            auto_commit: false,
            ..ReplicateOptions::default()
        };
        let held = leader
            .replicate_logs(p, "held", "rolled back", options)
            .await
            .expect("held");
        leader
            .rollback_logs(p, held.ticket)
            .await
            .expect("rolled back");
        acked.push((p, payloads));
    }
    for (p, payloads) in &acked {
        cluster.wait_delivered(*p, payloads.len()).await;
    }
    let before: Vec<Arc<Recorder>> = cluster.nodes.iter().map(|n| Arc::clone(&n.app)).collect();

    cluster.stop_all().await;
    for i in 0..cluster.nodes.len() {
        cluster.nodes[i].app = Arc::new(Recorder::default());
        cluster.nodes[i].events.lock().expect("events").clear();
        cluster.start_node(i).await;
    }
    cluster.join_all().await;
    // Joined means the map is applied and every partition opened; restores finish after.
    let all: Vec<PartitionId> = std::iter::once(PartitionId(0))
        .chain(partitions.iter().copied())
        .collect();
    cluster.wait_restored(&all).await;

    for (i, node) in cluster.nodes.iter().enumerate() {
        for (p, payloads) in &acked {
            let restored = node.app.restored(*p);
            // Exactly what the previous incarnation applied, in order, once.
            assert_eq!(restored, before[i].live(*p), "node {i} {p}");
            let restored_payloads: Vec<Bytes> =
                restored.iter().map(|s| s.payload.clone()).collect();
            assert_eq!(&restored_payloads, payloads, "node {i} {p}");
            assert!(
                node.app.live(*p).is_empty(),
                "node {i} {p}: redelivered live"
            );
        }
        let events = node.events.lock().expect("events").clone();
        let started: HashSet<PartitionId> = events
            .iter()
            .filter_map(|e| match e {
                RaftEvent::RestoreStarted { partition } => Some(*partition),
                _ => None,
            })
            .collect();
        let finished: HashSet<PartitionId> = events
            .iter()
            .filter_map(|e| match e {
                RaftEvent::RestoreFinished { partition, .. } => Some(*partition),
                _ => None,
            })
            .collect();
        for p in std::iter::once(PartitionId(0)).chain(partitions.iter().copied()) {
            assert!(
                started.contains(&p) && finished.contains(&p),
                "node {i} {p}: {events:?}"
            );
        }
        // The map is not committed twice: the restored one is re-applied.
        assert_eq!(
            node.raft.as_ref().expect("running").partition_map().version,
            1
        );
    }

    // The restarted cluster accepts writes; new entries follow the restored ones.
    for &p in &partitions {
        let written = cluster.replicate(p, b"after restart").await;
        cluster.wait_delivered(p, 1).await;
        for node in &cluster.nodes {
            let live = node.app.live(p);
            assert_eq!(live.len(), 1);
            assert_eq!(live[0].index, written.log_index.get());
            assert!(live[0].index > node.app.restored(p).last().expect("restored").index);
        }
    }
    cluster.assert_one_leader_per_term();
}
