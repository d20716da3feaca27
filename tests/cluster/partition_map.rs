//! The partition map is kept with partition 0's log (decision 0006): a node restarted alone
//! (it can elect no leader, so nothing can give it a map but its own disk) after partition 0
//! compacted past the map's entry finds the map in partition 0's floor meta; a node of the
//! previous version, whose map lived in `<data_dir>/partition-map`, reads that file once,
//! keeps the map at partition 0's next floor and never writes the file again; a damaged floor
//! meta fails partition 0's restore with the reason, and no side file is ever written.

use std::path::{Path, PathBuf};

use kommander_raft::{NodeConfig, PartitionId, PartitionMap, RaftEvent};
use kommander_wal::{Wal, Write};

use super::harness::{TestCluster, eventually};

const P0: PartitionId = PartitionId(0);

/// The file in which the previous version kept the map.
fn map_file(config: &NodeConfig) -> PathBuf {
    config.data_dir.join("partition-map")
}

/// Writes three entries to partition 0 and checkpoints it on its leader, then waits until
/// every running node delivered them.
async fn compact_p0(cluster: &TestCluster, delivered_before: usize) {
    for k in 0..3u8 {
        cluster.replicate(P0, &[k]).await;
    }
    let leader = cluster.leader(P0).await;
    cluster
        .raft(leader)
        .replicate_checkpoint(P0)
        .await
        .expect("checkpoint");
    cluster.wait_delivered(P0, delivered_before + 4).await;
}

/// Starts node 0 (the others stay down) and joins it: `what` says where its map must come
/// from.
async fn restart_alone(cluster: &mut TestCluster, what: &str) {
    cluster.start_node(0).await;
    cluster.raft(0).join_cluster(None).await.expect(what);
}

/// The WAL directory holding partition 0 under `data_dir`, opened.
fn open_p0_wal(config: &NodeConfig) -> Wal {
    for shard in std::fs::read_dir(&config.data_dir).expect("data dir") {
        let path = shard.expect("entry").path();
        if !is_shard(&path) {
            continue;
        }
        let wal = Wal::open(&path, config.wal_config()).expect("open WAL");
        if wal.partition(P0).is_ok() {
            return wal;
        }
    }
    panic!(
        "no WAL holds partition 0 under {}",
        config.data_dir.display()
    );
}

pub(super) fn is_shard(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("shard-"))
}

/// Replaces partition 0's floor meta with `meta` (a boundary at its own floor: the log after
/// it stays, only the meta changes), as a previous version or a damaged disk left it.
fn rewrite_floor_meta(config: &NodeConfig, meta: impl FnOnce(&[u8]) -> Vec<u8>) {
    let mut wal = open_p0_wal(config);
    let info = wal.partition(P0).expect("partition 0");
    let floor = info.first_index - 1;
    assert!(floor > 0, "partition 0 compacted");
    let term = wal.term_at(P0, floor).expect("the floor's term");
    let old = wal.floor_meta(P0).expect("floor meta");
    let new = meta(&old);
    wal.append(&[Write::InstallSnapshot {
        partition: P0,
        index: floor,
        term,
        floor_meta: &new,
    }])
    .expect("append");
    wal.sync().expect("sync");
}

