//! The segment preparer: zero-fills or recycles segments, and removes reclaimed ones, in the
//! order asked, on a background thread (or inline, for reproducible simulated runs), so the
//! owner's appends never wait for a zero-fill.
//!
//! Jobs run strictly in submission order: removals and recycling renames of reclaimed
//! segments happen oldest first (a crash between two of them never leaves a gap in the
//! sequence), and prepared segments come back in sequence order. After a job fails, no later
//! job runs (each fails at once): preparing segment N+1 after N failed would name a segment
//! past a missing one, and recovery refuses a gap (`Error::MissingSegment`), so the log could
//! never be reopened. Worked example: N is recycled from a reclaimed file (renamed to
//! `N.tmp`, directory synced) and its header write fails; N+1, recycled next, becomes
//! `N+1.wal`; recovery removes `N.tmp` and finds N+1 after N-1.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender, unbounded};

use crate::backend::{FileSystem, SegmentFile};
use crate::error::{Error, Result};
use crate::segment::{Segment, Stamping, prepare_segment};

/// One job.
pub(crate) enum Job {
    /// Prepare segment `seq` (zero-filled, or recycled from the given file).
    Prepare {
        seq: u64,
        recycle: Option<(SegmentFile, PathBuf)>,
    },
    /// Remove a reclaimed segment file (and sync the directory).
    Remove { path: PathBuf },
}

struct Context {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segment_bytes: u64,
    stamping: Stamping,
}

impl Context {
    /// Runs `job`, unless an earlier job failed (`failed`, set by the first failure).
    fn run_after(&self, job: Job, failed: &mut bool) -> Result<Option<Segment>> {
        if *failed {
            return Err(Error::io(
                "running a segment job",
                &self.dir,
                std::io::Error::other("an earlier segment job failed"),
            ));
        }
        let result = self.run(job);
        *failed = result.is_err();
        result
    }

    fn run(&self, job: Job) -> Result<Option<Segment>> {
        match job {
            Job::Prepare { seq, recycle } => prepare_segment(
                self.fs.as_ref(),
                &self.dir,
                seq,
                self.segment_bytes,
                recycle,
                self.stamping,
            )
            .map(Some),
            Job::Remove { path } => {
                self.fs
                    .remove(&path)
                    .map_err(|e| Error::io("removing a reclaimed segment", &path, e))?;
                self.fs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io("syncing the directory", &self.dir, e))?;
                Ok(None)
            }
        }
    }
}

/// Runs [`Job`]s in order (see the module docs).
pub(crate) struct Preparer {
    context: Arc<Context>,
    jobs: Option<Sender<Job>>,
    results: Option<Receiver<Result<Option<Segment>>>>,
    inline_results: VecDeque<Result<Option<Segment>>>,
    thread: Option<JoinHandle<()>>,
    /// Jobs submitted whose result has not been collected.
    pending: usize,
    /// An inline job failed (the background thread keeps its own).
    inline_failed: bool,
}

impl Preparer {
    /// A preparer; `background` runs jobs on a helper thread.
    pub(crate) fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        segment_bytes: u64,
        stamping: Stamping,
        background: bool,
    ) -> Result<Self> {
        let context = Arc::new(Context {
            fs,
            dir,
            segment_bytes,
            stamping,
        });
        let mut preparer = Self {
            context: context.clone(),
            jobs: None,
            results: None,
            inline_results: VecDeque::new(),
            thread: None,
            pending: 0,
            inline_failed: false,
        };
        if background {
            // Unbounded in type only: at most `segments_prepared_ahead_max +
            // segments_recycled_max` prepares plus one rotation's removals are outstanding.
            let (job_tx, job_rx) = unbounded::<Job>();
            let (result_tx, result_rx) = unbounded();
            let thread = std::thread::Builder::new()
                .name("kommander-wal-preparer".into())
                .spawn(move || {
                    let mut failed = false;
                    for job in job_rx {
                        if result_tx.send(context.run_after(job, &mut failed)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| {
                    Error::io("starting the segment preparer", &preparer.context.dir, e)
                })?;
            preparer.jobs = Some(job_tx);
            preparer.results = Some(result_rx);
            preparer.thread = Some(thread);
        }
        Ok(preparer)
    }

    /// Queues a job.
    pub(crate) fn submit(&mut self, job: Job) -> Result<()> {
        self.pending += 1;
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| {
                Error::io(
                    "queueing a segment job",
                    &self.context.dir,
                    std::io::Error::other("the segment preparer stopped"),
                )
            }),
            None => {
                let result = self.context.run_after(job, &mut self.inline_failed);
                self.inline_results.push_back(result);
                Ok(())
            }
        }
    }

    /// The next finished job's result, waiting for it if `wait`; `None` if nothing is pending
    /// (or, without `wait`, nothing is finished yet).
    pub(crate) fn next(&mut self, wait: bool) -> Option<Result<Option<Segment>>> {
        if self.pending == 0 {
            return None;
        }
        let result = match (&self.results, self.inline_results.pop_front()) {
            (_, Some(result)) => result,
            (Some(results), None) if wait => results
                .recv()
                .unwrap_or_else(|_| Err(stopped(&self.context))),
            (Some(results), None) => results.try_recv().ok()?,
            (None, None) => Err(stopped(&self.context)),
        };
        self.pending -= 1;
        Some(result)
    }
}

fn stopped(context: &Context) -> Error {
    Error::io(
        "waiting for the segment preparer",
        &context.dir,
        std::io::Error::other("the segment preparer stopped"),
    )
}

impl Drop for Preparer {
    fn drop(&mut self) {
        // Finish the queued jobs (at most a few preparations), so a closed log leaves the
        // same files whatever the timing.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
