//! The simulator's knobs: cluster shape, phase lengths, disk and network fault rates, client
//! load and the nemesis mix. Times are simulated milliseconds; probabilities are per million.

use super::network::NetworkConfig;
use super::rng::{DiskLatency, SimRng};

/// Everything one simulated run needs besides its seed.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes (every node hosts a replica of every partition).
    pub nodes: usize,
    /// Number of partitions (independent Raft groups).
    pub partitions: usize,
    /// Simulated milliseconds per core tick (each node ticks at its own slightly drifting rate).
    pub tick_ms: u64,
    /// Length of the phase with faults and client load.
    pub fault_phase_ms: u64,
    /// After the fault phase: every fault healed, how long the cluster gets to converge
    /// (liveness bound).
    pub settle_ms_max: u64,
    /// Network faults during the fault phase.
    pub network: NetworkConfig,
    /// How long a flush takes (one flush covers every write queued when it starts; a slow one
    /// widens the window between sending and persisting).
    pub disk_latency: DiskLatency,
    /// Shortest pause between two client proposals to one partition.
    pub proposal_interval_ms_min: u64,
    /// Longest pause between two client proposals to one partition.
    pub proposal_interval_ms_max: u64,
    /// Largest number of entries in one proposal (a batch shares one ticket).
    pub proposal_batch_max: u64,
    /// Share of proposals that are two-phase (`auto_commit = false`).
    pub two_phase_per_million: u32,
    /// Share of two-phase proposals the client rolls back instead of committing.
    pub rollback_per_million: u32,
    /// Shortest pause between two nemesis actions.
    pub fault_interval_ms_min: u64,
    /// Longest pause between two nemesis actions.
    pub fault_interval_ms_max: u64,
    /// Probability that the nemesis pauses for a calm stretch instead of the usual interval
    /// (storms need calm stretches, or nothing gets acknowledged).
    pub fault_calm_per_million: u32,
    /// Longest calm stretch.
    pub fault_calm_ms_max: u64,
    /// Longest time a crashed node stays down (during the fault phase).
    pub down_ms_max: u64,
    /// Longest time a partition or one-way cut lasts before the nemesis heals it.
    pub cut_ms_max: u64,
    /// The core's `append_entries_max`: small values split catch-up into many appends, so a
    /// follower can hold old-term entries without the new leader's barrier (Raft's figure 8).
    pub append_entries_max: usize,
    /// The core's `inflight_messages_max`.
    pub inflight_messages_max: usize,
    /// The core's `compaction_retain_entries_max`: 0 makes every follower behind a checkpoint
    /// need a snapshot.
    pub compaction_retain_entries_max: u64,
    /// Shortest pause between two checkpoint proposals to one partition.
    pub checkpoint_interval_ms_min: u64,
    /// Longest pause between two checkpoint proposals to one partition.
    pub checkpoint_interval_ms_max: u64,
    /// Nodes that start as the voters of every partition (the first ones); the others start
    /// outside every configuration, waiting to be added.
    pub initial_voters: usize,
    /// Shortest pause between two membership changes of one partition.
    pub membership_interval_ms_min: u64,
    /// Longest pause between two membership changes of one partition (0: no changes).
    pub membership_interval_ms_max: u64,
    /// Share of membership changes followed at once by a second one (the leader must refuse
    /// it while the first is uncommitted).
    pub membership_burst_per_million: u32,
    /// Share of leader elections followed at once by a membership change on the new leader
    /// (it must refuse it until the no-op of its term has committed).
    pub membership_on_leadership_per_million: u32,
    /// Share of accepted membership changes after which the leader and the nodes the change
    /// brought in are cut off from the rest (only overlapping majorities keep that safe).
    pub membership_split_per_million: u32,
}

impl SimConfig {
    /// The default hostile mix, with the cluster shape drawn from `seed` (3 or 5 nodes, 1 to 3
    /// partitions, membership changes or not) so that the seed sweep covers several shapes.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = SimRng::new(seed ^ 0x5151_5151_5151_5151);
        let nodes = if rng.chance(250_000) { 5 } else { 3 };
        let partitions = rng.between(1, 3) as usize;
        let append_entries_max = [1, 1, 2, 4, 1024][rng.index(5)];
        let inflight_messages_max = [1, 1, 4, 256][rng.index(4)];
        let compaction_retain_entries_max = [0, 64, 8192][rng.index(3)];
        // One seed in three is a fault storm (a nemesis action every 50 to 400 ms).
        let storm = rng.chance(333_333);
        let fault_interval_ms_min = if storm { 50 } else { rng.between(100, 500) };
        let fault_interval_ms_max = if storm {
            rng.between(150, 400)
        } else {
            rng.between(1_000, 4_000)
        };
        // Drawn last, so that the draws above (and the seeds found with them) stay as they
        // were. One seed in two changes memberships, half of them on five nodes (where an old
        // and a new majority two changes apart need not meet), with up to a minority of the
        // nodes starting outside.
        let membership = rng.chance(500_000);
        let nodes = if membership && rng.chance(500_000) {
            5
        } else {
            nodes
        };
        let initial_voters = if membership {
            nodes - rng.between(0, (nodes as u64 - 1) / 2) as usize
        } else {
            nodes
        };
        let membership_interval_ms_max = if membership {
            rng.between(500, 4_000)
        } else {
            0
        };
        Self {
            nodes,
            partitions,
            tick_ms: 10,
            fault_phase_ms: 200_000,
            settle_ms_max: 30_000,
            network: NetworkConfig::hostile(),
            disk_latency: DiskLatency {
                min_ms: 1,
                max_ms: 6,
                slow_per_million: 20_000,
                slow_max_ms: 80,
            },
            proposal_interval_ms_min: 20,
            proposal_interval_ms_max: 150,
            proposal_batch_max: 3,
            two_phase_per_million: 150_000,
            rollback_per_million: 300_000,
            fault_interval_ms_min,
            fault_interval_ms_max,
            fault_calm_per_million: if storm { 100_000 } else { 0 },
            fault_calm_ms_max: 8_000,
            down_ms_max: 3_000,
            cut_ms_max: 5_000,
            append_entries_max,
            inflight_messages_max,
            compaction_retain_entries_max,
            checkpoint_interval_ms_min: 500,
            checkpoint_interval_ms_max: 5_000,
            initial_voters,
            membership_interval_ms_min: 100,
            membership_interval_ms_max,
            membership_burst_per_million: 200_000,
            membership_on_leadership_per_million: 300_000,
            membership_split_per_million: 300_000,
        }
    }
}
