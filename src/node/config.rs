//! [`NodeConfig`]: one serde struct (TOML-loadable) holding everything a node needs — identity,
//! peers, storage, timing and every limit — validated at start with an error naming the field.
//!
//! It derives the per-partition [`core::ReplicaConfig`], the per-shard [`WalConfig`] and the
//! It derives the per-partition [`core::ReplicaConfig`], the per-shard [`WalConfig`], the
//! shard host's [`ShardConfig`] and the TCP transport's [`TcpConfig`] and [`TcpCluster`];
//! nothing in the shards or the transport reads settings from anywhere else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kommander_wal::WalConfig;
use kommander_wal::backend::{BackendChoice, UringWriteMode};
use serde::{Deserialize, Serialize};

use crate::core::{self, NodeId, PartitionId};
use crate::shard::membership::ENDPOINT_BYTES_MAX;
use crate::shard::partitions::floor_meta_bytes_max;
use crate::shard::{MembershipConfig, ShardConfig, SnapshotConfig};
use crate::transport::tcp::{TcpCluster, TcpConfig, TcpConfigError};

/// Which WAL backend the shards use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalBackend {
    /// io_uring where this process may use it, else the blocking backend (with a log line).
    #[default]
    Auto,
    /// io_uring only (linked write + fdatasync); start fails where it is not permitted.
    IoUring,
    /// `pwrite` + `fdatasync` on a helper thread.
    Blocking,
}

