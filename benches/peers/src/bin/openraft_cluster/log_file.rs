//! One node's log file, shared by every openraft group the node hosts, and its flusher thread.
//!
//! openraft's v2 log storage API separates "accepted" from "durable": `append` returns once the
//! entries are readable and calls its `LogFlushed` callback once they are on disk. A store can
//! therefore hand the write to a thread of its own, and with one Raft group per partition the
//! natural store is one file per node that all groups append to: the flusher takes everything
//! submitted since its last turn, writes it in one `write` and makes it durable with one
//! `fdatasync`, then acknowledges each call of that turn (TiKV's store writer and dragonboat do
//! the same; one file per group would cost one `fdatasync` per group per append). The file is
//! zero-filled ahead in steps (the bench: [`PREALLOCATED_BYTES`]), as kommander-wal fills its
//! segments, so an `fdatasync` flushes data and not the file's size.
//!
//! Every record is `[body length u32][xxh64 of the body u64][body]`, the body being the group
//! and the [`Record`] encoded with bincode: what a recovery would need to rebuild each group's
//! log and vote (the bench never reads it back).
//!
//! The queue is bounded by the workload: openraft submits an append per batch of client writes
//! it accepted, and the closed-loop writers keep at most one write each in flight.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;
use openraft::{Entry, LogId, Vote};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::openraft_side::{NodeId, TypeConfig};

/// The bench's step of zero-filling a log file ahead of its end (kommander's
/// `wal_segment_bytes` in the same bench).
pub const PREALLOCATED_BYTES: u64 = 64 << 20;

/// Bytes of a record's header: body length and checksum.
const RECORD_HEADER_BYTES: usize = 4 + 8;

