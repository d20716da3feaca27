//! Start, join, leave, cluster state, configuration errors, the transport entry points.

use std::sync::Arc;
use std::time::Duration;

use kommander_raft::core::{LogIndex, Message, MessageBody, Term};
use kommander_raft::transport::memory::MemoryNetwork;
use kommander_raft::{
    Fatal, HandshakeRequest, HlcTimestamp, JoinError, NodeId, PartitionId, PeerError, QueryError,
    Raft, RaftEvent, ReplicateError, StartError, Status,
};

use super::harness::{PATIENCE, Recorder, TestCluster, start_alone, test_config};

#[test]
fn invalid_config_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    type Breaks = fn(&mut kommander_raft::NodeConfig);
    let cases: [(&str, Breaks); 4] = [
        ("tick_interval_ms", |c| c.tick_interval_ms = 0),
        ("join_timeout_ms", |c| c.join_timeout_ms = 0),
        ("events_buffered_max", |c| c.events_buffered_max = 0),
        ("initial_partitions", |c| c.initial_partitions = 0),
    ];
    for (field, breaks) in cases {
        let mut config = test_config(1, 1, 1, dir.path());
        breaks(&mut config);
        let network = MemoryNetwork::new();
        let error = block_on(
            Raft::builder(config)
                .state_machine(Arc::new(Recorder::default()))
                .transport(network.transport(NodeId(1)))
                .start(),
        )
        .expect_err("invalid config");
        assert!(matches!(error, StartError::Config(_)), "{error}");
        assert!(error.to_string().contains(field), "{field}: {error}");
        assert!(!error.is_retryable());
        assert_eq!(error.status(), Status::Errored);
    }
    // Nothing was created for the refused starts.
    assert!(!dir.path().join("node-1").exists());
    // A builder without a transport (or a state machine) is refused too.
    let error = block_on(
        Raft::builder(test_config(1, 1, 1, dir.path()))
            .state_machine(Arc::new(Recorder::default()))
            .start(),
    )
    .expect_err("no transport");
    assert!(matches!(error, StartError::Missing("transport")), "{error}");
}

