//! `kommander-kv`: a replicated key-value store over `kommander-raft`'s public API, with an
//! HTTP API (`http.rs` documents every route and answer).
//!
//! Keys are routed to partitions by the library's key routing (`Raft::partition_for_key`);
//! each partition's keys live in memory (`store.rs`), applied in log order; checkpoints
//! (`checkpoint.rs`) make every replica write a snapshot file (`persist.rs`) so the log stays
//! bounded and a restart rebuilds the state from the file and the log above it; snapshots and
//! split/merge range moves go through the library's `StateTransfer` (`transfer.rs`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let text = std::fs::read_to_string("kv/config/node1.toml")?;
//! let node = kommander_kv::KvNode::start(kommander_kv::Config::from_toml(&text)?).await?;
//! println!("HTTP on {}", node.http_addr());
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod checkpoint;
mod codec;
mod command;
mod config;
mod http;
mod node;
mod persist;
mod snapshot;
mod store;
mod transfer;

pub use config::{Config, ConfigError, KvConfig};
pub use http::{INDEX_HEADER, LEADER_HEADER, NODE_HEADER, OPERATION_ID_HEADER, OUTCOME_HEADER};
pub use node::{KvNode, StartError};
pub use persist::PersistError;