/// What a group writes to its node's log file.
#[derive(Serialize)]
pub enum Record<'a> {
    /// A log entry (appended).
    Entry(&'a Entry<TypeConfig>),
    /// The group's vote.
    Vote(&'a Vote<NodeId>),
    /// The log is truncated from this entry on (inclusive).
    Truncate(&'a LogId<NodeId>),
    /// The log is purged up to this entry (inclusive).
    Purge(&'a LogId<NodeId>),
}

/// Who waits for a submission to become durable.
pub enum Durable {
    /// An openraft `append` call.
    Append(LogFlushed<TypeConfig>),
    /// A `save_vote` call, awaiting its answer.
    Vote(oneshot::Sender<io::Result<()>>),
}

impl Durable {
    fn complete(self, result: &io::Result<()>) {
        let result = match result {
            Ok(()) => Ok(()),
            Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
        };
        match self {
            Self::Append(callback) => callback.log_io_completed(result),
            // The caller stopped waiting (its Raft shut down): nothing to tell.
            Self::Vote(answer) => drop(answer.send(result)),
        }
    }
}

/// Appends `record` of `group`, framed, to `bytes`.
///
/// # Errors
///
/// When bincode cannot encode the record.
pub fn encode(bytes: &mut Vec<u8>, group: u32, record: &Record<'_>) -> bincode::Result<()> {
    let start = bytes.len();
    bytes.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    bincode::serialize_into(&mut *bytes, &(group, record))?;
    let body = &bytes[start + RECORD_HEADER_BYTES..];
    let length = u32::try_from(body.len()).map_err(|_| {
        bincode::Error::new(bincode::ErrorKind::Custom(format!(
            "a record of {} bytes does not fit its u32 length",
            body.len()
        )))
    })?;
    let checksum = xxhash_rust::xxh64::xxh64(body, 0);
    bytes[start..start + 4].copy_from_slice(&length.to_le_bytes());
    bytes[start + 4..start + RECORD_HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// What the groups submitted since the flusher's last turn.
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    waiting: Vec<Durable>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// One node's log file and its flusher thread.
pub struct LogFile {
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl LogFile {
    /// Creates the file at `path`, zero-filled `preallocated_bytes` at a time ahead of its
    /// end, and starts its flusher.
    ///
    /// # Errors
    ///
    /// When `preallocated_bytes` is zero or too large for memory, when the file cannot be
    /// created, filled or synced, or the thread cannot start.
    pub fn create(path: &Path, preallocated_bytes: u64) -> io::Result<Self> {
        let preallocated_bytes = usize::try_from(preallocated_bytes)
            .ok()
            .filter(|&bytes| bytes > 0)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("preallocating {preallocated_bytes} bytes at a time"),
                )
            })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let mut flusher = Flusher {
            file,
            offset: 0,
            filled: 0,
            preallocated_bytes,
            failure: None,
        };
        flusher.fill_ahead(0)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("openraft-log".to_owned())
            .spawn(move || flusher.run(&thread_shared))?;
        Ok(Self {
            shared,
            flusher: Mutex::new(Some(handle)),
        })
    }

    /// Queues framed records (from [`encode`]); `durable` is told once they are on disk.
    /// Records reach the file in submission order.
    pub fn submit(&self, bytes: &[u8], durable: Option<Durable>) {
        let mut queue = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if queue.stopping {
            drop(queue);
            if let Some(durable) = durable {
                durable.complete(&Err(io::Error::other("the log file is closed")));
            }
            return;
        }
        queue.bytes.extend_from_slice(bytes);
        queue.waiting.extend(durable);
        drop(queue);
        self.shared.wake.notify_one();
    }

    /// Flushes what was submitted, then stops the flusher thread.
    pub fn close(&self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopping = true;
        self.shared.wake.notify_one();
        let handle = self
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            handle.join().expect("the log flusher does not panic");
        }
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        self.close();
    }
}

/// The flusher thread's side: the file, where the next record goes, how far it is filled.
struct Flusher {
    file: File,
    offset: u64,
    filled: u64,
    /// Zero-filled ahead this much at a time.
    preallocated_bytes: usize,
    /// The first write or sync error: every later submission fails with it (what reached the
    /// disk after a failed `fdatasync` is unknown).
    failure: Option<io::Error>,
}

impl Flusher {
    fn run(&mut self, shared: &Shared) {
        let mut bytes = Vec::new();
        let mut waiting = Vec::new();
        loop {
            {
                let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
                while queue.bytes.is_empty() && queue.waiting.is_empty() && !queue.stopping {
                    queue = shared
                        .wake
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if queue.bytes.is_empty() && queue.waiting.is_empty() {
                    return;
                }
                std::mem::swap(&mut queue.bytes, &mut bytes);
                std::mem::swap(&mut queue.waiting, &mut waiting);
            }
            let result = self.write(&bytes);
            for durable in waiting.drain(..) {
                durable.complete(&result);
            }
            bytes.clear();
        }
    }

    /// Writes `bytes` at the end of the log and syncs them (one `fdatasync`).
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(failure) = &self.failure {
            return Err(io::Error::new(failure.kind(), failure.to_string()));
        }
        let result = self.write_and_sync(bytes);
        if let Err(error) = &result {
            self.failure = Some(io::Error::new(error.kind(), error.to_string()));
        }
        result
    }

    fn write_and_sync(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.offset + bytes.len() as u64;
        self.fill_ahead(end)?;
        self.file.write_all_at(bytes, self.offset)?;
        self.offset = end;
        self.file.sync_data()
    }

    /// Zero-fills the file in `preallocated_bytes` steps until it reaches past `end`.
    fn fill_ahead(&mut self, end: u64) -> io::Result<()> {
        if end < self.filled {
            return Ok(());
        }
        let zeros = vec![0; self.preallocated_bytes];
        while end >= self.filled {
            self.file.write_all_at(&zeros, self.filled)?;
            self.filled += self.preallocated_bytes as u64;
        }
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId, Vote};

    use super::*;

    /// The file's first `count` records: each body, its checksum checked.
    fn records(path: &Path, count: usize) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(path).expect("the log file reads");
        let mut at = 0;
        (0..count)
            .map(|_| {
                let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
                let checksum =
                    u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("8 bytes"));
                let body = bytes[at + 12..at + 12 + length as usize].to_vec();
                assert_eq!(
                    xxhash_rust::xxh64::xxh64(&body, 0),
                    checksum,
                    "record at {at}"
                );
                at += RECORD_HEADER_BYTES + body.len();
                body
            })
            .collect()
    }

    #[test]
    fn a_vote_is_acknowledged_once_its_records_are_in_the_file_in_submission_order() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("node.log");
        let file = LogFile::create(&path, 64).expect("a new log file");
        let purged = LogId::new(CommittedLeaderId::new(2, 1), 9);
        let vote = Vote::new(3, 2);
        let mut first = Vec::new();
        encode(&mut first, 4, &Record::Purge(&purged)).expect("encodes");
        let mut second = Vec::new();
        encode(&mut second, 5, &Record::Vote(&vote)).expect("encodes");
        file.submit(&first, None);
        let (done, durable) = oneshot::channel();
        file.submit(&second, Some(Durable::Vote(done)));
        durable.blocking_recv().expect("answered").expect("durable");

        let bodies = records(&path, 2);
        let expected = [
            bincode::serialize(&(4u32, &Record::Purge(&purged))).expect("encodes"),
            bincode::serialize(&(5u32, &Record::Vote(&vote))).expect("encodes"),
        ];
        assert_eq!(bodies, expected);
    }

    #[test]
    fn a_closed_file_refuses_what_is_submitted() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = LogFile::create(&dir.path().join("node.log"), 64).expect("a new log file");
        file.close();
        let (done, durable) = oneshot::channel();
        file.submit(b"record", Some(Durable::Vote(done)));
        // Were the submission queued, dropping the file would drop its sender unanswered.
        drop(file);
        let answer = durable.blocking_recv().expect("answered at once");
        assert!(answer.is_err(), "a closed file acknowledged a write");
    }

    #[test]
    fn a_zero_fill_step_of_zero_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let refused = LogFile::create(&dir.path().join("node.log"), 0);
        assert!(refused.is_err_and(|error| error.kind() == io::ErrorKind::InvalidInput));
    }
}
