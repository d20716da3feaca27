//! The TCP transport's peer set changes while it runs (`Transport::set_peers`): a new peer is
//! reached and admitted, a removed one loses its connections both ways and is refused, a peer
//! that moved is reached at its new endpoint, the same set again reconnects nothing; and a
//! peer port over its connection cap answers `Busy`, which the connecting side sees and backs
//! off from. Real loopback sockets; some tests play a peer themselves with the handshake and
//! frame reader, to see exactly what reaches it. Every wait polls with a deadline.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kommander_raft::core::{Message, MessageBody};
use kommander_raft::transport::codec::{
    Frame, FrameError, FrameKind, UNSTAMPED, decode_messages, encode_messages, write_frame,
};
use kommander_raft::transport::tcp::handshake::{
    self, ConnectionHandshakeError, ConnectionRole, HANDSHAKE_FRAME_BYTES_MAX, Hello, Identity,
    RejectCode,
};
use kommander_raft::transport::tcp::reader::{Deadlines, FrameReader};
use kommander_raft::transport::tcp::{TcpCluster, TcpConfig, TcpTransport, TransportError};
use kommander_raft::{Inbound, NodeId, PartitionId, PeerSetError, Term, Transport};

use crate::cluster::harness::PATIENCE;

pub(super) const CLUSTER: &str = "peers-test";
pub(super) const POLL: Duration = Duration::from_millis(5);

/// What a node received, in order.
#[derive(Default)]
pub(super) struct Received(Mutex<Vec<Message>>);

impl Inbound for Received {
    fn deliver(&self, messages: Vec<Message>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(messages);
    }
}

impl Received {
    /// The contexts of the `ReadIndexRequest`s received from `from`.
    fn contexts_from(&self, from: u64) -> Vec<u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|m| m.from == NodeId(from))
            .filter_map(|m| match m.body {
                MessageBody::ReadIndexRequest { context } => Some(context),
                _ => None,
            })
            .collect()
    }
}

/// One message that leaves at once (no heartbeat coalescing), told apart by `context`.
pub(super) fn message(from: u64, to: u64, context: u64) -> Vec<Message> {
    vec![Message {
        partition: PartitionId(1),
        from: NodeId(from),
        to: NodeId(to),
        term: Term(1),
        body: MessageBody::ReadIndexRequest { context },
    }]
}

pub(super) fn config() -> TcpConfig {
    TcpConfig {
        listen_address: "127.0.0.1:0".to_owned(),
        reconnect_backoff_max_ms: 100,
        // Longer than any wait of these tests: a connection they see closed was closed on
        // purpose, not for idleness.
        idle_timeout_ms: 3 * PATIENCE.as_millis() as u64,
        ..TcpConfig::default()
    }
}

pub(super) fn cluster(node: u64, peers: &[(u64, &str)]) -> TcpCluster {
    TcpCluster {
        cluster_name: CLUSTER.to_owned(),
        node_id: NodeId(node),
        peers: peer_set(peers),
        heartbeat_interval: Duration::from_millis(50),
    }
}

fn peer_set(peers: &[(u64, &str)]) -> BTreeMap<NodeId, String> {
    peers
        .iter()
        .map(|&(id, address)| (NodeId(id), address.to_owned()))
        .collect()
}

pub(super) struct Node {
    pub(super) transport: Arc<TcpTransport>,
    pub(super) received: Arc<Received>,
    pub(super) address: String,
}

pub(super) fn start_with(config: &TcpConfig, node: u64, peers: &[(u64, &str)]) -> Node {
    serve(TcpTransport::bind(config, &cluster(node, peers)).expect("transport"))
}

/// Serves `transport` (bound, not serving yet) as a node that records what it receives.
pub(super) fn serve(transport: Arc<TcpTransport>) -> Node {
    let received = Arc::new(Received::default());
    transport.serve(received.clone()).expect("serve");
    let address = transport.local_addr().to_string();
    Node {
        transport,
        received,
        address,
    }
}

