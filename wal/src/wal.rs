//! [`Wal`]: the log. One owner thread appends, submits and polls; reads borrow the mapping.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::ops::Range;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{
    AlignedBuf, BLOCK_SIZE, Backend, Completion, FileSystem, SegmentFile, open_backend,
};
use crate::config::WalConfig;
use crate::error::{Error, Result};
use crate::format::{
    FIRST_FRAME_OFFSET, FRAME_HEADER_LEN, FrameStamp, RecordKind, TERM_VOTE_HAS_VOTE,
    encode_record, frame_footprint, record_footprint, seal_frame,
};
use crate::preparer::{Job, Preparer};
use crate::recovery::{SegmentImage, replay, scan};
use crate::segment::{Segment, Stamping, map_file, parse_name};
use crate::state::{Applied, LogState, Sketch};
use crate::{Lsn, PartitionId, PartitionInfo, TermVote, Write};

/// Name of the file that marks a directory as a WAL.
pub const MARKER_NAME: &str = "KOMMANDER_WAL";
const MARKER_TEMP: &str = "KOMMANDER_WAL.tmp";
const MARKER_CONTENT: &[u8] = b"kommander-wal directory\nformat 1\n";
const LOCK_NAME: &str = "LOCK";

struct OpenFrame {
    buf: AlignedBuf,
    offset: u64,
    first_lsn: u64,
    records: u32,
    payload_len: usize,
}

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
/// [`Error::Poisoned`]. Reopen the directory to recover what is durable.
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

fn io_err<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(context, path, e)
}

