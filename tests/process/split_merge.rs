//! Elastic partitions with real processes (issue 13): three `kommander node` processes under
//! a load that routes by key with fenced writes (`keyed_load.rs`); the busiest partition is
//! split under that load with `kommander partitions split`, then the new partition is merged
//! back with `kommander partitions merge` (both asked of a node that does not lead partition
//! 0: the command finds the leader). Every acknowledged write is in every node's log of
//! the partition that acknowledged it (the binary's application has no range transfer, so a
//! write stays there), writes routed with an old generation were refused with
//! `PartitionMoved` and acknowledged once routed again, no log holds a write routed with a
//! generation after the entry that froze its partition at a newer one, and every node lists
//! the same map and routes 1 000 keys the same way.
//!
//! A merged-away partition's log is deleted on every node once the merge completes, so the
//! writes of the split phase are checked (nodes stopped, WALs read) before the merge, and the
//! load of the merge phase starts once every node applied the merge's first phase: from then
//! on the drained partition must refuse every write, which the test checks too.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kommander_raft::transport::tcp::client::{ClientRequest, ClientResponse};
use kommander_raft::{PartitionId, PartitionMap, SYSTEM_PARTITION, Status};

use super::harness::{PATIENCE, ProcessCluster, partitions_command};
use super::keyed_load::{KeyedLoad, Recorded, read_map};

/// Writer threads of the load.
const WRITERS: usize = 4;
/// Acknowledged writes between the steps.
const STEP_WRITES: u64 = 1_500;
/// Keys whose routing every node must agree on.
const ROUTED_KEYS: usize = 1_000;

