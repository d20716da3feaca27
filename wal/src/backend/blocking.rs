//! The blocking backend: `pwrite` + `fdatasync` on one helper thread, bounded queues.
//!
//! Works wherever files work (old kernels, seccomp profiles that forbid io_uring). Writes are
//! performed in submission order, one at a time; the pipeline still overlaps the caller's
//! batching with the helper's write + sync.

use std::fs::OpenOptions;
use std::io::{self, PipeReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender, TryRecvError, bounded};

use super::{AlignedBuf, Backend, Completion, FileSystem, SegmentFile};

/// The plain-`std` filesystem side: buffered file I/O, `fdatasync`, directory `fsync`.
#[derive(Debug, Default)]
pub struct StdFileSystem;

impl FileSystem for StdFileSystem {
    fn create_new(&self, path: &Path) -> io::Result<SegmentFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(SegmentFile::new(file, path.to_path_buf()))
    }

    fn open(&self, path: &Path) -> io::Result<SegmentFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(SegmentFile::new(file, path.to_path_buf()))
    }

    fn write_zeros(&self, file: &SegmentFile, offset: u64, len: u64) -> io::Result<()> {
        super::zeros::write_zeros_direct(file, offset, len)
    }
}

/// A durable write handed to the helper thread.
struct DurableWrite {
    file: SegmentFile,
    offset: u64,
    buf: AlignedBuf,
    token: u64,
}

/// A completion, and whether its notification byte was written to the pipe.
type Notified = (Completion, bool);

/// `pwrite` + `fdatasync` on a helper thread (see the module docs).
///
/// [`Backend::completion_fd`] is the read end of a pipe holding one byte per finished,
/// unreaped write, so an event loop can sleep in `poll`/`epoll` until one is ready.
#[derive(Debug)]
pub struct BlockingBackend {
    requests: Option<Sender<DurableWrite>>,
    completions: Receiver<Notified>,
    notify: PipeReader,
    worker: Option<JoinHandle<()>>,
    in_flight: usize,
    queue_depth_max: usize,
    filesystem: Arc<StdFileSystem>,
}

impl BlockingBackend {
    /// Starts the helper thread; at most `queue_depth_max` writes in flight.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn new(queue_depth_max: usize) -> io::Result<Self> {
        let queue_depth_max = queue_depth_max.max(1);
        let (request_tx, request_rx) = bounded::<DurableWrite>(queue_depth_max);
        let (completion_tx, completion_rx) = bounded::<Notified>(queue_depth_max);
        // One byte per completion, written before the completion is sent, read when it is
        // reaped: at most `queue_depth_max` (≤ 64) bytes are ever in the pipe.
        let (notify_rx, mut notify_tx) = io::pipe()?;
        let worker = std::thread::Builder::new()
            .name("kommander-wal-blocking".into())
            .spawn(move || {
                for request in request_rx {
                    let result = request
                        .file
                        .file()
                        .write_all_at(request.buf.as_slice(), request.offset)
                        .and_then(|()| request.file.file().sync_data());
                    let completion = Completion {
                        token: request.token,
                        result,
                        buf: request.buf,
                    };
                    let notified = notify_tx.write_all(&[1]).is_ok();
                    if completion_tx.send((completion, notified)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            requests: Some(request_tx),
            completions: completion_rx,
            notify: notify_rx,
            worker: Some(worker),
            in_flight: 0,
            queue_depth_max,
            filesystem: Arc::new(StdFileSystem),
        })
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("the blocking backend's helper thread stopped")
}

impl Backend for BlockingBackend {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn filesystem(&self) -> Arc<dyn FileSystem> {
        self.filesystem.clone()
    }

    fn queue_depth_max(&self) -> usize {
        self.queue_depth_max
    }

    fn submit_durable_write(
        &mut self,
        file: &SegmentFile,
        offset: u64,
        buf: AlignedBuf,
        token: u64,
    ) -> io::Result<()> {
        if self.in_flight >= self.queue_depth_max {
            return Err(io::Error::other("blocking backend: queue depth exceeded"));
        }
        let requests = self.requests.as_ref().ok_or_else(worker_gone)?;
        requests
            .send(DurableWrite {
                file: file.clone(),
                offset,
                buf,
                token,
            })
            .map_err(|_| worker_gone())?;
        self.in_flight += 1;
        Ok(())
    }

    fn reap(&mut self, min_complete: usize, out: &mut Vec<Completion>) -> io::Result<usize> {
        let min_complete = min_complete.min(self.in_flight);
        let mut added = 0;
        while self.in_flight > 0 {
            let received = if added < min_complete {
                self.completions.recv().map_err(|_| worker_gone())?
            } else {
                match self.completions.try_recv() {
                    Ok(received) => received,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Err(worker_gone()),
                }
            };
            let (completion, notified) = received;
            if notified {
                // Written before the completion was sent: never blocks.
                self.notify.read_exact(&mut [0u8])?;
            }
            out.push(completion);
            added += 1;
            self.in_flight -= 1;
        }
        Ok(added)
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.notify.as_fd())
    }
}

impl Drop for BlockingBackend {
    fn drop(&mut self) {
        // Closing the request channel ends the helper once it has finished what it holds.
        self.requests = None;
        // Drain completions so the helper never blocks on a full completion queue.
        while self.completions.recv().is_ok() {}
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
