//! The I/O backends: the only code in this crate that writes to disk.
//!
//! A backend has two sides:
//!
//! * a **synchronous filesystem side** ([`FileSystem`]) for the rare operations: creating and
//!   opening segment files, zero-filling them, writing a segment header, syncing, renaming,
//!   syncing the directory, removing. It is `Send + Sync` and shared behind an `Arc`, so a
//!   segment preparer may run on another thread.
//! * an **asynchronous hot path** ([`Backend`]): [`Backend::submit_durable_write`] hands an owned,
//!   4 KiB-aligned [`AlignedBuf`] to the backend, which writes it at an offset *and makes it
//!   durable* (datasync) as ONE operation with ONE [`Completion`]. Several writes may be in
//!   flight at once (the group-commit pipeline: batch k+1 fills while batch k is written);
//!   [`Backend::reap`] returns completions, each with the buffer back for reuse.
//!
//! Reads never go through a backend: the log memory-maps its segments and hands out `Bytes`
//! borrowing the mapping. A backend therefore must write through the page cache *or* keep the
//! page cache coherent (as `O_DIRECT` does on Linux), and must never truncate a file.
//!
//! Every backend writes exactly the bytes it is given at exactly the offsets it is given, so
//! the bytes on disk are identical whichever backend wrote them.
//!
//! # Adding a backend
//!
//! Implement [`Backend`] (and [`FileSystem`], or reuse [`StdFileSystem`]), add a variant to
//! [`BackendChoice`] and one arm to [`open_backend`].

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod aligned;
mod blocking;
pub mod sim;
mod uring;
mod zeros;

pub use aligned::{AlignedBuf, BLOCK_SIZE};
pub use blocking::{BlockingBackend, StdFileSystem};
pub use uring::{UringBackend, UringFileSystem, UringWriteMode};

/// A segment (or other WAL-owned) file opened through a [`FileSystem`].
///
/// Cheap to clone (an `Arc`); the descriptor closes when the last clone is dropped. Opened
/// read-write; backends may add flags (such as `O_DIRECT`) in their own [`FileSystem`].
#[derive(Clone)]
pub struct SegmentFile {
    inner: Arc<SegmentFileInner>,
}

struct SegmentFileInner {
    file: File,
    path: PathBuf,
}

impl SegmentFile {
    /// Wraps an open file. `path` is where it was opened (kept for error messages and the
    /// simulated backend's records; a later rename through [`FileSystem::rename`] does not
    /// update it).
    pub fn new(file: File, path: PathBuf) -> Self {
        Self {
            inner: Arc::new(SegmentFileInner { file, path }),
        }
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.inner.file
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl AsFd for SegmentFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.file.as_fd()
    }
}

impl fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentFile")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// The synchronous filesystem side of a backend: rare operations, each finished (but not
/// necessarily durable: see each method) when it returns. Every method but the two that open
/// files defaults to the plain `std` call.
///
/// Data passed to [`FileSystem::write_at`] by the log is always 4096-aligned in memory, offset
/// and length, so an `O_DIRECT` implementation may write it as is.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates a new file at `path` (fails if it exists), opened read-write.
    ///
    /// # Errors
    /// Any I/O error, including `AlreadyExists`.
    fn create_new(&self, path: &Path) -> io::Result<SegmentFile>;

    /// Opens an existing file read-write.
    ///
    /// # Errors
    /// Any I/O error, including `NotFound`.
    fn open(&self, path: &Path) -> io::Result<SegmentFile>;

    /// Writes all of `data` at `offset` (short writes are completed). Not durable until
    /// [`FileSystem::sync_data`].
    ///
    /// # Errors
    /// Any I/O error.
    fn write_at(&self, file: &SegmentFile, offset: u64, data: &[u8]) -> io::Result<()> {
        file.file().write_all_at(data, offset)
    }

    /// Writes `len` zero bytes at `offset` (how a fresh segment is filled). Not durable until
    /// [`FileSystem::sync_data`]. The default writes 1 MiB chunks through
    /// [`FileSystem::write_at`]; the `std` and io_uring filesystems write them with `O_DIRECT`
    /// (no page-cache copy), falling back to buffered writes where the filesystem refuses.
    ///
    /// # Errors
    /// Any I/O error.
    fn write_zeros(&self, file: &SegmentFile, offset: u64, len: u64) -> io::Result<()> {
        zeros::write_zeros_with(|at, data| self.write_at(file, at, data), offset, len)
    }

    /// Makes every earlier write to `file` durable (`fdatasync`).
    ///
    /// # Errors
    /// Any I/O error. After a failed sync the file's contents are unknown: never retry.
    fn sync_data(&self, file: &SegmentFile) -> io::Result<()> {
        file.file().sync_data()
    }

    /// Atomically renames `from` to `to` (replacing `to`). Durable after
    /// [`FileSystem::sync_dir`] on the directory.
    ///
    /// # Errors
    /// Any I/O error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    /// Removes a file. Durable after [`FileSystem::sync_dir`] on the directory. A mapping of the
    /// file stays valid until unmapped.
    ///
    /// # Errors
    /// Any I/O error.
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    /// Makes the directory's entries (creations, renames, removals) durable (`fsync` on it).
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// One finished durable write.
#[derive(Debug)]
pub struct Completion {
    /// The token given to [`Backend::submit_durable_write`].
    pub token: u64,
    /// `Ok` only if every byte was written and the data sync succeeded. A cancelled or failed
    /// operation (of either step) is an `Err`.
    pub result: io::Result<()>,
    /// The submitted buffer, handed back for reuse (its contents are unchanged).
    pub buf: AlignedBuf,
}