/// The configuration of one node. Load it with [`NodeConfig::from_toml`] or build it with
/// [`NodeConfig::new`] and struct-update syntax; [`NodeConfig::validate`] runs at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (non-zero, unique in the cluster); required in a TOML file.
    pub node_id: u64,
    /// A human-readable name (for logs and the API).
    pub node_name: String,
    /// The endpoint other nodes reach this node at (`host:port`; for in-memory transports, the
    /// name it is registered under). The roster records it when the node joins through a seed
    /// (`Raft::join_cluster_with_seeds`, which refuses an empty one).
    pub endpoint: String,
    /// The cluster's name; nodes of different clusters refuse each other.
    pub cluster_name: String,
    /// The other nodes of the cluster: node id → endpoint (static discovery). Must not
    /// contain `node_id`. A node that joins a running cluster through a seed needs none (its
    /// peers come from the roster); a node without peers that calls `Raft::join_cluster`
    /// starts a cluster of its own, of one node.
    pub peers: BTreeMap<u64, String>,
    /// Directory holding one WAL directory per shard (`shard-<n>`); required in a TOML file.
    pub data_dir: PathBuf,
    /// Number of shard threads; 0 means one per available core. A data directory keeps the
    /// shard count it was created with (start refuses another), so set it explicitly where
    /// the core count may change.
    pub shards: usize,
    /// Number of user partitions the system partition's first map creates.
    pub initial_partitions: u32,
    /// Length of one tick (the unit of every `*_ticks` setting), in milliseconds.
    pub tick_interval_ms: u64,
    /// Lower bound of the randomized election timeout, in ticks.
    pub election_timeout_ticks_min: u32,
    /// Upper bound (exclusive) of the randomized election timeout, in ticks.
    pub election_timeout_ticks_max: u32,
    /// Leader heartbeat period, in ticks (below `election_timeout_ticks_min`).
    pub heartbeat_interval_ticks: u32,
    /// Leaders step down without a quorum's contact within an election timeout.
    pub check_quorum: bool,
    /// Ticks a partition's leader stays idle, every member caught up, before the partition
    /// quiesces: no heartbeat, no timer, no shard tick until a write, a read or a message
    /// wakes it; the shards stand in with one keep-alive per peer node (decision 0007). 0:
    /// never; otherwise at least `election_timeout_ticks_min`.
    pub quiesce_after_ticks: u32,
    /// Seed of the replicas' election-timeout PRNG (mixed with node and partition).
    pub seed: u64,
    /// Commands (proposals, queries) queued per shard; a full queue answers
    /// `ProposalQueueFull`.
    pub shard_commands_max: usize,
    /// Inbound message batches queued per shard; a full queue drops (and counts) the batch.
    pub shard_inbound_batches_max: usize,
    /// Commands and inbound batches one loop turn takes from each queue before it persists
    /// and sends (bounds the latency one turn adds to the others).
    pub shard_inputs_per_turn_max: usize,
    /// Entries restore reads from the WAL, or hands to `on_log_restored`, per loop turn.
    pub restore_entries_per_turn_max: usize,
    /// Partitions one node hosts at most.
    pub partitions_max: usize,
    /// Ranges one partition map holds at most, tombstones included: partition 0 keeps the map
    /// in force with its WAL floor, so the WAL's floor meta is sized for a map this large
    /// (`wal_batch_bytes_max` must hold it beside the largest configuration), and a committed
    /// map beyond it is refused.
    pub partition_map_ranges_max: usize,
    /// Entries in one proposal at most.
    pub proposal_entries_max: usize,
    /// Bytes of a `log_type` string at most.
    pub log_type_bytes_max: usize,
    /// AppendRequests in flight to one follower.
    pub inflight_messages_max: usize,
    /// Entry bytes in flight to one follower.
    pub inflight_bytes_max: u64,
    /// Entries in one AppendRequest.
    pub append_entries_max: usize,
    /// Entry bytes in one AppendRequest.
    pub append_bytes_max: u64,
    /// Entries a leader holds uncommitted per partition (more: `ProposalQueueFull`).
    pub uncommitted_entries_max: usize,
    /// Uncommitted entry bytes per partition on a leader.
    pub uncommitted_bytes_max: u64,
    /// Pending ReadIndex requests per partition: queued on a leader (its own and those its
    /// followers forward), and waiting on each node for their read index or for the
    /// application to apply it (`Raft::confirm_leadership`, `Raft::confirm_local_application`).
    pub read_index_pending_max: usize,
    /// Committed entries one Ready hands to the application per partition (bounds one
    /// partition's share of a loop turn).
    pub deliver_entries_max: usize,
    /// Entries a leader keeps in memory below an applied checkpoint for followers that still
    /// need them (a follower further behind catches up by snapshot).
    pub compaction_retain_entries_max: u64,
    /// Two-phase tickets whose resolution each partition's replica remembers after delivery,
    /// so that `commit_logs` or `rollback_logs` asked again answers again, as Kommander does
    /// (0: none; at most 65 536). Older resolutions are forgotten, newest
    /// kept: asking again about one answers `ProposalNotFound`.
    pub resolved_tickets_max: usize,
    /// Largest accepted jump between a replica's term and a message's term.
    pub term_gap_max: u64,
    /// WAL backend.
    pub wal_backend: WalBackend,
    /// WAL segment size in bytes (multiple of 4096, at least 64 KiB).
    pub wal_segment_bytes: u64,
    /// Largest WAL frame (one durable write) in bytes (multiple of 4096).
    pub wal_batch_bytes_max: usize,
    /// Largest WAL record payload (one entry with its header) in bytes.
    pub wal_record_bytes_max: usize,
    /// WAL frames in flight at once (pipelining depth), 1 to 64.
    pub wal_inflight_batches_max: usize,
    /// How many entries a partition's commit index may run ahead of the one its WAL holds
    /// before it is written (0: at every change). The commit index is re-learned from the
    /// leader after a restart, so writing it at every change only cost a WAL record per write
    /// on each replica; it is also written when it commits a configuration entry, when the
    /// partition quiesces and when the node stops in order. After a crash, up to this many
    /// committed entries of a partition reach the application as live deliveries once a
    /// leader tells the replica the commit index again, not through `on_log_restored`.
    /// Partition 0's is always written at once.
    pub wal_commit_lag_entries_max: u64,
    /// Largest tolerated drift of a remote HLC timestamp ahead of the local clock, in ms: a
    /// peer's frame stamp further ahead is not merged into the node's clock (the frame is
    /// processed all the same; the transports count it).
    pub hlc_drift_ms_max: u64,
    /// Ceiling of `Raft::join_cluster`'s wait for the first partition map and of
    /// `Raft::join_cluster_with_seeds`'s (admitted, then a voter everywhere), in milliseconds
    /// (Kommander's 60 s); also how long `Raft::leave_cluster` waits by default.
    pub join_timeout_ms: u64,
    /// How long a write (`replicate_logs`, `replicate_batch`, `replicate_checkpoint`,
    /// `commit_logs`, `rollback_logs`) waits for its outcome when the caller gives no timeout,
    /// in milliseconds (Kommander's `ProposalTimeout`, 10 s).
    pub proposal_timeout_ms: u64,
    /// How long a leadership wait (`am_i_leader`, `wait_for_leader`,
    /// `wait_for_leader_stable`, and the hooks `step_down`, `transfer_leadership`,
    /// `force_leader`) lasts when the caller gives no timeout, in milliseconds (Kommander's
    /// fixed 10 s).
    pub leader_wait_timeout_ms: u64,
    /// How long a linearizable read (`confirm_leadership`, `confirm_local_application`) waits
    /// when the caller gives no timeout, in milliseconds (Kommander's
    /// `LeadershipConfirmationTimeout`, 2 s).
    pub leadership_confirmation_timeout_ms: u64,
    /// Times `replicate_checkpoint` asks again while a two-phase proposal is unresolved
    /// (Kommander retries `ActiveProposal`); 0 answers `ActiveProposal` at once. The call's
    /// timeout bounds the retries too.
    pub checkpoint_retries_max: u32,
    /// The first back-off before `replicate_checkpoint` asks again, in milliseconds; it
    /// doubles at each retry up to `checkpoint_retry_backoff_ms_max`.
    pub checkpoint_retry_backoff_ms: u64,
    /// The longest back-off between two attempts of `replicate_checkpoint`, in milliseconds.
    pub checkpoint_retry_backoff_ms_max: u64,
    /// Events buffered per `Raft` event subscriber (a slower subscriber misses the oldest).
    pub events_buffered_max: usize,
    /// A `StateMachine` callback (`on_replication_received`, `on_log_restored`) that takes
    /// longer than this many milliseconds is logged as a warning naming the partition and the
    /// index (Kommander's `SlowRaftStateMachineLog`); 0 turns the check off, and with it the
    /// two clock reads per callback.
    pub slow_state_machine_ms: u64,
    /// A WAL write that takes longer than this many milliseconds from its submission to its
    /// durability is logged as a warning naming the shard (Kommander's
    /// `SlowRaftWALMachineLog`); 0 turns the warning off. The `kommander_wal_fsync_seconds`
    /// histogram records every write either way.
    pub slow_wal_write_ms: u64,
    /// Deadlines pending at once on one node (timed `Raft` calls still waiting); a timed call
    /// beyond it is refused with a retryable `QueueFull`.
    pub timers_max: usize,
    /// The TCP transport (`[transport]` table): listen address, shared secret, limits.
    pub transport: TcpConfig,
    /// Snapshot transfer (`[snapshot]` table): chunk size, windows, caps, timeouts.
    pub snapshot: SnapshotConfig,
    /// Membership changes (`[membership]` table): when a learner is promoted, how often a
    /// membership call is asked again.
    pub membership: MembershipConfig,
}

