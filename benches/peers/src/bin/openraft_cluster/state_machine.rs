//! One group's openraft state machine: it counts the applied entries, as the kommander side's
//! application does. Its snapshot is that count (the bench's snapshot policy never builds one;
//! a lagging follower would install it).

use std::io::Cursor;
use std::sync::{Arc, Mutex, PoisonError};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};

use crate::openraft_side::{NodeId, TypeConfig};

/// What a group applied.
#[derive(Clone, Default)]
struct Applied {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// Application entries applied (blank and membership entries are not counted).
    entries: u64,
}

/// A snapshot kept for followers: its metadata and the applied count (8 bytes, little endian).
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn snapshot(&self) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone())),
        }
    }
}

/// One group's state machine on one node.
#[derive(Default)]
pub struct CountingStateMachine {
    applied: Applied,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

/// Builds a snapshot of the state as it was when the builder was taken.
pub struct CountSnapshotBuilder {
    applied: Applied,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for CountSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snapshot_id = match self.applied.last {
            Some(last) => format!("{}-{}", last.leader_id, last.index),
            None => "empty".to_owned(),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.applied.last,
                last_membership: self.applied.membership.clone(),
                snapshot_id,
            },
            data: self.applied.entries.to_le_bytes().to_vec(),
        };
        let snapshot = stored.snapshot();
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(stored);
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for CountingStateMachine {
    type SnapshotBuilder = CountSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.applied.last, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut counted = 0;
        for entry in entries {
            self.applied.last = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(_) => counted += 1,
                EntryPayload::Membership(membership) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            responses.push(());
        }
        self.applied.entries += counted;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        CountSnapshotBuilder {
            applied: self.applied.clone(),
            current: Arc::clone(&self.current),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let count = <[u8; 8]>::try_from(data.as_slice()).map_err(|_| {
            let error = std::io::Error::other(format!(
                "a snapshot holds an 8-byte count, not {} bytes",
                data.len()
            ));
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&error))
        })?;
        self.applied = Applied {
            last: meta.last_log_id,
            membership: meta.last_membership.clone(),
            entries: u64::from_le_bytes(count),
        };
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(StoredSnapshot::snapshot))
    }
}
