//! Three `kommander node` processes under load: SIGKILL a follower, then the leader; every
//! acknowledged write must be on every node afterwards, and the restarted nodes catch up.

use kommander_raft::PartitionId;

use super::harness::{Load, PARTITIONS, ProcessCluster};

#[test]
fn kill9_of_a_follower_then_the_leader_under_load_loses_no_acknowledged_write() {
    let mut cluster = ProcessCluster::start(3, 3, "");
    let load = Load::start(cluster.clients(), 4);
    load.wait_progress(1000);

    // `KOMMANDER_PROCESS_CYCLES` rounds (2 by default; see docs/testing.md): a follower of
    // partition 1 dies without warning and comes back, then the leader does.
    let cycles: usize = std::env::var("KOMMANDER_PROCESS_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2);
    for _ in 0..cycles {
        let leader = cluster.agreed_leader(PartitionId(1));
        let follower = cluster
            .nodes
            .iter()
            .position(|n| n.id != leader)
            .expect("follower");
        cluster.nodes[follower].kill9();
        load.wait_progress(1000);
        cluster.nodes[follower].start();
        load.wait_progress(1000);

        let leader = cluster.agreed_leader(PartitionId(1));
        let leader = cluster
            .nodes
            .iter()
            .position(|n| n.id == leader)
            .expect("leader");
        cluster.nodes[leader].kill9();
        load.wait_progress(1000);
        cluster.nodes[leader].start();
        load.wait_progress(1000);
    }

    let acked = load.stop();
    assert!(
        acked.len() >= 1500,
        "only {} writes acknowledged",
        acked.len()
    );

    // Every node, the two restarted ones included, catches up with every acknowledged write;
    // after a clean stop each node's WAL holds every one at the index it was acknowledged at.
    cluster.stop_holding_every_write(&acked);
    eprintln!(
        "{cycles} kill cycles: {} acknowledged writes over {PARTITIONS} partitions, all on \
         every node",
        acked.len()
    );
}