/// An invalid [`NodeConfig`] (or a TOML text that does not parse into one).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field has an invalid value.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidField {
        /// The field's name, as spelled in the TOML file.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The TOML text does not parse (the message names the line and the field).
    #[error("config does not parse: {0}")]
    Parse(String),
}

/// The fields a TOML configuration must give: they have no default a real node can use.
const TOML_REQUIRED: [&str; 2] = ["node_id", "data_dir"];

impl Default for NodeConfig {
    fn default() -> Self {
        Self::new(1, std::env::temp_dir().join("kommander-raft"))
    }
}

impl NodeConfig {
    /// A configuration with the defaults for node `node_id` storing under `data_dir`: no
    /// peers, one shard per core, 8 initial partitions, 20 ms ticks, elections after 10–20
    /// ticks, heartbeats every 3 ticks, check-quorum on, the core's flow-control defaults,
    /// 64 MiB segments, io_uring where permitted.
    #[must_use]
    pub fn new(node_id: u64, data_dir: impl Into<PathBuf>) -> Self {
        let core = core::ReplicaConfig::new(NodeId(1), PartitionId(0), vec![NodeId(1)]);
        let wal = WalConfig::default();
        Self {
            node_id,
            node_name: format!("node-{node_id}"),
            endpoint: String::new(),
            cluster_name: "kommander".to_owned(),
            peers: BTreeMap::new(),
            data_dir: data_dir.into(),
            shards: 0,
            initial_partitions: 8,
            tick_interval_ms: 20,
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 3,
            check_quorum: true,
            quiesce_after_ticks: 50,
            seed: 0,
            shard_commands_max: 16_384,
            shard_inbound_batches_max: 16_384,
            shard_inputs_per_turn_max: 4_096,
            restore_entries_per_turn_max: 65_536,
            partitions_max: 1 << 16,
            partition_map_ranges_max: 1 << 10,
            proposal_entries_max: 1024,
            log_type_bytes_max: 256,
            inflight_messages_max: core.inflight_messages_max,
            inflight_bytes_max: core.inflight_bytes_max,
            append_entries_max: core.append_entries_max,
            append_bytes_max: core.append_bytes_max,
            uncommitted_entries_max: core.uncommitted_entries_max,
            uncommitted_bytes_max: core.uncommitted_bytes_max,
            read_index_pending_max: core.read_index_pending_max,
            deliver_entries_max: core.deliver_entries_max,
            compaction_retain_entries_max: core.compaction_retain_entries_max,
            resolved_tickets_max: core.resolved_tickets_max,
            term_gap_max: core.term_gap_max,
            wal_backend: WalBackend::Auto,
            wal_segment_bytes: wal.segment_bytes,
            wal_batch_bytes_max: wal.batch_bytes_max,
            wal_record_bytes_max: wal.record_bytes_max,
            wal_inflight_batches_max: wal.inflight_batches_max,
            wal_commit_lag_entries_max: 64,
            hlc_drift_ms_max: 60_000,
            join_timeout_ms: 60_000,
            proposal_timeout_ms: 10_000,
            leader_wait_timeout_ms: 10_000,
            leadership_confirmation_timeout_ms: 2_000,
            checkpoint_retries_max: 64,
            checkpoint_retry_backoff_ms: 10,
            checkpoint_retry_backoff_ms_max: 500,
            events_buffered_max: 1024,
            slow_state_machine_ms: 50,
            slow_wal_write_ms: 25,
            timers_max: 65_536,
            transport: TcpConfig::default(),
            snapshot: SnapshotConfig::default(),
            membership: MembershipConfig::default(),
        }
    }

