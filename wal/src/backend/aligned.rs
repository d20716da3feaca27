//! [`AlignedBuf`]: an owned byte buffer aligned to 4096 bytes in memory, usable for `O_DIRECT`.

use std::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The alignment unit of every write: memory address, file offset and length (4096 bytes).
pub const BLOCK_SIZE: usize = 4096;

/// One 4096-byte, 4096-aligned block. Plain bytes, no padding, so a slice of blocks is a slice
/// of bytes (zerocopy proves it; no `unsafe` here).
#[derive(Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(4096))]
struct Block([u8; BLOCK_SIZE]);

/// An owned buffer of whole 4096-byte blocks, 4096-aligned in memory, with a length in bytes.
///
/// The capacity is fixed at creation. Bytes between `len` and the capacity are kept (not
/// cleared) so a buffer can be reused without zeroing; [`AlignedBuf::pad_to_block`] zeroes what
/// it adds.
#[derive(Clone)]
pub struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of at least `capacity` bytes (rounded up to whole blocks, at least one),
    /// with length 0.
    pub fn with_capacity(capacity: usize) -> Self {
        let count = capacity.div_ceil(BLOCK_SIZE).max(1);
        Self {
            blocks: vec![Block([0; BLOCK_SIZE]); count],
            len: 0,
        }
    }

    /// The capacity in bytes (a multiple of [`BLOCK_SIZE`]).
    pub fn capacity(&self) -> usize {
        self.blocks.len() * BLOCK_SIZE
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the length.
    ///
    /// # Panics
    /// If `len` exceeds the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "AlignedBuf::set_len beyond capacity"
        );
        self.len = len;
    }

    /// Sets the length to 0 (contents are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Zeroes the bytes from the length up to the next block boundary and extends the length
    /// to it.
    pub fn pad_to_block(&mut self) {
        let padded = self.len.next_multiple_of(BLOCK_SIZE);
        let len = self.len;
        self.full_mut()[len..padded].fill(0);
        self.len = padded;
    }

    /// The first `len` bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.blocks.as_bytes()[..self.len]
    }

    /// The first `len` bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.blocks.as_mut_bytes()[..len]
    }

    /// The whole capacity, mutable (for encoding in place before [`AlignedBuf::set_len`]).
    pub fn full_mut(&mut self) -> &mut [u8] {
        self.blocks.as_mut_bytes()
    }

    /// Pointer to the first byte (4096-aligned), for backends that hand it to the kernel.
    pub fn as_ptr(&self) -> *const u8 {
        self.blocks.as_bytes().as_ptr()
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_sized_in_blocks() {
        let mut buf = AlignedBuf::with_capacity(5000);
        assert_eq!(buf.capacity(), 2 * BLOCK_SIZE);
        assert_eq!(buf.as_ptr() as usize % BLOCK_SIZE, 0);
        buf.full_mut()[..3].copy_from_slice(b"abc");
        buf.set_len(3);
        buf.full_mut()[3..10].fill(7);
        buf.pad_to_block();
        assert_eq!(buf.len(), BLOCK_SIZE);
        assert_eq!(&buf.as_slice()[..4], b"abc\0");
        assert!(buf.as_slice()[3..].iter().all(|b| *b == 0));
    }
}
