//! The io_uring backend: one durable write per batch through the log owner's own ring.
//!
//! The ring is driven directly with the `io-uring` crate (no async runtime underneath; see
//! `docs/decisions/0001-io-uring-directly.md`). A durable write is one of two *chains*:
//!
//! * [`UringWriteMode::LinkedDirectDatasync`] (the default): `WRITE` →(`IO_LINK`)
//!   `FSYNC(DATASYNC)` on a file opened `O_DIRECT`. Two SQEs, two CQEs. The write goes from the
//!   log's buffer to the device without a page-cache copy (and without the writeback the sync
//!   would otherwise do); the sync, which on a device without FUA only flushes its cache, runs
//!   on an io-wq worker, a thread of this process (it inherits the process's scheduling class).
//!   Reading fresh entries back then reads the device, which the shard does only at restore
//!   (replication serves lagging followers from the replicas' memory).
//! * [`UringWriteMode::LinkedDatasync`]: the same chain on a buffered file. The written data
//!   stays in the page cache, so reads of fresh entries hit memory, but every byte is copied
//!   into it and written back by the sync: in the profile of the saturated 64- and
//!   1024-partition loops that copy (`copy_folio_from_iter_atomic` on the io-wq worker) was
//!   40-60 % of the process's CPU, and the direct chain cut the system time per record from
//!   190-590 ns to 40-90 ns (`docs/benchmarks.md`).
//! * [`UringWriteMode::DirectDsync`]: a single `WRITE` with `RWF_DSYNC` on a file opened
//!   `O_DIRECT`. One SQE, one CQE, no page-cache copy; on devices with FUA it becomes one FUA
//!   write. On devices without FUA (like the project's VM) the kernel issues the cache flush
//!   from a kernel workqueue after the write completes, which a busy or real-time-scheduled
//!   process does not control: under `chrt -f` its QD1 latency sat at one scheduler tick
//!   (4 ms) while the linked mode stayed near 180 µs.
//!
//! Where the filesystem refuses `O_DIRECT` (tmpfs, some FUSE mounts) the direct modes open the
//! file buffered, with one warning, and the chain (or `RWF_DSYNC`) still makes each write
//! durable. The buffered linked mode and the direct mode were measured side by side,
//! interleaved, on the project's VM (`docs/benchmarks.md`): the direct mode's QD1 p50 was lower
//! in about half of the runs, the linked mode's pipelined bandwidth higher in most.

//! # Rules this module enforces
//!
//! * **Owned buffers.** The [`AlignedBuf`] (and a clone of the [`SegmentFile`], so the
//!   descriptor cannot be closed and reused under an SQE) live in a fixed slot from submission
//!   until every CQE of the write has been reaped; only then is the buffer handed back. If the
//!   backend is dropped with writes in flight it waits for them, and if even that fails it leaks
//!   the buffers rather than free memory the kernel may still read.
//! * **Short writes** are resubmitted for the remainder (and, in linked mode, synced again: a
//!   short write breaks the link, so its `FSYNC` completes with `-ECANCELED`, which is expected
//!   there and not an error).
//! * **Cancelled links.** Any other `-ECANCELED`, and any failure of either step, fails the
//!   whole durable write with that error. The log then poisons itself; nothing is retried (a
//!   failed sync leaves the page cache in an unknown state: never retry and trust it).
//! * No SQPOLL (it caused multi-millisecond tail spikes on 2 cores), no `SINGLE_ISSUER` /
//!   `DEFER_TASKRUN` (the log may be moved between threads; those flags tie the ring to one
//!   task).
//!
//! All of the crate's `unsafe` is in this file; each block says why it is sound.
#![allow(unsafe_code)]

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use io_uring::{IoUring, opcode, squeue, types};

use super::{AlignedBuf, Backend, BlockingBackend, Completion, FileSystem, SegmentFile};