    /// Parses a TOML text and validates it. `node_id` and `data_dir` must be given (a file
    /// that forgot them must not make a second node 1, or keep a WAL in a temporary
    /// directory); every other missing field takes its default.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for text that does not parse or names an unknown field;
    /// [`ConfigError::InvalidField`] for a missing `node_id` or `data_dir`, and as
    /// [`NodeConfig::validate`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        // It parsed as a configuration, so it parses as a table.
        let table: toml::Table = text.parse().unwrap_or_default();
        if let Some(field) = TOML_REQUIRED
            .into_iter()
            .find(|key| !table.contains_key(*key))
        {
            return Err(ConfigError::InvalidField {
                field,
                reason: "required in a configuration file".to_owned(),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// The number of shards to run: `shards`, or the available cores when it is 0.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        if self.shards == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        } else {
            self.shards
        }
    }

    /// The tick interval as a duration.
    #[must_use]
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.tick_interval_ms)
    }

    /// The address the TCP transport listens on: `transport.listen_address`, or `endpoint`
    /// when that is empty.
    #[must_use]
    pub fn listen_address(&self) -> &str {
        if self.transport.listen_address.is_empty() {
            &self.endpoint
        } else {
            &self.transport.listen_address
        }
    }

    /// Every node of the cluster (this one and the peers), sorted.
    #[must_use]
    pub fn cluster_nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.peers.keys().map(|&n| NodeId(n)).collect();
        nodes.push(NodeId(self.node_id));
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Checks every field and their relations (including the derived core, WAL and shard
    /// configs).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidField`] naming the first invalid field and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: &str| {
            Err(ConfigError::InvalidField {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.node_id == 0 {
            return invalid("node_id", "node id 0 is reserved");
        }
        if self.peers.contains_key(&self.node_id) {
            return invalid("peers", "lists this node's own id");
        }
        if self.peers.contains_key(&0) {
            return invalid("peers", "node id 0 is reserved");
        }
        // The roster records every endpoint (decision 0004).
        let too_long = |endpoint: &String| endpoint.len() > ENDPOINT_BYTES_MAX;
        if too_long(&self.endpoint) {
            return invalid(
                "endpoint",
                &format!("longer than {ENDPOINT_BYTES_MAX} bytes"),
            );
        }
        if self.peers.values().any(too_long) {
            return invalid(
                "peers",
                &format!("an endpoint longer than {ENDPOINT_BYTES_MAX} bytes"),
            );
        }
        if self.cluster_name.is_empty() {
            return invalid("cluster_name", "must not be empty");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if self.shards > 1024 {
            return invalid("shards", "at most 1024 shards");
        }
        if !(1..=60_000).contains(&self.tick_interval_ms) {
            return invalid("tick_interval_ms", "must be between 1 and 60000");
        }
        self.tcp_cluster().validate().map_err(transport_field)?;
        if self.heartbeat_interval_ticks.saturating_mul(2) >= self.election_timeout_ticks_min {
            // The TCP transport sends a partition's heartbeat up to one interval late (it
            // coalesces all partitions' heartbeats into one frame per interval).
            return invalid(
                "heartbeat_interval_ticks",
                "twice the heartbeat interval must be below election_timeout_ticks_min \
                 (heartbeats are coalesced per interval)",
            );
        }
        if self.initial_partitions == 0 {
            return invalid("initial_partitions", "at least one partition");
        }
        if self.initial_partitions as usize >= self.partitions_max {
            return invalid(
                "initial_partitions",
                "must be below partitions_max (partition 0 is the system partition)",
            );
        }
        if self.initial_partitions as usize > self.partition_map_ranges_max {
            return invalid(
                "initial_partitions",
                "must be at most partition_map_ranges_max (the first map holds them all)",
            );
        }
        let positive: [(&'static str, u64); 13] = [
            ("join_timeout_ms", self.join_timeout_ms),
            ("proposal_timeout_ms", self.proposal_timeout_ms),
            ("leader_wait_timeout_ms", self.leader_wait_timeout_ms),
            (
                "leadership_confirmation_timeout_ms",
                self.leadership_confirmation_timeout_ms,
            ),
            (
                "checkpoint_retry_backoff_ms",
                self.checkpoint_retry_backoff_ms,
            ),
            ("events_buffered_max", self.events_buffered_max as u64),
            ("timers_max", self.timers_max as u64),
            ("shard_commands_max", self.shard_commands_max as u64),
            (
                "shard_inbound_batches_max",
                self.shard_inbound_batches_max as u64,
            ),
            (
                "shard_inputs_per_turn_max",
                self.shard_inputs_per_turn_max as u64,
            ),
            (
                "restore_entries_per_turn_max",
                self.restore_entries_per_turn_max as u64,
            ),
            ("proposal_entries_max", self.proposal_entries_max as u64),
            ("log_type_bytes_max", self.log_type_bytes_max as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return invalid(field, "must be positive");
            }
        }
        if self.checkpoint_retry_backoff_ms_max < self.checkpoint_retry_backoff_ms {
            return invalid(
                "checkpoint_retry_backoff_ms_max",
                "must be at least checkpoint_retry_backoff_ms",
            );
        }
        if self.log_type_bytes_max > usize::from(u16::MAX) {
            return invalid("log_type_bytes_max", "at most 65535 bytes");
        }
        if self.hlc_drift_ms_max == 0 {
            return invalid("hlc_drift_ms_max", "must be positive");
        }
        self.partition_config(PartitionId(0), self.cluster_nodes(), Vec::new())
            .validate()
            .map_err(|e| match e {
                core::ReplicaConfigError::InvalidField { field, reason } => {
                    ConfigError::InvalidField {
                        field,
                        reason: reason.to_owned(),
                    }
                }
                other => ConfigError::InvalidField {
                    field: "node_id",
                    reason: other.to_string(),
                },
            })?;
        // The largest AppendRequest: `append_bytes_max` of entries, or one entry of the
        // largest WAL record when it alone is bigger, plus the message's own fields.
        let largest_message = self
            .append_bytes_max
            .max(core::Entry::size_bytes_for(self.wal_record_bytes_max))
            .saturating_add(64);
        self.transport.validate().map_err(transport_field)?;
        if (self.transport.frame_bytes_max as u64) < largest_message {
            return Err(ConfigError::InvalidField {
                field: "transport.frame_bytes_max",
                reason: format!(
                    "must hold the largest AppendRequest this configuration allows \
                     ({largest_message} bytes)"
                ),
            });
        }
        self.snapshot
            .validate()
            .map_err(|(field, reason)| ConfigError::InvalidField {
                field: snapshot_field_name(field),
                reason: reason.to_owned(),
            })?;
        // A chunk with its message's fields must fit one transport frame.
        if (self.transport.frame_bytes_max as u64) < self.snapshot.chunk_bytes as u64 + 128 {
            return invalid(
                "snapshot.chunk_bytes",
                "a chunk (with 128 bytes of message fields) must fit transport.frame_bytes_max",
            );
        }
        self.membership
            .validate()
            .map_err(|(field, reason)| ConfigError::InvalidField {
                field: membership_field_name(field),
                reason: reason.to_owned(),
            })?;
        self.wal_config().validate().map_err(|e| match e {
            kommander_wal::Error::InvalidConfig { field, reason } => ConfigError::InvalidField {
                field: wal_field_name(field),
                reason,
            },
            other => ConfigError::InvalidField {
                field: "wal_segment_bytes",
                reason: other.to_string(),
            },
        })?;
        Ok(())
    }

    /// The core configuration of one partition hosted by this node.
    #[must_use]
    pub(crate) fn partition_config(
        &self,
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    ) -> core::ReplicaConfig {
        core::ReplicaConfig {
            learners,
            election_timeout_ticks_min: self.election_timeout_ticks_min,
            election_timeout_ticks_max: self.election_timeout_ticks_max,
            heartbeat_interval_ticks: self.heartbeat_interval_ticks,
            check_quorum: self.check_quorum,
            quiesce_after_ticks: self.quiesce_after_ticks,
            seed: self.seed,
            inflight_messages_max: self.inflight_messages_max,
            inflight_bytes_max: self.inflight_bytes_max,
            append_entries_max: self.append_entries_max,
            append_bytes_max: self.append_bytes_max,
            uncommitted_entries_max: self.uncommitted_entries_max,
            uncommitted_bytes_max: self.uncommitted_bytes_max,
            read_index_pending_max: self.read_index_pending_max,
            deliver_entries_max: self.deliver_entries_max,
            compaction_retain_entries_max: self.compaction_retain_entries_max,
            resolved_tickets_max: self.resolved_tickets_max,
            term_gap_max: self.term_gap_max,
            ..core::ReplicaConfig::new(NodeId(self.node_id), partition, voters)
        }
    }

    /// The TCP transport's settings: the `[transport]` table with `listen_address` resolved
    /// (the node's `endpoint` when the table leaves it empty).
    #[must_use]
    pub fn tcp_config(&self) -> TcpConfig {
        TcpConfig {
            listen_address: self.listen_address().to_owned(),
            ..self.transport.clone()
        }
    }

    /// This node's place in the cluster, as the TCP transport needs it: id, cluster name,
    /// peers and the heartbeat period.
    #[must_use]
    pub fn tcp_cluster(&self) -> TcpCluster {
        TcpCluster {
            cluster_name: self.cluster_name.clone(),
            node_id: NodeId(self.node_id),
            peers: self
                .peers
                .iter()
                .map(|(&id, endpoint)| (NodeId(id), endpoint.clone()))
                .collect(),
            heartbeat_interval: self.tick_interval() * self.heartbeat_interval_ticks.max(1),
        }
    }

    /// The WAL configuration of every shard.
    #[must_use]
    pub fn wal_config(&self) -> WalConfig {
        WalConfig {
            backend: match self.wal_backend {
                WalBackend::Auto => BackendChoice::Auto,
                WalBackend::IoUring => BackendChoice::IoUring(UringWriteMode::default()),
                WalBackend::Blocking => BackendChoice::Blocking,
            },
            segment_bytes: self.wal_segment_bytes,
            batch_bytes_max: self.wal_batch_bytes_max,
            record_bytes_max: self.wal_record_bytes_max,
            inflight_batches_max: self.wal_inflight_batches_max,
            partitions_max: self.partitions_max,
            // The configuration in force at a partition's floor is kept with it, and partition
            // 0's partition map.
            floor_meta_bytes_max: floor_meta_bytes_max(self.partition_map_ranges_max),
            ..WalConfig::default()
        }
    }
}

/// The configuration of the shard host and its threads (checked by [`NodeConfig::validate`]).
/// A `From` impl rather than a method like [`NodeConfig::wal_config`]: `ShardConfig` is
/// internal (public only with the `sim` feature), and a public method of `NodeConfig` would
/// put it in the public API.
impl From<&NodeConfig> for ShardConfig {
    fn from(config: &NodeConfig) -> Self {
        Self {
            node_id: NodeId(config.node_id),
            cluster: config
                .peers
                .iter()
                .map(|(&node, endpoint)| (NodeId(node), endpoint.clone()))
                .chain([(NodeId(config.node_id), config.endpoint.clone())])
                .collect(),
            shard_count: config.shard_count(),
            data_dir: config.data_dir.clone(),
            tick_interval: config.tick_interval(),
            shard_commands_max: config.shard_commands_max,
            shard_inbound_batches_max: config.shard_inbound_batches_max,
            shard_inputs_per_turn_max: config.shard_inputs_per_turn_max,
            restore_entries_per_turn_max: config.restore_entries_per_turn_max,
            partitions_max: config.partitions_max,
            proposal_entries_max: config.proposal_entries_max,
            log_type_bytes_max: config.log_type_bytes_max,
            core: config.partition_config(PartitionId(0), Vec::new(), Vec::new()),
            wal: config.wal_config(),
            snapshot: config.snapshot,
            membership: config.membership,
            slow_wal_write: Duration::from_millis(config.slow_wal_write_ms),
            commit_lag_entries_max: config.wal_commit_lag_entries_max,
            #[cfg(feature = "sim-bugs")]
            bug: None,
        }
    }
}

/// The transport names its fields as this configuration spells them.
fn transport_field(error: TcpConfigError) -> ConfigError {
    ConfigError::InvalidField {
        field: error.field,
        reason: error.reason,
    }
}

/// Maps a [`SnapshotConfig`] field name to its name in the `[snapshot]` table.
fn snapshot_field_name(field: &'static str) -> &'static str {
    match field {
        "chunk_bytes" => "snapshot.chunk_bytes",
        "chunks_in_flight_max" => "snapshot.chunks_in_flight_max",
        "transfers_max" => "snapshot.transfers_max",
        "sessions_max" => "snapshot.sessions_max",
        "session_bytes_max" => "snapshot.session_bytes_max",
        "session_idle_ticks" => "snapshot.session_idle_ticks",
        "ack_timeout_ticks" => "snapshot.ack_timeout_ticks",
        "backoff_max_ticks" => "snapshot.backoff_max_ticks",
        "bytes_per_sec_max" => "snapshot.bytes_per_sec_max",
        "transfer_thread_nice" => "snapshot.transfer_thread_nice",
        other => other,
    }
}

/// Maps a [`MembershipConfig`] field name to its name in the `[membership]` table.
fn membership_field_name(field: &'static str) -> &'static str {
    match field {
        "promotion_window_ms" => "membership.promotion_window_ms",
        "call_retry_interval_ms" => "membership.call_retry_interval_ms",
        other => other,
    }
}

/// Maps a [`WalConfig`] field name to the [`NodeConfig`] field that sets it.
fn wal_field_name(field: &'static str) -> &'static str {
    match field {
        "segment_bytes" => "wal_segment_bytes",
        "batch_bytes_max" => "wal_batch_bytes_max",
        // The floor meta holds the largest configuration and partition 0's largest map.
        "floor_meta_bytes_max" => "partition_map_ranges_max",
        "record_bytes_max" => "wal_record_bytes_max",
        "inflight_batches_max" => "wal_inflight_batches_max",
        "partitions_max" => "partitions_max",
        other => other,
    }
}
