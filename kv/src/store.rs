//! The replicated state: per partition, the keys and values in memory, applied in log order
//! on the shard threads (the library's `StateMachine`), and the outcome of each
//! compare-and-set handed to the request waiting for it.
//!
//! What survives a restart: each partition's snapshot file (`persist.rs`), written at its
//! checkpoints, and the log above it. [`StateMachine::durable_index`] reports the file's
//! index, so the library never compacts the WAL past it and replays the entries above it at
//! start; the state is rebuilt as file + replay before the node serves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use kommander_raft::{EntryKind, LogEntry, LogIndex, PartitionId, SYSTEM_PARTITION, StateMachine};
use tokio::sync::oneshot;
use tracing::warn;

use crate::command::{Command, Key, LOG_TYPE, Operation, OperationId};
use crate::persist::{Job, Loaded, Persister, SnapshotFiles};
use crate::snapshot::{self, Values};

/// What an applied write did (reported to the waiting compare-and-set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A put set the value, or a delete removed the key (or found none).
    Written,
    /// A compare-and-set found the expected value and set the new one.
    Swapped,
    /// A compare-and-set found another value (`None`: the key was absent) and changed nothing.
    Mismatch { current: Option<Bytes> },
    /// An append that would make the key's list longer than `kv.body_bytes_max` bytes (its
    /// length then) changed nothing.
    TooLong { bytes: usize },
}

/// One partition's applied state as `GET /_debug/applied` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AppliedState {
    pub(crate) partition: PartitionId,
    /// The last index applied.
    pub(crate) applied: u64,
    /// [`snapshot::digest`] of the values as of `applied` (read under the same lock).
    pub(crate) digest: u64,
}

/// Entries and payload bytes applied since a partition's last checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SinceCheckpoint {
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
}

/// One partition's state.
#[derive(Default)]
struct Partition {
    values: Values,
    /// The last index applied (entries, range imports, checkpoints, a snapshot's).
    applied: u64,
    since_checkpoint: SinceCheckpoint,
}

impl Partition {
    /// Applies `operation` to `key`; a list grows to at most `list_bytes_max` bytes.
    fn apply(&mut self, operation: Operation, key: Key, list_bytes_max: usize) -> Outcome {
        match operation {
            Operation::Put(value) => {
                self.values.insert(key, value);
                Outcome::Written
            }
            Operation::Delete => {
                self.values.remove(&key);
                Outcome::Written
            }
            Operation::CompareAndSet { expected, new } => {
                let current = self.values.get(&key);
                if current == expected.as_ref() {
                    self.values.insert(key, new);
                    Outcome::Swapped
                } else {
                    Outcome::Mismatch {
                        current: current.cloned(),
                    }
                }
            }
            Operation::Append(element) => {
                let current = self.values.get(&key).map_or(&[][..], |value| &value[..]);
                let bytes = current.len() + element.len() + 1;
                if bytes > list_bytes_max {
                    return Outcome::TooLong { bytes };
                }
                let mut list = Vec::with_capacity(bytes);
                list.extend_from_slice(current);
                list.extend_from_slice(&element);
                list.push(b'\n');
                self.values.insert(key, Bytes::from(list));
                Outcome::Written
            }
        }
    }
}

/// The store's state machine.
pub(crate) struct Store {
    partitions: Mutex<HashMap<PartitionId, Partition>>,
    /// Compare-and-sets waiting for their outcome, by operation id (at most one per request
    /// in flight: bounded by `kv.requests_in_flight_max`).
    waiters: Mutex<HashMap<OperationId, oneshot::Sender<Outcome>>>,
    incarnation: u64,
    sequence: AtomicU64,
    /// The longest a list grows by appends (`kv.body_bytes_max`: a key and its value must fit
    /// one chunk of a range transfer).
    list_bytes_max: usize,
    files: Arc<SnapshotFiles>,
    persister: Persister,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// A store holding the partitions' states read from their files.
    pub(crate) fn new(
        files: Arc<SnapshotFiles>,
        loaded: Vec<Loaded>,
        persister: Persister,
        incarnation: u64,
        list_bytes_max: usize,
    ) -> Self {
        let partitions = loaded
            .into_iter()
            .map(|l| {
                let partition = Partition {
                    values: l.values,
                    applied: l.index,
                    since_checkpoint: SinceCheckpoint::default(),
                };
                (l.partition, partition)
            })
            .collect();
        Self {
            partitions: Mutex::new(partitions),
            waiters: Mutex::default(),
            incarnation,
            sequence: AtomicU64::new(0),
            list_bytes_max,
            files,
            persister,
        }
    }

    /// The snapshot files.
    pub(crate) fn files(&self) -> &Arc<SnapshotFiles> {
        &self.files
    }

    /// Stops the persister thread once it wrote what is queued (after the node stopped).
    pub(crate) fn stop(&self) {
        self.persister.stop();
    }

    /// The value of `key` in this replica's state of `partition`.
    pub(crate) fn get(&self, partition: PartitionId, key: &str) -> Option<Bytes> {
        lock(&self.partitions)
            .get(&partition)
            .and_then(|p| p.values.get(key).cloned())
    }

