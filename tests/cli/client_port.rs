//! The client port of a cluster of `kommander node` processes: a `Leader` answer names the
//! leader's client endpoint whichever node is asked, as the leader advertised it to its peers
//! (for a port listening on `0.0.0.0`, the host of its peer endpoint, never `0.0.0.0`).

use std::path::Path;
use std::time::{Duration, Instant};

use kommander_raft::transport::tcp::client::{ClientConnection, ClientRequest, ClientResponse};
use kommander_raft::{NodeId, PartitionId, Status};

use super::{PATIENCE, Running, client_of, free_port, kommander};

const SECRET: &str = "the secret of the client port tests";
const CLUSTER: &str = "cli-client-port";

/// Starts node `id` of a static cluster (`ports`: every node's peer port, by id - 1) with its
/// client port on `0.0.0.0` and a free port.
fn start(dir: &Path, id: u64, ports: &[u16]) -> Running {
    let peers: String = (1..=ports.len() as u64)
        .filter(|&peer| peer != id)
        .map(|peer| format!("{peer} = \"127.0.0.1:{}\"\n", ports[peer as usize - 1]))
        .collect();
    let config = dir.join(format!("node{id}.toml"));
    let text = format!(
        "node_id = {id}\n\
         endpoint = \"127.0.0.1:{}\"\n\
         cluster_name = \"{CLUSTER}\"\n\
         data_dir = \"{}\"\n\
         shards = 1\n\
         initial_partitions = 2\n\
         tick_interval_ms = 5\n\
         [peers]\n{peers}",
        ports[id as usize - 1],
        dir.join(format!("data{id}")).display()
    );
    std::fs::write(&config, text).expect("write config");
    let mut command = kommander();
    command
        .env("KOMMANDER_AUTH_SECRET", SECRET)
        .arg("node")
        .arg("--config")
        .arg(&config)
        .args(["--client-listen", "0.0.0.0:0"]);
    Running::spawn(command, dir, &format!("node{id}"))
}

/// The port of a `ready` line's `client=0.0.0.0:PORT`.
fn client_port_of(ready: &str) -> u16 {
    let client = client_of(ready);
    let port = client
        .strip_prefix("0.0.0.0:")
        .unwrap_or_else(|| panic!("a client port on 0.0.0.0: {ready}"));
    port.parse().expect("a port")
}

/// Asks `client` who leads `partition` until the answer names a leader and an endpoint.
fn leader_with_endpoint(client: &mut ClientConnection, partition: PartitionId) -> (u64, String) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = client
            .call(&ClientRequest::Leader { partition })
            .expect("leader");
        let ClientResponse::Leader {
            status: Status::Success,
            leader,
            endpoint,
        } = answer
        else {
            panic!("unexpected answer {answer:?}");
        };
        if let Some(NodeId(leader)) = leader
            && !endpoint.is_empty()
        {
            return (leader, endpoint);
        }
        assert!(
            Instant::now() < deadline,
            "no leader with a client endpoint for {partition}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_node_names_the_leaders_advertised_client_endpoint() {
    let dir = tempfile::tempdir().expect("dir");
    let ports = [free_port(), free_port()];
    let mut nodes: Vec<(Running, u16)> = (1..=2)
        .map(|id| (start(dir.path(), id, &ports), 0))
        .collect();
    for (node, client_port) in &mut nodes {
        *client_port = client_port_of(&node.wait_line("ready "));
    }
    // Listening on 0.0.0.0: advertised with the peer endpoint's host.
    let advertised = |leader: u64| format!("127.0.0.1:{}", nodes[leader as usize - 1].1);
    for partition in [PartitionId(0), PartitionId(1), PartitionId(2)] {
        for (asked, (_, client_port)) in nodes.iter().enumerate() {
            let address = format!("127.0.0.1:{client_port}");
            let mut client = ClientConnection::connect(&address, CLUSTER, Some(SECRET), PATIENCE)
                .expect("client");
            let (leader, endpoint) = leader_with_endpoint(&mut client, partition);
            assert_eq!(
                endpoint,
                advertised(leader),
                "node {} names node {leader}'s client endpoint for {partition}",
                asked + 1
            );
        }
    }
    for (node, _) in &mut nodes {
        node.signal("TERM");
        assert!(node.wait_exit().success(), "{}", node.stderr());
    }
}
