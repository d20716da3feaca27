//! Three `Raft` nodes over `TcpTransport` on loopback: replication, restart and the
//! authentication policy.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use kommander_raft::transport::codec::{
    HEADER_BYTES, Message, MessageBody, NodeId, Term, encoded_len,
};
use kommander_raft::transport::tcp::{TcpTransport, TransportError};
use kommander_raft::{
    NodeConfig, PartitionId, PhysicalClock, Raft, ReplicateOptions, SystemClock, Transport,
};

use crate::cluster::clock::{LEADS_MS, WALL_MS, Wall};
use crate::cluster::harness::{PATIENCE, Recorder, eventually, test_config};

pub(super) struct TcpNode {
    pub(super) raft: Raft,
    pub(super) transport: Arc<TcpTransport>,
    pub(super) app: Arc<Recorder>,
}

pub(super) fn configs(
    dir: &std::path::Path,
    nodes: u64,
    secret: Option<&str>,
) -> Vec<(NodeConfig, TcpListener)> {
    let listeners: Vec<TcpListener> = (0..nodes)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").to_string())
        .collect();
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let node = i as u64 + 1;
            let mut config = test_config(node, nodes, 4, dir);
            config.endpoint = addrs[i].clone();
            config.peers = (1..=nodes)
                .filter(|&n| n != node)
                .map(|n| (n, addrs[n as usize - 1].clone()))
                .collect::<BTreeMap<_, _>>();
            config.transport.auth_secret = secret.map(str::to_owned);
            (config, listener)
        })
        .collect()
}

pub(super) async fn start(config: NodeConfig, listener: TcpListener) -> TcpNode {
    start_clocked(config, listener, Arc::new(SystemClock)).await
}

/// Starts a node whose hybrid logical clock follows `physical`.
async fn start_clocked(
    config: NodeConfig,
    listener: TcpListener,
    physical: Arc<dyn PhysicalClock>,
) -> TcpNode {
    let node = start_unserved(config, listener, physical).await;
    node.transport.serve(node.raft.inbound()).expect("serve");
    node
}

/// Starts a node whose transport does not serve yet (it connects to nobody until
/// `serve`).
pub(super) async fn start_unserved(
    config: NodeConfig,
    listener: TcpListener,
    physical: Arc<dyn PhysicalClock>,
) -> TcpNode {
    let transport =
        TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
            .expect("transport");
    let app = Arc::new(Recorder::default());
    let raft = Raft::builder(config)
        .state_machine(app.clone())
        .transport(transport.clone())
        .physical_clock(physical)
        .start()
        .await
        .expect("start");
    TcpNode {
        raft,
        transport,
        app,
    }
}

pub(super) async fn start_all(configs: Vec<(NodeConfig, TcpListener)>) -> Vec<TcpNode> {
    let mut nodes = Vec::new();
    for (config, listener) in configs {
        nodes.push(start(config, listener).await);
    }
    nodes
}

/// Shuts every node down, its transport too.
pub(super) async fn stop_all(nodes: Vec<TcpNode>) {
    for node in nodes {
        node.raft.shutdown().await;
        node.transport.shutdown();
    }
}

pub(super) async fn replicate(nodes: &[TcpNode], p: PartitionId, payload: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        for node in nodes {
            if !node.raft.am_i_leader_quick(p) {
                continue;
            }
            let written = node
                .raft
                .replicate_logs(
                    p,
                    "t",
                    Bytes::from(payload.to_owned()),
                    ReplicateOptions::default(),
                )
                .await;
            if written.is_ok() {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader accepted {payload} on {p}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) async fn wait_delivered(nodes: &[TcpNode], p: PartitionId, count: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let counts: Vec<usize> = nodes.iter().map(|n| n.app.live(p).len()).collect();
        if counts.iter().all(|&c| c >= count) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{p}: deliveries {counts:?} of {count}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) async fn join(nodes: &[TcpNode]) {
    let joins: Vec<_> = nodes
        .iter()
        .map(|n| tokio::spawn(n.raft.join_cluster(None)))
        .collect();
    for join in joins {
        join.await.expect("task").expect("joined");
    }
}

#[tokio::test]
async fn frames_carry_the_senders_clock_and_a_stamp_too_far_ahead_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let mut nodes = Vec::new();
    let secret = Some("a shared secret of the test");
    for ((config, listener), lead) in configs(dir.path(), 3, secret).into_iter().zip(LEADS_MS) {
        let wall = Arc::new(Wall(AtomicU64::new(WALL_MS + lead)));
        nodes.push(start_clocked(config, listener, wall).await);
    }
    join(&nodes).await;
    eventually("node 1's clock past node 2's stamps", || {
        nodes[0].raft.hlc().now().physical_ms >= WALL_MS + LEADS_MS[1]
    })
    .await;
    eventually("node 3's stamps refused by node 1", || {
        nodes[0].transport.stats().stamps_refused > 0
    })
    .await;
    for node in &nodes[..2] {
        let now = node.raft.hlc().now();
        assert!(now.physical_ms < WALL_MS + 60_000, "dragged to {now}");
    }
    stop_all(nodes).await;
}

#[tokio::test]
async fn three_nodes_replicate_over_authenticated_tcp() {
    let dir = tempfile::tempdir().expect("dir");
    let nodes = start_all(configs(dir.path(), 3, Some("a shared secret of the test"))).await;
    join(&nodes).await;
    for p in 1..=4 {
        for i in 0..50 {
            replicate(&nodes, PartitionId(p), &format!("p{p}-{i}")).await;
        }
    }
    for p in 1..=4 {
        wait_delivered(&nodes, PartitionId(p), 50).await;
        // A write the helper retried after an indeterminate answer may be in the log twice:
        // the nodes converge to one log, whatever its length.
        let partition = PartitionId(p);
        eventually(&format!("partition {p}'s logs converge"), || {
            let first = nodes[0].app.payloads(partition);
            nodes[1..]
                .iter()
                .all(|node| node.app.payloads(partition) == first)
        })
        .await;
    }
    for node in &nodes {
        let stats = node.transport.stats();
        assert!(stats.connects >= 2, "{stats:?}");
        assert_eq!(stats.handshakes_failed, 0, "{stats:?}");
        assert_eq!(stats.connections_dropped, 0, "{stats:?}");
    }
    stop_all(nodes).await;
}

#[test]
fn a_non_loopback_listener_needs_a_secret_or_an_explicit_opt_in() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(1, 1, 1, dir.path());
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let error = TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
        .expect_err("refused");
    assert!(
        matches!(error, TransportError::Unauthenticated(_)),
        "{error}"
    );

    config.transport.allow_unauthenticated = true;
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
        .expect("explicitly allowed");

    config.transport.allow_unauthenticated = false;
    config.transport.auth_secret = Some("0123456789abcdef".to_owned());
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
        .expect("authenticated");

    config.transport.auth_secret = Some("short".to_owned());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let error = TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
        .expect_err("short secret");
    assert!(
        error.to_string().contains("transport.auth_secret"),
        "{error}"
    );
}

