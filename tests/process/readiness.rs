//! When a `kommander node` process says `ready`: once it serves, not merely once it joined. A
//! node restarted alone in a 3-node cluster joins at once (its partition map is on disk) but
//! knows no leader: it says what it waits for, and `ready` once a quorum is back.

use std::time::{Duration, Instant};

use kommander_raft::transport::tcp::client::{ClientRequest, ClientResponse};
use kommander_raft::{PartitionId, Status};

use super::harness::{PATIENCE, ProcessCluster};

#[test]
fn a_node_restarted_without_a_quorum_says_what_it_waits_for_and_is_ready_once_one_is_back() {
    let mut cluster = ProcessCluster::start(3, 3, "");
    for node in &mut cluster.nodes {
        assert!(node.terminate().success(), "node {}", node.id);
    }
    let alone = &mut cluster.nodes[0];
    alone.spawn();
    assert!(
        !alone.ready_within(Duration::from_secs(3)),
        "ready without a quorum; its log:\n{}",
        alone.log_text()
    );
    // It says what it waits for (every 2 s).
    let deadline = Instant::now() + PATIENCE;
    while !alone
        .log_text()
        .lines()
        .any(|l| l.contains("not serving yet") && l.contains("no leader known"))
    {
        assert!(Instant::now() < deadline, "{}", alone.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its client port answers meanwhile, truthfully.
    let mut client = alone
        .client()
        .expect("the client port is open while it waits");
    let answer = client
        .call(&ClientRequest::Leader {
            partition: PartitionId(1),
        })
        .expect("answer");
    assert!(
        matches!(
            answer,
            ClientResponse::Leader {
                status: Status::Success,
                leader: None,
                ..
            }
        ),
        "{answer:?}"
    );

    // A second node back: a quorum; both serve.
    cluster.nodes[1].start();
    let first = &cluster.nodes[0];
    assert!(first.ready_within(PATIENCE), "{}", first.log_text());
    assert!(
        first
            .log_text()
            .contains("serving: every partition restored, with a known leader"),
        "{}",
        first.log_text()
    );
}
