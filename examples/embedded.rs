//! A minimal embedded node: one node on the in-memory transport, a key-value state machine,
//! one write, the value read back from the state machine, and an orderly shutdown.
//!
//! `cargo run --example embedded`

#![allow(clippy::print_stdout, reason = "an example shows its result")]

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use kommander_raft::transport::memory::MemoryNetwork;
use kommander_raft::{
    LogEntry, NodeConfig, NodeId, PartitionId, Raft, ReplicateOptions, StateMachine,
};

/// The application's state: the `key=value` entries applied so far.
#[derive(Default)]
struct KeyValueStore {
    values: Mutex<HashMap<String, String>>,
    applied: Condvar,
}

impl KeyValueStore {
    fn apply(&self, entry: &LogEntry) {
        let text = String::from_utf8_lossy(&entry.payload);
        if let Some((key, value)) = text.split_once('=') {
            let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
            values.insert(key.to_owned(), value.to_owned());
            self.applied.notify_all();
        }
    }

    /// The value of `key` once an entry setting it has been applied (`None` after `timeout`).
    fn get(&self, key: &str, timeout: Duration) -> Option<String> {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let (values, _) = self
            .applied
            .wait_timeout_while(values, timeout, |values| !values.contains_key(key))
            .unwrap_or_else(PoisonError::into_inner);
        values.get(key).cloned()
    }
}

impl StateMachine for KeyValueStore {
    // Called on the shard thread, in log order, once an entry is committed: keep it short.
    fn on_replication_received(&self, _partition: PartitionId, entry: &LogEntry) -> bool {
        self.apply(entry);
        true
    }

    // Called for the committed entries of the log when the node restarts.
    fn on_log_restored(&self, _partition: PartitionId, entry: &LogEntry) -> bool {
        self.apply(entry);
        true
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut config = NodeConfig::new(1, dir.path());
    config.shards = 1;
    config.initial_partitions = 4;
    config.tick_interval_ms = 5;

    let network = MemoryNetwork::new();
    let store = Arc::new(KeyValueStore::default());
    // The library needs no async runtime of its own; any executor drives its futures.
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let raft = Raft::builder(config)
            .state_machine(store.clone())
            .transport(network.transport(NodeId(1)))
            .start()
            .await?;
        network.register(NodeId(1), raft.inbound());
        raft.join_cluster(None).await?;
        let partition = raft.partition_for_key("color")?;
        raft.wait_for_leader(partition, Some(Duration::from_secs(10)))
            .await?;
        let written = raft
            .replicate_logs(partition, "set", "color=blue", ReplicateOptions::default())
            .await?;
        let color = store
            .get("color", Duration::from_secs(10))
            .ok_or("the write was not applied")?;
        println!("color = {color} (log index {})", written.log_index.get());
        raft.shutdown().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
