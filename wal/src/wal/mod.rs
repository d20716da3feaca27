//! [`Wal`]: the log. One owner thread appends, submits and polls; reads borrow the mapping.
//!
//! This file holds the type, its fields and its small accessors; each job has a file of its
//! own: `open.rs` (opening a directory and recovering its state), `append.rs`
//! (validating writes and filling the open frame), `pipeline.rs` (sealed frames as durable
//! writes, in-order acknowledgement, poisoning), `rotation.rs` (segment preparation, rotation,
//! reclamation, rewrite) and `read.rs` (reads borrowing the segments' mappings).

mod append;
mod open;
mod pipeline;
mod read;
mod rotation;

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Lsn;
use crate::backend::{AlignedBuf, Backend, Completion, FileSystem};
use crate::config::WalConfig;
use crate::preparer::Preparer;
use crate::segment::{Segment, Stamping};
use crate::state::{LogState, Sketch};

/// The frame being filled: records are encoded into `buf` after room for the header.
struct OpenFrame {
    buf: AlignedBuf,
    offset: u64,
    first_lsn: u64,
    records: u32,
    payload_len: usize,
}

/// A frame submitted as a durable write, acknowledged once it and every earlier one are done.
#[derive(Debug)]
struct InflightFrame {
    token: u64,
    end_lsn: u64,
    done: bool,
}

/// A write-ahead log holding the interleaved records of many partitions.
///
/// # Use
///
/// One owner calls [`Wal::append`] (or its conveniences) any number of times, then
/// [`Wal::submit`] once per loop turn, then [`Wal::poll_durable`] (non-blocking) or
/// [`Wal::wait_durable`]. Records appended between two submissions share one durable write
/// (group commit); while one write is in flight the next batch fills (pipeline). Appending
/// waits for the disk only when `inflight_batches_max` frames are already in flight and the
/// current frame is full.
///
/// # Durability
///
/// Nothing is durable when `append` returns. A record is durable once [`Wal::durable_lsn`]
/// reaches the [`Lsn`] its append returned; durability advances in LSN order only. Appends not
/// yet submitted when the `Wal` is dropped are lost (as in a crash).
///
/// # Failure
///
/// The first failed write or sync poisons the log: every later call returns
/// [`Error::Poisoned`](crate::Error::Poisoned). Reopen the directory to recover what is durable.
pub struct Wal {
    dir: PathBuf,
    config: WalConfig,
    fs: Arc<dyn FileSystem>,
    backend: Box<dyn Backend>,
    state: LogState,
    /// Segments holding data, oldest first; the last is the active one.
    segments: VecDeque<Segment>,
    /// Segments prepared ahead, in sequence order.
    prepared: VecDeque<Segment>,
    /// Zero-fills, recycles and removes segments (in the background by default).
    preparer: Preparer,
    /// Prepare jobs submitted whose segment has not arrived in `prepared` yet.
    prepares_in_flight: usize,
    next_seq: u64,
    cursor: u64,
    prev_payload_crc: u32,
    current: Option<OpenFrame>,
    next_lsn: u64,
    durable_lsn: u64,
    inflight: VecDeque<InflightFrame>,
    next_token: u64,
    spare: Vec<AlignedBuf>,
    completions: Vec<Completion>,
    flush_wanted: bool,
    poisoned: Option<Arc<str>>,
    sketch: Sketch,
    /// Dropped last (fields drop in order): the backend's writes in flight and the
    /// preparer's jobs finish before another open may take the directory.
    _lock: File,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("backend", &self.backend.name())
            .field("next_lsn", &self.next_lsn)
            .field("durable_lsn", &self.durable_lsn)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Wal {
    /// The durable LSN: every record below it is durable.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.durable_lsn)
    }

    /// The LSN the next record will get.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.next_lsn)
    }

    /// A descriptor that becomes readable when a completion may be ready, if the backend has
    /// one (for an event loop that sleeps in `poll`/`epoll` between [`Wal::poll_durable`]s).
    pub fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        self.backend.completion_fd()
    }

    /// The backend's name (`"blocking"`, `"simulated"`, ...).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Sequence numbers of the segments holding data, oldest first (the last is active).
    pub fn segment_seqs(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.seq).collect()
    }

    fn stamping(&self) -> Stamping {
        Stamping {
            seed: self.config.deterministic_epoch_seed,
        }
    }

    fn active_seq(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.seq)
    }

    fn active_len(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.len)
    }

    fn segment(&self, seq: u64) -> Option<&Segment> {
        let front = self.segments.front()?.seq;
        self.segments
            .get(usize::try_from(seq.checked_sub(front)?).ok()?)
    }
}
