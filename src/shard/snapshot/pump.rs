//! The transfer pump: runs the application's snapshot reads, imports, writes and finishes off
//! the shard thread. A production shard has one pump thread fed by a bounded queue; its
//! results come back on a second bounded queue and wake the shard. The stepped shard of the
//! simulator runs each job where it is submitted, so its runs stay deterministic.
//!
//! A transfer owns its application handle (a [`SnapshotExport`] or [`SnapshotImport`]) except
//! while a job holds it: every transfer has at most one job out, so the queues' capacity
//! (every transfer a shard may run at once, both ways) is never reached.

use std::collections::VecDeque;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam::channel::{self, Receiver, Sender};

use super::chunks::{Chunk, ChunkSink, ChunkSource};
use crate::core::{NodeId, PartitionId};
use crate::shard::state_transfer::{SnapshotImport, SnapshotPoint, StateTransfer};
use crate::shard::waker::{Input, Waker};

/// Whose job: a transfer is named by its partition, its peer (the follower a leader sends to,
/// the leader a follower receives from) and its session id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TransferKey {
    pub(crate) partition: PartitionId,
    pub(crate) peer: NodeId,
    pub(crate) session: u64,
}

/// What a job does.
pub(crate) enum Work {
    /// Read the export's next chunk of at most this many bytes.
    Read(ChunkSource, usize),
    /// Start an import.
    Open(Arc<dyn StateTransfer>, SnapshotPoint),
    /// Write a chunk (its bytes and CRC32C) to the import.
    Write(ChunkSink, Bytes, u32),
    /// Finish the import.
    Finish(Box<dyn SnapshotImport>),
}

/// What a job did; the handle comes back with its result.
pub(crate) enum Done {
    Read(ChunkSource, io::Result<Chunk>),
    Opened(io::Result<ChunkSink>),
    Written(ChunkSink, io::Result<()>),
    Finished(io::Result<()>),
}

/// A job and its transfer.
pub(crate) struct Job {
    pub(crate) key: TransferKey,
    pub(crate) work: Work,
}

/// A job's result and its transfer.
pub(crate) struct JobDone {
    pub(crate) key: TransferKey,
    pub(crate) done: Done,
}

impl Job {
    /// Runs the job; a panic in the application's code is an I/O error of the job.
    fn run(self) -> JobDone {
        let key = self.key;
        let partition = key.partition;
        let done = match self.work {
            Work::Read(mut source, max) => {
                let read = guard(|| source.read(max));
                Done::Read(source, read)
            }
            Work::Open(transfer, at) => {
                Done::Opened(guard(|| transfer.import(partition, at).map(ChunkSink::new)))
            }
            Work::Write(mut sink, data, crc) => {
                let written = guard(|| sink.write(&data, crc));
                Done::Written(sink, written)
            }
            Work::Finish(import) => Done::Finished(guard(move || import.finish())),
        };
        JobDone { key, done }
    }
}

/// `call`, with a panic turned into an error.
fn guard<T>(call: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    panic::catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(io::Error::other("the application's snapshot code panicked")))
}

/// A job the pump could not take.
#[derive(Debug)]
pub(crate) struct QueueFull;

/// One shard's pump.
pub(crate) enum Pump {
    /// A thread per shard (production).
    Threaded {
        jobs: Option<Sender<Job>>,
        results: Receiver<JobDone>,
        thread: Option<JoinHandle<()>>,
    },
    /// Jobs run where they are submitted (the stepped shard).
    Inline { results: VecDeque<JobDone> },
}

impl Pump {
    /// A pump thread for shard `shard` at nice value `nice`, taking up to `capacity` jobs;
    /// each result wakes the shard through `waker`.
    ///
    /// # Errors
    ///
    /// The thread could not be spawned.
    pub(crate) fn spawn(
        shard: usize,
        capacity: usize,
        nice: u8,
        waker: Arc<Waker>,
    ) -> io::Result<Self> {
        let (jobs, queued) = channel::bounded::<Job>(capacity);
        let (done, results) = channel::bounded(capacity);
        let thread = std::thread::Builder::new()
            .name(format!("kommander-transfer-{shard}"))
            .spawn(move || {
                // On Linux a thread id names the thread alone: only this one runs behind.
                let me = rustix::thread::gettid();
                if let Err(error) = rustix::process::setpriority_process(Some(me), nice.into()) {
                    tracing::warn!(shard, nice, %error, "cannot lower the transfer thread's priority");
                }
                while let Ok(job) = queued.recv() {
                    if done.send(job.run()).is_err() {
                        return;
                    }
                    waker.wake(Input::Transfer);
                }
            })?;
        Ok(Self::Threaded {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
        })
    }

    /// A pump without a thread.
    pub(crate) fn inline() -> Self {
        Self::Inline {
            results: VecDeque::new(),
        }
    }

    /// Hands `job` to the pump. Never blocks.
    ///
    /// # Errors
    ///
    /// [`QueueFull`] when the queue is full or the thread is gone: the job is dropped, and
    /// the application's handle in it (the transfer fails).
    pub(crate) fn submit(&mut self, job: Job) -> Result<(), QueueFull> {
        match self {
            Self::Threaded { jobs, .. } => match jobs.as_ref() {
                Some(jobs) => jobs.try_send(job).map_err(|_| QueueFull),
                None => Err(QueueFull),
            },
            Self::Inline { results } => {
                results.push_back(job.run());
                Ok(())
            }
        }
    }

    /// The next result, if one is waiting.
    pub(crate) fn take_done(&mut self) -> Option<JobDone> {
        match self {
            Self::Threaded { results, .. } => results.try_recv().ok(),
            Self::Inline { results } => results.pop_front(),
        }
    }

    /// Whether a result waits (the shard must not sleep).
    pub(crate) fn has_done(&self) -> bool {
        match self {
            Self::Threaded { results, .. } => !results.is_empty(),
            Self::Inline { results } => !results.is_empty(),
        }
    }
}

impl Drop for Pump {
    /// Stops the thread once it ran the jobs already queued (at most one per transfer; an
    /// application call that blocks delays the shard's exit by that long). Their results are
    /// dropped: a finished import whose boundary was never written is found again by restore
    /// through the application's durable index.
    fn drop(&mut self) {
        if let Self::Threaded { jobs, thread, .. } = self {
            drop(jobs.take());
            if let Some(thread) = thread.take()
                && thread.thread().id() != std::thread::current().id()
            {
                let _ = thread.join();
            }
        }
    }
}
