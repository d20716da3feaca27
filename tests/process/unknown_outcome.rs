//! A write whose outcome the node cannot know is answered `Unknown` on the client port, neither
//! `Success` nor a refusal: the two followers of a partition die just before a write reaches
//! its leader, which can then neither commit the entry nor know that it never will be.

use bytes::Bytes;
use kommander_raft::transport::tcp::client::{ClientRequest, ClientResponse};
use kommander_raft::{PartitionId, Status};

use super::harness::{CHECKPOINTS_OFF, ProcessCluster};

#[test]
fn a_write_its_leader_cannot_commit_is_answered_unknown() {
    let args: Vec<&str> = CHECKPOINTS_OFF
        .iter()
        .copied()
        .chain(["--client-request-timeout-ms", "300"])
        .collect();
    let mut cluster = ProcessCluster::start_with(3, 3, "", &args);
    let p1 = PartitionId(1);
    let leader = cluster.agreed_leader(p1);
    let at = cluster
        .nodes
        .iter()
        .position(|n| n.id == leader)
        .expect("the leader is a node");
    let mut client = cluster.nodes[at].client().expect("client");
    let write = |payload: &'static [u8]| ClientRequest::Replicate {
        partition: p1,
        log_type: "t".to_owned(),
        payload: Bytes::from_static(payload),
    };
    let answer = client.call(&write(b"committed")).expect("answer");
    assert!(
        matches!(
            answer,
            ClientResponse::Replicated {
                status: Status::Success,
                ..
            }
        ),
        "{answer:?}"
    );

    for node in &mut cluster.nodes {
        if node.id != leader {
            node.kill9();
        }
    }
    // Its wait runs out (300 ms), or it steps down first (it hears from no quorum): either
    // way the entry may still commit under a later leader.
    let answer = client.call(&write(b"unknown")).expect("answer");
    let ClientResponse::Unknown { reason } = &answer else {
        panic!("a write without a quorum must be answered Unknown: {answer:?}");
    };
    assert!(reason.contains("may"), "{reason}");
}
