//! Opening a WAL directory: the checks before anything changes, the lock, the backend, and
//! recovery (scan, replay, the repairs of a torn tail or a half-prepared segment) into the
//! log's state and segment lists.

use std::collections::VecDeque;
use std::fs::{OpenOptions, TryLockError};
use std::path::Path;

use super::Wal;
use crate::backend::{AlignedBuf, BLOCK_SIZE, open_backend};
use crate::config::WalConfig;
use crate::directory::{DirListing, LOCK_NAME, write_marker};
use crate::error::{Error, Result, io_err};
use crate::format::FIRST_FRAME_OFFSET;
use crate::preparer::Preparer;
use crate::recovery::{SegmentImage, replay, scan};
use crate::segment::{Segment, Stamping, map_file};
use crate::state::{LogState, Sketch};

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
    /// Everything recovered is durable when this returns: every segment and the directory are
    /// synced, so records a process crash left in the page cache only are made durable before
    /// they are served (and a zeroed torn tail with them).
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
        }
        let mut zeros = AlignedBuf::with_capacity(1 << 20);
        zeros.set_len(zeros.capacity());
        if let Some((index, offset)) = outcome.torn_tail {
            let (_, file, path, map) = &opened[index];
            tracing::warn!(?path, offset, "dropping a torn tail");
            let end = map.len() as u64;
            let chunk = zeros.len() as u64;
            let mut at = offset;
            while at < end {
                let n = chunk.min(end - at) as usize;
                self.fs
                    .write_at(file, at, &zeros.as_slice()[..n])
                    .map_err(io_err("zeroing a torn tail", path))?;
                at += n as u64;
            }
        }
        // Frames an earlier life wrote after what is now the end: zeroed before any new frame,
        // so none can join the log when a new frame over it is lost (`frames_beyond_the_end`).
        for &(index, offset) in &outcome.beyond_end {
            let (_, file, path, _) = &opened[index];
            tracing::warn!(?path, offset, "zeroing a frame beyond the recovered end");
            self.fs
                .write_at(file, offset, &zeros.as_slice()[..BLOCK_SIZE])
                .map_err(io_err("zeroing a frame beyond the recovered end", path))?;
        }
        // After a process crash, what recovery just read may be in the page cache only: written
        // before the crash, never synced (a sync failed, or the process died first). The log
        // now serves it as durable and its owner acts on it (a vote, an acknowledged entry), so
        // a power loss must not take it back: sync every segment (the zeroed slots with them)
        // and the directory (names renamed or created before the crash).
        for (_, file, path, _) in &opened {
            self.fs
                .sync_data(file)
                .map_err(io_err("syncing a recovered segment", path))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_err("syncing the directory", &self.dir))?;
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
}
