//! Peers learn each other's client endpoints: a node advertises its client port before it
//! serves, and every node that connects to it reads the endpoint in its handshake's `Welcome`
//! (`TcpTransport::client_endpoint`); a node that advertises nothing is known to have none; an
//! endpoint a client cannot connect to is refused. Real loopback sockets; every wait polls
//! with a deadline.

use std::collections::BTreeMap;
use std::sync::Arc;

use kommander_raft::transport::tcp::{TcpTransport, TransportError};
use kommander_raft::{NodeId, Transport};

use super::peers::{Node, Received, cluster, config, deliver, serve};

/// The client endpoint node 1 advertises (nothing listens there: only its name travels).
const CLIENT_ENDPOINT_1: &str = "127.0.0.1:7201";

/// Node `node` with `peers`, advertising `client_endpoint` (when given) before it serves.
fn start(node: u64, peers: &[(u64, &str)], client_endpoint: Option<&str>) -> Node {
    let transport = TcpTransport::bind(&config(), &cluster(node, peers)).expect("transport");
    if let Some(endpoint) = client_endpoint {
        transport
            .advertise_client_endpoint(endpoint)
            .expect("a valid endpoint, before serve");
    }
    serve(transport)
}

#[test]
fn a_node_learns_the_client_endpoint_each_peer_advertises_in_its_handshake() {
    let one = start(1, &[], Some(CLIENT_ENDPOINT_1));
    let two = start(2, &[(1, &one.address)], None);
    // Node 1 admits only its peers.
    let peers = BTreeMap::from([(NodeId(2), two.address.clone())]);
    one.transport.set_peers(&peers).expect("peers");
    assert_eq!(
        one.transport.client_endpoint(NodeId(1)).as_deref(),
        Some(CLIENT_ENDPOINT_1),
        "a node knows its own"
    );
    // Node 2 connects to node 1: node 1's Welcome tells it.
    deliver(&two, 2, &one, 1, 1);
    assert_eq!(
        two.transport.client_endpoint(NodeId(1)).as_deref(),
        Some(CLIENT_ENDPOINT_1)
    );
    assert_eq!(
        two.transport.client_endpoint(NodeId(2)),
        None,
        "2 advertises none"
    );
    assert_eq!(two.transport.client_endpoint(NodeId(3)), None, "not a peer");
    // Node 1 connects to node 2, which advertises nothing.
    deliver(&one, 1, &two, 2, 2);
    assert_eq!(one.transport.client_endpoint(NodeId(2)), None);
    // Once node 1 is no longer a peer of node 2, node 2 does not answer for it.
    two.transport.set_peers(&BTreeMap::new()).expect("no peers");
    assert_eq!(
        two.transport.client_endpoint(NodeId(1)),
        None,
        "a former peer"
    );
    one.transport.shutdown();
    two.transport.shutdown();
}

#[test]
fn only_an_endpoint_a_client_can_connect_to_is_advertised_and_only_before_serve() {
    let transport = TcpTransport::bind(&config(), &cluster(1, &[])).expect("transport");
    for unreachable in ["0.0.0.0:7201", "[::]:7201", "127.0.0.1:0", "127.0.0.1"] {
        let refused = transport.advertise_client_endpoint(unreachable);
        assert!(
            matches!(&refused, Err(TransportError::ClientEndpoint { endpoint, .. }) if endpoint == unreachable),
            "{unreachable}: {refused:?}"
        );
    }
    assert_eq!(
        transport.client_endpoint(NodeId(1)),
        None,
        "nothing was advertised"
    );
    transport
        .advertise_client_endpoint(CLIENT_ENDPOINT_1)
        .expect("advertised");
    assert!(matches!(
        transport.advertise_client_endpoint("127.0.0.1:7202"),
        Err(TransportError::ClientEndpoint { .. })
    ));
    transport
        .serve(Arc::new(Received::default()))
        .expect("serve");
    assert!(matches!(
        transport.advertise_client_endpoint("127.0.0.1:7202"),
        Err(TransportError::AlreadyServing)
    ));
    assert_eq!(
        transport.client_endpoint(NodeId(1)).as_deref(),
        Some(CLIENT_ENDPOINT_1)
    );
    transport.shutdown();
}
