//! [`ShardConfig`]: the values the shard host and its threads run with. The node derives it
//! from its own configuration (`ShardConfig::from(&NodeConfig)`) and validates it there
//! (`NodeConfig::validate`, whose errors name the node's field); nothing in the shard layer
//! reads settings from anywhere else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kommander_wal::WalConfig;
use serde::{Deserialize, Serialize};

use crate::core::{self, NodeId, PartitionId};

/// The configuration of a node's shards (see the field docs of `NodeConfig`, which sets each
/// of them under the same name).
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// The nodes the cluster started with, this one included, with the endpoints their peers
    /// reach them at: the nodes whose last message is recorded, and the endpoints of the
    /// genesis roster.
    pub cluster: BTreeMap<NodeId, String>,
    /// Number of shard threads (at least 1). A data directory keeps the count it was created
    /// with.
    pub shard_count: usize,
    /// Directory holding one WAL directory per shard (`shard-<n>`).
    pub data_dir: PathBuf,
    /// The period of each shard's single timer (one tick of every replica).
    pub tick_interval: Duration,
    /// Requests queued per shard; a full queue refuses with `QueueFull`.
    pub shard_commands_max: usize,
    /// Inbound message batches queued per shard; a full queue drops (and counts) the batch.
    pub shard_inbound_batches_max: usize,
    /// Requests and inbound batches one loop turn takes from each queue.
    pub shard_inputs_per_turn_max: usize,
    /// Entries restore reads from the WAL, or hands to `on_log_restored`, per loop turn.
    pub restore_entries_per_turn_max: usize,
    /// Partitions one node hosts at most.
    pub partitions_max: usize,
    /// Entries in one proposal at most.
    pub proposal_entries_max: usize,
    /// Bytes of a `log_type` string at most.
    pub log_type_bytes_max: usize,
    /// The core configuration every partition's replica starts from: [`Self::partition_config`]
    /// sets its partition, voters and learners.
    pub core: core::ReplicaConfig,
    /// The WAL configuration of every shard.
    pub wal: WalConfig,
    /// Snapshot transfer limits.
    pub snapshot: SnapshotConfig,
    /// Membership changes.
    pub membership: MembershipConfig,
    /// A WAL write slower than this (submission to durability) is logged as a warning;
    /// [`Duration::ZERO`]: never.
    pub slow_wal_write: Duration,
    /// How many entries a user partition's commit index may run ahead of the one its WAL
    /// holds before it is written (it is also written when it commits a configuration entry,
    /// when the partition quiesces and at an orderly stop); 0: at every change.
    pub commit_lag_entries_max: u64,
    /// Simulator sensitivity hooks (feature `sim-bugs` only): the node-level bug to inject.
    #[cfg(feature = "sim-bugs")]
    pub bug: Option<NodeBug>,
}

/// The limits of snapshot transfer (a node's `[snapshot]` table). Ticks are the shard's ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Bytes of application state in one chunk (it must fit a transport frame). Also the
    /// largest chunk of a split's or merge's range import (within one WAL record).
    pub chunk_bytes: usize,
    /// Chunks sent and not yet acknowledged, per transfer. Also the import entries of a
    /// split's or merge's range a target's leader keeps proposed and uncommitted.
    pub chunks_in_flight_max: usize,
    /// Transfers a shard sends at once (one per follower and partition at most); a transfer
    /// beyond it waits its turn and starts, in the order asked for, when one ends.
    pub transfers_max: usize,
    /// Transfers a shard receives at once; a first chunk beyond it is answered `Busy`, and its
    /// leader waits until this shard tells it `Free` as a session ends (or for
    /// `ack_timeout_ticks`, if that notice is lost).
    pub sessions_max: usize,
    /// Bytes one received transfer may carry; a chunk beyond it ends the transfer.
    pub session_bytes_max: u64,
    /// A received transfer that hears nothing for this many ticks is abandoned.
    pub session_idle_ticks: u32,
    /// A sent transfer whose oldest chunk is not acknowledged within this many ticks fails.
    pub ack_timeout_ticks: u32,
    /// Ceiling of the back-off after a failed transfer, in ticks (it starts at one heartbeat
    /// interval and doubles).
    pub backoff_max_ticks: u32,
    /// Snapshot bytes a shard sends per second, over all its transfers (0: no cap). A cap
    /// keeps a transfer's network and CPU cost (copies, checksums on both ends) off the
    /// writes of the other partitions on a busy node, at the price of a longer catch-up. At
    /// least `chunk_bytes` (one chunk a second).
    pub bytes_per_sec_max: u64,
    /// Nice value (0 to 19) of each shard's transfer thread, which reads, hashes and writes
    /// the snapshot chunks: above 0 it runs behind the threads that serve writes (shards, WAL,
    /// transport) whenever the CPU is short, so a transfer slows down before the other
    /// partitions do; it never stops (a nice thread still gets its share).
    pub transfer_thread_nice: u8,
}