pub(super) fn start(node: u64, peers: &[(u64, &str)]) -> Node {
    start_with(&config(), node, peers)
}

/// An address nothing listens on (a node's peer that never answers).
pub(super) fn nowhere() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// Polls `done` until it holds; fails with `what` once `PATIENCE` passed.
pub(super) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Sends `context` from `from` to `to` until `to` has received it (batches sent before the
/// link is up may be dropped).
pub(super) fn deliver(from: &Node, from_id: u64, to: &Node, to_id: u64, context: u64) {
    wait_until(&format!("{context} from {from_id} at {to_id}"), || {
        from.transport
            .send(NodeId(to_id), message(from_id, to_id, context));
        to.received.contexts_from(from_id).contains(&context)
    });
}

/// The test playing node `node`.
pub(super) fn identity(node: u64) -> Identity {
    Identity {
        cluster: CLUSTER.to_owned(),
        node: NodeId(node),
        incarnation: 0,
        secret: None,
        client_endpoint: None,
    }
}

pub(super) fn handshake_deadlines() -> Deadlines {
    Deadlines {
        frame_timeout: PATIENCE,
        idle_timeout: PATIENCE,
    }
}

/// A connection the test holds while it plays a peer, after the handshake.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    pub(super) reader: FrameReader,
}

impl Connection {
    /// The next frame, `None` once the other side closed the connection (or reset it).
    pub(super) fn next_frame(&mut self, deadline: Instant, what: &str) -> Option<Frame> {
        let stop = || Instant::now() >= deadline;
        match self
            .reader
            .read_frame(&mut self.stream, handshake_deadlines(), &stop)
        {
            Ok(frame) => Some(frame),
            Err(FrameError::Shutdown) => panic!("timed out waiting on {what}"),
            Err(FrameError::Closed { .. } | FrameError::Io(_)) => None,
            Err(error) => panic!("{what}: {error}"),
        }
    }

    /// Reads `Messages` frames (sent by `peer` to `me`) until one carries `context`.
    fn wait_message(&mut self, peer: u64, me: u64, context: u64) {
        let deadline = Instant::now() + PATIENCE;
        let what = format!("{context} from {peer}");
        loop {
            let frame = self
                .next_frame(deadline, &what)
                .unwrap_or_else(|| panic!("closed while waiting for {what}"));
            assert_eq!(frame.kind, FrameKind::Messages);
            let messages =
                decode_messages(&frame.body, NodeId(peer), NodeId(me), 1024).expect("decodes");
            if messages
                .iter()
                .any(|m| m.body == MessageBody::ReadIndexRequest { context })
            {
                return;
            }
        }
    }

    /// Reads (keepalives may come) until the other side closes the connection.
    pub(super) fn wait_closed(&mut self, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.next_frame(deadline, what).is_some() {}
    }
}

/// Connects to `address` as peer `node` and runs the handshake.
fn connect_as(node: u64, address: &str) -> Result<Connection, ConnectionHandshakeError> {
    connect_with_role(node, address, ConnectionRole::Peer)
}

/// Connects to `address` as node `node` in `role` and runs the handshake.
pub(super) fn connect_with_role(
    node: u64,
    address: &str,
    role: ConnectionRole,
) -> Result<Connection, ConnectionHandshakeError> {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(POLL)).expect("read timeout");
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    handshake::connect(
        &mut stream,
        &mut reader,
        &identity(node),
        UNSTAMPED,
        role,
        None,
        handshake_deadlines(),
    )?;
    Ok(Connection { stream, reader })
}