/// How the io_uring backend makes one batch durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UringWriteMode {
    /// `WRITE` on an `O_DIRECT` file linked to `FSYNC(DATASYNC)` (buffered if the filesystem
    /// refuses `O_DIRECT`; see the module docs for why this is the default).
    #[default]
    LinkedDirectDatasync,
    /// `WRITE` linked to `FSYNC(DATASYNC)` on a buffered file (fresh entries stay in the page
    /// cache, at the cost of a copy of every byte).
    LinkedDatasync,
    /// One `WRITE` with `RWF_DSYNC` on an `O_DIRECT` file (buffered if the filesystem refuses
    /// `O_DIRECT`).
    DirectDsync,
}

impl UringWriteMode {
    /// Whether the write is linked to an `FSYNC(DATASYNC)` (two SQEs, two CQEs).
    fn linked(self) -> bool {
        matches!(self, Self::LinkedDirectDatasync | Self::LinkedDatasync)
    }

    /// Whether files are opened `O_DIRECT`.
    fn direct(self) -> bool {
        matches!(self, Self::LinkedDirectDatasync | Self::DirectDsync)
    }
}

/// The largest single SQE write; longer buffers are written in pieces by the short-write path.
const WRITE_CHUNK_BYTES_MAX: usize = 1 << 30;

/// `user_data` low bit: which step of a chain a CQE belongs to. The rest is the slot index.
const STEP_WRITE: u64 = 0;
const STEP_SYNC: u64 = 1;

/// The filesystem side of the io_uring backend: `std` file operations, with `O_DIRECT` added
/// to every open in the direct modes (falling back to buffered files, with one
/// warning, where the filesystem refuses it).
#[derive(Debug)]
pub struct UringFileSystem {
    direct: bool,
    warned_no_direct: AtomicBool,
}

impl UringFileSystem {
    fn new(mode: UringWriteMode) -> Self {
        Self {
            direct: mode.direct(),
            warned_no_direct: AtomicBool::new(false),
        }
    }

    fn open_with(&self, path: &Path, create_new: bool) -> io::Result<SegmentFile> {
        let open = |direct: bool| {
            let mut options = OpenOptions::new();
            options.read(true).write(true);
            if create_new {
                options.create_new(true);
            }
            if direct {
                options.custom_flags(libc::O_DIRECT);
            }
            options.open(path)
        };
        let file = if self.direct {
            match open(true) {
                Ok(file) => file,
                // EINVAL: the filesystem does not support O_DIRECT. `create_new` failed before
                // creating anything in that case, so retrying is safe.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    if !self.warned_no_direct.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            path = %path.display(),
                            "io_uring backend: the filesystem refuses O_DIRECT; \
                             writing buffered with RWF_DSYNC instead"
                        );
                    }
                    open(false)?
                }
                Err(error) => return Err(error),
            }
        } else {
            open(false)?
        };
        Ok(SegmentFile::new(file, path.to_path_buf()))
    }
}

impl FileSystem for UringFileSystem {
    fn create_new(&self, path: &Path) -> io::Result<SegmentFile> {
        self.open_with(path, true)
    }

    fn open(&self, path: &Path) -> io::Result<SegmentFile> {
        self.open_with(path, false)
    }

    fn write_zeros(&self, file: &SegmentFile, offset: u64, len: u64) -> io::Result<()> {
        super::zeros::write_zeros_direct(file, offset, len)
    }
}

/// One durable write between submission and its last CQE.
struct InFlight {
    /// Keeps the descriptor open (and its number unused) while SQEs name it.
    file: SegmentFile,
    /// Owned until every CQE of this write is reaped; never touched in between.
    buf: AlignedBuf,
    offset: u64,
    /// Bytes known written (by completed rounds).
    written: usize,
    token: u64,
    /// CQEs still expected for the current round (1 or 2).
    pending: u8,
    write_result: i32,
    sync_result: i32,
}

/// What finishing a round decided.
enum RoundOutcome {
    Done(io::Result<()>),
    Resubmit,
}

/// The io_uring backend (see the module docs).
pub struct UringBackend {
    ring: IoUring,
    mode: UringWriteMode,
    /// Fixed length (`queue_depth_max`), never resized, so a slot's place is stable.
    slots: Vec<Option<InFlight>>,
    free_slots: Vec<usize>,
    in_flight: usize,
    /// SQEs pushed but not yet accepted by the kernel.
    unsubmitted: bool,
    /// SQEs pushed whose CQE has not been reaped: the kernel may still use their memory.
    kernel_ops: usize,
    /// The largest single SQE write ([`WRITE_CHUNK_BYTES_MAX`]; smaller in tests, to exercise
    /// the short-write path).
    write_chunk_bytes_max: usize,
    /// Scratch space for CQEs copied out of the ring before they are processed.
    cqes: Vec<(u64, i32)>,
    filesystem: Arc<UringFileSystem>,
}