impl Default for SnapshotConfig {
    /// 256 KiB chunks, 16 in flight, 8 transfers each way per shard, 64 GiB per transfer; with
    /// 20 ms ticks: an idle receiver gives up after 10 s, a sender after 5 s without an
    /// acknowledgement, and retries back off to 30 s. No cap on the rate; transfer threads at
    /// nice 19.
    fn default() -> Self {
        Self {
            // Measured (`benches/snapshot.rs`, docs/benchmarks.md): 2 MiB chunks stream a
            // fifth faster on an idle node but cost a busy node's other partitions a third of
            // their writes, where 128 to 256 KiB chunks cost them a fifth; 16 in flight keep
            // the stream full.
            chunk_bytes: 256 << 10,
            chunks_in_flight_max: 16,
            transfers_max: 8,
            sessions_max: 8,
            session_bytes_max: 64 << 30,
            session_idle_ticks: 500,
            ack_timeout_ticks: 250,
            backoff_max_ticks: 1_500,
            bytes_per_sec_max: 0,
            transfer_thread_nice: 19,
        }
    }
}

impl SnapshotConfig {
    /// Checks every limit; the error names the field (as spelled in the `[snapshot]` table)
    /// and what is wrong.
    ///
    /// # Errors
    ///
    /// `(field, reason)` for the first invalid field.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.chunk_bytes < 1024 {
            return Err(("chunk_bytes", "at least 1024 bytes"));
        }
        if u32::try_from(self.chunk_bytes).is_err() {
            return Err(("chunk_bytes", "below 4 GiB"));
        }
        let positive: [(&'static str, u64); 7] = [
            ("chunks_in_flight_max", self.chunks_in_flight_max as u64),
            ("transfers_max", self.transfers_max as u64),
            ("sessions_max", self.sessions_max as u64),
            ("session_bytes_max", self.session_bytes_max),
            ("session_idle_ticks", u64::from(self.session_idle_ticks)),
            ("ack_timeout_ticks", u64::from(self.ack_timeout_ticks)),
            ("backoff_max_ticks", u64::from(self.backoff_max_ticks)),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err((field, "must be positive"));
            }
        }
        let capped = [
            ("chunks_in_flight_max", self.chunks_in_flight_max),
            ("transfers_max", self.transfers_max),
            ("sessions_max", self.sessions_max),
        ];
        for (field, value) in capped {
            if value > 1024 {
                return Err((field, "at most 1024"));
            }
        }
        if self.bytes_per_sec_max != 0 && self.bytes_per_sec_max < self.chunk_bytes as u64 {
            return Err((
                "bytes_per_sec_max",
                "0 (no cap) or at least chunk_bytes (one chunk a second)",
            ));
        }
        if self.transfer_thread_nice > 19 {
            return Err(("transfer_thread_nice", "at most 19 (the lowest priority)"));
        }
        Ok(())
    }
}