#[tokio::test]
async fn idle_heartbeats_of_all_partitions_travel_in_one_frame_per_interval() {
    let dir = tempfile::tempdir().expect("dir");
    let mut configs = configs(dir.path(), 3, None);
    for (config, _) in &mut configs {
        config.initial_partitions = 64;
        // Idle partitions would quiesce (decision 0007) and leave only the shards'
        // keep-alives: this test is about the partitions' own heartbeats.
        config.quiesce_after_ticks = 0;
    }
    let interval_ms =
        configs[0].0.tick_interval_ms * u64::from(configs[0].0.heartbeat_interval_ticks);
    let nodes = start_all(configs).await;
    join(&nodes).await;
    for p in 1..=64 {
        replicate(&nodes, PartitionId(p), "warm").await;
    }
    for p in 1..=64 {
        wait_delivered(&nodes, PartitionId(p), 1).await;
    }
    // Idle from here: only heartbeats (and their responses) flow, for every partition.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let window = Duration::from_secs(1);
    let before: Vec<_> = nodes.iter().map(|n| n.transport.stats()).collect();
    tokio::time::sleep(window).await;
    // The smallest message an idle partition sends (a heartbeat's response), in a frame of
    // its own: what every frame would weigh without coalescing.
    let response = Message {
        partition: PartitionId(1),
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::HeartbeatResponse { read_round: 0 },
    };
    let alone = (HEADER_BYTES + 4 + encoded_len(&response)) as u64;
    for (node, before) in nodes.iter().zip(before) {
        let after = node.transport.stats();
        let frames = after.frames_sent - before.frames_sent;
        let bytes = after.bytes_sent - before.bytes_sent;
        // Each node leads some 21 of the 64 partitions and follows the rest: coalesced, a
        // frame to a peer carries every heartbeat of an interval (or every response of a
        // shard turn), many messages; without coalescing each partition beats, and each
        // follower answers, in frames of their own. Judged by the frames' weight, not their
        // rate, so a slow or loaded machine does not change the verdict.
        assert!(frames > 0, "no heartbeats at all");
        assert!(
            bytes >= 4 * alone * frames,
            "{frames} frames of {} bytes on average for 64 idle partitions (a lone message's \
             frame weighs {alone}, heartbeat interval {interval_ms} ms): heartbeats are not \
             coalesced",
            bytes / frames
        );
    }
    stop_all(nodes).await;
}

#[test]
fn the_transport_names_an_invalid_field_as_the_node_configuration_spells_it() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(1, 1, 1, dir.path());
    config.cluster_name = "c".repeat(256);
    let node_error = config.validate().expect_err("cluster name too long");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let transport_error =
        TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
            .expect_err("cluster name too long");
    assert!(
        matches!(&transport_error, TransportError::Config(e) if e.field == "cluster_name"),
        "{transport_error}"
    );
    assert_eq!(node_error.to_string(), transport_error.to_string());

    let mut config = test_config(1, 1, 1, dir.path());
    config.transport.peer_queue_batches_max = 0;
    let node_error = config.validate().expect_err("empty peer queue");
    let error = TcpTransport::bind(&config.tcp_config(), &config.tcp_cluster())
        .expect_err("empty peer queue");
    assert_eq!(node_error.to_string(), error.to_string());
    assert!(
        error
            .to_string()
            .contains("transport.peer_queue_batches_max"),
        "{error}"
    );
}

#[test]
fn messages_the_transport_drops_are_counted_by_reason_in_the_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let dir = tempfile::tempdir().expect("dir");
    let config = test_config(1, 1, 1, dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    // The transport takes its metric handles when it starts: from this recorder.
    let transport = metrics::with_local_recorder(&recorder, || {
        TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
    })
    .expect("transport");
    let messages = crate::transport::wire::sample_messages();
    let count = messages.len();
    transport.send(kommander_raft::NodeId(9), messages);
    assert_eq!(transport.stats().messages_dropped, count as u64);
    let text = handle.render();
    let line =
        format!("kommander_transport_messages_dropped_total{{reason=\"unknown_peer\"}} {count}");
    assert!(text.contains(&line), "no `{line}` in:\n{text}");
    transport.shutdown();
}
