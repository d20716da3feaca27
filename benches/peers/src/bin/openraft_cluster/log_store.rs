//! One group's openraft log storage (v2 API): the entries in memory for reads, every append,
//! vote, truncation and purge written to the node's shared [`LogFile`].
//!
//! `append` returns once the entries are readable and acknowledges them (`LogFlushed`) once
//! the flusher's `fdatasync` has covered them; `save_vote` returns only once its record is
//! durable. Truncations and purges are written without waiting: they reach the file before any
//! later append of the group, whose acknowledgement covers them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote,
};
use tokio::sync::oneshot;

use crate::log_file::{Durable, LogFile, Record, encode};
use crate::openraft_side::{NodeId, TypeConfig};

/// What a group's log holds in memory.
#[derive(Default)]
struct GroupState {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

/// One group's log on one node (cloned as its own reader).
#[derive(Clone)]
pub struct GroupLog {
    group: u32,
    file: Arc<LogFile>,
    state: Arc<Mutex<GroupState>>,
}

impl GroupLog {
    /// An empty log of `group`, written to `file`.
    pub fn new(group: u32, file: Arc<LogFile>) -> Self {
        Self {
            group,
            file,
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Encodes one record of this group.
    fn encode(&self, record: &Record<'_>) -> bincode::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        encode(&mut bytes, self.group, record)?;
        Ok(bytes)
    }
}

/// A log record that could not be written.
fn log_write_failed(error: &(impl std::error::Error + 'static)) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(error)).into()
}

impl RaftLogReader<TypeConfig> for GroupLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let state = self.state();
        // An empty range (start past its end) reads nothing; `BTreeMap::range` would panic.
        let start = match range.start_bound() {
            Bound::Included(&index) => Some(index),
            Bound::Excluded(&index) => index.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let empty = match (start, range.end_bound()) {
            (None, _) => true,
            (Some(start), Bound::Included(&end)) => start > end,
            (Some(start), Bound::Excluded(&end)) => start >= end,
            (Some(_), Bound::Unbounded) => false,
        };
        if empty {
            return Ok(Vec::new());
        }
        Ok(state
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for GroupLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let state = self.state();
        let last = state.entries.values().next_back().map(|entry| entry.log_id);
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: last.or(state.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = self
            .encode(&Record::Vote(vote))
            .map_err(|error| StorageIOError::write_vote(AnyError::new(&error)))?;
        let (done, durable) = oneshot::channel();
        self.file.submit(&bytes, Some(Durable::Vote(done)));
        durable
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the log flusher stopped")))
            .map_err(|error| StorageIOError::write_vote(AnyError::new(&error)))?;
        self.state().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.state().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        // Encoded before anything changes: an entry that cannot be encoded leaves the log as
        // it was.
        let entries: Vec<_> = entries.into_iter().collect();
        let mut bytes = Vec::new();
        for entry in &entries {
            encode(&mut bytes, self.group, &Record::Entry(entry))
                .map_err(|error| log_write_failed(&error))?;
        }
        let mut state = self.state();
        for entry in entries {
            state.entries.insert(entry.log_id.index, entry);
        }
        drop(state);
        // One submission per call: the flusher's next `fdatasync` covers all of it.
        self.file.submit(&bytes, Some(Durable::Append(callback)));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = self
            .encode(&Record::Truncate(&log_id))
            .map_err(|error| log_write_failed(&error))?;
        self.file.submit(&bytes, None);
        self.state().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = self
            .encode(&Record::Purge(&log_id))
            .map_err(|error| log_write_failed(&error))?;
        self.file.submit(&bytes, None);
        let mut state = self.state();
        let kept = match log_id.index.checked_add(1) {
            Some(first_kept) => state.entries.split_off(&first_kept),
            None => BTreeMap::new(),
        };
        state.entries = kept;
        state.last_purged = Some(log_id);
        Ok(())
    }
}
