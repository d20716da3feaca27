//! The node simulator's knobs: cluster shape, phase lengths, disk, network and clock faults,
//! the workload and the nemesis mix. Times are simulated milliseconds; probabilities are per
//! million.

use crate::shard::SnapshotConfig;
use crate::sim::network::NetworkConfig;
use crate::sim::rng::{DiskLatency, SimRng};

/// Everything one node-level run needs besides its seed.
#[derive(Debug, Clone)]
pub struct NodeSimConfig {
    /// Number of nodes (every node hosts a replica of every partition).
    pub nodes: usize,
    /// Shards per node.
    pub shards: usize,
    /// User partitions (1..=partitions), spread over the shards by the library's placement.
    pub partitions: usize,
    /// The nodes' tick length.
    pub tick_ms: u64,
    /// Length of the phase with faults and client load.
    pub fault_phase_ms: u64,
    /// After the fault phase: every fault healed, how long the cluster gets to serve a write
    /// and a read on every partition (the liveness bound).
    pub settle_ms_max: u64,
    /// Network faults during the fault phase.
    pub network: NetworkConfig,
    /// How long a durable write takes.
    pub disk_latency: DiskLatency,
    /// Keys of each partition's register workload (with the elastic operator: of the whole
    /// key space, routed through the map).
    pub keys: u64,
    /// Operations of one partition's clients in flight at once.
    pub clients_per_partition: usize,
    /// Shortest pause between two operations of one client.
    pub op_interval_ms_min: u64,
    /// Longest pause between two operations of one client.
    pub op_interval_ms_max: u64,
    /// How long a client waits for an answer before it gives up (the outcome stays unknown).
    pub op_timeout_ms: u64,
    /// Share of operations that are reads.
    pub read_per_million: u32,
    /// Share of writes that are two-phase (proposed held, then committed or rolled back).
    pub two_phase_per_million: u32,
    /// Share of two-phase writes rolled back instead of committed.
    pub rollback_per_million: u32,
    /// Shortest pause between two checkpoints of one partition.
    pub checkpoint_interval_ms_min: u64,
    /// Longest pause between two checkpoints of one partition.
    pub checkpoint_interval_ms_max: u64,
    /// Shortest pause between two nemesis actions.
    pub fault_interval_ms_min: u64,
    /// Longest pause between two nemesis actions.
    pub fault_interval_ms_max: u64,
    /// Longest time a crashed node stays down.
    pub down_ms_max: u64,
    /// Longest time a network cut lasts.
    pub cut_ms_max: u64,
    /// Longest process pause (SIGSTOP).
    pub pause_ms_max: u64,
    /// The core's `append_entries_max`.
    pub append_entries_max: usize,
    /// The core's `inflight_messages_max`.
    pub inflight_messages_max: usize,
    /// The node's `wal_commit_lag_entries_max` (how far a commit index may run ahead of its
    /// WAL's: restarts then hand some committed entries over live, not as restored).
    pub commit_lag_entries_max: u64,
    /// The WAL's segment size (small: rotation, preparation and reclamation happen often).
    pub wal_segment_bytes: u64,
    /// Snapshot chunk size (tiny: a few registers make several chunks).
    pub snapshot_chunk_bytes: usize,
    /// Snapshot chunks in flight per transfer.
    pub snapshot_chunks_in_flight_max: usize,
    /// The shard's snapshot rate cap (0: none), in bytes a second.
    pub snapshot_bytes_per_sec_max: u64,
    /// Snapshot transfers a shard sends at once (beyond it they wait their turn).
    pub snapshot_transfers_max: usize,
    /// Snapshot transfers a shard receives at once (beyond it a first chunk is refused).
    pub snapshot_sessions_max: usize,
    /// Shortest pause between two roster changes.
    pub membership_interval_ms_min: u64,
    /// Longest pause between two roster changes (0: none).
    pub membership_interval_ms_max: u64,
    /// The nodes in the first roster (nodes 1 to this); the others start outside the cluster
    /// and are added (as learners) by the membership operator.
    pub initial_members: usize,
    /// Whether the membership operator also adds, removes and makes leave nodes (not only
    /// promotes and demotes them): off in [`NodeSimConfig::for_seed`], on in
    /// [`NodeSimConfig::moving_nodes_for_seed`] (each has its sweep).
    pub membership_moves_nodes: bool,
    /// Share of configuration entries (each once per term of a leader sending it) after which
    /// the network is cut around the change: the leader keeps a bare majority of the new
    /// configuration, the others may hold a majority of the previous one
    /// (`configuration_cut.rs`).
    pub configuration_cut_per_million: u32,
    /// Share of partition 0's configuration entries (each when its leader first sends it, in
    /// the seeds where the operator changes the roster) after which the leader is cut off
    /// with only the nodes the change brings in: the change stays on a minority while the
    /// others elect a leader without it, whose first append is then cut against the change's
    /// holders (`configuration_cut.rs`: Ongaro's single-server hazard).
    pub stranded_configuration_per_million: u32,
    /// Shortest pause between two replacements of a node's disks (`replace.rs`: the node
    /// crashes, its data directory is wiped, and it is admitted again with a new incarnation).
    pub replace_interval_ms_min: u64,
    /// Longest pause between two replacements (0: none): on only in the multi-node seeds of
    /// [`NodeSimConfig::replacing_nodes_for_seed`].
    pub replace_interval_ms_max: u64,
    /// Shortest pause between two partition-map operations of the elastic operator
    /// (`elastic.rs`: create, remove, split, merge).
    pub elastic_interval_ms_min: u64,
    /// Longest pause between two partition-map operations (0: none). On only in
    /// [`NodeSimConfig::elastic_for_seed`], where the clients route their keys through the
    /// partition map instead of writing each partition's own registers.
    pub elastic_interval_ms_max: u64,
}

