//! Three `kommander node` processes under load: SIGKILL a follower, then the leader; every
//! acknowledged write must be on every node afterwards, and the restarted nodes catch up.

use std::collections::BTreeMap;

use kommander_raft::PartitionId;

use super::harness::{Acked, Load, PARTITIONS, ProcessCluster, read_logs};

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

    // Every node, the two restarted ones included, catches up with every acknowledged write.
    let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
    for a in &acked {
        let h = highest.entry(a.partition.get()).or_default();
        *h = (*h).max(a.index);
    }
    for (&p, &index) in &highest {
        cluster.wait_applied(PartitionId(p), index);
    }

    // A clean stop (SIGTERM) of every node, then each node's WAL holds every acknowledged
    // write at the index it was acknowledged at.
    for node in &mut cluster.nodes {
        let status = node.terminate();
        assert!(
            status.success(),
            "node {} exited with {status}:\n{}",
            node.id,
            node.log_text()
        );
        assert!(
            node.log_text().contains("shutting down"),
            "node {} logged no shutdown",
            node.id
        );
    }
    for node in &cluster.nodes {
        let log = read_logs(&node.data_dir);
        let missing: Vec<&Acked> = acked
            .iter()
            .filter(|a| log.get(&(a.partition.get(), a.index)) != Some(&a.payload))
            .collect();
        assert!(
            missing.is_empty(),
            "node {} lacks {} of {} acknowledged writes, first {:?}",
            node.id,
            missing.len(),
            acked.len(),
            missing.first()
        );
    }
    eprintln!(
        "{cycles} kill cycles: {} acknowledged writes over {PARTITIONS} partitions, all on \
         every node",
        acked.len()
    );
}
