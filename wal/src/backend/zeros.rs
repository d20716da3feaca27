//! Zero-filling a fresh segment file: through [`FileSystem::write_at`](super::FileSystem) (the
//! default, which every backend may keep), or with `O_DIRECT` writes of one zero buffer, which
//! the device copies from memory itself: a buffered fill costs the CPU a page-cache copy of
//! every byte of every fresh segment (measured: 25–46 % of the saturated 1024-partition loop's
//! CPU while its rotations needed fresh segments; `docs/benchmarks.md`).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use super::{AlignedBuf, BLOCK_SIZE, SegmentFile};

/// Bytes written by one zero-filling write.
const ZERO_CHUNK: usize = 1 << 20;

/// Writes `len` zero bytes at `offset` with `write`, in chunks of [`ZERO_CHUNK`] bytes from one
/// 4096-aligned buffer.
pub(crate) fn write_zeros_with(
    mut write: impl FnMut(u64, &[u8]) -> io::Result<()>,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let chunk = usize::try_from(len).map_or(ZERO_CHUNK, |len| len.min(ZERO_CHUNK));
    let mut zeros = AlignedBuf::with_capacity(chunk.max(1));
    zeros.set_len(zeros.capacity());
    let end = offset
        .checked_add(len)
        .ok_or_else(|| io::Error::other("a zero-fill past the largest file offset"))?;
    let mut at = offset;
    while at < end {
        let n = zeros
            .len()
            .min(usize::try_from(end - at).unwrap_or(usize::MAX));
        write(at, &zeros.as_slice()[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Writes `len` zero bytes at `offset` of `file` through a second, `O_DIRECT` descriptor of
/// it (opened through `/proc/self/fd`, so a rename does not matter), or buffered where that
/// descriptor cannot be opened or the filesystem refuses the direct write (`EINVAL`). `offset`
/// and `len` must be multiples of [`BLOCK_SIZE`] for the direct path; otherwise it writes
/// buffered. Not durable until the file is synced.
pub(crate) fn write_zeros_direct(file: &SegmentFile, offset: u64, len: u64) -> io::Result<()> {
    let block = BLOCK_SIZE as u64;
    let buffered = |at: u64, data: &[u8]| file.file().write_all_at(data, at);
    if !offset.is_multiple_of(block) || !len.is_multiple_of(block) {
        return write_zeros_with(buffered, offset, len);
    }
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.file().as_raw_fd()));
    let Ok(direct) = direct else {
        return write_zeros_with(buffered, offset, len);
    };
    // Whether the filesystem refused a direct write: then that chunk and the rest are written
    // buffered (what was written directly stays written).
    let mut refused = false;
    write_zeros_with(
        |at, data| {
            if refused {
                return buffered(at, data);
            }
            match direct.write_all_at(data, at) {
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    refused = true;
                    buffered(at, data)
                }
                other => other,
            }
        },
        offset,
        len,
    )
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    fn file_of(len: u64, fill: u8) -> (tempfile::TempDir, SegmentFile) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![fill; len as usize]).expect("write");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        (dir, SegmentFile::new(file, path))
    }

    fn contents(file: &SegmentFile) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut reader = File::open(file.path()).expect("open");
        std::io::Read::read_to_end(&mut reader, &mut bytes).expect("read");
        bytes
    }

    #[test]
    fn direct_and_buffered_fills_zero_exactly_the_range() {
        let block = BLOCK_SIZE as u64;
        // Aligned (direct where the filesystem allows it), and unaligned (buffered), with a
        // length over one chunk so the loop runs more than once.
        for (offset, len) in [(block, (ZERO_CHUNK as u64) + 3 * block), (100, 5000)] {
            let total = offset + len + block;
            let (_dir, file) = file_of(total, 0xAB);
            write_zeros_direct(&file, offset, len).expect("zero-fill");
            let bytes = contents(&file);
            assert_eq!(bytes.len() as u64, total, "the file keeps its length");
            let (start, end) = (offset as usize, (offset + len) as usize);
            assert!(
                bytes[..start].iter().all(|&b| b == 0xAB),
                "before the range"
            );
            assert!(
                bytes[start..end].iter().all(|&b| b == 0),
                "the range is zero"
            );
            assert!(bytes[end..].iter().all(|&b| b == 0xAB), "after the range");
        }
    }
}