/// Membership changes (a node's `[membership]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipConfig {
    /// A partition's leader promotes a learner the roster made a voter once the learner's log
    /// is within this many entries of the partition's commit index (0: fully caught up). A
    /// voter far behind would hold up the partition's commits until it caught up. A joining
    /// node asks for its own promotion in the roster by the same bound, measured on its side:
    /// every replica it hosts has applied within this many entries of the commit index its
    /// leader told it (Kommander's `LearnerPromotionLag`, 10).
    pub promotion_lag_entries_max: u64,
    /// How long a joining node's replicas must stay within `promotion_lag_entries_max`, all of
    /// them without a break, before it asks to be made a voter, in milliseconds (Kommander's
    /// `LearnerPromotionStableWindow`, 3 s). Counted in the shard's ticks (rounded up); 0:
    /// at the first tick they are. At most one hour.
    pub promotion_window_ms: u64,
    /// How long a node waits before asking again when a membership call (joining through a
    /// seed, a promotion, leaving, removing a member) got no answer it can act on (the node
    /// was unreachable, another change was in flight, no leader was known), in milliseconds
    /// (Kommander's join loop: 500 ms). A leader hint is followed at once. 1 to 60 000.
    pub call_retry_interval_ms: u64,
}

impl Default for MembershipConfig {
    /// 64 entries: a learner under steady write load is promoted, one still replaying a
    /// backlog is not; a window of 3 s; calls asked again after 500 ms.
    fn default() -> Self {
        Self {
            promotion_lag_entries_max: 64,
            promotion_window_ms: 3_000,
            call_retry_interval_ms: 500,
        }
    }
}

impl MembershipConfig {
    /// Checks every field; the error names the field (as spelled in the `[membership]` table)
    /// and what is wrong.
    ///
    /// # Errors
    ///
    /// `(field, reason)` for the first invalid field.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.promotion_window_ms > 3_600_000 {
            return Err(("promotion_window_ms", "at most 3600000 (one hour)"));
        }
        if !(1..=60_000).contains(&self.call_retry_interval_ms) {
            return Err(("call_retry_interval_ms", "must be between 1 and 60000"));
        }
        Ok(())
    }

    /// `promotion_window_ms` in ticks of `tick_interval` (rounded up): how many ticks in a
    /// row a joining node's replicas must be caught up.
    #[must_use]
    pub fn promotion_window_ticks(&self, tick_interval: Duration) -> u64 {
        let tick_ms = u64::try_from(tick_interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.promotion_window_ms.div_ceil(tick_ms)
    }

    /// `call_retry_interval_ms` as a duration.
    #[must_use]
    pub fn call_retry_interval(&self) -> Duration {
        Duration::from_millis(self.call_retry_interval_ms)
    }
}