impl fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringBackend")
            .field("mode", &self.mode)
            .field("queue_depth_max", &self.slots.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl UringBackend {
    /// Sets up a ring with room for `queue_depth_max` durable writes in flight, and checks that
    /// it works: the opcodes it needs are supported and a no-op round trip through
    /// `io_uring_enter` succeeds.
    ///
    /// # Errors
    /// io_uring is not available: `EPERM` (seccomp, as in Docker's default profile, or
    /// `kernel.io_uring_disabled`), `ENOSYS` (kernel without io_uring), `ENOMEM`, or an
    /// `Unsupported` error naming a missing opcode.
    pub fn new(queue_depth_max: usize, mode: UringWriteMode) -> io::Result<Self> {
        let queue_depth_max = queue_depth_max.max(1);
        // Two SQEs per write at most (linked mode), rounded up by the kernel to a power of 2.
        let entries = u32::try_from(queue_depth_max.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .clamp(2, 4096);
        let mut ring = IoUring::builder()
            .setup_coop_taskrun()
            .build(entries)
            .or_else(
                // COOP_TASKRUN arrived in 5.19; older kernels refuse the flag with EINVAL.
                |error| match error.raw_os_error() {
                    Some(libc::EINVAL) => IoUring::builder().build(entries),
                    _ => Err(error),
                },
            )?;

        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::Write::CODE, "IORING_OP_WRITE"),
            (opcode::Fsync::CODE, "IORING_OP_FSYNC"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the kernel's io_uring does not support {name}"),
                ));
            }
        }

        let nop = opcode::Nop::new().build().user_data(u64::MAX);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop) }
            .map_err(|_| io::Error::other("io_uring: empty submission queue is full"))?;
        submit_and_wait_retrying(&ring, 1)?;
        let nop_result = ring.completion().next().map(|cqe| cqe.result());
        if nop_result != Some(0) {
            return Err(io::Error::other(format!(
                "io_uring: no-op round trip failed ({nop_result:?})"
            )));
        }

        Ok(Self {
            ring,
            mode,
            slots: (0..queue_depth_max).map(|_| None).collect(),
            free_slots: (0..queue_depth_max).rev().collect(),
            in_flight: 0,
            unsubmitted: false,
            kernel_ops: 0,
            write_chunk_bytes_max: WRITE_CHUNK_BYTES_MAX,
            cqes: Vec::with_capacity(entries as usize * 2),
            filesystem: Arc::new(UringFileSystem::new(mode)),
        })
    }

    /// Pushes the SQEs of the next round of `slot`: the rest of its buffer from `written`.
    fn push_round(&mut self, slot: usize) -> io::Result<()> {
        let mode = self.mode;
        let in_flight = self.slots[slot]
            .as_mut()
            .ok_or_else(|| io::Error::other("io_uring backend: round for an empty slot"))?;
        let rest = &in_flight.buf.as_slice()[in_flight.written..];
        let len = rest.len().min(self.write_chunk_bytes_max);
        let fd = types::Fd(in_flight.file.file().as_raw_fd());
        let offset = in_flight.offset + in_flight.written as u64;
        // `len` ≤ WRITE_CHUNK_BYTES_MAX (1 GiB), so it fits in u32.
        let write = opcode::Write::new(fd, rest.as_ptr(), len as u32).offset(offset);
        let slot_bits = (slot as u64) << 1;
        let entries: &[squeue::Entry] = if mode.linked() {
            in_flight.pending = 2;
            &[
                write
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data(slot_bits | STEP_WRITE),
                opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(slot_bits | STEP_SYNC),
            ]
        } else {
            in_flight.pending = 1;
            &[write
                .rw_flags(libc::RWF_DSYNC)
                .build()
                .user_data(slot_bits | STEP_WRITE)]
        };
        in_flight.write_result = 0;
        in_flight.sync_result = 0;
        // The ring has room for two SQEs per slot; if earlier SQEs are still queued (the
        // kernel was busy), hand them over first.
        let room = {
            let submission = self.ring.submission();
            submission.capacity() - submission.len()
        };
        if room < entries.len() {
            submit_retrying(&self.ring)?;
        }
        // SAFETY: the entries point into `in_flight.buf` (the range `written..written+len` of
        // its heap allocation) and name `in_flight.file`'s descriptor. Both are owned by the
        // slot, which is neither emptied nor reused until every CQE of this round has been
        // reaped (`pending` counts them; `finish_round` runs at 0), and the buffer is not
        // accessed mutably meanwhile. If the backend is dropped earlier, `Drop` waits for the
        // CQEs or leaks the slots. A linked pair is pushed as a unit, so the link flag always
        // applies to its own FSYNC.
        unsafe { self.ring.submission().push_multiple(entries) }
            .map_err(|_| io::Error::other("io_uring backend: submission queue full"))?;
        self.kernel_ops += entries.len();
        self.unsubmitted = true;
        Ok(())
    }

    /// Hands queued SQEs to the kernel if there are any.
    fn flush_submissions(&mut self) -> io::Result<()> {
        if self.unsubmitted {
            submit_retrying(&self.ring)?;
            self.unsubmitted = !self.ring.submission().is_empty();
        }
        Ok(())
    }

    /// Processes every CQE available now; finished writes go to `out`. Returns how many.
    fn drain(&mut self, out: &mut Vec<Completion>) -> io::Result<usize> {
        self.cqes.clear();
        self.cqes.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        self.kernel_ops = self.kernel_ops.saturating_sub(self.cqes.len());
        let mut added = 0;
        for index in 0..self.cqes.len() {
            let (user_data, result) = self.cqes[index];
            let slot = (user_data >> 1) as usize;
            let in_flight = self
                .slots
                .get_mut(slot)
                .and_then(Option::as_mut)
                .filter(|in_flight| in_flight.pending > 0)
                .ok_or_else(|| {
                    io::Error::other(format!(
                        "io_uring backend: completion for no write in flight (user_data {user_data})"
                    ))
                })?;
            if user_data & 1 == STEP_WRITE {
                in_flight.write_result = result;
            } else {
                in_flight.sync_result = result;
            }
            in_flight.pending -= 1;
            if in_flight.pending > 0 {
                continue;
            }
            match self.finish_round(slot)? {
                RoundOutcome::Resubmit => self.push_round(slot)?,
                RoundOutcome::Done(result) => {
                    let finished = self.slots[slot].take().ok_or_else(|| {
                        io::Error::other("io_uring backend: finished an empty slot")
                    })?;
                    self.free_slots.push(slot);
                    self.in_flight -= 1;
                    out.push(Completion {
                        token: finished.token,
                        result,
                        buf: finished.buf,
                    });
                    added += 1;
                }
            }
        }
        self.flush_submissions()?;
        Ok(added)
    }

    /// Decides what a round whose CQEs have all arrived means for its write.
    fn finish_round(&mut self, slot: usize) -> io::Result<RoundOutcome> {
        let mode = self.mode;
        let chunk_max = self.write_chunk_bytes_max;
        let in_flight = self.slots[slot]
            .as_mut()
            .ok_or_else(|| io::Error::other("io_uring backend: round of an empty slot"))?;
        let rest = in_flight.buf.len() - in_flight.written;
        let requested = rest.min(chunk_max);
        let write = in_flight.write_result;
        if write < 0 {
            // The cause of the chain's failure (a linked FSYNC is then -ECANCELED).
            return Ok(RoundOutcome::Done(Err(step_error(
                "write", write, in_flight,
            ))));
        }
        let written = write as usize;
        if written == 0 || written > requested {
            return Ok(RoundOutcome::Done(Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "io_uring write of {requested} bytes at offset {} of {} returned {written}",
                    in_flight.offset + in_flight.written as u64,
                    in_flight.file.path().display()
                ),
            ))));
        }
        in_flight.written += written;
        if written < requested || in_flight.written < in_flight.buf.len() {
            // Short (or chunked) write: its sync (if linked) was cancelled or covers only part;
            // write the rest and sync again.
            return Ok(RoundOutcome::Resubmit);
        }
        if mode.linked() && in_flight.sync_result < 0 {
            let sync = in_flight.sync_result;
            return Ok(RoundOutcome::Done(Err(step_error(
                "fdatasync",
                sync,
                in_flight,
            ))));
        }
        Ok(RoundOutcome::Done(Ok(())))
    }
}