#[tokio::test]
async fn join_gives_up_without_a_quorum_and_honours_the_ceiling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let network = MemoryNetwork::new();
    let raft = start_alone(dir.path(), &network, |c| c.join_timeout_ms = 100).await;
    // The caller's timeout, then the configured ceiling (below the caller's 10 s).
    for (timeout, max) in [(Some(Duration::from_millis(50)), 50), (Some(PATIENCE), 100)] {
        match raft.join_cluster(timeout).await {
            Err(JoinError::Timeout { waited, leader }) => {
                assert!(waited >= Duration::from_millis(max) && waited < PATIENCE);
                assert_eq!(leader, None);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(raft.joined() && !raft.is_initialized());
    raft.shutdown().await;
    assert!(!raft.joined());
    // Shutting down again only waits; everything else is refused as fatal.
    raft.shutdown().await;
    let shut_down = Fatal::ShutDown;
    assert_eq!(
        raft.join_cluster(None).await,
        Err(JoinError::Fatal(shut_down.clone()))
    );
    let refused = raft
        .replicate_logs(PartitionId(1), "t", "x", Default::default())
        .await
        .expect_err("shut down");
    assert_eq!(refused, ReplicateError::Fatal(shut_down.clone()));
    assert!(refused.is_fatal() && !refused.is_retryable());
    assert_eq!(
        raft.partition_status(PartitionId(0)).await.err(),
        Some(QueryError::Fatal(shut_down))
    );
}

#[tokio::test]
async fn cluster_state_and_activity() {
    let cluster = TestCluster::start(3, 1).await;
    let p = PartitionId(1);
    let raft = cluster.raft(0);
    assert_eq!(raft.local_node_id(), NodeId(1));
    assert_eq!(raft.local_endpoint(), "memory:1");
    assert_eq!(raft.local_node_name(), "node-1");
    let endpoints: Vec<String> = raft.nodes().into_iter().map(|n| n.endpoint).collect();
    assert_eq!(endpoints, ["memory:2", "memory:3"]);
    assert_eq!(raft.update_nodes(), raft.nodes());
    assert_eq!(raft.config().node_id, 1);
    assert!(raft.shard_counters().wal_submissions > 0);

    // A leader hears from every follower (followers hear from leaders only).
    let leader = cluster.raft(cluster.leader(p).await);
    let mut active = leader.active_nodes(Duration::from_secs(5));
    active.sort();
    let mut others: Vec<String> = leader.nodes().into_iter().map(|n| n.endpoint).collect();
    others.sort();
    assert_eq!(active, others);
    let seen = leader.last_node_activity(&others[0]);
    assert!(seen > HlcTimestamp::ZERO && seen <= leader.hlc().now());
    assert_eq!(leader.last_node_activity("memory:9"), HlcTimestamp::ZERO);

    // Follower lag is known on the leader only.
    cluster.replicate(p, b"x").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // Leadership may move under load: ask whoever leads now.
        let leader = cluster.leader(p).await;
        let follower = (leader + 1) % 3;
        let endpoint = cluster.raft(follower).local_endpoint().to_owned();
        let lag = cluster.raft(leader).follower_lag(p, &endpoint).await;
        let leader_endpoint = cluster.raft(leader).local_endpoint().to_owned();
        let from_follower = cluster
            .raft(follower)
            .follower_lag(p, &leader_endpoint)
            .await;
        let behind = lag
            .clone()
            .map(|lag| lag.map(|lag| (lag.entries_behind(), lag.snapshot)));
        if behind == Ok(Some((0, None))) && from_follower == Ok(None) {
            let unknown = cluster.raft(leader).follower_lag(p, "memory:9").await;
            assert_eq!(unknown, Ok(None));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag {lag:?}, asked of a follower {from_follower:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Every node applied the map and said so.
    for node in &cluster.nodes {
        let events = node.events.lock().expect("events").clone();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RaftEvent::PartitionMapChanged { version: 1 }))
        );
    }
}

#[tokio::test]
async fn handshake_checks_cluster_node_and_endpoint() {
    let cluster = TestCluster::start(2, 1).await;
    let raft = cluster.raft(0);
    let hello = |cluster_name: &str, node: u64, endpoint: &str| HandshakeRequest {
        cluster_name: cluster_name.to_owned(),
        node_id: NodeId(node),
        incarnation: 0,
        endpoint: endpoint.to_owned(),
    };
    assert_eq!(raft.handshake(&hello("kommander", 2, "memory:2")), Ok(()));
    assert!(matches!(
        raft.handshake(&hello("other", 2, "memory:2")),
        Err(PeerError::ClusterMismatch { .. })
    ));
    assert_eq!(
        raft.handshake(&hello("kommander", 7, "memory:7")),
        Err(PeerError::UnknownNode(NodeId(7)))
    );
    assert_eq!(
        raft.handshake(&hello("kommander", 1, "memory:1")),
        Err(PeerError::UnknownNode(NodeId(1)))
    );
    assert!(matches!(
        raft.handshake(&hello("kommander", 2, "memory:5")),
        Err(PeerError::EndpointMismatch { .. })
    ));
}

#[tokio::test]
async fn transport_entry_points_check_kind_sender_and_receiver() {
    let cluster = TestCluster::start(2, 1).await;
    let raft = cluster.raft(0);
    let message = |from: u64, to: u64, body: MessageBody| Message {
        partition: PartitionId(1),
        from: NodeId(from),
        to: NodeId(to),
        term: Term(0),
        body,
    };
    let heartbeat = || MessageBody::Heartbeat {
        commit: LogIndex(0),
        read_round: 0,
        quiesce: false,
    };
    let vote_request = || MessageBody::VoteRequest {
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        configuration_version: 0,
        transfer: false,
    };
    // The right kind from a peer is accepted (a stale term: the replica ignores it).
    assert_eq!(raft.append_logs(vec![message(2, 1, heartbeat())]), Ok(()));
    assert_eq!(
        raft.request_vote(vec![message(2, 1, vote_request())]),
        Ok(())
    );
    assert_eq!(
        raft.vote(vec![message(
            2,
            1,
            MessageBody::VoteResponse { granted: false }
        )]),
        Ok(())
    );
    assert_eq!(
        raft.complete_append_logs(vec![message(
            2,
            1,
            MessageBody::HeartbeatResponse { read_round: 0 }
        )]),
        Ok(())
    );
    // Wrong kind, wrong receiver, unknown sender: refused, nothing delivered.
    assert_eq!(
        raft.request_vote(vec![message(2, 1, heartbeat())]),
        Err(PeerError::UnexpectedMessage)
    );
    assert_eq!(
        raft.append_logs(vec![message(2, 2, heartbeat())]),
        Err(PeerError::Misaddressed { to: NodeId(2) })
    );
    let unknown = raft
        .append_logs(vec![message(9, 1, heartbeat())])
        .expect_err("unknown sender");
    assert_eq!(unknown, PeerError::UnknownNode(NodeId(9)));
    assert_eq!(unknown.status(), Status::LogsFromAnotherLeader);
    // The cluster still works.
    cluster.replicate(PartitionId(1), b"still fine").await;
}

/// Polls `future` on this thread with a waker that unparks it: no async runtime at all.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

#[test]
fn the_handle_needs_no_tokio_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let network = MemoryNetwork::new();
    let app = Arc::new(Recorder::default());
    let raft = block_on(
        Raft::builder(test_config(1, 1, 1, dir.path()))
            .state_machine(app.clone())
            .transport(network.transport(NodeId(1)))
            .start(),
    )
    .expect("start");
    network.register(NodeId(1), raft.inbound());
    block_on(raft.join_cluster(None)).expect("joined");
    let p = PartitionId(1);
    block_on(raft.wait_for_leader(p, Some(PATIENCE))).expect("leader");
    let write = raft.replicate_logs(p, "t", "no tokio", Default::default());
    // The caller's task holds the write's future (moved into it at `.await`): one state, not
    // a future wrapping another (552 bytes when the invalid-write path was an outer `async`).
    let bytes = std::mem::size_of_val(&write);
    assert!(bytes <= 256, "a write's future takes {bytes} bytes");
    block_on(write).expect("written");
    // A timeout is served by the node's timer thread, not by an executor.
    let hour = Duration::from_secs(3600);
    let waited = block_on(raft.wait_for_leader_stable(p, hour, Some(Duration::from_millis(20))));
    assert!(
        matches!(waited, Err(QueryError::Timeout { .. })),
        "{waited:?}"
    );
    // A partition outside the map is refused at once.
    assert_eq!(
        block_on(raft.wait_for_leader(PartitionId(42), None)).err(),
        Some(QueryError::PartitionMoved {
            partition: PartitionId(42)
        })
    );
    block_on(raft.shutdown());
    assert_eq!(app.payloads(p), ["no tokio"]);
}
