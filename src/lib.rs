//! `kommander-raft`: a thread-per-core, multi-partition Raft library with its own io_uring
//! write-ahead log ([`kommander_wal`](https://docs.rs/kommander-wal)).
//!
//! See `docs/architecture.md` at the repository root for the map of the code.
//!
//! # Tutorial: a one-node cluster
//!
//! The application implements [`StateMachine`]: it is handed every committed entry, on the
//! shard thread, in log order. [`Raft::builder`] takes the configuration, the state machine and
//! the transport; [`RaftBuilder::start`] opens the node's WALs (off the caller's thread);
//! [`Raft::join_cluster`] waits for the system partition to commit the partition map;
//! [`Raft::replicate_logs`] completes once the entry is committed, with its ticket and index,
//! or with a [`ReplicateError`] that says whether (and where) to retry;
//! [`Raft::confirm_leadership`] (on the leader) or [`Raft::confirm_local_application`] (on any
//! node) returns once this node applied a read index a quorum confirmed, so a read of the
//! application's own state then sees every write acknowledged before it (linearizable).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! use kommander_raft::transport::memory::MemoryNetwork;
//! use kommander_raft::{
//!     LogEntry, NodeConfig, NodeId, PartitionId, Raft, ReplicateError, ReplicateOptions,
//!     StateMachine,
//! };
//!
//! #[derive(Default)]
//! struct Orders(Mutex<Vec<String>>);
//!
//! impl StateMachine for Orders {
//!     fn on_replication_received(&self, _partition: PartitionId, entry: &LogEntry) -> bool {
//!         let order = String::from_utf8_lossy(&entry.payload).into_owned();
//!         self.0.lock().expect("orders").push(order);
//!         true
//!     }
//!
//!     fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
//!         self.on_replication_received(partition, entry)
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut config = NodeConfig::new(1, dir.path());
//! config.shards = 1;
//! config.initial_partitions = 4;
//! config.tick_interval_ms = 5;
//!
//! let network = MemoryNetwork::new();
//! let orders = Arc::new(Orders::default());
//! // Any executor works; the library needs no tokio runtime of its own.
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! runtime.block_on(async {
//!     let raft = Raft::builder(config)
//!         .state_machine(orders.clone())
//!         .transport(network.transport(NodeId(1)))
//!         .start()
//!         .await?;
//!     network.register(NodeId(1), raft.inbound());
//!     raft.join_cluster(None).await?;
//!     let partition = raft.partition_for_key("orders/17")?;
//!     raft.wait_for_leader(partition, Some(Duration::from_secs(10))).await?;
//!     let written = match raft
//!         .replicate_logs(partition, "OrderCreated", "order 17", ReplicateOptions::default())
//!         .await
//!     {
//!         Ok(written) => written,
//!         // Retryable errors say so; `NotLeader` names the node to retry on.
//!         Err(ReplicateError::NotLeader { endpoint, .. }) => {
//!             return Err(format!("retry on {endpoint:?}").into());
//!         }
//!         Err(error) => return Err(error.into()),
//!     };
//!     assert!(written.log_index.get() >= 1);
//!     // A linearizable read of the application's state.
//!     let read_index = raft
//!         .confirm_leadership(partition, Some(Duration::from_secs(10)))
//!         .await?;
//!     assert!(read_index >= written.log_index);
//!     assert_eq!(*orders.0.lock().expect("orders"), ["order 17"]);
//!     raft.shutdown().await;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! assert_eq!(*orders.0.lock().expect("orders"), ["order 17"]);
//! # Ok(())
//! # }
//! ```
//!
//! # What is public
//!
//! The crate root exports the [`Raft`] handle, its [`RaftBuilder`] and what a node is started
//! with ([`NodeConfig`], a [`StateMachine`], a [`Transport`]; the node's [`Inbound`] side is
//! what a transport delivers to), its errors, events, partition-state watch and status types.
//! [`metrics`] names every metric the node records. [`transport`] holds the transports: [`transport::memory`] (nodes in one
//! process), [`transport::tcp`] (the production transport, and the client protocol of the
//! `kommander` binary's client port) and [`transport::codec`] (the wire format, for custom
//! transports).
//!
//! # Features
//!
//! * `cli` (default): the `kommander` binary and its dependencies.
//! * `sim`: the deterministic simulator, and the internal layers (`core`, `shard`, `node`,
//!   the TCP handshake and frame reader, a fault-injecting transport) made public for this
//!   crate's own tests, benches and fuzz targets. **Unstable internals, not semver surface**:
//!   do not enable it in a dependent crate.
//! * `sim-bugs`: compiles the simulator's known-bug hooks into the core (tests only).

// The layers (see `docs/architecture.md`). `transport` and `metrics` are public; `core`,
// `shard` and `node` are public only with the `sim` feature (unstable internals for this
// crate's tests, benches and fuzz targets; see "Features" above). Their items are declared
// `pub` for that build; without it `unreachable_pub` would flag each of them, so it is allowed
// on the module declarations (CI lints the `sim` build too, where the lint keeps its teeth).
// The hybrid logical clock: a leaf below the shards and the transports (which stamp frames
// with it); its public items are re-exported below.
mod clock;
pub mod metrics;
pub mod transport;

#[cfg(feature = "sim")]
pub mod core;
#[cfg(not(feature = "sim"))]
#[allow(unreachable_pub, reason = "public with the `sim` feature only")]
pub(crate) mod core;

#[cfg(feature = "sim")]
pub mod shard;
#[cfg(not(feature = "sim"))]
#[allow(unreachable_pub, reason = "public with the `sim` feature only")]
pub(crate) mod shard;

#[cfg(feature = "sim")]
pub mod node;
#[cfg(not(feature = "sim"))]
#[allow(unreachable_pub, reason = "public with the `sim` feature only")]
pub(crate) mod node;

#[cfg(feature = "sim")]
pub mod sim;

pub use crate::core::{
    Configuration, ConfigurationError, EntryKind, LogIndex, NodeId, PartitionId, Role, Status,
    Term, Ticket,
};
pub use crate::node::{
    Fatal, HandshakeRequest, HlcTimestamp, InvalidWrite, JoinError, MembershipError, NodeConfig,
    PartitionLifecycleError, PartitionMap, PeerError, QueryError, Raft, RaftBuilder, RaftNode,
    ReadOptions, ReplicateError, ReplicateOptions, StartError, SteppedDown, TestHooks, Written,
};
pub use crate::shard::{
    FollowerLag, Leadership, LogEntry, LogProgress, PartitionState, RaftEvent, RangeTransfer,
    SnapshotExport, SnapshotImport, SnapshotPoint, SnapshotProgress, StateMachine, StateTransfer,
};
// What the handle's methods, events and configuration name besides the above.
pub use crate::node::partition_map::{
    CreatePartition, FirstMembers, MapOperationError, NoRouteError, RangeState, Routes,
    RoutingMode, SYSTEM_PARTITION, SplitPlan,
};
pub use crate::node::{
    ClockDriftError, ConfigError, HybridLogicalClock, PartitionMapError, PartitionRange,
    PhysicalClock, StaticDiscovery, SystemClock, WalBackend,
};
pub use crate::shard::codec::CodecError;
pub use crate::shard::membership::{
    ENDPOINT_BYTES_MAX, Member, MemberRole, Roster, RosterChange, RosterError,
};
pub use crate::shard::partitions::TransitionError;
pub use crate::shard::{
    HostStartError, MembershipConfig, PartitionConfiguration, PartitionStatus,
    ReplicationErrorReason, ShardCounters, SnapshotConfig,
};
pub use crate::transport::{
    CallAnswer, CallError, CallReply, CallWait, Inbound, MembershipCall, PeerSetError, Transport,
};
