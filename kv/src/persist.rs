//! The partitions' snapshot files: what of the in-memory state survives a restart.
//!
//! One file per partition, `partition-<id>.snap` (format in `snapshot.rs`), replaced
//! atomically: written to `…snap.tmp`, fsynced, renamed over the old one, the directory
//! fsynced. A crash leaves the old file or the new one, never a mix. The index a partition's
//! file holds is the store's `StateMachine::durable_index`: the library replays the log above
//! it at restart and never compacts the WAL past it, so the file plus the log is the whole
//! state. Written by the persister thread (a checkpoint's snapshot, off the shard thread) and
//! by a snapshot import's `finish` (before the import is acknowledged).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use kommander_raft::PartitionId;
use tracing::{debug, warn};

use crate::codec::DecodeError;
use crate::snapshot::{self, Values};

const PREFIX: &str = "partition-";
const SUFFIX: &str = ".snap";
const TEMPORARY_SUFFIX: &str = ".snap.tmp";

/// A snapshot directory that cannot be used at start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The directory or a file cannot be read or created.
    #[error("snapshot directory {path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// A snapshot file is damaged or too large: the partition's state cannot be rebuilt.
    #[error("snapshot file {path} is unusable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A partition's state read from its file at start.
pub(crate) struct Loaded {
    pub(crate) partition: PartitionId,
    pub(crate) index: u64,
    pub(crate) values: Values,
}

/// The snapshot files and the index each holds.
pub(crate) struct SnapshotFiles {
    dir: PathBuf,
    /// Per partition, the index its file holds (absent: no file, nothing durable: 0).
    durable: Mutex<HashMap<PartitionId, u64>>,
    /// One writer at a time (the persister thread, an import's finish).
    writing: Mutex<()>,
    bytes_max: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SnapshotFiles {
    /// Opens (creates) `dir` and reads every partition's file in it; removes the temporary
    /// files a crash left.
    ///
    /// # Errors
    ///
    /// [`PersistError::Io`] when the directory cannot be created or read,
    /// [`PersistError::Corrupt`] for a file that does not decode or exceeds `bytes_max`.
    pub(crate) fn open(dir: &Path, bytes_max: u64) -> Result<(Self, Vec<Loaded>), PersistError> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |error| PersistError::Io { path, error }
        };
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut loaded = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let path = entry.map_err(io_error(dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(TEMPORARY_SUFFIX) {
                fs::remove_file(&path).map_err(io_error(&path))?;
                continue;
            }
            let Some(id) = name
                .strip_prefix(PREFIX)
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let corrupt = |reason: String| PersistError::Corrupt {
                path: path.clone(),
                reason,
            };
            let size = fs::metadata(&path).map_err(io_error(&path))?.len();
            if size > bytes_max {
                return Err(corrupt(format!(
                    "{size} bytes, over kv.snapshot_bytes_max ({bytes_max})"
                )));
            }
            let bytes = fs::read(&path).map_err(io_error(&path))?;
            let (index, values) = snapshot::decode(Bytes::from(bytes))
                .map_err(|e: DecodeError| corrupt(e.to_string()))?;
            loaded.push(Loaded {
                partition: PartitionId(id),
                index,
                values,
            });
        }
        let durable = loaded.iter().map(|l| (l.partition, l.index)).collect();
        let files = Self {
            dir: dir.to_owned(),
            durable: Mutex::new(durable),
            writing: Mutex::new(()),
            bytes_max,
        };
        Ok((files, loaded))
    }

    /// The index through which `partition`'s state is in its file (0: no file).
    pub(crate) fn durable_index(&self, partition: PartitionId) -> u64 {
        lock(&self.durable).get(&partition).copied().unwrap_or(0)
    }

    /// The largest snapshot read or received.
    pub(crate) fn bytes_max(&self) -> u64 {
        self.bytes_max
    }

