//! When the store checkpoints a partition: once `kv.checkpoint_interval_entries` entries or
//! `kv.checkpoint_interval_bytes` payload bytes were applied since its last checkpoint, on the
//! node that leads it, looked at every `kv.checkpoint_check_interval_ms`.
//!
//! A committed checkpoint makes every replica write its snapshot file (`store.rs`,
//! `persist.rs`); once a file holds the checkpoint's index, the library compacts the WAL to
//! it. So the log kept per partition is about one interval of entries (plus what arrives
//! while a checkpoint commits and its file is written), and a restart replays no more.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kommander_raft::{PartitionId, Raft, SYSTEM_PARTITION};
use tracing::debug;

use crate::store::{SinceCheckpoint, Store};

/// The checkpoint rules (`[kv]` fields; 0 turns a rule off).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckpointPolicy {
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
    pub(crate) check_interval: Duration,
}

impl CheckpointPolicy {
    fn due(&self, since: SinceCheckpoint) -> bool {
        let over = |value: u64, limit: u64| limit > 0 && value >= limit;
        over(since.entries, self.entries) || over(since.bytes, self.bytes)
    }
}

/// Checkpoints the partitions this node leads as they come due, until dropped (cancelled).
pub(crate) async fn run(raft: Raft, store: Arc<Store>, policy: CheckpointPolicy) {
    // Partitions with a checkpoint in flight: not asked for again until it is answered.
    let in_flight: Arc<Mutex<HashSet<PartitionId>>> = Arc::default();
    let mut ticker = tokio::time::interval(policy.check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let map = raft.partition_map();
        for partition in map.hosted().filter(|p| *p != SYSTEM_PARTITION) {
            if !policy.due(store.since_checkpoint(partition)) || !raft.am_i_leader_quick(partition)
            {
                continue;
            }
            if !in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(partition)
            {
                continue;
            }
            let checkpoint = raft.replicate_checkpoint(partition);
            let in_flight = Arc::clone(&in_flight);
            tokio::spawn(async move {
                match checkpoint.await {
                    Ok(written) => debug!(
                        %partition,
                        index = written.log_index.get(),
                        "checkpoint committed"
                    ),
                    Err(error) => debug!(%partition, %error, "checkpoint not committed"),
                }
                in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&partition);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_makes_a_checkpoint_due_and_zero_turns_it_off() {
        let policy = |entries, bytes| CheckpointPolicy {
            entries,
            bytes,
            check_interval: Duration::from_millis(1),
        };
        let since = |entries, bytes| SinceCheckpoint { entries, bytes };
        assert!(!policy(10, 100).due(since(9, 99)));
        assert!(policy(10, 100).due(since(10, 0)));
        assert!(policy(10, 100).due(since(0, 100)));
        assert!(!policy(0, 100).due(since(1_000, 99)));
        assert!(!policy(10, 0).due(since(9, u64::MAX)));
    }
}