    /// Every partition's applied index and the digest of its values at that index, in
    /// partition order.
    pub(crate) fn applied(&self) -> Vec<AppliedState> {
        let partitions = lock(&self.partitions);
        let mut states: Vec<AppliedState> = partitions
            .iter()
            .map(|(&partition, state)| AppliedState {
                partition,
                applied: state.applied,
                digest: snapshot::digest(&state.values),
            })
            .collect();
        states.sort_unstable_by_key(|state| state.partition);
        states
    }

    /// What `partition` applied since its last checkpoint.
    pub(crate) fn since_checkpoint(&self, partition: PartitionId) -> SinceCheckpoint {
        lock(&self.partitions)
            .get(&partition)
            .map(|p| p.since_checkpoint)
            .unwrap_or_default()
    }

    /// A fresh operation id.
    pub(crate) fn next_operation(&self) -> OperationId {
        OperationId {
            incarnation: self.incarnation,
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Waits for the outcome of the entry carrying `id`: the receiver gets it when the entry
    /// applies on this node; dropping the guard forgets the waiter.
    pub(crate) fn wait_for(
        self: &Arc<Self>,
        id: OperationId,
    ) -> (oneshot::Receiver<Outcome>, WaiterGuard) {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiters).insert(id, sender);
        let guard = WaiterGuard {
            store: Arc::clone(self),
            id,
        };
        (receiver, guard)
    }

    /// A copy of `partition`'s values (shared keys and values, no bytes copied).
    pub(crate) fn values(&self, partition: PartitionId) -> Values {
        lock(&self.partitions)
            .get(&partition)
            .map(|p| p.values.clone())
            .unwrap_or_default()
    }

    /// The records of `partition` whose key `moves`.
    pub(crate) fn records(
        &self,
        partition: PartitionId,
        moves: impl Fn(&str) -> bool,
    ) -> Vec<(Key, Bytes)> {
        lock(&self.partitions)
            .get(&partition)
            .map(|p| {
                p.values
                    .iter()
                    .filter(|(key, _)| moves(key))
                    .map(|(key, value)| (Arc::clone(key), value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Makes `values` `partition`'s state as of `index` (an installed snapshot).
    pub(crate) fn replace(&self, partition: PartitionId, index: u64, values: Values) {
        let mut partitions = lock(&self.partitions);
        let state = partitions.entry(partition).or_default();
        state.values = values;
        state.applied = index;
        state.since_checkpoint = SinceCheckpoint::default();
    }

    /// Runs `change` on `partition`'s values for the entry at `index` (a range import's
    /// entry), unless the state already holds it.
    pub(crate) fn apply_at(
        &self,
        partition: PartitionId,
        index: LogIndex,
        change: impl FnOnce(&mut Values),
    ) {
        let mut partitions = lock(&self.partitions);
        let state = partitions.entry(partition).or_default();
        if index.get() <= state.applied {
            return;
        }
        state.applied = index.get();
        change(&mut state.values);
    }

    /// Applies one committed entry; `live` for a delivery (its waiter is told the outcome).
    fn apply(&self, partition: PartitionId, entry: &LogEntry, live: bool) -> bool {
        let mut partitions = lock(&self.partitions);
        let state = partitions.entry(partition).or_default();
        let index = entry.index.get();
        // Already in the state read from the snapshot file (the library hands over only
        // entries above `durable_index`, so this is defensive).
        if index <= state.applied {
            return true;
        }
        state.applied = index;
        match entry.kind {
            EntryKind::Checkpoint => {
                state.since_checkpoint = SinceCheckpoint::default();
                // The copy is cheap (shared keys and values); the encoding and the fsync run
                // on the persister thread.
                self.persister.offer(Job {
                    partition,
                    index,
                    values: state.values.clone(),
                });
                true
            }
            EntryKind::Normal => {
                state.since_checkpoint.entries += 1;
                state.since_checkpoint.bytes += entry.payload.len() as u64;
                if entry.log_type() != LOG_TYPE {
                    // Not the store's entry: nothing to apply.
                    return true;
                }
                let command = match Command::decode(entry.payload.clone()) {
                    Ok(command) => command,
                    Err(error) => {
                        warn!(%partition, index, %error, "an entry that is not a command: skipped");
                        return false;
                    }
                };
                let outcome = state.apply(command.operation, command.key, self.list_bytes_max);
                drop(partitions);
                if live && let Some(waiter) = lock(&self.waiters).remove(&command.id) {
                    let _ = waiter.send(outcome);
                }
                true
            }
            _ => true,
        }
    }
}

impl StateMachine for Store {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.apply(partition, entry, true)
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.apply(partition, entry, false)
    }

    /// The index of the partition's snapshot file (0 without one: nothing survives but the
    /// log, so the WAL is never compacted). The system partition holds no store state.
    fn durable_index(&self, partition: PartitionId) -> Option<LogIndex> {
        (partition != SYSTEM_PARTITION).then(|| LogIndex(self.files.durable_index(partition)))
    }
}

/// Forgets a waiter when its request ends (answered, timed out, or dropped).
pub(crate) struct WaiterGuard {
    store: Arc<Store>,
    id: OperationId,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        lock(&self.store.waiters).remove(&self.id);
    }
}
