//! Segment files: names, preparation (zero-filled or recycled), and read-only mappings.
//!
//! A segment is `<seq:016x>.wal`, a fixed size, prepared completely before it is used:
//!
//! 1. create `<seq>.tmp` and zero-fill it (or: rename a reclaimed segment to `<seq>.tmp` and
//!    sync the directory, so a crash never leaves an old name over a new header);
//! 2. write the segment header into block 0 (new seq, new random epoch);
//! 3. `fdatasync`; 4. rename to `<seq>.wal`; 5. sync the directory.
//!
//! Recovery removes every `*.tmp`, so a crash at any step leaves either no segment or a whole
//! one. Files are never truncated or grown after preparation (a mapped file must not shrink).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use memmap2::Mmap;

use crate::backend::{AlignedBuf, BLOCK_SIZE, FileSystem, SegmentFile};
use crate::error::{Error, Result};
use crate::format::encode_segment_header;

/// The file name of segment `seq`.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.wal")
}

/// The temporary name of segment `seq` while it is prepared.
pub(crate) fn temp_name(seq: u64) -> String {
    format!("{seq:016x}.tmp")
}

/// Parses `<16 lowercase hex digits>.<ext>`, the only spelling [`segment_name`] writes (so
/// that no two names are one seq; `u64::from_str_radix` alone also takes upper case and a
/// leading `+`).
pub(crate) fn parse_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 16 || !stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// The identity stamps of new segments and frames: random epochs and wall-clock time, or
/// (test hook) seeded epochs and zero timestamps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamping {
    pub(crate) seed: Option<u64>,
}

impl Stamping {
    pub(crate) fn epoch(self, seq: u64) -> u64 {
        match self.seed {
            Some(seed) => {
                let mut hasher = std::hash::DefaultHasher::new();
                hasher.write_u64(seed);
                hasher.write_u64(seq);
                hasher.finish() | 1
            }
            None => random_epoch(),
        }
    }

    pub(crate) fn now_unix_ns(self) -> u64 {
        if self.seed.is_some() {
            0
        } else {
            now_unix_ns()
        }
    }
}

fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A fresh random epoch (std's randomly keyed hasher, mixed with the clock).
fn random_epoch() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(now_unix_ns());
    hasher.finish() | 1
}

/// A read-only mapping shared by the log and every `Bytes` handed out from it.
struct MapOwner(Arc<Mmap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Maps a whole segment file read-only.
#[allow(unsafe_code)]
pub(crate) fn map_file(file: &SegmentFile) -> Result<Arc<Mmap>> {
    // SAFETY: memmap2 requires that the file is not truncated or modified in ways that break
    // Rust's aliasing rules while mapped. This crate never truncates or resizes a segment
    // file after preparation (segments are fixed-size; recycling renames and rewrites, it
    // never shrinks), and the directory lock keeps other instances out. Bytes of the mapping
    // may change only where the log writes frames it has not yet exposed to readers (reads
    // are served only for durable frames, which are never rewritten while mapped: a
    // reclaimed segment still referenced by a reader is deleted, not recycled; holding bytes
    // across a close and reopen of the same directory is documented as unsupported on
    // `Wal::entry`).
    let map = unsafe { Mmap::map(file.file()) }
        .map_err(|e| Error::io("mapping a segment", file.path(), e))?;
    Ok(Arc::new(map))
}

/// A segment that is open and mapped.
pub(crate) struct Segment {
    pub(crate) seq: u64,
    pub(crate) epoch: u64,
    pub(crate) len: u64,
    pub(crate) file: SegmentFile,
    pub(crate) path: PathBuf,
    map: Arc<Mmap>,
    bytes: Bytes,
    /// LSN one past the last record in this segment (for data segments).
    pub(crate) end_lsn: u64,
}

impl Segment {
    pub(crate) fn new(
        seq: u64,
        epoch: u64,
        file: SegmentFile,
        path: PathBuf,
        map: Arc<Mmap>,
    ) -> Self {
        let len = map.len() as u64;
        let bytes = Bytes::from_owner(MapOwner(map.clone()));
        Self {
            seq,
            epoch,
            len,
            file,
            path,
            map,
            bytes,
            end_lsn: 0,
        }
    }

    /// A zero-copy slice of the mapping.
    pub(crate) fn slice(&self, offset: u64, len: u32) -> Option<Bytes> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len as usize)?;
        (end <= self.bytes.len()).then(|| self.bytes.slice(start..end))
    }

    /// Gives the file back if no reader still holds bytes of it (so it may be recycled).
    pub(crate) fn into_unreferenced_file(self) -> Option<SegmentFile> {
        let Self {
            file, map, bytes, ..
        } = self;
        drop(bytes);
        (Arc::strong_count(&map) == 1).then_some(file)
    }
}

