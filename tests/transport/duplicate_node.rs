//! Duplicate node ids between whole nodes over TCP (decision 0005, "Duplicate node ids"): a
//! second `Raft` started with the id of a running node is refused by the cluster and stops
//! (its join fails, its requests and its event say why) while the first keeps serving; a
//! node restarted on its data directory, and a node whose data directory was replaced after
//! its process stopped, rejoin.

use std::net::TcpListener;
use std::sync::Arc;

use bytes::Bytes;
use kommander_raft::{
    Fatal, JoinError, NodeConfig, PartitionId, QueryError, RaftEvent, ReplicateOptions, SystemClock,
};

use super::cluster::{
    TcpNode, configs, join, replicate, start_all, start_unserved, stop_all, wait_delivered,
};
use crate::cluster::harness::{PATIENCE, eventually};

const P: PartitionId = PartitionId(1);

/// The configuration `original` with another data directory, listening on `listener`.
fn copy_of(
    original: &NodeConfig,
    data_dir: &std::path::Path,
    listener: &TcpListener,
) -> NodeConfig {
    let mut config = original.clone();
    config.data_dir = data_dir.to_owned();
    config.endpoint = listener.local_addr().expect("addr").to_string();
    config
}

/// Starts a node subscribed to its events before its transport serves (before it can hear
/// anything).
async fn start_watched(
    config: NodeConfig,
    listener: TcpListener,
) -> (TcpNode, tokio::sync::broadcast::Receiver<RaftEvent>) {
    let node = start_unserved(config, listener, Arc::new(SystemClock)).await;
    let events = node.raft.subscribe();
    node.transport.serve(node.raft.inbound()).expect("serve");
    (node, events)
}

#[tokio::test]
async fn a_second_node_with_an_id_in_use_is_refused_and_stops_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let configs = configs(dir.path(), 3, Some("a shared secret of the test"));
    let node_3 = configs[2].0.clone();
    let nodes = start_all(configs).await;
    join(&nodes).await;
    replicate(&nodes, P, "before").await;
    wait_delivered(&nodes, P, 1).await;

    // Another process started with node 3's id (a copied configuration), its own data
    // directory (another incarnation) and address.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = copy_of(&node_3, &dir.path().join("copy"), &listener);
    let (copy, mut events) = start_watched(config, listener).await;
    let joining = tokio::spawn(copy.raft.join_cluster(None));
    let stopped = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(RaftEvent::DuplicateNode { node, reason }) => return (node, reason),
                Ok(_) => {}
                Err(error) => panic!("no DuplicateNode event: {error}"),
            }
        }
    })
    .await
    .expect("the copy stops");
    assert_eq!(stopped.0, kommander_raft::NodeId(3));
    assert!(stopped.1.contains("another live process"), "{}", stopped.1);
    let joined = joining.await.expect("join task");
    assert!(
        matches!(joined, Err(JoinError::Fatal(Fatal::DuplicateNode { .. }))),
        "{joined:?}"
    );
    let asked = copy
        .raft
        .wait_for_leader(P, Some(PATIENCE))
        .await
        .expect_err("a stopped node answers nothing");
    assert!(
        matches!(asked, QueryError::Fatal(Fatal::DuplicateNode { .. })),
        "{asked:?}"
    );
    let written = copy
        .raft
        .replicate_logs(
            P,
            "t",
            Bytes::from_static(b"x"),
            ReplicateOptions::default(),
        )
        .await
        .expect_err("a stopped node writes nothing");
    assert!(written.is_fatal(), "{written:?}");

    // The cluster, node 3 included, keeps serving.
    for i in 0..10 {
        replicate(&nodes, P, &format!("after-{i}")).await;
    }
    wait_delivered(&nodes, P, 11).await;
    let refused: u64 = nodes[..2]
        .iter()
        .map(|n| n.transport.stats().handshakes_failed)
        .sum();
    assert!(refused > 0, "the copy's handshakes were refused");
    copy.transport.shutdown();
    stop_all(nodes).await;
}

#[tokio::test]
async fn a_restarted_node_and_a_replaced_data_directory_rejoin() {
    let dir = tempfile::tempdir().expect("dir");
    let configs = configs(dir.path(), 3, None);
    let node_3 = configs[2].0.clone();
    let mut nodes = start_all(configs).await;
    join(&nodes).await;
    replicate(&nodes, P, "first").await;
    wait_delivered(&nodes, P, 1).await;

    // Restarted on its own data directory (the same incarnation), at its address.
    for (round, data_dir) in [
        ("restarted", node_3.data_dir.clone()),
        ("replaced", dir.path().join("replaced-disk")),
    ] {
        let old = nodes.pop().expect("node 3");
        old.raft.shutdown().await;
        old.transport.shutdown();
        let listener = TcpListener::bind(&node_3.endpoint).expect("node 3's address again");
        let config = copy_of(&node_3, &data_dir, &listener);
        let (node, mut events) = start_watched(config, listener).await;
        node.raft.join_cluster(None).await.expect("rejoined");
        nodes.push(node);
        for i in 0..5 {
            replicate(&nodes, P, &format!("{round}-{i}")).await;
        }
        let last = Bytes::from(format!("{round}-4"));
        eventually(&format!("{round} node 3 delivers"), || {
            nodes[2].app.payloads(P).contains(&last)
        })
        .await;
        while let Ok(event) = events.try_recv() {
            assert!(
                !matches!(event, RaftEvent::DuplicateNode { .. }),
                "{round}: {event:?}"
            );
        }
    }
    stop_all(nodes).await;
}