impl Wal {
    /// Opens the log in `dir`, creating the directory and the log if needed, or recovering it.
    ///
    /// Recovery verifies every frame's checksums, drops a torn tail (zeroing it), and rebuilds
    /// the per-partition index. See the decision table in `docs/wal-format.md`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; [`Error::NotAWal`] if `dir` holds other files (nothing is
    /// changed); [`Error::Locked`] if another open holds it; [`Error::Corrupt`] or
    /// [`Error::MissingSegment`] for damage recovery must not repair silently; [`Error::Io`].
    ///
    /// # Durability
    /// Everything recovered is durable when this returns (a zeroed torn tail is synced).
    pub fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Self> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_err("creating the directory", &dir))?;
        let listing = DirListing::read(&dir)?;
        listing.check_is_wal(&dir)?;
        let DirListing {
            has_marker,
            seqs,
            temps,
            ..
        } = listing;
        let lock_path = dir.join(LOCK_NAME);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err("opening the lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::Locked { dir }),
            Err(TryLockError::Error(e)) => return Err(Error::io("locking", &lock_path, e)),
        }
        let backend = open_backend(&config.backend, config.inflight_batches_max)
            .map_err(io_err("starting the backend", &dir))?;
        let fs = backend.filesystem();
        for name in &temps {
            let path = dir.join(name);
            fs.remove(&path)
                .map_err(io_err("removing a temporary file", &path))?;
        }
        if !temps.is_empty() {
            fs.sync_dir(&dir)
                .map_err(io_err("syncing the directory", &dir))?;
        }
        if !has_marker {
            write_marker(fs.as_ref(), &dir)?;
        }
        let preparer = Preparer::new(
            fs.clone(),
            dir.clone(),
            config.segment_bytes,
            Stamping {
                seed: config.deterministic_epoch_seed,
            },
            config.prepare_segments_in_background,
        )?;
        let mut wal = Self {
            preparer,
            prepares_in_flight: 0,
            dir,
            _lock: lock,
            fs,
            backend,
            state: LogState::default(),
            segments: VecDeque::new(),
            prepared: VecDeque::new(),
            next_seq: 1,
            cursor: FIRST_FRAME_OFFSET,
            prev_payload_crc: 0,
            current: None,
            next_lsn: 0,
            durable_lsn: 0,
            inflight: VecDeque::new(),
            next_token: 0,
            spare: Vec::new(),
            completions: Vec::new(),
            flush_wanted: false,
            poisoned: None,
            sketch: Sketch::default(),
            config,
        };
        wal.recover(&seqs)?;
        Ok(wal)
    }

    fn recover(&mut self, seqs: &[u64]) -> Result<()> {
        let mut opened = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let path = self.dir.join(crate::segment::segment_name(seq));
            let file = self
                .fs
                .open(&path)
                .map_err(io_err("opening a segment", &path))?;
            let map = map_file(&file)?;
            opened.push((seq, file, path, map));
        }
        let images: Vec<SegmentImage<'_>> = opened
            .iter()
            .map(|(seq, _, _, map)| SegmentImage {
                seq: *seq,
                bytes: map,
            })
            .collect();
        let outcome = scan(&images)?;
        let state = replay(&images, &outcome)?;
        drop(images);
        if outcome.discard_highest
            && let Some((_, file, path, map)) = opened.pop()
        {
            drop((file, map));
            tracing::warn!(?path, "discarding a half-prepared segment");
            self.fs
                .remove(&path)
                .map_err(io_err("removing a half-prepared segment", &path))?;
            self.fs
                .sync_dir(&self.dir)
                .map_err(io_err("syncing the directory", &self.dir))?;
        }
        if let Some((index, offset)) = outcome.torn_tail {
            let (seq, file, path, map) = &opened[index];
            tracing::warn!(segment = seq, offset, "dropping a torn tail");
            let end = map.len() as u64;
            let mut zeros = AlignedBuf::with_capacity(1 << 20);
            let chunk = zeros.capacity() as u64;
            zeros.set_len(zeros.capacity());
            let mut at = offset;
            while at < end {
                let n = chunk.min(end - at) as usize;
                self.fs
                    .write_at(file, at, &zeros.as_slice()[..n])
                    .map_err(io_err("zeroing a torn tail", path))?;
                at += n as u64;
            }
            self.fs
                .sync_data(file)
                .map_err(io_err("syncing a zeroed tail", path))?;
        }
        let mut end_lsns = vec![None; opened.len()];
        for frame in &outcome.frames {
            end_lsns[frame.segment_index] =
                Some(frame.header.first_lsn.get() + u64::from(frame.header.record_count.get()));
        }
        self.state = state;
        self.next_lsn = outcome.next_lsn;
        self.durable_lsn = outcome.next_lsn;
        if let Some((seq, ..)) = opened.last() {
            self.next_seq = seq + 1;
        }
        let mut last_end = 0;
        for (i, (seq, file, path, map)) in opened.into_iter().enumerate() {
            // `scan` succeeded, so every kept segment has a verified header.
            let Some((_, epoch)) = outcome.segments[i].seq_epoch() else {
                return Err(Error::Corrupt {
                    segment: seq,
                    offset: 0,
                    reason: "bad segment header".into(),
                });
            };
            let mut segment = Segment::new(seq, epoch, file, path, map);
            if i <= outcome.active {
                last_end = end_lsns[i].unwrap_or(last_end);
                segment.end_lsn = last_end;
                self.segments.push_back(segment);
            } else {
                self.prepared.push_back(segment);
            }
        }
        if !self.segments.is_empty() {
            self.cursor = outcome.cursor;
            self.prev_payload_crc = outcome
                .frames
                .last()
                .filter(|f| f.segment_index == outcome.active)
                .map_or(0, |f| f.header.payload_crc.get());
        } else {
            let segment = self.next_segment()?;
            self.segments.push_back(segment);
            self.cursor = FIRST_FRAME_OFFSET;
        }
        if let Some(active) = self.segments.back_mut() {
            active.end_lsn = active.end_lsn.max(self.next_lsn);
        }
        self.top_up_prepared()
    }

    fn stamping(&self) -> Stamping {
        Stamping {
            seed: self.config.deterministic_epoch_seed,
        }
    }

    fn submit_prepare(&mut self, recycle: Option<(SegmentFile, PathBuf)>) -> Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.prepares_in_flight += 1;
        self.preparer.submit(Job::Prepare { seq, recycle })
    }

    /// Moves finished preparations into `prepared`; with `wait`, blocks until at least one
    /// segment is prepared (submitting a preparation if none is under way).
    fn collect_prepared(&mut self, wait: bool) -> Result<()> {
        if wait && self.prepared.is_empty() && self.prepares_in_flight == 0 {
            self.submit_prepare(None)?;
        }
        loop {
            let block = wait && self.prepared.is_empty();
            match self.preparer.next(block) {
                None => return Ok(()),
                Some(Ok(Some(segment))) => {
                    self.prepares_in_flight -= 1;
                    self.prepared.push_back(segment);
                }
                Some(Ok(None)) => {}
                Some(Err(error)) => return Err(error),
            }
        }
    }

    /// The next prepared segment, waiting for the preparer if none is ready.
    fn next_segment(&mut self) -> Result<Segment> {
        self.collect_prepared(true)?;
        self.prepared.pop_front().ok_or_else(|| {
            Error::io(
                "preparing a segment",
                &self.dir,
                std::io::Error::other("the preparer returned no segment"),
            )
        })
    }

    fn top_up_prepared(&mut self) -> Result<()> {
        while self.prepared.len() + self.prepares_in_flight
            < self.config.segments_prepared_ahead_max
        {
            self.submit_prepare(None)?;
        }
        Ok(())
    }

    // ----- state checks -----

    fn check_poison(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs a write-path step; any error poisons the log.
    fn poison_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result
            && self.poisoned.is_none()
        {
            tracing::error!(%error, "WAL poisoned");
            self.poisoned = Some(Arc::from(error.to_string()));
        }
        result
    }

    // ----- appending -----

    /// Appends a batch of writes for any number of partitions, in order, all or nothing.
    ///
    /// Returns the LSN the batch is durable at: once [`Wal::durable_lsn`] `>=` it.
    ///
    /// # Errors
    /// Bad input changes nothing: [`Error::RecordTooLarge`], [`Error::NotContiguous`] (an
    /// entry must follow the partition's last index; after [`Write::TruncateAfter`] in the same
    /// batch, the truncation point), [`Error::UnknownPartition`] (truncate, compact or delete
    /// of a partition with no records), [`Error::BelowCompactionFloor`],
    /// [`Error::TooManyPartitions`]. [`Error::Poisoned`] and I/O errors (which poison).
    ///
    /// # Durability
    /// None on return. The writes are in the current frame, written at the next
    /// [`Wal::submit`] (or earlier, when the frame fills).
    pub fn append(&mut self, writes: &[Write<'_>]) -> Result<Lsn> {
        self.check_poison()?;
        self.validate(writes)?;
        for write in writes {
            let result = self.append_one(write);
            self.poison_on_error(result)?;
        }
        Ok(Lsn(self.next_lsn))
    }

    fn validate(&mut self, writes: &[Write<'_>]) -> Result<()> {
        let mut sketch = std::mem::take(&mut self.sketch);
        sketch.clear();
        let result = self.validate_with(writes, &mut sketch);
        self.sketch = sketch;
        result
    }

    fn validate_with(&self, writes: &[Write<'_>], sketch: &mut Sketch) -> Result<()> {
        for write in writes {
            let partition = write.partition();
            let entry = sketch.entry(&self.state, partition);
            let existed = entry.exists;
            match *write {
                Write::Entry { index, payload, .. } => {
                    if payload.len() > self.config.record_bytes_max {
                        return Err(Error::RecordTooLarge {
                            len: payload.len(),
                            max: self.config.record_bytes_max,
                        });
                    }
                    if entry.fresh {
                        if index == 0 {
                            return Err(Error::NotContiguous {
                                partition,
                                index,
                                expected_index: 1,
                            });
                        }
                        entry.first_index = index;
                    } else if index != entry.next_index {
                        return Err(Error::NotContiguous {
                            partition,
                            index,
                            expected_index: entry.next_index,
                        });
                    }
                    entry.fresh = false;
                    entry.exists = true;
                    entry.next_index = index + 1;
                }
                Write::TermVote { .. } | Write::CommitIndex { .. } => entry.exists = true,
                Write::TruncateAfter { index, .. } => {
                    if !entry.exists {
                        return Err(Error::UnknownPartition { partition });
                    }
                    if index.saturating_add(1) < entry.first_index && !entry.fresh {
                        return Err(Error::BelowCompactionFloor {
                            partition,
                            index,
                            first_index: entry.first_index,
                        });
                    }
                    if entry.fresh {
                        entry.first_index = index + 1;
                        entry.next_index = index + 1;
                    } else {
                        entry.next_index = entry.next_index.min(index + 1);
                    }
                    entry.fresh = false;
                }
                Write::CompactTo { index, .. } => {
                    if !entry.exists {
                        return Err(Error::UnknownPartition { partition });
                    }
                    if index == 0 {
                        return Err(Error::BelowCompactionFloor {
                            partition,
                            index,
                            first_index: entry.first_index,
                        });
                    }
                    if entry.fresh || index > entry.first_index {
                        entry.first_index = index;
                        entry.next_index = entry.next_index.max(index);
                        entry.fresh = false;
                    }
                }
                Write::DeletePartition { .. } => {
                    if !entry.exists {
                        return Err(Error::UnknownPartition { partition });
                    }
                    entry.exists = false;
                    entry.fresh = true;
                    entry.first_index = 1;
                    entry.next_index = 1;
                    continue;
                }
            }
            if !existed && entry.exists {
                sketch.new_partitions += 1;
            }
        }
        if sketch.new_partitions > 0
            && self.state.partitions.len() + sketch.new_partitions > self.config.partitions_max
        {
            return Err(Error::TooManyPartitions {
                max: self.config.partitions_max,
            });
        }
        Ok(())
    }

    fn append_one(&mut self, write: &Write<'_>) -> Result<()> {
        let partition = write.partition();
        match *write {
            Write::Entry {
                index,
                term,
                payload,
                ..
            } => self.append_record(RecordKind::Entry, 0, partition, term, index, payload),
            Write::TermVote { state, .. } => {
                let (flags, vote) = match state.vote {
                    Some(vote) => (TERM_VOTE_HAS_VOTE, vote),
                    None => (0, 0),
                };
                self.append_record(
                    RecordKind::TermVote,
                    flags,
                    partition,
                    state.term,
                    vote,
                    &[],
                )
            }
            Write::CommitIndex { index, .. } => {
                self.append_record(RecordKind::CommitIndex, 0, partition, 0, index, &[])
            }
            Write::TruncateAfter { index, .. } => {
                self.append_record(RecordKind::TruncateAfter, 0, partition, 0, index, &[])
            }
            Write::CompactTo { index, .. } => {
                let term = self
                    .state
                    .partitions
                    .get(&partition)
                    .and_then(|p| p.term_at(index - 1))
                    .unwrap_or(0);
                self.append_record(RecordKind::CompactTo, 0, partition, term, index, &[])
            }
            Write::DeletePartition { .. } => {
                self.append_record(RecordKind::DeletePartition, 0, partition, 0, 0, &[])
            }
        }
    }

    /// Encodes one record into the current frame (opening, sealing and rotating as needed)
    /// and applies it to the state.
    fn append_record(
        &mut self,
        kind: RecordKind,
        flags: u8,
        partition: PartitionId,
        term: u64,
        index: u64,
        payload: &[u8],
    ) -> Result<()> {
        let footprint = record_footprint(payload.len());
        self.make_room(footprint)?;
        let lsn = self.next_lsn;
        let Some(frame) = self.current.as_mut() else {
            return Err(Error::io(
                "appending",
                &self.dir,
                std::io::Error::other("no open frame after make_room"),
            ));
        };
        let at = FRAME_HEADER_LEN + frame.payload_len;
        encode_record(
            &mut frame.buf.full_mut()[at..],
            kind,
            flags,
            partition,
            term,
            index,
            payload,
        );
        let offset = frame.offset + (at + crate::format::RECORD_HEADER_LEN) as u64;
        frame.payload_len += footprint;
        frame.records += 1;
        let segment = self.active_seq();
        self.state.apply(&Applied {
            kind,
            flags,
            partition,
            term,
            index,
            lsn,
            segment,
            offset,
            len: payload.len() as u32,
        });
        self.next_lsn += 1;
        if let Some(active) = self.segments.back_mut() {
            active.end_lsn = self.next_lsn;
        }
        Ok(())
    }

    fn active_seq(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.seq)
    }

    fn active_len(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.len)
    }

    /// Ensures the current frame can take `footprint` more payload bytes.
    fn make_room(&mut self, footprint: usize) -> Result<()> {
        if self.current_fits(footprint) {
            return Ok(());
        }
        self.seal_and_submit()?;
        let needed = frame_footprint(footprint) as u64;
        if self.cursor + needed > self.active_len() {
            self.rotate()?;
            // The rotation may have opened a frame (restated control records): use it.
            if self.current_fits(footprint) {
                return Ok(());
            }
            self.seal_and_submit()?;
            // The rewrite budget leaves room for a largest frame; check, never write past
            // the end of a segment.
            if self.cursor + needed > self.active_len() {
                return Err(Error::io(
                    "appending",
                    &self.dir,
                    std::io::Error::other("a frame does not fit a fresh segment"),
                ));
            }
        }
        let buf = match self.spare.pop() {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => AlignedBuf::with_capacity(self.config.batch_bytes_max),
        };
        self.current = Some(OpenFrame {
            buf,
            offset: self.cursor,
            first_lsn: self.next_lsn,
            records: 0,
            payload_len: 0,
        });
        Ok(())
    }

    /// Whether the current frame (if any) can take `footprint` more payload bytes.
    fn current_fits(&self, footprint: usize) -> bool {
        self.current.as_ref().is_some_and(|frame| {
            let needed = frame_footprint(frame.payload_len + footprint) as u64;
            needed <= self.config.batch_bytes_max as u64
                && frame.offset + needed <= self.active_len()
        })
    }

    /// Seals the current frame and hands it to the backend, first waiting for a slot if
    /// `inflight_batches_max` frames are in flight.
    fn seal_and_submit(&mut self) -> Result<()> {
        let Some(mut frame) = self.current.take() else {
            return Ok(());
        };
        if frame.records == 0 {
            self.spare.push(frame.buf);
            return Ok(());
        }
        let (seq, epoch, file) = match self.segments.back() {
            Some(active) => (active.seq, active.epoch, active.file.clone()),
            None => {
                return Err(Error::io(
                    "sealing a frame",
                    &self.dir,
                    std::io::Error::other("no active segment"),
                ));
            }
        };
        let stamp = FrameStamp {
            first_lsn: frame.first_lsn,
            record_count: frame.records,
            segment_seq: seq,
            epoch,
            prev_payload_crc: self.prev_payload_crc,
            offset: frame.offset,
            timestamp_ns: self.stamping().now_unix_ns(),
            inflight_frames_max: self.config.inflight_batches_max as u8,
        };
        self.prev_payload_crc = seal_frame(frame.buf.full_mut(), frame.payload_len, &stamp);
        frame.buf.set_len(FRAME_HEADER_LEN + frame.payload_len);
        frame.buf.pad_to_block();
        assert_eq!(self.cursor, frame.offset, "frames are written in order");
        self.cursor += frame.buf.len() as u64;
        let end_lsn = frame.first_lsn + u64::from(frame.records);
        while self.backend.in_flight() >= self.config.inflight_batches_max {
            self.reap(1)?;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.backend
            .submit_durable_write(&file, frame.offset, frame.buf, token)
            .map_err(io_err("submitting a durable write", file.path()))?;
        self.inflight.push_back(InflightFrame {
            token,
            end_lsn,
            done: false,
        });
        Ok(())
    }

    /// Reaps completions (waiting for `min`) and advances the durable LSN in order.
    fn reap(&mut self, min: usize) -> Result<()> {
        let mut completions = std::mem::take(&mut self.completions);
        let reaped = self
            .backend
            .reap(min, &mut completions)
            .map_err(io_err("reaping completions", &self.dir));
        let mut failure = None;
        for completion in completions.drain(..) {
            self.spare.push(completion.buf);
            if let Err(error) = completion.result {
                failure.get_or_insert(error);
                continue;
            }
            let Some(front) = self.inflight.front() else {
                continue;
            };
            let Some(slot) = completion
                .token
                .checked_sub(front.token)
                .and_then(|i| self.inflight.get_mut(i as usize))
            else {
                continue;
            };
            slot.done = true;
        }
        self.completions = completions;
        reaped?;
        if let Some(error) = failure {
            return Err(Error::io("writing a frame durably", &self.dir, error));
        }
        while self.inflight.front().is_some_and(|f| f.done) {
            if let Some(frame) = self.inflight.pop_front() {
                self.durable_lsn = frame.end_lsn;
            }
        }
        Ok(())
    }

    /// Submits the current frame if a pipeline slot is free and a flush was asked for.
    fn pump(&mut self) -> Result<()> {
        if self.flush_wanted
            && self.current.is_some()
            && self.backend.in_flight() < self.config.inflight_batches_max
        {
            self.seal_and_submit()?;
        }
        if self.current.is_none() {
            self.flush_wanted = false;
        }
        Ok(())
    }

    /// Moves to the next segment: drains the pipeline (so no frame is ever in flight in two
    /// segments), reclaims segments nothing live needs, activates a prepared segment, and
    /// rewrites forward the few records of partitions that pin the oldest segment.
    fn rotate(&mut self) -> Result<()> {
        self.seal_and_submit()?;
        while !self.inflight.is_empty() {
            let in_flight = self.backend.in_flight();
            if in_flight == 0 {
                // Every submitted write was reaped, yet a frame is not done: a backend that
                // lost a completion. Fail rather than wait forever.
                return Err(Error::io(
                    "draining the pipeline",
                    &self.dir,
                    std::io::Error::other("a durable write never completed"),
                ));
            }
            self.reap(in_flight)?;
        }
        let reclaimed = self.reclaim();
        let next = self.next_segment()?;
        self.segments.push_back(next);
        self.cursor = FIRST_FRAME_OFFSET;
        self.prev_payload_crc = 0;
        if let Some(active) = self.segments.back_mut() {
            active.end_lsn = self.next_lsn;
        }
        // Oldest first, in order, so a crash between two never leaves a gap.
        let keep_max = self.config.segments_prepared_ahead_max + self.config.segments_recycled_max;
        for (path, file) in reclaimed {
            match file {
                Some(file) if self.prepared.len() + self.prepares_in_flight < keep_max => {
                    self.submit_prepare(Some((file, path)))?;
                }
                _ => self.preparer.submit(Job::Remove { path })?,
            }
        }
        self.top_up_prepared()?;
        self.rewrite_pinning_partitions()?;
        Ok(())
    }

    /// Takes from the front every sealed segment whose records are all dead, oldest first,
    /// with its file if no reader still holds bytes of it (then it may be recycled; otherwise
    /// it is deleted, its mapping staying valid for the readers). Called with the pipeline
    /// drained, so every record is durable and so is a dead record's successor.
    fn reclaim(&mut self) -> Vec<(PathBuf, Option<SegmentFile>)> {
        let oldest_live = self
            .state
            .partitions
            .values()
            .filter_map(|p| p.oldest_live_lsn())
            .min()
            .unwrap_or(u64::MAX);
        let mut reclaimed = Vec::new();
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.end_lsn <= oldest_live)
        {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            let path = segment.path.clone();
            reclaimed.push((path, segment.into_unreferenced_file()));
        }
        reclaimed
    }

    /// Partitions whose records still pin the oldest sealed segment get their live state
    /// rewritten into one fresh frame (a `Reset` record, term and vote, commit index and live
    /// entries), if that fits one frame. Larger partitions keep pinning until compacted.
    fn rewrite_pinning_partitions(&mut self) -> Result<()> {
        if self.segments.len() < 2 {
            return Ok(());
        }
        let Some(oldest_end) = self.segments.front().map(|s| s.end_lsn) else {
            return Ok(());
        };
        // Leave room for a largest frame after the rewrites, and bound the copying done in
        // one rotation.
        let budget = (self.active_len() - FIRST_FRAME_OFFSET)
            .saturating_sub(self.config.batch_bytes_max as u64)
            .min(self.active_len() / 4);
        let mut spent = 0u64;
        let pinning: Vec<PartitionId> = self
            .state
            .partitions
            .iter()
            .filter(|(_, p)| p.oldest_live_lsn().is_some_and(|lsn| lsn < oldest_end))
            .map(|(id, _)| *id)
            .collect();
        let mut pinning = pinning;
        pinning.sort_unstable();
        for id in pinning {
            let Some(partition) = self.state.partitions.get(&id) else {
                continue;
            };
            let pins = |lsn: Option<u64>| lsn.is_some_and(|lsn| lsn < oldest_end);
            if !pins(partition.entries.front().map(|e| e.lsn)) && !pins(partition.truncate_lsn) {
                // Only control records pin: restate them (each alone is enough, so they need
                // no frame of their own).
                let restate_floor = pins(partition.floor_lsn)
                    .then_some((partition.first_index, partition.floor_term));
                let term_vote = partition
                    .term_vote
                    .filter(|(_, lsn)| *lsn < oldest_end)
                    .map(|(term_vote, _)| term_vote);
                let commit = partition
                    .commit_index
                    .filter(|(_, lsn)| *lsn < oldest_end)
                    .map(|(ci, _)| ci);
                spent += 3 * record_footprint(0) as u64;
                if let Some((first_index, floor_term)) = restate_floor {
                    self.append_record(RecordKind::CompactTo, 0, id, floor_term, first_index, &[])?;
                }
                self.append_control(id, term_vote, commit)?;
                continue;
            }
            let mut payload_bytes = record_footprint(0) * 3;
            for entry in &partition.entries {
                payload_bytes += record_footprint(entry.len as usize);
            }
            let frame_bytes = frame_footprint(payload_bytes) as u64;
            if frame_bytes > self.config.batch_bytes_max as u64 || spent + frame_bytes > budget {
                tracing::debug!(
                    partition = %id,
                    "partition too large to rewrite; it pins a segment until compacted"
                );
                continue;
            }
            spent += frame_bytes;
            let first_index = partition.first_index;
            let floor_term = partition.floor_term;
            let term_vote = partition.term_vote.map(|(term_vote, _)| term_vote);
            let commit = partition.commit_index.map(|(ci, _)| ci);
            let mut entries = Vec::with_capacity(partition.entries.len());
            for (i, loc) in partition.entries.iter().enumerate() {
                let bytes = self
                    .segment(loc.segment)
                    .and_then(|s| s.slice(loc.offset, loc.len))
                    .ok_or_else(|| Error::Corrupt {
                        segment: loc.segment,
                        offset: loc.offset,
                        reason: "index points outside the mapped segments".into(),
                    })?;
                entries.push((first_index + i as u64, loc.term, bytes));
            }
            // One frame for the whole rewrite, so a crash keeps all of it or none.
            self.seal_and_submit()?;
            self.append_record(RecordKind::Reset, 0, id, floor_term, first_index, &[])?;
            self.append_control(id, term_vote, commit)?;
            for (index, term, bytes) in entries {
                self.append_record(RecordKind::Entry, 0, id, term, index, &bytes)?;
            }
            self.seal_and_submit()?;
        }
        Ok(())
    }

    /// Appends a term-and-vote and a commit index record, where given.
    fn append_control(
        &mut self,
        partition: PartitionId,
        term_vote: Option<TermVote>,
        commit: Option<u64>,
    ) -> Result<()> {
        if let Some(term_vote) = term_vote {
            let (flags, vote) = match term_vote.vote {
                Some(v) => (TERM_VOTE_HAS_VOTE, v),
                None => (0, 0),
            };
            self.append_record(
                RecordKind::TermVote,
                flags,
                partition,
                term_vote.term,
                vote,
                &[],
            )?;
        }
        if let Some(ci) = commit {
            self.append_record(RecordKind::CommitIndex, 0, partition, 0, ci, &[])?;
        }
        Ok(())
    }

    fn segment(&self, seq: u64) -> Option<&Segment> {
        let front = self.segments.front()?.seq;
        self.segments
            .get(usize::try_from(seq.checked_sub(front)?).ok()?)
    }

    /// Asks for the current frame to be written: now if a pipeline slot is free, otherwise as
    /// soon as one frees (during [`Wal::poll_durable`] / [`Wal::wait_durable`]); meanwhile the
    /// frame keeps filling. Never waits.
    ///
    /// # Errors
    /// [`Error::Poisoned`]; an I/O error submitting (which poisons).
    ///
    /// # Durability
    /// None on return; see [`Wal::poll_durable`].
    pub fn submit(&mut self) -> Result<()> {
        self.check_poison()?;
        self.flush_wanted = true;
        let result = self.pump();
        self.poison_on_error(result)
    }

    /// Collects finished writes without waiting, submits a pending frame if a slot freed, and
    /// returns the durable LSN.
    ///
    /// # Errors
    /// [`Error::Poisoned`]; a failed write or sync (which poisons: the frames it carried and
    /// every later one are never acknowledged).
    ///
    /// # Durability
    /// Every record appended with an LSN below the returned one is durable.
    pub fn poll_durable(&mut self) -> Result<Lsn> {
        self.check_poison()?;
        let mut result = self.reap(0);
        if result.is_ok() {
            result = self.pump();
        }
        self.poison_on_error(result)?;
        Ok(Lsn(self.durable_lsn))
    }

    /// Submits what is needed and waits until `lsn` is durable (or everything appended so
    /// far, if `lsn` is beyond it). Returns the durable LSN.
    ///
    /// # Errors
    /// As [`Wal::poll_durable`].
    ///
    /// # Durability
    /// Every record below the returned LSN (which is at least `min(lsn, next_lsn)`) is durable.
    pub fn wait_durable(&mut self, lsn: Lsn) -> Result<Lsn> {
        self.check_poison()?;
        let target = lsn.0.min(self.next_lsn);
        let result = self.wait_for(target);
        self.poison_on_error(result)?;
        Ok(Lsn(self.durable_lsn))
    }

    fn wait_for(&mut self, target: u64) -> Result<()> {
        while self.durable_lsn < target {
            if self.current.as_ref().is_some_and(|f| f.first_lsn < target) {
                self.flush_wanted = true;
                self.pump()?;
            }
            if self.backend.in_flight() == 0 {
                // Nothing in flight and the target not reached: the frame is still open;
                // submit it now.
                self.seal_and_submit()?;
                if self.backend.in_flight() == 0 {
                    return Err(Error::io(
                        "waiting for durability",
                        &self.dir,
                        std::io::Error::other("a durable write never completed"),
                    ));
                }
            }
            self.reap(1)?;
        }
        Ok(())
    }

    /// Submits everything appended and waits until it is durable (a convenience for tests and
    /// simple callers). Returns the durable LSN.
    ///
    /// # Errors
    /// As [`Wal::poll_durable`].
    ///
    /// # Durability
    /// Everything appended before the call is durable when it returns `Ok`.
    pub fn sync(&mut self) -> Result<Lsn> {
        self.wait_durable(Lsn(u64::MAX))
    }

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

    // ----- conveniences -----

    /// Appends one entry. See [`Wal::append`].
    ///
    /// # Errors
    /// As [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn append_entry(
        &mut self,
        partition: PartitionId,
        index: u64,
        term: u64,
        payload: &[u8],
    ) -> Result<Lsn> {
        self.append(&[Write::Entry {
            partition,
            index,
            term,
            payload,
        }])
    }

    /// Persists a partition's term and vote. See [`Wal::append`].
    ///
    /// # Errors
    /// As [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`]: a vote may be answered only once the returned LSN is durable.
    pub fn set_term_vote(&mut self, partition: PartitionId, state: TermVote) -> Result<Lsn> {
        self.append(&[Write::TermVote { partition, state }])
    }

    /// Persists a partition's commit index. See [`Wal::append`].
    ///
    /// # Errors
    /// As [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn set_commit_index(&mut self, partition: PartitionId, index: u64) -> Result<Lsn> {
        self.append(&[Write::CommitIndex { partition, index }])
    }

    /// Drops a partition's entries above `index` (a log conflict). See [`Wal::append`].
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], [`Error::BelowCompactionFloor`], or as [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`]. Until durable, a crash may bring the entries back.
    pub fn truncate_after(&mut self, partition: PartitionId, index: u64) -> Result<Lsn> {
        self.append(&[Write::TruncateAfter { partition, index }])
    }

    /// Drops a partition's entries below `index`, which becomes its first index (after a
    /// snapshot). See [`Wal::append`].
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], or as [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn compact_to(&mut self, partition: PartitionId, index: u64) -> Result<Lsn> {
        self.append(&[Write::CompactTo { partition, index }])
    }

    /// Forgets a partition. See [`Wal::append`].
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], or as [`Wal::append`].
    ///
    /// # Durability
    /// As [`Wal::append`].
    pub fn delete_partition(&mut self, partition: PartitionId) -> Result<Lsn> {
        self.append(&[Write::DeletePartition { partition }])
    }

    // ----- reads -----

    /// The payload of one durable entry, borrowing the segment's mapping (no copy).
    ///
    /// The bytes stay valid as long as they are held, even after the log drops the segment
    /// (a reclaimed segment still referenced is deleted, never recycled). Do not hold them
    /// across closing and reopening the same directory: the reopened log does not know
    /// about them and may recycle their file.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::UnknownPartition`], [`Error::IndexOutOfRange`],
    /// [`Error::NotDurable`].
    pub fn entry(&self, partition: PartitionId, index: u64) -> Result<Bytes> {
        self.check_poison()?;
        let state = self.state.get(partition)?;
        let Some(loc) = state.entry(index) else {
            return Err(Error::IndexOutOfRange {
                partition,
                index,
                first_index: state.first_index,
                last_index: state.last_index(),
            });
        };
        if loc.lsn >= self.durable_lsn {
            return Err(Error::NotDurable { partition, index });
        }
        self.segment(loc.segment)
            .and_then(|s| s.slice(loc.offset, loc.len))
            .ok_or_else(|| Error::Corrupt {
                segment: loc.segment,
                offset: loc.offset,
                reason: "index points outside the mapped segments".into(),
            })
    }

    /// The payloads of entries `range` of a partition, appended to `out` in index order, each
    /// borrowing the mapping (no copy). All or nothing.
    ///
    /// # Errors
    /// As [`Wal::entry`], for the first index that fails.
    pub fn entries(
        &self,
        partition: PartitionId,
        range: Range<u64>,
        out: &mut Vec<Bytes>,
    ) -> Result<()> {
        let start = out.len();
        for index in range {
            match self.entry(partition, index) {
                Ok(bytes) => out.push(bytes),
                Err(error) => {
                    out.truncate(start);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The term of entry `index` (or of `first_index - 1`, the compaction floor).
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::UnknownPartition`], [`Error::IndexOutOfRange`].
    pub fn term_at(&self, partition: PartitionId, index: u64) -> Result<u64> {
        self.check_poison()?;
        let state = self.state.get(partition)?;
        state.term_at(index).ok_or(Error::IndexOutOfRange {
            partition,
            index,
            first_index: state.first_index,
            last_index: state.last_index(),
        })
    }

    /// A partition's first/last index, last term, term and vote, and commit index, as appended
    /// (including records not yet durable).
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::UnknownPartition`].
    pub fn partition(&self, partition: PartitionId) -> Result<PartitionInfo> {
        self.check_poison()?;
        Ok(self.state.get(partition)?.info())
    }

    /// Every partition with records, in id order.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub fn partitions(&self) -> Result<Vec<(PartitionId, PartitionInfo)>> {
        self.check_poison()?;
        let mut list: Vec<_> = self
            .state
            .partitions
            .iter()
            .map(|(id, p)| (*id, p.info()))
            .collect();
        list.sort_unstable_by_key(|(id, _)| *id);
        Ok(list)
    }
}

/// The names in a WAL directory, sorted, as `Wal::open` (and `inspect`) classify them.
#[derive(Debug, Default)]
pub(crate) struct DirListing {
    /// The `KOMMANDER_WAL` marker exists (its content is checked by `check_is_wal`).
    pub(crate) has_marker: bool,
    /// Sequence numbers of the `<seq>.wal` segments, ascending.
    pub(crate) seqs: Vec<u64>,
    /// Files being prepared (`<seq>.tmp`, the marker's temporary), which recovery removes.
    pub(crate) temps: Vec<String>,
    /// Every other name but the lock file.
    pub(crate) foreign: Vec<String>,
}

impl DirListing {
    /// Lists `dir` (reads nothing else).
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        let mut listing = Self::default();
        for entry in std::fs::read_dir(dir).map_err(io_err("listing the directory", dir))? {
            let entry = entry.map_err(io_err("listing the directory", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == MARKER_NAME {
                listing.has_marker = true;
            } else if let Some(seq) = parse_name(&name, "wal") {
                listing.seqs.push(seq);
            } else if parse_name(&name, "tmp").is_some() || name == MARKER_TEMP {
                listing.temps.push(name);
            } else if name != LOCK_NAME {
                listing.foreign.push(name);
            }
        }
        listing.seqs.sort_unstable();
        listing.temps.sort_unstable();
        listing.foreign.sort_unstable();
        Ok(listing)
    }

    /// The check `Wal::open` makes before changing anything: a directory holding other files
    /// or segments needs a valid marker (an empty one becomes a WAL).
    ///
    /// # Errors
    /// [`Error::NotAWal`]; [`Error::Io`] reading the marker.
    pub(crate) fn check_is_wal(&self, dir: &Path) -> Result<()> {
        if !self.has_marker {
            if let Some(name) = self.foreign.first() {
                return Err(Error::NotAWal {
                    dir: dir.to_path_buf(),
                    reason: format!("it holds {name:?} and no {MARKER_NAME} marker"),
                });
            }
            if !self.seqs.is_empty() {
                return Err(Error::NotAWal {
                    dir: dir.to_path_buf(),
                    reason: format!("it holds segments but no {MARKER_NAME} marker"),
                });
            }
            return Ok(());
        }
        let marker =
            std::fs::read(dir.join(MARKER_NAME)).map_err(io_err("reading the marker", dir))?;
        if !marker.starts_with(MARKER_CONTENT) {
            return Err(Error::NotAWal {
                dir: dir.to_path_buf(),
                reason: format!("its {MARKER_NAME} file is not a kommander-wal marker"),
            });
        }
        Ok(())
    }
}

fn write_marker(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let temp = dir.join(MARKER_TEMP);
    let path = dir.join(MARKER_NAME);
    let file = fs
        .create_new(&temp)
        .map_err(io_err("creating the marker", &temp))?;
    let mut block = AlignedBuf::with_capacity(BLOCK_SIZE);
    block.set_len(BLOCK_SIZE);
    block.as_mut_slice().fill(0);
    block.as_mut_slice()[..MARKER_CONTENT.len()].copy_from_slice(MARKER_CONTENT);
    fs.write_at(&file, 0, block.as_slice())
        .map_err(io_err("writing the marker", &temp))?;
    fs.sync_data(&file)
        .map_err(io_err("syncing the marker", &temp))?;
    fs.rename(&temp, &path)
        .map_err(io_err("renaming the marker", &temp))?;
    fs.sync_dir(dir)
        .map_err(io_err("syncing the directory", dir))?;
    Ok(())
}