    /// Makes `bytes`, the snapshot of `partition` at `index`, its file, durably; `Ok(false)`
    /// without writing when its file already holds `index` or a later one.
    ///
    /// # Errors
    ///
    /// Any I/O error; the old file is then still in place.
    pub(crate) fn write(
        &self,
        partition: PartitionId,
        index: u64,
        bytes: &[u8],
    ) -> io::Result<bool> {
        let _writing = lock(&self.writing);
        if self.durable_index(partition) >= index {
            return Ok(false);
        }
        let name = format!("{PREFIX}{}", partition.get());
        let temporary = self.dir.join(format!("{name}{TEMPORARY_SUFFIX}"));
        let path = self.dir.join(format!("{name}{SUFFIX}"));
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &path)?;
        File::open(&self.dir)?.sync_all()?;
        lock(&self.durable).insert(partition, index);
        Ok(true)
    }
}

/// A checkpoint's snapshot waiting for the persister thread.
pub(crate) struct Job {
    pub(crate) partition: PartitionId,
    pub(crate) index: u64,
    pub(crate) values: Values,
}

/// The thread that writes checkpoints' snapshots, fed through a bounded queue.
pub(crate) struct Persister {
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Persister {
    /// Starts the thread, with room for `queue_max` waiting snapshots.
    ///
    /// # Errors
    ///
    /// The thread cannot be spawned.
    pub(crate) fn start(files: Arc<SnapshotFiles>, queue_max: usize) -> io::Result<Self> {
        let (sender, jobs) = sync_channel(queue_max);
        let thread = std::thread::Builder::new()
            .name("kv-persister".to_owned())
            .spawn(move || persist(&files, &jobs))?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a snapshot without waiting; a full queue or a stopped thread skips it (the
    /// durable index stays where it is, and the WAL keeps the entries above it).
    pub(crate) fn offer(&self, job: Job) {
        let sender = lock(&self.sender);
        let Some(sender) = sender.as_ref() else {
            return;
        };
        match sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => warn!(
                partition = job.partition.get(),
                index = job.index,
                "snapshot queue full (kv.snapshot_queue_max): this checkpoint's snapshot is skipped"
            ),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Writes what is queued, then stops the thread.
    pub(crate) fn stop(&self) {
        drop(lock(&self.sender).take());
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            warn!("the snapshot persister thread panicked");
        }
    }
}

fn persist(files: &SnapshotFiles, jobs: &Receiver<Job>) {
    for job in jobs {
        let bytes = snapshot::encode(job.index, &job.values);
        match files.write(job.partition, job.index, &bytes) {
            Ok(written) => debug!(
                partition = job.partition.get(),
                index = job.index,
                bytes = bytes.len(),
                written,
                "snapshot file"
            ),
            Err(error) => warn!(
                partition = job.partition.get(),
                index = job.index,
                %error,
                "cannot write the snapshot file: the log is kept above the last one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_written_snapshot_is_read_back_and_an_older_one_never_replaces_it() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (files, loaded) = SnapshotFiles::open(dir.path(), 1 << 20).expect("opens");
        assert!(loaded.is_empty());
        let partition = PartitionId(3);
        let mut values = Values::new();
        values.insert(Arc::from("a"), Bytes::from_static(b"1"));
        assert!(
            files
                .write(partition, 10, &snapshot::encode(10, &values))
                .expect("writes")
        );
        assert!(
            !files
                .write(partition, 9, &snapshot::encode(9, &Values::new()))
                .expect("skips")
        );
        assert_eq!(files.durable_index(partition), 10);
        std::fs::write(dir.path().join("partition-4.snap.tmp"), b"half").expect("writes");
        let (reopened, loaded) = SnapshotFiles::open(dir.path(), 1 << 20).expect("reopens");
        assert_eq!(reopened.durable_index(partition), 10);
        assert_eq!(loaded.len(), 1);
        assert_eq!((loaded[0].index, &loaded[0].values), (10, &values));
        assert!(!dir.path().join("partition-4.snap.tmp").exists());
        std::fs::write(dir.path().join("partition-5.snap"), b"garbage").expect("writes");
        assert!(matches!(
            SnapshotFiles::open(dir.path(), 1 << 20),
            Err(PersistError::Corrupt { .. })
        ));
    }
}