/// Accepts the next connection on `listener` and runs the acceptor's handshake as `node`,
/// admitting any peer.
pub(super) fn accept_as(node: u64, listener: &TcpListener) -> Connection {
    let mut stream = accept_stream(listener);
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    handshake::accept(
        &mut stream,
        &mut reader,
        &identity(node),
        UNSTAMPED,
        &|_: &Hello| Ok(()),
        handshake_deadlines(),
    )
    .expect("handshake");
    reader.set_limits(1 << 20, 64 << 10);
    Connection { stream, reader }
}

/// Accepts the next connection on `listener` (blocking reads that time out after `POLL`).
pub(super) fn accept_stream(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).expect("non-blocking");
    let deadline = Instant::now() + PATIENCE;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection to accept");
                std::thread::sleep(POLL);
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(POLL)))
        .expect("socket setup");
    stream
}

/// Sends a batch from `node` (id `from`) to `to` and checks it was dropped at once.
fn assert_dropped_at_once(node: &Node, from: u64, to: u64, why: &str) {
    let dropped = node.transport.stats().messages_dropped;
    node.transport.send(NodeId(to), message(from, to, 0));
    assert_eq!(
        node.transport.stats().messages_dropped,
        dropped + 1,
        "{why}"
    );
}

#[test]
fn a_peer_added_at_runtime_receives_messages_both_ways() {
    let a = start(1, &[]);
    let b = start(2, &[]);
    assert_dropped_at_once(&a, 1, 2, "not a peer yet");

    a.transport
        .set_peers(&peer_set(&[(2, &b.address)]))
        .expect("peer added");
    b.transport
        .set_peers(&peer_set(&[(1, &a.address)]))
        .expect("peer added");
    assert_eq!(a.transport.peers(), vec![NodeId(2)]);
    deliver(&a, 1, &b, 2, 1);
    deliver(&b, 2, &a, 1, 2);
    assert_eq!(a.transport.stats().handshakes_failed, 0);
    a.transport.shutdown();
    b.transport.shutdown();
}

#[test]
fn a_removed_peer_gets_nothing_more_loses_its_connections_and_is_refused() {
    // The test plays node 2: it accepts node 1's connection on its own listener and connects
    // to node 1 with the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let a = start(1, &[(2, &address)]);
    let mut outbound = accept_as(2, &listener);
    a.transport.send(NodeId(2), message(1, 2, 1));
    outbound.wait_message(1, 2, 1);
    let mut inbound = connect_as(2, &a.address).expect("a peer is admitted");
    // Node 1 delivers what comes on it: the connection is established there.
    write_frame(
        &mut inbound.stream,
        FrameKind::Messages,
        UNSTAMPED,
        &encode_messages(&message(2, 1, 3)),
    )
    .expect("write");
    wait_until("node 1 received 3", || {
        a.received.contexts_from(2).contains(&3)
    });

    a.transport.set_peers(&BTreeMap::new()).expect("removed");
    assert_eq!(a.transport.peers(), Vec::<NodeId>::new());
    assert_dropped_at_once(&a, 1, 2, "a removed peer");
    outbound.wait_closed("the connection to the removed peer");
    inbound.wait_closed("the connection from the removed peer");
    let refused = connect_as(2, &a.address).expect_err("a removed peer is refused");
    assert!(
        matches!(
            &refused,
            ConnectionHandshakeError::Rejected {
                code: RejectCode::UnknownNode,
                ..
            }
        ),
        "{refused}"
    );
    a.transport.shutdown();
}

#[test]
fn a_peer_whose_endpoint_changed_is_reached_at_the_new_one() {
    let first = TcpListener::bind("127.0.0.1:0").expect("bind");
    let second = TcpListener::bind("127.0.0.1:0").expect("bind");
    let first_address = first.local_addr().expect("addr").to_string();
    let second_address = second.local_addr().expect("addr").to_string();
    let a = start(1, &[(2, &first_address)]);
    let mut old = accept_as(2, &first);
    a.transport.send(NodeId(2), message(1, 2, 1));
    old.wait_message(1, 2, 1);

    a.transport
        .set_peers(&peer_set(&[(2, &second_address)]))
        .expect("moved");
    old.wait_closed("the connection to the old endpoint");
    let mut new = accept_as(2, &second);
    a.transport.send(NodeId(2), message(1, 2, 2));
    new.wait_message(1, 2, 2);
    assert_eq!(
        a.transport.stats().connects,
        2,
        "one connection per endpoint"
    );
    a.transport.shutdown();
}

