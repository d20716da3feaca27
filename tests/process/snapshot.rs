//! A replaced disk, with real processes: a follower is stopped, the others write and
//! checkpoint past it (leaders keep 16 entries below a checkpoint), its data directory is
//! wiped and it restarts. It catches up by snapshot on every partition while the others keep
//! acknowledging writes, and afterwards its application's state, a digest of every entry
//! handed to it (carried by the snapshots), equals the state of the nodes that never went
//! down, at an index at or above every acknowledged write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kommander_raft::PartitionId;

use super::harness::{Load, PARTITIONS, PATIENCE, ProcessCluster};

/// How long the applied indexes must stay put to count as settled (ten looks of the
/// checkpointer).
const SETTLE: Duration = Duration::from_secs(1);

/// Every node's applied index of `p`, once they all agree (load stopped).
fn converged_applied(cluster: &mut ProcessCluster, p: PartitionId) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let states = cluster.states(p);
        let applied: Vec<Option<u64>> = states.iter().map(|s| s.map(|s| s.applied)).collect();
        if let Some(Some(first)) = applied.first()
            && applied.iter().all(|a| *a == Some(*first))
        {
            return *first;
        }
        assert!(Instant::now() < deadline, "{p}: applied {applied:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every partition's index once every node applied the same and nothing more was applied for
/// [`SETTLE`]: after the load, a leader's checkpointer may still commit a checkpoint (it looks
/// every 100 ms and retries one refused while a write was unresolved), and a node stopped
/// before it would log another digest than the others.
fn settled_applied(cluster: &mut ProcessCluster) -> BTreeMap<u32, u64> {
    let deadline = Instant::now() + PATIENCE;
    let mut last = BTreeMap::new();
    loop {
        let applied: BTreeMap<u32, u64> = (1..=PARTITIONS)
            .map(|p| (p, converged_applied(cluster, PartitionId(p))))
            .collect();
        if applied == last {
            return applied;
        }
        assert!(Instant::now() < deadline, "still applying: {applied:?}");
        last = applied;
        std::thread::sleep(SETTLE);
    }
}

/// The `applied digest` lines a stopped node logged: partition → (index, digest).
fn digests(log: &str) -> BTreeMap<u32, (u64, String)> {
    let field = |line: &str, name: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .map(|value| value.trim_matches('"').to_owned())
    };
    log.lines()
        .filter(|line| line.contains("applied digest"))
        .filter_map(|line| {
            let partition = field(line, "partition=")?.parse().ok()?;
            let index = field(line, "index=")?.parse().ok()?;
            Some((partition, (index, field(line, "digest=")?)))
        })
        .collect()
}

#[test]
fn a_wiped_follower_catches_up_by_snapshot_and_holds_every_acknowledged_write() {
    let checkpoints = [
        "--checkpoint-interval-entries",
        "100",
        "--checkpoint-interval-bytes",
        "0",
        "--checkpoint-interval-secs",
        "0",
    ];
    let mut cluster =
        ProcessCluster::start_with(3, 3, "compaction_retain_entries_max = 16", &checkpoints);
    let load = Load::start(cluster.clients(), 4);
    load.wait_progress(300);

    // Node 3 stops; the others write on, checkpointing every 100 entries per partition.
    let gone = 2;
    assert!(cluster.nodes[gone].terminate().success());
    load.wait_progress(2_000);
    // Its disk is replaced; it comes back while the load goes on.
    std::fs::remove_dir_all(&cluster.nodes[gone].data_dir).expect("wipe");
    cluster.nodes[gone].start();
    load.wait_progress(1_000);
    let acked = load.stop();

    let applied = settled_applied(&mut cluster);
    for write in &acked {
        assert!(
            write.index <= applied[&write.partition.get()],
            "{write:?} beyond the converged index"
        );
    }
    // All at once: no two of them commit anything once the first stops.
    for node in &cluster.nodes {
        node.send_sigterm();
    }
    for node in &mut cluster.nodes {
        assert!(node.await_exit().success());
    }
    let logs: Vec<String> = cluster.nodes.iter().map(|n| n.log_text()).collect();
    let installed = logs[gone].matches("snapshot installed").count();
    assert!(
        installed >= PARTITIONS as usize,
        "{installed} snapshots installed on the wiped node"
    );
    // The survivors logged their digests once; the wiped node twice (its first incarnation).
    let expected = digests(&logs[0]);
    assert_eq!(expected.len(), PARTITIONS as usize + 1, "{expected:?}");
    assert_eq!(digests(&logs[1]), expected, "the survivors agree");
    let last_incarnation = &logs[gone][logs[gone].rfind("joining the cluster").unwrap_or(0)..];
    assert_eq!(
        digests(last_incarnation),
        expected,
        "the wiped node holds what the others hold"
    );
}