/// Prepares segment `seq` in `dir` (see the module docs), recycling `recycle` if given.
pub(crate) fn prepare_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seq: u64,
    segment_bytes: u64,
    recycle: Option<(SegmentFile, PathBuf)>,
    stamping: Stamping,
) -> Result<Segment> {
    let temp = dir.join(temp_name(seq));
    let path = dir.join(segment_name(seq));
    let (file, len) = match recycle {
        Some((old_file, old_path)) => {
            fs.rename(&old_path, &temp)
                .map_err(|e| Error::io("renaming a reclaimed segment", &old_path, e))?;
            fs.sync_dir(dir)
                .map_err(|e| Error::io("syncing the directory", dir, e))?;
            let len = old_file
                .file()
                .metadata()
                .map_err(|e| Error::io("reading a segment's size", &temp, e))?
                .len();
            drop(old_file);
            let file = fs
                .open(&temp)
                .map_err(|e| Error::io("opening a recycled segment", &temp, e))?;
            (file, len)
        }
        None => {
            let file = fs
                .create_new(&temp)
                .map_err(|e| Error::io("creating a segment", &temp, e))?;
            let block = BLOCK_SIZE as u64;
            fs.write_zeros(&file, block, segment_bytes.saturating_sub(block))
                .map_err(|e| Error::io("zero-filling a segment", &temp, e))?;
            (file, segment_bytes)
        }
    };
    let epoch = stamping.epoch(seq);
    let mut block = AlignedBuf::with_capacity(BLOCK_SIZE);
    block.set_len(BLOCK_SIZE);
    let header = encode_segment_header(
        seq,
        epoch,
        (len / BLOCK_SIZE as u64) as u32,
        stamping.now_unix_ns(),
    );
    block.as_mut_slice().fill(0);
    block.as_mut_slice()[..header.len()].copy_from_slice(&header);
    fs.write_at(&file, 0, block.as_slice())
        .map_err(|e| Error::io("writing a segment header", &temp, e))?;
    fs.sync_data(&file)
        .map_err(|e| Error::io("syncing a prepared segment", &temp, e))?;
    fs.rename(&temp, &path)
        .map_err(|e| Error::io("renaming a prepared segment", &temp, e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io("syncing the directory", dir, e))?;
    drop(file);
    let file = fs
        .open(&path)
        .map_err(|e| Error::io("opening a prepared segment", &path, e))?;
    let map = map_file(&file)?;
    Ok(Segment::new(seq, epoch, file, path, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_the_log_writes_are_segments() {
        assert_eq!(parse_name(&segment_name(0xab), "wal"), Some(0xab));
        assert_eq!(parse_name(&temp_name(7), "tmp"), Some(7));
        for foreign in [
            "00000000000000AB.wal",
            "+00000000000000b.wal",
            "00000000000000ab.tmp.wal",
            "0000000000000ab.wal",
            "00000000000000ab.wal.tmp",
        ] {
            assert_eq!(parse_name(foreign, "wal"), None, "{foreign}");
        }
    }
}