/// A known node-level bug the simulator must catch (feature `sim-bugs`): each is a minimal hook
/// at the spot of the shard code whose guarantee it breaks. With the feature off none of this
/// code exists. (The core's own bugs are `core::InjectedBug`.)
#[cfg(feature = "sim-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeBug {
    /// Persist-gated messages (votes, append acks) leave with the submission of their Ready's
    /// write, not after it is durable.
    ReleaseGatedBeforeDurable,
    /// A proposal's waiter is answered success as soon as its entries are appended to the WAL
    /// for this turn's submission (before durability and commit).
    AckProposalBeforeDurable,
    /// The WalScheduler treats a submitted write as durable (`Replica::persisted`, gated
    /// messages released) at submission, without waiting for the WAL's durable LSN.
    DurableWithoutFsync,
    /// After a restore, live delivery starts again from the floor: entries already handed to
    /// `on_log_restored` reach `on_replication_received` too.
    RedeliverAfterRestore,
    /// A ReadIndex request is answered at once with the local applied index, on any replica,
    /// without a leadership round.
    ReadWithoutReadIndex,
    /// The WAL is compacted to every applied checkpoint without waiting for the application's
    /// durable index (`StateMachine::durable_index`).
    CompactPastDurableIndex,
    /// A received snapshot's boundary is installed (and made durable) before the application
    /// finished importing it; the import finishes a few ticks later, while the partition is
    /// not held.
    BoundaryBeforeImport,
    /// Partition 0's leader accepts a roster change before the no-op of its term committed:
    /// the shard's own guard (`is_leader_established`) is skipped and partition 0's replica
    /// runs with the core's `ConfigurationBeforeNoOpCommits`.
    RosterChangeBeforeNoOp,
    /// Partition 0's leader accepts a roster change while another is in flight: the shard's
    /// guards (a configuration change pending, every partition reconciled with the roster)
    /// are skipped and partition 0's replica runs with the core's
    /// `ConcurrentConfigurationChanges`.
    ConcurrentRosterChanges,
    /// A data directory admitted through a seed votes at once: its replicas are opened
    /// without `votes_withheld_below_version` (decision 0004, "A replaced disk's vote").
    ReplacedDiskVotesAtOnce,
    /// The generation fence is skipped: the shard carries out a fenced request whatever the
    /// generation it was routed with (`Request::Fenced`).
    SkipGenerationFence,
    /// Phase 2 of a split or merge is proposed as soon as phase 1 is the committed map,
    /// without waiting until this node's replica of the importing partition applied the end
    /// of the import (how "phase 2 before phase 1 committed" shows in this design: phase 1's
    /// map commits at once, its transfer through the target's log is what phase 2 must wait
    /// for).
    PhaseTwoBeforePhaseOne,
    /// A quiesced follower never campaigns: the shard forgets its verdict that the leader's
    /// node fell silent instead of waking the follower with `Replica::leader_node_dead`
    /// (decision 0007).
    QuiescedNeverCampaigns,
    /// A follower's owed ticks are dropped: a replica off the tick's active list is not
    /// handed the ticks since its last visit (the shard's `Clock::catch_up` moves its mark
    /// without ticking it), so its election timer never runs out.
    OwedTicksDropped,
}

#[cfg(feature = "sim-bugs")]
impl NodeBug {
    /// Every injectable node-level bug.
    pub const ALL: [Self; 14] = [
        Self::ReleaseGatedBeforeDurable,
        Self::AckProposalBeforeDurable,
        Self::DurableWithoutFsync,
        Self::RedeliverAfterRestore,
        Self::ReadWithoutReadIndex,
        Self::CompactPastDurableIndex,
        Self::BoundaryBeforeImport,
        Self::RosterChangeBeforeNoOp,
        Self::ConcurrentRosterChanges,
        Self::ReplacedDiskVotesAtOnce,
        Self::SkipGenerationFence,
        Self::PhaseTwoBeforePhaseOne,
        Self::QuiescedNeverCampaigns,
        Self::OwedTicksDropped,
    ];

    /// The core bug this node bug turns on in `partition`'s replica, if any: a roster bug
    /// takes partition 0's core guard away with the shard's.
    fn core_bug(self, partition: PartitionId) -> Option<core::InjectedBug> {
        match self {
            _ if partition != crate::shard::SYSTEM_PARTITION => None,
            Self::RosterChangeBeforeNoOp => Some(core::InjectedBug::ConfigurationBeforeNoOpCommits),
            Self::ConcurrentRosterChanges => {
                Some(core::InjectedBug::ConcurrentConfigurationChanges)
            }
            _ => None,
        }
    }
}

impl ShardConfig {
    /// The core configuration of `partition`'s replica on this node.
    #[must_use]
    pub fn partition_config(
        &self,
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    ) -> core::ReplicaConfig {
        #[allow(unused_mut)]
        let mut config = core::ReplicaConfig {
            id: self.node_id,
            partition,
            voters,
            learners,
            ..self.core.clone()
        };
        #[cfg(feature = "sim-bugs")]
        if let Some(bug) = self.bug.and_then(|bug| bug.core_bug(partition)) {
            config.bug = Some(bug);
        }
        config
    }
}
