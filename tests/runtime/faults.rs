//! Replication through a faulty network: drops, duplicates, delays, reordering and network
//! partitions. Every node delivers the same sequence; acknowledged entries are never lost.

use std::collections::HashMap;

use kommander_raft::core::{LogIndex, PartitionId};
use kommander_raft::transport::faulty::FaultRates;

use super::harness::{Cluster, eventually};

fn payloads(cluster: &Cluster, i: usize, p: PartitionId) -> Vec<(LogIndex, Vec<u8>)> {
    cluster.nodes[i]
        .app
        .live(p)
        .into_iter()
        .map(|s| (s.index, s.payload.to_vec()))
        .collect()
}

/// Waits until every node delivered the same sequence on `p`, containing every acknowledged
/// entry at its index.
fn converge(cluster: &Cluster, p: PartitionId, acked: &[(LogIndex, Vec<u8>)]) {
    eventually(&format!("nodes to converge on {p}"), || {
        let first = payloads(cluster, 0, p);
        for i in 1..cluster.nodes.len() {
            let other = payloads(cluster, i, p);
            let common = first.len().min(other.len());
            assert_eq!(
                first[..common],
                other[..common],
                "nodes 1 and {} diverge on {p}",
                i + 1
            );
            if other.len() != first.len() {
                return None;
            }
        }
        for entry in acked {
            if !first.contains(entry) {
                return None;
            }
        }
        assert!(
            first.windows(2).all(|w| w[0].0 < w[1].0),
            "duplicate delivery on {p}"
        );
        Some(())
    });
}

#[test]
fn random_faults_never_break_agreement() {
    let mut cluster = Cluster::start(3, 4, true);
    let faults = cluster.faults.clone().expect("faulty network");
    faults.set_rates(FaultRates {
        drop_per_million: 50_000,
        duplicate_per_million: 50_000,
        delay_per_million: 50_000,
        delay_ms_max: 20,
        reorder_per_million: 50_000,
    });
    cluster.wait_leaders();
    let partitions = cluster.partitions.clone();
    let mut acked: HashMap<PartitionId, Vec<(LogIndex, Vec<u8>)>> = HashMap::new();
    for k in 0..15 {
        for &p in &partitions {
            let payload = format!("{p}-{k}").into_bytes();
            let result = cluster.replicate(p, &payload);
            acked.entry(p).or_default().push((result.index, payload));
        }
    }
    let counts = faults.counts();
    assert!(
        counts.dropped > 0 && counts.duplicated > 0 && counts.delayed > 0,
        "faults were injected: {counts:?}"
    );
    faults.heal();
    for &p in &partitions {
        converge(&cluster, p, &acked[&p]);
    }
}

#[test]
fn an_isolated_leader_is_replaced_and_catches_up() {
    let mut cluster = Cluster::start(3, 2, true);
    let faults = cluster.faults.clone().expect("faulty network");
    let p = PartitionId(1);
    cluster.wait_leaders();
    let mut acked = vec![];
    let first = cluster.replicate(p, b"before");
    acked.push((first.index, b"before".to_vec()));
    let old = cluster.leader(p).expect("a leader");
    let old_term = cluster.status(old, p).expect("status").term;
    let voters = cluster.voters();
    faults.isolate(cluster.nodes[old].id, &voters);
    let new = eventually("a new leader among the majority", || {
        cluster.leader(p).filter(|&i| i != old)
    });
    assert!(cluster.status(new, p).expect("status").term > old_term);
    let during = cluster.replicate(p, b"during");
    acked.push((during.index, b"during".to_vec()));
    // A one-way cut: the old leader hears the others but cannot answer; still no two leaders.
    faults.heal();
    faults.cut_one_way(cluster.nodes[old].id, cluster.nodes[new].id);
    let one_way = cluster.replicate(p, b"one way");
    acked.push((one_way.index, b"one way".to_vec()));
    faults.heal();
    let after = cluster.replicate(p, b"after");
    acked.push((after.index, b"after".to_vec()));
    let counts = faults.counts();
    assert!(counts.cut > 0, "the cut dropped messages: {counts:?}");
    converge(&cluster, p, &acked);
}