/// The hot path of a backend: durable writes of owned aligned buffers, many in flight.
///
/// Owned by one thread (the log's owner); not `Sync`.
pub trait Backend: Send + fmt::Debug {
    /// A short name for logs (`"blocking"`, `"io_uring"`, `"simulated"`).
    fn name(&self) -> &'static str;

    /// The filesystem side, shared.
    fn filesystem(&self) -> Arc<dyn FileSystem>;

    /// How many durable writes this backend accepts in flight at once. The log never submits
    /// more (it waits for a completion first).
    fn queue_depth_max(&self) -> usize;

    /// Writes all of `buf.as_slice()` at `offset` of `file` and then makes it durable
    /// (datasync), as one operation completing once, with `token`, through [`Backend::reap`].
    ///
    /// The buffer is owned by the backend until its completion is reaped. `offset` and
    /// `buf.len()` are multiples of [`BLOCK_SIZE`]. Short writes are completed by the backend.
    /// Completions of different writes may arrive in any order.
    ///
    /// # Errors
    /// A submission error (the backend could not even queue the write, or more than
    /// [`Backend::queue_depth_max`] would be in flight). The buffer is then dropped.
    fn submit_durable_write(
        &mut self,
        file: &SegmentFile,
        offset: u64,
        buf: AlignedBuf,
        token: u64,
    ) -> io::Result<()>;

    /// Appends finished completions to `out`, waiting until at least `min_complete` of them are
    /// available (`0` = never wait), capped at [`Backend::in_flight`]. Returns how many it added.
    ///
    /// # Errors
    /// An error of the backend itself (not of a write: those are failed [`Completion`]s).
    fn reap(&mut self, min_complete: usize, out: &mut Vec<Completion>) -> io::Result<usize>;

    /// Durable writes submitted and not yet reaped.
    fn in_flight(&self) -> usize;

    /// A descriptor that becomes readable when a completion may be ready (for an event loop
    /// that sleeps in `poll`/`epoll`), if the backend has one.
    fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// Which backend a log uses.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum BackendChoice {
    /// io_uring if this process may use it, else [`BackendChoice::Blocking`] with a warning
    /// naming why (seccomp, `kernel.io_uring_disabled`, an old kernel).
    #[default]
    Auto,
    /// io_uring, driven directly, with the given durable-write mode. Fails where io_uring is
    /// not permitted.
    IoUring(UringWriteMode),
    /// `pwrite` + `fdatasync` on a helper thread. Works everywhere.
    Blocking,
    /// The simulated backend: real files, every I/O step recorded, faults injected on demand,
    /// crash images for recovery tests. See [`sim`].
    Simulated(sim::SimDisk),
}

/// Opens the chosen backend, with room for `queue_depth_max` durable writes in flight.
///
/// # Errors
/// The backend could not start (for example, a helper thread could not be spawned).
pub fn open_backend(
    choice: &BackendChoice,
    queue_depth_max: usize,
) -> io::Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::Auto => uring::open_auto(queue_depth_max),
        BackendChoice::IoUring(mode) => Ok(Box::new(UringBackend::new(queue_depth_max, *mode)?)),
        BackendChoice::Blocking => Ok(Box::new(BlockingBackend::new(queue_depth_max)?)),
        BackendChoice::Simulated(disk) => Ok(Box::new(disk.backend(queue_depth_max))),
    }
}