/// The configuration part of a floor meta that holds a map (`0x4d`, then the configuration's
/// `u32` length and bytes, then the map's): what the previous version kept.
fn configuration_part(meta: &[u8]) -> Vec<u8> {
    assert_eq!(meta.first(), Some(&0x4d), "the floor meta holds the map");
    let len = u32::from_le_bytes(meta[1..5].try_into().expect("a length")) as usize;
    meta[5..5 + len].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restarted_alone_after_p0_compacted_past_the_map_still_has_it() {
    let mut cluster = TestCluster::start(3, 2).await;
    let map = cluster.raft(0).partition_map();
    assert_eq!(map.version, 1);
    compact_p0(&cluster, 0).await;
    cluster.stop_all().await;
    for node in &cluster.nodes {
        assert!(!map_file(&node.config).exists(), "no side file is written");
    }
    let wal = open_p0_wal(&cluster.nodes[0].config);
    let floor = wal.partition(P0).expect("partition 0").first_index - 1;
    // The map's entry (index 1 or 2: the first map follows partition 0's first
    // configuration) is below the floor: only the floor meta can hold it.
    assert!(floor >= 4, "partition 0's floor {floor}");
    drop(wal);

    // Alone: no leader, no map but its own.
    restart_alone(&mut cluster, "initialised from the floor meta").await;
    assert_eq!(*cluster.raft(0).partition_map(), *map);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_of_the_previous_version_reads_its_map_file_once() {
    let mut cluster = TestCluster::start_single(2, |_| {}).await;
    compact_p0(&cluster, 0).await;
    cluster.stop_all().await;
    let config = cluster.nodes[0].config.clone();

    // What the previous version left: the map compacted away with a bare configuration at
    // the floor, and the newest map in its own file (a later version than the log's, so that
    // proposing a first map again could not pass for it).
    rewrite_floor_meta(&config, configuration_part);
    let mut upgraded = PartitionMap::initial(2).expect("a map");
    upgraded.version = 5;
    upgraded.partitions[1].generation = 3;
    std::fs::write(map_file(&config), upgraded.encode()).expect("write the old file");
    let written = std::fs::read(map_file(&config)).expect("read");

    restart_alone(&mut cluster, "initialised from the file").await;
    assert_eq!(*cluster.raft(0).partition_map(), upgraded);

    // Partition 0's next floor keeps it: the file can go, and was never written.
    compact_p0(&cluster, 4).await;
    cluster.stop_all().await;
    assert_eq!(std::fs::read(map_file(&config)).expect("read"), written);
    std::fs::remove_file(map_file(&config)).expect("remove the old file");
    restart_alone(&mut cluster, "initialised from the floor meta").await;
    assert_eq!(*cluster.raft(0).partition_map(), upgraded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_floor_meta_fails_partition_0s_restore_with_the_reason() {
    let mut cluster = TestCluster::start_single(1, |_| {}).await;
    compact_p0(&cluster, 0).await;
    cluster.stop_all().await;
    let config = cluster.nodes[0].config.clone();
    // The map's length runs past the end.
    rewrite_floor_meta(&config, |meta| {
        let mut damaged = meta.to_vec();
        damaged.truncate(damaged.len() - 1);
        damaged
    });
    cluster.start_node(0).await;
    let joining = cluster.raft(0).join_cluster(None);
    let events = std::sync::Arc::clone(&cluster.nodes[0].events);
    eventually("partition 0's restore fails", || {
        events.lock().expect("events").iter().any(|e| {
            matches!(e, RaftEvent::RestoreFailed { partition, reason }
                if *partition == P0 && reason.contains("malformed floor meta"))
        })
    })
    .await;
    assert!(!cluster.raft(0).is_initialized());
    drop(joining);
}

#[test]
fn the_floor_meta_bound_is_validated_at_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::new(1, dir.path());
    config.wal_batch_bytes_max = 256 << 10;
    config.wal_record_bytes_max = 64 << 10;
    assert_eq!(config.validate(), Ok(()));
    // Far more ranges than a 256 KiB frame holds beside the largest configuration.
    config.partition_map_ranges_max = 4096;
    let error = config.validate().expect_err("too large a floor meta");
    assert!(
        matches!(&error, kommander_raft::ConfigError::InvalidField { field, .. }
            if *field == "partition_map_ranges_max"),
        "{error}"
    );
    config.partition_map_ranges_max = 4;
    config.initial_partitions = 5;
    let error = config
        .validate()
        .expect_err("a first map larger than the bound");
    assert!(
        matches!(&error, kommander_raft::ConfigError::InvalidField { field, .. }
            if *field == "initial_partitions"),
        "{error}"
    );
}