#[test]
fn setting_the_same_peers_again_reconnects_nothing() {
    let nowhere = nowhere();
    let b = start(2, &[(1, &nowhere)]);
    let a = start(1, &[(2, &b.address)]);
    deliver(&a, 1, &b, 2, 1);
    assert_eq!(a.transport.stats().connects, 1);

    a.transport
        .set_peers(&peer_set(&[(2, &b.address)]))
        .expect("the same set");
    // A restarted link would have to connect again before this could arrive.
    deliver(&a, 1, &b, 2, 2);
    assert_eq!(a.transport.stats().connects, 1, "the link was restarted");
    assert_eq!(a.transport.peers(), vec![NodeId(2)]);
    a.transport.shutdown();
    b.transport.shutdown();
}

#[test]
fn a_peer_set_over_peers_max_or_naming_this_node_is_refused_whole() {
    let config = TcpConfig {
        peers_max: 2,
        ..config()
    };
    let (x, y, z) = (nowhere(), nowhere(), nowhere());
    let a = start_with(&config, 1, &[(2, &x)]);
    let error = a
        .transport
        .set_peers(&peer_set(&[(2, &x), (3, &y), (4, &z)]))
        .expect_err("three peers");
    assert!(
        matches!(
            error,
            PeerSetError::TooMany {
                count: 3,
                max: 2,
                setting: "transport.peers_max"
            }
        ),
        "{error}"
    );
    let error = a
        .transport
        .set_peers(&peer_set(&[(1, &x), (3, &y)]))
        .expect_err("this node");
    assert!(
        matches!(error, PeerSetError::InvalidPeer(NodeId(1))),
        "{error}"
    );
    assert_eq!(
        a.transport.peers(),
        vec![NodeId(2)],
        "the previous set stays"
    );
    a.transport.shutdown();

    let error = TcpTransport::bind(&config, &cluster(1, &[(2, &x), (3, &y), (4, &z)]))
        .expect_err("three peers at start");
    assert!(
        matches!(&error, TransportError::Config(e) if e.field == "peers"),
        "{error}"
    );
}

#[test]
fn a_peer_over_the_connection_cap_is_answered_busy_and_backs_off() {
    let config = TcpConfig {
        connections_max: 1,
        handshakes_pending_max: 1,
        peers_max: 1,
        calls_max: 1,
        ..config()
    };
    let nowhere = nowhere();
    let a = start_with(&config, 1, &[(2, &nowhere)]);
    // A connection that never says Hello holds the only slot (until the handshake timeout).
    let holder = TcpStream::connect(&a.address).expect("connect");
    let refused = connect_as(2, &a.address).expect_err("over the cap");
    assert!(
        matches!(
            &refused,
            ConnectionHandshakeError::Rejected {
                code: RejectCode::Busy,
                reason,
            } if reason.contains("transport.connections_max")
        ),
        "{refused}"
    );
    assert!(a.transport.stats().connections_refused >= 1);

    // Node 2's link is refused too, backs off and retries, and connects once there is room.
    let b = start(2, &[(1, &a.address)]);
    a.transport
        .set_peers(&peer_set(&[(2, &b.address)]))
        .expect("peer moved");
    wait_until("node 2 refused", || {
        b.transport.stats().connect_failures >= 2
    });
    assert_eq!(b.transport.stats().connects, 0);
    drop(holder);
    deliver(&b, 2, &a, 1, 1);
    assert!(b.transport.stats().connects >= 1);
    a.transport.shutdown();
    b.transport.shutdown();
}
