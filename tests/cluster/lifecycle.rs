//! Start, join, leave, cluster state, configuration errors, the transport entry points.

use std::sync::Arc;
use std::time::Duration;

use kommander_raft::core::{LogIndex, Message, MessageBody, Term};
use kommander_raft::transport::memory::MemoryNetwork;
use kommander_raft::{
    HandshakeError, HandshakeRequest, HlcTimestamp, JoinError, NodeId, PartitionId, Raft,
    RaftEvent, StartError, Status,
};

use super::harness::{PATIENCE, Recorder, TestCluster, test_config};

/// The handle crosses threads and is shared: checked at compile time.
const _: () = {
    const fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Raft>();
};

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
        let error = Raft::start(
            config,
            network.transport(NodeId(1)),
            Arc::new(Recorder::default()),
        )
        .expect_err("invalid config");
        assert!(matches!(error, StartError::Config(_)), "{error}");
        assert!(error.to_string().contains(field), "{field}: {error}");
    }
    // Nothing was created for the refused starts.
    assert!(!dir.path().join("node-1").exists());
}

#[tokio::test]
async fn join_gives_up_without_a_quorum_and_honours_the_ceiling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let network = MemoryNetwork::new();
    let mut config = test_config(1, 3, 1, dir.path());
    config.join_timeout_ms = 100;
    let raft = Raft::start(
        config,
        network.transport(NodeId(1)),
        Arc::new(Recorder::default()),
    )
    .expect("start");
    network.register(NodeId(1), raft.inbound());
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
    raft.leave_cluster().await;
    assert!(!raft.joined());
    assert_eq!(raft.join_cluster(None).await, Err(JoinError::Left));
    let result = raft
        .replicate_logs(PartitionId(1), "t", "x", Default::default())
        .await;
    assert_eq!(result.status, Status::Errored);
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
    assert!(raft.runtime_stats().wal_submissions > 0);

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
        if lag == Ok(Some(0)) && from_follower == Ok(None) {
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
                .any(|e| matches!(e, RaftEvent::PartitionMapChanged { map } if map.version == 1))
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
        endpoint: endpoint.to_owned(),
    };
    assert_eq!(raft.handshake(&hello("kommander", 2, "memory:2")), Ok(()));
    assert!(matches!(
        raft.handshake(&hello("other", 2, "memory:2")),
        Err(HandshakeError::ClusterMismatch { .. })
    ));
    assert_eq!(
        raft.handshake(&hello("kommander", 7, "memory:7")),
        Err(HandshakeError::UnknownNode(NodeId(7)))
    );
    assert_eq!(
        raft.handshake(&hello("kommander", 1, "memory:1")),
        Err(HandshakeError::UnknownNode(NodeId(1)))
    );
    assert!(matches!(
        raft.handshake(&hello("kommander", 2, "memory:5")),
        Err(HandshakeError::EndpointMismatch { .. })
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
    };
    let vote_request = || MessageBody::VoteRequest {
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
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
        Err(Status::Errored)
    );
    assert_eq!(
        raft.append_logs(vec![message(2, 2, heartbeat())]),
        Err(Status::Errored)
    );
    assert_eq!(
        raft.append_logs(vec![message(9, 1, heartbeat())]),
        Err(Status::LogsFromAnotherLeader)
    );
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
    let raft = Raft::start(
        test_config(1, 1, 1, dir.path()),
        network.transport(NodeId(1)),
        app.clone(),
    )
    .expect("start");
    network.register(NodeId(1), raft.inbound());
    block_on(raft.join_cluster(None)).expect("joined");
    let p = PartitionId(1);
    block_on(raft.wait_for_leader(p, PATIENCE)).expect("leader");
    let result = block_on(raft.replicate_logs(p, "t", "no tokio", Default::default()));
    assert_eq!(result.status, Status::Success);
    // A timeout is served by the node's timer thread, not by an executor.
    let waited = block_on(raft.wait_for_leader(PartitionId(42), Duration::from_millis(20)));
    assert_eq!(waited.err(), Some(Status::ProposalTimeout));
    block_on(raft.leave_cluster());
    assert_eq!(app.payloads(p), ["no tokio"]);
}