/// The error of a failed step, naming the file and offset; `-ECANCELED` says it was a
/// cancelled link.
fn step_error(step: &str, result: i32, in_flight: &InFlight) -> io::Error {
    let cause = io::Error::from_raw_os_error(-result);
    let cancelled = if -result == libc::ECANCELED {
        " (linked operation cancelled)"
    } else {
        ""
    };
    io::Error::new(
        cause.kind(),
        format!(
            "io_uring {step} at offset {} of {} failed{cancelled}: {cause}",
            in_flight.offset + in_flight.written as u64,
            in_flight.file.path().display()
        ),
    )
}

/// `io_uring_enter` submitting what is queued; interrupted or busy calls are not errors (the
/// SQEs stay queued and go with the next call).
fn submit_retrying(ring: &IoUring) -> io::Result<()> {
    match ring.submit() {
        Ok(_) => Ok(()),
        Err(error) if is_transient(&error) => Ok(()),
        Err(error) => Err(error),
    }
}

/// `io_uring_enter` submitting and waiting for `want` CQEs, retrying after a signal.
fn submit_and_wait_retrying(ring: &IoUring, want: usize) -> io::Result<()> {
    loop {
        match ring.submit_and_wait(want) {
            Ok(_) => return Ok(()),
            Err(error) if error.raw_os_error() == Some(libc::EINTR) => continue,
            // EBUSY/EAGAIN: the completion queue is full; the caller drains it and comes back.
            Err(error) if is_transient(&error) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

impl Backend for UringBackend {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn filesystem(&self) -> Arc<dyn FileSystem> {
        self.filesystem.clone()
    }

    fn queue_depth_max(&self) -> usize {
        self.slots.len()
    }

    fn submit_durable_write(
        &mut self,
        file: &SegmentFile,
        offset: u64,
        buf: AlignedBuf,
        token: u64,
    ) -> io::Result<()> {
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "io_uring backend: empty durable write",
            ));
        }
        let slot = self
            .free_slots
            .pop()
            .ok_or_else(|| io::Error::other("io_uring backend: queue depth exceeded"))?;
        self.slots[slot] = Some(InFlight {
            file: file.clone(),
            buf,
            offset,
            written: 0,
            token,
            pending: 0,
            write_result: 0,
            sync_result: 0,
        });
        self.in_flight += 1;
        if let Err(error) = self.push_round(slot) {
            // Nothing reached the queue: the slot can be emptied (dropping the buffer).
            self.slots[slot] = None;
            self.free_slots.push(slot);
            self.in_flight -= 1;
            return Err(error);
        }
        // Submit now: the write starts while the caller fills the next batch.
        self.flush_submissions()
    }

    fn reap(&mut self, min_complete: usize, out: &mut Vec<Completion>) -> io::Result<usize> {
        let min_complete = min_complete.min(self.in_flight);
        self.flush_submissions()?;
        let mut added = self.drain(out)?;
        while added < min_complete {
            submit_and_wait_retrying(&self.ring, 1)?;
            added += self.drain(out)?;
        }
        Ok(added)
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        // The ring's descriptor polls readable when CQEs are waiting.
        Some(self.ring.as_fd())
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // The kernel may still read the buffers of writes in flight: wait for them.
        let mut discarded = Vec::new();
        while self.kernel_ops > 0 {
            let progressed = self
                .flush_submissions()
                .and_then(|()| submit_and_wait_retrying(&self.ring, 1))
                .and_then(|()| self.drain(&mut discarded));
            discarded.clear();
            if progressed.is_err() {
                // We cannot learn when the kernel is done with them: leak the buffers (and
                // keep the descriptors open) rather than free memory a write may still read.
                std::mem::forget(std::mem::take(&mut self.slots));
                return;
            }
        }
    }
}

