//! `kommander-raft`: a thread-per-core, multi-partition Raft library with its own io_uring
//! write-ahead log ([`kommander_wal`](https://docs.rs/kommander-wal)).
//!
//! See `docs/architecture.md` at the repository root for the map of the code.
//!
//! # Tutorial: a one-node cluster
//!
//! The application implements [`StateMachine`]: it is handed every committed entry, on the
//! shard thread, in log order. [`Raft::start`] opens the node's WALs; [`Raft::join_cluster`]
//! waits for the system partition to commit the partition map; [`Raft::replicate_logs`]
//! returns once the entry is committed.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use kommander_raft::transport::memory::MemoryNetwork;
//! use kommander_raft::{
//!     LogEntry, NodeConfig, NodeId, PartitionId, Raft, ReplicateOptions, StateMachine, Status,
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
//! let raft = Raft::start(config, network.transport(NodeId(1)), orders.clone())?;
//! network.register(NodeId(1), raft.inbound());
//!
//! // Any executor works; the library needs no tokio runtime of its own.
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! runtime.block_on(async {
//!     raft.join_cluster(None).await?;
//!     let partition = raft.partition_for_key("orders/17")?;
//!     raft.wait_for_leader(partition, std::time::Duration::from_secs(10)).await?;
//!     let result = raft
//!         .replicate_logs(partition, "OrderCreated", "order 17", ReplicateOptions::default())
//!         .await;
//!     assert_eq!(result.status, Status::Success);
//!     raft.leave_cluster().await;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! assert_eq!(*orders.0.lock().expect("orders"), ["order 17"]);
//! # Ok(())
//! # }
//! ```

pub mod core;
pub mod metrics;
pub mod node;
pub mod shard;
pub mod transport;

#[cfg(feature = "sim")]
pub mod sim;

pub use crate::core::{LogIndex, NodeId, PartitionId, Role, Status, Term};
pub use crate::node::{
    HandshakeError, HandshakeRequest, HlcTimestamp, JoinError, NodeConfig, PartitionMap, Raft,
    RaftEvent, RaftNode, ReplicateOptions, ReplicationResult, StartError, TestHooks,
};
pub use crate::shard::{LogEntry, StateMachine};