impl NodeSimConfig {
    /// The default hostile mix, with the cluster shape drawn from `seed`: 1, 2, 3 or 5 nodes,
    /// 1 to 4 shards, 1 to 64 partitions, so that a sweep covers every shape.
    #[must_use]
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = SimRng::new(seed ^ 0x4E0D_E51A_0000_0001);
        let nodes = [1, 2, 3, 3, 3, 5, 5][rng.index(7)];
        let shards = rng.between(1, 4) as usize;
        // Mostly a few partitions (where interleavings are dense), sometimes many.
        let partitions = if rng.chance(200_000) {
            rng.between(16, 64) as usize
        } else {
            rng.between(1, 6) as usize
        };
        // Keep the whole cluster's load near 200-500 operations per simulated second.
        let per_partition_clients = if partitions > 8 { 1 } else { 2 };
        let op_interval_ms_min = 10 * partitions as u64 * per_partition_clients as u64;
        let storm = rng.chance(333_333);
        let mut config = Self {
            nodes,
            shards,
            partitions,
            tick_ms: 10,
            fault_phase_ms: 60_000,
            settle_ms_max: 20_000,
            network: NetworkConfig::hostile(),
            disk_latency: DiskLatency {
                min_ms: 1,
                max_ms: 4,
                slow_per_million: 20_000,
                slow_max_ms: 60,
            },
            keys: 3,
            clients_per_partition: per_partition_clients,
            op_interval_ms_min,
            op_interval_ms_max: op_interval_ms_min * 4,
            op_timeout_ms: 4_000,
            read_per_million: 400_000,
            two_phase_per_million: 100_000,
            rollback_per_million: 300_000,
            checkpoint_interval_ms_min: 1_000,
            checkpoint_interval_ms_max: 6_000,
            fault_interval_ms_min: if storm { 100 } else { 400 },
            fault_interval_ms_max: if storm { 600 } else { 3_000 },
            down_ms_max: 3_000,
            cut_ms_max: 4_000,
            pause_ms_max: 1_500,
            append_entries_max: [1, 4, 64][rng.index(3)],
            inflight_messages_max: [1, 4, 256][rng.index(3)],
            commit_lag_entries_max: 0,
            wal_segment_bytes: 256 * 1024,
            snapshot_chunk_bytes: [16, 32, 4096][rng.index(3)],
            snapshot_chunks_in_flight_max: [1, 2, 4][rng.index(3)],
            snapshot_bytes_per_sec_max: 0,
            snapshot_transfers_max: SnapshotConfig::default().transfers_max,
            snapshot_sessions_max: SnapshotConfig::default().sessions_max,
            membership_interval_ms_min: 200,
            membership_interval_ms_max: 0,
            initial_members: nodes,
            membership_moves_nodes: false,
            configuration_cut_per_million: 0,
            // Not drawn from the seed: every seed may strand a change, and no other draw moves.
            stranded_configuration_per_million: 250_000,
            replace_interval_ms_min: 0,
            replace_interval_ms_max: 0,
            elastic_interval_ms_min: 0,
            elastic_interval_ms_max: 0,
        };
        // A chunk per tick (a read takes the budget below zero and waits for a tick), or ten;
        // drawn last, so that every earlier draw of a seed stays what it was.
        config.snapshot_bytes_per_sec_max =
            [0, 0, 100, 1_000][rng.index(4)] * config.snapshot_chunk_bytes as u64;
        // Membership changes in one multi-node seed in two; drawn after everything else.
        if nodes > 1 && rng.chance(500_000) {
            config.membership_interval_ms_max = rng.between(500, 3_000);
        }
        // Cuts around configuration changes in two seeds of three; drawn last.
        config.configuration_cut_per_million = [0, 100_000, 300_000][rng.index(3)];
        // Commit indexes written at every change, or lagging by a few entries, or by the
        // default; drawn last.
        config.commit_lag_entries_max = [0, 1, 8, 64][rng.index(4)];
        config
    }

    /// As [`NodeSimConfig::for_seed`], with the membership operator adding, removing and
    /// making leave nodes in every multi-node seed, half of them starting with some nodes
    /// outside the cluster.
    #[must_use]
    pub fn moving_nodes_for_seed(seed: u64) -> Self {
        let mut config = Self::for_seed(seed);
        if config.nodes > 1 {
            let mut rng = SimRng::new(seed ^ 0x4E0D_E51A_0000_0002);
            config.membership_moves_nodes = true;
            config.membership_interval_ms_max = rng.between(500, 3_000);
            if rng.chance(500_000) {
                config.initial_members = rng.between(1, config.nodes as u64 - 1) as usize;
            }
        }
        config
    }

    /// As [`NodeSimConfig::for_seed`], with the elastic operator creating, removing, splitting
    /// and merging partitions under the faults (`elastic.rs`) and the clients routing their
    /// keys through the partition map they last learnt from a node (`client.rs`): a key's
    /// history spans splits and merges. At most 6 partitions to start from, 2 clients each;
    /// keys: 8 over the whole hash space; no two-phase
    /// writes (a held ticket on a merge's source stops its delivery, and with it the merge,
    /// until it is rolled back).
    #[must_use]
    pub fn elastic_for_seed(seed: u64) -> Self {
        let mut config = Self::for_seed(seed);
        let mut rng = SimRng::new(seed ^ 0x4E0D_E51A_0000_0004);
        // A few partitions to start from (splits add more): every client reaches every key,
        // and the keys' histories stay small enough for the linearizability checker.
        config.partitions = config.partitions.min(6);
        config.clients_per_partition = 2;
        config.op_interval_ms_min = 20 * config.partitions as u64;
        config.op_interval_ms_max = config.op_interval_ms_min * 4;
        config.keys = 8;
        config.two_phase_per_million = 0;
        config.elastic_interval_ms_min = 500;
        config.elastic_interval_ms_max = rng.between(1_500, 5_000);
        config
    }

    /// Whether the elastic operator runs and the clients route keys through the map.
    #[must_use]
    pub fn elastic(&self) -> bool {
        self.elastic_interval_ms_max > 0
    }

    /// As [`NodeSimConfig::moving_nodes_for_seed`], with now and then a node's disks replaced
    /// in every multi-node seed (a voter, a learner, or partition 0's leader: crashed, its data
    /// directory wiped, admitted again with a new incarnation, its votes withheld until its
    /// admission committed: decision 0004, "A replaced disk's vote"). The moving sweep runs it
    /// on every odd seed.
    #[must_use]
    pub fn replacing_nodes_for_seed(seed: u64) -> Self {
        let mut config = Self::moving_nodes_for_seed(seed);
        if config.nodes > 1 {
            let mut rng = SimRng::new(seed ^ 0x4E0D_E51A_0000_0003);
            config.replace_interval_ms_min = 4_000;
            config.replace_interval_ms_max = rng.between(8_000, 20_000);
            // A node admitted again on a new disk needs a snapshot of every partition: few
            // transfers each way make the senders wait for one another and the receiver
            // refuse some. Drawn last.
            config.snapshot_transfers_max = [8, 2, 1][rng.index(3)];
            config.snapshot_sessions_max = [8, 2, 1][rng.index(3)];
        }
        config
    }
}