/// `kommander partitions ARGS --json` through `client`: the JSON, or the test fails.
fn partitions_json(client: &str, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = partitions_command(client, &args);
    assert!(
        output.status.success(),
        "partitions {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// Waits until every node lists the same map and it satisfies `holds`; returns it.
fn wait_map(
    cluster: &ProcessCluster,
    what: &str,
    holds: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let maps: Vec<serde_json::Value> = cluster
            .nodes
            .iter()
            .map(|n| partitions_json(&n.client_address, &["list"]))
            .collect();
        if maps.iter().all(|m| *m == maps[0]) && holds(&maps[0]) {
            return maps[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never listed {what} alike: {maps:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The listed state of partition `id` (`None`: not in the map).
fn state_of(map: &serde_json::Value, id: PartitionId) -> Option<&str> {
    map["partitions"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id.get())
        .and_then(|p| p["state"].as_str())
}

/// Whether no partition is between the phases of a split or merge.
fn settled(map: &serde_json::Value) -> bool {
    map["partitions"].as_array().is_some_and(|ps| {
        ps.iter()
            .all(|p| p["state"] != "splitting" && p["state"] != "draining")
    })
}

/// The client address of a node that does not lead partition 0 (the leader all agree on).
fn not_leading_partition_zero(cluster: &mut ProcessCluster) -> String {
    let leader = cluster.agreed_leader(SYSTEM_PARTITION);
    cluster
        .nodes
        .iter()
        .find(|n| n.id != leader)
        .expect("three nodes")
        .client_address
        .clone()
}

/// Restarts every (stopped) node and waits for each to serve.
fn restart(cluster: &mut ProcessCluster) {
    std::thread::scope(|scope| {
        for node in &mut cluster.nodes {
            scope.spawn(|| node.start());
        }
    });
}

/// Writes refused with `PartitionMoved` were acknowledged once routed again. (Not
/// necessarily with a newer generation: a leader whose map lags the writer's refuses the
/// newer one, and the writer routes again with the leader's map. Whether the source took a
/// write routed with its old generation after freezing is judged from the logs.)
fn assert_rerouted(recorded: &Recorded) {
    for moved in &recorded.moved {
        assert!(
            moved.acked.is_some(),
            "a refused write was given up: {moved:?}"
        );
    }
}

#[test]
fn split_the_busiest_partition_under_load_then_merge_back_loses_no_acknowledged_write() {
    let mut cluster = ProcessCluster::start(3, 3, "");
    let load = KeyedLoad::start(&cluster.clients(), WRITERS);
    load.wait_progress(STEP_WRITES);

    // Split the busiest partition under the load, at the next free id. Asked of a node that
    // does not lead partition 0, which carries out no map change: the command finds the
    // leader itself.
    let client1 = not_leading_partition_zero(&mut cluster);
    let before = partitions_json(&client1, &["list"]);
    let source = load.busiest();
    let target = PartitionId(
        before["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .filter_map(|p| p["id"].as_u64())
            .max()
            .map_or(1, |max| u32::try_from(max).expect("an id") + 1),
    );
    let split = partitions_json(
        &client1,
        &[
            "split",
            &source.get().to_string(),
            "--target",
            &target.get().to_string(),
        ],
    );
    assert_eq!(split["status"], "Success", "{split}");
    let after_split = wait_map(&cluster, "the split's second phase", |m| {
        settled(m) && state_of(m, target) == Some("active")
    });
    // The new partition takes writes routed to it.
    load.wait_until("writes to the new partition", |acked| {
        acked.iter().any(|a| a.partition == target)
    });
    load.wait_progress(STEP_WRITES);
    let split_phase = load.stop();
    // Every acknowledged write is in every node's log at its index: the split's source and
    // target included; none routed with the source's old generation after the entry that
    // froze it, which every node's log of the source holds.
    let logs = cluster.stop_holding_every_write(&split_phase.acked);
    for log in &logs {
        assert!(
            log.generations.keys().any(|&(p, _)| p == source.get()),
            "a log of {source} without its generation entry"
        );
    }
    assert!(
        split_phase.moved.iter().any(|m| m.refused.0 == source),
        "no write routed with the source's old generation was refused"
    );
    assert_rerouted(&split_phase);
    restart(&mut cluster);
    assert_eq!(
        wait_map(&cluster, "the map after a restart", settled),
        after_split
    );

    // Merge the new partition back into the source (asked of a node that does not lead
    // partition 0 either). The load starts once every node applied the first phase (the
    // target drains or is gone).
    let client2 = not_leading_partition_zero(&mut cluster);
    let merge = partitions_json(
        &client2,
        &[
            "merge",
            &source.get().to_string(),
            &target.get().to_string(),
        ],
    );
    assert_eq!(merge["status"], "Success", "{merge}");
    wait_map(&cluster, "the merge's first phase", |m| {
        matches!(state_of(m, target), Some("draining" | "removed"))
    });
    let load = KeyedLoad::start(&cluster.clients(), WRITERS);
    let merged = wait_map(&cluster, "the merge's second phase", |m| {
        settled(m) && state_of(m, target) == Some("removed")
    });
    load.wait_progress(STEP_WRITES);
    let merge_phase = load.stop();
    assert_rerouted(&merge_phase);
    println!(
        "split {source} into {target}: {} writes acknowledged, {} refused PartitionMoved and \
         routed again; merge back: {} acknowledged, {} routed again",
        split_phase.acked.len(),
        split_phase.moved.len(),
        merge_phase.acked.len(),
        merge_phase.moved.len()
    );
    assert!(
        merge_phase.acked.iter().all(|a| a.partition != target),
        "the drained partition acknowledged a write"
    );

    // Every node lists the same map (`wait_map`) and routes keys the same way, as the map
    // says.
    assert_eq!(wait_map(&cluster, "the final map", settled), merged);
    assert_same_routing(&mut cluster);
    cluster.stop_holding_every_write(&merge_phase.acked);
}

/// Every node routes [`ROUTED_KEYS`] keys to the same partition and generation, the ones its
/// own map (`Partitions`) gives.
fn assert_same_routing(cluster: &mut ProcessCluster) {
    let mut connections: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| n.client().expect("a client connection"))
        .collect();
    let maps: Vec<PartitionMap> = connections
        .iter_mut()
        .map(|c| read_map(c).expect("a map"))
        .collect();
    assert!(maps.iter().all(|m| *m == maps[0]), "{maps:#?}");
    let mut reached = BTreeSet::new();
    for i in 0..ROUTED_KEYS {
        let key = format!("sample-{i}/item");
        let expected = maps[0].partition_for_key(&key).expect("routed");
        let generation = maps[0].get(expected).expect("listed").generation;
        for connection in &mut connections {
            let answer = connection
                .call(&ClientRequest::Route { key: key.clone() })
                .expect("an answer");
            let ClientResponse::Routed {
                status: Status::Success,
                partition: Some(partition),
                generation: routed_generation,
                ..
            } = answer
            else {
                panic!("{key}: {answer:?}");
            };
            assert_eq!(
                (partition, routed_generation),
                (expected, generation),
                "{key}"
            );
        }
        reached.insert(expected);
    }
    // The sample reaches more than one partition (the check compares real routing).
    assert!(reached.len() > 1, "{reached:?}");
}
