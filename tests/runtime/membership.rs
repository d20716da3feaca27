//! Configuration changes through the shard host: proposed on the leader, in force on every
//! node, and kept across a compaction that removed the configuration entry from the WAL and a
//! full restart (the configuration travels in the WAL's floor record).

use kommander_raft::core::{Configuration, NodeId, PartitionId, Status};
use kommander_raft::shard::{PartitionConfiguration, ReplicationResult, Request};

use super::harness::{Cluster, eventually};

#[test]
fn a_demoted_voter_stays_demoted_after_compaction_and_a_full_restart() {
    let mut cluster = Cluster::start(3, 1, false);
    let p = PartitionId(0);
    let leader = cluster.wait_leaders()[&p];
    let demoted = (leader + 1) % 3;
    let voters: Vec<NodeId> = (0..3)
        .filter(|&i| i != demoted)
        .map(|i| cluster.nodes[i].id)
        .collect();
    let next = Configuration::new(voters, vec![cluster.nodes[demoted].id]).expect("valid");
    let changed: ReplicationResult = eventually("the change is accepted", || {
        let ticket = cluster.ticket();
        let configuration = next.clone();
        cluster
            .ask(leader, p, |reply| Request::ChangeConfiguration {
                configuration,
                ticket,
                reply,
            })
            .ok()
    });
    assert_eq!(changed.status, Status::Success);
    let configuration = |cluster: &Cluster, i: usize| {
        cluster
            .ask(i, p, |reply| Request::Configuration { reply })
            .ok()
    };
    for i in 0..3 {
        eventually("every node commits the change", || {
            configuration(&cluster, i)
                .filter(|c: &PartitionConfiguration| c.committed == next)
                .map(|_| ())
        });
    }
    let after = cluster.replicate(p, b"after the change");
    let ticket = cluster.ticket();
    let checkpoint: ReplicationResult = cluster
        .ask(leader, p, |reply| Request::Checkpoint { ticket, reply })
        .expect("checkpoint accepted");
    assert_eq!(checkpoint.status, Status::Success);
    assert!(checkpoint.index > after.index);
    for i in 0..3 {
        eventually("the WAL compacts past the configuration entry", || {
            (cluster.status(i, p).ok()?.wal_floor >= checkpoint.index).then_some(())
        });
    }
    for i in 0..3 {
        cluster.stop_node(i);
    }
    for i in 0..3 {
        // Opened with all three as the first voters: only the WAL's floor says otherwise.
        cluster.start_node(i);
    }
    cluster.wait_leaders();
    for i in 0..3 {
        let restored = eventually("the node restored", || configuration(&cluster, i));
        assert_eq!(restored.current, next, "node {}", i + 1);
    }
    cluster.replicate(p, b"after the restart");
    cluster.shutdown();
}