/// Why io_uring could not be used, in words for the log line of [`open_auto`].
fn unavailable_cause(error: &io::Error) -> String {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    let cause = match (error.raw_os_error(), sysctl) {
        (Some(libc::EPERM), Some(2)) => "io_uring is disabled by sysctl kernel.io_uring_disabled=2",
        (Some(libc::EPERM), Some(1)) => {
            "io_uring is restricted to the group in kernel.io_uring_group \
             (kernel.io_uring_disabled=1)"
        }
        (Some(libc::EPERM), _) => {
            "io_uring_setup was refused (EPERM): most likely a seccomp profile such as \
             Docker's default"
        }
        (Some(libc::ENOSYS), _) => {
            "io_uring_setup does not exist (ENOSYS): the kernel lacks io_uring or a \
             sandbox hides it"
        }
        (Some(libc::ENOMEM), _) => {
            "io_uring_setup ran out of locked memory (ENOMEM): raise RLIMIT_MEMLOCK"
        }
        _ => "io_uring could not be set up",
    };
    format!("{cause} ({error})")
}

/// Opens the io_uring backend, or, if io_uring is not available here, the blocking backend
/// with a warning naming the cause.
///
/// # Errors
/// Neither backend could start.
pub(crate) fn open_auto(queue_depth_max: usize) -> io::Result<Box<dyn Backend>> {
    match UringBackend::new(queue_depth_max, UringWriteMode::default()) {
        Ok(backend) => Ok(Box::new(backend)),
        Err(error) => {
            tracing::warn!(
                cause = %unavailable_cause(&error),
                "io_uring unavailable; falling back to the blocking backend"
            );
            Ok(Box::new(BlockingBackend::new(queue_depth_max)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [UringWriteMode; 3] = [
        UringWriteMode::DirectDsync,
        UringWriteMode::LinkedDatasync,
        UringWriteMode::LinkedDirectDatasync,
    ];

    fn backend_is_send<T: Send>() {}

    fn filled(len: usize, seed: u8) -> AlignedBuf {
        let mut buf = AlignedBuf::with_capacity(len);
        buf.set_len(len);
        for (i, byte) in buf.as_mut_slice().iter_mut().enumerate() {
            *byte = seed.wrapping_add((i % 251) as u8);
        }
        buf
    }

    fn segment(backend: &UringBackend, dir: &Path, len: usize) -> SegmentFile {
        let fs = backend.filesystem();
        let file = fs.create_new(&dir.join("seg")).expect("create");
        fs.write_at(&file, 0, AlignedBuf::with_capacity(len).full_mut())
            .expect("zero-fill");
        fs.sync_data(&file).expect("sync");
        file
    }

    /// Each mode's chain (one SQE, or a write linked to a sync) and file flags (`O_DIRECT`
    /// where the mode writes directly and the filesystem allows it).
    #[test]
    fn each_mode_writes_its_chain_on_its_kind_of_file() {
        for (mode, sqes, direct) in [
            (UringWriteMode::DirectDsync, 1, true),
            (UringWriteMode::LinkedDatasync, 2, false),
            (UringWriteMode::LinkedDirectDatasync, 2, true),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut backend = UringBackend::new(1, mode).expect("io_uring is available here");
            let file = segment(&backend, dir.path(), 4096);
            // SAFETY: F_GETFL on a descriptor `file` keeps open; no pointers.
            let flags = unsafe { libc::fcntl(file.file().as_raw_fd(), libc::F_GETFL) };
            assert!(flags >= 0, "F_GETFL");
            let direct_allowed = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(file.path())
                .is_ok();
            assert_eq!(
                flags & libc::O_DIRECT != 0,
                direct && direct_allowed,
                "{mode:?}: O_DIRECT"
            );
            backend
                .submit_durable_write(&file, 0, filled(4096, 3), 1)
                .expect("submit");
            assert_eq!(backend.kernel_ops, sqes, "{mode:?}: SQEs of one write");
            let mut completions = Vec::new();
            backend.reap(1, &mut completions).expect("reap");
            assert!(completions[0].result.is_ok(), "{mode:?}");
        }
    }

    #[test]
    fn writes_many_in_flight_and_returns_buffers() {
        backend_is_send::<UringBackend>();
        for mode in MODES {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut backend = UringBackend::new(4, mode).expect("io_uring is available here");
            assert_eq!(backend.name(), "io_uring");
            assert_eq!(backend.queue_depth_max(), 4);
            let file = segment(&backend, dir.path(), 32 * 4096);
            let mut completions = Vec::new();
            for token in 0..16u64 {
                if backend.in_flight() == backend.queue_depth_max() {
                    backend.reap(1, &mut completions).expect("reap");
                }
                let buf = filled(4096, token as u8);
                backend
                    .submit_durable_write(&file, token * 4096, buf, token)
                    .expect("submit");
            }
            while backend.in_flight() > 0 {
                backend.reap(1, &mut completions).expect("reap");
            }
            for token in 16..20u64 {
                let buf = filled(4096, token as u8);
                backend
                    .submit_durable_write(&file, token * 4096, buf, token)
                    .expect("submit");
            }
            let over = backend.submit_durable_write(&file, 0, filled(4096, 0), 99);
            assert!(over.is_err(), "a fifth write in flight must be refused");
            while backend.in_flight() > 0 {
                backend.reap(1, &mut completions).expect("reap");
            }
            let mut tokens: Vec<u64> = completions
                .iter()
                .map(|c| {
                    assert!(c.result.is_ok(), "{mode:?}: {:?}", c.result);
                    assert_eq!(c.buf.as_slice(), filled(4096, c.token as u8).as_slice());
                    c.token
                })
                .collect();
            tokens.sort_unstable();
            assert_eq!(tokens, (0..20).collect::<Vec<_>>());
            let bytes = std::fs::read(dir.path().join("seg")).expect("read");
            for token in 0..20usize {
                let want = filled(4096, token as u8);
                assert_eq!(&bytes[token * 4096..][..4096], want.as_slice(), "{mode:?}");
            }
        }
    }

    #[test]
    fn short_writes_are_completed_and_synced_again() {
        for mode in MODES {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut backend = UringBackend::new(2, mode).expect("io_uring");
            // Every round writes one block: a 5-block buffer takes five rounds (in linked
            // mode: four cancelled-or-partial syncs and a final one).
            backend.write_chunk_bytes_max = 4096;
            let file = segment(&backend, dir.path(), 8 * 4096);
            backend
                .submit_durable_write(&file, 4096, filled(5 * 4096, 7), 1)
                .expect("submit");
            let mut completions = Vec::new();
            backend.reap(1, &mut completions).expect("reap");
            assert_eq!(completions.len(), 1);
            assert!(completions[0].result.is_ok(), "{:?}", completions[0].result);
            let bytes = std::fs::read(dir.path().join("seg")).expect("read");
            assert_eq!(&bytes[4096..6 * 4096], filled(5 * 4096, 7).as_slice());
            assert!(bytes[..4096].iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn a_failed_write_fails_its_chain_with_the_cause() {
        for mode in MODES {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("read-only");
            std::fs::write(&path, vec![0u8; 8192]).expect("create");
            let read_only =
                SegmentFile::new(std::fs::File::open(&path).expect("open"), path.clone());
            let mut backend = UringBackend::new(2, mode).expect("io_uring");
            backend
                .submit_durable_write(&read_only, 0, filled(4096, 1), 5)
                .expect("submit");
            let mut completions = Vec::new();
            backend.reap(1, &mut completions).expect("reap");
            let error = completions[0].result.as_ref().expect_err("must fail");
            // The cause (EBADF), not the cancelled FSYNC that follows it in linked mode.
            assert_eq!(error.raw_os_error(), None, "wrapped with context");
            let text = error.to_string();
            assert!(
                text.contains("write") && text.contains("read-only"),
                "{text}"
            );
            assert!(!text.contains("cancelled"), "{mode:?}: {text}");
            assert_eq!(completions[0].buf.as_slice(), filled(4096, 1).as_slice());
            assert_eq!(backend.in_flight(), 0);
        }
    }

    #[test]
    fn drop_waits_for_writes_in_flight() {
        for mode in MODES {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut backend = UringBackend::new(8, mode).expect("io_uring");
            let file = segment(&backend, dir.path(), 8 * 65536);
            for token in 0..8u64 {
                backend
                    .submit_durable_write(&file, token * 65536, filled(65536, token as u8), token)
                    .expect("submit");
            }
            drop(backend);
            let bytes = std::fs::read(dir.path().join("seg")).expect("read");
            for token in 0..8usize {
                let want = filled(65536, token as u8);
                assert_eq!(&bytes[token * 65536..][..65536], want.as_slice());
            }
        }
    }

    #[test]
    fn completion_fd_polls_readable_once_a_write_finished() {
        use std::os::fd::AsRawFd as _;
        for mode in MODES {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut backend = UringBackend::new(2, mode).expect("io_uring");
            let file = segment(&backend, dir.path(), 4 * 4096);
            backend
                .submit_durable_write(&file, 0, filled(4096, 3), 1)
                .expect("submit");
            let fd = backend
                .completion_fd()
                .expect("a completion fd")
                .as_raw_fd();
            let mut completions = Vec::new();
            // An event loop: sleep on the descriptor, reap without waiting, repeat. (Readable
            // means a CQE is there; in linked mode the write's CQE comes before the sync's.)
            for _ in 0..100 {
                let mut poll = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, count 1; the descriptor stays open (the backend
                // lives).
                let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
                assert_eq!(ready, 1, "{mode:?}: the ring fd never became readable");
                backend.reap(0, &mut completions).expect("reap");
                if !completions.is_empty() {
                    break;
                }
            }
            assert_eq!(completions.len(), 1, "{mode:?}");
            assert!(completions[0].result.is_ok());
        }
    }

    /// Docker's default seccomp profile, in miniature: on one thread, `io_uring_setup` fails
    /// with `EPERM`. `Auto` must then open the blocking backend, and it must work.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn auto_falls_back_to_blocking_when_seccomp_forbids_io_uring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let name = std::thread::spawn(move || {
            let mut filter = [
                // A = seccomp_data.nr (offset 0).
                libc::sock_filter {
                    code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 1,
                    k: libc::SYS_io_uring_setup as u32,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                },
            ];
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            // SAFETY: prctl with integer arguments only; affects this thread (and threads it
            // creates), which exists for this test alone.
            let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            assert_eq!(no_new_privs, 0, "PR_SET_NO_NEW_PRIVS");
            // SAFETY: `program` points at `filter`, both alive for the call; without the TSYNC
            // flag the filter applies to this thread only (and threads it creates).
            let installed = unsafe {
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                    0,
                    0,
                )
            };
            assert_eq!(installed, 0, "PR_SET_SECCOMP");
            let refused = UringBackend::new(1, UringWriteMode::default())
                .expect_err("the filter forbids io_uring_setup");
            assert_eq!(refused.raw_os_error(), Some(libc::EPERM));
            assert!(unavailable_cause(&refused).contains("seccomp"));
            let mut backend = open_auto(1).expect("Auto opens something");
            let file = {
                let fs = backend.filesystem();
                let file = fs.create_new(&path.join("seg")).expect("create");
                fs.write_at(&file, 0, AlignedBuf::with_capacity(4096).full_mut())
                    .expect("zero-fill");
                file
            };
            backend
                .submit_durable_write(&file, 0, filled(4096, 9), 1)
                .expect("submit");
            let mut completions = Vec::new();
            backend.reap(1, &mut completions).expect("reap");
            assert!(completions[0].result.is_ok());
            backend.name()
        })
        .join()
        .expect("the seccomp thread");
        assert_eq!(name, "blocking");
        let bytes = std::fs::read(dir.path().join("seg")).expect("read");
        assert_eq!(&bytes[..4096], filled(4096, 9).as_slice());
    }

    #[test]
    fn unavailable_cause_names_seccomp_and_enosys() {
        let eperm = unavailable_cause(&io::Error::from_raw_os_error(libc::EPERM));
        assert!(
            eperm.contains("EPERM") || eperm.contains("io_uring_disabled"),
            "{eperm}"
        );
        let enosys = unavailable_cause(&io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(enosys.contains("ENOSYS"), "{enosys}");
    }
}
