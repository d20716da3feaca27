//! What a run returns: its report (the proof it was not vacuous: what it did, which faults
//! fired), and the command that replays a run (a failure is the simulators' one `SimFailure`).

use super::NodeSimConfig;
use super::nemesis::Fault;

/// The command that replays a failing seed with its trace.
#[must_use]
pub fn node_replay_command(seed: u64, bug: Option<&str>) -> String {
    let bug = bug.map_or(String::new(), |bug| {
        format!("KOMMANDER_NODE_SIM_BUG={bug} ")
    });
    format!(
        "{bug}KOMMANDER_NODE_SIM_SEED={seed} cargo test --profile ci node_sim::replay -- --nocapture"
    )
}

/// The acknowledged writes below which a run proved nothing (a sweep calls such a seed
/// vacuous). Its clients go on after the faults healed until the run has them, and
/// [`RUN_READS_MIN`] reads, whatever the faults left (node sweep seed 30849: two nodes cut
/// apart and crashed for most of the 60 s had 8 when every partition had served after
/// healing).
pub const RUN_ACKNOWLEDGED_MIN: u64 = 10;
/// The answered reads below which a run proved nothing ([`RUN_ACKNOWLEDGED_MIN`]).
pub const RUN_READS_MIN: u64 = 5;

/// What one run did and its trace hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSimReport {
    /// The seed.
    pub seed: u64,
    /// The cluster's shape: nodes, shards per node, partitions.
    pub shape: (usize, usize, usize),
    /// Hash of every event of the run.
    pub trace_hash: u64,
    /// Events folded into the hash.
    pub events: u64,
    /// Shard loop turns run.
    pub turns: u64,
    /// Frames put on the wire.
    pub frames: u64,
    /// Operations the clients started.
    pub operations: u64,
    /// Proposals answered `Success`.
    pub acknowledged: u64,
    /// Operations answered with a definite failure (rollbacks included).
    pub failed: u64,
    /// Operations whose outcome stayed open (leadership lost, crash, shard failed, timeout).
    pub indeterminate: u64,
    /// Operations the client gave up waiting for.
    pub timeouts: u64,
    /// Reads answered.
    pub reads: u64,
    /// Two-phase writes rolled back.
    pub rolled_back: u64,
    /// Checkpoints answered `Success`.
    pub checkpoints: u64,
    /// Configuration changes answered `Success`.
    pub membership_changes: u64,
    /// Nodes whose disks were replaced and that were admitted again (an `Add` with their new
    /// incarnation accepted, the node started on its empty disks).
    pub replacements: u64,
    /// Entries handed to applications (all nodes, restored and live).
    pub delivered: u64,
    /// Node incarnations started (the first starts included).
    pub starts: u64,
    /// Faults the nemesis injected, by kind.
    pub faults: FaultCounts,
    /// Injected disk faults that fired (a WAL failed on them and its node restarted).
    pub disk_faults_fired: u64,
    /// Full checks of every disk's durable logs (before each crash and at the end).
    pub disk_checks: u64,
    /// (partition, term) pairs that had a leader on the wire.
    pub elections: u64,
    /// Search states the linearizability checker explored.
    pub linearizability_states: u64,
    /// Violations of checkers the run did not listen to (sensitivity runs).
    pub ignored_violations: u64,
    /// Snapshots the nodes' applications exported (for followers below a leader's floor).
    pub snapshot_exports: u64,
    /// Snapshots the nodes' applications finished importing.
    pub snapshot_imports: u64,
    /// Simulated ms from the end of the faults until the run settled.
    pub settle_ms: u64,
    /// Partition-map operations of the elastic operator answered as done (changed, or
    /// already done on a retry).
    pub map_changes: u64,
    /// Partition-map operations refused (a rule of the operation, or a stale map drawn from).
    pub map_changes_refused: u64,
    /// Splits whose phase 2 a committed map shows (from the maps partition 0's disks held).
    pub splits_completed: u64,
    /// Merges whose phase 2 a committed map shows.
    pub merges_completed: u64,
    /// Partition 0's leaders crashed right after they answered a split's or merge's phase 1.
    pub crashes_between_phases: u64,
}

/// Faults injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Process crashes.
    pub crashes: u64,
    /// Power losses of a minority.
    pub power_losses_minority: u64,
    /// Power losses of every node.
    pub power_losses_all: u64,
    /// Failed writes or syncs armed.
    pub disk_faults: u64,
    /// Slow-disk episodes.
    pub slow_disks: u64,
    /// Process pauses.
    pub pauses: u64,
    /// Symmetric partitions.
    pub partitions: u64,
    /// One-way cuts.
    pub one_way_cuts: u64,
    /// Forward clock jumps.
    pub clock_jumps: u64,
    /// Leadership transfers asked.
    pub transfers: u64,
    /// Step-downs asked.
    pub step_downs: u64,
    /// Cuts around a configuration entry (the leader left with a bare majority of the new
    /// configuration).
    pub configuration_cuts: u64,
}

impl NodeSimReport {
    pub(super) fn new(seed: u64, config: &NodeSimConfig) -> Self {
        Self {
            seed,
            shape: (config.nodes, config.shards, config.partitions),
            ..Self::default()
        }
    }

    pub(super) fn count_fault(&mut self, fault: Fault) {
        let counts = &mut self.faults;
        let counter = match fault {
            Fault::Crash => &mut counts.crashes,
            Fault::PowerLossMinority => &mut counts.power_losses_minority,
            Fault::PowerLossAll => &mut counts.power_losses_all,
            Fault::FailedIo => &mut counts.disk_faults,
            Fault::SlowDisk => &mut counts.slow_disks,
            Fault::Pause => &mut counts.pauses,
            Fault::Partition => &mut counts.partitions,
            Fault::OneWayCut => &mut counts.one_way_cuts,
            Fault::ClockJump => &mut counts.clock_jumps,
            Fault::Transfer => &mut counts.transfers,
            Fault::StepDown => &mut counts.step_downs,
        };
        *counter += 1;
    }
}
